//! HTTPS: a certificate and key from the configuration, for rustls.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};

/// A certificate chain and its key, in PEM files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl Tls {
    /// Read the files into an acceptor; a bad file is an error that names it.
    pub fn acceptor(&self) -> Result<TlsAcceptor> {
        let bad = |path: &Path, e: &dyn std::fmt::Display| {
            Error::Config(format!("TLS: {}: {e}", path.display()))
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(Iterator::collect)
            .map_err(|e| bad(&self.cert, &e))?;
        if certs.is_empty() {
            return Err(bad(&self.cert, &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| bad(&self.key, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|e| bad(&self.cert, &e))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl Tls {
    /// Whether the files make an acceptor: the error names the bad one.
    pub fn check(&self) -> Result<()> {
        self.acceptor().map(drop)
    }
}
