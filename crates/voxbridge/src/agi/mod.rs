//! The FastAGI protocol (Asterisk's `AGI(agi://host:port)`), and nothing else: no call
//! logic lives here. It is the twin of [`crate::esl`] for Asterisk: one TCP connection per
//! channel, opened by the switch.
//!
//! The protocol, as the bundled Asterisk 20.20.1 speaks it (`tests/fixtures/agi/`):
//! - the switch sends its environment, `agi_<name>: <value>` lines ending with an empty line;
//! - then the client sends one command per line (`ANSWER`, `EXEC Playback beep`,
//!   `GET VARIABLE X`) and the switch answers each with one line `200 result=<n>[ (<data>)]`
//!   (`510 …` unknown command, `511 …` dead channel, `520-…` multi-line usage ending with
//!   `520 End of proper usage.`); commands are strictly one at a time;
//! - at any moment the switch may send `HANGUP` (the channel hung up): before or after the
//!   reply of the command that was running. The channel stays until the client closes.
//!
//! Modules:
//! - [`line`]: byte stream → lines, with the line limit (a huge line is an error, never a
//!   buffer that grows without bound);
//! - [`message`]: one line from the switch → a typed [`message::Message`];
//! - [`env`]: the environment block ([`env::AgiEnv`]), with its own limits;
//! - [`command`]: client → switch commands, with argument quoting and no way to inject a
//!   second command (CR/LF are refused);
//! - [`connection`]: the per-connection actor (one command in flight, replies matched in
//!   order, `HANGUP` notices as events, bad input closes only this connection);
//! - [`listener`]: the FastAGI listener (allow-list, limit, one task per channel, graceful
//!   shutdown).

pub mod command;
pub mod connection;
pub mod env;
pub mod line;
pub mod listener;
pub mod message;

pub use command::{AgiCommand, CommandError};
pub use connection::{AgiConnection, AgiError, AgiEvent, AgiEvents};
pub use env::AgiEnv;
pub use line::{LineDecoder, LineError, MAX_LINE};
pub use listener::{AgiListener, AgiListenerOptions};
pub use message::{Message, Reply};
