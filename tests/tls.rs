//! Certificate checks under BITS's security flags: each `BG_SSL_IGNORE_*` flag relaxes exactly
//! its own check, whatever else is wrong; `BG_SSL_ENABLE_CRL_CHECK` fetches the CRL a
//! certificate names and refuses a revoked one.

use ebb::{ErrorCode, JobId, JobState, JobType, NewFile, Priority, PropertyChange, SecurityFlags};
use rcgen::ExtendedKeyUsagePurpose;

use crate::support::certs::{self, Leaf, Served, TestCa};
use crate::support::origin::{Origin, Resource};
use crate::support::{self, data, wait_for};

const CN: u32 = SecurityFlags::IGNORE_CERT_CN_INVALID;
const DATE: u32 = SecurityFlags::IGNORE_CERT_DATE_INVALID;
const CA: u32 = SecurityFlags::IGNORE_UNKNOWN_CA;
const USAGE: u32 = SecurityFlags::IGNORE_CERT_WRONG_USAGE;
const CRL: u32 = SecurityFlags::ENABLE_CRL_CHECK;

/// What a case expects: the file, or this error code.
type Expect = Result<(), ErrorCode>;

struct Case {
    name: &'static str,
    served: Served,
    flags: u32,
    expect: Expect,
}

fn wrong_name(serial: u64) -> Leaf {
    Leaf {
        names: vec!["elsewhere.test".into()],
        ..Leaf::good(serial)
    }
}

fn expired(serial: u64) -> Leaf {
    Leaf {
        expired: true,
        ..Leaf::good(serial)
    }
}

fn client_only(serial: u64) -> Leaf {
    Leaf {
        usage: ExtendedKeyUsagePurpose::ClientAuth,
        ..Leaf::good(serial)
    }
}

#[allow(clippy::too_many_lines)]
fn cases(ca: &TestCa, crl_url: &str, stale_crl_url: &str) -> Vec<Case> {
    use ErrorCode as E;
    let case = |name, served: &Served, flags, expect| Case {
        name,
        served: (served.0.clone(), served.1.clone_key()),
        flags,
        expect,
    };
    let good = ca.leaf(&Leaf::good(1));
    let name = ca.leaf(&wrong_name(2));
    let old = ca.leaf(&expired(3));
    let usage = ca.leaf(&client_only(4));
    let own = certs::self_signed(&Leaf::good(5));
    let own_name = certs::self_signed(&wrong_name(6));
    let own_old = certs::self_signed(&expired(7));
    let own_ca = certs::self_signed(&Leaf {
        ca: true,
        ..Leaf::good(8)
    });
    let revoked = ca.leaf(&Leaf {
        crl_url: Some(crl_url.to_owned()),
        ..Leaf::good(9)
    });
    let listed = ca.leaf(&Leaf {
        crl_url: Some(crl_url.to_owned()),
        ..Leaf::good(10)
    });
    let stale = ca.leaf(&Leaf {
        crl_url: Some(stale_crl_url.to_owned()),
        ..Leaf::good(11)
    });
    // A CA certificate of a trusted authority used as a server's: not an unknown CA.
    let known_ca = ca.leaf(&Leaf {
        ca: true,
        ..Leaf::good(12)
    });
    vec![
        case("trusted", &good, 0, Ok(())),
        case("wrong name", &name, 0, Err(E::SECURE_CERT_CN_INVALID)),
        case("wrong name, ignored", &name, CN, Ok(())),
        case(
            "wrong name, date ignored",
            &name,
            DATE,
            Err(E::SECURE_CERT_CN_INVALID),
        ),
        case(
            "wrong name, CA ignored",
            &name,
            CA,
            Err(E::SECURE_CERT_CN_INVALID),
        ),
        case("expired", &old, 0, Err(E::SECURE_CERT_DATE_INVALID)),
        case("expired, ignored", &old, DATE, Ok(())),
        case(
            "expired, name ignored",
            &old,
            CN,
            Err(E::SECURE_CERT_DATE_INVALID),
        ),
        case(
            "expired, CA ignored",
            &old,
            CA,
            Err(E::SECURE_CERT_DATE_INVALID),
        ),
        case("self-signed", &own, 0, Err(E::SECURE_INVALID_CA)),
        case("self-signed, ignored", &own, CA, Ok(())),
        // The defect: 0x2 alone turned every check off.
        case(
            "self-signed, name ignored",
            &own,
            CN,
            Err(E::SECURE_INVALID_CA),
        ),
        case(
            "self-signed, date ignored",
            &own,
            DATE,
            Err(E::SECURE_INVALID_CA),
        ),
        case(
            "self-signed, usage ignored",
            &own,
            USAGE,
            Err(E::SECURE_INVALID_CA),
        ),
        case("self-signed CA certificate, ignored", &own_ca, CA, Ok(())),
        case(
            "self-signed CA certificate",
            &own_ca,
            CN | DATE,
            Err(E::SECURE_INVALID_CA),
        ),
        case(
            "self-signed, wrong name, CA ignored",
            &own_name,
            CA,
            Err(E::SECURE_CERT_CN_INVALID),
        ),
        case(
            "self-signed, wrong name, both ignored",
            &own_name,
            CA | CN,
            Ok(()),
        ),
        case(
            "self-signed, expired, CA ignored",
            &own_old,
            CA,
            Err(E::SECURE_CERT_DATE_INVALID),
        ),
        case(
            "self-signed, expired, both ignored",
            &own_old,
            CA | DATE,
            Ok(()),
        ),
        case("wrong usage", &usage, 0, Err(E::SECURE_CERT_WRONG_USAGE)),
        case("wrong usage, ignored", &usage, USAGE, Ok(())),
        case(
            "wrong usage, CA ignored",
            &usage,
            CA,
            Err(E::SECURE_CERT_WRONG_USAGE),
        ),
        case("revoked, no CRL check", &revoked, 0, Ok(())),
        case(
            "revoked, CRL check",
            &revoked,
            CRL,
            Err(E::SECURE_CERT_REVOKED),
        ),
        case("not revoked, CRL check", &listed, CRL, Ok(())),
        case(
            "out-of-date CRL",
            &stale,
            CRL,
            Err(E::SECURE_CERT_REV_FAILED),
        ),
        case(
            "out-of-date CRL, dates ignored",
            &stale,
            CRL | DATE,
            Err(E::SECURE_CERT_REV_FAILED),
        ),
        case(
            "CA certificate as a server's, CA ignored",
            &known_ca,
            CA,
            Err(E::SECURE_INVALID_CA),
        ),
        case("every flag", &own_old, CN | DATE | CA | USAGE, Ok(())),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_security_flag_relaxes_exactly_its_own_check() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let crl_origin = Origin::start().await;
    crl_origin.put("/ca.crl", Resource::new(ca.crl(&[9])));
    crl_origin.put("/old.crl", Resource::new(ca.crl_until(&[], 2023)));
    let body = data(20_000, 50);
    let mut config = support::config(dir.path());
    config.http.ca_certificates = vec![ca_file];
    let e = ebb::Engine::open(config).await.unwrap();
    let mut running: Vec<(Case, JobId, Origin)> = Vec::new();
    let (crl, stale) = (crl_origin.url("/ca.crl"), crl_origin.url("/old.crl"));
    for (i, case) in cases(&ca, &crl, &stale).into_iter().enumerate() {
        let origin = Origin::start_tls_with(case.served.0.clone(), case.served.1.clone_key()).await;
        origin.put("/f", Resource::new(body.clone()));
        let id = e.create_job(case.name, JobType::Download).await.unwrap();
        let dest = dir.path().join(format!("f{i}"));
        e.add_files(id, vec![NewFile::new(origin.url("/f"), dest)])
            .await
            .unwrap();
        for change in [
            PropertyChange::SecurityFlags(SecurityFlags::new(case.flags).unwrap()),
            PropertyChange::Priority(Priority::Foreground),
            PropertyChange::NoProgressTimeout(0),
        ] {
            e.set_property(id, change).await.unwrap();
        }
        e.resume(id).await.unwrap();
        running.push((case, id, origin));
    }
    let mut wrong = Vec::new();
    for (case, id, _origin) in &running {
        let j = wait_for(&e, *id, 30, |j| !j.state.is_active()).await;
        let got = match j.state {
            JobState::Transferred => Ok(()),
            _ => Err(j.error.as_ref().map_or(ErrorCode::S_OK, |err| err.code)),
        };
        if got != case.expect {
            wrong.push(format!(
                "{} (flags 0x{:x}): expected {:?}, got {:?} {:?}",
                case.name,
                case.flags,
                case.expect,
                got,
                j.error.map(|e| e.description)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The CRL was fetched from the distribution point the certificates name.
    assert!(!crl_origin.log("/ca.crl").is_empty());
    e.shutdown().await;
}
