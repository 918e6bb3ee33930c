//! SigV4 on the ECS API: reading `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
//! Signature=…`, and checking a signature by signing the same request again with aws-sigv4 and
//! the key's secret. The credential scope also gives the region the client meant.

use crate::model::auth::{Authorizer, AwsDenied};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use axum::http::HeaderMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far a request's X-Amz-Date may be from the server's clock (as AWS allows).
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// What the `Authorization` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// The parts of an `AWS4-HMAC-SHA256` header; `None` when there is no such header.
pub fn parse(headers: &HeaderMap) -> Option<Result<Signed, String>> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').unwrap_or(("", ""));
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let parsed = (|| {
        let credential = credential.ok_or("the Authorization header has no Credential")?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [id, date, region, service, "aws4_request"] = scope[..] else {
            return Err("Credential must be KEY/DATE/REGION/SERVICE/aws4_request".to_string());
        };
        Ok(Signed {
            access_key_id: id.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            signed_headers: signed_headers
                .ok_or("the Authorization header has no SignedHeaders")?
                .split(';')
                .map(str::to_string)
                .collect(),
            signature: signature
                .ok_or("the Authorization header has no Signature")?
                .to_string(),
        })
    })();
    Some(parsed)
}

/// `20261201T085500Z` as a time.
fn amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || !s.ends_with('Z') || s.as_bytes().get(8) != Some(&b'T') {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        s.get(0..4)?,
        s.get(4..6)?,
        s.get(6..8)?,
        s.get(9..11)?,
        s.get(11..13)?,
        s.get(13..15)?
    );
    let ms = crate::time::parse_rfc3339(&text)?;
    Some(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).ok()?))
}

/// Whether `signed` is the signature of this request made with `secret`.
pub fn verify(
    signed: &Signed,
    secret: &str,
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Amz-Date header")?;
    let when = amz_date(date).ok_or("X-Amz-Date must look like 20261201T085500Z")?;
    let now = SystemTime::now();
    let skew = now
        .duration_since(when)
        .or_else(|_| when.duration_since(now))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(format!(
            "signed at {date}, more than 15 minutes from the server's clock"
        ));
    }
    if !date.starts_with(&signed.date) {
        return Err("the credential scope's date is not the X-Amz-Date's".into());
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or("no Host header")?;
    let mut pairs = Vec::new();
    for name in &signed.signed_headers {
        for v in headers.get_all(name.as_str()) {
            let v = v
                .to_str()
                .map_err(|_| format!("header {name} is not text"))?;
            pairs.push((name.as_str(), v));
        }
    }
    let identity = Credentials::new(&signed.access_key_id, secret, None, None, "berth").into();
    let mut settings = SigningSettings::default();
    // Only the headers the client signed are given, so none need excluding.
    settings.excluded_headers = Some(Vec::new());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&signed.region)
        .name(&signed.service)
        .time(when)
        .settings(settings)
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let uri = format!("http://{host}{path_and_query}");
    let request = SignableRequest::new(method, uri, pairs.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| format!("unsignable request: {e}"))?;
    let output = sign(request, &params).map_err(|e| format!("signing: {e}"))?;
    let expected = output.signature();
    if berth_trust::token::constant_time_eq(expected.as_bytes(), signed.signature.as_bytes()) {
        Ok(())
    } else {
        Err("the signature differs from the one this request has with that key's secret".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        let t = amz_date("20261124T091403Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_795_511_643
        );
        assert!(amz_date("2026-11-24").is_none());
    }

    #[test]
    fn authorization_headers_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/eu-west-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
                .parse()
                .unwrap(),
        );
        let s = parse(&h).unwrap().unwrap();
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.signed_headers, ["host", "x-amz-date"]);
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=x".parse().unwrap(),
        );
        assert!(parse(&h).unwrap().is_err());
        h.insert("authorization", "Bearer x".parse().unwrap());
        assert!(parse(&h).is_none());
    }
}

/// The parts of a request its signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a axum::http::Method,
    pub uri: &'a axum::http::Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Why [`authorize`] refused a request.
#[derive(Debug)]
pub enum Refusal {
    /// Signed with another AWS service's name in its credential scope; holds the name wanted.
    OtherService(&'static str),
    /// Unsigned, an unknown key, a bad signature, or a key that may not call this operation.
    Denied(AwsDenied),
}

impl Refusal {
    /// What to tell the client about an [`Refusal::OtherService`].
    pub fn other_service_message(wanted: &str) -> String {
        format!("the request is signed for another AWS service; sign it for {wanted}")
    }
}

/// Reads the request's SigV4 signature and checks it, and the key's rights, for `path`
/// (`/service.Target/Operation`, which names the operation for read-only keys). `service` is the
/// signing name the credential scope must carry, when the API has one of its own. On a server
/// without authentication every request passes. Returns the signature, whose scope also says
/// which region the client meant.
pub fn authorize(
    auth: &Authorizer,
    req: &SignedRequest<'_>,
    service: Option<&'static str>,
    path: &str,
) -> Result<Option<Signed>, Refusal> {
    let signed = match parse(req.headers) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(why)) if auth.enabled() => {
            return Err(Refusal::Denied(AwsDenied::BadSignature(why)))
        }
        Some(Err(_)) => None,
    };
    if let Some(wanted) = service {
        if auth.enabled() && signed.as_ref().is_some_and(|s| s.service != wanted) {
            return Err(Refusal::OtherService(wanted));
        }
    }
    let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str());
    auth.authorize_aws(
        signed.as_ref().map(|s| s.access_key_id.as_str()),
        |secret| match &signed {
            Some(s) => verify(
                s,
                secret,
                req.method.as_str(),
                path_and_query,
                req.headers,
                req.body,
            ),
            None => Err("unsigned".into()),
        },
        path,
    )
    .map_err(Refusal::Denied)?;
    Ok(signed)
}
