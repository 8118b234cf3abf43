//! TLS to PostgreSQL: libpq's `sslmode` (and `sslrootcert`) in `store.url`, on rustls
//! with the `ring` provider the rest of voxbridge uses (`tokio-postgres-rustls`).
//!
//! | `sslmode` | what voxbridge does |
//! |---|---|
//! | `disable` | plain TCP |
//! | `prefer` (the default) | plain TCP, as before TLS was supported: "prefer" gives no protection against an active attacker anyway; ask for TLS with `require` or `verify-full` |
//! | `require` | TLS; the certificate is not checked (libpq's meaning) — unless `sslrootcert` is given, then as `verify-ca` (libpq does the same when a root file exists) |
//! | `verify-ca` | TLS; the certificate must chain to `sslrootcert` (a PEM file), else to the system's CA store; the host name is not checked |
//! | `verify-full` | as `verify-ca`, and the certificate must name the host of the URL (a name, or an IP address in its subjectAltName) |
//!
//! `sslrootcert=system` names the system's CA store (libpq 16's spelling). Other libpq
//! TLS keys (`sslcert`/`sslkey` client certificates, `sslcrl`) are refused as not
//! supported yet rather than ignored. `tokio-postgres` itself knows only `disable`,
//! `prefer` and `require`, so the URL is rewritten for it: the verification is ours.

use crate::store::{StoreError, StoreErrorKind};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the connection is protected, from `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// `store.url` made ready for `tokio-postgres`, and the TLS connector it needs (`None`:
/// plain TCP).
pub struct Prepared {
    pub url: String,
    pub mode: SslMode,
    pub tls: Option<MakeRustlsConnect>,
}

fn invalid(message: String) -> StoreError {
    StoreError::new(StoreErrorKind::Invalid, message)
}

/// Reads `sslmode`/`sslrootcert` from a `postgres://` URL, builds the connector, and
/// returns the URL with `sslmode` in the form `tokio-postgres` knows. A URL that is not
/// `postgres(ql)://` (libpq's `key=value` form) is passed on as it is.
pub fn prepare(url: &str) -> Result<Prepared, StoreError> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return Ok(Prepared {
            url: url.to_string(),
            mode: SslMode::Prefer,
            tls: None,
        });
    };
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Ok(Prepared {
            url: url.to_string(),
            mode: SslMode::Prefer,
            tls: None,
        });
    }
    let mut mode = SslMode::Prefer;
    let mut root: Option<String> = None;
    let mut kept: Vec<(String, String)> = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" => {
                mode = match value.as_ref() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(invalid(format!(
                            "store.url: sslmode={other:?} is not one of disable, prefer, \
                             require, verify-ca, verify-full"
                        )))
                    }
                }
            }
            "sslrootcert" => root = Some(value.into_owned()),
            "sslcert" | "sslkey" | "sslcrl" | "sslpassword" | "sslcrldir" => {
                return Err(invalid(format!(
                    "store.url: {key} (client certificates, revocation lists) is not \
                     supported yet; sslmode and sslrootcert are"
                )))
            }
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if mode == SslMode::Require && root.is_some() {
        mode = SslMode::VerifyCa;
    }
    let for_client = match mode {
        SslMode::Disable | SslMode::Prefer => "disable",
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
    };
    kept.push(("sslmode".into(), for_client.into()));
    parsed.query_pairs_mut().clear().extend_pairs(kept);
    let tls = match mode {
        SslMode::Disable | SslMode::Prefer => None,
        SslMode::Require => Some(connector(Arc::new(Unchecked(provider())))),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(root.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| invalid(format!("store.url: sslrootcert: {e}")))?;
            let verifier: Arc<dyn ServerCertVerifier> = if mode == SslMode::VerifyCa {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            };
            Some(connector(verifier))
        }
    };
    Ok(Prepared {
        url: parsed.to_string(),
        mode,
        tls,
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn connector(verifier: Arc<dyn ServerCertVerifier>) -> MakeRustlsConnect {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// The certificates to trust: `sslrootcert`'s PEM file, or the system's CA store.
fn roots(root: Option<&str>) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match root {
        Some(path) if path != "system" => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<_, _>>())
                .map_err(|e| {
                    invalid(format!(
                        "store.url: sslrootcert {path:?} is not a readable PEM file: {e}"
                    ))
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(invalid(format!(
                    "store.url: sslrootcert {path:?} holds no usable certificate"
                )));
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "a system CA certificate could not be read");
            }
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(invalid(
                    "store.url: sslmode=verify-*: the system has no CA certificates; give \
                     sslrootcert=<file.pem>"
                        .into(),
                ));
            }
        }
    }
    Ok(store)
}

/// `sslmode=require` without a root: encrypted, the certificate not checked (libpq's
/// meaning: protects against eavesdropping, not against an active attacker). The
/// handshake's signatures are still checked, so the peer holds the certificate's key.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain is checked, the name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_rewritten_for_the_client_and_bad_keys_are_named() {
        let p = prepare("postgres://u@db:5432/vb?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert!(p.tls.is_some());
        assert!(p.url.contains("sslmode=require") && p.url.contains("application_name=x"));
        let p = prepare("postgres://u@db/vb").unwrap();
        assert_eq!((p.mode, p.tls.is_none()), (SslMode::Prefer, true));
        assert!(p.url.contains("sslmode=disable"), "{}", p.url);
        let p = prepare("postgres://u@db/vb?sslmode=require").unwrap();
        assert_eq!(p.mode, SslMode::Require);
        let e = prepare("postgres://u@db/vb?sslmode=verify-full&sslrootcert=/nonexistent.pem")
            .err()
            .unwrap();
        assert!(e.to_string().contains("sslrootcert"), "{e}");
        let e = prepare("postgres://u@db/vb?sslmode=sometimes")
            .err()
            .unwrap();
        assert!(e.to_string().contains("sslmode"), "{e}");
        let e = prepare("postgres://u@db/vb?sslcert=/c.pem").err().unwrap();
        assert!(e.to_string().contains("sslcert"), "{e}");
        // libpq's key=value form is passed on untouched.
        let p = prepare("host=db user=u").unwrap();
        assert_eq!(p.url, "host=db user=u");
    }
}
