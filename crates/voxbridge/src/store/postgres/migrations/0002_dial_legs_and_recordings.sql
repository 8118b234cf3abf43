-- voxbridge PostgreSQL schema 2: what SQLite's schema 2 and 3 added.
-- A Dial's B-leg has its own CDR, linked to the A-leg it belongs to (SPEC §11.2); NULL for
-- every call voxbridge was handed itself.
ALTER TABLE cdrs ADD COLUMN parent_call_uuid TEXT;

-- Recordings (SPEC §12.2, §12.3), one row per complete file. Times are BIGINT
-- nanoseconds since the Unix epoch, UTC, as everywhere in this schema.
CREATE TABLE recordings (
    id              BIGSERIAL PRIMARY KEY,      -- insertion order, breaks created_at ties
    recording_id    TEXT NOT NULL UNIQUE,
    call_uuid       TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    kind            TEXT NOT NULL,              -- caller | session
    file_path       TEXT NOT NULL,
    format          TEXT NOT NULL,              -- wav | mp3
    duration_ms     BIGINT NOT NULL,
    start_time      BIGINT NOT NULL,
    end_time        BIGINT NOT NULL,
    end_reason      TEXT NOT NULL,
    from_number     TEXT NOT NULL,
    to_number       TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX recordings_newest_by_account ON recordings (account_id, created_at DESC, id DESC);
CREATE INDEX recordings_by_call ON recordings (call_uuid, id);
