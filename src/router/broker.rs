//! `Broker`: subscriptions of one realm and the fan-out of publications.
//!
//! Invariant: `publish` never waits — it encodes each EVENT once per (subscription, serializer,
//! framing) and pushes the same bytes to every eligible subscriber's outbox.
//! Boundary: this is "deliver to local subscribers"; handing a publication to other nodes is a
//! separate seam in `Realm::publish`.

use super::peer::Peer;
use crate::framing::{frame_message, Framing};
use crate::wamp::ids::random_id;
use crate::wamp::pattern::PatternIndex;
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::Dict;
use crate::wamp::{Id, Message, Payload, Serializer};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

pub struct Subscription {
    pub id: Id,
    pub uri: String,
    pub policy: MatchPolicy,
    pub created: std::time::SystemTime,
    pub subscribers: HashMap<Id, Arc<Peer>>,
}

#[derive(Default)]
pub struct Broker {
    index: PatternIndex<Id>,
    subscriptions: HashMap<Id, Subscription>,
    by_session: HashMap<Id, Vec<Id>>,
}

/// Who among the subscribers receives a publication (publisher exclusion, black/white lists).
#[derive(Default, Debug, Clone)]
pub struct Audience {
    pub publisher: Id,
    pub exclude_me: bool,
    pub exclude: Option<Vec<Id>>,
    pub exclude_authid: Option<Vec<String>>,
    pub exclude_authrole: Option<Vec<String>>,
    pub eligible: Option<Vec<Id>>,
    pub eligible_authid: Option<Vec<String>>,
    pub eligible_authrole: Option<Vec<String>>,
}

impl Audience {
    /// Whether the publication named sessions, authids or roles to include or exclude (such
    /// events are not kept in the event history).
    pub fn has_lists(&self) -> bool {
        self.exclude.is_some()
            || self.exclude_authid.is_some()
            || self.exclude_authrole.is_some()
            || self.eligible.is_some()
            || self.eligible_authid.is_some()
            || self.eligible_authrole.is_some()
    }

    pub fn admits(&self, peer: &Peer) -> bool {
        if self.exclude_me && peer.session == self.publisher {
            return false;
        }
        let p = &peer.principal;
        if let Some(l) = &self.eligible {
            if !l.contains(&peer.session) {
                return false;
            }
        }
        if let Some(l) = &self.eligible_authid {
            if !l.contains(&p.authid) {
                return false;
            }
        }
        if let Some(l) = &self.eligible_authrole {
            if !l.contains(&p.authrole) {
                return false;
            }
        }
        if let Some(l) = &self.exclude {
            if l.contains(&peer.session) {
                return false;
            }
        }
        if let Some(l) = &self.exclude_authid {
            if l.contains(&p.authid) {
                return false;
            }
        }
        if let Some(l) = &self.exclude_authrole {
            if l.contains(&p.authrole) {
                return false;
            }
        }
        true
    }
}

/// What a SUBSCRIBE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    pub id: Id,
    /// The subscription did not exist before.
    pub created: bool,
    /// The session was not subscribed before.
    pub added: bool,
}

/// Result of a fan-out, for figures and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: usize,
    /// Of those delivered, how many went to client sessions (whose messages are counted).
    pub counted: usize,
    pub dropped: usize,
    pub encodings: usize,
}

impl Broker {
    /// Whether subscribing `session` to (uri, policy) stays within `limits`: subscribing again
    /// to what it holds always does; a new subscription counts against the session's cap, and
    /// a new topic against the realm's.
    pub fn within_limits(
        &self,
        session: Id,
        uri: &str,
        policy: MatchPolicy,
        limits: &crate::config::SessionLimits,
    ) -> Result<(), crate::metrics::Limit> {
        let existing = self.index.get(uri, policy).copied();
        if let Some(id) = existing {
            if self
                .subscriptions
                .get(&id)
                .is_some_and(|s| s.subscribers.contains_key(&session))
            {
                return Ok(());
            }
        }
        let held = self.by_session.get(&session).map_or(0, Vec::len);
        if held >= limits.subscriptions {
            return Err(crate::metrics::Limit::Subscriptions);
        }
        if existing.is_none() && self.subscriptions.len() >= limits.topics_per_realm {
            return Err(crate::metrics::Limit::TopicsPerRealm);
        }
        Ok(())
    }

    /// Adds `peer` to the subscription for (uri, policy), creating it if needed.
    /// Returns the subscription id (subscribing twice returns the same id) and whether the
    /// subscription was created and whether the session was added (for the meta events).
    pub fn subscribe(&mut self, peer: &Arc<Peer>, uri: &str, policy: MatchPolicy) -> Subscribed {
        let mut created = false;
        let id = match self.index.get(uri, policy) {
            Some(id) => *id,
            None => {
                created = true;
                let id = random_id();
                self.index.insert(uri, policy, id);
                self.subscriptions.insert(
                    id,
                    Subscription {
                        id,
                        uri: uri.to_owned(),
                        policy,
                        created: std::time::SystemTime::now(),
                        subscribers: HashMap::new(),
                    },
                );
                id
            }
        };
        let mut added = false;
        if let Some(sub) = self.subscriptions.get_mut(&id) {
            if sub.subscribers.insert(peer.session, peer.clone()).is_none() {
                self.by_session.entry(peer.session).or_default().push(id);
                added = true;
            }
        }
        Subscribed { id, created, added }
    }

    /// Removes `session` from subscription `id`: `None` if it was not subscribed, else whether
    /// the subscription was deleted (its last subscriber left) and whether it was to a `wamp.`
    /// topic (those make no meta events).
    pub fn unsubscribe(&mut self, session: Id, id: Id) -> Option<(bool, bool)> {
        let sub = self.subscriptions.get_mut(&id)?;
        sub.subscribers.remove(&session)?;
        let meta_topic = crate::wamp::uri::is_reserved(&sub.uri);
        if let Some(list) = self.by_session.get_mut(&session) {
            list.retain(|s| *s != id);
            if list.is_empty() {
                self.by_session.remove(&session);
            }
        }
        Some((self.drop_if_empty(id), meta_topic))
    }

    /// Deletes subscription `id` if nobody is left on it; true if it did.
    fn drop_if_empty(&mut self, id: Id) -> bool {
        if let Some(sub) = self.subscriptions.get(&id) {
            if sub.subscribers.is_empty() {
                self.index.remove(&sub.uri, sub.policy);
                self.subscriptions.remove(&id);
                return true;
            }
        }
        false
    }

    /// Forgets every subscription of a session that left; returns (subscription, deleted,
    /// to a `wamp.` topic) for each, for the meta events.
    pub fn remove_session(&mut self, session: Id) -> Vec<(Id, bool, bool)> {
        let ids = self.by_session.remove(&session).unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut meta_topic = false;
            if let Some(sub) = self.subscriptions.get_mut(&id) {
                sub.subscribers.remove(&session);
                meta_topic = crate::wamp::uri::is_reserved(&sub.uri);
            }
            out.push((id, self.drop_if_empty(id), meta_topic));
        }
        out
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    pub fn get(&self, id: Id) -> Option<&Subscription> {
        self.subscriptions.get(&id)
    }

    /// Every subscription, for `wamp.subscription.list`.
    pub fn all(&self) -> impl Iterator<Item = &Subscription> {
        self.subscriptions.values()
    }

    /// The subscription for exactly (uri, policy).
    pub fn lookup(&self, uri: &str, policy: MatchPolicy) -> Option<Id> {
        self.index.get(uri, policy).copied()
    }

    /// Every subscription a publication to `topic` would reach.
    pub fn matching(&self, topic: &str) -> Vec<Id> {
        let mut v = Vec::new();
        self.index.for_each_match(topic, |id, _| v.push(*id));
        v
    }

    /// Whether a publication to `topic` would reach anyone (cheap; no allocation).
    pub fn has_subscribers(&self, topic: &str) -> bool {
        let mut any = false;
        self.index.for_each_match(topic, |_, _| any = true);
        any
    }

    /// Delivers an event to every eligible subscriber of every matching subscription.
    pub fn publish(
        &self,
        topic: &str,
        publication: Id,
        details: &Dict,
        payload: &Arc<Payload>,
        audience: &Audience,
    ) -> Delivery {
        let mut out = Delivery::default();
        self.index.for_each_match(topic, |id, policy| {
            let Some(sub) = self.subscriptions.get(id) else {
                return;
            };
            let mut event_details = details.clone();
            if policy != MatchPolicy::Exact {
                event_details.push(("topic".into(), topic.into()));
            }
            let msg = Message::Event {
                subscription: sub.id,
                publication,
                details: event_details,
                payload: payload.clone(),
            };
            let mut cache: [[Option<Bytes>; 2]; 3] = Default::default();
            for peer in sub.subscribers.values() {
                if !audience.admits(peer) {
                    continue;
                }
                let slot = &mut cache[peer.serializer.index()][peer.framing.index()];
                let frame = match slot {
                    Some(f) => f.clone(),
                    None => match encode(peer.serializer, peer.framing, &msg) {
                        Some(f) => {
                            out.encodings += 1;
                            *slot = Some(f.clone());
                            f
                        }
                        None => continue,
                    },
                };
                match peer.outbox.push(frame) {
                    Ok(()) => {
                        out.delivered += 1;
                        out.counted += usize::from(peer.metrics.is_some());
                    }
                    Err(_) => out.dropped += 1,
                }
            }
        });
        out
    }
}

fn encode(serializer: Serializer, framing: Framing, msg: &Message) -> Option<Bytes> {
    match frame_message(serializer, framing, msg) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode EVENT");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Principal;
    use crate::outbox::Outbox;
    use crate::router::peer::ClientFeatures;
    use std::collections::VecDeque;

    fn peer(id: Id, ser: Serializer, framing: Framing, role: &str) -> Arc<Peer> {
        Arc::new(Peer::new(
            id,
            Principal {
                authid: format!("u{id}"),
                authrole: role.into(),
                authmethod: "anonymous".into(),
                authprovider: "static".into(),
                authextra: Vec::new(),
            },
            ser,
            framing,
            ClientFeatures::default(),
            Arc::new(Outbox::new(1 << 20)),
        ))
    }

    fn frames(p: &Peer) -> VecDeque<Bytes> {
        let mut q = VecDeque::new();
        p.outbox.take(&mut q);
        q
    }

    #[test]
    fn an_event_is_encoded_once_per_serializer_and_framing_and_the_bytes_are_shared() {
        let mut b = Broker::default();
        let combos = [
            (Serializer::Json, Framing::WebSocket),
            (Serializer::MsgPack, Framing::WebSocket),
            (Serializer::Cbor, Framing::WebSocket),
            (Serializer::Json, Framing::RawSocket),
        ];
        let peers: Vec<Arc<Peer>> = (0..40)
            .map(|i| {
                let (s, f) = combos[i as usize % combos.len()];
                peer(i + 1, s, f, "user")
            })
            .collect();
        for p in &peers {
            b.subscribe(p, "t", MatchPolicy::Exact);
        }
        let d = b.publish(
            "t",
            7,
            &vec![],
            &Arc::new(Payload::args(vec!["x".into()])),
            &Audience::default(),
        );
        assert_eq!(
            d,
            Delivery {
                delivered: 40,
                counted: 0,
                dropped: 0,
                encodings: 4
            }
        );
        // Same serializer and framing ⇒ the very same buffer.
        let a = frames(&peers[0]);
        let c = frames(&peers[4]);
        assert_eq!(a[0].as_ptr(), c[0].as_ptr());
        let sub = b.subscriptions.keys().next().copied().unwrap_or(0);
        let text = format!("[36,{sub},7,{{}},[\"x\"]]");
        assert_eq!(&a[0][2..], text.as_bytes());
        assert_eq!(a[0][0], 0x81, "a final text frame");
    }

    #[test]
    fn audience_filters_and_full_outboxes_count_as_dropped() {
        let mut b = Broker::default();
        let p1 = peer(1, Serializer::Json, Framing::WebSocket, "admin");
        let p2 = peer(2, Serializer::Json, Framing::WebSocket, "user");
        b.subscribe(&p1, "t", MatchPolicy::Exact);
        b.subscribe(&p2, "t", MatchPolicy::Exact);
        let aud = Audience {
            eligible_authrole: Some(vec!["user".into()]),
            ..Audience::default()
        };
        let d = b.publish("t", 1, &vec![], &Arc::new(Payload::default()), &aud);
        assert_eq!((d.delivered, d.dropped), (1, 0));
        assert!(frames(&p1).is_empty());
        p2.outbox.close(crate::outbox::CloseRequest {
            code: 1000,
            reason: String::new(),
            flush_first: false,
        });
        let d = b.publish(
            "t",
            2,
            &vec![],
            &Arc::new(Payload::default()),
            &Audience::default(),
        );
        assert_eq!((d.delivered, d.dropped), (1, 1));
    }

    #[test]
    fn leaving_sessions_drop_empty_subscriptions() {
        let mut b = Broker::default();
        let p1 = peer(1, Serializer::Json, Framing::WebSocket, "user");
        let p2 = peer(2, Serializer::Json, Framing::WebSocket, "user");
        let first = b.subscribe(&p1, "a.", MatchPolicy::Prefix);
        assert!(first.created && first.added);
        let id = first.id;
        let second = b.subscribe(&p2, "a.", MatchPolicy::Prefix);
        assert_eq!((second.id, second.created, second.added), (id, false, true));
        assert!(!b.subscribe(&p2, "a.", MatchPolicy::Prefix).added);
        assert_eq!(b.remove_session(1), vec![(id, false, false)]);
        assert_eq!(b.subscription_count(), 1);
        assert_eq!(
            b.unsubscribe(2, id),
            Some((true, false)),
            "the last subscriber deletes it"
        );
        assert_eq!(b.subscription_count(), 0);
        assert_eq!(b.unsubscribe(2, id), None);
    }
}
