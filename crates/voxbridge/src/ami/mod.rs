//! The Asterisk Manager Interface (AMI) protocol, and nothing else: no call logic lives
//! here. It sits beside [`crate::agi`] on the protocol floor: FastAGI is the per-channel
//! socket Asterisk opens to voxbridge; AMI is the one session voxbridge opens to Asterisk
//! for what the FastAGI socket cannot do while it is blocked in an application
//! (`Dial()`, `RECORD FILE`): act on a channel (`StopMixMonitor`, `MixMonitor`,
//! `PlayDTMF`) and hear its events (`DTMFEnd`, `DialBegin`, `DialEnd`).
//!
//! The protocol, as the bundled Asterisk 20.20.1 speaks it (`tests/fixtures/ami/`):
//! - on connect Asterisk sends one banner line, `Asterisk Call Manager/9.0.0`;
//! - then messages both ways: `Key: Value` lines ending with `\r\n`, a blank line ending
//!   the message. The client sends `Action: <name>` messages with an `ActionID`; Asterisk
//!   answers each with `Response: Success|Error` carrying the same `ActionID` (and
//!   `Message:`, or `Output:` lines for `Command`), and sends `Event: <name>` messages
//!   whenever the session's event mask and filters let them through.
//!
//! Modules: [`frame`] (the codec, with its limits, and actions with no way to inject a
//! second field), [`client`] (login, ActionID correlation, event filter, routing of events
//! to calls, reconnect with backoff).

pub mod client;
pub mod frame;

pub use client::{Ami, AmiError, AmiOptions, ChannelEvents};
pub use frame::{Action, ActionError, Decoder, Frame, FrameError, Message};
