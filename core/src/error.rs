//! Field errors and how a message quotes a user's input: the pure half of the control plane's
//! errors (its `Error` enum and the mapping to gRPC statuses live in the control plane).

use std::fmt;

/// One invalid field: its JSON path (`containerDefinitions[0].portMappings[1].containerPort`)
/// and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The longest piece of a user's input an error message quotes.
pub const MAX_QUOTE: usize = 100;

/// `s` quoted for an error message (`"web"`), cut to `MAX_QUOTE` characters so a megabyte of
/// input is never echoed back in full.
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTE) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &s[..cut], s.chars().count()),
    }
}

/// `s` cut to `MAX_QUOTE` characters (with "…" when cut), unquoted.
pub fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTE) {
        None => s.to_string(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}
