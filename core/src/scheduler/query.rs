//! ECS's cluster query language over node attributes, as `memberOf` constraints use it: a
//! hand-written tokenizer and recursive-descent parser into an expression tested against one
//! node's attributes. `not` binds tightest, then `and`, then `or`; parentheses group.

mod parse;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

/// A parsed `memberOf` expression; `Display` gives back the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    source: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Test { name: String, op: Op },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Glob(String),
}

impl Query {
    /// Parses an expression such as `attribute:zone in (a, b) and not attribute:gpu exists`.
    /// Errors say what was expected and at which column (1-based, in characters).
    pub fn parse(expression: &str) -> Result<Query, String> {
        let expr = parse::parse(expression)?;
        Ok(Query {
            source: expression.trim().to_string(),
            expr,
        })
    }

    /// Whether a node with these attributes satisfies the expression. A missing attribute
    /// equals nothing, so `!=` and `!in` hold for it (they are `not ==` and `not in`).
    pub fn matches(&self, attributes: &HashMap<String, String>) -> bool {
        self.expr.eval(attributes)
    }

    /// The attribute names the expression reads, in order of first use; rejections show them.
    pub fn attribute_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.expr.names(&mut names);
        names
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Expr {
    fn eval(&self, attrs: &HashMap<String, String>) -> bool {
        match self {
            Expr::Or(a, b) => a.eval(attrs) || b.eval(attrs),
            Expr::And(a, b) => a.eval(attrs) && b.eval(attrs),
            Expr::Not(e) => !e.eval(attrs),
            Expr::Test { name, op } => {
                let v = attrs.get(name).map(String::as_str);
                match op {
                    Op::Eq(want) => v == Some(want.as_str()),
                    Op::Ne(want) => v != Some(want.as_str()),
                    Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                    Op::NotIn(set) => !v.is_some_and(|v| set.iter().any(|s| s == v)),
                    Op::Exists => v.is_some(),
                    Op::NotExists => v.is_none(),
                    Op::Glob(pattern) => v.is_some_and(|v| glob(pattern, v)),
                }
            }
        }
    }

    fn names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Or(a, b) | Expr::And(a, b) => {
                a.names(out);
                b.names(out);
            }
            Expr::Not(e) => e.names(out),
            Expr::Test { name, .. } => {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
        }
    }
}

/// Whole-string glob match: `*` is any run of characters, `?` exactly one.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and the text position it currently stands for, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}
