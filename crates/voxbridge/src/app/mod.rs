//! HTTP to the customer's application: document fetches, request signing, and the
//! callback payloads and delivery worker behind the outbox.

pub mod callbacks;
pub mod fetch;
pub mod outbox;
pub mod sign;
