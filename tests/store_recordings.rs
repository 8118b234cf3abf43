//! The `recordings` table (SPEC §12.2, §12.3) in the SQLite store: a row per complete
//! recording, scoped to its account, listed newest first with the Call list's paging and a
//! `call_uuid` filter, written once per recording id, deleted with its row handed back.

use time::OffsetDateTime;
use voxbridge::store::{
    self, Recording, RecordingEndReason, RecordingKind, RecordingQuery, StoreHandle,
};

async fn open(dir: &tempfile::TempDir) -> StoreHandle {
    let url = format!("sqlite://{}", dir.path().join("vb.db").display());
    store::open(&url).await.expect("open store")
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000 + secs).unwrap()
}

fn recording(id: &str, call: &str, account: &str, created: i64) -> Recording {
    Recording {
        recording_id: id.to_string(),
        call_uuid: call.to_string(),
        account_id: account.to_string(),
        kind: RecordingKind::Caller,
        file_path: format!("/var/lib/voxbridge/recordings/{id}.wav"),
        format: "wav".to_string(),
        duration_ms: 4_321,
        start: at(created - 5),
        end: at(created - 1),
        end_reason: RecordingEndReason::FinishedOnKey,
        from_number: "15551230000".to_string(),
        to_number: "7000".to_string(),
        created_at: at(created),
    }
}

fn all(call: Option<&str>) -> RecordingQuery {
    RecordingQuery {
        call_uuid: call.map(str::to_string),
        limit: 100,
        offset: 0,
    }
}

#[tokio::test]
async fn a_recording_row_round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut r = recording("r-1", "call-1", "MA1", 10);
    r.kind = RecordingKind::Session;
    r.end_reason = RecordingEndReason::HungUp;
    store.add_recording(r.clone()).await.unwrap();
    assert_eq!(store.recording("MA1", "r-1").await.unwrap(), Some(r));
}

#[tokio::test]
async fn another_accounts_recording_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .add_recording(recording("r-1", "call-1", "MA1", 10))
        .await
        .unwrap();
    assert_eq!(store.recording("MA2", "r-1").await.unwrap(), None);
    assert_eq!(store.recordings("MA2", all(None)).await.unwrap().total, 0);
    assert_eq!(store.delete_recording("MA2", "r-1").await.unwrap(), None);
    // Still there for its own account.
    assert!(store.recording("MA1", "r-1").await.unwrap().is_some());
}

#[tokio::test]
async fn the_first_write_of_a_recording_id_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let first = recording("r-1", "call-1", "MA1", 10);
    store.add_recording(first.clone()).await.unwrap();
    let mut again = first.clone();
    again.duration_ms = 1;
    store.add_recording(again).await.unwrap();
    assert_eq!(store.recording("MA1", "r-1").await.unwrap(), Some(first));
    assert_eq!(store.recordings("MA1", all(None)).await.unwrap().total, 1);
}

#[tokio::test]
async fn recordings_are_listed_newest_first_paged_and_filtered_by_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    for (i, call) in ["call-a", "call-b", "call-a", "call-b", "call-a"]
        .iter()
        .enumerate()
    {
        store
            .add_recording(recording(&format!("r-{i}"), call, "MA1", i as i64))
            .await
            .unwrap();
    }
    store
        .add_recording(recording("other", "call-x", "MA2", 100))
        .await
        .unwrap();
    let ids = |page: &store::RecordingPage| -> Vec<String> {
        page.recordings
            .iter()
            .map(|r| r.recording_id.clone())
            .collect()
    };
    let page = store
        .recordings(
            "MA1",
            RecordingQuery {
                call_uuid: None,
                limit: 2,
                offset: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(ids(&page), ["r-3", "r-2"]);
    let page = store.recordings("MA1", all(Some("call-a"))).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(ids(&page), ["r-4", "r-2", "r-0"]);
    let page = store.recordings("MA1", all(Some("call-x"))).await.unwrap();
    assert_eq!((page.total, page.recordings.len()), (0, 0));
}

#[tokio::test]
async fn deleting_a_recording_hands_its_row_back_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let r = recording("r-1", "call-1", "MA1", 10);
    store.add_recording(r.clone()).await.unwrap();
    assert_eq!(store.delete_recording("MA1", "r-1").await.unwrap(), Some(r));
    assert_eq!(store.delete_recording("MA1", "r-1").await.unwrap(), None);
    assert_eq!(store.recording("MA1", "r-1").await.unwrap(), None);
}

#[tokio::test]
async fn recordings_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let r = recording("r-1", "call-1", "MA1", 10);
    {
        let store = open(&dir).await;
        store.add_recording(r.clone()).await.unwrap();
        store.close().await;
    }
    let store = open(&dir).await;
    assert_eq!(store.recording("MA1", "r-1").await.unwrap(), Some(r));
}

#[tokio::test]
async fn a_version_1_database_is_migrated_with_its_calls_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vb.db");
    {
        // A database as version 1 left it: the first migration only.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!(
            "../crates/voxbridge/src/store/sqlite/migrations/0001_init.sql"
        ))
        .unwrap();
        conn.execute_batch(
            "INSERT INTO live_calls (call_uuid, account_id, direction, from_number, to_number, \
             caller_name, start_time, hangup_url, status_callback_url) \
             VALUES ('old-call', 'MA1', 'inbound', '1', '2', '', 0, '', ''); \
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = open(&dir).await;
    assert!(store.live_call("MA1", "old-call").await.unwrap().is_some());
    store
        .add_recording(recording("r-1", "old-call", "MA1", 10))
        .await
        .unwrap();
    assert_eq!(store.recordings("MA1", all(None)).await.unwrap().total, 1);
}
