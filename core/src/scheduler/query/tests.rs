//! The query language alone: parsing, precedence, quoting, errors.

use super::*;
use std::collections::HashMap;

fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn holds(expr: &str, pairs: &[(&str, &str)]) -> bool {
    Query::parse(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .matches(&attrs(pairs))
}

#[test]
fn equals_and_not_equals() {
    assert!(holds("attribute:zone == a", &[("zone", "a")]));
    assert!(!holds("attribute:zone == a", &[("zone", "b")]));
    assert!(!holds("attribute:zone == a", &[]));
    assert!(holds("attribute:zone != a", &[("zone", "b")]));
    assert!(!holds("attribute:zone != a", &[("zone", "a")]));
    assert!(holds("attribute:zone != a", &[]));
    assert!(holds("attribute:zone equals a", &[("zone", "a")]));
}

#[test]
fn in_and_not_in() {
    let e = "attribute:ecs.instance-type in (t2.small, t2.medium)";
    assert!(holds(e, &[("ecs.instance-type", "t2.medium")]));
    assert!(!holds(e, &[("ecs.instance-type", "t2.large")]));
    assert!(!holds(e, &[]));
    let e = "attribute:ecs.instance-type !in (t2.small,t2.medium)";
    assert!(!holds(e, &[("ecs.instance-type", "t2.medium")]));
    assert!(holds(e, &[("ecs.instance-type", "t2.large")]));
    assert!(holds(e, &[]));
    assert!(holds("attribute:zone in (a)", &[("zone", "a")]));
}

#[test]
fn exists_and_not_exists() {
    assert!(holds("attribute:gpu exists", &[("gpu", "")]));
    assert!(!holds("attribute:gpu exists", &[]));
    assert!(holds("attribute:gpu !exists", &[]));
    assert!(!holds("attribute:gpu !exists", &[("gpu", "1")]));
    assert!(holds("attribute:gpu not_exists", &[]));
}

#[test]
fn glob_match() {
    assert!(holds("attribute:type =~ t2.*", &[("type", "t2.micro")]));
    assert!(!holds("attribute:type =~ t2.*", &[("type", "m5.large")]));
    assert!(holds(
        "attribute:type =~ 'm?.la*e'",
        &[("type", "m5.large")]
    ));
    assert!(!holds(
        "attribute:type =~ m?.large",
        &[("type", "m55.large")]
    ));
    assert!(!holds("attribute:type =~ *", &[]));
    assert!(glob("*a*b*", "xxaxxbxx"));
    assert!(glob("a*", "a"));
    assert!(!glob("a*b", "a"));
    assert!(glob("?é", "xé"));
}

#[test]
fn a_bare_name_is_an_attribute() {
    assert!(holds("zone == a", &[("zone", "a")]));
    assert!(holds("ecs.os-type exists", &[("ecs.os-type", "linux")]));
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    // a or (b and c)
    let e = "attribute:a exists or attribute:b exists and attribute:c exists";
    assert!(holds(e, &[("a", "1")]));
    assert!(!holds(e, &[("b", "1")]));
    assert!(holds(e, &[("b", "1"), ("c", "1")]));
    // (not a) and b
    let e = "not attribute:a exists and attribute:b exists";
    assert!(holds(e, &[("b", "1")]));
    assert!(
        !holds(e, &[("a", "1")]),
        "would hold if not covered a and b"
    );
    // (not a) or b
    assert!(holds("not a exists or b exists", &[("a", "1"), ("b", "1")]));
    assert!(holds("! a exists || b exists && c exists", &[]));
    assert!(!holds("!a exists", &[("a", "1")]));
}

#[test]
fn parentheses_override_precedence() {
    let e = "(attribute:a exists or attribute:b exists) and attribute:c exists";
    assert!(!holds(e, &[("a", "1")]));
    assert!(holds(e, &[("a", "1"), ("c", "1")]));
    let e = "not (attribute:a exists and attribute:b exists)";
    assert!(holds(e, &[("a", "1")]));
    assert!(!holds(e, &[("a", "1"), ("b", "1")]));
    assert!(holds("((zone == a))", &[("zone", "a")]));
}

#[test]
fn quoted_values_may_hold_spaces_commas_and_keywords() {
    assert!(holds(
        "attribute:team == 'data eng'",
        &[("team", "data eng")]
    ));
    assert!(holds(r#"attribute:team == "a, b""#, &[("team", "a, b")]));
    assert!(holds(
        r#"attribute:team in ("and", 'or (x)')"#,
        &[("team", "or (x)")]
    ));
    assert!(holds(
        r#"attribute:q == "say \"hi\"""#,
        &[("q", "say \"hi\"")]
    ));
    assert!(holds("attribute:empty == ''", &[("empty", "")]));
    assert!(holds("attribute:p == /data/x:1", &[("p", "/data/x:1")]));
}

#[test]
fn keywords_are_case_insensitive() {
    assert!(holds(
        "zone == a OR zone == b AND NOT gpu EXISTS",
        &[("zone", "a")]
    ));
    assert!(holds("zone IN (a)", &[("zone", "a")]));
}

#[test]
fn display_and_names_come_from_the_source() {
    let q = Query::parse("  zone == a and attribute:gpu exists or zone != b ").unwrap();
    assert_eq!(
        q.to_string(),
        "zone == a and attribute:gpu exists or zone != b"
    );
    assert_eq!(q.attribute_names(), vec!["zone", "gpu"]);
}

fn err(expr: &str) -> String {
    Query::parse(expr).unwrap_err()
}

#[test]
fn parse_errors_say_what_and_where() {
    assert_eq!(
        err("attribute:zone ==   and x exists"),
        "expected a value after '==' at column 21, found 'and'"
    );
    assert_eq!(
        err("attribute:zone =="),
        "expected a value after '==' at column 18, found the end of the expression"
    );
    assert_eq!(
        err("(zone == a"),
        "expected ')' at column 11 to close the '(' at column 1, found the end of the expression"
    );
    assert!(err("zone = a").contains("unexpected '=' at column 6"));
    assert!(err("zone > 1").contains("unexpected character '>' at column 6"));
    assert!(err("zone is a").starts_with(
        "expected an operator (==, !=, in, !in, exists, !exists, =~) after attribute:zone at column 6, found 'is'"
    ));
    assert!(err("zone == 'a").contains("the quote ' opened at column 9 is never closed"));
    assert!(err("zone == a b").contains("unexpected 'b' at column 11"));
    assert!(err("zone in a").contains("expected '(' after 'in' at column 9"));
    assert!(err("zone in ()").contains("expected a value after '(' at column 10"));
    assert!(err("zone in (a,)").contains("expected a value after ',' at column 12"));
    assert!(err("zone in (a b)").contains("expected ',' or ')'"));
    assert!(err("zone == a and").contains("expected an attribute (attribute:NAME) at column 14"));
    assert!(err("attribute: exists").contains("attribute name after 'attribute:'"));
    assert!(err("   ").contains("empty"));
    assert!(err("and == a").contains("expected an attribute"));
}

#[test]
fn an_expression_past_the_length_limit_is_refused_before_it_is_read() {
    let deep = format!("{}zone == a{}", "(".repeat(2_500), ")".repeat(2_500));
    assert_eq!(
        err(&deep),
        "5009 characters is over the maximum of 2000 characters (ECS's limit on a cluster query expression)"
    );
    let flat = vec!["zone == a"; 20_000].join(" and ");
    assert!(err(&flat).contains("over the maximum of 2000 characters"));
    // Exactly at the limit it is read.
    let at_limit = format!("zone == {}", "a".repeat(1_992));
    assert_eq!(at_limit.len(), 2_000);
    assert!(Query::parse(&at_limit).is_ok());
}

#[test]
fn nesting_past_the_depth_limit_is_refused_naming_the_limit() {
    let ok = format!("{}zone == a{}", "(".repeat(32), ")".repeat(32));
    assert!(holds(&ok, &[("zone", "a")]));
    let deep = format!("{}zone == a{}", "(".repeat(33), ")".repeat(33));
    assert_eq!(
        err(&deep),
        "nested more than 32 levels deep (parentheses and not) at column 33, over the limit; write the conditions flatter"
    );
    let nots = format!("{}zone == a", "not ".repeat(40));
    assert!(err(&nots).contains("nested more than 32 levels deep"));
    let bangs = format!("{}zone == a", "!".repeat(40));
    assert!(err(&bangs).contains("nested more than 32 levels deep"));
    // Depth is nesting, not count: many groups side by side are fine.
    let wide = vec!["(zone == a)"; 100].join(" or ");
    assert!(holds(&wide, &[("zone", "a")]));
}
