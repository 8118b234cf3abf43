//! The media of an originated call's caller leg, counted rather than carried: how many
//! RTP media packets it sent and received (`rtp_audio_{out,in}_media_packet_count` on
//! its CHANNEL_HANGUP_COMPLETE, 20 ms each).
//!
//! What the real switch showed (FreeSWITCH 1.10.12, a parked caller leg to 7005
//! `echo` for 3 s): silent, it received **0** media packets; playing a tone into the
//! call (`uuid_broadcast <A> tone_stream://… aleg`) it sent 140 and received 137 back.
//! To 7002 (endless tone) it received 149 and sent 0. So a count is evidence of media.
//!
//! Modelled: the caller's own audio from `uuid_broadcast` on its leg until it ends, and
//! what a bridged callee sends it ([`CalleeMedia`]). Not modelled: what voxbridge plays
//! to the caller itself (`playback`, `speak`), which the real switch would also count.

use crate::script::CalleeMedia;

/// One RTP packet of 20 ms.
const PACKET_US: i64 = 20_000;

#[derive(Debug, Default)]
pub(crate) struct CallerMedia {
    /// The caller sends audio from this time on.
    talks_since_us: Option<i64>,
    /// The running bridge: since when, and what its callee sends.
    bridge: Option<(i64, CalleeMedia)>,
    /// Audio received from bridges already over.
    heard_us: i64,
}

impl CallerMedia {
    pub fn caller_talks(&mut self, now_us: i64) {
        self.talks_since_us.get_or_insert(now_us);
    }

    pub fn bridged(&mut self, now_us: i64, media: CalleeMedia) {
        self.bridge = Some((now_us, media));
    }

    pub fn unbridged(&mut self, now_us: i64) {
        let Some((since, media)) = self.bridge.take() else {
            return;
        };
        let from = match media {
            CalleeMedia::Tone => since,
            CalleeMedia::Echo => self.talks_since_us.map_or(now_us, |t| t.max(since)),
        };
        self.heard_us += (now_us - from).max(0);
    }

    /// (received, sent) media packets when the caller's leg ends at `hangup_us`.
    pub fn packets(&mut self, hangup_us: i64) -> (u64, u64) {
        self.unbridged(hangup_us);
        let sent_us = self.talks_since_us.map_or(0, |t| (hangup_us - t).max(0));
        (
            (self.heard_us / PACKET_US) as u64,
            (sent_us / PACKET_US) as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_returns_only_what_the_caller_sends_while_bridged() {
        let mut m = CallerMedia::default();
        m.bridged(1_000_000, CalleeMedia::Echo);
        m.caller_talks(2_000_000);
        m.unbridged(3_000_000);
        assert_eq!(m.packets(4_000_000), (50, 100));
    }

    #[test]
    fn a_silent_caller_hears_nothing_from_an_echo_but_a_tone_from_a_tone() {
        let mut echo = CallerMedia::default();
        echo.bridged(0, CalleeMedia::Echo);
        assert_eq!(echo.packets(2_000_000), (0, 0));
        let mut tone = CallerMedia::default();
        tone.bridged(0, CalleeMedia::Tone);
        assert_eq!(tone.packets(2_000_000), (100, 0));
    }
}
