//! The HTTPS part of the loader: a TCP endpoint's `tls` (Crossbar's `{key, certificate,
//! chain_certificates}`, or Switchboard's `{"acme": true}`), the router worker's `acme` section
//! and its `http_redirect` listener.

use super::{Ctx, Obj};
use crate::config::{Endpoint, ListenerConfig};
use crate::tls::acme::{AcmeConfig, LETS_ENCRYPT_STAGING};
use crate::tls::{TlsFiles, TlsSource};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;

fn file(ctx: &Ctx, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        ctx.base.join(p)
    }
}

/// `endpoint.tls`: `{"key": FILE, "certificate": FILE, "chain_certificates": [FILE, …]}` (PEM;
/// relative paths from the config file's directory) or `{"acme": true}`.
pub(super) fn endpoint_tls(ctx: &mut Ctx, v: &Value, path: &str) -> Result<TlsSource, ConfigError> {
    let o: &Obj = ctx.obj(v, path)?;
    if ctx.bool(o, "acme", path)? {
        ctx.unknown(o, path, &["acme"]);
        return Ok(TlsSource::Acme);
    }
    ctx.unknown(
        o,
        path,
        &["key", "certificate", "chain_certificates", "chain", "acme"],
    );
    let certificate = file(ctx, ctx.required_string(o, "certificate", path)?);
    let key = file(ctx, ctx.required_string(o, "key", path)?);
    let mut chain = Vec::new();
    if let Some(c) = ctx.string(o, "chain", path)? {
        chain.push(file(ctx, c));
    } else if let Some(list) = o.get("chain_certificates") {
        let lp = format!("{path}.chain_certificates");
        for (i, item) in ctx.list(list, &lp)?.iter().enumerate() {
            match item.as_str() {
                Some(s) => chain.push(file(ctx, s)),
                None => return ctx.err(&format!("{lp}[{i}]"), "expected a file name"),
            }
        }
    }
    Ok(TlsSource::Files(TlsFiles {
        certificate,
        key,
        chain,
    }))
}

/// The worker's `acme`: `{"domains": [NAME, …], "email": ADDR | [ADDR, …], "directory": URL |
/// "staging": true, "challenge": "http-01" | "tls-alpn-01", "root_certificate": FILE,
/// "check_interval": SECS}`.
pub(super) fn acme(ctx: &mut Ctx, v: &Value, path: &str) -> Result<AcmeConfig, ConfigError> {
    let o = ctx.obj(v, path)?;
    ctx.unknown(
        o,
        path,
        &[
            "domains",
            "email",
            "directory",
            "staging",
            "root_certificate",
            "check_interval",
            "challenge",
        ],
    );
    let mut domains = Vec::new();
    match o.get("domains") {
        Some(d) => {
            let dp = format!("{path}.domains");
            for (i, item) in ctx.list(d, &dp)?.iter().enumerate() {
                match item.as_str() {
                    Some(s) if valid_domain(s) => domains.push(s.to_ascii_lowercase()),
                    _ => return ctx.err(&format!("{dp}[{i}]"), "expected a DNS name"),
                }
            }
        }
        None => return ctx.err(&format!("{path}.domains"), "missing (required)"),
    }
    if domains.is_empty() {
        return ctx.err(&format!("{path}.domains"), "list at least one DNS name");
    }
    let mut cfg = AcmeConfig::new(domains);
    match o.get("email") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => cfg.emails.push(s.clone()),
        Some(Value::Array(list)) => {
            for (i, item) in list.iter().enumerate() {
                match item.as_str() {
                    Some(s) => cfg.emails.push(s.to_owned()),
                    None => return ctx.err(&format!("{path}.email[{i}]"), "expected an address"),
                }
            }
        }
        Some(_) => return ctx.err(&format!("{path}.email"), "expected an address or a list"),
    }
    if ctx.bool(o, "staging", path)? {
        cfg.directory = LETS_ENCRYPT_STAGING.into();
    }
    if let Some(d) = ctx.string(o, "directory", path)? {
        if !d.starts_with("https://") {
            return ctx.err(&format!("{path}.directory"), "expected an https:// URL");
        }
        cfg.directory = d.to_owned();
    }
    if let Some(c) = ctx.string(o, "challenge", path)? {
        match crate::tls::acme::Challenge::parse(c) {
            Some(c) => cfg.challenge = c,
            None => {
                return ctx.err(
                    &format!("{path}.challenge"),
                    format!("'{c}' is not one of http-01, tls-alpn-01"),
                )
            }
        }
    }
    if let Some(r) = ctx.string(o, "root_certificate", path)? {
        cfg.root_certificate = Some(file(ctx, r));
    }
    if let Some(n) = o.get("check_interval") {
        match n.as_u64().filter(|n| (1..=86_400 * 7).contains(n)) {
            Some(n) => cfg.check_interval = Duration::from_secs(n),
            None => {
                return ctx.err(
                    &format!("{path}.check_interval"),
                    "expected seconds between 1 and 604800",
                )
            }
        }
    }
    Ok(cfg)
}

/// A DNS name (letters, digits, hyphens, dots; no wildcard).
pub fn valid_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// The worker's `http_redirect`: `{"endpoint": {"type": "tcp", "port": 80}}`.
pub(super) fn http_redirect(
    ctx: &mut Ctx,
    v: &Value,
    path: &str,
) -> Result<SocketAddr, ConfigError> {
    let o = ctx.obj(v, path)?;
    ctx.unknown(o, path, &["endpoint"]);
    match super::endpoint(ctx, o, path)? {
        (Endpoint::Tcp(a), None) => Ok(a),
        (Endpoint::Tcp(_), Some(_)) => ctx.err(
            &format!("{path}.endpoint.tls"),
            "the redirect listener speaks plain HTTP",
        ),
        (Endpoint::Unix(_), _) => ctx.err(
            &format!("{path}.endpoint.type"),
            "the redirect listener needs a TCP endpoint",
        ),
    }
}

/// Listeners that want ACME certificates need the `acme` section.
pub(super) fn check(
    ctx: &mut Ctx,
    listeners: &[ListenerConfig],
    acme: Option<&AcmeConfig>,
    wpath: &str,
) -> Result<(), ConfigError> {
    let wants = listeners.iter().find(|l| l.tls == Some(TlsSource::Acme));
    match (wants, acme) {
        (Some(l), None) => ctx.err(
            &format!("{}.endpoint.tls.acme", l.origin),
            format!("needs the worker's ACME section ({wpath}.acme)"),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Loaded};
    use crate::config::Limits;
    use crate::tls::{TlsFiles, TlsSource};
    use std::path::PathBuf;

    fn load(tls: &str, worker: &str) -> Result<Loaded, super::ConfigError> {
        let text = format!(
            r#"{{"version": 2, "workers": [{{"type": "router",
                "realms": [{{"name": "realm1", "roles": [{{"name": "user", "permissions": []}}]}}],
                "transports": [{{"type": "websocket",
                    "endpoint": {{"type": "tcp", "port": 8443, "interface": "127.0.0.1", "tls": {tls}}},
                    "auth": {{"ticket": {{"type": "static", "principals": {{"a": {{"ticket": "t", "role": "user"}}}}}}}}}}]
                {worker}}}]}}"#
        );
        parse(
            &text,
            false,
            "/etc/switchboard/config.json",
            Limits::default(),
        )
    }

    #[test]
    fn crossbar_tls_files_relative_to_the_config() {
        let l = load(
            r#"{"key": "server.key", "certificate": "/abs/server.crt", "chain_certificates": ["ca.pem"], "dhparam": "x"}"#,
            "",
        )
        .unwrap();
        assert_eq!(
            l.node.listeners[0].tls,
            Some(TlsSource::Files(TlsFiles {
                certificate: PathBuf::from("/abs/server.crt"),
                key: PathBuf::from("/etc/switchboard/server.key"),
                chain: vec![PathBuf::from("/etc/switchboard/ca.pem")],
            }))
        );
        assert!(
            l.warnings.iter().any(|w| w.contains("tls.dhparam")),
            "{:?}",
            l.warnings
        );
        let e = load(r#"{"key": "k"}"#, "").unwrap_err();
        assert_eq!(e.path, "workers[0].transports[0].endpoint.tls.certificate");
    }

    #[test]
    fn acme_section_and_redirect() {
        let l = load(
            r#"{"acme": true}"#,
            r#", "acme": {"domains": ["Chat.Example.com"], "email": "ops@example.com", "staging": true, "check_interval": 3600},
                 "http_redirect": {"endpoint": {"type": "tcp", "port": 80}}"#,
        )
        .unwrap();
        assert_eq!(l.node.listeners[0].tls, Some(TlsSource::Acme));
        let acme = l.node.acme.unwrap();
        assert_eq!(acme.domains, ["chat.example.com"]);
        assert_eq!(acme.emails, ["ops@example.com"]);
        assert_eq!(acme.directory, crate::tls::acme::LETS_ENCRYPT_STAGING);
        assert_eq!(acme.check_interval.as_secs(), 3600);
        assert_eq!(acme.challenge, crate::tls::acme::Challenge::Http01);
        assert_eq!(l.node.http_redirect, Some("0.0.0.0:80".parse().unwrap()));

        let e = load(r#"{"acme": true}"#, "").unwrap_err();
        assert!(e.message.contains("acme"), "{e}");
        let e = load(r#"{"acme": true}"#, r#", "acme": {"domains": ["*.x.com"]}"#).unwrap_err();
        assert_eq!(e.path, "workers[0].acme.domains[0]");
        let e = load(
            r#"{"acme": true}"#,
            r#", "acme": {"domains": ["x.com"], "directory": "http://insecure"}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "workers[0].acme.directory");
        let e = load(
            r#"{"acme": true}"#,
            r#", "acme": {"domains": ["x.com"], "challenge": "dns-01"}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "workers[0].acme.challenge");
        let l = load(
            r#"{"acme": true}"#,
            r#", "acme": {"domains": ["x.com"], "challenge": "tls-alpn-01"}"#,
        )
        .unwrap();
        assert_eq!(
            l.node.acme.unwrap().challenge,
            crate::tls::acme::Challenge::TlsAlpn01
        );
    }
}
