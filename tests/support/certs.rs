//! Certificates for TLS tests: a test CA and leaves that are wrong in exactly one way each.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    CrlDistributionPoint, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What a leaf certificate says.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub names: Vec<String>,
    pub expired: bool,
    pub usage: ExtendedKeyUsagePurpose,
    pub serial: u64,
    pub crl_url: Option<String>,
    /// Marked as a CA, as `openssl req -x509` makes self-signed certificates.
    pub ca: bool,
}

impl Leaf {
    /// A valid server certificate for 127.0.0.1.
    pub fn good(serial: u64) -> Self {
        Self {
            names: vec!["127.0.0.1".into()],
            expired: false,
            usage: ExtendedKeyUsagePurpose::ServerAuth,
            serial,
            crl_url: None,
            ca: false,
        }
    }

    fn params(&self) -> CertificateParams {
        let mut p = CertificateParams::new(self.names.clone()).unwrap();
        p.serial_number = Some(SerialNumber::from(self.serial));
        if self.expired {
            p.not_before = date_time_ymd(2020, 1, 1);
            p.not_after = date_time_ymd(2021, 1, 1);
        } else {
            p.not_before = date_time_ymd(2024, 1, 1);
            p.not_after = date_time_ymd(2099, 1, 1);
        }
        p.extended_key_usages = vec![self.usage.clone()];
        if let Some(url) = &self.crl_url {
            p.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![url.clone()],
            }];
        }
        if self.ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        p
    }
}

/// A chain and its key, as a server presents them.
pub type Served = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(key.serialize_der().into())
}

/// A certificate authority for tests.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "ebb test CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = date_time_ymd(2024, 1, 1);
        p.not_after = date_time_ymd(2099, 1, 1);
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf signed by this CA, as PEM: the certificate, then its key (for nginx).
    pub fn leaf_pem(&self, leaf: &Leaf) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = leaf.params().signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A leaf signed by this CA.
    pub fn leaf(&self, leaf: &Leaf) -> Served {
        let key = KeyPair::generate().unwrap();
        let cert = leaf.params().signed_by(&key, &self.issuer).unwrap();
        (vec![cert.der().clone()], key_der(&key))
    }

    /// A CRL (DER) revoking these serial numbers.
    pub fn crl(&self, revoked: &[u64]) -> Vec<u8> {
        self.crl_until(revoked, 2099)
    }

    /// A CRL whose next update is due on the first of January of `year`.
    pub fn crl_until(&self, revoked: &[u64], year: i32) -> Vec<u8> {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2022, 1, 1),
            next_update: date_time_ymd(year, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&n| RevokedCertParams {
                    serial_number: SerialNumber::from(n),
                    revocation_time: date_time_ymd(2025, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().der().to_vec()
    }
}

/// A self-signed leaf: its own, unknown, CA.
pub fn self_signed(leaf: &Leaf) -> Served {
    let key = KeyPair::generate().unwrap();
    let cert = leaf.params().self_signed(&key).unwrap();
    (vec![cert.der().clone()], key_der(&key))
}
