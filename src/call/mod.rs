//! The call: the sans-IO engine that decides what happens, the hangup rules, the final
//! record, and the FreeSWITCH driver that carries the engine's actions to the switch.

pub mod channel_op;
pub mod engine;
pub mod freeswitch;
pub mod hangup;
pub mod live;
pub mod postcall;
pub mod postcall_runner;
pub mod record;
pub mod route;
pub mod switch_clock;
