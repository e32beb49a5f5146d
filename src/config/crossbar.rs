//! Loads a Crossbar.io-style node configuration (version 2, JSON or TOML) into `NodeConfig`.
//!
//! The realm / role / permission / transport / auth sections use Crossbar's field names and
//! shapes, so an existing `.crossbar/config.json` of a single router worker loads unchanged.
//! Keys we do not support produce one warning each, naming the key path; a wrong config stops
//! with an error naming the file, the path inside it and what is wrong.

use super::{
    Allow, BridgeConfig, CraSalt, CraUser, CryptosignPrincipal, Disclose, DynamicAuth, Endpoint,
    HistoryRule, Limits, ListenerConfig, NodeConfig, PermissionConfig, RealmConfig, RoleConfig,
    RouterConfig, ScramPrincipal, Secret, TicketPrincipal, TransportAuth, WampEndpoint,
};
mod bridge;
mod tls;
mod turn;

use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::Serializer;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

/// A config that cannot be used: file, path inside it, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub path: String,
    pub message: String,
}

/// A loaded config and the warnings about what it asks for that is not supported.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub node: NodeConfig,
    pub warnings: Vec<String>,
}

struct Ctx {
    file: String,
    warnings: Vec<String>,
    /// Realm names, once read (for `authenticator-realm`).
    realms: HashSet<String>,
    /// The roles of each realm, once read (bridge paths and webhooks act in one realm).
    realm_roles: HashMap<String, HashSet<String>>,
    /// `--max-message-size`: the bridge's body limit when the config sets none.
    max_message_size: usize,
    /// The config file's directory: relative paths (TLS key and certificates) start there.
    base: std::path::PathBuf,
}

type Obj = Map<String, Value>;

impl Ctx {
    fn err<T>(&self, path: &str, message: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError {
            file: self.file.clone(),
            path: path.to_owned(),
            message: message.into(),
        })
    }

    fn warn(&mut self, path: &str, message: impl std::fmt::Display) {
        self.warnings
            .push(format!("{}: {path}: {message}", self.file));
    }

    fn obj<'v>(&self, v: &'v Value, path: &str) -> Result<&'v Obj, ConfigError> {
        match v.as_object() {
            Some(o) => Ok(o),
            None => self.err(path, format!("expected an object, got {}", kind(v))),
        }
    }

    fn list<'v>(&self, v: &'v Value, path: &str) -> Result<&'v Vec<Value>, ConfigError> {
        match v.as_array() {
            Some(a) => Ok(a),
            None => self.err(path, format!("expected a list, got {}", kind(v))),
        }
    }

    fn string<'v>(
        &self,
        o: &'v Obj,
        key: &str,
        path: &str,
    ) -> Result<Option<&'v str>, ConfigError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => self.err(
                &format!("{path}.{key}"),
                format!("expected a string, got {}", kind(v)),
            ),
        }
    }

    fn required_string<'v>(
        &self,
        o: &'v Obj,
        key: &str,
        path: &str,
    ) -> Result<&'v str, ConfigError> {
        match self.string(o, key, path)? {
            Some(s) => Ok(s),
            None => self.err(&format!("{path}.{key}"), "missing (required)"),
        }
    }

    fn bool(&self, o: &Obj, key: &str, path: &str) -> Result<bool, ConfigError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => self.err(
                &format!("{path}.{key}"),
                format!("expected true or false, got {}", kind(v)),
            ),
        }
    }

    /// Warns once for each key not in `known`.
    fn unknown(&mut self, o: &Obj, path: &str, known: &[&str]) {
        for k in o.keys() {
            if !known.contains(&k.as_str()) {
                self.warn(&format!("{path}.{k}"), "not supported, ignored");
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads and loads a config file (`.toml` as TOML, anything else as JSON).
pub fn load(path: &Path, limits: Limits) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        path: "(file)".into(),
        message: format!("cannot read: {e}"),
    })?;
    let toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    parse(&text, toml, &file, limits)
}

/// Parses config text; `toml` selects TOML, else JSON.
pub fn parse(text: &str, toml: bool, file: &str, limits: Limits) -> Result<Loaded, ConfigError> {
    let value: Value = if toml {
        ::toml::from_str::<Value>(text).map_err(|e| ConfigError {
            file: file.to_owned(),
            path: "(syntax)".into(),
            message: e.to_string().trim().to_owned(),
        })?
    } else {
        serde_json::from_str(text).map_err(|e| ConfigError {
            file: file.to_owned(),
            path: "(syntax)".into(),
            message: e.to_string(),
        })?
    };
    let mut ctx = Ctx {
        file: file.to_owned(),
        warnings: Vec::new(),
        realms: HashSet::new(),
        realm_roles: HashMap::new(),
        max_message_size: limits.max_message_size,
        base: Path::new(file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let node = node(&mut ctx, &value, limits)?;
    Ok(Loaded {
        node,
        warnings: ctx.warnings,
    })
}

fn node(ctx: &mut Ctx, v: &Value, mut limits: Limits) -> Result<NodeConfig, ConfigError> {
    let top = ctx.obj(v, "(top)")?;
    match top.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(2) => {}
        None => ctx.warn("version", "missing; reading as version 2"),
        Some(other) => {
            return ctx.err(
                "version",
                format!("only version 2 configs are supported, got {other}"),
            )
        }
    }
    ctx.unknown(
        top,
        "(top)",
        &["version", "controller", "workers", "$schema"],
    );
    let workers = match top.get("workers") {
        Some(w) => ctx.list(w, "workers")?,
        None => return ctx.err("workers", "missing (a config needs one router worker)"),
    };
    let mut router_worker = None;
    for (i, w) in workers.iter().enumerate() {
        let path = format!("workers[{i}]");
        let o = ctx.obj(w, &path)?;
        match ctx.string(o, "type", &path)? {
            Some("router") => {
                if router_worker.is_some() {
                    return ctx.err(
                        &path,
                        "more than one router worker: Switchboard runs one router per process",
                    );
                }
                router_worker = Some((path, o));
            }
            Some(other) => ctx.warn(
                &format!("{path}.type"),
                format!("worker type '{other}' is not supported, ignored"),
            ),
            None => return ctx.err(&format!("{path}.type"), "missing (required)"),
        }
    }
    let Some((wpath, w)) = router_worker else {
        return ctx.err("workers", "no worker of type 'router'");
    };
    ctx.unknown(
        w,
        &wpath,
        &[
            "type",
            "id",
            "realms",
            "transports",
            "options",
            "chat",
            "webhooks",
            "calls",
            "limits",
            "acme",
            "http_redirect",
        ],
    );
    if let Some(opts) = w.get("options") {
        let o = ctx.obj(opts, &format!("{wpath}.options"))?;
        ctx.unknown(
            o,
            &format!("{wpath}.options"),
            &["title", "env", "pythonpath", "cpu_affinity"],
        );
    }
    let mut realms = Vec::new();
    let realm_list = match w.get("realms") {
        Some(r) => ctx.list(r, &format!("{wpath}.realms"))?.clone(),
        None => Vec::new(),
    };
    let mut names = HashSet::new();
    for (i, r) in realm_list.iter().enumerate() {
        let realm = realm(ctx, r, &format!("{wpath}.realms[{i}]"))?;
        if !names.insert(realm.name.clone()) {
            return ctx.err(
                &format!("{wpath}.realms[{i}].name"),
                format!("realm '{}' is defined twice", realm.name),
            );
        }
        realms.push(realm);
    }
    ctx.realms = names.clone();
    ctx.realm_roles = realms
        .iter()
        .map(|r| {
            let roles = r.roles.iter().map(|x| x.name.clone()).collect();
            (r.name.clone(), roles)
        })
        .collect();
    if realms.is_empty() {
        return ctx.err(
            &format!("{wpath}.realms"),
            "no realm defined: clients would have nowhere to join",
        );
    }
    let roles: HashSet<String> = realms
        .iter()
        .flat_map(|r| r.roles.iter().map(|x| x.name.clone()))
        .collect();
    let transports = match w.get("transports") {
        Some(t) => ctx.list(t, &format!("{wpath}.transports"))?.clone(),
        None => Vec::new(),
    };
    let mut listeners = Vec::new();
    for (i, t) in transports.iter().enumerate() {
        if let Some(l) = transport(ctx, t, &format!("{wpath}.transports[{i}]"), &roles)? {
            listeners.push(l);
        }
    }
    if listeners.is_empty() {
        return ctx.err(
            &format!("{wpath}.transports"),
            "no usable transport: clients could not connect",
        );
    }
    let chat = match w.get("chat") {
        Some(c) => Some(chat(ctx, c, &format!("{wpath}.chat"), &realms)?),
        None => None,
    };
    let calls = match w.get("calls") {
        Some(c) => calls(ctx, c, &format!("{wpath}.calls"))?,
        None => crate::calls::CallsConfig {
            credential_ttl: 86_400,
            ..Default::default()
        },
    };
    if let Some(v) = w.get("limits") {
        limits_section(ctx, v, &format!("{wpath}.limits"), &mut limits)?;
    }
    let webhooks = match w.get("webhooks") {
        Some(v) => bridge::webhooks(ctx, v, &format!("{wpath}.webhooks"))?,
        None => Vec::new(),
    };
    let acme = match w.get("acme") {
        Some(a) => Some(tls::acme(ctx, a, &format!("{wpath}.acme"))?),
        None => None,
    };
    let http_redirect = match w.get("http_redirect") {
        Some(r) => Some(tls::http_redirect(
            ctx,
            r,
            &format!("{wpath}.http_redirect"),
        )?),
        None => None,
    };
    tls::check(ctx, &listeners, acme.as_ref(), &wpath)?;
    Ok(NodeConfig {
        router: RouterConfig {
            realms,
            limits,
            dev_mode: false,
            chat,
            calls,
        },
        listeners,
        webhooks,
        acme,
        http_redirect,
    })
}

/// Switchboard's own `limits` section (README "Limits"): each key overrides the command-line
/// value — `subscriptions_per_session`, `registrations_per_session`,
/// `calls_in_flight_per_session`, `topics_per_realm`, `connections`, `connections_per_address`
/// (whole numbers) and `unlimited_addresses` (a list of addresses or networks).
fn limits_section(
    ctx: &mut Ctx,
    v: &Value,
    path: &str,
    limits: &mut Limits,
) -> Result<(), ConfigError> {
    let o = ctx.obj(v, path)?;
    let counts: [(&str, &mut usize); 6] = [
        (
            "subscriptions_per_session",
            &mut limits.session.subscriptions,
        ),
        (
            "registrations_per_session",
            &mut limits.session.registrations,
        ),
        (
            "calls_in_flight_per_session",
            &mut limits.session.calls_in_flight,
        ),
        ("topics_per_realm", &mut limits.session.topics_per_realm),
        ("connections", &mut limits.connections.total),
        (
            "connections_per_address",
            &mut limits.connections.per_address,
        ),
    ];
    let mut known: Vec<&str> = counts.iter().map(|(k, _)| *k).collect();
    known.push("unlimited_addresses");
    ctx.unknown(o, path, &known);
    for (key, slot) in counts {
        match o.get(key).map(Value::as_u64) {
            None => {}
            Some(Some(n)) if n >= 1 => *slot = usize::try_from(n).unwrap_or(usize::MAX),
            Some(_) => {
                return ctx.err(
                    &format!("{path}.{key}"),
                    "expected a whole number of at least 1",
                )
            }
        }
    }
    if let Some(list) = o.get("unlimited_addresses") {
        let lp = format!("{path}.unlimited_addresses");
        let mut nets = Vec::new();
        for (i, n) in ctx.list(list, &lp)?.iter().enumerate() {
            match n.as_str().and_then(super::ipnet::IpNet::parse) {
                Some(net) => nets.push(net),
                None => {
                    return ctx.err(
                        &format!("{lp}[{i}]"),
                        "expected an address or network like 10.0.0.0/8",
                    )
                }
            }
        }
        limits.connections.unlimited = nets;
    }
    Ok(())
}

/// Switchboard's own `calls` section: {`stun_listen` ("0.0.0.0:3478"), `ice_uris`
/// (["stun:host:3478", "turn:host:3478"]), `turn_secret` (coturn's `static-auth-secret`),
/// `credential_ttl` (seconds, default 86400), `turn` (the built-in relay, `crossbar/turn.rs`)}.
fn calls(ctx: &mut Ctx, v: &Value, path: &str) -> Result<crate::calls::CallsConfig, ConfigError> {
    let o = ctx.obj(v, path)?;
    ctx.unknown(
        o,
        path,
        &[
            "stun_listen",
            "ice_uris",
            "turn_secret",
            "credential_ttl",
            "turn",
        ],
    );
    let stun_listen = match ctx.string(o, "stun_listen", path)? {
        None => None,
        Some(a) => match a.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                return ctx.err(
                    &format!("{path}.stun_listen"),
                    format!("'{a}' is not an address like 0.0.0.0:3478"),
                )
            }
        },
    };
    let mut ice_uris = Vec::new();
    if let Some(list) = o.get("ice_uris") {
        let lp = format!("{path}.ice_uris");
        for (i, u) in ctx.list(list, &lp)?.iter().enumerate() {
            match u.as_str() {
                Some(u)
                    if ["stun:", "stuns:", "turn:", "turns:"]
                        .iter()
                        .any(|s| u.starts_with(s)) =>
                {
                    ice_uris.push(u.to_owned())
                }
                _ => {
                    return ctx.err(
                        &format!("{lp}[{i}]"),
                        "expected a stun:, stuns:, turn: or turns: URI",
                    )
                }
            }
        }
    }
    let turn_secret = ctx
        .string(o, "turn_secret", path)?
        .map(|s| Secret(s.to_owned()));
    let credential_ttl = match o.get("credential_ttl") {
        None => 86_400,
        Some(_) => positive(ctx, o, "credential_ttl", path)? as u64,
    };
    let turn = match o.get("turn") {
        None | Some(Value::Null) => None,
        Some(v) => Some(turn::turn(ctx, v, &format!("{path}.turn"))?),
    };
    if turn.is_some() && turn_secret.is_none() {
        return ctx.err(
            &format!("{path}.turn_secret"),
            "missing: the TURN relay needs the secret its credentials are made with",
        );
    }
    Ok(crate::calls::CallsConfig {
        stun_listen,
        ice_uris,
        turn_secret,
        credential_ttl,
        turn,
    })
}

/// Switchboard's own `chat` section of the router worker: {`realm`, `visitor_role`
/// (default "visitor"), `staff_roles` (default ["staff"]), `max_message_length` (4000)}.
fn chat(
    ctx: &mut Ctx,
    v: &Value,
    path: &str,
    realms: &[RealmConfig],
) -> Result<crate::chat::ChatConfig, ConfigError> {
    let o = ctx.obj(v, path)?;
    ctx.unknown(
        o,
        path,
        &[
            "realm",
            "visitor_role",
            "staff_roles",
            "max_message_length",
            "messages_per_minute",
            "threads_per_hour",
            "retention_days",
            "email",
            "max_file_bytes",
            "max_total_file_bytes",
            "uploads_per_hour",
            "ring_timeout",
            "call_grace",
        ],
    );
    let realm_name = ctx.required_string(o, "realm", path)?.to_owned();
    let Some(realm) = realms.iter().find(|r| r.name == realm_name) else {
        return ctx.err(
            &format!("{path}.realm"),
            format!("realm '{realm_name}' is not defined"),
        );
    };
    let has_role = |r: &str| realm.roles.iter().any(|x| x.name == r);
    let visitor = ctx
        .string(o, "visitor_role", path)?
        .unwrap_or("visitor")
        .to_owned();
    if !has_role(&visitor) {
        return ctx.err(
            &format!("{path}.visitor_role"),
            format!("role '{visitor}' is not defined in realm '{realm_name}'"),
        );
    }
    let mut staff = Vec::new();
    match o.get("staff_roles") {
        None => staff.push("staff".to_owned()),
        Some(list) => {
            let lp = format!("{path}.staff_roles");
            for (i, r) in ctx.list(list, &lp)?.iter().enumerate() {
                match r.as_str() {
                    Some(r) if has_role(r) => staff.push(r.to_owned()),
                    _ => {
                        return ctx.err(
                            &format!("{lp}[{i}]"),
                            format!("expected a role defined in realm '{realm_name}'"),
                        )
                    }
                }
            }
        }
    }
    if staff.iter().any(|s| !has_role(s)) {
        return ctx.err(
            &format!("{path}.staff_roles"),
            format!("role 'staff' is not defined in realm '{realm_name}'"),
        );
    }
    let max_text = match o.get("max_message_length") {
        None => 4000,
        Some(_) => positive(ctx, o, "max_message_length", path)?,
    };
    let mut cfg = crate::chat::ChatConfig::new(&realm_name, crate::chat::Roles { visitor, staff });
    cfg.max_text = max_text;
    if o.contains_key("messages_per_minute") {
        cfg.messages_per_minute = positive(ctx, o, "messages_per_minute", path)? as u32;
    }
    if o.contains_key("threads_per_hour") {
        cfg.threads_per_hour = positive(ctx, o, "threads_per_hour", path)? as u32;
    }
    if o.contains_key("retention_days") {
        cfg.retention_days = Some(positive(ctx, o, "retention_days", path)? as u64);
    }
    for (key, slot) in [
        ("max_file_bytes", &mut cfg.files.max_bytes),
        ("max_total_file_bytes", &mut cfg.files.max_total_bytes),
    ] {
        match o.get(key).map(Value::as_u64) {
            None => {}
            Some(Some(n)) if n >= 1 => *slot = n,
            Some(_) => {
                return ctx.err(
                    &format!("{path}.{key}"),
                    "expected a whole number of bytes, at least 1",
                )
            }
        }
    }
    if o.contains_key("uploads_per_hour") {
        cfg.files.uploads_per_hour = positive(ctx, o, "uploads_per_hour", path)? as u32;
    }
    for (key, slot) in [
        ("ring_timeout", &mut cfg.ring_timeout),
        ("call_grace", &mut cfg.call_grace),
    ] {
        if let Some(v) = o.get(key) {
            match v.as_f64() {
                Some(s) if s > 0.0 && s <= 3600.0 => *slot = std::time::Duration::from_secs_f64(s),
                _ => {
                    return ctx.err(
                        &format!("{path}.{key}"),
                        "expected seconds (a number above 0, at most 3600)",
                    )
                }
            }
        }
    }
    if let Some(e) = o.get("email") {
        let ep = format!("{path}.email");
        let eo = ctx.obj(e, &ep)?;
        ctx.unknown(eo, &ep, &["smtp_host", "smtp_port", "from", "to"]);
        let smtp_host = ctx.required_string(eo, "smtp_host", &ep)?.to_owned();
        let smtp_port = match eo.get("smtp_port") {
            None => 25,
            Some(_) => match eo.get("smtp_port").and_then(Value::as_u64) {
                Some(p) if (1..=65535).contains(&p) => p as u16,
                _ => return ctx.err(&format!("{ep}.smtp_port"), "expected a port number"),
            },
        };
        let from = ctx.required_string(eo, "from", &ep)?.to_owned();
        let mut to = Vec::new();
        if let Some(list) = eo.get("to") {
            for (i, t) in ctx.list(list, &format!("{ep}.to"))?.iter().enumerate() {
                match t.as_str() {
                    Some(t) if t.contains('@') => to.push(t.to_owned()),
                    _ => return ctx.err(&format!("{ep}.to[{i}]"), "expected an email address"),
                }
            }
        }
        if to.is_empty() {
            return ctx.err(&format!("{ep}.to"), "missing: who should get the notices");
        }
        cfg.email = Some(crate::chat::email::EmailConfig {
            smtp_host,
            smtp_port,
            from,
            to,
        });
    }
    Ok(cfg)
}

fn realm(ctx: &mut Ctx, v: &Value, path: &str) -> Result<RealmConfig, ConfigError> {
    let o = ctx.obj(v, path)?;
    ctx.unknown(o, path, &["name", "roles", "store", "options"]);
    let history = match o.get("store") {
        Some(st) => store(ctx, st, &format!("{path}.store"))?,
        None => Vec::new(),
    };
    let name = ctx.required_string(o, "name", path)?;
    if !uri::is_valid(name, MatchPolicy::Exact) {
        return ctx.err(
            &format!("{path}.name"),
            format!("'{name}' is not a valid realm URI"),
        );
    }
    let mut roles = Vec::new();
    if let Some(list) = o.get("roles") {
        for (i, r) in ctx.list(list, &format!("{path}.roles"))?.iter().enumerate() {
            roles.push(role(ctx, r, &format!("{path}.roles[{i}]"))?);
        }
    }
    Ok(RealmConfig {
        name: name.to_owned(),
        roles,
        history,
    })
}

/// Crossbar's realm `store`: {`type`: memory|cfxdb, `limit`, `event-history`: [{`uri`, `match`,
/// `limit`}]}. Switchboard keeps the history in its sled store whichever type is named, so it
/// survives restarts.
fn store(ctx: &mut Ctx, v: &Value, path: &str) -> Result<Vec<HistoryRule>, ConfigError> {
    let o = ctx.obj(v, path)?;
    ctx.unknown(
        o,
        path,
        &["type", "limit", "event-history", "path", "maxsize"],
    );
    match ctx.string(o, "type", path)?.unwrap_or("memory") {
        "memory" | "cfxdb" => {}
        other => {
            return ctx.err(
                &format!("{path}.type"),
                format!("expected 'memory' or 'cfxdb', got '{other}'"),
            )
        }
    }
    let default_limit = match o.get("limit") {
        None => 1000,
        Some(_) => positive(ctx, o, "limit", path)?,
    };
    let mut rules = Vec::new();
    if let Some(list) = o.get("event-history") {
        let lp = format!("{path}.event-history");
        for (i, r) in ctx.list(list, &lp)?.iter().enumerate() {
            let rp = format!("{lp}[{i}]");
            let ro = ctx.obj(r, &rp)?;
            ctx.unknown(ro, &rp, &["uri", "match", "limit"]);
            let (uri, policy) = uri_pattern(ctx, ro, &rp)?;
            let limit = match ro.get("limit") {
                None => default_limit,
                Some(_) => positive(ctx, ro, "limit", &rp)?,
            };
            rules.push(HistoryRule { uri, policy, limit });
        }
    }
    Ok(rules)
}

/// A positive integer at `key` (at most 1,000,000).
fn positive(ctx: &Ctx, o: &Obj, key: &str, path: &str) -> Result<usize, ConfigError> {
    match o.get(key).and_then(Value::as_u64) {
        Some(n) if (1..=1_000_000).contains(&n) => Ok(n as usize),
        _ => ctx.err(
            &format!("{path}.{key}"),
            "expected a whole number from 1 to 1000000",
        ),
    }
}

fn role(ctx: &mut Ctx, v: &Value, path: &str) -> Result<RoleConfig, ConfigError> {
    let o = ctx.obj(v, path)?;
    ctx.unknown(o, path, &["name", "permissions", "authorizer"]);
    let name = ctx.required_string(o, "name", path)?;
    let authorizer = match ctx.string(o, "authorizer", path)? {
        None => None,
        Some(a) if crate::wamp::uri::is_valid(a, MatchPolicy::Exact) => Some(a.to_owned()),
        Some(a) => {
            return ctx.err(
                &format!("{path}.authorizer"),
                format!("'{a}' is not a valid procedure URI"),
            )
        }
    };
    let mut permissions = Vec::new();
    if let Some(list) = o.get("permissions") {
        for (i, p) in ctx
            .list(list, &format!("{path}.permissions"))?
            .iter()
            .enumerate()
        {
            permissions.push(permission(ctx, p, &format!("{path}.permissions[{i}]"))?);
        }
    }
    Ok(RoleConfig {
        name: name.to_owned(),
        permissions,
        authorizer,
    })
}

/// Crossbar infers the match policy: a trailing `*` means prefix, empty components wildcard.
fn infer_match(raw: &str) -> (String, MatchPolicy) {
    match raw.strip_suffix('*') {
        Some(prefix) => (prefix.to_owned(), MatchPolicy::Prefix),
        None if raw.split('.').any(str::is_empty) => (raw.to_owned(), MatchPolicy::Wildcard),
        None => (raw.to_owned(), MatchPolicy::Exact),
    }
}

/// `uri` and `match` of a rule; `match` inferred as Crossbar does when absent (a trailing `*`
/// means prefix, empty components wildcard).
fn uri_pattern(ctx: &Ctx, o: &Obj, path: &str) -> Result<(String, MatchPolicy), ConfigError> {
    let raw = ctx.required_string(o, "uri", path)?;
    let (uri, policy) = match ctx.string(o, "match", path)? {
        Some(m) => match MatchPolicy::parse(m) {
            Some(p) => (raw.to_owned(), p),
            None => {
                return ctx.err(
                    &format!("{path}.match"),
                    format!("expected one of exact, prefix, wildcard, got '{m}'"),
                )
            }
        },
        None => infer_match(raw),
    };
    let uri = if policy == MatchPolicy::Prefix {
        uri.trim_end_matches('*').to_owned()
    } else {
        uri
    };
    if !uri::is_valid(&uri, policy) {
        return ctx.err(
            &format!("{path}.uri"),
            format!(
                "'{raw}' is not a valid URI pattern for match '{}'",
                policy.as_str()
            ),
        );
    }
    Ok((uri, policy))
}

fn permission(ctx: &mut Ctx, v: &Value, path: &str) -> Result<PermissionConfig, ConfigError> {
    let o = ctx.obj(v, path)?;
    ctx.unknown(o, path, &["uri", "match", "allow", "disclose", "cache"]);
    let (uri, policy) = uri_pattern(ctx, o, path)?;
    if o.contains_key("cache") {
        ctx.bool(o, "cache", path)?;
    }
    let mut allow = Allow::default();
    if let Some(a) = o.get("allow") {
        let a = ctx.obj(a, &format!("{path}.allow"))?;
        ctx.unknown(
            a,
            &format!("{path}.allow"),
            &["call", "register", "publish", "subscribe"],
        );
        let p = format!("{path}.allow");
        allow = Allow {
            call: ctx.bool(a, "call", &p)?,
            register: ctx.bool(a, "register", &p)?,
            publish: ctx.bool(a, "publish", &p)?,
            subscribe: ctx.bool(a, "subscribe", &p)?,
        };
    }
    let mut disclose = Disclose::default();
    if let Some(d) = o.get("disclose") {
        let d = ctx.obj(d, &format!("{path}.disclose"))?;
        ctx.unknown(d, &format!("{path}.disclose"), &["caller", "publisher"]);
        let p = format!("{path}.disclose");
        disclose = Disclose {
            caller: ctx.bool(d, "caller", &p)?,
            publisher: ctx.bool(d, "publisher", &p)?,
        };
    }
    Ok(PermissionConfig {
        uri,
        policy,
        allow,
        disclose,
    })
}

fn endpoint(
    ctx: &mut Ctx,
    o: &Obj,
    path: &str,
) -> Result<(Endpoint, Option<crate::tls::TlsSource>), ConfigError> {
    let Some(e) = o.get("endpoint") else {
        return ctx.err(&format!("{path}.endpoint"), "missing (required)");
    };
    let path = format!("{path}.endpoint");
    let e = ctx.obj(e, &path)?;
    match ctx.string(e, "type", &path)?.unwrap_or("tcp") {
        "tcp" => {
            ctx.unknown(
                e,
                &path,
                &[
                    "type",
                    "port",
                    "interface",
                    "version",
                    "backlog",
                    "shared",
                    "tls",
                ],
            );
            let tls = match e.get("tls") {
                Some(t) => Some(tls::endpoint_tls(ctx, t, &format!("{path}.tls"))?),
                None => None,
            };
            let port = match e.get("port") {
                Some(Value::Number(n)) => match n.as_u64().and_then(|p| u16::try_from(p).ok()) {
                    Some(p) => p,
                    None => {
                        return ctx.err(
                            &format!("{path}.port"),
                            format!("expected a port number 0-65535, got {n}"),
                        )
                    }
                },
                Some(v) => {
                    return ctx.err(
                        &format!("{path}.port"),
                        format!("expected a port number, got {}", kind(v)),
                    )
                }
                None => return ctx.err(&format!("{path}.port"), "missing (required)"),
            };
            let v6 = matches!(e.get("version"), Some(Value::Number(n)) if n.as_u64() == Some(6));
            let interface = match ctx.string(e, "interface", &path)? {
                Some(i) => match i.parse::<IpAddr>() {
                    Ok(ip) => ip,
                    Err(_) => {
                        return ctx.err(
                            &format!("{path}.interface"),
                            format!("'{i}' is not an IP address"),
                        )
                    }
                },
                None if v6 => IpAddr::from([0u16; 8]),
                None => IpAddr::from([0u8; 4]),
            };
            Ok((Endpoint::Tcp(SocketAddr::new(interface, port)), tls))
        }
        "unix" => {
            ctx.unknown(e, &path, &["type", "path", "backlog"]);
            let p = ctx.required_string(e, "path", &path)?;
            Ok((Endpoint::Unix(p.into()), None))
        }
        other => ctx.err(
            &format!("{path}.type"),
            format!("endpoint type '{other}' is not supported (tcp, unix)"),
        ),
    }
}

/// A positive integer option with a default.
fn number(ctx: &Ctx, o: &Obj, key: &str, path: &str, default: u32) -> Result<u32, ConfigError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => match n
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
        {
            Some(v) => Ok(v),
            None => ctx.err(
                &format!("{path}.{key}"),
                format!("expected a positive integer, got {n}"),
            ),
        },
        Some(v) => ctx.err(
            &format!("{path}.{key}"),
            format!("expected a positive integer, got {}", kind(v)),
        ),
    }
}

fn serializers(ctx: &mut Ctx, o: &Obj, path: &str) -> Result<Vec<Serializer>, ConfigError> {
    let Some(list) = o.get("serializers") else {
        return Ok(Serializer::ALL.to_vec());
    };
    let path = format!("{path}.serializers");
    let mut out = Vec::new();
    for (i, s) in ctx.list(list, &path)?.iter().enumerate() {
        match s.as_str() {
            Some("json") => out.push(Serializer::Json),
            Some("msgpack") => out.push(Serializer::MsgPack),
            Some("cbor") => out.push(Serializer::Cbor),
            Some(other) => ctx.warn(
                &format!("{path}[{i}]"),
                format!("serializer '{other}' is not supported, ignored"),
            ),
            None => {
                return ctx.err(
                    &format!("{path}[{i}]"),
                    format!("expected a serializer name, got {}", kind(s)),
                )
            }
        }
    }
    if out.is_empty() {
        return ctx.err(
            &path,
            "none of the listed serializers is supported (json, msgpack, cbor)",
        );
    }
    Ok(out)
}

fn auth(
    ctx: &mut Ctx,
    o: &Obj,
    path: &str,
    roles: &HashSet<String>,
) -> Result<Arc<TransportAuth>, ConfigError> {
    // Crossbar: a transport without an auth section admits anonymous clients as "anonymous".
    let Some(a) = o.get("auth") else {
        return Ok(Arc::new(TransportAuth::anonymous("anonymous")));
    };
    let path = format!("{path}.auth");
    let a = ctx.obj(a, &path)?;
    let mut out = TransportAuth::default();
    for (method, cfg) in a {
        let mp = format!("{path}.{method}");
        if DYNAMIC_METHODS.contains(&method.as_str()) {
            let c = ctx.obj(cfg, &mp)?;
            if ctx.string(c, "type", &mp)? == Some("dynamic") {
                let d = dynamic_auth(ctx, c, &mp, roles)?;
                out.dynamic.insert(method.clone(), d);
                continue;
            }
        }
        match method.as_str() {
            "anonymous" => {
                let c = ctx.obj(cfg, &mp)?;
                ctx.unknown(c, &mp, &["type", "role"]);
                match ctx.string(c, "type", &mp)?.unwrap_or("static") {
                    "static" => {
                        let role = ctx.string(c, "role", &mp)?.unwrap_or("anonymous");
                        if !roles.contains(role) {
                            return ctx.err(&format!("{mp}.role"), format!("role '{role}' is not defined in any realm"));
                        }
                        out.anonymous = Some(role.to_owned());
                    }
                    other => ctx.warn(&format!("{mp}.type"), format!("anonymous authentication of type '{other}' is not supported yet; anonymous clients are refused")),
                }
            }
            "ticket" | "wampcra" => {
                let c = ctx.obj(cfg, &mp)?;
                match ctx.string(c, "type", &mp)?.unwrap_or("static") {
                    "visitor" if method == "ticket" => {
                        out.visitor = Some(visitor_auth(ctx, c, &mp, roles)?);
                    }
                    "static" => {
                        let key = if method == "ticket" { "principals" } else { "users" };
                        ctx.unknown(c, &mp, &["type", key]);
                        let pp = format!("{mp}.{key}");
                        let empty = serde_json::Map::new();
                        let list = match c.get(key) {
                            Some(v) => ctx.obj(v, &pp)?,
                            // WAMP-CRA users may all live in the built-in store (`switchboard user`).
                            None if method == "wampcra" => &empty,
                            None => return ctx.err(&pp, "missing (required for static ticket authentication)"),
                        };
                        let mut tickets = HashMap::new();
                        let mut users = HashMap::new();
                        for (authid, p) in list {
                            let ap = format!("{pp}.{authid}");
                            let p = ctx.obj(p, &ap)?;
                            let role = ctx.required_string(p, "role", &ap)?.to_owned();
                            if !roles.contains(&role) {
                                return ctx.err(&format!("{ap}.role"), format!("role '{role}' is not defined in any realm"));
                            }
                            if method == "ticket" {
                                ctx.unknown(p, &ap, &["ticket", "role"]);
                                let ticket = Secret(ctx.required_string(p, "ticket", &ap)?.to_owned());
                                tickets.insert(authid.clone(), TicketPrincipal { ticket, role });
                            } else {
                                ctx.unknown(p, &ap, &["secret", "role", "salt", "iterations", "keylen"]);
                                let secret = Secret(ctx.required_string(p, "secret", &ap)?.to_owned());
                                let salt = match ctx.string(p, "salt", &ap)? {
                                    None => None,
                                    Some(salt) => Some(CraSalt {
                                        salt: salt.to_owned(),
                                        iterations: number(ctx, p, "iterations", &ap, 1000)?,
                                        keylen: number(ctx, p, "keylen", &ap, 32)?,
                                    }),
                                };
                                users.insert(authid.clone(), CraUser { secret, role, salt });
                            }
                        }
                        if method == "ticket" {
                            out.ticket = Some(tickets);
                        } else {
                            out.wampcra = Some(users);
                        }
                    }
                    other => ctx.warn(&format!("{mp}.type"), format!("'{other}' {method} authentication is not supported yet; clients that offer only {method} are refused")),
                }
            }
            "cryptosign" => {
                let c = ctx.obj(cfg, &mp)?;
                match ctx.string(c, "type", &mp)?.unwrap_or("static") {
                    "static" => {
                        ctx.unknown(c, &mp, &["type", "principals"]);
                        let pp = format!("{mp}.principals");
                        let list = match c.get("principals") {
                            Some(v) => ctx.obj(v, &pp)?,
                            None => return ctx.err(&pp, "missing (required for static authentication)"),
                        };
                        let mut principals = HashMap::new();
                        for (authid, p) in list {
                            let ap = format!("{pp}.{authid}");
                            let p = ctx.obj(p, &ap)?;
                            ctx.unknown(p, &ap, &["role", "realm", "authorized_keys"]);
                            let role = ctx.required_string(p, "role", &ap)?.to_owned();
                            if !roles.contains(&role) {
                                return ctx.err(&format!("{ap}.role"), format!("role '{role}' is not defined in any realm"));
                            }
                            let realm = ctx.string(p, "realm", &ap)?.map(str::to_owned);
                            let kp = format!("{ap}.authorized_keys");
                            let keys = match p.get("authorized_keys") {
                                Some(v) => ctx.list(v, &kp)?,
                                None => return ctx.err(&kp, "missing (required)"),
                            };
                            let mut authorized_keys = Vec::new();
                            for (i, k) in keys.iter().enumerate() {
                                match k.as_str().and_then(crate::auth::cryptosign::parse_key) {
                                    Some(key) => authorized_keys.push(key),
                                    None => return ctx.err(&format!("{kp}[{i}]"), "expected a 64-hex-digit Ed25519 public key"),
                                }
                            }
                            principals.insert(authid.clone(), CryptosignPrincipal { role, authorized_keys, realm });
                        }
                        out.cryptosign = Some(principals);
                    }
                    other => ctx.warn(&format!("{mp}.type"), format!("'{other}' cryptosign authentication is not supported yet; clients that offer only cryptosign are refused")),
                }
            }
            "scram" => {
                let c = ctx.obj(cfg, &mp)?;
                match ctx.string(c, "type", &mp)?.unwrap_or("static") {
                    "static" => {
                        ctx.unknown(c, &mp, &["type", "principals"]);
                        let pp = format!("{mp}.principals");
                        let empty = serde_json::Map::new();
                        // Without principals, SCRAM users come from the built-in store only.
                        let list = match c.get("principals") {
                            Some(v) => ctx.obj(v, &pp)?,
                            None => &empty,
                        };
                        let mut principals = HashMap::new();
                        for (authid, p) in list {
                            let ap = format!("{pp}.{authid}");
                            let p = ctx.obj(p, &ap)?;
                            ctx.unknown(p, &ap, &["role", "kdf", "iterations", "memory", "salt", "stored-key", "server-key"]);
                            let role = ctx.required_string(p, "role", &ap)?.to_owned();
                            if !roles.contains(&role) {
                                return ctx.err(&format!("{ap}.role"), format!("role '{role}' is not defined in any realm"));
                            }
                            let kdf = ctx.required_string(p, "kdf", &ap)?;
                            let iterations = match p.get("iterations").and_then(Value::as_u64) {
                                Some(n) => n,
                                None => return ctx.err(&format!("{ap}.iterations"), "missing or not a positive integer"),
                            };
                            let memory = p.get("memory").and_then(Value::as_u64);
                            let salt = ctx.required_string(p, "salt", &ap)?;
                            let stored = ctx.required_string(p, "stored-key", &ap)?;
                            let server = ctx.required_string(p, "server-key", &ap)?;
                            let credential = match crate::auth::scram::Credential::from_fields(kdf, iterations, memory, salt, stored, server) {
                                Ok(c) => c,
                                Err(e) => return ctx.err(&ap, e),
                            };
                            principals.insert(authid.clone(), ScramPrincipal { role, credential });
                        }
                        out.scram = Some(principals);
                    }
                    other => ctx.warn(&format!("{mp}.type"), format!("'{other}' scram authentication is not supported; clients that offer only scram are refused")),
                }
            }
            "cookie" | "tls" => {
                ctx.warn(&mp, format!("authentication method '{method}' is not supported yet; clients that offer only it are refused"));
            }
            _ => ctx.warn(
                &mp,
                format!("unknown authentication method '{method}', ignored"),
            ),
        }
    }
    Ok(Arc::new(out))
}

/// Switchboard's `ticket` type for website visitors (the chat widget): {`type`: `visitor`,
/// `role` (default "visitor"), `jwt_hs256_secret`?, `jwt_ed25519_public_key`? (hex)}.
fn visitor_auth(
    ctx: &mut Ctx,
    c: &Obj,
    path: &str,
    roles: &HashSet<String>,
) -> Result<crate::auth::visitor::VisitorAuth, ConfigError> {
    ctx.unknown(
        c,
        path,
        &["type", "role", "jwt_hs256_secret", "jwt_ed25519_public_key"],
    );
    let role = ctx.string(c, "role", path)?.unwrap_or("visitor").to_owned();
    if !roles.contains(&role) {
        return ctx.err(
            &format!("{path}.role"),
            format!("role '{role}' is not defined in any realm"),
        );
    }
    let hs256 = ctx
        .string(c, "jwt_hs256_secret", path)?
        .map(|s| Secret(s.to_owned()));
    let ed25519 = match ctx.string(c, "jwt_ed25519_public_key", path)? {
        None => None,
        Some(k) => match crate::auth::cryptosign::parse_key(k) {
            Some(k) => Some(k),
            None => {
                return ctx.err(
                    &format!("{path}.jwt_ed25519_public_key"),
                    "expected 64 hex digits (an Ed25519 public key)",
                )
            }
        },
    };
    Ok(crate::auth::visitor::VisitorAuth {
        role,
        hs256,
        ed25519,
    })
}

/// Methods a dynamic authenticator may decide.
const DYNAMIC_METHODS: &[&str] = &["anonymous", "ticket", "wampcra", "cryptosign", "scram"];

/// `{"type": "dynamic", "authenticator": URI, "authenticator-realm": R, "authenticator-role": X}`
fn dynamic_auth(
    ctx: &mut Ctx,
    c: &Obj,
    path: &str,
    roles: &HashSet<String>,
) -> Result<DynamicAuth, ConfigError> {
    ctx.unknown(
        c,
        path,
        &[
            "type",
            "authenticator",
            "authenticator-realm",
            "authenticator-role",
        ],
    );
    let authenticator = ctx.required_string(c, "authenticator", path)?;
    if !crate::wamp::uri::is_valid(authenticator, MatchPolicy::Exact) {
        return ctx.err(
            &format!("{path}.authenticator"),
            format!("'{authenticator}' is not a valid procedure URI"),
        );
    }
    let realm = ctx
        .string(c, "authenticator-realm", path)?
        .map(str::to_owned);
    if let Some(r) = &realm {
        if !ctx.realms.contains(r) {
            return ctx.err(
                &format!("{path}.authenticator-realm"),
                format!("realm '{r}' is not defined"),
            );
        }
    }
    let role = ctx
        .string(c, "authenticator-role", path)?
        .map(str::to_owned);
    if let Some(r) = &role {
        if r != "trusted" && !roles.contains(r) {
            return ctx.err(
                &format!("{path}.authenticator-role"),
                format!("role '{r}' is not defined in any realm (nor the built-in 'trusted')"),
            );
        }
    }
    Ok(DynamicAuth {
        authenticator: authenticator.to_owned(),
        realm,
        role,
    })
}

/// A WAMP endpoint from a websocket/rawsocket section (or a web path of type websocket).
fn wamp_endpoint(
    ctx: &mut Ctx,
    o: &Obj,
    path: &str,
    roles: &HashSet<String>,
    known: &[&str],
) -> Result<WampEndpoint, ConfigError> {
    ctx.unknown(o, path, known);
    let mut origins = None;
    if let Some(v) = o.get("options") {
        let op = format!("{path}.options");
        let opts = ctx.obj(v, &op)?;
        for (k, v) in opts {
            match k.as_str() {
                "allowed_origins" => {
                    let mut list = Vec::new();
                    for (i, item) in ctx
                        .list(v, &format!("{op}.allowed_origins"))?
                        .iter()
                        .enumerate()
                    {
                        match item.as_str() {
                            Some(s) => list.push(s.to_owned()),
                            None => {
                                return ctx.err(
                                    &format!("{op}.allowed_origins[{i}]"),
                                    format!("expected an origin pattern, got {}", kind(item)),
                                )
                            }
                        }
                    }
                    origins = Some(list);
                }
                _ => ctx.warn(
                    &format!("{op}.{k}"),
                    "per-transport option not supported yet; the command-line limits apply",
                ),
            }
        }
    }
    if o.contains_key("max_message_size") {
        ctx.warn(
            &format!("{path}.max_message_size"),
            "per-transport limit not supported yet; --max-message-size applies",
        );
    }
    Ok(WampEndpoint {
        serializers: serializers(ctx, o, path)?,
        auth: auth(ctx, o, path, roles)?,
        allowed_origins: origins,
    })
}

const WAMP_KEYS: &[&str] = &[
    "type",
    "serializers",
    "auth",
    "options",
    "max_message_size",
    "debug",
    "url",
    "endpoint",
    "id",
];

/// What a web transport's `paths` serve.
#[derive(Default)]
struct WebPaths {
    websocket: Vec<(String, WampEndpoint)>,
    bridge: Vec<(String, BridgeConfig)>,
}

/// A path name as a URL path (`"ws"` → `"/ws"`).
fn url_path(name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    }
}

/// Web `paths`: `{"ws": {"type": "websocket", ...}, "/": {"type": "static", ...}, ...}`.
fn web_paths(
    ctx: &mut Ctx,
    v: &Value,
    path: &str,
    roles: &HashSet<String>,
) -> Result<WebPaths, ConfigError> {
    let paths = ctx.obj(v, path)?;
    let mut out = WebPaths::default();
    for (name, spec) in paths {
        let p = format!("{path}.{name}");
        let s = ctx.obj(spec, &p)?;
        match ctx.string(s, "type", &p)? {
            Some("websocket") => {
                let ep = wamp_endpoint(ctx, s, &p, roles, WAMP_KEYS)?;
                out.websocket.push((url_path(name), ep));
            }
            Some(kind @ ("publisher" | "caller")) => {
                let b = bridge::bridge_path(ctx, s, &p, kind)?;
                out.bridge.push((url_path(name), b));
            }
            Some("static") | Some("info") | Some("nodeinfo") => {
                if name == "/" {
                    ctx.warn(&p, "the embedded web UI is served at '/' instead");
                } else {
                    ctx.warn(&p, "web path type not supported, ignored");
                }
            }
            Some(other) => ctx.warn(
                &format!("{p}.type"),
                format!("web path type '{other}' is not supported yet, ignored"),
            ),
            None => return ctx.err(&format!("{p}.type"), "missing (required)"),
        }
    }
    Ok(out)
}

fn transport(
    ctx: &mut Ctx,
    v: &Value,
    path: &str,
    roles: &HashSet<String>,
) -> Result<Option<ListenerConfig>, ConfigError> {
    let o = ctx.obj(v, path)?;
    let kind = ctx.required_string(o, "type", path)?;
    let listener = match kind {
        "websocket" => {
            let ep = wamp_endpoint(ctx, o, path, roles, WAMP_KEYS)?;
            let (endpoint, tls) = endpoint(ctx, o, path)?;
            ListenerConfig {
                endpoint,
                websocket: vec![("*".into(), ep)],
                rawsocket: None,
                web: true,
                bridge: Vec::new(),
                tls,
                origin: path.to_owned(),
            }
        }
        "rawsocket" => {
            let ep = wamp_endpoint(ctx, o, path, roles, WAMP_KEYS)?;
            let (endpoint, tls) = endpoint(ctx, o, path)?;
            ListenerConfig {
                endpoint,
                websocket: Vec::new(),
                rawsocket: Some(ep),
                web: false,
                bridge: Vec::new(),
                tls,
                origin: path.to_owned(),
            }
        }
        "web" => {
            ctx.unknown(o, path, &["type", "endpoint", "paths", "options", "id"]);
            let paths = match o.get("paths") {
                Some(p) => web_paths(ctx, p, &format!("{path}.paths"), roles)?,
                None => WebPaths::default(),
            };
            let (endpoint, tls) = endpoint(ctx, o, path)?;
            ListenerConfig {
                endpoint,
                websocket: paths.websocket,
                rawsocket: None,
                web: true,
                bridge: paths.bridge,
                tls,
                origin: path.to_owned(),
            }
        }
        "universal" => {
            ctx.unknown(
                o,
                path,
                &["type", "endpoint", "rawsocket", "websocket", "web", "id"],
            );
            let rawsocket = match o.get("rawsocket") {
                Some(r) => {
                    let p = format!("{path}.rawsocket");
                    let r = ctx.obj(r, &p)?;
                    Some(wamp_endpoint(ctx, r, &p, roles, WAMP_KEYS)?)
                }
                None => None,
            };
            let mut websocket = match o.get("websocket") {
                Some(w) => {
                    let p = format!("{path}.websocket");
                    let w = ctx.obj(w, &p)?;
                    let mut out = Vec::new();
                    for (name, spec) in w {
                        let sp = format!("{p}.{name}");
                        let s = ctx.obj(spec, &sp)?;
                        out.push((
                            url_path(name),
                            wamp_endpoint(ctx, s, &sp, roles, WAMP_KEYS)?,
                        ));
                    }
                    out
                }
                None => Vec::new(),
            };
            let mut bridge = Vec::new();
            if let Some(web) = o.get("web") {
                let p = format!("{path}.web");
                let w = ctx.obj(web, &p)?;
                ctx.unknown(w, &p, &["paths", "options"]);
                if let Some(paths) = w.get("paths") {
                    let paths = web_paths(ctx, paths, &format!("{p}.paths"), roles)?;
                    websocket.extend(paths.websocket);
                    bridge = paths.bridge;
                }
            }
            let (endpoint, tls) = endpoint(ctx, o, path)?;
            ListenerConfig {
                endpoint,
                websocket,
                rawsocket,
                web: true,
                bridge,
                tls,
                origin: path.to_owned(),
            }
        }
        other => {
            ctx.warn(
                &format!("{path}.type"),
                format!("transport type '{other}' is not supported, ignored"),
            );
            return Ok(None);
        }
    };
    if let Endpoint::Tcp(a) = &listener.endpoint {
        let anonymous = listener
            .websocket
            .iter()
            .map(|(_, e)| e)
            .chain(listener.rawsocket.iter())
            .any(|e| e.auth.anonymous.is_some());
        if !a.ip().is_loopback() && anonymous {
            ctx.warn(
                &format!("{path}.endpoint"),
                format!("listens on {a} beyond loopback and admits anonymous clients"),
            );
        }
    }
    if let Endpoint::Unix(_) = &listener.endpoint {
        if !listener.websocket.is_empty() {
            return ctx.err(
                &format!("{path}.endpoint"),
                "WebSocket over a Unix socket is not supported (use rawsocket)",
            );
        }
    }
    Ok(Some(listener))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_json(text: &str) -> Result<Loaded, ConfigError> {
        parse(text, false, "test.json", Limits::default())
    }

    /// The shape `crossbar init` writes: a router worker with realm1, an anonymous role and a
    /// web transport with a static "/" and a websocket "ws".
    const CROSSBAR_INIT: &str = r#"{
        "$schema": "https://raw.githubusercontent.com/crossbario/crossbar/master/crossbar.json",
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{
                "name": "realm1",
                "roles": [{
                    "name": "anonymous",
                    "permissions": [{
                        "uri": "", "match": "prefix",
                        "allow": {"call": true, "register": true, "publish": true, "subscribe": true},
                        "disclose": {"caller": false, "publisher": false},
                        "cache": true
                    }]
                }]
            }],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": 8080, "backlog": 1024},
                "rawsocket": {"serializers": ["cbor", "msgpack", "json"]},
                "websocket": {"ws": {"type": "websocket", "serializers": ["cbor", "msgpack", "json"]}},
                "web": {"paths": {"/": {"type": "static", "directory": "../web", "options": {"enable_directory_listing": false}}, "info": {"type": "nodeinfo"}}}
            }]
        }]
    }"#;

    #[test]
    fn limits_section_overrides_the_command_line_values() {
        let with = |limits: &str| {
            CROSSBAR_INIT.replacen(
                r#""type": "router","#,
                &format!(r#""type": "router", "limits": {limits},"#),
                1,
            )
        };
        let l = load_json(&with(
            r#"{"subscriptions_per_session": 50, "connections_per_address": 7,
                "unlimited_addresses": ["10.0.0.0/8"]}"#,
        ))
        .unwrap();
        let lim = &l.node.router.limits;
        assert_eq!(lim.session.subscriptions, 50);
        assert_eq!(lim.connections.per_address, 7);
        assert_eq!(
            lim.connections.unlimited,
            vec![crate::config::ipnet::IpNet::parse("10.0.0.0/8").unwrap()]
        );
        // Untouched keys keep the command-line values.
        assert_eq!(
            lim.session.registrations,
            Limits::default().session.registrations
        );
        let e = load_json(&with(r#"{"topics_per_realm": 0}"#))
            .err()
            .unwrap();
        assert!(e.to_string().contains("limits.topics_per_realm"), "{e}");
        let e = load_json(&with(r#"{"unlimited_addresses": ["nope"]}"#))
            .err()
            .unwrap();
        assert!(e.to_string().contains("unlimited_addresses[0]"), "{e}");
    }

    #[test]
    fn a_crossbar_init_config_loads_unchanged() {
        let l = load_json(CROSSBAR_INIT).unwrap();
        let r = &l.node.router.realms[0];
        assert_eq!(r.name, "realm1");
        let p = &r.roles[0].permissions[0];
        assert_eq!((p.uri.as_str(), p.policy), ("", MatchPolicy::Prefix));
        assert_eq!(
            p.allow,
            Allow {
                call: true,
                register: true,
                publish: true,
                subscribe: true
            }
        );
        let lst = &l.node.listeners[0];
        assert_eq!(lst.endpoint, Endpoint::Tcp("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(lst.websocket.len(), 1);
        assert_eq!(lst.websocket[0].0, "/ws");
        assert_eq!(
            lst.websocket[0].1.auth.anonymous.as_deref(),
            Some("anonymous"),
            "no auth section: anonymous"
        );
        assert_eq!(lst.rawsocket.as_ref().map(|r| r.serializers.len()), Some(3));
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("paths./") && w.contains("embedded web UI")),
            "{:?}",
            l.warnings
        );
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("listens on 0.0.0.0:8080")),
            "{:?}",
            l.warnings
        );
        assert!(!l.node.router.dev_mode);
    }

    #[test]
    fn permission_match_is_inferred_like_crossbar() {
        let cfg = |uri: &str| {
            format!(
                r#"{{"version":2,"workers":[{{"type":"router","realms":[{{"name":"r","roles":[{{"name":"x","permissions":[{{"uri":"{uri}","allow":{{"call":true}}}}]}}]}}],
            "transports":[{{"type":"rawsocket","endpoint":{{"type":"unix","path":"/tmp/x.sock"}},"auth":{{"anonymous":{{"type":"static","role":"x"}}}}}}]}}]}}"#
            )
        };
        let get = |uri: &str| {
            let l = load_json(&cfg(uri)).unwrap();
            let p = l.node.router.realms[0].roles[0].permissions[0].clone();
            (p.uri, p.policy)
        };
        assert_eq!(
            get("com.example.*"),
            ("com.example.".into(), MatchPolicy::Prefix)
        );
        assert_eq!(get("*"), ("".into(), MatchPolicy::Prefix));
        assert_eq!(
            get("com..create"),
            ("com..create".into(), MatchPolicy::Wildcard)
        );
        assert_eq!(
            get("com.example.add"),
            ("com.example.add".into(), MatchPolicy::Exact)
        );
    }

    fn error_of(text: &str) -> ConfigError {
        load_json(text).unwrap_err()
    }

    #[test]
    fn wrong_configs_name_the_path_and_the_problem() {
        let base = |perm: &str, auth: &str, endpoint: &str| {
            format!(
                r#"{{"version":2,"workers":[{{"type":"router","realms":[{{"name":"realm1","roles":[{{"name":"user","permissions":[{perm}]}}]}}],
            "transports":[{{"type":"websocket","endpoint":{endpoint}{auth}}}]}}]}}"#
            )
        };
        let ok_perm = r#"{"uri":"a.b","allow":{"call":true}}"#;
        let ok_ep = r#"{"type":"tcp","port":0,"interface":"127.0.0.1"}"#;
        let e = error_of(&base(r#"{"uri":"a.b","match":"regex"}"#, "", ok_ep));
        assert_eq!(e.path, "workers[0].realms[0].roles[0].permissions[0].match");
        assert!(e.message.contains("exact, prefix, wildcard"), "{e}");
        let e = error_of(&base(r#"{"uri":"a b.c"}"#, "", ok_ep));
        assert_eq!(e.path, "workers[0].realms[0].roles[0].permissions[0].uri");
        let e = error_of(&base(
            ok_perm,
            r#","auth":{"anonymous":{"type":"static","role":"ghost"}}"#,
            ok_ep,
        ));
        assert_eq!(e.path, "workers[0].transports[0].auth.anonymous.role");
        assert!(e.message.contains("'ghost' is not defined"), "{e}");
        let e = error_of(&base(ok_perm, "", r#"{"type":"tcp","port":70000}"#));
        assert_eq!(e.path, "workers[0].transports[0].endpoint.port");
        let e = error_of(&base(
            ok_perm,
            "",
            r#"{"type":"tcp","port":443,"tls":{"key":"k"}}"#,
        ));
        assert_eq!(e.path, "workers[0].transports[0].endpoint.tls.certificate");
        let e = error_of(&base(ok_perm, "", r#"{"type":"tcp","port":"80"}"#));
        assert!(e.message.contains("expected a port number"), "{e}");
        let e = error_of(r#"{"version":1,"workers":[]}"#);
        assert_eq!(e.path, "version");
        let e = error_of(r#"{"version":2}"#);
        assert_eq!(e.path, "workers");
        let e = error_of(
            r#"{"version":2,"workers":[{"type":"router","realms":[{"name":"bad realm"}],"transports":[]}]}"#,
        );
        assert_eq!(e.path, "workers[0].realms[0].name");
        let e = error_of("{ not json");
        assert_eq!(e.path, "(syntax)");
        assert_eq!(
            e.to_string().split(": ").next(),
            Some("test.json"),
            "the file is named first"
        );
    }

    #[test]
    fn unsupported_keys_warn_once_with_their_path() {
        let text = r#"{"version":2,"workers":[
            {"type":"container"},
            {"type":"router","realms":[{"name":"realm1","store":{"type":"memory","colour":"blue"},"roles":[{"name":"anonymous","authorizer":"com.auth","permissions":[{"uri":"","match":"prefix","allow":{"call":true,"fly":true}}]}]}],
             "transports":[{"type":"websocket","endpoint":{"type":"tcp","port":0,"interface":"127.0.0.1"},"serializers":["json","ubjson"],
                            "auth":{"scram":{"type":"static","principals":{}},"anonymous":{"type":"static","role":"anonymous"}},
                            "options":{"auto_ping_interval":10000}},
                           {"type":"mqtt","endpoint":{"type":"tcp","port":1883}}]}]}"#;
        let l = load_json(text).unwrap();
        let has = |needle: &str| l.warnings.iter().filter(|w| w.contains(needle)).count();
        assert_eq!(has("workers[0].type"), 1);
        assert_eq!(has("roles[0].permissions[0].allow.fly"), 1);
        assert_eq!(has("authorizer"), 0, "dynamic authorizers are supported");
        assert_eq!(
            has("realms[0].store.colour"),
            1,
            "store is supported, unknown keys in it warned"
        );
        assert_eq!(has("serializers[1]"), 1);
        assert_eq!(has("auth.scram"), 0, "scram is supported");
        assert_eq!(has("options.auto_ping_interval"), 1);
        assert_eq!(has("transports[1].type"), 1);
        assert!(
            l.warnings.iter().all(|w| w.starts_with("test.json: ")),
            "{:?}",
            l.warnings
        );
        assert_eq!(l.node.listeners.len(), 1);
        assert_eq!(
            l.node.listeners[0].websocket[0].1.serializers,
            vec![Serializer::Json]
        );
    }

    #[test]
    fn static_ticket_and_wampcra_sections() {
        let cfg = |auth: &str| {
            format!(
                r#"{{"version":2,"workers":[{{"type":"router","realms":[{{"name":"r","roles":[{{"name":"user"}}]}}],
            "transports":[{{"type":"websocket","endpoint":{{"type":"tcp","port":0,"interface":"127.0.0.1"}},"auth":{auth}}}]}}]}}"#
            )
        };
        let l = load_json(&cfg(r#"{"ticket":{"type":"static","principals":{"joe":{"ticket":"t","role":"user"}}},
            "wampcra":{"type":"static","users":{"a":{"secret":"s","role":"user"},"b":{"secret":"s","role":"user","salt":"x"}}}}"#)).unwrap();
        let auth = &l.node.listeners[0].websocket[0].1.auth;
        assert_eq!(
            auth.anonymous, None,
            "an auth section without anonymous admits nobody anonymously"
        );
        assert_eq!(
            auth.ticket
                .as_ref()
                .and_then(|t| t.get("joe"))
                .map(|p| p.role.as_str()),
            Some("user")
        );
        let b = auth
            .wampcra
            .as_ref()
            .and_then(|u| u.get("b"))
            .and_then(|u| u.salt.clone())
            .unwrap();
        assert_eq!((b.iterations, b.keylen), (1000, 32), "Autobahn's defaults");
        assert!(
            !format!("{auth:?}").contains("\"t\""),
            "secrets are not printed"
        );
        let e = load_json(&cfg(
            r#"{"ticket":{"type":"static","principals":{"joe":{"ticket":"t","role":"root"}}}}"#,
        ))
        .unwrap_err();
        assert_eq!(
            e.path,
            "workers[0].transports[0].auth.ticket.principals.joe.role"
        );
        let e = load_json(&cfg(r#"{"wampcra":{"type":"static","users":{"a":{"secret":"s","role":"user","salt":"x","iterations":0}}}}"#)).unwrap_err();
        assert_eq!(
            e.path,
            "workers[0].transports[0].auth.wampcra.users.a.iterations"
        );
        let e = load_json(&cfg(r#"{"ticket":{"type":"static"}}"#)).unwrap_err();
        assert_eq!(e.path, "workers[0].transports[0].auth.ticket.principals");
        // WAMP-CRA and SCRAM without principals: the built-in store holds them.
        let l = load_json(&cfg(
            r#"{"wampcra":{"type":"static"},"scram":{"type":"static"}}"#,
        ))
        .unwrap();
        let auth = &l.node.listeners[0].websocket[0].1.auth;
        assert_eq!(auth.wampcra.as_ref().map(|u| u.len()), Some(0));
        assert_eq!(auth.scram.as_ref().map(|u| u.len()), Some(0));
        // A SCRAM principal in Crossbar's shape (hex salt and keys).
        let key = "11".repeat(32);
        let good = format!(
            r#"{{"scram":{{"type":"static","principals":{{"carol":{{"role":"user","kdf":"argon2id-13","iterations":4096,"memory":512,"salt":"00112233445566778899aabbccddeeff","stored-key":"{key}","server-key":"{key}"}}}}}}}}"#
        );
        let l = load_json(&cfg(&good)).unwrap();
        let p = &l.node.listeners[0].websocket[0]
            .1
            .auth
            .scram
            .as_ref()
            .unwrap()["carol"];
        assert_eq!(p.role, "user");
        assert_eq!(p.credential.iterations, 4096);
        for (bad, path) in [
            (
                good.replace("argon2id-13", "md5"),
                "auth.scram.principals.carol",
            ),
            (
                good.replace(&format!(r#""stored-key":"{key}""#), r#""stored-key":"zz""#),
                "auth.scram.principals.carol",
            ),
            (
                good.replace(r#""iterations":4096,"#, ""),
                "auth.scram.principals.carol.iterations",
            ),
            (
                good.replace(r#""role":"user""#, r#""role":"ghost""#),
                "auth.scram.principals.carol.role",
            ),
        ] {
            let e = load_json(&cfg(&bad)).unwrap_err();
            assert!(e.path.ends_with(path), "{bad}: {e}");
        }
        let l = load_json(&cfg(r#"{"ticket":{"type":"dynamic","authenticator":"com.auth"},"wampcra":{"type":"dynamic","authenticator":"com.auth","authenticator-realm":"r","authenticator-role":"user"},"anonymous":{"type":"static","role":"user"}}"#)).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let auth = &l.node.listeners[0].websocket[0].1.auth;
        assert_eq!(auth.dynamic["ticket"].authenticator, "com.auth");
        assert_eq!(auth.dynamic["ticket"].realm, None);
        assert_eq!(auth.dynamic["wampcra"].realm.as_deref(), Some("r"));
        assert_eq!(auth.dynamic["wampcra"].role.as_deref(), Some("user"));
        assert!(auth.ticket.is_none());
        for (bad, path) in [
            (
                r#"{"ticket":{"type":"dynamic"}}"#,
                "auth.ticket.authenticator",
            ),
            (
                r#"{"ticket":{"type":"dynamic","authenticator":"com..x"}}"#,
                "auth.ticket.authenticator",
            ),
            (
                r#"{"ticket":{"type":"dynamic","authenticator":"com.x","authenticator-realm":"nowhere"}}"#,
                "auth.ticket.authenticator-realm",
            ),
            (
                r#"{"ticket":{"type":"dynamic","authenticator":"com.x","authenticator-role":"ghost"}}"#,
                "auth.ticket.authenticator-role",
            ),
        ] {
            let e = load_json(&cfg(bad)).unwrap_err();
            assert!(e.path.ends_with(path), "{bad}: {e}");
        }
    }

    #[test]
    fn toml_reads_the_same_shape() {
        let toml_text = r#"
            version = 2
            [[workers]]
            type = "router"
            [[workers.realms]]
            name = "realm1"
            [[workers.realms.roles]]
            name = "anonymous"
            [[workers.realms.roles.permissions]]
            uri = "com.app.*"
            allow = { call = true, subscribe = true }
            [[workers.transports]]
            type = "rawsocket"
            endpoint = { type = "tcp", port = 0, interface = "127.0.0.1" }
            serializers = ["msgpack"]
        "#;
        let l = parse(toml_text, true, "node.toml", Limits::default()).unwrap();
        let p = &l.node.router.realms[0].roles[0].permissions[0];
        assert_eq!(
            (p.uri.as_str(), p.policy),
            ("com.app.", MatchPolicy::Prefix)
        );
        assert!(p.allow.call && p.allow.subscribe && !p.allow.publish);
        assert_eq!(
            l.node.listeners[0]
                .rawsocket
                .as_ref()
                .map(|r| r.serializers.clone()),
            Some(vec![Serializer::MsgPack])
        );
        let e = parse("version = ", true, "node.toml", Limits::default()).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.path.as_str()),
            ("node.toml", "(syntax)")
        );
    }
}
