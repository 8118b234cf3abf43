//! A node's duties in a fleet on PostgreSQL (SPEC §14): keep its heartbeat, and take over
//! the work of nodes that stopped keeping theirs.
//!
//! Every `lease / 3` the node renews its row in `nodes` (so two missed beats are still
//! within the lease) and looks for dead nodes: a node whose heartbeat is older than its
//! lease, or one that holds live calls without any node row. For each, in one
//! transaction ([`PostgresStore::take_over`]), the dead node's row goes, its live calls
//! become this node's and its outbox claims are released — so the outbox workers of the
//! fleet retry those callbacks at once, each with its DeliveryID. The adopted calls are
//! then reconciled like a restart's: the switch is asked `uuid_exists` about each (see
//! [`reconcile::reconcile_adopted`]) and every call it no longer has is closed out — CDR with HangupSource `Unknown`, hangup and status callbacks enqueued.
//! Calls the switch still has stay live on this node and are checked again by the sweep
//! until the switch ends them.
//!
//! Without a `[switch]` there is nobody to ask: the adopted calls are closed out at once
//! (their controlling socket died with their node, so voxbridge controls them no more).
//!
//! Honest limits: a node cut off from the database but still running is declared dead
//! after its lease like a crashed one; its calls are then closed out by a survivor
//! while it may still be running them. When it reconnects, its own final records lose
//! to the survivor's (first record wins) — the callbacks still go out once per
//! DeliveryID. Clocks are the nodes' own (see [`crate::store::postgres::fleet`]).

use crate::call::reconcile::{self, ReconcileReport};
use crate::call::switches::Switches;
use crate::store::postgres::PostgresStore;
use crate::store::{Store, StoreError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;

/// What a node needs to do its duties.
pub struct NodeDuties {
    pub store: Arc<PostgresStore>,
    /// How the other nodes reach this node's REST API.
    pub api_url: String,
    pub lease: Duration,
    /// The switches to ask about adopted calls (each call asked of the switch its live
    /// row names); none configured: nobody to ask.
    pub switches: Switches,
    /// Adopted calls the switch still had: checked again at every beat.
    pub still_up: std::sync::Mutex<HashSet<String>>,
}

impl NodeDuties {
    /// Beats once (so the node is known before it serves) and then runs until
    /// `shutdown`; at shutdown the node's row is removed (a clean leave).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let every = (self.lease / 3).max(Duration::from_millis(100));
        loop {
            self.tick(OffsetDateTime::now_utc()).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => break,
            }
        }
        if let Err(e) = self.store.leave().await {
            tracing::warn!(error = %e, "could not remove this node's heartbeat row");
        }
    }

    /// One heartbeat and one look for dead nodes.
    pub async fn tick(&self, now: OffsetDateTime) {
        if let Err(e) = self.store.heartbeat(&self.api_url, self.lease, now).await {
            // Logged by the store; without a beat the others will take over after the
            // lease, which is the right outcome if this lasts.
            tracing::error!(error = %e, "HEARTBEAT NOT WRITTEN: other nodes take this node's calls over after node.lease");
            return;
        }
        let dead = match self.store.dead_nodes(now).await {
            Ok(dead) => dead,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for dead nodes; trying again next beat");
                return;
            }
        };
        for node in dead {
            if let Err(e) = self.take_over(&node, now).await {
                tracing::error!(node = %node, error = %e, "taking over a dead node failed; trying again next beat");
            }
        }
        self.sweep(now).await;
    }

    /// Closes out the adopted calls left up at take-over once the switch ends them
    /// (`uuid_exists` again, for those calls only).
    async fn sweep(&self, now: OffsetDateTime) {
        let (Some(probe), still_up) = (self.probe(), self.still_up_now()) else {
            return;
        };
        if still_up.is_empty() {
            return;
        }
        let store: &dyn Store = self.store.as_ref();
        match reconcile::reconcile_adopted(store, Some(probe), &still_up, now).await {
            Ok(report) => {
                if !report.closed.is_empty() {
                    tracing::warn!(
                        closed = report.closed.len(),
                        left = report.still_up.len(),
                        "adopted calls ended on the switch; closed out"
                    );
                }
                self.set_still_up(report.still_up)
            }
            Err(e) => {
                tracing::warn!(error = %e, "sweep of adopted calls failed; retrying next beat")
            }
        }
    }

    fn probe(&self) -> Option<Arc<dyn reconcile::UuidProbe>> {
        (!self.switches.is_empty())
            .then(|| Arc::new(self.switches.clone()) as Arc<dyn reconcile::UuidProbe>)
    }

    fn still_up_now(&self) -> HashSet<String> {
        self.still_up
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_still_up(&self, calls: Vec<String>) {
        *self.still_up.lock().unwrap_or_else(|p| p.into_inner()) = calls.into_iter().collect();
    }

    /// Takes `node`'s work over and closes out its calls the switch no longer has.
    pub async fn take_over(
        &self,
        node: &str,
        now: OffsetDateTime,
    ) -> Result<ReconcileReport, StoreError> {
        let taken = self.store.take_over(node, now).await?;
        if taken.calls.is_empty() && taken.released_claims == 0 {
            return Ok(ReconcileReport::default());
        }
        tracing::warn!(
            dead_node = %node,
            calls = taken.calls.len(),
            released_callbacks = taken.released_claims,
            "NODE DEAD (no heartbeat within node.lease): its calls and callbacks are now this node's"
        );
        let adopted: HashSet<String> = taken.calls.into_iter().collect();
        let store: &dyn Store = self.store.as_ref();
        let report = reconcile::reconcile_adopted(store, self.probe(), &adopted, now).await?;
        tracing::warn!(
            dead_node = %node,
            closed = report.closed.len(),
            already_finished = report.already_finished.len(),
            still_up = report.still_up.len(),
            "dead node's calls reconciled"
        );
        if !report.still_up.is_empty() {
            let mut still_up = self.still_up_now();
            still_up.extend(report.still_up.iter().cloned());
            self.set_still_up(still_up.into_iter().collect());
        }
        Ok(report)
    }
}
