-- voxbridge PostgreSQL schema 1: live calls, CDRs, the callback outbox, and the nodes of a
-- fleet. The same tables and columns as the SQLite schema (so one codec shape serves both),
-- plus what several nodes sharing one database need: which node holds a live call and
-- which switch it is on, which node holds an outbox claim, and each node's heartbeat.
-- Times are BIGINT nanoseconds since the Unix epoch, UTC, as in SQLite: an exact round
-- trip (timestamptz keeps microseconds only) and one time codec for both stores.

CREATE TABLE live_calls (
    call_uuid           TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL,
    direction           TEXT NOT NULL,          -- inbound | outbound
    from_number         TEXT NOT NULL,
    to_number           TEXT NOT NULL,
    caller_name         TEXT NOT NULL,
    forwarded_from      TEXT,
    start_time          BIGINT NOT NULL,
    answer_time         BIGINT,
    scheduled_hangup_at BIGINT,
    hangup_url          TEXT NOT NULL,
    status_callback_url TEXT NOT NULL,
    node_id             TEXT NOT NULL,          -- the voxbridge node holding the call
    switch_name         TEXT NOT NULL DEFAULT '' -- the switch it is on ('' before known)
);
CREATE INDEX live_calls_by_account ON live_calls (account_id, start_time);
CREATE INDEX live_calls_by_node ON live_calls (node_id, start_time);

CREATE TABLE cdrs (
    id                  BIGSERIAL PRIMARY KEY,  -- insertion order, breaks start-time ties
    call_uuid           TEXT NOT NULL UNIQUE,
    account_id          TEXT NOT NULL,
    direction           TEXT NOT NULL,
    from_number         TEXT NOT NULL,
    to_number           TEXT NOT NULL,
    caller_name         TEXT NOT NULL,
    forwarded_from      TEXT,
    start_time          BIGINT NOT NULL,
    answer_time         BIGINT,
    end_time            BIGINT NOT NULL,
    duration_secs       BIGINT NOT NULL,
    bill_duration_secs  BIGINT NOT NULL,
    hangup_cause        INTEGER NOT NULL,       -- switch_call_cause_t value
    hangup_cause_code   INTEGER NOT NULL,       -- Q.850 as reported
    hangup_cause_name   TEXT NOT NULL,
    hangup_source       TEXT NOT NULL,
    hangup_reason       TEXT NOT NULL,
    sip_status          INTEGER,
    caller_abandoned    BOOLEAN NOT NULL,
    notes               TEXT NOT NULL           -- JSON array of strings
);
CREATE INDEX cdrs_newest_by_account ON cdrs (account_id, start_time DESC, id DESC);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,      -- enqueue order
    delivery_id     TEXT NOT NULL UNIQUE,
    call_uuid       TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    kind            TEXT NOT NULL,              -- hangup | status | post_call
    method          TEXT NOT NULL,              -- GET | POST
    url             TEXT NOT NULL,
    receiver        TEXT NOT NULL,              -- scheme://host:port of url
    content_type    TEXT,
    body            BYTEA NOT NULL,
    status          TEXT NOT NULL,              -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT,
    claimed_by      TEXT,                       -- the node holding the claim
    last_attempt_at BIGINT,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    BIGINT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_by_call ON outbox (call_uuid, id);
CREATE INDEX outbox_claims_by_node ON outbox (claimed_by) WHERE claimed_by IS NOT NULL;

-- One row per voxbridge node: how the others reach it, and its heartbeat.
CREATE TABLE nodes (
    node_id       TEXT PRIMARY KEY,
    api_url       TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL,
    lease_nanos   BIGINT NOT NULL               -- dead when heartbeat_at + lease < now
);
