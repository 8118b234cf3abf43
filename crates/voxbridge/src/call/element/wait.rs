//! `<Wait>`: silence for its length. It never answers the call.

use super::Begin;
use crate::call::channel_op::ChannelOp;
use std::time::Duration;

pub fn begin(secs: u32) -> Begin {
    Begin::Run(ChannelOp::Wait {
        duration: Duration::from_secs(u64::from(secs)),
    })
}
