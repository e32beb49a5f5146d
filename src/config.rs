//! Plain configuration data handed to the router: realms, roles, permissions and limits.
//!
//! Nothing here is hard-wired into routing: the router only ever sees a `RouterConfig`. The
//! zero-config development default is one such value (`RouterConfig::development`); a later
//! config-file loader builds others.

use crate::wamp::uri::MatchPolicy;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct RouterConfig {
    pub realms: Vec<RealmConfig>,
    pub limits: Limits,
    /// True for the zero-config development default (shown in status and warned about).
    pub dev_mode: bool,
}

#[derive(Clone, Debug)]
pub struct RealmConfig {
    pub name: String,
    pub roles: Vec<RoleConfig>,
    /// The role anonymous clients get, if anonymous access is allowed.
    pub anonymous_role: Option<String>,
}

#[derive(Clone, Debug)]
pub struct RoleConfig {
    pub name: String,
    pub permissions: Vec<PermissionConfig>,
}

#[derive(Clone, Debug)]
pub struct PermissionConfig {
    pub uri: String,
    pub policy: MatchPolicy,
    pub allow: Allow,
    pub disclose: Disclose,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allow {
    pub call: bool,
    pub register: bool,
    pub publish: bool,
    pub subscribe: bool,
}

impl Allow {
    pub const ALL: Allow = Allow {
        call: true,
        register: true,
        publish: true,
        subscribe: true,
    };
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disclose {
    pub caller: bool,
    pub publisher: bool,
}

/// Limits, each with a documented default (see README "Limits").
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest WAMP message accepted, after reassembling fragments.
    pub max_message_size: usize,
    /// Bytes that may wait in one connection's outbound queue before it is cut off as slow.
    pub max_queue_bytes: usize,
    /// How often an idle peer is pinged; `None` turns keep-alive off.
    pub ping_interval: Option<Duration>,
    /// How long a ping may go unanswered before the peer is dropped.
    pub ping_timeout: Duration,
    /// How long a new connection may take to send HELLO.
    pub hello_timeout: Duration,
    /// How long outbound frames may wait to be written together (0: write at once). Trades a
    /// little latency for far fewer syscalls when many small events go to many subscribers.
    pub write_delay: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 1 << 20,
            max_queue_bytes: 1 << 20,
            ping_interval: Some(Duration::from_secs(30)),
            ping_timeout: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(10),
            write_delay: Duration::ZERO,
        }
    }
}

impl RouterConfig {
    /// The zero-config default: one realm `realm1`, anonymous clients may do everything.
    pub fn development(limits: Limits) -> RouterConfig {
        RouterConfig {
            realms: vec![RealmConfig {
                name: "realm1".into(),
                roles: vec![RoleConfig {
                    name: "anonymous".into(),
                    permissions: vec![PermissionConfig {
                        uri: String::new(),
                        policy: MatchPolicy::Prefix,
                        allow: Allow::ALL,
                        disclose: Disclose::default(),
                    }],
                }],
                anonymous_role: Some("anonymous".into()),
            }],
            limits,
            dev_mode: true,
        }
    }
}
