//! The FreeSWITCH Event Socket protocol, and nothing else: no call logic lives here.
//!
//! - [`frame`]: header block + `Content-Length` body, both directions, with limits;
//! - [`urlcode`]: the switch's URL encoding of event header values;
//! - [`event`]: switch→client frames decoded into typed messages, and the switch's own
//!   event serializers (used by the simulator);
//! - [`command`]: client→switch commands, with argument safety (no CR/LF in a header);
//! - [`connection`]: the per-socket actor (reply correlation, event stream, endings);
//! - [`outbound`]: one controlled channel (`socket … async full`);
//! - [`listener`]: the outbound-socket listener (allow-list, limit, one task per call);
//! - [`inbound`]: the client for the switch's own ESL port, with reconnect;
//! - [`counters`]: what happened, for metrics.

pub mod command;
pub mod connection;
pub mod counters;
pub mod event;
pub mod frame;
pub mod inbound;
pub mod listener;
pub mod outbound;
pub mod urlcode;

pub use command::{Command, CommandError, Execute, Linger};
pub use connection::{CloseReason, EslError, EventStream, Response, SocketEvent};
pub use counters::{EslCounters, EslCountersSnapshot};
pub use event::{
    ApiResponse, ChannelData, DisconnectNotice, Disposition, Event, EventFormat, Message, Reply,
    ReplyKind,
};
pub use frame::{Frame, FrameDecoder, FrameError, Headers};
pub use inbound::{ClientEvent, InboundClient, InboundOptions, InboundSession};
pub use listener::{ListenerOptions, OutboundListener};
pub use outbound::{OutboundConnection, OutboundOptions};
