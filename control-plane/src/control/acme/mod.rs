//! The ACME runner: the IO half of ACM's RequestCertificate. On the leader only, it looks for
//! certificates waiting for an order (PENDING_VALIDATION) or past two thirds of their lifetime,
//! and runs an RFC 8555 order for each with instant-acme: HTTP-01 answered by every proxy
//! (the challenge goes out on the routing table), DNS-01 through a webhook that publishes the
//! TXT record. What it learns is committed through the fenced state (`certificates::orders`),
//! so a deposed leader's order writes nothing.

mod http;

use crate::model::certificates::{orders, CertificateRecord};
use crate::state::State;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::watch;

/// Where orders go and how they are validated (`berth server --acme-directory …`).
#[derive(Debug, Clone, Default)]
pub struct AcmeConfig {
    /// The ACME directory URL (Let's Encrypt's, or a private CA's).
    pub directory: String,
    /// The account's contact address.
    pub email: Option<String>,
    /// A root to trust for the directory's HTTPS besides the system's (pebble's test root).
    pub ca_root: Option<PathBuf>,
    /// DNS-01: a URL that is POSTed `{"action": "present"|"cleanup", "domain", "name", "value"}`
    /// and answers 2xx once the TXT record `name` holds `value` (or is gone).
    pub dns_hook: Option<String>,
}

static CONFIG: OnceLock<AcmeConfig> = OnceLock::new();

/// Sets this process's ACME settings (once; a server started again in one process keeps them).
pub fn configure(config: AcmeConfig) {
    let _ = CONFIG.set(config);
}

/// How often the runner looks for work.
const EVERY: Duration = Duration::from_secs(1);

/// Runs while this replica leads; `state` is fenced by its term.
pub async fn run(state: State, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let due = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || orders::due(&state))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        if due.is_empty() {
            continue;
        }
        let Some(config) = CONFIG.get().filter(|c| !c.directory.is_empty()) else {
            for r in due {
                let state = state.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    orders::failed(
                        &state,
                        &r.id,
                        "OTHER",
                        "this server has no ACME directory; start it with --acme-directory URL",
                    )
                })
                .await;
            }
            continue;
        };
        for r in due {
            let outcome = tokio::select! {
                o = order(&state, config, &r) => o,
                _ = stopped.wait_for(|s| *s) => return,
            };
            let state = state.clone();
            let id = r.id.clone();
            let _ = tokio::task::spawn_blocking(move || match outcome {
                Ok((chain, key)) => orders::issued(&state, &id, &chain, &key),
                Err((reason, detail)) => {
                    tracing::warn!(certificate = %id, "ACME order failed: {detail}");
                    orders::failed(&state, &id, reason, &detail)
                }
            })
            .await;
        }
    }
}

type Failure = (&'static str, String);

fn other(what: &str) -> impl Fn(instant_acme::Error) -> Failure + '_ {
    move |e| (reason_of(&e), format!("{what}: {e}"))
}

/// ACM's FailureReason for what the ACME server said.
fn reason_of(e: &instant_acme::Error) -> &'static str {
    let text = e.to_string();
    if text.contains(":caa") {
        "CAA_ERROR"
    } else if text.contains(":rejectedIdentifier") {
        "DOMAIN_NOT_ALLOWED"
    } else if text.contains(":unauthorized")
        || text.contains(":connection")
        || text.contains(":dns")
        || text.contains(":incorrectResponse")
    {
        "DOMAIN_VALIDATION_DENIED"
    } else {
        "OTHER"
    }
}

async fn account(state: &State, config: &AcmeConfig) -> Result<Account, Failure> {
    let client = || {
        http::Client::new(config.ca_root.as_deref())
            .map(|c| Account::builder_with_http(Box::new(c)))
            .map_err(|e| ("OTHER", e))
    };
    let kept = {
        let (state, directory) = (state.clone(), config.directory.clone());
        tokio::task::spawn_blocking(move || orders::account(&state, &directory))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    };
    if let Some(json) = kept {
        if let Ok(credentials) = serde_json::from_str::<AccountCredentials>(&json) {
            return client()?
                .from_credentials(credentials)
                .await
                .map_err(other("the ACME account"));
        }
    }
    let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = client()?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            None,
        )
        .await
        .map_err(other("creating the ACME account"))?;
    let json = serde_json::to_string(&credentials).unwrap_or_default();
    let (state, directory) = (state.clone(), config.directory.clone());
    let _ =
        tokio::task::spawn_blocking(move || orders::keep_account(&state, &directory, &json)).await;
    Ok(account)
}

/// One order for `r`'s names: (certificate chain PEM, key PEM).
async fn order(
    state: &State,
    config: &AcmeConfig,
    r: &CertificateRecord,
) -> Result<(String, String), Failure> {
    let account = account(state, config).await?;
    let identifiers: Vec<Identifier> = r.sans.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(other("the ACME order"))?;
    let dns = r.validation.as_ref().is_some_and(|v| v.method == "DNS");
    let mut tokens = Vec::new();
    let mut records = Vec::new();
    let validated = validate(state, config, &mut order, dns, &mut tokens, &mut records).await;
    // The answers go away whatever happened.
    if !tokens.is_empty() {
        let (state, t) = (state.clone(), tokens.clone());
        let _ = tokio::task::spawn_blocking(move || orders::withdraw_challenges(&state, &t)).await;
    }
    for (domain, name, value) in &records {
        if let Some(hook) = &config.dns_hook {
            let _ = dns_hook(hook, "cleanup", domain, name, value).await;
        }
    }
    validated?;
    let key = match r.key_algorithm.as_str() {
        "EC_secp384r1" => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
    }
    .map_err(|e| ("OTHER", format!("making a key: {e}")))?;
    let csr = rcgen::CertificateParams::new(r.sans.clone())
        .and_then(|p| p.serialize_request(&key))
        .map_err(|e| ("OTHER", format!("making the CSR: {e}")))?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(other("finalizing the order"))?;
    let chain = order
        .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(60)))
        .await
        .map_err(other("fetching the certificate"))?;
    Ok((chain, key.serialize_pem()))
}

/// Answers every pending authorization's challenge and waits for the order to be ready.
async fn validate(
    state: &State,
    config: &AcmeConfig,
    order: &mut instant_acme::Order,
    dns: bool,
    tokens: &mut Vec<String>,
    records: &mut Vec<(String, String, String)>,
) -> Result<(), Failure> {
    let kind = if dns {
        ChallengeType::Dns01
    } else {
        ChallengeType::Http01
    };
    let mut answers = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(a) = authorizations.next().await {
        let mut a = a.map_err(other("reading an authorization"))?;
        if a.status == AuthorizationStatus::Valid {
            continue;
        }
        let mut challenge = a.challenge(kind.clone()).ok_or_else(|| {
            (
                "OTHER",
                format!("the ACME server offers no {kind:?} challenge"),
            )
        })?;
        let domain = challenge.identifier().to_string();
        let auth = challenge.key_authorization();
        if dns {
            let Some(hook) = &config.dns_hook else {
                return Err((
                    "OTHER",
                    "DNS validation needs a hook: start the server with --acme-dns-hook URL".into(),
                ));
            };
            let name = format!("_acme-challenge.{}", domain.trim_start_matches("*."));
            let value = auth.dns_value();
            dns_hook(hook, "present", &domain, &name, &value)
                .await
                .map_err(|e| ("OTHER", format!("the DNS hook: {e}")))?;
            records.push((domain, name, value));
        } else {
            tokens.push(challenge.token.clone());
            answers.push((challenge.token.clone(), auth.as_str().to_string()));
            // Published before the CA is told to look.
            let (state, a) = (state.clone(), answers.clone());
            tokio::task::spawn_blocking(move || orders::offer_challenges(&state, &a))
                .await
                .map_err(|e| ("OTHER", e.to_string()))?
                .map_err(|e| ("OTHER", e.to_string()))?;
            // The proxies hear of it on their routing stream, a moment after the commit.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        challenge
            .set_ready()
            .await
            .map_err(other("answering the challenge"))?;
    }
    let status = order
        .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(60)))
        .await
        .map_err(other("validation"))?;
    if status != OrderStatus::Ready {
        return Err(("OTHER", format!("the order is {status:?}, not ready")));
    }
    Ok(())
}

/// POSTs a DNS-01 record to the hook; 2xx means done.
async fn dns_hook(
    url: &str,
    action: &str,
    domain: &str,
    name: &str,
    value: &str,
) -> Result<(), String> {
    let body = serde_json::json!({
        "action": action, "domain": domain, "name": name, "value": value,
    })
    .to_string();
    let status = http::post_json(url, body)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("{url} answered {status}"))
    }
}
