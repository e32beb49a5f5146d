//! Query strings as HTML forms encode them (`a=1&b=x%2By+z`): `+` is a space, `%XX` a byte.
//! The first value of a repeated name counts (as in Crossbar).

/// The decoded value of the first `name=` in `query`; `None` if absent or not UTF-8.
pub fn first(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k)? == name).then_some(v)
        })
        .next()
        .and_then(decode)
}

/// Form decoding; `None` for a malformed escape or bytes that are not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let q = Some("key=my+app&timestamp=2011-10-14T16%3A59%3A51.123Z&seq=1&seq=2&flag");
        assert_eq!(first(q, "key").as_deref(), Some("my app"));
        assert_eq!(
            first(q, "timestamp").as_deref(),
            Some("2011-10-14T16:59:51.123Z")
        );
        assert_eq!(first(q, "seq").as_deref(), Some("1"), "first value counts");
        assert_eq!(first(q, "flag").as_deref(), Some(""));
        assert_eq!(first(q, "nonce"), None);
        assert_eq!(first(None, "key"), None);
        assert_eq!(first(Some("sig=ab%3D"), "sig").as_deref(), Some("ab="));
        assert_eq!(first(Some("sig=ab="), "sig").as_deref(), Some("ab="));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%ff"), None, "not UTF-8");
        assert_eq!(decode("%C3%A9").as_deref(), Some("é"));
    }
}
