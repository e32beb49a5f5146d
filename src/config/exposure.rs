//! Is a public listener open to strangers? A config may admit anonymous clients beyond
//! loopback on purpose (a public read-only feed), but an anonymous role that may publish or
//! register on every URI hands the application to anyone on the network — Crossbar's `init`
//! config is exactly that, on 0.0.0.0. `main` refuses to start (or a reload refuses the file)
//! with such a listener unless `--allow-public-anonymous` says it is meant.

use super::{Endpoint, NodeConfig};
use crate::wamp::uri::MatchPolicy;

impl NodeConfig {
    /// One line per (listener, realm, role) where anonymous clients on a non-loopback address
    /// may publish or register on every URI; empty when there is none.
    pub fn open_to_anonymous(&self) -> Vec<String> {
        let mut found = Vec::new();
        for listener in &self.listeners {
            let Endpoint::Tcp(addr) = &listener.endpoint else {
                continue;
            };
            if addr.ip().is_loopback() {
                continue;
            }
            let mut roles: Vec<&str> = listener
                .websocket
                .iter()
                .map(|(_, e)| e)
                .chain(listener.rawsocket.iter())
                .filter_map(|e| e.auth.anonymous.as_deref())
                .collect();
            roles.sort_unstable();
            roles.dedup();
            for role in roles {
                for realm in &self.router.realms {
                    let Some(r) = realm.roles.iter().find(|r| r.name == role) else {
                        continue;
                    };
                    let everywhere = r
                        .permissions
                        .iter()
                        .filter(|p| p.uri.is_empty() && p.policy == MatchPolicy::Prefix);
                    let mut may = Vec::new();
                    if everywhere.clone().any(|p| p.allow.publish) {
                        may.push("publish");
                    }
                    if everywhere.clone().any(|p| p.allow.register) {
                        may.push("register");
                    }
                    if !may.is_empty() {
                        found.push(format!(
                            "{addr}: anonymous clients get role '{role}' in realm '{}', which may {} on every URI",
                            realm.name,
                            may.join(" and ")
                        ));
                    }
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use crate::config::crossbar;
    use crate::config::Limits;

    fn config(host: &str, allow_publish: bool, uri: &str) -> String {
        format!(
            r#"{{"version": 2, "workers": [{{"type": "router",
              "realms": [{{"name": "realm1", "roles": [{{"name": "anonymous", "permissions": [
                {{"uri": "{uri}", "match": "prefix",
                  "allow": {{"call": true, "register": false, "publish": {allow_publish}, "subscribe": true}}}}]}}]}}],
              "transports": [{{"type": "websocket", "endpoint": {{"type": "tcp", "port": 8080, "interface": "{host}"}},
                 "auth": {{"anonymous": {{"type": "static", "role": "anonymous"}}}}}}]}}]}}"#
        )
    }

    fn exposure(text: &str) -> Vec<String> {
        crossbar::parse(text, false, "t.json", Limits::default())
            .unwrap()
            .node
            .open_to_anonymous()
    }

    #[test]
    fn anonymous_publishing_everywhere_on_a_public_address_is_found() {
        let found = exposure(&config("0.0.0.0", true, ""));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("0.0.0.0:8080"), "{found:?}");
        assert!(found[0].contains("may publish on every URI"), "{found:?}");
    }

    #[test]
    fn loopback_narrow_or_read_only_anonymous_access_is_not() {
        assert!(exposure(&config("127.0.0.1", true, "")).is_empty());
        assert!(exposure(&config("0.0.0.0", false, "")).is_empty());
        assert!(exposure(&config("0.0.0.0", true, "com.example.public.")).is_empty());
    }
}
