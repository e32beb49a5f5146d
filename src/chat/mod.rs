//! The built-in chat service: threads between a visitor and the staff, durable numbered
//! messages, read receipts, typing, presence. It joins its realm as a router-internal session
//! (`LocalClient`) and offers a WAMP API under `switchboard.chat.` that any client can use —
//! the widget, the staff inbox, Autobahn|JS or |Python, an app's worker. The router enforces
//! who may see what (`access::ChatPolicy`).
//!
//! API (all procedures take positional arguments; results are dicts or lists of dicts):
//! - `open()` kwargs {name?} → thread: the caller's (visitor's) open thread, created if needed;
//! - `send(thread, text)` kwargs {client_id?} → {seq, ts}: validated, numbered, durable, then
//!   published on `thread.<id>`; a retry with the same client_id returns the first result;
//! - `history(thread)` kwargs {after?, before?, limit?} → messages: after a seq (oldest first, to
//!   catch up after a reconnect) or before a cursor (newest first, to scroll back);
//! - `read(thread, seq)` → "read up to" for the caller, published as a receipt;
//! - `typing(thread)` → published as a typing indicator;
//! - `threads()` → the caller's threads (staff: all), with unread counts;
//! - `resolve(thread)`, `reopen(thread)`, `assign(thread, authid)` — staff;
//! - `page(url, title)` — a visitor reports the page it is on;
//! - `presence()` → staff: online visitors and staff; visitors: {staff_online};
//! - `search(query)` kwargs {limit?} → staff: messages containing the text, newest first;
//! - `export(thread)` → {thread, messages}: a thread as JSON for a member;
//! - `leave_message(text)` kwargs {email, name?} → a visitor's message while no staff is
//!   online: stored in its thread like any message, and emailed to staff;
//! - `forget(visitor?)` → deletes a visitor's threads and messages (staff: anyone's; a visitor:
//!   its own);
//! - `upload(thread, name, content_type, size)` → {file, url}: an upload slot; PUT the bytes to
//!   `url`, then `send(thread, text, {file})` attaches it (see `files`);
//! - `file_url(thread, file)` → a fresh download link (history and events carry one too).
//! - `call_start/accept/decline/hangup/state/resume`, `signal` → calls in a thread
//!   (`service::calls`).
//!
//! Topics: `thread.<id>` (kwargs {type: message|typing|read|status|call|signal, …}), `inbox`
//! (staff: new threads and messages, rings of visitors' calls), `presence` (staff: online/offline), `status` ({staff_online}).

pub mod access;
pub mod email;
pub mod export;
pub mod files;
pub mod presence;
pub mod rate;
pub mod service;

/// The chat roles of a realm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roles {
    pub visitor: String,
    pub staff: Vec<String>,
}

impl Roles {
    pub fn is_staff(&self, role: &str) -> bool {
        self.staff.iter().any(|s| s == role)
    }
}

/// `chat` in the router worker's config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatConfig {
    pub realm: String,
    pub roles: Roles,
    /// Longest message text, in characters.
    pub max_text: usize,
    /// Messages a visitor may send per minute.
    pub messages_per_minute: u32,
    /// Threads that may be opened per client address per hour (loopback addresses, i.e. a
    /// local reverse proxy, are not counted).
    pub threads_per_hour: u32,
    /// Threads without activity for this many days are deleted (none: kept forever).
    pub retention_days: Option<u64>,
    /// Where offline messages are emailed to staff.
    pub email: Option<email::EmailConfig>,
    /// Attachments: size limits and the upload rate.
    pub files: files::FilesConfig,
    /// How long a call rings before it is a missed call.
    pub ring_timeout: std::time::Duration,
    /// How long a call waits for a person whose connection dropped to come back.
    pub call_grace: std::time::Duration,
}

impl ChatConfig {
    /// The defaults for `realm` with the given roles.
    pub fn new(realm: &str, roles: Roles) -> ChatConfig {
        ChatConfig {
            realm: realm.to_owned(),
            roles,
            max_text: 4000,
            messages_per_minute: 60,
            threads_per_hour: 30,
            retention_days: None,
            email: None,
            files: files::FilesConfig::default(),
            ring_timeout: std::time::Duration::from_secs(45),
            call_grace: std::time::Duration::from_secs(30),
        }
    }
}

/// The URI prefix of the chat API.
pub const PREFIX: &str = "switchboard.chat.";
