//! The FreeSWITCH Event Socket protocol, and nothing else: no call logic lives here.
//!
//! - [`frame`]: header block + `Content-Length` body, both directions, with limits;
//! - [`urlcode`]: the switch's URL encoding of event header values.

pub mod frame;
pub mod urlcode;
