//! Frames captured from the real switch, embedded in the library and used as templates
//! for what a simulated channel carries: its initial channel variables (names, order
//! and realistic values), the media variables an answer adds, and the RTP statistics of
//! the final CDR. The simulator substitutes the call's own UUID, numbers and times.
//!
//! Each file in `src/sim/templates/` is one frame copied byte for byte from a
//! transcript in `tests/fixtures/esl/` (a test checks this):
//!
//! | file | transcript | frame |
//! |---|---|---|
//! | `connect-ringing.txt` | (a) `a-unanswered-call-rejected-plain.txt` | the `connect` reply (ext 7001, ringing) |
//! | `connect-answered.txt` | (g) `g-no-linger-hangup.txt` | the `connect` reply (ext 7000, answered by the dialplan) |
//! | `progress-media.txt` | (b) `b-answer-playback-sched-hangup-plain.txt` | CHANNEL_PROGRESS_MEDIA of `answer` |
//! | `answer.txt` | (b) | CHANNEL_ANSWER of `answer` |
//! | `hangup-complete-answered.txt` | (b) | CHANNEL_HANGUP_COMPLETE of an answered call |

use bytes::BytesMut;
use std::sync::OnceLock;
use voxbridge::esl::frame::FrameDecoder;
use voxbridge::esl::urlcode;

pub(crate) const CONNECT_RINGING: &[u8] = include_bytes!("templates/connect-ringing.txt");
pub(crate) const CONNECT_ANSWERED: &[u8] = include_bytes!("templates/connect-answered.txt");
pub(crate) const PROGRESS_MEDIA: &[u8] = include_bytes!("templates/progress-media.txt");
pub(crate) const ANSWER: &[u8] = include_bytes!("templates/answer.txt");
pub(crate) const HANGUP_COMPLETE_ANSWERED: &[u8] =
    include_bytes!("templates/hangup-complete-answered.txt");

/// Ordered `(name, decoded value)` pairs.
pub type Pairs = Vec<(String, String)>;

/// A `connect` reply template and the call-specific tokens in it.
#[derive(Debug)]
pub struct ConnectTemplate {
    /// `variable_*` headers, prefix stripped, in order.
    pub vars: Pairs,
    pub uuid: String,
    pub destination: String,
    pub caller_number: String,
    pub caller_name: String,
}

#[derive(Debug)]
pub struct Templates {
    pub ringing: ConnectTemplate,
    pub answered: ConnectTemplate,
    /// Variables set when media comes up (183/200), in the order the switch sets them.
    pub media_vars: Pairs,
    /// Variables set when the call is answered (the local SDP).
    pub answer_vars: Pairs,
    /// RTP statistics appended to the CDR of a call that had media.
    pub rtp_stats: Pairs,
}

/// The templates, parsed once.
pub fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| {
        // Embedded data checked by the tests below; a failure here is a build defect.
        parse_all().expect("embedded simulator templates are valid ESL frames")
    })
}

fn parse_all() -> Result<Templates, String> {
    let ringing = connect_template(CONNECT_RINGING)?;
    let answered = connect_template(CONNECT_ANSWERED)?;
    let media = event_headers(PROGRESS_MEDIA)?;
    let answer = event_headers(ANSWER)?;
    let complete = event_headers(HANGUP_COMPLETE_ANSWERED)?;
    Ok(Templates {
        ringing,
        answered,
        media_vars: vars_after(&media, "current_application")?,
        answer_vars: vars_after(&answer, "endpoint_disposition")?,
        rtp_stats: vars_after(&complete, "sip_hangup_disposition")?,
    })
}

/// Decoded headers of a header block (no outer frame).
fn block_headers(bytes: &[u8]) -> Result<Pairs, String> {
    let mut buf = BytesMut::from(bytes);
    let frame = FrameDecoder::default()
        .decode(&mut buf)
        .map_err(|e| e.to_string())?
        .ok_or("incomplete header block")?;
    Ok(frame
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), urlcode::decode(v)))
        .collect())
}

/// Decoded inner headers of a `text/event-plain` frame.
fn event_headers(bytes: &[u8]) -> Result<Pairs, String> {
    let mut buf = BytesMut::from(bytes);
    let outer = FrameDecoder::default()
        .decode(&mut buf)
        .map_err(|e| e.to_string())?
        .ok_or("incomplete event frame")?;
    block_headers(outer.body.as_deref().ok_or("event without body")?)
}

fn get<'a>(pairs: &'a Pairs, name: &str) -> Result<&'a str, String> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| format!("template lacks {name}"))
}

fn vars(pairs: &Pairs) -> Pairs {
    pairs
        .iter()
        .filter_map(|(n, v)| {
            n.strip_prefix("variable_")
                .map(|n| (n.to_string(), v.clone()))
        })
        .collect()
}

/// The variables that follow `after` in an event.
fn vars_after(pairs: &Pairs, after: &str) -> Result<Pairs, String> {
    let all = vars(pairs);
    let pos = all
        .iter()
        .position(|(n, _)| n == after)
        .ok_or_else(|| format!("template lacks variable_{after}"))?;
    Ok(all[pos + 1..].to_vec())
}

fn connect_template(bytes: &[u8]) -> Result<ConnectTemplate, String> {
    let h = block_headers(bytes)?;
    let vars = vars(&h);
    Ok(ConnectTemplate {
        uuid: get(&h, "Unique-ID")?.to_string(),
        destination: get(&h, "Caller-Destination-Number")?.to_string(),
        caller_number: get(&h, "Caller-Caller-ID-Number")?.to_string(),
        caller_name: get(&h, "Caller-Caller-ID-Name")?.to_string(),
        vars,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../tests/fixtures/esl/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn templates_are_frames_of_their_transcripts() {
        for (tpl, src) in [
            (CONNECT_RINGING, "a-unanswered-call-rejected-plain.txt"),
            (CONNECT_ANSWERED, "g-no-linger-hangup.txt"),
            (PROGRESS_MEDIA, "b-answer-playback-sched-hangup-plain.txt"),
            (ANSWER, "b-answer-playback-sched-hangup-plain.txt"),
            (
                HANGUP_COMPLETE_ANSWERED,
                "b-answer-playback-sched-hangup-plain.txt",
            ),
        ] {
            let frames = transcript::parse(&fixture(src)).unwrap();
            assert!(
                frames.iter().any(|f| f.from_switch && f.bytes == tpl),
                "template not found verbatim in {src}"
            );
        }
    }

    #[test]
    fn templates_parse() {
        let t = templates();
        assert_eq!(t.ringing.destination, "7001");
        assert_eq!(t.answered.destination, "7000");
        assert_eq!(t.ringing.caller_number, "15551230000");
        assert_eq!(t.media_vars.first().unwrap().0, "rtp_use_codec_string");
        assert_eq!(t.media_vars.last().unwrap().0, "endpoint_disposition");
        assert_eq!(t.media_vars.len(), 29);
        assert_eq!(t.answer_vars.len(), 1);
        assert_eq!(t.answer_vars[0].0, "rtp_local_sdp_str");
        assert_eq!(t.rtp_stats.first().unwrap().0, "rtp_audio_in_raw_bytes");
        assert_eq!(t.rtp_stats.last().unwrap().0, "rtp_audio_rtcp_octet_count");
        assert_eq!(t.ringing.vars.last().unwrap().0, "socket_host");
    }
}
