//! The gRPC connection to a Berth server, and turning its errors into one line for people.

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};

/// Connects to `url` (`http://HOST:PORT`).
pub async fn connect(url: &str) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("--server {url:?} is not a URL like http://127.0.0.1:7070"))?
        .connect_timeout(std::time::Duration::from_secs(5));
    endpoint.connect().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the Berth server at {url} ({e}); is `berth dev` running? Set --server or BERTH_SERVER"
        )
    })
}

/// A gRPC status becomes its message alone (it already names the field and the fix).
pub fn describe_error(e: &anyhow::Error) -> String {
    if let Some(status) = e.downcast_ref::<tonic::Status>() {
        return status.message().to_string();
    }
    format!("{e:#}")
}
