//! Reading a certificate, its chain and its private key from PEM: what ACM shows about it
//! (names, validity, serial, algorithms), and the check that the key belongs to the certificate
//! and is one rustls can sign with. Errors name ImportCertificate's fields, never the key.

use super::Issued;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::*;

fn invalid(message: impl Into<String>) -> crate::model::secrets::AwsError {
    crate::model::secrets::AwsError::new("ValidationException", message)
}

type R<T> = crate::model::secrets::AwsResult<T>;

/// The DER certificates of a PEM text, in order.
fn certificates(field: &str, pem: &str) -> R<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("{field}: not PEM certificates: {e}")))?;
    Ok(certs)
}

/// Checks a certificate (one PEM certificate), its chain (PEM certificates, may be empty) and
/// its private key (PEM, PKCS#8, PKCS#1 or SEC1), and reads what ACM describes.
pub fn read(certificate: &str, chain: &str, private_key: &str) -> R<Issued> {
    let leaf = certificates("Certificate", certificate)?;
    let [leaf] = leaf.as_slice() else {
        return Err(invalid(format!(
            "Certificate: give exactly one PEM certificate (the chain goes in CertificateChain); got {}",
            leaf.len()
        )));
    };
    let chain_certs = if chain.trim().is_empty() {
        Vec::new()
    } else {
        certificates("CertificateChain", chain)?
    };
    for (i, c) in chain_certs.iter().enumerate() {
        X509Certificate::from_der(c).map_err(|e| {
            invalid(format!(
                "CertificateChain: certificate {} does not parse: {e}",
                i + 1
            ))
        })?;
    }
    let key = PrivateKeyDer::from_pem_slice(private_key.as_bytes()).map_err(|_| {
        invalid("PrivateKey: not a PEM private key (PKCS#8, RSA or EC); give the unencrypted key of the certificate")
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
        invalid(
            "PrivateKey: an unsupported key type; use RSA (2048 bits or more) or ECDSA P-256/P-384",
        )
    })?;
    let mut all = vec![leaf.clone()];
    all.extend(chain_certs);
    let certified = rustls::sign::CertifiedKey::new(all, signer);
    if certified.keys_match().is_err() {
        return Err(invalid(
            "PrivateKey: the key does not match the certificate's public key",
        ));
    }
    describe(leaf, chain)
}

fn describe(leaf: &CertificateDer<'_>, chain: &str) -> R<Issued> {
    let (_, cert) = X509Certificate::from_der(leaf)
        .map_err(|e| invalid(format!("Certificate: does not parse: {e}")))?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .map(str::to_ascii_lowercase);
    if let Some(cn) = &cn {
        if !names.contains(cn) && cn.contains('.') {
            names.insert(0, cn.clone());
        }
    }
    if names.is_empty() {
        return Err(invalid(
            "Certificate: names no DNS name (no subject alternative name or common name); a listener could serve it to nobody",
        ));
    }
    let key_algorithm = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => format!("RSA_{}", k.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(k)) => match k.key_size() {
            256 => "EC_prime256v1".into(),
            384 => "EC_secp384r1".into(),
            _ => "EC_secp521r1".into(),
        },
        _ => "RSA_2048".into(),
    };
    let sig = cert.signature_algorithm.algorithm.to_id_string();
    let signature_algorithm = match sig.as_str() {
        "1.2.840.113549.1.1.11" => "SHA256WITHRSA",
        "1.2.840.113549.1.1.12" => "SHA384WITHRSA",
        "1.2.840.113549.1.1.13" => "SHA512WITHRSA",
        "1.2.840.10045.4.3.2" => "SHA256WITHECDSA",
        "1.2.840.10045.4.3.3" => "SHA384WITHECDSA",
        "1.2.840.10045.4.3.4" => "SHA512WITHECDSA",
        _ => "UNKNOWN",
    }
    .to_string();
    let issuer = cert
        .issuer()
        .iter_organization()
        .chain(cert.issuer().iter_common_name())
        .next()
        .and_then(|o| o.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let pem_of = |der: &[u8]| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    };
    let chain_pem = certificates("CertificateChain", chain)
        .unwrap_or_default()
        .iter()
        .map(|c| pem_of(c))
        .collect::<String>();
    Ok(Issued {
        certificate_pem: pem_of(leaf),
        chain_pem,
        sealed_key: String::new(),
        serial: cert.raw_serial_as_string(),
        subject: cert.subject().to_string(),
        issuer,
        not_before: cert.validity().not_before.timestamp() as f64,
        not_after: cert.validity().not_after.timestamp() as f64,
        key_algorithm,
        signature_algorithm,
        names,
    })
}
