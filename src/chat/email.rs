//! Email notices to staff (offline messages left in the widget while nobody was online), sent
//! through a configured SMTP server with `lettre`. Sending never blocks the chat: notices go
//! through a bounded queue to one task; failures are logged and counted.

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// `chat.email` in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub from: String,
    pub to: Vec<String>,
}

/// One notice: subject and plain-text body (never HTML: what a visitor typed stays text).
pub struct Notice {
    pub subject: String,
    pub body: String,
    /// Where staff can answer (the visitor's address), as Reply-To.
    pub reply_to: Option<String>,
}

#[derive(Default)]
pub struct EmailStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
}

pub struct Mailer {
    tx: mpsc::Sender<Notice>,
    pub stats: Arc<EmailStats>,
}

impl Mailer {
    /// Starts the sending task. Err if an address in the config is not an address.
    pub fn start(cfg: EmailConfig) -> Result<Mailer, String> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| format!("chat.email.from: {e}"))?;
        let to: Vec<Mailbox> = cfg
            .to
            .iter()
            .map(|t| t.parse().map_err(|e| format!("chat.email.to: '{t}': {e}")))
            .collect::<Result<_, String>>()?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.smtp_host)
            .port(cfg.smtp_port)
            .build();
        let (tx, mut rx) = mpsc::channel::<Notice>(256);
        let stats = Arc::new(EmailStats::default());
        let counters = stats.clone();
        tokio::spawn(async move {
            while let Some(n) = rx.recv().await {
                let mut b = Message::builder()
                    .from(from.clone())
                    .subject(n.subject)
                    .header(ContentType::TEXT_PLAIN);
                for t in &to {
                    b = b.to(t.clone());
                }
                if let Some(r) = n.reply_to.and_then(|r| r.parse::<Mailbox>().ok()) {
                    b = b.reply_to(r);
                }
                let sent = match b.body(n.body) {
                    Ok(m) => transport
                        .send(m)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match sent {
                    Ok(()) => counters.sent.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!(error = %e, "chat: email notice not sent");
                        counters.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        });
        Ok(Mailer { tx, stats })
    }

    /// Queues a notice; false if the queue is full (the notice is dropped and counted).
    pub fn send(&self, n: Notice) -> bool {
        let ok = self.tx.try_send(n).is_ok();
        if !ok {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
}
