//! `<Play>`: play the media URL as the document gave it (the driver maps it for its
//! switch). It needs an answered call unless inside PreAnswer, and loops
//! ([`super::repeat`]).

use super::Begin;
use crate::call::channel_op::ChannelOp;
use crate::document::model::Play;

pub fn begin(play: Play) -> Begin {
    Begin::Run(ChannelOp::Play { url: play.url })
}

/// Loop count, and how the notes name a Play (with its URL).
pub fn repetition(play: &Play) -> (u32, String) {
    (play.loop_count, format!("Play {}", play.url))
}
