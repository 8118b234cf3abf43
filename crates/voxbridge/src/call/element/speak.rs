//! `<Speak>`: say the text with the document's voice and language. It needs an answered
//! call unless inside PreAnswer, and loops ([`super::repeat`]).

use super::Begin;
use crate::call::channel_op::ChannelOp;
use crate::document::model::Speak;

pub fn begin(speak: Speak) -> Begin {
    Begin::Run(ChannelOp::Speak {
        voice: speak.voice,
        language: speak.language,
        text: speak.text,
    })
}

/// Loop count, and how the notes name a Speak.
pub fn repetition(speak: &Speak) -> (u32, String) {
    (speak.loop_count, "Speak".to_string())
}
