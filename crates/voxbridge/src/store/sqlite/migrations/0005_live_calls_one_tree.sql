-- voxbridge schema 5: live_calls as one B-tree (issue 16). A live row is written when a
-- call starts and deleted when its record is written, so every page it touches goes to
-- the WAL twice per call. As a rowid table it touched three trees (the table, the
-- primary key's index and live_calls_by_account); keyed by call_uuid WITHOUT ROWID it
-- touches one. The by-account index goes: live rows are the calls in progress (at most
-- `[esl] max_calls`), and listing one account's is a scan of them.

CREATE TABLE live_calls_v5 (
    call_uuid           TEXT PRIMARY KEY NOT NULL,
    account_id          TEXT NOT NULL,
    direction           TEXT NOT NULL,          -- inbound | outbound
    from_number         TEXT NOT NULL,
    to_number           TEXT NOT NULL,
    caller_name         TEXT NOT NULL,
    forwarded_from      TEXT,
    start_time          INTEGER NOT NULL,
    answer_time         INTEGER,
    scheduled_hangup_at INTEGER,
    hangup_url          TEXT NOT NULL,
    status_callback_url TEXT NOT NULL,
    switch_name         TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

INSERT INTO live_calls_v5 (call_uuid, account_id, direction, from_number, to_number,
    caller_name, forwarded_from, start_time, answer_time, scheduled_hangup_at, hangup_url,
    status_callback_url, switch_name)
SELECT call_uuid, account_id, direction, from_number, to_number, caller_name,
    forwarded_from, start_time, answer_time, scheduled_hangup_at, hangup_url,
    status_callback_url, switch_name
FROM live_calls;

DROP TABLE live_calls;
ALTER TABLE live_calls_v5 RENAME TO live_calls;
