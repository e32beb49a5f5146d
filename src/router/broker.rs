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
    pub subscribers: HashMap<Id, Arc<Peer>>,
}

#[derive(Default)]
pub struct Broker {
    index: PatternIndex<Id>,
    subscriptions: HashMap<Id, Subscription>,
    by_session: HashMap<Id, Vec<Id>>,
}

/// Who among the subscribers receives a publication (publisher exclusion, black/white lists).
#[derive(Default, Debug)]
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
    fn admits(&self, peer: &Peer) -> bool {
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

/// Result of a fan-out, for figures and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: usize,
    pub dropped: usize,
    pub encodings: usize,
}

impl Broker {
    /// Adds `peer` to the subscription for (uri, policy), creating it if needed.
    /// Returns the subscription id; subscribing twice returns the same id.
    pub fn subscribe(&mut self, peer: &Arc<Peer>, uri: &str, policy: MatchPolicy) -> Id {
        let id = match self.index.get(uri, policy) {
            Some(id) => *id,
            None => {
                let id = random_id();
                self.index.insert(uri, policy, id);
                self.subscriptions.insert(
                    id,
                    Subscription {
                        id,
                        uri: uri.to_owned(),
                        policy,
                        subscribers: HashMap::new(),
                    },
                );
                id
            }
        };
        if let Some(sub) = self.subscriptions.get_mut(&id) {
            if sub.subscribers.insert(peer.session, peer.clone()).is_none() {
                self.by_session.entry(peer.session).or_default().push(id);
            }
        }
        id
    }

    /// Removes `session` from subscription `id`. False if it was not subscribed.
    pub fn unsubscribe(&mut self, session: Id, id: Id) -> bool {
        let Some(sub) = self.subscriptions.get_mut(&id) else {
            return false;
        };
        if sub.subscribers.remove(&session).is_none() {
            return false;
        }
        if let Some(list) = self.by_session.get_mut(&session) {
            list.retain(|s| *s != id);
            if list.is_empty() {
                self.by_session.remove(&session);
            }
        }
        self.drop_if_empty(id);
        true
    }

    fn drop_if_empty(&mut self, id: Id) {
        if let Some(sub) = self.subscriptions.get(&id) {
            if sub.subscribers.is_empty() {
                self.index.remove(&sub.uri, sub.policy);
                self.subscriptions.remove(&id);
            }
        }
    }

    /// Forgets every subscription of a session that left.
    pub fn remove_session(&mut self, session: Id) {
        for id in self.by_session.remove(&session).unwrap_or_default() {
            if let Some(sub) = self.subscriptions.get_mut(&id) {
                sub.subscribers.remove(&session);
            }
            self.drop_if_empty(id);
        }
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    pub fn get(&self, id: Id) -> Option<&Subscription> {
        self.subscriptions.get(&id)
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
                    Ok(()) => out.delivered += 1,
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
