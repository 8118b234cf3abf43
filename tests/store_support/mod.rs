//! What the store tests share: sample rows, and [`Db`], a database of either kind, so
//! one behavioural suite (`store_behaviour.rs`) runs on SQLite and on PostgreSQL.

#![allow(dead_code)]

use crate::pg_support;

use std::time::Duration;
use time::OffsetDateTime;
use voxbridge::app::callbacks::CallbackTargets;
use voxbridge::cause::HangupCause;
use voxbridge::record::call::{CallRecord, Direction, HangupSource};
use voxbridge::store::{self, ClaimRequest, NewLiveCall, Store, StoreHandle};

/// One database, of either kind; [`Db::open`] opens a store on it (again, for a reopen).
pub enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Db {
    pub fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh PostgreSQL database, or `None` (said on stderr) without PostgreSQL here.
    pub async fn postgres() -> Option<Db> {
        pg_support::fresh_database().await.map(Db::Postgres)
    }

    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(dir) => format!("sqlite://{}", dir.path().join("vb.db").display()),
            Db::Postgres(url) => url.clone(),
        }
    }

    /// A store on this database, as node `node-a`. With SQLite a previous store on the
    /// same file must be dropped first (one process per file).
    pub async fn open(&self) -> StoreHandle {
        self.open_as("node-a").await
    }

    /// A store on this database as the named node (a fleet shares a PostgreSQL database;
    /// SQLite ignores the name).
    pub async fn open_as(&self, node: &str) -> StoreHandle {
        store::open_as_node(&self.url(), node)
            .await
            .expect("open store")
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }
}

pub fn live(uuid: &str, account: &str, start: OffsetDateTime) -> NewLiveCall {
    NewLiveCall {
        call_uuid: uuid.into(),
        account_id: account.into(),
        direction: Direction::Inbound,
        from: "+15550001".into(),
        to: "7000".into(),
        caller_name: "Ann".into(),
        forwarded_from: Some("+15559999".into()),
        start_time: start,
        hangup_url: "http://127.0.0.1:9/hangup".into(),
        status_callback_url: "http://127.0.0.1:9/status".into(),
        switch_name: "fs-test".into(),
    }
}

pub fn record(uuid: &str, account: &str, start: OffsetDateTime) -> CallRecord {
    CallRecord {
        call_uuid: uuid.into(),
        account_id: account.into(),
        direction: Direction::Outbound,
        from: "+15550001".into(),
        to: "7000".into(),
        caller_name: "Ann \"the caller\" 😀".into(),
        forwarded_from: None,
        start_time: start,
        answer_time: Some(start + Duration::from_millis(1_500)),
        end_time: start + Duration::from_secs(46),
        duration_secs: 46,
        bill_duration_secs: 44,
        hangup_cause: HangupCause::USER_BUSY,
        hangup_cause_code: 17,
        hangup_cause_name: "Busy Line".into(),
        hangup_source: HangupSource::AnswerXml,
        hangup_reason: "busy".into(),
        sip_status: Some(486),
        caller_abandoned: false,
        notes: vec!["skipped Speak (post-call mode)".into()],
    }
}

pub fn targets() -> CallbackTargets {
    CallbackTargets {
        hangup_url: "http://127.0.0.1:9/hangup".into(),
        status_callback_url: "http://127.0.0.1:9/status".into(),
        post_call: None,
    }
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub async fn claim_all(store: &dyn Store) -> Vec<voxbridge::store::PendingCallback> {
    let now = now() + Duration::from_secs(1);
    store
        .claim_due_callbacks(ClaimRequest {
            now,
            limit: 10_000,
            claim_until: now + Duration::from_secs(60),
            receiver_room: vec![],
            default_receiver_room: 10_000,
        })
        .await
        .unwrap()
        .rows
}
