//! voxbridge: a call-control server for FreeSWITCH.
//!
//! The layout follows the architecture (SPEC §1):
//! - [`esl`]: the Event Socket protocol only (frames, events, connections), no call logic;
//! - [`sim`]: a FreeSWITCH simulator that plays the switch side of ESL, for tests, the
//!   benchmark and the demo;
//! - [`document`]: Answer XML and VoxML parsed into one instruction model;
//! - [`call`]: the sans-IO call engine and hangup rules, and the FreeSWITCH driver around it;
//! - [`app`]: HTTP to the customer's application (fetches, signing, outbox delivery);
//! - [`store`]: live calls, CDRs and the callback outbox (SQLite);
//! - [`api`]: the Vobiz-compatible REST API, `/metrics`, `/health`;
//! - [`cause`]: the switch's hangup-cause tables, shared by all of the above;
//! - [`http_client`]: how every HTTP client is built (rustls on `ring`);
//! - [`demo`]: `voxbridge demo`, the server, the simulator and a local app together.

pub mod api;
pub mod app;
pub mod call;
pub mod cause;
pub mod config;
pub mod demo;
pub mod document;
pub mod esl;
pub mod http_client;
pub mod metrics;
pub mod server;
pub mod sim;
pub mod store;
