//! The HTTP bridge in a node config: Crossbar's `publisher` and `caller` web paths, and
//! Switchboard's own `webhooks` list on the router worker (Crossbar has no equivalent in the
//! router; its HTTP subscriber is a separate container component).

use super::{infer_match, kind, ConfigError, Ctx, Obj};
use crate::config::ipnet::IpNet;
use crate::config::{BridgeConfig, BridgeKey, BridgeKind, Secret, WebhookConfig};
use crate::wamp::uri;
use serde_json::Value;
use std::time::Duration;

/// The built-in role of router-internal sessions that are not permission-checked.
const TRUSTED: &str = "trusted";

/// Crossbar's default `timestamp_delta_limit` (its code; the docs say 0).
const DEFAULT_TIMESTAMP_DELTA: u64 = 300;
/// Crossbar accepts at most a day.
const MAX_TIMESTAMP_DELTA: u64 = 86_400;
const DEFAULT_CALL_TIMEOUT_SECS: u64 = 30;
const MAX_BODY_LIMIT: u64 = 16 << 20;

/// An integer option within `min..=max`, `default` when absent.
fn int(
    ctx: &Ctx,
    o: &Obj,
    key: &str,
    path: &str,
    default: u64,
    (min, max): (u64, u64),
) -> Result<u64, ConfigError> {
    let p = format!("{path}.{key}");
    match o.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => match n.as_u64().filter(|v| (min..=max).contains(v)) {
            Some(v) => Ok(v),
            None => ctx.err(&p, format!("expected an integer {min}..{max}, got {n}")),
        },
        Some(v) => ctx.err(&p, format!("expected an integer, got {}", kind(v))),
    }
}

/// `realm` (required, defined) and `role` (defined in that realm, or `trusted`).
fn realm_and_role<'o>(
    ctx: &Ctx,
    o: &'o Obj,
    path: &str,
    role_required: bool,
) -> Result<(&'o str, Option<&'o str>), ConfigError> {
    let realm = ctx.required_string(o, "realm", path)?;
    let Some(roles) = ctx.realm_roles.get(realm) else {
        return ctx.err(
            &format!("{path}.realm"),
            format!("realm '{realm}' is not defined"),
        );
    };
    let role = if role_required {
        Some(ctx.required_string(o, "role", path)?)
    } else {
        ctx.string(o, "role", path)?
    };
    if let Some(r) = role {
        if r != TRUSTED && !roles.contains(r) {
            return ctx.err(
                &format!("{path}.role"),
                format!(
                    "role '{r}' is not defined in realm '{realm}' (nor the built-in '{TRUSTED}')"
                ),
            );
        }
    }
    Ok((realm, role))
}

/// `{"type": "publisher" | "caller", "realm", "role", "options": {...}}`.
pub(super) fn bridge_path(
    ctx: &mut Ctx,
    s: &Obj,
    path: &str,
    type_: &str,
) -> Result<BridgeConfig, ConfigError> {
    ctx.unknown(s, path, &["type", "id", "realm", "role", "options"]);
    let kind = if type_ == "caller" {
        BridgeKind::Caller
    } else {
        BridgeKind::Publisher
    };
    let (realm, role) = realm_and_role(ctx, s, path, true)?;
    let (realm, role) = (realm.to_owned(), role.unwrap_or(TRUSTED).to_owned());
    let empty = Obj::new();
    let op = format!("{path}.options");
    let o = match s.get("options") {
        Some(v) => ctx.obj(v, &op)?,
        None => &empty,
    };
    let mut known = vec![
        "key",
        "secret",
        "post_body_limit",
        "timestamp_delta_limit",
        "require_ip",
        "require_tls",
        "debug",
    ];
    if kind == BridgeKind::Caller {
        known.push("call_timeout");
    }
    ctx.unknown(o, &op, &known);
    let signing = match (ctx.string(o, "key", &op)?, ctx.string(o, "secret", &op)?) {
        (None, None) => None,
        (Some(key), Some(secret)) if !secret.is_empty() => Some(BridgeKey {
            key: key.to_owned(),
            secret: Secret(secret.to_owned()),
        }),
        (Some(_), Some(_)) => return ctx.err(&format!("{op}.secret"), "must not be empty"),
        (Some(_), None) => {
            return ctx.err(
                &format!("{op}.secret"),
                "missing: 'key' and 'secret' go together",
            )
        }
        (None, Some(_)) => {
            return ctx.err(
                &format!("{op}.key"),
                "missing: 'key' and 'secret' go together",
            )
        }
    };
    let body_limit = match int(ctx, o, "post_body_limit", &op, 0, (0, MAX_BODY_LIMIT))? {
        0 => ctx.max_message_size,
        n => n as usize,
    };
    let delta = int(
        ctx,
        o,
        "timestamp_delta_limit",
        &op,
        DEFAULT_TIMESTAMP_DELTA,
        (0, MAX_TIMESTAMP_DELTA),
    )?;
    let require_ip = match o.get("require_ip") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let lp = format!("{op}.require_ip");
            let mut nets = Vec::new();
            for (i, item) in ctx.list(v, &lp)?.iter().enumerate() {
                match item.as_str().and_then(IpNet::parse) {
                    Some(n) => nets.push(n),
                    None => {
                        return ctx.err(
                            &format!("{lp}[{i}]"),
                            format!(
                                "expected an IP address or network (10.0.0.0/8, 192.168.1.0/255.255.255.0), got {item}"
                            ),
                        )
                    }
                }
            }
            Some(nets)
        }
    };
    let require_tls = ctx.bool(o, "require_tls", &op)?;
    let call_timeout = int(
        ctx,
        o,
        "call_timeout",
        &op,
        DEFAULT_CALL_TIMEOUT_SECS,
        (1, 3600),
    )?;
    Ok(BridgeConfig {
        kind,
        realm,
        role,
        signing,
        body_limit,
        timestamp_window: (delta > 0).then(|| Duration::from_secs(delta)),
        require_ip,
        require_tls,
        debug: ctx.bool(o, "debug", &op)?,
        call_timeout: Duration::from_secs(call_timeout),
    })
}

/// The router worker's `webhooks`: `[{"realm", "role"?, "topics": [...], "url", ...}]`.
pub(super) fn webhooks(
    ctx: &mut Ctx,
    v: &Value,
    path: &str,
) -> Result<Vec<WebhookConfig>, ConfigError> {
    let mut out = Vec::new();
    for (i, item) in ctx.list(v, path)?.iter().enumerate() {
        out.push(webhook(ctx, item, &format!("{path}[{i}]"))?);
    }
    Ok(out)
}

fn webhook(ctx: &mut Ctx, v: &Value, path: &str) -> Result<WebhookConfig, ConfigError> {
    let o = ctx.obj(v, path)?;
    ctx.unknown(
        o,
        path,
        &[
            "realm",
            "role",
            "topics",
            "url",
            "max_queue",
            "retries",
            "retry_delay_ms",
            "max_retry_delay_ms",
            "timeout_ms",
        ],
    );
    let (realm, role) = realm_and_role(ctx, o, path, false)?;
    let tp = format!("{path}.topics");
    let list = match o.get("topics") {
        Some(t) => ctx.list(t, &tp)?,
        None => return ctx.err(&tp, "missing (required)"),
    };
    if list.is_empty() {
        return ctx.err(&tp, "empty: name at least one topic");
    }
    let mut topics = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let Some(raw) = t.as_str() else {
            return ctx.err(
                &format!("{tp}[{i}]"),
                format!("expected a topic URI, got {}", kind(t)),
            );
        };
        let (topic, policy) = infer_match(raw);
        if !uri::is_valid(&topic, policy) {
            return ctx.err(
                &format!("{tp}[{i}]"),
                format!(
                    "'{raw}' is not a valid topic pattern (read as match '{}')",
                    policy.as_str()
                ),
            );
        }
        topics.push((topic, policy));
    }
    let url = ctx.required_string(o, "url", path)?;
    check_url(ctx, url, &format!("{path}.url"))?;
    let retry_delay = int(ctx, o, "retry_delay_ms", path, 500, (1, 3_600_000))?;
    let max_retry_delay = int(ctx, o, "max_retry_delay_ms", path, 30_000, (1, 3_600_000))?;
    if max_retry_delay < retry_delay {
        return ctx.err(
            &format!("{path}.max_retry_delay_ms"),
            format!("smaller than retry_delay_ms ({retry_delay})"),
        );
    }
    Ok(WebhookConfig {
        realm: realm.to_owned(),
        role: role.map(str::to_owned),
        topics,
        url: url.to_owned(),
        max_queue: int(ctx, o, "max_queue", path, 1000, (1, 1_000_000))? as usize,
        retries: int(ctx, o, "retries", path, 5, (0, 100))? as u32,
        retry_delay: Duration::from_millis(retry_delay),
        max_retry_delay: Duration::from_millis(max_retry_delay),
        timeout: Duration::from_millis(int(ctx, o, "timeout_ms", path, 10_000, (1, 600_000))?),
        origin: path.to_owned(),
    })
}

/// Webhook URLs are plain `http://host[:port]/path` (there is no TLS client).
fn check_url(ctx: &Ctx, url: &str, path: &str) -> Result<(), ConfigError> {
    let parsed = match url.parse::<hyper::Uri>() {
        Ok(u) => u,
        Err(e) => return ctx.err(path, format!("'{url}' is not a URL: {e}")),
    };
    match parsed.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return ctx.err(
                path,
                "https webhooks are not supported yet (no TLS client): use http to a local receiver or proxy",
            )
        }
        _ => return ctx.err(path, format!("'{url}' is not an http:// URL")),
    }
    match parsed.authority() {
        Some(a) if !a.host().is_empty() => Ok(()),
        _ => ctx.err(path, format!("'{url}' names no host")),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::crossbar::{parse, ConfigError, Loaded};
    use crate::config::{BridgeKind, Limits};
    use crate::wamp::uri::MatchPolicy;
    use std::time::Duration;

    fn load(paths: &str, webhooks: &str) -> Result<Loaded, ConfigError> {
        let text = format!(
            r#"{{"version": 2, "workers": [{{"type": "router",
            "realms": [{{"name": "realm1", "roles": [{{"name": "php"}}, {{"name": "hooks"}}]}},
                       {{"name": "other", "roles": [{{"name": "elsewhere"}}]}}],
            "transports": [{{"type": "web", "endpoint": {{"type": "tcp", "port": 0, "interface": "127.0.0.1"}},
                             "paths": {paths}}}]
            {webhooks}}}]}}"#
        );
        parse(&text, false, "node.json", Limits::default())
    }

    #[test]
    fn crossbars_publisher_and_caller_paths() {
        // The shape of Crossbar's documentation, options and all.
        let l = load(
            r#"{"ws": {"type": "websocket"},
                "publish": {"type": "publisher", "realm": "realm1", "role": "php",
                            "options": {"key": "foobar", "secret": "secret", "post_body_limit": 8192,
                                        "timestamp_delta_limit": 10,
                                        "require_ip": ["192.168.1.1/255.255.255.0", "127.0.0.1"],
                                        "require_tls": false, "debug": true}},
                "/call": {"type": "caller", "realm": "realm1", "role": "php",
                          "options": {"call_timeout": 5}}}"#,
            "",
        )
        .unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let lst = &l.node.listeners[0];
        assert_eq!(lst.websocket[0].0, "/ws");
        let find = |name: &str| lst.bridge.iter().find(|(p, _)| p == name).map(|(_, b)| b);
        let p = find("/publish").unwrap();
        assert_eq!(p.kind, BridgeKind::Publisher);
        assert_eq!((p.realm.as_str(), p.role.as_str()), ("realm1", "php"));
        assert_eq!(p.signing.as_ref().map(|k| k.key.as_str()), Some("foobar"));
        assert_eq!(p.body_limit, 8192);
        assert_eq!(p.timestamp_window, Some(Duration::from_secs(10)));
        assert_eq!(p.require_ip.as_ref().map(Vec::len), Some(2));
        assert!(p.debug && !p.require_tls);
        let c = find("/call").unwrap();
        assert_eq!(c.kind, BridgeKind::Caller);
        assert_eq!(c.signing, None);
        assert_eq!(c.body_limit, 1 << 20, "0/absent: --max-message-size");
        assert_eq!(c.timestamp_window, Some(Duration::from_secs(300)));
        assert_eq!(c.call_timeout, Duration::from_secs(5));
        assert!(
            !format!("{:?}", l.node).contains("\"secret\""),
            "secrets are not printed"
        );
    }

    #[test]
    fn wrong_bridge_paths_name_the_key() {
        let path = |spec: &str| load(&format!(r#"{{"p": {spec}}}"#), "").unwrap_err();
        for (spec, at, says) in [
            (
                r#"{"type": "publisher", "role": "php"}"#,
                "paths.p.realm",
                "missing",
            ),
            (
                r#"{"type": "publisher", "realm": "nowhere", "role": "php"}"#,
                "paths.p.realm",
                "not defined",
            ),
            (
                r#"{"type": "caller", "realm": "realm1"}"#,
                "paths.p.role",
                "missing",
            ),
            (
                r#"{"type": "caller", "realm": "realm1", "role": "elsewhere"}"#,
                "paths.p.role",
                "realm 'realm1'",
            ),
            (
                r#"{"type": "publisher", "realm": "realm1", "role": "php", "options": {"key": "k"}}"#,
                "options.secret",
                "together",
            ),
            (
                r#"{"type": "publisher", "realm": "realm1", "role": "php", "options": {"secret": "s"}}"#,
                "options.key",
                "together",
            ),
            (
                r#"{"type": "publisher", "realm": "realm1", "role": "php", "options": {"post_body_limit": -1}}"#,
                "options.post_body_limit",
                "integer",
            ),
            (
                r#"{"type": "publisher", "realm": "realm1", "role": "php", "options": {"timestamp_delta_limit": 86401}}"#,
                "options.timestamp_delta_limit",
                "0..86400",
            ),
            (
                r#"{"type": "publisher", "realm": "realm1", "role": "php", "options": {"require_ip": ["10.0.0.0/33"]}}"#,
                "options.require_ip[0]",
                "IP address",
            ),
            (
                r#"{"type": "caller", "realm": "realm1", "role": "php", "options": {"call_timeout": 0}}"#,
                "options.call_timeout",
                "integer",
            ),
        ] {
            let e = path(spec);
            assert!(e.path.ends_with(at), "{spec}: {e}");
            assert!(e.message.contains(says), "{spec}: {e}");
        }
        let l = load(
            r#"{"p": {"type": "publisher", "realm": "realm1", "role": "trusted",
                      "options": {"call_timeout": 3, "require_tls": true}, "extra": 1}}"#,
            "",
        )
        .unwrap();
        let has = |needle: &str| l.warnings.iter().filter(|w| w.contains(needle)).count();
        assert_eq!(has("paths.p.options.call_timeout"), 1, "caller-only option");
        assert_eq!(
            has("paths.p.options.require_tls"),
            0,
            "served over TLS listeners"
        );
        assert_eq!(has("paths.p.extra"), 1);
    }

    #[test]
    fn webhooks_on_the_router_worker() {
        let l = load(
            "{}",
            r#", "webhooks": [{"realm": "realm1", "role": "hooks", "url": "http://127.0.0.1:9000/hook",
                               "topics": ["com.app.order.*", "com.app.user.created", "com..alert"],
                               "max_queue": 10, "retries": 2, "retry_delay_ms": 100, "max_retry_delay_ms": 1000,
                               "timeout_ms": 2000},
                              {"realm": "other", "url": "http://hooks.example/x", "topics": ["a.b"]}]"#,
        )
        .unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let w = &l.node.webhooks[0];
        assert_eq!(w.role.as_deref(), Some("hooks"));
        assert_eq!(
            w.topics,
            vec![
                ("com.app.order.".to_owned(), MatchPolicy::Prefix),
                ("com.app.user.created".to_owned(), MatchPolicy::Exact),
                ("com..alert".to_owned(), MatchPolicy::Wildcard),
            ]
        );
        assert_eq!((w.max_queue, w.retries), (10, 2));
        assert_eq!(w.retry_delay, Duration::from_millis(100));
        assert_eq!(w.max_retry_delay, Duration::from_secs(1));
        assert_eq!(w.timeout, Duration::from_secs(2));
        assert_eq!(w.origin, "workers[0].webhooks[0]");
        let d = &l.node.webhooks[1];
        assert_eq!(d.role, None, "the built-in trusted role");
        assert_eq!((d.max_queue, d.retries), (1000, 5), "defaults");
        let hook = |spec: &str| load("{}", &format!(r#", "webhooks": [{spec}]"#)).unwrap_err();
        for (spec, at, says) in [
            (
                r#"{"realm": "realm1", "url": "http://x/"}"#,
                "webhooks[0].topics",
                "missing",
            ),
            (
                r#"{"realm": "realm1", "url": "http://x/", "topics": []}"#,
                "webhooks[0].topics",
                "empty",
            ),
            (
                r#"{"realm": "realm1", "url": "http://x/", "topics": ["a b"]}"#,
                "webhooks[0].topics[0]",
                "not a valid",
            ),
            (
                r#"{"realm": "realm1", "url": "https://x/", "topics": ["a.b"]}"#,
                "webhooks[0].url",
                "https",
            ),
            (
                r#"{"realm": "realm1", "url": "ftp://x/", "topics": ["a.b"]}"#,
                "webhooks[0].url",
                "http://",
            ),
            (
                r#"{"realm": "realm1", "url": "not a url", "topics": ["a.b"]}"#,
                "webhooks[0].url",
                "URL",
            ),
            (
                r#"{"realm": "realm1", "role": "elsewhere", "url": "http://x/", "topics": ["a.b"]}"#,
                "webhooks[0].role",
                "not defined",
            ),
            (
                r#"{"realm": "realm1", "url": "http://x/", "topics": ["a.b"], "max_queue": 0}"#,
                "webhooks[0].max_queue",
                "integer",
            ),
            (
                r#"{"realm": "realm1", "url": "http://x/", "topics": ["a.b"], "retry_delay_ms": 500, "max_retry_delay_ms": 100}"#,
                "webhooks[0].max_retry_delay_ms",
                "smaller",
            ),
        ] {
            let e = hook(spec);
            assert_eq!(e.path, format!("workers[0].{at}"), "{spec}: {e}");
            assert!(e.message.contains(says), "{spec}: {e}");
        }
    }
}
