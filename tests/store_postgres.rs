//! What only the PostgreSQL store does: several nodes on one database (SPEC §14). Claims
//! taken by two nodes at once never overlap, a node's restart releases only its own
//! claims, an expired lease is retried by another node with the same DeliveryID, live
//! rows name their node, a dead node is taken over once, and migrations are safe to run
//! from several nodes at once. Each test skips (loudly) without PostgreSQL binaries.

use crate::store_support::{live, now, record, targets, Db};
use std::collections::HashSet;
use std::time::Duration;
use time::macros::datetime;
use time::OffsetDateTime;
use voxbridge::app::callbacks;
use voxbridge::store::{self, ClaimRequest, FinishOutcome, StoreErrorKind};

async fn pg() -> Option<Db> {
    let db = Db::postgres().await;
    if db.is_none() {
        eprintln!("SKIPPED: no PostgreSQL");
    }
    db
}

fn claim(at: OffsetDateTime, limit: usize, lease: Duration) -> ClaimRequest {
    ClaimRequest {
        now: at,
        limit,
        claim_until: at + lease,
        receiver_room: vec![],
        default_receiver_room: limit,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claiming_at_once_never_get_the_same_row() {
    let Some(db) = pg().await else { return };
    let a = db.open_as("node-a").await;
    let b = db.open_as("node-b").await;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    const CALLS: usize = 300;
    for i in 0..CALLS {
        let rec = record(&format!("c{i}"), "MA1", t0);
        let cbs = callbacks::for_call(&rec, &targets());
        a.finish_call(rec, cbs).await.unwrap();
    }
    // Both nodes claim small batches concurrently until the backlog is empty.
    let at = now() + Duration::from_secs(1);
    let mut tasks = Vec::new();
    for node in [a.clone(), b.clone(), a.clone(), b.clone()] {
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let rows = node
                    .claim_due_callbacks(claim(at, 7, Duration::from_secs(600)))
                    .await
                    .unwrap()
                    .rows;
                if rows.is_empty() {
                    return got;
                }
                got.extend(rows.into_iter().map(|r| r.delivery_id));
            }
        }));
    }
    let mut all = Vec::new();
    let mut per_task = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        per_task.push(got.len());
        all.extend(got);
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), CALLS * 2, "every row claimed: {per_task:?}");
    assert_eq!(unique.len(), all.len(), "no row handed to two claimers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restart_releases_its_own_claims_only_and_leases_pass_to_any_node() {
    let Some(db) = pg().await else { return };
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let lease = Duration::from_secs(60);
    let (at, a_ids, b_ids) = {
        let a = db.open_as("node-a").await;
        let b = db.open_as("node-b").await;
        for i in 0..4 {
            let rec = record(&format!("r{i}"), "MA1", t0);
            let cb = callbacks::hangup_callback(&rec, "http://127.0.0.1:9/h");
            a.finish_call(rec, vec![cb]).await.unwrap();
        }
        let at = now() + Duration::from_millis(10);
        let a_ids: Vec<String> = a
            .claim_due_callbacks(claim(at, 2, lease))
            .await
            .unwrap()
            .rows
            .into_iter()
            .map(|r| r.delivery_id)
            .collect();
        let b_ids: Vec<String> = b
            .claim_due_callbacks(claim(at, 2, lease))
            .await
            .unwrap()
            .rows
            .into_iter()
            .map(|r| r.delivery_id)
            .collect();
        assert_eq!((a_ids.len(), b_ids.len()), (2, 2));
        (at, a_ids, b_ids)
        // Both "die" holding their claims.
    };
    // Node A restarts: its own two rows are due again at once, B's stay leased.
    let a = db.open_as("node-a").await;
    let again: HashSet<String> = a
        .claim_due_callbacks(claim(now() + Duration::from_millis(10), 10, lease * 10))
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.delivery_id)
        .collect();
    assert_eq!(again, a_ids.iter().cloned().collect::<HashSet<_>>());
    // B's lease runs out: node A (any node) retries them, same DeliveryIDs.
    let later = at + lease + Duration::from_secs(1);
    let taken: HashSet<String> = a
        .claim_due_callbacks(claim(later, 10, lease))
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.delivery_id)
        .collect();
    assert_eq!(taken, b_ids.iter().cloned().collect::<HashSet<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_rows_name_their_node_and_reconciliation_sees_only_its_own() {
    let Some(db) = pg().await else { return };
    let url = db.url();
    let a = store::open_postgres(&url, "node-a").await.unwrap();
    let b = store::open_postgres(&url, "node-b").await.unwrap();
    use voxbridge::store::Store;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    a.call_started(live("on-a", "MA1", t0)).await.unwrap();
    b.call_started(live("on-b", "MA1", t0 + Duration::from_secs(1)))
        .await
        .unwrap();
    a.heartbeat("http://127.0.0.1:1001", Duration::from_secs(15), now())
        .await
        .unwrap();
    b.set_call_switch("on-b", "fs-2").await.unwrap();
    // The REST view is fleet-wide: either node lists and shows both calls.
    for node in [&a, &b] {
        assert_eq!(node.live_call_uuids("MA1").await.unwrap(), ["on-a", "on-b"]);
        assert!(node.live_call("MA1", "on-a").await.unwrap().is_some());
    }
    // Reconciliation after a restart only ever sees the node's own calls.
    let own: Vec<String> = a
        .all_live_calls()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call_uuid)
        .collect();
    assert_eq!(own, ["on-a"]);
    let owner = b.owner_of("MA1", "on-a").await.unwrap().unwrap();
    assert_eq!(owner.node_id, "node-a");
    assert_eq!(owner.api_url.as_deref(), Some("http://127.0.0.1:1001"));
    assert_eq!(
        owner.switch_name, "fs-test",
        "the switch of the live row as started"
    );
    let owner = a.owner_of("MA1", "on-b").await.unwrap().unwrap();
    assert_eq!((owner.node_id.as_str(), owner.api_url), ("node-b", None));
    assert_eq!(owner.switch_name, "fs-2");
    assert_eq!(b.owner_of("MA2", "on-a").await.unwrap(), None, "scoped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_taken_over_once_with_its_calls_and_claims() {
    let Some(db) = pg().await else { return };
    let url = db.url();
    let a = store::open_postgres(&url, "node-a").await.unwrap();
    let b = store::open_postgres(&url, "node-b").await.unwrap();
    let c = store::open_postgres(&url, "node-c").await.unwrap();
    use voxbridge::store::Store;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let lease = Duration::from_secs(15);
    let beat = now();
    for (node, api) in [(&a, "http://a"), (&b, "http://b"), (&c, "http://c")] {
        node.heartbeat(api, lease, beat).await.unwrap();
    }
    a.call_started(live("a-call", "MA1", t0)).await.unwrap();
    let rec = record("a-done", "MA1", t0);
    let cb = callbacks::hangup_callback(&rec, "http://127.0.0.1:9/h");
    let id = cb.delivery_id.clone();
    assert_eq!(
        a.finish_call(rec, vec![cb]).await.unwrap(),
        FinishOutcome::Finished
    );
    let claimed = a
        .claim_due_callbacks(claim(
            now() + Duration::from_millis(10),
            10,
            Duration::from_secs(3600),
        ))
        .await
        .unwrap();
    assert_eq!(claimed.rows.len(), 1);

    // Within the lease nobody is dead.
    assert!(b
        .dead_nodes(beat + Duration::from_secs(10))
        .await
        .unwrap()
        .is_empty());
    // B and C keep beating; A stops.
    let later = beat + lease + Duration::from_secs(1);
    b.heartbeat("http://b", lease, later).await.unwrap();
    c.heartbeat("http://c", lease, later).await.unwrap();
    assert_eq!(b.dead_nodes(later).await.unwrap(), ["node-a"]);
    assert_eq!(c.dead_nodes(later).await.unwrap(), ["node-a"]);

    // Two survivors race: exactly one gets A's work.
    let (tb, tc) = tokio::join!(b.take_over("node-a", later), c.take_over("node-a", later));
    let (tb, tc) = (tb.unwrap(), tc.unwrap());
    let (winner, loser) = if tb.calls.is_empty() {
        (tc, tb)
    } else {
        (tb, tc)
    };
    assert_eq!(winner.calls, ["a-call"]);
    assert_eq!(winner.released_claims, 1);
    assert!(loser.calls.is_empty() && loser.released_claims == 0);
    assert!(b.dead_nodes(later).await.unwrap().is_empty(), "A is gone");
    // The released row is due again at once, for any node, with the same DeliveryID.
    let retried = c
        .claim_due_callbacks(claim(later, 10, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(retried.rows.len(), 1);
    assert_eq!(retried.rows[0].delivery_id, id);

    // A node that came back before the take-over keeps its calls.
    c.call_started(live("c-call", "MA1", t0)).await.unwrap();
    c.heartbeat("http://c", lease, later + lease).await.unwrap();
    let none = b.take_over("node-c", later + lease).await.unwrap();
    assert!(none.calls.is_empty());
    assert_eq!(
        c.owner_of("MA1", "c-call").await.unwrap().unwrap().node_id,
        "node-c"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_migrate_once() {
    let Some(db) = pg().await else { return };
    let url = db.url();
    let mut opens = Vec::new();
    for i in 0..4 {
        let url = url.clone();
        opens.push(tokio::spawn(async move {
            store::open_as_node(&url, &format!("n{i}")).await
        }));
    }
    for o in opens {
        o.await.unwrap().expect("every node opens");
    }
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let versions: i64 = client
        .query_one("SELECT COUNT(*) FROM voxbridge_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        versions,
        i64::from(voxbridge::store::postgres::SCHEMA_VERSION),
        "each migration step recorded once"
    );
    // A database from a newer build is refused, naming the version.
    client
        .execute("INSERT INTO voxbridge_schema (version) VALUES (99)", &[])
        .await
        .unwrap();
    let err = match store::open(&url).await {
        Ok(_) => panic!("opened a newer schema"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn bad_postgres_urls_are_refused_clearly() {
    for url in [
        "postgres://127.0.0.1:1/x?sslmode=sometimes",
        "postgres://127.0.0.1:1/x?sslmode=require&sslcert=/client.pem",
        "postgres://127.0.0.1:1/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        "postgres://u@h/db?nonsense_option=1",
    ] {
        let err = match store::open(url).await {
            Ok(_) => panic!("{url} opened"),
            Err(e) => e,
        };
        assert_eq!(err.kind, StoreErrorKind::Invalid, "{url}: {err}");
        assert!(err.to_string().contains("store.url"), "{err}");
    }
    // Nothing listening (the port stays bound, never listening, so it refuses): a
    // transient error naming the database, not a hang or a panic.
    let dead = tokio::net::TcpSocket::new_v4().unwrap();
    dead.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = dead.local_addr().unwrap().port();
    let err = match store::open(&format!("postgres://vb@127.0.0.1:{port}/vb")).await {
        Ok(_) => panic!("opened a database that is not there"),
        Err(e) => e,
    };
    assert_eq!(err.kind, StoreErrorKind::Io, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

/// TLS to PostgreSQL (issue 15): the throwaway cluster runs with `ssl=on` and a
/// certificate for `localhost`/`127.0.0.1` signed by a CA made for the run
/// (`pg_support`). `verify-full` with that CA connects — and the server sees every
/// connection of the store encrypted —, by address or by name; `require` encrypts
/// without checking; `verify-full` against the system's CAs (which never signed the test
/// certificate) is refused, naming the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_postgres_is_encrypted_and_verified_when_asked() {
    let Some((url, ca)) = crate::pg_support::fresh_database_with_tls().await else {
        return;
    };
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display());
    let store = store::open_as_node(&verified, "tls-node").await.unwrap();
    assert!(store.describe().contains("TLS"), "{}", store.describe());
    store
        .call_started(live("tls-1", "MA1", now()))
        .await
        .unwrap();
    assert!(store.live_call("MA1", "tls-1").await.unwrap().is_some());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'voxbridge tls-node'",
            &[],
        )
        .await
        .unwrap();
    let (encrypted, all): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        all > 0 && encrypted == all,
        "{encrypted} of {all} encrypted"
    );
    drop(client);
    let _ = conn.await;
    store.close().await;
    drop(store);

    let by_name = verified.replace("127.0.0.1", "localhost");
    let store = store::open_as_node(&by_name, "tls-node").await.unwrap();
    assert!(store.live_call("MA1", "tls-1").await.unwrap().is_some());
    store.close().await;
    drop(store);

    let unchecked = format!("{url}?sslmode=require");
    let store = store::open_as_node(&unchecked, "tls-node").await.unwrap();
    assert!(store.live_call("MA1", "tls-1").await.unwrap().is_some());
    store.close().await;
    drop(store);

    let untrusted = format!("{url}?sslmode=verify-full&sslrootcert=system");
    let err = match store::open_as_node(&untrusted, "tls-node").await {
        Ok(_) => panic!("a certificate no trusted CA signed was accepted"),
        Err(e) => e,
    };
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}
