//! Switchboard's own `calls.turn` section of the router worker: the built-in TURN relay.
//!
//! ```json
//! "calls": {"turn_secret": "…", "turn": {"listen": "0.0.0.0:3478", "tcp_listen": "0.0.0.0:3478",
//!   "relay_ports": [49152, 65535], "external_ip": "203.0.113.10", "relay_ip": "10.0.0.5",
//!   "host": "turn.example.com", "realm": "switchboard", "user_quota": 10, "total_quota": 1000,
//!   "max_bps": 1000000, "default_lifetime": 600, "max_lifetime": 3600, "nonce_lifetime": 600,
//!   "allow_loopback_peers": false}}
//! ```
//! Every key is optional; `"turn": {}` runs the relay with the defaults. `tcp_listen: null`
//! turns TCP off.

use super::{kind, ConfigError, Ctx, Obj};
use crate::calls::turn::TurnConfig;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};

fn addr(ctx: &Ctx, o: &Obj, key: &str, path: &str) -> Result<Option<SocketAddr>, ConfigError> {
    match ctx.string(o, key, path)? {
        None => Ok(None),
        Some(a) => match a.parse() {
            Ok(a) => Ok(Some(a)),
            Err(_) => ctx.err(
                &format!("{path}.{key}"),
                format!("'{a}' is not an address like 0.0.0.0:3478"),
            ),
        },
    }
}

fn ip(ctx: &Ctx, o: &Obj, key: &str, path: &str) -> Result<Option<IpAddr>, ConfigError> {
    match ctx.string(o, key, path)? {
        None => Ok(None),
        Some(a) => match a.parse() {
            Ok(a) => Ok(Some(a)),
            Err(_) => ctx.err(
                &format!("{path}.{key}"),
                format!("'{a}' is not an IP address"),
            ),
        },
    }
}

fn num(
    ctx: &Ctx,
    o: &Obj,
    key: &str,
    path: &str,
    default: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if n <= max => Ok(n),
            _ => ctx.err(
                &format!("{path}.{key}"),
                format!("expected a whole number from 0 to {max}, got {}", kind(v)),
            ),
        },
    }
}

pub(super) fn turn(ctx: &mut Ctx, v: &Value, path: &str) -> Result<TurnConfig, ConfigError> {
    let o = ctx.obj(v, path)?;
    ctx.unknown(
        o,
        path,
        &[
            "listen",
            "tcp_listen",
            "relay_ports",
            "external_ip",
            "relay_ip",
            "host",
            "realm",
            "user_quota",
            "total_quota",
            "max_bps",
            "default_lifetime",
            "max_lifetime",
            "nonce_lifetime",
            "allow_loopback_peers",
        ],
    );
    let d = TurnConfig::default();
    let listen = addr(ctx, o, "listen", path)?.unwrap_or(d.listen);
    let tcp_listen = match o.get("tcp_listen") {
        Some(Value::Null) => None,
        None => Some(listen),
        Some(_) => addr(ctx, o, "tcp_listen", path)?,
    };
    let (min_port, max_port) = match o.get("relay_ports") {
        None => (d.min_port, d.max_port),
        Some(v) => match v.as_array().map(|a| a.as_slice()) {
            Some([lo, hi]) => match (lo.as_u64(), hi.as_u64()) {
                (Some(lo), Some(hi)) if 1 <= lo && lo <= hi && hi <= 65535 => {
                    (lo as u16, hi as u16)
                }
                _ => {
                    return ctx.err(
                        &format!("{path}.relay_ports"),
                        "expected [low, high] ports, 1 ≤ low ≤ high ≤ 65535",
                    )
                }
            },
            _ => {
                return ctx.err(
                    &format!("{path}.relay_ports"),
                    "expected [low, high] ports, e.g. [49152, 65535]",
                )
            }
        },
    };
    let realm = ctx.string(o, "realm", path)?.unwrap_or(&d.realm).to_owned();
    if realm.is_empty() || realm.len() > 127 {
        return ctx.err(&format!("{path}.realm"), "expected 1 to 127 characters");
    }
    let default_lifetime = num(
        ctx,
        o,
        "default_lifetime",
        path,
        d.default_lifetime.into(),
        86_400,
    )? as u32;
    let max_lifetime = num(ctx, o, "max_lifetime", path, d.max_lifetime.into(), 86_400)? as u32;
    if default_lifetime == 0 || max_lifetime < default_lifetime {
        return ctx.err(
            &format!("{path}.max_lifetime"),
            "expected 0 < default_lifetime ≤ max_lifetime",
        );
    }
    let allow_loopback_peers = ctx.bool(o, "allow_loopback_peers", path)?;
    Ok(TurnConfig {
        listen,
        tcp_listen,
        relay_ip: ip(ctx, o, "relay_ip", path)?,
        external_ip: ip(ctx, o, "external_ip", path)?,
        host: ctx.string(o, "host", path)?.map(str::to_owned),
        min_port,
        max_port,
        realm,
        user_quota: num(ctx, o, "user_quota", path, d.user_quota.into(), 1_000_000)? as u32,
        total_quota: num(ctx, o, "total_quota", path, d.total_quota.into(), 1_000_000)? as u32,
        max_bps: num(ctx, o, "max_bps", path, d.max_bps, u64::from(u32::MAX))?,
        default_lifetime,
        max_lifetime,
        nonce_lifetime: num(
            ctx,
            o,
            "nonce_lifetime",
            path,
            d.nonce_lifetime.into(),
            86_400,
        )?
        .max(1) as u32,
        allow_loopback_peers,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::crossbar::parse;
    use crate::config::Limits;

    fn with_calls(calls: &str) -> String {
        format!(
            r#"{{"version": 2, "workers": [{{"type": "router",
            "realms": [{{"name": "realm1", "roles": [{{"name": "anonymous", "permissions": []}}]}}],
            "transports": [{{"type": "websocket", "endpoint": {{"type": "tcp", "port": 8080, "interface": "127.0.0.1"}}}}],
            "calls": {calls}}}]}}"#
        )
    }

    #[test]
    fn the_turn_section_and_its_defaults() {
        let l = parse(
            &with_calls(r#"{"turn_secret": "s", "turn": {}}"#),
            false,
            "t.json",
            Limits::default(),
        )
        .unwrap();
        let t = l.node.router.calls.turn.unwrap();
        assert_eq!(t, crate::calls::turn::TurnConfig::default());
        let l = parse(
            &with_calls(
                r#"{"turn_secret": "s", "turn": {"listen": "127.0.0.1:3479", "tcp_listen": null,
                "relay_ports": [50000, 50100], "external_ip": "203.0.113.10", "realm": "example.com",
                "user_quota": 2, "total_quota": 50, "max_bps": 0, "default_lifetime": 300,
                "max_lifetime": 1200, "allow_loopback_peers": true}}"#,
            ),
            false,
            "t.json",
            Limits::default(),
        )
        .unwrap();
        let t = l.node.router.calls.turn.unwrap();
        assert_eq!(t.listen.to_string(), "127.0.0.1:3479");
        assert_eq!(t.tcp_listen, None);
        assert_eq!((t.min_port, t.max_port), (50000, 50100));
        assert_eq!(t.external_ip.unwrap().to_string(), "203.0.113.10");
        assert_eq!((t.user_quota, t.total_quota, t.max_bps), (2, 50, 0));
        assert_eq!((t.default_lifetime, t.max_lifetime), (300, 1200));
        assert!(t.allow_loopback_peers);
        assert_eq!(t.realm, "example.com");
    }

    #[test]
    fn wrong_turn_sections_name_the_path() {
        for (calls, path) in [
            (r#"{"turn": {}}"#, "calls.turn_secret"),
            (
                r#"{"turn_secret": "s", "turn": {"listen": "x"}}"#,
                "calls.turn.listen",
            ),
            (
                r#"{"turn_secret": "s", "turn": {"relay_ports": [5, 4]}}"#,
                "calls.turn.relay_ports",
            ),
            (
                r#"{"turn_secret": "s", "turn": {"external_ip": "nope"}}"#,
                "calls.turn.external_ip",
            ),
            (
                r#"{"turn_secret": "s", "turn": {"max_lifetime": 10}}"#,
                "calls.turn.max_lifetime",
            ),
            (
                r#"{"turn_secret": "s", "turn": {"user_quota": -1}}"#,
                "calls.turn.user_quota",
            ),
            (r#"{"turn_secret": "s", "turn": 5}"#, "calls.turn"),
        ] {
            let e = match parse(&with_calls(calls), false, "t.json", Limits::default()) {
                Err(e) => e,
                Ok(_) => panic!("{calls} loaded"),
            };
            assert!(
                e.path.ends_with(path),
                "{calls}: {} ({})",
                e.path,
                e.message
            );
        }
    }
}
