//! What network load balancers add to the ELBv2 model: a listener forwards only to target
//! groups of its own protocol. Their attribute (`proxy_protocol_v2.enabled`) is a row of
//! `attributes`.

use super::same;
use crate::state::error::{Error, Result};
use crate::state::Tx;
use berth_proto::v1::{ElbAction, ElbTargetGroup};

/// Every target group the (resolved) actions forward to speaks `protocol`: an HTTP listener
/// cannot forward to a TCP target group, nor a TCP listener to an HTTP one.
pub(crate) fn same_protocol(
    tx: &mut Tx<'_>,
    field: &str,
    protocol: &str,
    actions: &[ElbAction],
) -> Result<()> {
    for a in actions {
        for t in &a.target_groups {
            let key = super::tg_key(&t.target_group_arn)?;
            let Some(tg) = tx.get::<ElbTargetGroup>(&key)? else {
                continue;
            };
            if same(&tg.arn, &t.target_group_arn) && layer(&tg.protocol) != layer(protocol) {
                let want = if layer(protocol) == Layer::Tcp {
                    "TCP"
                } else {
                    "HTTP or HTTPS"
                };
                return Err(Error::elb(
                    "IncompatibleProtocols",
                    format!(
                        "{field}: target group {} is {} and the listener is {protocol}; forward to a {want} target group",
                        tg.name, tg.protocol
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[derive(PartialEq, Eq)]
enum Layer {
    Tcp,
    Http,
}

/// An HTTP or HTTPS listener forwards to HTTP or HTTPS target groups (ALB); a TCP one to TCP.
fn layer(protocol: &str) -> Layer {
    match protocol {
        "TCP" | "TLS" | "UDP" | "TCP_UDP" => Layer::Tcp,
        _ => Layer::Http,
    }
}
