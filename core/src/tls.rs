//! The ELBv2 security policies Berth's proxy serves, as what rustls really negotiates: each
//! policy's TLS versions and ciphers (OpenSSL names, as DescribeSSLPolicies lists them). Only
//! the policies rustls can honour are here: AWS's older ones need CBC ciphers, RSA key
//! exchange or TLS 1.0/1.1, which rustls does not have, and a listener naming one is refused.
//! Where AWS's policy of a name also lists CBC ciphers (the TLS 1.2 ones of
//! `ELBSecurityPolicy-TLS13-1-2-2021-06`), Berth's lists only the AEAD ones it offers.

/// A security policy: its name, protocols and ciphers in preference order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub name: &'static str,
    pub protocols: &'static [&'static str],
    pub ciphers: &'static [&'static str],
}

/// The TLS 1.3 suites (all three in rustls).
const TLS13: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The TLS 1.2 ECDHE AEAD suites rustls has.
const TLS12_GCM: [&str; 4] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
];

const TLS12_ALL: [&str; 6] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

const MIXED_ALL: [&str; 9] = [
    TLS13[0],
    TLS13[1],
    TLS13[2],
    TLS12_ALL[0],
    TLS12_ALL[1],
    TLS12_ALL[2],
    TLS12_ALL[3],
    TLS12_ALL[4],
    TLS12_ALL[5],
];

const MIXED_GCM: [&str; 7] = [
    TLS13[0],
    TLS13[1],
    TLS13[2],
    TLS12_GCM[0],
    TLS12_GCM[1],
    TLS12_GCM[2],
    TLS12_GCM[3],
];

/// The default of CreateListener, as ALB's.
pub const DEFAULT_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

pub const POLICIES: &[Policy] = &[
    Policy {
        name: DEFAULT_POLICY,
        protocols: &["TLSv1.2", "TLSv1.3"],
        ciphers: &MIXED_ALL,
    },
    Policy {
        name: "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        protocols: &["TLSv1.2", "TLSv1.3"],
        ciphers: &MIXED_GCM,
    },
    Policy {
        name: "ELBSecurityPolicy-TLS13-1-3-2021-06",
        protocols: &["TLSv1.3"],
        ciphers: &TLS13,
    },
    Policy {
        name: "ELBSecurityPolicy-FS-1-2-Res-2020-10",
        protocols: &["TLSv1.2"],
        ciphers: &TLS12_GCM,
    },
];

pub fn policy(name: &str) -> Option<&'static Policy> {
    POLICIES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_policy_is_served() {
        let p = super::policy(super::DEFAULT_POLICY).unwrap();
        assert!(p.protocols.contains(&"TLSv1.3"));
        assert!(super::policy("ELBSecurityPolicy-2016-08").is_none());
    }
}
