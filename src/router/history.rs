//! Event history and retention of one realm.
//!
//! History: publications to topics matching the realm's `store.event-history` rules are handed
//! to one writer task per router, which appends them to sled in batches and flushes once per
//! batch; a publisher that asked for `acknowledge` gets PUBLISHED only after that flush. Topics
//! without history cost one pattern lookup (no allocation) on the publish path.
//!
//! Retention: the last event published with `retain: true` per topic, kept in memory and
//! delivered to a new subscription that asks with `get_retained: true`.

use super::broker::Audience;
use super::peer::Peer;
use crate::config::HistoryRule;
use crate::store::history::{Append, History, StoredEvent};
use crate::wamp::pattern::PatternIndex;
use crate::wamp::value::{Dict, Value};
use crate::wamp::{Id, Message, Payload};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events waiting for the writer, at most; beyond, an acknowledged publish is refused and an
/// unacknowledged one is not recorded (counted), rather than growing memory.
const QUEUE: usize = 16_384;
/// Events appended per flush, at most.
const BATCH: usize = 512;

/// Who waits for PUBLISHED once the event is durable.
pub struct Ack {
    pub peer: Arc<Peer>,
    pub request: Id,
    pub publication: Id,
}

struct Job {
    append: Append,
    ack: Option<Ack>,
}

/// The router's history writer: a handle to its queue.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    pub store: History,
}

impl Writer {
    /// Starts the writer task (needs a Tokio runtime).
    pub fn start(store: History) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let writer_store = store.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let appends: Vec<Append> = batch.iter().map(|j| j.append.clone()).collect();
                let result = writer_store.append(&appends).await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, events = appends.len(), "event history write failed");
                }
                for job in batch.drain(..) {
                    let Some(ack) = job.ack else { continue };
                    let msg = match &result {
                        Ok(()) => Message::Published {
                            request: ack.request,
                            publication: ack.publication,
                        },
                        Err(e) => Message::Error {
                            request_type: crate::wamp::message::code::PUBLISH,
                            request: ack.request,
                            details: Dict::new(),
                            error: STORAGE_FAILED.to_owned(),
                            payload: Payload::message(format!(
                                "the event was delivered but could not be stored: {e}"
                            )),
                        },
                    };
                    let _ = ack.peer.send(&msg);
                }
            }
        });
        Writer { tx, store }
    }
}

/// The ERROR of an acknowledged PUBLISH whose event could not be made durable.
pub const STORAGE_FAILED: &str = "wamp.error.storage_failed";

/// History rules of a realm and the writer they use.
pub struct RealmHistory {
    rules: PatternIndex<usize>,
    writer: Writer,
}

impl RealmHistory {
    pub fn new(rules: &[HistoryRule], writer: Writer) -> Option<RealmHistory> {
        if rules.is_empty() {
            return None;
        }
        let mut idx = PatternIndex::new();
        for r in rules {
            idx.insert(&r.uri, r.policy, r.limit);
        }
        Some(RealmHistory { rules: idx, writer })
    }

    /// How many events of `topic` are kept, if any.
    pub fn limit(&self, topic: &str) -> Option<usize> {
        self.rules.best_match(topic).map(|(l, _)| *l)
    }

    /// Whether some rule could apply to topics matching the subscription (uri, policy).
    pub fn covers(&self, uri: &str, policy: crate::wamp::uri::MatchPolicy) -> bool {
        match policy {
            crate::wamp::uri::MatchPolicy::Exact => self.limit(uri).is_some(),
            // A pattern subscription reads whatever stored topics it matches.
            _ => true,
        }
    }

    /// Hands an event to the writer. Err(ack) when the queue is full (the caller answers).
    pub fn record(
        &self,
        realm: &str,
        limit: usize,
        topic: &str,
        publication: Id,
        payload: &Payload,
        ack: Option<Ack>,
    ) -> Result<(), Option<Ack>> {
        let event = StoredEvent {
            publication,
            timestamp_ms: now_ms(),
            topic: topic.to_owned(),
            payload: encode_payload(payload),
        };
        let job = Job {
            append: Append {
                realm: realm.to_owned(),
                limit,
                event,
            },
            ack,
        };
        self.writer.tx.try_send(job).map_err(|e| {
            tracing::warn!("event history queue full; event not recorded");
            match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j.ack,
            }
        })
    }

    pub fn store(&self) -> &History {
        &self.writer.store
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `[args, kwargs]` as MessagePack (binary-safe, self-describing).
fn encode_payload(p: &Payload) -> Vec<u8> {
    let v = Value::List(vec![
        p.args.clone().map(Value::List).unwrap_or(Value::Null),
        p.kwargs.clone().map(Value::Dict).unwrap_or(Value::Null),
    ]);
    rmp_serde::to_vec(&v).unwrap_or_default()
}

/// The payload of a stored event (empty if the record cannot be read).
pub fn decode_payload(bytes: &[u8]) -> Payload {
    match rmp_serde::from_slice::<Value>(bytes) {
        Ok(Value::List(mut v)) if v.len() == 2 => {
            let kwargs = match v.pop() {
                Some(Value::Dict(d)) => Some(d),
                _ => None,
            };
            let args = match v.pop() {
                Some(Value::List(l)) => Some(l),
                _ => None,
            };
            Payload { args, kwargs }
        }
        _ => Payload::default(),
    }
}

/// The last retained event of a topic.
pub struct Retained {
    pub publication: Id,
    pub details: Dict,
    pub payload: Arc<Payload>,
    pub audience: Audience,
}

/// Retained events of a realm, by topic.
#[derive(Default)]
pub struct RetainedEvents {
    by_topic: RwLock<HashMap<String, Arc<Retained>>>,
}

/// Retained topics kept per realm, at most (the oldest is not tracked: beyond the bound a new
/// topic is simply not retained, and the publisher is told in the log).
const MAX_RETAINED_TOPICS: usize = 100_000;

impl RetainedEvents {
    pub fn keep(&self, topic: &str, event: Retained) {
        let mut map = self.by_topic.write();
        if map.len() >= MAX_RETAINED_TOPICS && !map.contains_key(topic) {
            tracing::warn!(topic, "too many retained topics; event not retained");
            return;
        }
        map.insert(topic.to_owned(), Arc::new(event));
    }

    /// The retained events a new subscription (uri, policy) receives: (topic, event).
    pub fn matching(
        &self,
        uri: &str,
        policy: crate::wamp::uri::MatchPolicy,
    ) -> Vec<(String, Arc<Retained>)> {
        let map = self.by_topic.read();
        match policy {
            crate::wamp::uri::MatchPolicy::Exact => map
                .get(uri)
                .map(|e| vec![(uri.to_owned(), e.clone())])
                .unwrap_or_default(),
            _ => map
                .iter()
                .filter(|(t, _)| crate::wamp::uri::matches(uri, policy, t))
                .map(|(t, e)| (t.clone(), e.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_with_bytes() {
        let p = Payload {
            args: Some(vec![
                Value::UInt(1),
                Value::Bytes(bytes::Bytes::from_static(&[0, 255])),
            ]),
            kwargs: Some(vec![("k".into(), Value::Str("v".into()))]),
        };
        assert_eq!(decode_payload(&encode_payload(&p)), p);
        let empty = Payload::default();
        assert_eq!(decode_payload(&encode_payload(&empty)), empty);
        assert_eq!(decode_payload(b"garbage"), Payload::default());
    }
}
