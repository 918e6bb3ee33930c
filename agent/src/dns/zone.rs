//! The names this node answers, built from the endpoint stream's discovery records: for each
//! Cloud Map service `svc.ns`, A records of its instances' addresses and SRV records of their
//! ports (targets `ID.svc.ns`, with an A each). A query is answered here (`Answer::Local`) when
//! its name is in a namespace this node knows, and forwarded upstream otherwise.

use berth_proto::v1::DiscoveryRecord;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// One instance under a service name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Instance {
    id: String,
    address: Ipv4Addr,
    port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ServiceName {
    instances: Vec<Instance>,
    a: bool,
    srv: bool,
    ttl: u32,
}

/// What this node answers: service names (lowercase, no trailing dot) and namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    services: BTreeMap<String, ServiceName>,
    namespaces: BTreeSet<String>,
}

impl Zone {
    pub fn from_records(records: &[DiscoveryRecord]) -> Self {
        let mut z = Zone::default();
        for r in records {
            let ns = r.namespace.trim_end_matches('.').to_ascii_lowercase();
            let name = format!("{}.{ns}", r.service.to_ascii_lowercase());
            z.namespaces.insert(ns);
            let entry = z.services.entry(name).or_insert_with(|| ServiceName {
                a: r.record_types.iter().any(|t| t == "A"),
                srv: r.record_types.iter().any(|t| t == "SRV"),
                ttl: r.ttl_seconds.max(0) as u32,
                ..Default::default()
            });
            // Only IPv4 addresses become A records; others are skipped, never misread.
            if let Ok(address) = r.address.parse::<Ipv4Addr>() {
                entry.instances.push(Instance {
                    id: r.instance_id.to_ascii_lowercase(),
                    address,
                    port: u16::try_from(r.port).unwrap_or(0),
                });
            }
        }
        z
    }

    fn in_namespace(&self, name: &str) -> bool {
        self.namespaces
            .iter()
            .any(|ns| name == ns || name.ends_with(&format!(".{ns}")))
    }
}

/// What to do with a query.
#[derive(Debug)]
pub enum Answer {
    /// The reply, built here.
    Local(Message),
    /// Not a name of ours: send it upstream.
    Forward,
}

fn record(name: &Name, ttl: u32, rdata: RData) -> Record {
    Record::from_rdata(name.clone(), ttl, rdata)
}

/// The reply to `query`, or `Forward` when its name is not in a namespace this node knows.
pub fn answer(zone: &Zone, query: &Message) -> Answer {
    let Some(q) = query.queries().first() else {
        return Answer::Forward;
    };
    let qname = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if query.op_code() != OpCode::Query || !zone.in_namespace(&qname) {
        return Answer::Forward;
    }
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .add_query(q.clone());
    let name = q.name().clone();
    let qtype = q.query_type();
    // `svc.ns`: its A and SRV records.
    if let Some(s) = zone.services.get(&qname) {
        let wants = |t: RecordType| qtype == t || qtype == RecordType::ANY;
        if s.a && wants(RecordType::A) {
            for i in &s.instances {
                reply.add_answer(record(&name, s.ttl, RData::A(A(i.address))));
            }
        }
        if s.srv && wants(RecordType::SRV) {
            for i in s.instances.iter().filter(|i| i.port > 0) {
                let Ok(target) = Name::from_ascii(format!("{}.{qname}.", i.id)) else {
                    continue;
                };
                reply.add_answer(record(
                    &name,
                    s.ttl,
                    RData::SRV(SRV::new(1, 1, i.port, target.clone())),
                ));
                reply.add_additional(record(&target, s.ttl, RData::A(A(i.address))));
            }
        }
        return Answer::Local(reply);
    }
    // `ID.svc.ns`: an SRV target's address.
    if let Some((id, service)) = qname.split_once('.') {
        if let Some(s) = zone.services.get(service) {
            if let Some(i) = s.instances.iter().find(|i| i.id == id) {
                if matches!(qtype, RecordType::A | RecordType::ANY) {
                    reply.add_answer(record(&name, s.ttl, RData::A(A(i.address))));
                }
                return Answer::Local(reply);
            }
        }
    }
    // A name in one of our namespaces that does not exist: NXDOMAIN, not a forward (the
    // upstream resolvers cannot know it either).
    reply.set_response_code(ResponseCode::NXDomain);
    Answer::Local(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn rec(id: &str, address: &str, port: i32) -> DiscoveryRecord {
        DiscoveryRecord {
            namespace: "internal".into(),
            service: "api".into(),
            instance_id: id.into(),
            address: address.into(),
            port,
            record_types: vec!["A".into(), "SRV".into()],
            ttl_seconds: 5,
        }
    }

    fn ask(zone: &Zone, name: &str, t: RecordType) -> Answer {
        let mut m = Message::new();
        m.set_id(7)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        // Through the wire, as a client sends it.
        answer(zone, &Message::from_vec(&m.to_vec().unwrap()).unwrap())
    }

    fn local(a: Answer) -> Message {
        match a {
            Answer::Local(m) => m,
            Answer::Forward => panic!("forwarded"),
        }
    }

    #[test]
    fn service_names_answer_a_and_srv_and_others_forward() {
        let z = Zone::from_records(&[rec("t1", "10.0.0.1", 32001), rec("t2", "10.0.0.2", 32002)]);
        let a = local(ask(&z, "API.internal.", RecordType::A));
        assert_eq!(a.id(), 7);
        let ips: Vec<String> = a.answers().iter().map(|r| r.data().to_string()).collect();
        assert_eq!(ips, vec!["10.0.0.1", "10.0.0.2"]);
        assert!(a.answers().iter().all(|r| r.ttl() == 5));
        let srv = local(ask(&z, "api.internal.", RecordType::SRV));
        let srvs: Vec<String> = srv.answers().iter().map(|r| r.data().to_string()).collect();
        assert_eq!(
            srvs,
            vec!["1 1 32001 t1.api.internal.", "1 1 32002 t2.api.internal."]
        );
        assert_eq!(srv.additionals().len(), 2);
        let target = local(ask(&z, "t2.api.internal.", RecordType::A));
        assert_eq!(target.answers()[0].data().to_string(), "10.0.0.2");
        let missing = local(ask(&z, "web.internal.", RecordType::A));
        assert_eq!(missing.response_code(), ResponseCode::NXDomain);
        assert!(matches!(
            ask(&z, "example.org.", RecordType::A),
            Answer::Forward
        ));
    }

    #[test]
    fn a_service_with_no_instance_answers_empty_not_nxdomain() {
        let z = Zone::from_records(&[rec("t1", "not-an-ip", 1)]);
        let a = local(ask(&z, "api.internal.", RecordType::A));
        assert_eq!(a.response_code(), ResponseCode::NoError);
        assert!(a.answers().is_empty());
    }
}
