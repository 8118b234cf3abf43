//! The call: the sans-IO engine that decides what happens, the hangup rules, the final
//! record, and the FreeSWITCH driver that carries the engine's actions to the switch.

pub mod engine;
pub mod hangup;
pub mod postcall;
pub mod record;
pub mod route;
pub mod freeswitch;
pub mod live;
