//! ALB-style wildcard patterns for listener rules: `*` matches any run of bytes (also none), `?`
//! exactly one. Hosts compare case-insensitively, paths exactly. Request paths and host names are
//! ASCII on the wire, so matching works on bytes.

/// One compiled host or path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// Lower-cased when the pattern is case-insensitive.
    bytes: Box<[u8]>,
    case_insensitive: bool,
}

impl Pattern {
    /// A host pattern: compared case-insensitively, without a port.
    pub fn host(pattern: &str) -> Self {
        Self {
            bytes: pattern.to_ascii_lowercase().into_bytes().into(),
            case_insensitive: true,
        }
    }

    /// A path pattern: compared case-sensitively against the path (no query string).
    pub fn path(pattern: &str) -> Self {
        Self {
            bytes: pattern.as_bytes().into(),
            case_insensitive: false,
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        glob(&self.bytes, text.as_bytes(), self.case_insensitive)
    }
}

/// Iterative wildcard matching: on a mismatch, back up to the last `*` and let it swallow one more
/// byte. Linear in practice, never exponential.
fn glob(pattern: &[u8], text: &[u8], case_insensitive: bool) -> bool {
    let same = |p: u8, t: u8| {
        if case_insensitive {
            p == t.to_ascii_lowercase()
        } else {
            p == t
        }
    };
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently stands in for up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == b'?' || same(pattern[p], text[t])) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The Host header without its port: `a.example:8080` → `a.example`, `[::1]:80` → `[::1]`.
pub(crate) fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rfind(':') {
        Some(colon) if host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..colon],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_ignore_case_and_take_wildcards() {
        assert!(Pattern::host("a.example").matches("A.Example"));
        assert!(Pattern::host("*.example").matches("b.example"));
        assert!(Pattern::host("*.example").matches("x.y.example"));
        assert!(!Pattern::host("*.example").matches("example"));
        assert!(Pattern::host("?.example").matches("c.example"));
        assert!(!Pattern::host("?.example").matches("cc.example"));
        assert!(Pattern::host("WWW.*.COM").matches("www.shop.com"));
    }

    #[test]
    fn path_patterns_are_case_sensitive() {
        assert!(Pattern::path("/api/*").matches("/api/users"));
        assert!(Pattern::path("/api/*").matches("/api/"));
        assert!(!Pattern::path("/api/*").matches("/api"));
        assert!(!Pattern::path("/api/*").matches("/API/users"));
        assert!(Pattern::path("/img/*.png").matches("/img/a/b.png"));
        assert!(!Pattern::path("/img/*.png").matches("/img/a/b.png.txt"));
        assert!(Pattern::path("/v?/x").matches("/v2/x"));
        assert!(Pattern::path("*").matches(""));
        assert!(Pattern::path("/a*b*c").matches("/aXbYbZc"));
        assert!(!Pattern::path("/a*b*c").matches("/aXbYbZ"));
    }

    #[test]
    fn the_port_is_not_part_of_the_host() {
        assert_eq!(host_without_port("a.example:8080"), "a.example");
        assert_eq!(host_without_port("a.example"), "a.example");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
    }
}
