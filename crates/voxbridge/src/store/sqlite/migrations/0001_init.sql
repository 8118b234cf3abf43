-- voxbridge schema 1: live calls, CDRs, the callback outbox.
-- Times are integers: nanoseconds since the Unix epoch, UTC.

CREATE TABLE live_calls (
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
    status_callback_url TEXT NOT NULL
);
CREATE INDEX live_calls_by_account ON live_calls (account_id, start_time);

CREATE TABLE cdrs (
    id                  INTEGER PRIMARY KEY,    -- insertion order, breaks start-time ties
    call_uuid           TEXT NOT NULL UNIQUE,
    account_id          TEXT NOT NULL,
    direction           TEXT NOT NULL,
    from_number         TEXT NOT NULL,
    to_number           TEXT NOT NULL,
    caller_name         TEXT NOT NULL,
    forwarded_from      TEXT,
    start_time          INTEGER NOT NULL,
    answer_time         INTEGER,
    end_time            INTEGER NOT NULL,
    duration_secs       INTEGER NOT NULL,
    bill_duration_secs  INTEGER NOT NULL,
    hangup_cause        INTEGER NOT NULL,       -- switch_call_cause_t value
    hangup_cause_code   INTEGER NOT NULL,       -- Q.850 as reported
    hangup_cause_name   TEXT NOT NULL,
    hangup_source       TEXT NOT NULL,
    hangup_reason       TEXT NOT NULL,
    sip_status          INTEGER,
    caller_abandoned    INTEGER NOT NULL,
    notes               TEXT NOT NULL           -- JSON array of strings
);
CREATE INDEX cdrs_newest_by_account ON cdrs (account_id, start_time DESC, id DESC);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,        -- enqueue order
    delivery_id     TEXT NOT NULL UNIQUE,
    call_uuid       TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    kind            TEXT NOT NULL,              -- hangup | status | post_call
    method          TEXT NOT NULL,              -- GET | POST
    url             TEXT NOT NULL,
    receiver        TEXT NOT NULL,              -- scheme://host:port of url
    content_type    TEXT,
    body            BLOB NOT NULL,
    status          TEXT NOT NULL,              -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    last_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_by_call ON outbox (call_uuid, id);
