//! The ACM operations: ImportCertificate, DescribeCertificate, ListCertificates, GetCertificate,
//! DeleteCertificate, RequestCertificate (its order is run by `control::acme`), and the tag
//! operations. Shapes, error names and messages follow botocore's acm model.

use super::{
    arn_of, get, id_of, list, pem, put_op, seal_key, CertificateRecord, Tag, Users, Validation,
    PREFIX,
};
use crate::model::secrets::{now, AwsError, AwsResult};
use crate::state::error::Error;
use crate::state::State;
use crate::store::Op;
use base64::Engine;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The operations Berth answers; None for one it does not.
pub fn call(state: &State, users: Users, op: &str, input: &Value) -> Option<AwsResult<Value>> {
    Some(match op {
        "ImportCertificate" => import(state, input),
        "DescribeCertificate" => describe(state, users, input),
        "ListCertificates" => list_certificates(state, users, input),
        "GetCertificate" => get_certificate(state, input),
        "DeleteCertificate" => delete(state, users, input),
        "RequestCertificate" => request(state, input),
        "AddTagsToCertificate" => add_tags(state, input),
        "RemoveTagsFromCertificate" => remove_tags(state, input),
        "ListTagsForCertificate" => list_tags(state, input),
        _ => return None,
    })
}

fn text<'a>(input: &'a Value, field: &str) -> Option<&'a str> {
    input.get(field).and_then(Value::as_str)
}

fn required<'a>(input: &'a Value, field: &str) -> AwsResult<&'a str> {
    text(input, field)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AwsError::new("ValidationException", format!("{field}: is required")))
}

/// A state error as ACM names it: the code an `Error::Elb` carries, else the general mapping.
fn aws(e: Error) -> AwsError {
    match e {
        Error::Elb { code, message } => AwsError::new(code, message),
        other => other.into(),
    }
}

fn not_found(arn: &str) -> AwsError {
    AwsError::new(
        "ResourceNotFoundException",
        format!("Could not find certificate {arn}; `aws acm list-certificates` lists them"),
    )
}

/// The record a CertificateArn names.
fn existing(state: &State, input: &Value) -> AwsResult<CertificateRecord> {
    let arn = required(input, "CertificateArn")?;
    if id_of(arn).is_none() {
        return Err(AwsError::new(
            "InvalidArnException",
            format!("CertificateArn: {arn:?} is not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)"),
        ));
    }
    get(state, arn)?.ok_or_else(|| not_found(arn))
}

/// A PEM blob of ImportCertificate: base64 on the wire (the CLI's `fileb://`).
fn blob(input: &Value, field: &str) -> AwsResult<Option<String>> {
    let Some(b) = text(input, field) else {
        return Ok(None);
    };
    let raw = B64.decode(b).map_err(|_| {
        AwsError::new(
            "ValidationException",
            format!("{field}: must be base64 of the PEM text (the aws CLI sends fileb://FILE so)"),
        )
    })?;
    String::from_utf8(raw)
        .map(Some)
        .map_err(|_| AwsError::new("ValidationException", format!("{field}: must be PEM text")))
}

fn tags(input: &Value) -> AwsResult<Vec<Tag>> {
    let Some(list) = input.get("Tags") else {
        return Ok(Vec::new());
    };
    let tags: Vec<Tag> = serde_json::from_value(list.clone()).map_err(|e| {
        AwsError::new(
            "InvalidTagException",
            format!("Tags: {e}; give [{{\"Key\": K, \"Value\": V}}]"),
        )
    })?;
    for (i, t) in tags.iter().enumerate() {
        if t.key.is_empty() || t.key.len() > 128 || t.key.starts_with("aws:") {
            return Err(AwsError::new(
                "InvalidTagException",
                format!(
                    "Tags[{i}].Key: {:?} must be 1-128 characters, not starting with aws:",
                    t.key
                ),
            ));
        }
    }
    if tags.len() > 50 {
        return Err(AwsError::new(
            "TooManyTagsException",
            "Tags: at most 50 tags a certificate",
        ));
    }
    Ok(tags)
}

fn new_id() -> String {
    let r: u128 = rand::random::<u128>() & !(0xf << 76) | (0x4 << 76);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        r >> 96,
        (r >> 80) & 0xffff,
        (r >> 64) & 0xffff,
        (r >> 48) & 0xffff,
        r & 0xffff_ffff_ffff
    )
}

fn import(state: &State, input: &Value) -> AwsResult<Value> {
    let certificate = blob(input, "Certificate")?
        .ok_or_else(|| AwsError::new("ValidationException", "Certificate: is required"))?;
    let private_key = blob(input, "PrivateKey")?
        .ok_or_else(|| AwsError::new("ValidationException", "PrivateKey: is required"))?;
    let chain = blob(input, "CertificateChain")?.unwrap_or_default();
    let new_tags = tags(input)?;
    let mut issued = pem::read(&certificate, &chain, &private_key)?;
    let reimport = text(input, "CertificateArn").filter(|a| !a.is_empty());
    if reimport.is_some() && !new_tags.is_empty() {
        return Err(AwsError::new(
            "InvalidParameterException",
            "Tags: are not allowed when re-importing (CertificateArn given); use add-tags-to-certificate",
        ));
    }
    let arn = state.update(|tx| {
        let mut r = match reimport {
            Some(arn) => {
                let id = id_of(arn).ok_or_else(|| {
                    Error::elb(
                        "InvalidArnException",
                        format!("CertificateArn: {arn:?} is not an ACM certificate ARN"),
                    )
                })?;
                let raw = tx.get_raw(&super::key_of(id))?;
                let r: CertificateRecord = raw
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or_else(|| Error::elb("ResourceNotFoundException", not_found(arn).message))?;
                if r.kind != "IMPORTED" {
                    return Err(Error::elb("InvalidParameterException", format!(
                        "CertificateArn: {arn} was issued by Berth's ACME; only imported certificates are re-imported"
                    )));
                }
                r
            }
            None => {
                let id = new_id();
                tx.get_raw(&super::key_of(&id))?;
                CertificateRecord {
                    arn: arn_of(&id),
                    id,
                    kind: "IMPORTED".into(),
                    created_at: now(),
                    tags: new_tags.clone(),
                    ..Default::default()
                }
            }
        };
        r.generation += 1;
        issued.sealed_key = seal_key(&r.id, r.generation, &private_key)
            .map_err(|e| Error::elb("InvalidParameterException", e.message))?;
        r.domain_name = issued.names[0].clone();
        r.sans = issued.names.clone();
        r.status = if issued.not_after < now() {
            "EXPIRED".into()
        } else {
            "ISSUED".into()
        };
        r.imported_at = Some(now());
        r.issued = Some(issued.clone());
        Ok((r.arn.clone(), vec![put_op(&r)]))
    });
    let arn = arn.map_err(aws)?;
    Ok(json!({ "CertificateArn": arn }))
}

fn detail(state: &State, users: Users, r: &CertificateRecord) -> AwsResult<Value> {
    let in_use = (users.now)(state, &r.arn)?;
    let mut d = json!({
        "CertificateArn": r.arn,
        "DomainName": r.domain_name,
        "SubjectAlternativeNames": r.sans,
        "Status": r.status,
        "Type": r.kind,
        "CreatedAt": r.created_at,
        "InUseBy": in_use,
        "RenewalEligibility": if r.kind == "AMAZON_ISSUED" { "ELIGIBLE" } else { "INELIGIBLE" },
        "Options": {"CertificateTransparencyLoggingPreference": "DISABLED"},
    });
    let o = d.as_object_mut().expect("an object");
    if let Some(i) = &r.issued {
        o.insert("Serial".into(), json!(i.serial));
        o.insert("Subject".into(), json!(i.subject));
        o.insert("Issuer".into(), json!(i.issuer));
        o.insert("NotBefore".into(), json!(i.not_before));
        o.insert("NotAfter".into(), json!(i.not_after));
        o.insert("KeyAlgorithm".into(), json!(i.key_algorithm));
        o.insert("SignatureAlgorithm".into(), json!(i.signature_algorithm));
    }
    if let Some(t) = r.imported_at {
        o.insert("ImportedAt".into(), json!(t));
    }
    if let Some(t) = r.issued_at {
        o.insert("IssuedAt".into(), json!(t));
    }
    if let Some(f) = &r.failure_reason {
        o.insert("FailureReason".into(), json!(f));
    }
    if let Some(v) = &r.validation {
        let options: Vec<Value> = r
            .sans
            .iter()
            .map(|d| {
                json!({
                    "DomainName": d,
                    "ValidationDomain": d,
                    "ValidationStatus": v.status,
                    "ValidationMethod": v.method,
                })
            })
            .collect();
        o.insert("DomainValidationOptions".into(), json!(options));
    }
    if let Some((status, at, why)) = &r.renewal {
        let mut s = json!({
            "RenewalStatus": status,
            "DomainValidationOptions": [],
            "UpdatedAt": at,
        });
        if let Some(why) = why {
            s["RenewalStatusReason"] = json!(why);
        }
        o.insert("RenewalSummary".into(), s);
    }
    Ok(d)
}

fn describe(state: &State, users: Users, input: &Value) -> AwsResult<Value> {
    let r = existing(state, input)?;
    Ok(json!({ "Certificate": detail(state, users, &r)? }))
}

fn list_certificates(state: &State, users: Users, input: &Value) -> AwsResult<Value> {
    let statuses: Vec<String> = input
        .get("CertificateStatuses")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let key_types: Vec<String> = input
        .pointer("/Includes/keyTypes")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let max = input
        .get("MaxItems")
        .and_then(Value::as_u64)
        .unwrap_or(1000)
        .clamp(1, 1000) as usize;
    let start = match text(input, "NextToken") {
        Some(t) => t.parse::<usize>().map_err(|_| {
            AwsError::new(
                "InvalidArgsException",
                "NextToken: not a token this server gave",
            )
        })?,
        None => 0,
    };
    let all: Vec<CertificateRecord> = list(state)?
        .into_iter()
        .filter(|r| statuses.is_empty() || statuses.contains(&r.status))
        .filter(|r| {
            key_types.is_empty()
                || r.issued
                    .as_ref()
                    .is_some_and(|i| key_types.contains(&i.key_algorithm))
        })
        .collect();
    let mut summaries = Vec::new();
    for r in all.iter().skip(start).take(max) {
        let mut s = json!({
            "CertificateArn": r.arn,
            "DomainName": r.domain_name,
            "SubjectAlternativeNameSummaries": r.sans,
            "HasAdditionalSubjectAlternativeNames": false,
            "Status": r.status,
            "Type": r.kind,
            "InUse": !(users.now)(state, &r.arn)?.is_empty(),
            "RenewalEligibility": if r.kind == "AMAZON_ISSUED" { "ELIGIBLE" } else { "INELIGIBLE" },
            "CreatedAt": r.created_at,
        });
        if let Some(i) = &r.issued {
            s["KeyAlgorithm"] = json!(i.key_algorithm);
            s["NotBefore"] = json!(i.not_before);
            s["NotAfter"] = json!(i.not_after);
        }
        if let Some(t) = r.imported_at {
            s["ImportedAt"] = json!(t);
        }
        if let Some(t) = r.issued_at {
            s["IssuedAt"] = json!(t);
        }
        summaries.push(s);
    }
    let mut out = json!({ "CertificateSummaryList": summaries });
    if start + max < all.len() {
        out["NextToken"] = json!((start + max).to_string());
    }
    Ok(out)
}

fn get_certificate(state: &State, input: &Value) -> AwsResult<Value> {
    let r = existing(state, input)?;
    let Some(i) = &r.issued else {
        return Err(AwsError::new(
            "RequestInProgressException",
            format!(
                "Certificate {} is {}; it has no certificate to get yet",
                r.arn, r.status
            ),
        ));
    };
    let mut out = json!({ "Certificate": i.certificate_pem });
    if !i.chain_pem.is_empty() {
        out["CertificateChain"] = json!(i.chain_pem);
    }
    Ok(out)
}

fn delete(state: &State, users: Users, input: &Value) -> AwsResult<Value> {
    let r = existing(state, input)?;
    let key = super::key_of(&r.id);
    let refused = state.update(|tx| {
        // Read inside the commit, so a listener added meanwhile makes this decide again.
        let users = (users.in_commit)(tx, &r.arn)?;
        if !users.is_empty() {
            return Ok((Some(users), vec![]));
        }
        tx.get_raw(&key)?;
        Ok((None, vec![Op::Delete(key.clone())]))
    })?;
    if let Some(users) = refused {
        return Err(AwsError::new(
            "ResourceInUseException",
            format!(
                "Certificate {} is in use by {}; remove it from the listener first (aws elbv2 remove-listener-certificates or modify-listener)",
                r.arn,
                users.join(", ")
            ),
        ));
    }
    Ok(json!({}))
}

/// A DNS name a certificate may be requested for: labels of letters, digits and hyphens, an
/// optional `*.` first; at most 253 characters.
fn domain(field: &str, d: &str) -> AwsResult<String> {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    let bare = d.strip_prefix("*.").unwrap_or(&d);
    let ok = !bare.is_empty()
        && d.len() <= 253
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !ok {
        return Err(AwsError::new(
            "InvalidParameterException",
            format!("{field}: {d:?} must be a DNS name, e.g. app.example.com or *.example.com"),
        ));
    }
    Ok(d)
}

fn request(state: &State, input: &Value) -> AwsResult<Value> {
    let name = domain("DomainName", required(input, "DomainName")?)?;
    let mut sans = vec![name.clone()];
    if let Some(list) = input
        .get("SubjectAlternativeNames")
        .and_then(Value::as_array)
    {
        for (i, v) in list.iter().enumerate() {
            let d = domain(
                &format!("SubjectAlternativeNames[{i}]"),
                v.as_str().unwrap_or_default(),
            )?;
            if !sans.contains(&d) {
                sans.push(d);
            }
        }
    }
    if sans.len() > 10 {
        return Err(AwsError::new(
            "LimitExceededException",
            "SubjectAlternativeNames: at most 10 names a certificate",
        ));
    }
    let method = text(input, "ValidationMethod").unwrap_or("HTTP");
    if !matches!(method, "HTTP" | "DNS") {
        return Err(AwsError::new(
            "InvalidParameterException",
            format!("ValidationMethod: {method:?} is not served by Berth; use HTTP (ACME HTTP-01 through the proxy) or DNS (ACME DNS-01 through --acme-dns-hook)"),
        ));
    }
    if method == "HTTP" {
        if let Some(w) = sans.iter().find(|d| d.starts_with("*.")) {
            return Err(AwsError::new(
                "InvalidDomainValidationOptionsException",
                format!("DomainName: {w} is a wildcard, which ACME issues only after DNS validation; use --validation-method DNS"),
            ));
        }
    }
    if let Some(k) = text(input, "KeyAlgorithm") {
        if !matches!(k, "EC_prime256v1" | "EC_secp384r1") {
            return Err(AwsError::new(
                "InvalidParameterException",
                format!("KeyAlgorithm: {k:?} is not made by Berth; use EC_prime256v1 (the default) or EC_secp384r1"),
            ));
        }
    }
    let key_algorithm = text(input, "KeyAlgorithm")
        .unwrap_or("EC_prime256v1")
        .to_string();
    let token = text(input, "IdempotencyToken").unwrap_or("").to_string();
    let new_tags = tags(input)?;
    let arn = state.update(|tx| {
        let existing = tx.scan_keys(PREFIX)?;
        if !token.is_empty() {
            for k in &existing {
                let same: Option<CertificateRecord> = tx
                    .state()
                    .get_raw(k)?
                    .and_then(|b| serde_json::from_slice(&b).ok());
                if let Some(r) = same.filter(|r| r.idempotency_token == token && r.sans == sans) {
                    return Ok((r.arn, vec![]));
                }
            }
        }
        let id = new_id();
        let r = CertificateRecord {
            arn: arn_of(&id),
            id,
            domain_name: name.clone(),
            sans: sans.clone(),
            kind: "AMAZON_ISSUED".into(),
            status: "PENDING_VALIDATION".into(),
            created_at: now(),
            tags: new_tags.clone(),
            validation: Some(Validation {
                method: method.to_string(),
                status: "PENDING_VALIDATION".into(),
                ..Default::default()
            }),
            idempotency_token: token.clone(),
            key_algorithm: key_algorithm.clone(),
            events: vec![(now(), format!("requested ({key_algorithm})"))],
            ..Default::default()
        };
        Ok((r.arn.clone(), vec![put_op(&r)]))
    })?;
    Ok(json!({ "CertificateArn": arn }))
}

fn update_tags(
    state: &State,
    input: &Value,
    change: impl Fn(&mut Vec<Tag>, &[Tag]),
) -> AwsResult<Value> {
    let r = existing(state, input)?;
    let given = tags(input)?;
    let key = super::key_of(&r.id);
    state.update(|tx| {
        let Some(mut r) = tx
            .get_raw(&key)?
            .and_then(|b| serde_json::from_slice::<CertificateRecord>(&b).ok())
        else {
            return Ok(((), vec![]));
        };
        change(&mut r.tags, &given);
        Ok(((), vec![put_op(&r)]))
    })?;
    Ok(json!({}))
}

fn add_tags(state: &State, input: &Value) -> AwsResult<Value> {
    if input.get("Tags").is_none() {
        return Err(AwsError::new("ValidationException", "Tags: is required"));
    }
    update_tags(state, input, |tags, given| {
        for t in given {
            tags.retain(|o| o.key != t.key);
            tags.push(t.clone());
        }
    })
}

fn remove_tags(state: &State, input: &Value) -> AwsResult<Value> {
    update_tags(state, input, |tags, given| {
        tags.retain(|o| {
            !given
                .iter()
                .any(|t| t.key == o.key && (t.value.is_none() || t.value == o.value))
        })
    })
}

fn list_tags(state: &State, input: &Value) -> AwsResult<Value> {
    let r = existing(state, input)?;
    Ok(json!({ "Tags": r.tags }))
}
