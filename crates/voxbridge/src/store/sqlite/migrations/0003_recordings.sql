-- voxbridge schema 2: recordings (SPEC §12.2, §12.3), one row per complete file.
-- Times are integers: nanoseconds since the Unix epoch, UTC.

CREATE TABLE recordings (
    id              INTEGER PRIMARY KEY,        -- insertion order, breaks created_at ties
    recording_id    TEXT NOT NULL UNIQUE,
    call_uuid       TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    kind            TEXT NOT NULL,              -- caller | session
    file_path       TEXT NOT NULL,
    format          TEXT NOT NULL,              -- wav | mp3
    duration_ms     INTEGER NOT NULL,
    start_time      INTEGER NOT NULL,
    end_time        INTEGER NOT NULL,
    end_reason      TEXT NOT NULL,              -- RecordingTimeout | maxLength | FinishedOnKey | HungUp | Stopped
    from_number     TEXT NOT NULL,
    to_number       TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX recordings_newest_by_account ON recordings (account_id, created_at DESC, id DESC);
CREATE INDEX recordings_by_call ON recordings (call_uuid, id);
