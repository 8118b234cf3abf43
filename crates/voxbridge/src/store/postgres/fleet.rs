//! What nodes of a fleet share through the database besides calls and callbacks: each
//! node's heartbeat and address, who holds a live call, and taking over a dead node's work.
//!
//! A node is alive while `heartbeat_at + lease` is in the future (`[node] lease`, SPEC
//! §14: 15 s by default). A survivor that finds a node past its lease takes it over in one
//! transaction ([`PostgresStore::take_over`]): the dead node's row is deleted only if it
//! is *still* past its lease (so two survivors cannot both take it, and a node that came
//! back in the meantime keeps its calls), its live calls are moved to the survivor, and
//! its outbox claims are released so their rows are retried at once (same DeliveryID).
//! The survivor then reconciles the adopted calls like its own after a restart: it asks
//! the switch and closes out those that are gone, with their callbacks.
//!
//! Times are the nodes' own clocks, compared in the database by the survivor's clock: a
//! fleet is expected to run NTP; a skew well under the lease is harmless.

use super::codec::{nanos, store_error};
use super::{execute, query, PostgresStore};
use crate::store::StoreError;
use std::time::Duration;
use time::OffsetDateTime;

/// Another node as the database knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub node_id: String,
    /// How the other nodes reach its REST API (`[node] api_url`).
    pub api_url: String,
    pub heartbeat_at: OffsetDateTime,
    pub lease: Duration,
}

/// Where a live call is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOwner {
    pub node_id: String,
    /// The owner's `api_url`; `None` when the owner has no node row (it was taken over,
    /// or never started a heartbeat).
    pub api_url: Option<String>,
    /// The switch the call is on ('' when not recorded).
    pub switch_name: String,
}

/// What [`PostgresStore::take_over`] moved to this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TakeOver {
    /// Live calls now held by this node, to be reconciled.
    pub calls: Vec<String>,
    /// Outbox rows whose claims were released.
    pub released_claims: u64,
}

fn lease_nanos(lease: Duration) -> i64 {
    i64::try_from(lease.as_nanos()).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Writes (or renews) this node's heartbeat. Called every `lease / 3`.
    pub async fn heartbeat(
        &self,
        api_url: &str,
        lease: Duration,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (api_url, now, lease) = (api_url, nanos(now), lease_nanos(lease));
        self.write("heartbeat", || async move {
            let client = self.client().await?;
            execute(
                &client,
                "INSERT INTO nodes (node_id, api_url, started_at, heartbeat_at, lease_nanos) \
                 VALUES ($1, $2, $3, $3, $4) ON CONFLICT (node_id) DO UPDATE SET \
                 api_url = EXCLUDED.api_url, heartbeat_at = EXCLUDED.heartbeat_at, \
                 lease_nanos = EXCLUDED.lease_nanos",
                &[&self.node_id, &api_url, &now, &lease],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    /// Removes this node's row at a clean shutdown (its calls are over by then).
    pub async fn leave(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM nodes WHERE node_id = $1",
            &[&self.node_id],
        )
        .await
        .map(|_| ())
    }

    /// Every node with a heartbeat row, this one included.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        self.read("nodes", || async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT node_id, api_url, heartbeat_at, lease_nanos FROM nodes ORDER BY node_id",
                &[],
            )
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(NodeInfo {
                        node_id: r.try_get(0).map_err(store_error)?,
                        api_url: r.try_get(1).map_err(store_error)?,
                        heartbeat_at: super::codec::time_from(r.try_get(2).map_err(store_error)?)?,
                        lease: Duration::from_nanos(
                            u64::try_from(r.try_get::<_, i64>(3).map_err(store_error)?)
                                .unwrap_or(0),
                        ),
                    })
                })
                .collect()
        })
        .await
    }

    /// Nodes other than this one whose lease ran out before `now`, and nodes that hold
    /// live calls or outbox claims without any node row at all.
    pub async fn dead_nodes(&self, now: OffsetDateTime) -> Result<Vec<String>, StoreError> {
        let now = nanos(now);
        self.read("dead_nodes", || async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT node_id FROM nodes WHERE node_id <> $1 AND heartbeat_at + lease_nanos < $2 \
                 UNION \
                 SELECT DISTINCT l.node_id FROM live_calls l WHERE l.node_id <> $1 \
                   AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = l.node_id) \
                 ORDER BY 1",
                &[&self.node_id, &now],
            )
            .await?;
            rows.iter()
                .map(|r| r.try_get(0).map_err(store_error))
                .collect()
        })
        .await
    }

    /// Takes a dead node's work over (see the module docs). Returns nothing moved when
    /// the node renewed its heartbeat meanwhile or another survivor was first.
    pub async fn take_over(&self, dead: &str, now: OffsetDateTime) -> Result<TakeOver, StoreError> {
        let now = nanos(now);
        self.write("take_over", || async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(store_error)?;
            // Lock the node's row (if any) and check it is still dead.
            let row = tx
                .query_opt(
                    "SELECT heartbeat_at + lease_nanos < $2 FROM nodes WHERE node_id = $1 \
                     FOR UPDATE",
                    &[&dead, &now],
                )
                .await
                .map_err(store_error)?;
            match row {
                Some(r) if !r.try_get::<_, bool>(0).map_err(store_error)? => {
                    return Ok(TakeOver::default()); // alive again
                }
                Some(_) => {
                    tx.execute("DELETE FROM nodes WHERE node_id = $1", &[&dead])
                        .await
                        .map_err(store_error)?;
                }
                None => {}
            }
            let calls = tx
                .query(
                    "UPDATE live_calls SET node_id = $2 WHERE node_id = $1 RETURNING call_uuid",
                    &[&dead, &self.node_id],
                )
                .await
                .map_err(store_error)?
                .iter()
                .map(|r| r.try_get(0).map_err(store_error))
                .collect::<Result<Vec<String>, _>>()?;
            let released_claims = tx
                .execute(
                    "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL, \
                     next_attempt_at = LEAST(next_attempt_at, $2) \
                     WHERE status = 'pending' AND claimed_by = $1",
                    &[&dead, &now],
                )
                .await
                .map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            Ok(TakeOver {
                calls,
                released_claims,
            })
        })
        .await
    }

    /// Which node holds the account's live call, and how to reach it.
    pub async fn owner_of(
        &self,
        account_id: &str,
        call_uuid: &str,
    ) -> Result<Option<CallOwner>, StoreError> {
        self.read("owner_of", || async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT l.node_id, n.api_url, l.switch_name FROM live_calls l \
                 LEFT JOIN nodes n ON n.node_id = l.node_id \
                 WHERE l.call_uuid = $1 AND l.account_id = $2",
                &[&call_uuid, &account_id],
            )
            .await?;
            rows.first()
                .map(|r| {
                    Ok(CallOwner {
                        node_id: r.try_get(0).map_err(store_error)?,
                        api_url: r.try_get(1).map_err(store_error)?,
                        switch_name: r.try_get(2).map_err(store_error)?,
                    })
                })
                .transpose()
        })
        .await
    }

    /// Records which switch a live call is on (from the connect reply).
    pub async fn set_call_switch(&self, call_uuid: &str, switch: &str) -> Result<(), StoreError> {
        self.write("set_call_switch", || async move {
            let client = self.client().await?;
            execute(
                &client,
                "UPDATE live_calls SET switch_name = $1 WHERE call_uuid = $2",
                &[&switch, &call_uuid],
            )
            .await
            .map(|_| ())
        })
        .await
    }
}
