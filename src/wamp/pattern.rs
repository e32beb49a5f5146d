//! `PatternIndex<T>`: URIs and URI patterns (exact, prefix, wildcard) mapped to values, with the
//! two queries routing needs:
//!
//! * `for_each_match` — every pattern that matches a concrete URI (pub/sub: every matching
//!   subscription receives the event);
//! * `best_match` — the single most specific pattern (RPC and permissions): exact beats the
//!   longest prefix beats the wildcard with the longest runs of literal components before each
//!   wildcard (spec, "Calls matching multiple registrations").
//!
//! Cost: exact is one hash lookup; prefix probes one lookup per distinct registered prefix length
//! that fits the URI; wildcards live in a component trie walked once per URI.

use super::uri::MatchPolicy;
use std::collections::{BTreeMap, HashMap};

pub struct PatternIndex<T> {
    exact: HashMap<String, T>,
    prefix: HashMap<String, T>,
    /// Distinct prefix lengths in use and how many prefixes have each.
    prefix_lens: BTreeMap<usize, usize>,
    wildcard: WildNode<T>,
    wildcard_count: usize,
}

struct WildNode<T> {
    literal: HashMap<String, WildNode<T>>,
    any: Option<Box<WildNode<T>>>,
    /// The value of a pattern ending here, with the pattern's text.
    value: Option<(String, T)>,
}

impl<T> Default for WildNode<T> {
    fn default() -> Self {
        WildNode {
            literal: HashMap::new(),
            any: None,
            value: None,
        }
    }
}

impl<T> WildNode<T> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.any.is_none() && self.value.is_none()
    }

    fn find_mut(&mut self, parts: &[&str]) -> Option<&mut WildNode<T>> {
        match parts.split_first() {
            None => Some(self),
            Some((first, rest)) => {
                if first.is_empty() {
                    self.any.as_deref_mut()?.find_mut(rest)
                } else {
                    self.literal.get_mut(*first)?.find_mut(rest)
                }
            }
        }
    }

    fn remove(&mut self, parts: &[&str]) -> Option<(String, T)> {
        match parts.split_first() {
            None => self.value.take(),
            Some((first, rest)) => {
                if first.is_empty() {
                    let child = self.any.as_deref_mut()?;
                    let out = child.remove(rest);
                    if child.is_empty() {
                        self.any = None;
                    }
                    out
                } else {
                    let child = self.literal.get_mut(*first)?;
                    let out = child.remove(rest);
                    if child.is_empty() {
                        self.literal.remove(*first);
                    }
                    out
                }
            }
        }
    }

    /// Visits every pattern matching the remaining URI components. Takes the component
    /// iterator by value (cloned at each branch) so matching allocates nothing.
    fn walk<'a>(&'a self, mut parts: std::str::Split<'_, char>, f: &mut dyn FnMut(&'a str, &'a T)) {
        match parts.next() {
            None => {
                if let Some((p, v)) = &self.value {
                    f(p, v);
                }
            }
            Some(first) => {
                if let Some(child) = self.literal.get(first) {
                    child.walk(parts.clone(), f);
                }
                if let Some(child) = &self.any {
                    child.walk(parts, f);
                }
            }
        }
    }
}

impl<T> Default for PatternIndex<T> {
    fn default() -> Self {
        PatternIndex {
            exact: HashMap::new(),
            prefix: HashMap::new(),
            prefix_lens: BTreeMap::new(),
            wildcard: WildNode::default(),
            wildcard_count: 0,
        }
    }
}

/// Ranks wildcard patterns: the lengths of the runs of literal components before each
/// wildcard, compared in order (spec: "longest portion of URI components matched before each
/// wildcard"). An iterator, so ranking allocates nothing.
fn wildcard_runs(pattern: &str) -> impl Iterator<Item = usize> + '_ {
    let mut parts = pattern.split('.');
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut run = 0;
        for c in parts.by_ref() {
            if c.is_empty() {
                return Some(run);
            }
            run += 1;
        }
        done = true;
        Some(run)
    })
}

impl<T> PatternIndex<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.prefix.len() + self.wildcard_count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, pattern: &str, policy: MatchPolicy) -> Option<&T> {
        match policy {
            MatchPolicy::Exact => self.exact.get(pattern),
            MatchPolicy::Prefix => self.prefix.get(pattern),
            MatchPolicy::Wildcard => {
                let parts: Vec<&str> = pattern.split('.').collect();
                let mut node = &self.wildcard;
                for p in &parts {
                    node = if p.is_empty() {
                        node.any.as_deref()?
                    } else {
                        node.literal.get(*p)?
                    };
                }
                node.value.as_ref().map(|(_, v)| v)
            }
        }
    }

    pub fn get_mut(&mut self, pattern: &str, policy: MatchPolicy) -> Option<&mut T> {
        match policy {
            MatchPolicy::Exact => self.exact.get_mut(pattern),
            MatchPolicy::Prefix => self.prefix.get_mut(pattern),
            MatchPolicy::Wildcard => {
                let parts: Vec<&str> = pattern.split('.').collect();
                self.wildcard
                    .find_mut(&parts)?
                    .value
                    .as_mut()
                    .map(|(_, v)| v)
            }
        }
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, pattern: &str, policy: MatchPolicy, value: T) -> Option<T> {
        match policy {
            MatchPolicy::Exact => self.exact.insert(pattern.to_owned(), value),
            MatchPolicy::Prefix => {
                let old = self.prefix.insert(pattern.to_owned(), value);
                if old.is_none() {
                    *self.prefix_lens.entry(pattern.len()).or_insert(0) += 1;
                }
                old
            }
            MatchPolicy::Wildcard => {
                let mut node = &mut self.wildcard;
                for p in pattern.split('.') {
                    node = if p.is_empty() {
                        node.any.get_or_insert_with(Box::default)
                    } else {
                        node.literal.entry(p.to_owned()).or_default()
                    };
                }
                let old = node
                    .value
                    .replace((pattern.to_owned(), value))
                    .map(|(_, v)| v);
                if old.is_none() {
                    self.wildcard_count += 1;
                }
                old
            }
        }
    }

    pub fn remove(&mut self, pattern: &str, policy: MatchPolicy) -> Option<T> {
        match policy {
            MatchPolicy::Exact => self.exact.remove(pattern),
            MatchPolicy::Prefix => {
                let old = self.prefix.remove(pattern)?;
                if let Some(n) = self.prefix_lens.get_mut(&pattern.len()) {
                    *n -= 1;
                    if *n == 0 {
                        self.prefix_lens.remove(&pattern.len());
                    }
                }
                Some(old)
            }
            MatchPolicy::Wildcard => {
                let parts: Vec<&str> = pattern.split('.').collect();
                let old = self.wildcard.remove(&parts).map(|(_, v)| v);
                if old.is_some() {
                    self.wildcard_count -= 1;
                }
                old
            }
        }
    }

    /// Calls `f` for every pattern that matches `uri`.
    pub fn for_each_match<'a>(&'a self, uri: &str, mut f: impl FnMut(&'a T, MatchPolicy)) {
        if let Some(v) = self.exact.get(uri) {
            f(v, MatchPolicy::Exact);
        }
        for &len in self.prefix_lens.keys() {
            if len > uri.len() {
                break;
            }
            if !uri.is_char_boundary(len) {
                continue;
            }
            if let Some(v) = self.prefix.get(&uri[..len]) {
                f(v, MatchPolicy::Prefix);
            }
        }
        if self.wildcard_count > 0 {
            self.wildcard
                .walk(uri.split('.'), &mut |_, v| f(v, MatchPolicy::Wildcard));
        }
    }

    /// The most specific pattern matching `uri`, with its policy.
    pub fn best_match(&self, uri: &str) -> Option<(&T, MatchPolicy)> {
        if let Some(v) = self.exact.get(uri) {
            return Some((v, MatchPolicy::Exact));
        }
        for &len in self.prefix_lens.keys().rev() {
            if len > uri.len() || !uri.is_char_boundary(len) {
                continue;
            }
            if let Some(v) = self.prefix.get(&uri[..len]) {
                return Some((v, MatchPolicy::Prefix));
            }
        }
        if self.wildcard_count == 0 {
            return None;
        }
        let mut best: Option<(&str, &T)> = None;
        self.wildcard.walk(uri.split('.'), &mut |pattern, v| {
            if best.is_none_or(|(b, _)| wildcard_runs(pattern).cmp(wildcard_runs(b)).is_gt()) {
                best = Some((pattern, v));
            }
        });
        best.map(|(_, v)| (v, MatchPolicy::Wildcard))
    }

    /// Every (pattern, policy, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, MatchPolicy, &T)> {
        let mut out: Vec<(&str, MatchPolicy, &T)> = Vec::with_capacity(self.len());
        out.extend(
            self.exact
                .iter()
                .map(|(k, v)| (k.as_str(), MatchPolicy::Exact, v)),
        );
        out.extend(
            self.prefix
                .iter()
                .map(|(k, v)| (k.as_str(), MatchPolicy::Prefix, v)),
        );
        fn collect<'a, T>(n: &'a WildNode<T>, out: &mut Vec<(&'a str, MatchPolicy, &'a T)>) {
            if let Some((p, v)) = &n.value {
                out.push((p.as_str(), MatchPolicy::Wildcard, v));
            }
            for c in n.literal.values() {
                collect(c, out);
            }
            if let Some(c) = &n.any {
                collect(c, out);
            }
        }
        collect(&self.wildcard, &mut out);
        out.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wamp::uri::matches;
    use MatchPolicy::*;

    fn spec_example() -> PatternIndex<u32> {
        let mut idx = PatternIndex::new();
        idx.insert("a1.b2.c3.d4.e55", Exact, 1);
        idx.insert("a1.b2.c3", Prefix, 2);
        idx.insert("a1.b2.c3.d4", Prefix, 3);
        idx.insert("a1.b2..d4.e5", Wildcard, 4);
        idx.insert("a1.b2.c3..e5", Wildcard, 5);
        idx.insert("a1.b2..d4.e5..g7", Wildcard, 6);
        idx.insert("a1.b2..d4..f6.g7", Wildcard, 7);
        idx
    }

    #[test]
    fn best_match_follows_the_spec_examples() {
        let idx = spec_example();
        let best = |u: &str| idx.best_match(u).map(|(v, _)| *v);
        assert_eq!(best("a1.b2.c3.d4.e55"), Some(1));
        assert_eq!(best("a1.b2.c3.d98.e74"), Some(2));
        assert_eq!(best("a1.b2.c3.d4.e325"), Some(3));
        assert_eq!(best("a1.b2.c55.d4.e5"), Some(4));
        assert_eq!(best("a1.b2.c3.d4.e5"), Some(3), "prefix beats wildcard");
        assert_eq!(best("a1.b2.c88.d4.e5.f6.g7"), Some(6));
        assert_eq!(best("a2.b2.c2.d2.e2"), None);
    }

    #[test]
    fn wildcard_runs_are_the_literal_runs_around_each_wildcard() {
        let runs = |p: &str| wildcard_runs(p).collect::<Vec<_>>();
        assert_eq!(runs("a1.b2..d4.e5"), vec![2, 2]);
        assert_eq!(runs("a1.b2.c3..e5"), vec![3, 1]);
        assert_eq!(runs("a.b."), vec![2, 0]);
        assert_eq!(runs("..x"), vec![0, 0, 1]);
        assert_eq!(runs("abc"), vec![1]);
    }

    #[test]
    fn wildcard_ranking_without_prefixes() {
        let mut idx = PatternIndex::new();
        idx.insert("a1.b2..d4.e5", Wildcard, 4);
        idx.insert("a1.b2.c3..e5", Wildcard, 5);
        assert_eq!(idx.best_match("a1.b2.c3.d4.e5").map(|(v, _)| *v), Some(5));
    }

    #[test]
    fn all_matches_agree_with_the_naive_matcher() {
        let idx = spec_example();
        let pats: Vec<(String, MatchPolicy, u32)> =
            idx.iter().map(|(p, m, v)| (p.to_owned(), m, *v)).collect();
        for uri in [
            "a1.b2.c3.d4.e55",
            "a1.b2.c3",
            "a1.b2.c3.d4.e5",
            "a1.b2.x.d4.e5.y.g7",
            "a1.b2.c3x",
            "zzz",
        ] {
            let mut got = Vec::new();
            idx.for_each_match(uri, |v, _| got.push(*v));
            got.sort();
            let mut want: Vec<u32> = pats
                .iter()
                .filter(|(p, m, _)| matches(p, *m, uri))
                .map(|(_, _, v)| *v)
                .collect();
            want.sort();
            assert_eq!(got, want, "{uri}");
        }
    }

    #[test]
    fn remove_prunes_and_updates_counts() {
        let mut idx = spec_example();
        assert_eq!(idx.len(), 7);
        assert_eq!(idx.remove("a1.b2..d4.e5", Wildcard), Some(4));
        assert_eq!(idx.remove("a1.b2..d4.e5", Wildcard), None);
        assert_eq!(idx.remove("a1.b2.c3", Prefix), Some(2));
        assert_eq!(idx.len(), 5);
        assert_eq!(idx.get("a1.b2..d4..f6.g7", Wildcard), Some(&7));
        assert_eq!(idx.best_match("a1.b2.c3.d98.e74").map(|(v, _)| *v), None);
    }
}
