//! What every integration-test harness shares, written once: starting the real
//! `voxbridge` binary and learning its ports ([`process`]), the one fake customer
//! application ([`app`]) on a local HTTP server ([`local_http`]), and reading the headers
//! and form fields of a request it received ([`request`]).
//!
//! Each test file is its own crate and uses only part of this, hence `dead_code`.
#![allow(dead_code)]

pub mod app;
pub mod local_http;
pub mod process;
pub mod request;
