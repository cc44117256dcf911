//! Certificate checks under BITS's security flags: each `BG_SSL_IGNORE_*` flag relaxes exactly
//! its own check, and `BG_SSL_ENABLE_CRL_CHECK` adds revocation.
//!
//! A job with none of the certificate flags set uses the HTTP client's default verifier (the
//! platform's). Any flag, or a CA file the engine was told to trust, selects [`BitsVerifier`]:
//! the system's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured) plus those CAs, checked by
//! webpki, with these relaxations and nothing more:
//! - `IGNORE_CERT_DATE_INVALID` (0x4): an expired or not-yet-valid certificate is checked again
//!   at a moment inside its validity, so every other check still runs;
//! - `IGNORE_UNKNOWN_CA` (0x8): a chain that reaches no trusted root is accepted once its
//!   certificates passed their own checks (dates, constraints, usage); a self-signed leaf, also
//!   one marked as a CA as `openssl req -x509` makes them, is its own unknown CA;
//! - `IGNORE_CERT_CN_INVALID` (0x2): the host name is not compared;
//! - `IGNORE_CERT_WRONG_USAGE` (0x10): the extended key usage need not allow TLS servers.
//!
//! Whatever the flags, the handshake still proves that the server holds the certificate's key.
//! Revocation needs the CRLs the certificates name: webpki does no I/O and the verifier runs
//! inside the handshake, so a verifier that lacks one says which it wants
//! ([`CrlCache::take_wanted`]); the download fetches them and connects again.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, DigitallySignedStruct, Error as TlsError, OtherError, RootCertStore,
    SignatureScheme,
};
use webpki::{CertRevocationList, EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter};

use crate::error::ErrorCode;
use crate::model::SecurityFlags;

/// The extended key usage a TLS server needs, or any when the job ignores wrong usage.
struct Usage {
    any: bool,
}

impl ExtendedKeyUsageValidator for Usage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        if self.any {
            // A malformed extension is still refused.
            for id in iter {
                id?;
            }
            return Ok(());
        }
        webpki::KeyUsage::server_auth().validate(iter)
    }
}

/// CRLs by distribution-point URL, shared by every verifier of an engine, and the URLs a
/// verifier wanted and did not have. A CRL past its nextUpdate counts as missing, so that it is
/// fetched anew rather than failing every job until the engine restarts.
#[derive(Debug, Default)]
pub(crate) struct CrlCache {
    crls: Mutex<HashMap<String, Cached>>,
    wanted: Mutex<BTreeSet<String>>,
}

#[derive(Debug)]
struct Cached {
    crl: Arc<CertRevocationList<'static>>,
    /// nextUpdate, in seconds since the epoch (none: valid until replaced).
    next_update: Option<u64>,
}

impl CrlCache {
    /// Keep a fetched CRL (DER); a CRL that does not parse is an error naming its URL.
    pub(crate) fn insert(&self, url: &str, der: &[u8]) -> Result<(), String> {
        let crl = webpki::OwnedCertRevocationList::from_der(der)
            .map_err(|e| format!("{url}: not a certificate revocation list ({e})"))?;
        let next_update = x509_parser::parse_x509_crl(der)
            .ok()
            .and_then(|(_, c)| c.next_update())
            .and_then(|t| u64::try_from(t.timestamp()).ok());
        if let Ok(mut crls) = self.crls.lock() {
            let cached = Cached {
                crl: Arc::new(crl.into()),
                next_update,
            };
            crls.insert(url.to_owned(), cached);
        }
        Ok(())
    }

    /// The CRLs a verifier asked for since the last call.
    pub(crate) fn take_wanted(&self) -> BTreeSet<String> {
        self.wanted
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    /// One current CRL for each certificate that names any; `Err` with the URLs of those
    /// missing or out of date, which are also remembered as wanted.
    fn lookup(
        &self,
        certs: &[&CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Vec<Arc<CertRevocationList<'static>>>, ()> {
        let Ok(crls) = self.crls.lock() else {
            return Err(());
        };
        let current = |c: &&Cached| c.next_update.is_none_or(|t| now.as_secs() < t);
        let (mut found, mut missing) = (Vec::new(), Vec::new());
        for cert in certs {
            let urls = crl_urls(cert);
            match urls.iter().find_map(|u| crls.get(u).filter(current)) {
                Some(c) => found.push(c.crl.clone()),
                None => missing.extend(urls),
            }
        }
        drop(crls);
        if missing.is_empty() {
            return Ok(found);
        }
        if let Ok(mut wanted) = self.wanted.lock() {
            wanted.extend(missing);
        }
        Err(())
    }
}

/// The `http:` CRL distribution points a certificate names (webpki keeps its own private).
fn crl_urls(der: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        for point in points.iter() {
            if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                urls.extend(names.iter().filter_map(|n| match n {
                    GeneralName::URI(u) if u.starts_with("http://") => Some((*u).to_owned()),
                    _ => None,
                }));
            }
        }
    }
    urls
}

/// Whether a certificate names itself as its issuer.
fn self_issued(der: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(der.as_ref())
        .is_ok_and(|(_, c)| c.issuer().as_raw() == c.subject().as_raw())
}

/// The usage of a leaf webpki never looked at (it stops at "CA used as end entity" first).
fn leaf_usage_ok(der: &CertificateDer<'_>) -> Result<(), TlsError> {
    let bad = || TlsError::InvalidCertificate(CertificateError::BadEncoding);
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|_| bad())?;
    match cert.extended_key_usage().map_err(|_| bad())? {
        None => Ok(()),
        Some(eku) if eku.value.server_auth || eku.value.any => Ok(()),
        Some(_) => Err(TlsError::InvalidCertificate(
            CertificateError::InvalidPurpose,
        )),
    }
}

/// A `ServerCertVerifier` that honours a job's security flags, one check per flag.
#[derive(Debug)]
pub(crate) struct BitsVerifier {
    flags: SecurityFlags,
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
    crls: Arc<CrlCache>,
}

impl BitsVerifier {
    pub(crate) fn new(
        flags: SecurityFlags,
        roots: Arc<RootCertStore>,
        provider: &CryptoProvider,
        crls: Arc<CrlCache>,
    ) -> Self {
        Self {
            flags,
            roots,
            algs: provider.signature_verification_algorithms,
            crls,
        }
    }

    fn has(&self, flag: u32) -> bool {
        self.flags.0 & flag != 0
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), TlsError> {
        let leaf = EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        // The chain first: a server whose certificates fail their checks makes ebb fetch
        // nothing.
        self.check_chain(&leaf, end_entity, intermediates, now, &[])?;
        if self.has(SecurityFlags::ENABLE_CRL_CHECK) {
            let certs: Vec<&CertificateDer<'_>> =
                std::iter::once(end_entity).chain(intermediates).collect();
            let crls = self.crls.lookup(&certs, now).map_err(|()| {
                TlsError::InvalidCertificate(CertificateError::UnknownRevocationStatus)
            })?;
            let crl_refs: Vec<&CertRevocationList<'static>> =
                crls.iter().map(AsRef::as_ref).collect();
            self.check_chain(&leaf, end_entity, intermediates, now, &crl_refs)?;
        }
        if !self.has(SecurityFlags::IGNORE_CERT_CN_INVALID) {
            leaf.verify_is_valid_for_subject_name(server_name)
                .map_err(pki_error)?;
        }
        Ok(())
    }

    /// Whether `cert` is one of the trusted roots (same subject, same key).
    fn is_anchor(&self, cert: &CertificateDer<'_>) -> bool {
        webpki::anchor_from_trusted_cert(cert).is_ok_and(|a| {
            self.roots.roots.iter().any(|r| {
                r.subject == a.subject && r.subject_public_key_info == a.subject_public_key_info
            })
        })
    }

    /// The chain, dates, constraints, usage and revocation; relaxed one flag at a time.
    fn check_chain(
        &self,
        leaf: &EndEntityCert<'_>,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        crls: &[&CertRevocationList<'static>],
    ) -> Result<(), TlsError> {
        let usage = Usage {
            any: self.has(SecurityFlags::IGNORE_CERT_WRONG_USAGE),
        };
        let mut time = now;
        // Each pass relaxes at most one date; a chain whose windows never meet gives up.
        for _ in 0..8 {
            let revocation = webpki::RevocationOptionsBuilder::new(crls).ok().map(|b| {
                b.with_depth(webpki::RevocationCheckDepth::Chain)
                    .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                    // Out-of-date CRLs never get here (see `CrlCache::lookup`, against the
                    // real time): the check time may be shifted into a certificate's validity.
                    .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                    .build()
            });
            let verified = leaf.verify_for_usage(
                self.algs.all,
                &self.roots.roots,
                intermediates,
                time,
                &usage,
                revocation,
                None,
            );
            let date_ok = self.has(SecurityFlags::IGNORE_CERT_DATE_INVALID);
            let any_ca = self.has(SecurityFlags::IGNORE_UNKNOWN_CA);
            match verified {
                Ok(_) => return Ok(()),
                Err(webpki::Error::CertExpired { not_after, .. }) if date_ok => time = not_after,
                Err(webpki::Error::CertNotValidYet { not_before, .. }) if date_ok => {
                    time = not_before;
                }
                // The certificates' own checks ran before the search for an anchor.
                Err(webpki::Error::UnknownIssuer) if any_ca => return Ok(()),
                // A self-signed leaf marked as a CA: its dates passed, its usage is not yet seen.
                // A CA certificate from a known authority used as a server's is not "unknown".
                // A self-signed certificate that is itself trusted (`SSL_CERT_FILE`, the CA
                // files setting) is accepted as curl accepts it: its key is a trusted anchor's.
                Err(webpki::Error::CaUsedAsEndEntity)
                    if self_issued(end_entity) && (any_ca || self.is_anchor(end_entity)) =>
                {
                    if !usage.any {
                        leaf_usage_ok(end_entity)?;
                    }
                    return Ok(());
                }
                Err(e) => return Err(pki_error(e)),
            }
        }
        Err(TlsError::InvalidCertificate(CertificateError::Expired))
    }
}

impl ServerCertVerifier for BitsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        self.check(end_entity, intermediates, server_name, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// rustls's own mapping of webpki's errors, for the ones a server can cause.
fn pki_error(e: webpki::Error) -> TlsError {
    use webpki::Error as E;
    let ce = match e {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }
        }
        E::CertExpired { time, not_after } => CertificateError::ExpiredContext { time, not_after },
        E::InvalidCertValidity => CertificateError::Expired,
        // A leaf marked as a CA is, in practice, a self-signed certificate: its own unknown CA.
        E::UnknownIssuer | E::CaUsedAsEndEntity => CertificateError::UnknownIssuer,
        E::CertNotValidForName(ctx) => CertificateError::NotValidForNameContext {
            expected: ctx.expected,
            presented: ctx.presented,
        },
        E::CertRevoked => CertificateError::Revoked,
        E::UnknownRevocationStatus => CertificateError::UnknownRevocationStatus,
        E::CrlExpired { time, next_update } => {
            CertificateError::ExpiredRevocationListContext { time, next_update }
        }
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        E::RequiredEkuNotFoundContext(_) => CertificateError::InvalidPurpose,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    TlsError::InvalidCertificate(ce)
}

/// WinHTTP's code for a certificate problem, as BITS reports it, and a plain-words reason.
pub(crate) fn certificate_code(e: &CertificateError) -> (ErrorCode, &'static str) {
    use CertificateError as C;
    match e {
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => (
            ErrorCode::SECURE_CERT_DATE_INVALID,
            "the certificate is expired or not yet valid",
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => (
            ErrorCode::SECURE_CERT_CN_INVALID,
            "the certificate is for another host name",
        ),
        C::UnknownIssuer => (
            ErrorCode::SECURE_INVALID_CA,
            "the certificate is not signed by a trusted authority (self-signed or unknown CA)",
        ),
        C::Revoked => (
            ErrorCode::SECURE_CERT_REVOKED,
            "the certificate was revoked",
        ),
        C::UnknownRevocationStatus
        | C::ExpiredRevocationList
        | C::ExpiredRevocationListContext { .. } => (
            ErrorCode::SECURE_CERT_REV_FAILED,
            "the certificate's revocation status could not be checked",
        ),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => (
            ErrorCode::SECURE_CERT_WRONG_USAGE,
            "the certificate is not for TLS servers",
        ),
        // `openssl req -x509` makes a self-signed certificate that says it is a CA.
        C::Other(o) if is_ca_as_end_entity(o) => (
            ErrorCode::SECURE_INVALID_CA,
            "the server's certificate is a CA's (self-signed, as `openssl req -x509` makes them)",
        ),
        _ => (ErrorCode::SECURE_FAILURE, "the certificate is not valid"),
    }
}

fn is_ca_as_end_entity(o: &OtherError) -> bool {
    matches!(
        o.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

/// The certificate error's own words, where they add to [`certificate_code`]'s (never the
/// debug text of an error from inside the verifier).
pub(crate) fn certificate_detail(e: &CertificateError) -> Option<String> {
    use CertificateError as C;
    match e {
        C::ExpiredContext { .. }
        | C::NotValidYetContext { .. }
        | C::NotValidForNameContext { .. }
        | C::InvalidPurposeContext { .. }
        | C::ExpiredRevocationListContext { .. } => Some(e.to_string()),
        _ => None,
    }
}

/// The system's roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` honoured) and the extra CAs.
pub(crate) fn root_store(extra: &[CertificateDer<'static>]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "cannot load a system root certificate");
    }
    roots.add_parsable_certificates(native.certs);
    roots.add_parsable_certificates(extra.iter().cloned());
    roots
}
