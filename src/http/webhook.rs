//! Webhooks: events of configured topics are POSTed as JSON to an HTTP endpoint.
//!
//! Each webhook is a router-internal session of its own (`Router::new_local_client`) that
//! subscribes to its topics with bounded channels, and one task that delivers the events in
//! order: `{"topic", "publication", "args", "kwargs", "details"}` (a superset of what Crossbar's
//! HTTP subscriber component sends). A failed POST (connection error, timeout, 408, 429, 5xx) is
//! retried with exponential backoff up to the configured count; other statuses fail at once.
//! While the task waits, new events queue in the channels; when they are full, events are
//! dropped and counted — the router never waits for a webhook.

use crate::config::WebhookConfig;
use crate::router::local::{LocalClient, LocalEvent};
use crate::router::Router;
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::{DictRef, ListRef, Value};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How much of a receiver's response is read (to reuse the connection); the rest is dropped.
const RESPONSE_LIMIT: usize = 64 << 10;

/// What a webhook has done, for `/api/status`.
pub struct Stats {
    realm: String,
    topics: Vec<String>,
    /// The URL without credentials or query (those may hold secrets).
    target: String,
    delivered: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    session: Weak<LocalClient>,
}

#[derive(serde::Serialize)]
pub struct StatsView<'a> {
    realm: &'a str,
    topics: &'a [String],
    target: &'a str,
    /// Events the receiver accepted.
    delivered: u64,
    /// Events given up on after the retries (or refused by the receiver with a 4xx).
    failed: u64,
    /// Events dropped because the queue was full.
    dropped: u64,
    /// POSTs repeated after a failure.
    retries: u64,
}

impl Stats {
    pub fn view(&self) -> StatsView<'_> {
        StatsView {
            realm: &self.realm,
            topics: &self.topics,
            target: &self.target,
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.session.upgrade().map_or(0, |s| s.dropped_events()),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// A running webhook; `stop` ends its task (queued events are abandoned).
pub struct Webhook {
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// `scheme://host[:port]/path` of a URL: no user info, no query.
fn target(uri: &Uri) -> String {
    let host = uri
        .authority()
        .map(|a| a.as_str().rsplit('@').next().unwrap_or(""))
        .unwrap_or("");
    format!(
        "{}://{host}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.path()
    )
}

/// The topic as a config writes it (`com.app.*` for a prefix).
fn written(topic: &str, policy: MatchPolicy) -> String {
    match policy {
        MatchPolicy::Prefix => format!("{topic}*"),
        _ => topic.to_owned(),
    }
}

/// Subscribes and starts delivering. Fails if the URL is unusable, the realm is missing or the
/// role may not subscribe to a topic. Needs a Tokio runtime.
pub async fn start(config: WebhookConfig, router: &Router) -> Result<Webhook, String> {
    let uri: Uri = config
        .url
        .parse()
        .map_err(|e| format!("'{}' is not a URL: {e}", config.url))?;
    let session = router
        .new_local_client(&config.realm, config.role.as_deref())
        .ok_or_else(|| format!("realm '{}' does not exist", config.realm))?;
    let mut channels = Vec::new();
    for (topic, policy) in &config.topics {
        let options = match policy {
            MatchPolicy::Exact => vec![],
            p => vec![("match".to_owned(), Value::Str(p.as_str().to_owned()))],
        };
        let (_, rx) = session
            .subscribe(topic, options, config.max_queue)
            .await
            .map_err(|f| {
                format!(
                    "cannot subscribe to '{}': {} ({})",
                    written(topic, *policy),
                    f.message(),
                    f.uri
                )
            })?;
        channels.push(rx);
    }
    let stats = Arc::new(Stats {
        realm: config.realm.clone(),
        topics: config.topics.iter().map(|(t, p)| written(t, *p)).collect(),
        target: target(&uri),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        session: Arc::downgrade(&session),
    });
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.timeout));
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .build(connector);
    let delivery = Delivery {
        config,
        uri,
        client,
        stats: stats.clone(),
    };
    tracing::info!(
        origin = %delivery.config.origin,
        realm = %stats.realm,
        topics = ?stats.topics,
        url = %stats.target,
        "webhook subscribed"
    );
    let task = tokio::spawn(delivery.run(session, channels));
    Ok(Webhook { stats, task })
}

struct Delivery {
    config: WebhookConfig,
    uri: Uri,
    client: HttpClient,
    stats: Arc<Stats>,
}

/// Why one POST did not deliver.
enum Failed {
    /// Worth retrying: the receiver may recover.
    Transient(String),
    /// The receiver refused the event itself.
    Permanent(String),
}

impl Delivery {
    /// Delivers events until the channels close. Holds the session: it leaves the realm when
    /// the task ends (or is aborted).
    async fn run(self, _session: Arc<LocalClient>, mut channels: Vec<Receiver<LocalEvent>>) {
        let mut start = 0;
        while let Some(event) = next_event(&mut channels, &mut start).await {
            self.deliver(&event).await;
        }
    }

    async fn deliver(&self, event: &LocalEvent) {
        let body = Bytes::from(encode(event));
        let mut delay = self.config.retry_delay;
        let mut attempt = 0;
        loop {
            let why = match self.post(body.clone()).await {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(Failed::Transient(why)) if attempt < self.config.retries => {
                    tracing::debug!(
                        url = %self.stats.target,
                        attempt,
                        error = %why,
                        "webhook POST failed; retrying"
                    );
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.config.max_retry_delay);
                    attempt += 1;
                    continue;
                }
                Err(Failed::Transient(why) | Failed::Permanent(why)) => why,
            };
            let n = self.stats.failed.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged at 1, 2, 4, 8, … failures: visible without flooding the log.
            if n.is_power_of_two() {
                tracing::warn!(
                    url = %self.stats.target,
                    failed = n,
                    error = %why,
                    "webhook could not deliver an event"
                );
            }
            return;
        }
    }

    async fn post(&self, body: Bytes) -> Result<(), Failed> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = hyper::Method::POST;
        *req.uri_mut() = self.uri.clone();
        let h = req.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("switchboard/", env!("CARGO_PKG_VERSION"))),
        );
        let timeout = self.config.timeout;
        let resp = match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => {
                return Err(Failed::Transient(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )))
            }
            Ok(Err(e)) => return Err(Failed::Transient(error_chain(&e))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        // Read (a bounded part of) the answer so the connection can be reused.
        let _ = tokio::time::timeout(
            timeout,
            Limited::new(resp.into_body(), RESPONSE_LIMIT).collect(),
        )
        .await;
        let code = status.as_u16();
        if status.is_success() {
            Ok(())
        } else if code == 408 || code == 429 || status.is_server_error() {
            Err(Failed::Transient(format!("the receiver answered {status}")))
        } else {
            Err(Failed::Permanent(format!("the receiver answered {status}")))
        }
    }
}

/// An error and its causes ("client error (Connect): tcp connect error: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The next event from any channel (taking turns, so one busy topic cannot starve another);
/// `None` once all are closed.
async fn next_event(
    channels: &mut [Receiver<LocalEvent>],
    start: &mut usize,
) -> Option<LocalEvent> {
    std::future::poll_fn(|cx| {
        let n = channels.len();
        let mut open = false;
        for i in 0..n {
            let at = (*start + i) % n;
            match channels[at].poll_recv(cx) {
                Poll::Ready(Some(e)) => {
                    *start = (at + 1) % n;
                    return Poll::Ready(Some(e));
                }
                Poll::Ready(None) => {}
                Poll::Pending => open = true,
            }
        }
        if open {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    })
    .await
}

#[derive(serde::Serialize)]
struct EventBody<'a> {
    topic: &'a str,
    publication: u64,
    args: ListRef<'a, true>,
    kwargs: DictRef<'a, true>,
    details: DictRef<'a, true>,
}

/// The JSON body of one event (binary values in WAMP's `"\u0000" + base64` form).
fn encode(event: &LocalEvent) -> Vec<u8> {
    let empty = Vec::new();
    let body = EventBody {
        topic: &event.topic,
        publication: event.publication,
        args: ListRef(event.payload.args.as_deref().unwrap_or_default()),
        kwargs: DictRef(event.payload.kwargs.as_ref().unwrap_or(&empty)),
        details: DictRef(&event.details),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wamp::Payload;

    #[test]
    fn event_bodies_and_targets() {
        let ev = LocalEvent {
            publication: 7,
            topic: "com.app.order.new".into(),
            details: vec![("topic".into(), Value::Str("com.app.order.new".into()))],
            payload: Payload {
                args: Some(vec![Value::Bytes(Bytes::from_static(&[1, 2]))]),
                kwargs: None,
            },
        };
        let v: serde_json::Value = serde_json::from_slice(&encode(&ev)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"topic": "com.app.order.new", "publication": 7,
                "args": ["\u{0}AQI="], "kwargs": {}, "details": {"topic": "com.app.order.new"}})
        );
        let uri: Uri = "http://user:pw@example.com:9000/hook?token=s3cret"
            .parse()
            .unwrap();
        assert_eq!(target(&uri), "http://example.com:9000/hook");
        assert_eq!(written("com.app.", MatchPolicy::Prefix), "com.app.*");
    }
}
