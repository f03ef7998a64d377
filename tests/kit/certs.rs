//! Test certificates made in process with rcgen (no openssl CLI): a private CA and the
//! leaves it signs (server or client, for chosen names, valid for a chosen time, or
//! expired), and self-signed certificates; written as PEM files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

const DAY: u64 = 86_400;

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub enum Lifetime {
    /// From an hour ago for this many days.
    Days(u64),
    /// Expired yesterday (valid for the ten days before).
    Expired,
}

impl Lifetime {
    fn bounds(self) -> (OffsetDateTime, OffsetDateTime) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (from, to) = match self {
            Lifetime::Days(d) => (now - 3_600, now + d * DAY),
            Lifetime::Expired => (now - 11 * DAY, now - DAY),
        };
        let at = |s: u64| OffsetDateTime::from_unix_timestamp(s as i64).unwrap();
        (at(from), at(to))
    }
}

/// A certificate and its private key, as PEM.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl Pem {
    /// Written as `dir/STEM.pem` and `dir/STEM.key`; returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert, &self.cert).unwrap();
        std::fs::write(&key, &self.key).unwrap();
        (cert, key)
    }
}

/// A private certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's own certificate, PEM: what a client or server trusts.
    pub cert: String,
}

impl Ca {
    /// A CA named `name`, valid for a year.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (params.not_before, params.not_after) = Lifetime::Days(365).bounds();
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            cert,
        }
    }

    /// The CA certificate written as `dir/STEM.pem`.
    pub fn write(&self, dir: &Path, stem: &str) -> PathBuf {
        let path = dir.join(format!("{stem}.pem"));
        std::fs::write(&path, &self.cert).unwrap();
        path
    }

    /// A server certificate for `names` (IP addresses or DNS names), common name `cn`.
    pub fn server(&self, cn: &str, names: &[&str], lifetime: Lifetime) -> Pem {
        self.leaf(cn, names, lifetime, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (mTLS) with common name `cn`.
    pub fn client(&self, cn: &str) -> Pem {
        self.leaf(
            cn,
            &[],
            Lifetime::Days(30),
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn leaf(
        &self,
        cn: &str,
        names: &[&str],
        lifetime: Lifetime,
        usage: ExtendedKeyUsagePurpose,
    ) -> Pem {
        let mut params = leaf_params(cn, names, lifetime);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

fn leaf_params(cn: &str, names: &[&str], lifetime: Lifetime) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*n).try_into().unwrap()),
        })
        .collect();
    params.is_ca = IsCa::ExplicitNoCa;
    (params.not_before, params.not_after) = lifetime.bounds();
    params
}

/// A self-signed certificate (its own trust anchor), valid a day for `san` written as
/// openssl's `subjectAltName` (`IP:127.0.0.1`, `DNS:shakeout-agent`).
pub fn self_signed(cn: &str, san: &str) -> Pem {
    let name = san
        .strip_prefix("IP:")
        .or_else(|| san.strip_prefix("DNS:"))
        .unwrap_or(san);
    let params = leaf_params(cn, &[name], Lifetime::Days(1));
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}
