//! Events as the switch fires them: the 13 standard headers every event starts with
//! (`switch_event_prep_for_delivery_detailed`), the global sequence counter, who
//! receives an event (subscriptions and filters, `mes.c:event_handler`), and the bus
//! that carries channel events to inbound listeners.

use super::clock::SimClock;
use super::wire::{EventFormat, HeaderSink, SimEvent};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use time::macros::format_description;
use time::OffsetDateTime;
use tokio::sync::broadcast;

/// Where an event type is fired in the switch's source (`Event-Calling-*`), as the
/// transcripts show. CHANNEL_PROGRESS is not in any transcript; its line is inferred.
pub fn calling_site(event_name: &str) -> (&'static str, &'static str, u32) {
    match event_name {
        "CHANNEL_DATA" => ("mod_event_socket.c", "parse_command", 2021),
        "CHANNEL_PARK" => ("switch_ivr.c", "switch_ivr_park", 1002),
        "CHANNEL_UNPARK" => ("switch_ivr.c", "switch_ivr_park", 1213),
        "CHANNEL_EXECUTE" => ("switch_core_session.c", "switch_core_session_exec", 2944),
        "CHANNEL_EXECUTE_COMPLETE" => ("switch_core_session.c", "switch_core_session_exec", 2967),
        "CHANNEL_HANGUP" => ("switch_channel.c", "switch_channel_perform_hangup", 3445),
        "CHANNEL_STATE" => (
            "switch_channel.c",
            "switch_channel_perform_set_running_state",
            2408,
        ),
        "CHANNEL_HANGUP_COMPLETE" => (
            "switch_core_state_machine.c",
            "switch_core_session_reporting_state",
            943,
        ),
        "CHANNEL_PROGRESS_MEDIA" => (
            "switch_channel.c",
            "switch_channel_perform_mark_pre_answered",
            3560,
        ),
        "CHANNEL_PROGRESS" => (
            "switch_channel.c",
            "switch_channel_perform_mark_ring_ready_value",
            3475,
        ),
        "CHANNEL_ANSWER" => (
            "switch_channel.c",
            "switch_channel_perform_mark_answered",
            3846,
        ),
        "DTMF" => ("switch_channel.c", "switch_channel_dequeue_dtmf", 677),
        "BACKGROUND_JOB" => ("mod_event_socket.c", "api_exec", 1572),
        _ => ("switch_event.c", "switch_event_fire_detailed", 0),
    }
}

/// The simulated switch's identity and global event state.
#[derive(Debug)]
pub struct SwitchInfo {
    pub core_uuid: String,
    pub hostname: String,
    pub ipv4: String,
    pub ipv6: String,
    pub clock: SimClock,
    seq: AtomicU64,
}

impl SwitchInfo {
    #[cfg(test)]
    pub fn new(clock: SimClock) -> Self {
        Self::named(clock, "fs-test")
    }

    /// A switch whose host and switch name is `name`.
    pub fn named(clock: SimClock, name: &str) -> Self {
        Self {
            core_uuid: uuid::Uuid::new_v4().to_string(),
            hostname: name.into(),
            ipv4: "127.0.0.1".into(),
            ipv6: "0000::1".into(),
            clock,
            seq: AtomicU64::new(500),
        }
    }

    /// Counts an event nobody receives (sequence numbers still advance, as they do for
    /// every event the switch fires).
    pub fn skip_event(&self) {
        self.seq.fetch_add(1, Ordering::Relaxed);
    }

    /// A new event with its standard headers, timestamped now (simulated time).
    pub fn new_event(&self, name: &str) -> SimEvent {
        let mut e = SimEvent::default();
        e.headers.reserve(180);
        self.standard_headers(name, &mut e);
        e
    }

    /// The 13 standard headers of a new event, into any sink.
    pub fn standard_headers(&self, name: &str, sink: &mut impl HeaderSink) {
        let (file, func, line) = calling_site(name);
        let now_us = self.clock.now_us();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        sink.header("", "Event-Name", name);
        sink.header("", "Core-UUID", &self.core_uuid);
        sink.header("", "FreeSWITCH-Hostname", &self.hostname);
        sink.header("", "FreeSWITCH-Switchname", &self.hostname);
        sink.header("", "FreeSWITCH-IPv4", &self.ipv4);
        sink.header("", "FreeSWITCH-IPv6", &self.ipv6);
        with_stamps(now_us, |local, gmt| {
            sink.header("", "Event-Date-Local", local);
            sink.header("", "Event-Date-GMT", gmt);
        });
        sink.header("", "Event-Date-Timestamp", &now_us.to_string());
        sink.header("", "Event-Calling-File", file);
        sink.header("", "Event-Calling-Function", func);
        sink.header("", "Event-Calling-Line-Number", &line.to_string());
        sink.header("", "Event-Sequence", &seq.to_string());
    }
}

/// Both date headers of an event at `epoch_us`, formatted once per second and thread:
/// every event carries them and formatting dates is costly.
fn with_stamps(epoch_us: i64, f: impl FnOnce(&str, &str)) {
    thread_local! {
        static CACHE: std::cell::RefCell<(i64, String, String)> =
            const { std::cell::RefCell::new((i64::MIN, String::new(), String::new())) };
    }
    let sec = epoch_us.div_euclid(1_000_000);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != sec {
            *c = (sec, local_stamp(epoch_us), gmt_stamp(epoch_us));
        }
        f(&c.1, &c.2);
    });
}

fn datetime(epoch_us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(epoch_us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `%Y-%m-%d %T` as the switch writes local times (the simulator's zone is UTC).
pub fn local_stamp(epoch_us: i64) -> String {
    datetime(epoch_us)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

/// `Sat, 21 Nov 2026 04:29:43 GMT`.
pub fn gmt_stamp(epoch_us: i64) -> String {
    datetime(epoch_us)
        .format(format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .unwrap_or_default()
}

/// Events subscribed with `myevents` (`reference/freeswitch-esl.md` §2.4).
pub const MYEVENTS: &[&str] = &[
    "CHANNEL_ANSWER",
    "CHANNEL_APPLICATION",
    "CHANNEL_BRIDGE",
    "CHANNEL_CREATE",
    "CHANNEL_DATA",
    "CHANNEL_DESTROY",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_ORIGINATE",
    "CHANNEL_UUID",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_STATE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_UNPARK",
    "DETECTED_SPEECH",
    "DTMF",
    "NOTALK",
    "TALK",
];

/// What one connection receives.
#[derive(Clone, Debug, Default)]
pub struct Subscriptions {
    pub format: EventFormat,
    names: HashSet<String>,
    all: bool,
    /// `myevents` on an outbound socket: only events of this uuid pass.
    pub only_uuid: Option<String>,
    /// `(header, value)` filters; once any exists, an event passes only if one matches.
    filters: Vec<(String, String)>,
}

impl Subscriptions {
    /// Whether an event of this name could pass (before uuid and filter checks).
    pub fn wants_name(&self, name: &str) -> bool {
        self.all || self.names.contains(name)
    }

    pub fn any(&self) -> bool {
        self.all || !self.names.is_empty()
    }

    pub fn has_filters(&self) -> bool {
        !self.filters.is_empty()
    }

    pub fn add_myevents(&mut self) {
        for n in MYEVENTS {
            self.names.insert((*n).to_string());
        }
    }

    /// `event [fmt] NAMES…`: returns how many names were valid. Like the switch,
    /// unknown names are ignored and a `SWITCH_EVENT_` prefix is accepted.
    pub fn add_names<'a>(&mut self, words: impl Iterator<Item = &'a str>) -> usize {
        let mut valid = 0;
        let mut custom = false;
        for w in words {
            if custom {
                continue; // CUSTOM subclasses: the simulator fires none
            }
            let w = w.trim();
            let upper = w.to_ascii_uppercase();
            let name = upper.strip_prefix("SWITCH_EVENT_").unwrap_or(&upper);
            if name == "ALL" {
                self.all = true;
                valid += 1;
            } else if name == "CUSTOM" {
                custom = true;
                valid += 1;
            } else if is_event_name(name) {
                self.names.insert(name.to_string());
                valid += 1;
            }
        }
        valid
    }

    pub fn clear_names(&mut self) {
        self.names.clear();
        self.all = false;
    }

    pub fn remove_names<'a>(&mut self, words: impl Iterator<Item = &'a str>) {
        for w in words {
            self.names.remove(&w.trim().to_ascii_uppercase());
        }
    }

    pub fn add_filter(&mut self, header: &str, value: &str) {
        self.filters.push((header.to_string(), value.to_string()));
    }

    /// `filter delete <H> [V]` / `filter delete all`.
    pub fn delete_filter(&mut self, header: &str, value: Option<&str>) {
        if header.eq_ignore_ascii_case("all") {
            self.filters.clear();
            return;
        }
        self.filters
            .retain(|(h, v)| !(h.eq_ignore_ascii_case(header) && value.is_none_or(|val| val == v)));
    }

    /// Whether this connection receives `event`.
    pub fn wants(&self, event: &SimEvent) -> bool {
        let name = event.name();
        if !(self.all || self.names.contains(name)) {
            return false;
        }
        if let Some(uuid) = &self.only_uuid {
            let own = event.get("Unique-ID") == Some(uuid.as_str())
                || event.get("Job-Owner-UUID") == Some(uuid.as_str());
            if !own {
                return false;
            }
        }
        self.passes_filters(event)
    }

    fn passes_filters(&self, event: &SimEvent) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        let mut included = false;
        let mut any_include = false;
        for (h, v) in &self.filters {
            let (exclude, v) = match v.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, v.as_str()),
            };
            let matched = match event.get(h) {
                Some(actual) => match v.strip_prefix('/') {
                    Some(re) => regex::Regex::new(re.trim_end_matches('/'))
                        .map(|r| r.is_match(actual))
                        .unwrap_or(false),
                    None => actual.eq_ignore_ascii_case(v),
                },
                None => false,
            };
            if exclude {
                if matched {
                    return false;
                }
            } else {
                any_include = true;
                included |= matched;
            }
        }
        !any_include || included
    }
}

/// Event names the switch knows (`EVENT_NAMES` in switch_event.c), so `event` replies
/// `-ERR no keywords supplied` only when none of the words is a real event.
pub fn is_event_name(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "CUSTOM",
        "CLONE",
        "CHANNEL_CREATE",
        "CHANNEL_DESTROY",
        "CHANNEL_STATE",
        "CHANNEL_CALLSTATE",
        "CHANNEL_ANSWER",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HOLD",
        "CHANNEL_UNHOLD",
        "CHANNEL_BRIDGE",
        "CHANNEL_UNBRIDGE",
        "CHANNEL_PROGRESS",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_OUTGOING",
        "CHANNEL_PARK",
        "CHANNEL_UNPARK",
        "CHANNEL_APPLICATION",
        "CHANNEL_ORIGINATE",
        "CHANNEL_UUID",
        "API",
        "LOG",
        "INBOUND_CHAN",
        "OUTBOUND_CHAN",
        "STARTUP",
        "SHUTDOWN",
        "PUBLISH",
        "UNPUBLISH",
        "TALK",
        "NOTALK",
        "SESSION_CRASH",
        "MODULE_LOAD",
        "MODULE_UNLOAD",
        "DTMF",
        "MESSAGE",
        "PRESENCE_IN",
        "NOTIFY_IN",
        "PRESENCE_OUT",
        "PRESENCE_PROBE",
        "MESSAGE_WAITING",
        "MESSAGE_QUERY",
        "ROSTER",
        "CODEC",
        "BACKGROUND_JOB",
        "DETECTED_SPEECH",
        "DETECTED_TONE",
        "PRIVATE_COMMAND",
        "HEARTBEAT",
        "TRAP",
        "ADD_SCHEDULE",
        "DEL_SCHEDULE",
        "EXE_SCHEDULE",
        "RE_SCHEDULE",
        "RELOADXML",
        "NOTIFY",
        "PHONE_FEATURE",
        "PHONE_FEATURE_SUBSCRIBE",
        "SEND_MESSAGE",
        "RECV_MESSAGE",
        "REQUEST_PARAMS",
        "CHANNEL_DATA",
        "GENERAL",
        "COMMAND",
        "SESSION_HEARTBEAT",
        "CLIENT_DISCONNECTED",
        "SERVER_DISCONNECTED",
        "SEND_INFO",
        "RECV_INFO",
        "RECV_RTCP_MESSAGE",
        "SEND_RTCP_MESSAGE",
        "CALL_SECURE",
        "NAT",
        "RECORD_START",
        "RECORD_STOP",
        "PLAYBACK_START",
        "PLAYBACK_STOP",
        "CALL_UPDATE",
        "FAILURE",
        "SOCKET_DATA",
        "MEDIA_BUG_START",
        "MEDIA_BUG_STOP",
        "CONFERENCE_DATA_QUERY",
        "CONFERENCE_DATA",
        "CALL_SETUP_REQ",
        "CALL_SETUP_RESULT",
        "CALL_DETAIL",
        "DEVICE_STATE",
        "TEXT",
        "SHUTDOWN_REQUESTED",
        "ALL",
    ];
    NAMES.contains(&name)
}

/// Channel events for inbound listeners. Publishing costs nothing when nobody listens.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<SimEvent>>,
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(8192);
        Self { tx }
    }

    pub fn has_listeners(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub fn publish(&self, event: Arc<SimEvent>) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<SimEvent>> {
        self.tx.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_look_like_the_switch() {
        assert_eq!(local_stamp(1795235383226145), "2026-11-21 04:29:43");
        assert_eq!(gmt_stamp(1795235383226145), "Sat, 21 Nov 2026 04:29:43 GMT");
    }

    #[test]
    fn subscriptions_and_filters() {
        let mut e = SimEvent::default();
        e.push("Event-Name", "CHANNEL_HANGUP");
        e.push("Unique-ID", "u1");
        let mut s = Subscriptions::default();
        assert!(!s.wants(&e));
        assert_eq!(s.add_names("channel_hangup NOPE".split(' ')), 1);
        assert!(s.wants(&e));
        s.add_filter("Unique-ID", "u2");
        assert!(!s.wants(&e));
        s.add_filter("Unique-ID", "U1");
        assert!(s.wants(&e));
        s.delete_filter("all", None);
        s.add_filter("Unique-ID", "-u1");
        assert!(!s.wants(&e));
        s.delete_filter("Unique-ID", None);
        s.only_uuid = Some("u9".into());
        assert!(!s.wants(&e));
    }
}
