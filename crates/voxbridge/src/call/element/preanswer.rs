//! `<PreAnswer>`: open early media, then run the children (flattened after it as early
//! steps, which never trigger an answer). On an answered call there is nothing to
//! pre-answer: the marker is skipped and the children run as ordinary media.

use super::Begin;
use crate::call::channel_op::ChannelOp;

pub fn begin(answered: bool) -> Begin {
    if answered {
        Begin::Skip
    } else {
        Begin::Run(ChannelOp::PreAnswer)
    }
}
