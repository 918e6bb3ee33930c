//! Task definitions, decided purely: reading ECS JSON (`json`), normalizing and validating
//! (`validate`, with every bound in `bounds`), and references (`FAMILY`, `FAMILY:REV` or an
//! ARN). The registry of families and revisions in the store is the control plane's.

mod bounds;
mod container_fields;
pub use container_fields::{KEPT_LOG_DRIVERS, LOG_DRIVERS};
#[cfg(test)]
mod container_fields_tests;
mod json;
#[cfg(test)]
mod limits_tests;
mod schema;
pub mod unmodeled;
mod validate;
mod volumes;

pub use bounds::{bounds_problems, json_size};
pub use json::{decode, Decoded};
pub use validate::normalize;

/// `FAMILY`, `FAMILY:REV` or an ARN `arn:…:task-definition/FAMILY:REV`, split.
pub fn parse_reference(s: &str) -> Option<(String, Option<i32>)> {
    let s = s.trim();
    let s = s.rsplit_once("task-definition/").map_or(s, |(_, r)| r);
    let (family, rev) = match s.split_once(':') {
        Some((f, r)) => (f, Some(r.parse::<i32>().ok().filter(|r| *r > 0)?)),
        None => (s, None),
    };
    if family.is_empty() {
        return None;
    }
    Some((family.to_string(), rev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(parse_reference("web"), Some(("web".into(), None)));
        assert_eq!(parse_reference("web:3"), Some(("web".into(), Some(3))));
        assert_eq!(
            parse_reference("arn:berth:ecs:local:0:task-definition/web:2"),
            Some(("web".into(), Some(2)))
        );
        assert_eq!(parse_reference("web:x"), None);
        assert_eq!(parse_reference("web:0"), None);
    }
}
