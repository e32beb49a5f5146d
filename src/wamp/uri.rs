//! URI rules (spec "URIs", loose rule) and the three match policies.
//!
//! Loose URIs are dot-separated components that contain no whitespace, no `.` and no `#`.
//! Exact URIs have no empty component; a prefix may end with an empty component (`com.app.`);
//! a wildcard pattern may have empty components anywhere (`com..create`).

/// How a subscription, registration or permission rule matches URIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchPolicy {
    Exact,
    Prefix,
    Wildcard,
}

impl MatchPolicy {
    pub fn parse(s: &str) -> Option<MatchPolicy> {
        match s {
            "exact" => Some(MatchPolicy::Exact),
            "prefix" => Some(MatchPolicy::Prefix),
            "wildcard" => Some(MatchPolicy::Wildcard),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }
}

fn component_ok(c: &str) -> bool {
    !c.chars().any(|ch| ch.is_whitespace() || ch == '#')
}

/// Whether `uri` is a valid URI (or pattern) for the given policy.
pub fn is_valid(uri: &str, policy: MatchPolicy) -> bool {
    if uri.len() > MAX_URI_LEN {
        return false;
    }
    match policy {
        MatchPolicy::Exact => {
            !uri.is_empty() && uri.split('.').all(|c| !c.is_empty() && component_ok(c))
        }
        MatchPolicy::Prefix => {
            if uri.is_empty() {
                return true;
            }
            let parts: Vec<&str> = uri.split('.').collect();
            let last = parts.len() - 1;
            parts
                .iter()
                .enumerate()
                .all(|(i, c)| component_ok(c) && (i == last || !c.is_empty()))
        }
        MatchPolicy::Wildcard => !uri.is_empty() && uri.split('.').all(component_ok),
    }
}

/// Longest URI accepted from a peer.
pub const MAX_URI_LEN: usize = 1024;

/// Whether `uri` (a concrete URI) matches `pattern` under `policy`.
pub fn matches(pattern: &str, policy: MatchPolicy, uri: &str) -> bool {
    match policy {
        MatchPolicy::Exact => pattern == uri,
        MatchPolicy::Prefix => uri.starts_with(pattern),
        MatchPolicy::Wildcard => {
            let mut p = pattern.split('.');
            let mut u = uri.split('.');
            loop {
                match (p.next(), u.next()) {
                    (None, None) => return true,
                    (Some(pc), Some(uc)) => {
                        if !pc.is_empty() && pc != uc {
                            return false;
                        }
                    }
                    _ => return false,
                }
            }
        }
    }
}

/// Whether a URI lies in the namespace the spec reserves for WAMP itself.
pub fn is_reserved(uri: &str) -> bool {
    uri.starts_with("wamp.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatchPolicy::*;

    #[test]
    fn validation() {
        assert!(is_valid("com.myapp.topic1", Exact));
        assert!(is_valid("com.my-app.Topic_1", Exact));
        assert!(!is_valid("com..topic", Exact));
        assert!(!is_valid("com.my app", Exact));
        assert!(!is_valid("com.#", Exact));
        assert!(!is_valid("", Exact));
        assert!(!is_valid(".com", Exact));
        assert!(is_valid("com.myapp.", Prefix));
        assert!(is_valid("", Prefix));
        assert!(!is_valid("com..x", Prefix));
        assert!(is_valid("com..create", Wildcard));
        assert!(is_valid("..", Wildcard));
        assert!(!is_valid("com.a b", Wildcard));
    }

    #[test]
    fn matching() {
        assert!(matches("a.b", Exact, "a.b"));
        assert!(!matches("a.b", Exact, "a.b.c"));
        assert!(matches("a.b", Prefix, "a.b.c"));
        assert!(matches("a.b", Prefix, "a.bc"));
        assert!(matches("", Prefix, "x"));
        assert!(!matches("a.b", Prefix, "a.c"));
        assert!(matches("a..c", Wildcard, "a.b.c"));
        assert!(!matches("a..c", Wildcard, "a.b.d"));
        assert!(!matches("a..c", Wildcard, "a.b.c.d"));
        assert!(!matches("a..", Wildcard, "a.b"));
    }
}
