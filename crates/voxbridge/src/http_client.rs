//! The one way voxbridge builds HTTP clients (document fetches, callbacks, post-call
//! requests, and the tests' and examples' own clients).
//!
//! reqwest runs on rustls with the `ring` crypto provider rather than its default aws-lc-rs:
//! same TLS 1.2/1.3 with platform certificate verification, without aws-lc's C/CMake build —
//! the heaviest build step the tree had. rustls needs the provider installed in the process
//! before the first client is built; [`builder`] does that once.

use std::sync::Once;

/// A reqwest client builder with the process's TLS provider in place.
#[allow(clippy::disallowed_methods)] // the one allowed place (clippy.toml)
pub fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// Installs rustls' `ring` provider as the process default, once. Harmless when something
/// else installed one first (that one stays).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
