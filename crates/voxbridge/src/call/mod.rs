//! The call: the sans-IO engine that decides what happens, the hangup rules, the
//! FreeSWITCH driver that carries the engine's actions to the switch, and the closing out
//! of calls a previous run left live. The final record itself is [`crate::record::call`].
//!
//! Layout:
//! - [`engine`] — the dispatcher: one state machine per call (inputs, actions, timers).
//! - [`element`] — one file per document element (`element/speak.rs`, `play.rs`,
//!   `wait.rs`, `dtmf.rs`, `preanswer.rs`, `hangup.rs`, `reject.rs`, `redirect.rs`) and
//!   the loop rule (`repeat.rs`). Dial, Gather and Record land here as new files.
//! - [`channel_op`] — the switch-neutral vocabulary the engine and a driver share.
//! - [`hangup`] — attribution of the final outcome (SPEC §4–§5.2).
//! - [`freeswitch`] — the FreeSWITCH driver; its `render` module is the only place that
//!   knows FreeSWITCH's application names and reply texts. Another switch is another
//!   driver next to it, written against [`channel_op`] and [`engine`].
//! - [`outbound`] — a `POST Call/` request, checked; the FreeSWITCH driver's
//!   `originate` module places it.
//! - [`reconcile`] — at start, calls the store still shows as live are decided (closed
//!   out, or left to the switch); the store only answers the queries.
//! - [`fleet`] — a node of a fleet on PostgreSQL: heartbeat, and the take-over of a dead
//!   node's calls (reconciled like a restart's) and callbacks (SPEC §14).
//! - [`switches`] — the configured FreeSWITCH switches (one or several `[[switch]]`) and
//!   which one to ask about a call: the one its live row names (SPEC §14).

pub mod asterisk;
pub mod channel_op;
pub mod element;
pub mod engine;
pub mod fleet;
pub mod freeswitch;
pub mod hangup;
pub mod live;
pub mod outbound;
pub mod postcall;
pub mod postcall_runner;
pub mod reconcile;
pub mod route;
pub mod switch_clock;
pub mod switches;
