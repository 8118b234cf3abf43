//! The outbox's rows: a callback rendered completely when its call finishes, stored in
//! the same transaction as the CDR and delivered later byte for byte (SPEC §5.2, §5.3).
//! Building them from a call record is the application's ([`crate::app::callbacks`]);
//! the store only keeps them.

use crate::document::model::HttpMethod;

/// Which callback a row is. Stored as [`CallbackKind::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallbackKind {
    /// The form-encoded hangup callback (SPEC §5.2).
    Hangup,
    /// The JSON `call-ended` status event (SPEC §5.3).
    Status,
    /// The post-call workflow request (SPEC §4 rule 5); its response may be a document.
    PostCall,
    /// A Dial's real-time leg event to its `callbackUrl` (DialAnswer, DialConnected,
    /// DialHangup; SPEC §11.4).
    DialEvent,
    /// An outbound call started ringing: `Event=Ring` to its `ring_url` (SPEC §13).
    Ring,
    /// A recording's file is complete: `Event=RecordStop` to the Record's `callbackUrl`
    /// (SPEC §12.2).
    RecordStop,
    /// An element's `action` requested through the outbox, its response ignored: a
    /// Gather or a Dial with `redirect="false"` (SPEC §12.1, §11.4), or a Dial's action
    /// after the caller hung up.
    Action,
}

impl CallbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackKind::Hangup => "hangup",
            CallbackKind::Status => "status",
            CallbackKind::PostCall => "post_call",
            CallbackKind::DialEvent => "dial_event",
            CallbackKind::Ring => "ring",
            CallbackKind::Action => "action",
            CallbackKind::RecordStop => "record_stop",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "hangup" => CallbackKind::Hangup,
            "status" => CallbackKind::Status,
            "post_call" => CallbackKind::PostCall,
            "dial_event" => CallbackKind::DialEvent,
            "ring" => CallbackKind::Ring,
            "action" => CallbackKind::Action,
            "record_stop" => CallbackKind::RecordStop,
            _ => return None,
        })
    }
}

/// A callback ready to be written to the outbox by `Store::finish_call`.
///
/// `url` is the full URL that will be requested (for GET it already carries the
/// parameters in its query string) and `body` the exact bytes sent (empty for GET); both
/// are what the signature covers. The call and account come from the record the callback
/// is finished with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCallback {
    /// The idempotency key the receiver de-duplicates on; also inside `body`/`url`.
    pub delivery_id: String,
    pub kind: CallbackKind,
    pub method: HttpMethod,
    pub url: String,
    /// `None` for GET (no body).
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Who receives a callback, as `scheme://host:port`: the unit the delivery worker limits
/// concurrency by, so one slow receiver cannot take every delivery slot. An unparsable
/// URL is its own receiver (its delivery fails permanently anyway).
pub fn receiver_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_group_by_origin() {
        assert_eq!(receiver_of("http://a:81/x?y"), "http://a:81");
        assert_eq!(receiver_of("https://a/x"), "https://a:443");
        assert_eq!(receiver_of("http://a/x"), receiver_of("http://a:80/y"));
        assert_eq!(receiver_of("not a url"), "not a url");
    }
}
