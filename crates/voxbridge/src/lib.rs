//! voxbridge: a call-control server for FreeSWITCH.
//!
//! The layout follows the architecture (SPEC §1). Modules are stacked in floors, and a
//! module uses only modules on a lower floor (never one beside or above it), so the call
//! path can be read, tested and replaced from the bottom up. `tests/layers.rs` checks
//! every `crate::…` path in `src/` against this list in `cargo test`:
//!
//! 0. [`cause`]: the switch's hangup-cause tables; [`http_client`]: how every HTTP
//!    client is built (rustls on `ring`); [`listen`]: the accept loop both switch
//!    listeners share (allow-list, connection limit, drain on shutdown).
//! 1. [`config`]: the TOML configuration and its rules; [`document`]: Answer XML and
//!    VoxML parsed into one instruction model.
//! 2. [`esl`]: the Event Socket protocol only (frames, events, connections), no call
//!    logic; [`agi`]: its Asterisk twin, the FastAGI protocol only; [`ami`]: the Asterisk
//!    Manager Interface protocol only (the out-of-band session to Asterisk); [`record`]: the
//!    call record (CDR, direction, hangup source) and the outbox's callback rows — what the store keeps and everything above reports.
//! 3. [`metrics`]: the Prometheus counters (fed by the ESL counters and the outbox).
//! 4. [`store`]: live calls, CDRs and the callback outbox (SQLite, or PostgreSQL shared
//!    by a fleet of nodes); it persists records, it does not decide them.
//! 5. [`app`]: HTTP to the customer's application (fetches, signing, rendering callbacks
//!    from a record, outbox delivery).
//! 6. [`call`]: the sans-IO call engine and hangup rules, the FreeSWITCH driver around
//!    it, and reconciliation of calls a previous run left live.
//! 7. [`api`]: the Vobiz-compatible REST API, `/metrics`, `/health`.
//! 8. [`server`]: `voxbridge serve`, everything above wired together.
//! 9. [`cli`]: the commands of `main.rs` that are more than a call (`voxbridge check`).
//!
//! Outside this library, in the same workspace: the FreeSWITCH simulator (crate
//! `voxbridge-sim`, `crates/voxbridge-sim/`), which plays the switch side of ESL for the
//! tests, the benchmarks and the demo using only [`esl`] and [`cause`] from here; and the
//! `voxbridge` binary with `voxbridge demo` (the root package, `src/`), the one place
//! that links both. The call path cannot depend on the simulator: this library does not.

pub mod agi;
pub mod ami;
pub mod api;
pub mod app;
pub mod call;
pub mod cause;
pub mod cli;
pub mod config;
pub mod document;
pub mod esl;
pub mod http_client;
pub mod listen;
pub mod metrics;
pub mod record;
pub mod server;
pub mod store;
