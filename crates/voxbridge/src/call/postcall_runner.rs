//! Post-call mode, with I/O (SPEC §4 rule 5): the outbox hands over the document a
//! post-call URL answered with; every element that needs a live call is skipped and
//! listed, a Redirect is followed (bounded by the per-call fetch limit), and the list of
//! what was skipped is logged with the call's uuid. The pure rules are in
//! [`crate::call::postcall`].
//!
//! A workflow runs **at most once per call**: only the Hangup that closed the call adds
//! a post-call row, and the outbox hands its response over only once the delivery is
//! recorded ([`PostCallResponseHandler`]). Its Redirects may only go to http(s): a
//! post-call document can no more make voxbridge read a local file than a live one.

use crate::app::fetch::{CallStatus, FetchParams, FetchRequest};
use crate::app::outbox::{PostCallResponse, PostCallResponseHandler};
use crate::call::engine::FetchFailure;
use crate::call::freeswitch::CallServices;
use crate::call::postcall::{PostCallRun, PostCallStep};
use crate::document::model::FetchEvent;
use crate::document::{self, Dialect};
use crate::store::BoxFuture;
use std::sync::Arc;

/// The outbox's post-call hook.
pub struct PostCallMode {
    services: Arc<CallServices>,
}

impl PostCallMode {
    pub fn new(services: Arc<CallServices>) -> Self {
        Self { services }
    }

    async fn run(&self, response: PostCallResponse) {
        let mut run = PostCallRun::new();
        // The document being read came from here: its Redirect may only go to http(s)
        // unless it is itself a local file (never, for the post-call URL itself).
        let mut asked_by = response.url.clone();
        let mut step = run.on_response(parse(&response));
        let record = match self
            .services
            .store
            .cdr(&response.account_id, &response.call_uuid)
            .await
        {
            Ok(Some(cdr)) => Some(cdr.record),
            _ => None,
        };
        let token = self
            .services
            .config
            .accounts
            .iter()
            .find(|a| a.auth_id == response.account_id)
            .map(|a| a.auth_token.clone());
        loop {
            match step {
                PostCallStep::Fetch { url, method } => {
                    let params = match &record {
                        Some(r) => FetchParams {
                            call_uuid: r.call_uuid.clone(),
                            from: r.from.clone(),
                            to: r.to.clone(),
                            caller_name: r.caller_name.clone(),
                            direction: r.direction,
                            call_status: CallStatus::Completed,
                            event: FetchEvent::Redirect,
                            forwarded_from: r.forwarded_from.clone(),
                            account_id: r.account_id.clone(),
                            extra: Vec::new(),
                        }
                        .to_pairs(),
                        None => vec![
                            ("CallUUID".to_string(), response.call_uuid.clone()),
                            ("CallStatus".to_string(), "completed".to_string()),
                            ("Event".to_string(), "Redirect".to_string()),
                        ],
                    };
                    let result = self
                        .services
                        .fetcher
                        .fetch(&FetchRequest {
                            url: &url,
                            fallback_url: None,
                            method,
                            params: &params,
                            signing_token: token.as_deref(),
                            asked_by: Some(&asked_by),
                        })
                        .await;
                    let input = match result {
                        Ok(f) => {
                            asked_by = f.url;
                            Ok(Some(f.document))
                        }
                        Err(crate::app::fetch::FetchError::InvalidDocument { error, .. }) => {
                            Err(FetchFailure::Invalid(error.to_string()))
                        }
                        Err(refused @ crate::app::fetch::FetchError::Refused { .. }) => {
                            Err(FetchFailure::Invalid(refused.to_string()))
                        }
                        Err(e) => Err(FetchFailure::NoDocument(e.to_string())),
                    };
                    step = run.on_response(input);
                }
                PostCallStep::Done { notes } => {
                    for note in &notes {
                        tracing::info!(call_uuid = %response.call_uuid, note = %note, "post-call mode");
                    }
                    if let Err(e) = self
                        .services
                        .store
                        .add_cdr_notes(&response.call_uuid, notes)
                        .await
                    {
                        tracing::warn!(call_uuid = %response.call_uuid, error = %e, "could not add post-call notes to the CDR");
                    }
                    return;
                }
            }
        }
    }
}

/// The post-call response as a document; an empty or non-document answer is fine.
fn parse(
    response: &PostCallResponse,
) -> Result<Option<document::model::AnswerDocument>, FetchFailure> {
    let body = response.body.as_ref();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let dialect = response
        .content_type
        .as_deref()
        .and_then(Dialect::from_content_type)
        .or_else(|| Dialect::sniff(body));
    let Some(dialect) = dialect else {
        // Not a document (plain text, HTML…): the workflow simply acknowledged.
        return Ok(None);
    };
    document::parse(body, dialect)
        .map(Some)
        .map_err(|e| FetchFailure::Invalid(e.to_string()))
}

impl PostCallResponseHandler for PostCallMode {
    fn handle(&self, response: PostCallResponse) -> BoxFuture<'_, ()> {
        Box::pin(self.run(response))
    }
}
