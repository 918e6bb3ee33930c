//! The ELBv2 operations of HTTPS listeners: Add/Remove/DescribeListenerCertificates and
//! DescribeSSLPolicies, and the `Certificates` list CreateListener and ModifyListener read.

use super::ctx::Ctx;
use super::query::Params;
use super::xml::Xml;
use crate::model::elb;
use crate::state::error::{Error, Result};
use berth_core::tls::POLICIES;

/// `Certificates.member.N.CertificateArn`, in order (at most the quota and a default).
pub fn certificates(p: &Params) -> Vec<String> {
    (1..=elb::tls::CERTIFICATES_PER_LISTENER + 1)
        .filter_map(|i| p.get(&format!("Certificates.member.{i}.CertificateArn")))
        .map(str::to_string)
        .collect()
}

fn write(x: &mut Xml, certs: &[(String, bool)]) {
    x.list("Certificates", certs, |x, (arn, default)| {
        x.text("CertificateArn", arn);
        x.text("IsDefault", if *default { "true" } else { "false" });
    });
}

pub fn add(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let arn = p.required("ListenerArn")?;
    let added = elb::add_listener_certificates(ctx.state, &arn, &certificates(p))?;
    write(x, &added);
    Ok(())
}

pub fn remove(ctx: &Ctx<'_>, p: &Params, _: &mut Xml) -> Result<()> {
    let arn = p.required("ListenerArn")?;
    let certs = certificates(p);
    if certs.is_empty() {
        return Err(Error::elb(
            "ValidationError",
            "Certificates: give at least one CertificateArn",
        ));
    }
    elb::remove_listener_certificates(ctx.state, &arn, &certs)
}

pub fn describe(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let arn = p.required("ListenerArn")?;
    write(x, &elb::listener_certificates(ctx.state, &arn)?);
    Ok(())
}

pub fn describe_ssl_policies(_: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let names = p.list("Names");
    for n in &names {
        elb::tls::ssl_policy(Some(n))?;
    }
    let chosen: Vec<_> = POLICIES
        .iter()
        .filter(|pol| names.is_empty() || names.iter().any(|n| n == pol.name))
        .collect();
    x.list("SslPolicies", &chosen, |x, pol| {
        let protocols: Vec<String> = pol.protocols.iter().map(|s| s.to_string()).collect();
        x.strings("SslProtocols", &protocols);
        x.list(
            "Ciphers",
            &pol.ciphers.iter().enumerate().collect::<Vec<_>>(),
            |x, (i, c)| {
                x.text("Name", c);
                x.text("Priority", &(i + 1).to_string());
            },
        );
        x.text("Name", pol.name);
        x.strings("SupportedLoadBalancerTypes", &["application".to_string()]);
    });
    Ok(())
}
