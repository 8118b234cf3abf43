//! `<Redirect>`: fetch the next document (event `Redirect`); nothing after it in this
//! document runs. The new document cancels this one's armed hangups before its first
//! element (the engine does that when it arrives: a document owns its timers).

use super::{Begin, DocumentFetch};
use crate::document::model::{FetchEvent, Redirect};

pub fn begin(redirect: Redirect) -> Begin {
    Begin::Fetch(DocumentFetch {
        url: redirect.url,
        method: redirect.method,
        event: FetchEvent::Redirect,
    })
}
