//! The records voxbridge keeps of a call, at the crate's ground floor so the store that
//! persists them, the application that renders callbacks from them and the call path
//! that produces them all share one definition without importing each other:
//! - [`call`]: the final call record (CDR), its direction and who hung up;
//! - [`callback`]: the outbox's callback rows.

pub mod call;
pub mod callback;
