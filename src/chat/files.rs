//! Attachments: a member asks for an upload slot over WAMP (`upload`), sends the bytes over
//! HTTP with the slot's one-time token, then attaches the file to a message (`send` with
//! `file`). Members download through links signed for an hour (`file_url`, and the `url` that
//! history and events carry), so `<img src>` works without cookies and nobody outside the
//! thread can fetch a file.
//!
//! Serving is defensive: only PNG, JPEG, GIF and WebP whose bytes say so are shown inline;
//! everything else (SVG and HTML included) is `Content-Disposition: attachment`, and every file
//! response carries `nosniff` and a sandboxing CSP.

use crate::store::chat::{ChatStore, FileRef};
use crate::store::chat_files::FileRecord;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where files are served: `/api/chat/files/<thread>/<file>`.
pub const PATH: &str = "/api/chat/files/";
/// How long an upload slot stays open.
const SLOT_LIFETIME: Duration = Duration::from_secs(600);
/// Upload slots open at once (across all members), at most.
const MAX_SLOTS: usize = 1024;
/// How long a signed download link works.
pub const LINK_LIFETIME_SECS: u64 = 3600;

/// The `files` part of the chat config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesConfig {
    /// Largest file, in bytes.
    pub max_bytes: u64,
    /// All stored files together, in bytes (then uploads are refused until threads go).
    pub max_total_bytes: u64,
    /// Uploads one visitor may start per hour (staff are not limited).
    pub uploads_per_hour: u32,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_bytes: 5 << 20,
            max_total_bytes: 1 << 30,
            uploads_per_hour: 30,
        }
    }
}

struct Slot {
    thread: u64,
    uploader: String,
    name: String,
    declared: String,
    size: u64,
    token: [u8; 16],
    expires: Instant,
}

/// Why an upload or download was refused: an HTTP status and a reason for the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// An upload slot handed to a member.
pub struct UploadSlot {
    pub id: u64,
    pub url: String,
}

pub struct Files {
    store: ChatStore,
    cfg: FilesConfig,
    /// Signs download links (new at every start: links die with the process, at most an hour).
    secret: [u8; 32],
    slots: Mutex<HashMap<u64, Slot>>,
    /// Bytes stored plus bytes reserved by open slots.
    used: AtomicU64,
    rate: super::rate::RateLimit,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A file name safe to show and to put in a header: no path, no control characters, at most
/// 200 characters.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned
    }
}

/// The image type the bytes really are, for the types safe to show inline.
pub fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Whether files of this type are shown inline (everything else is a download).
pub fn is_inline(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// The type a file is served with: a safe image type if the bytes are one; else the declared
/// type if it is well-formed and not a markup or script type (it is a download either way);
/// else `application/octet-stream`.
pub fn served_type(declared: &str, bytes: &[u8]) -> String {
    if let Some(t) = sniff_image(bytes) {
        return t.to_owned();
    }
    let d = declared.trim().to_ascii_lowercase();
    let well_formed = d.split_once('/').is_some_and(|(a, b)| {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 100
                && s.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".+-_".contains(&c))
        };
        ok(a) && ok(b)
    });
    let risky = d.starts_with("image/")
        || d.starts_with("text/html")
        || d.contains("xml")
        || d.contains("javascript")
        || d.contains("ecmascript");
    if well_formed && !risky {
        d
    } else {
        "application/octet-stream".to_owned()
    }
}

/// `Content-Disposition` for a download: an ASCII fallback and the UTF-8 name (RFC 6266).
pub fn disposition(inline: bool, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

impl Files {
    pub fn new(store: ChatStore, cfg: FilesConfig) -> Result<Files, String> {
        let used = store
            .files_total_bytes()
            .map_err(|e| format!("chat files: {e}"))?;
        let mut secret = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut secret);
        let rate = super::rate::RateLimit::new(cfg.uploads_per_hour, Duration::from_secs(3600));
        Ok(Files {
            store,
            cfg,
            secret,
            slots: Mutex::new(HashMap::new()),
            used: AtomicU64::new(used),
            rate,
        })
    }

    pub fn config(&self) -> &FilesConfig {
        &self.cfg
    }

    /// Opens an upload slot for `uploader` in `thread` (membership is the caller's check).
    pub fn open_slot(
        &self,
        thread: u64,
        uploader: &str,
        name: &str,
        declared: &str,
        size: u64,
        limited: bool,
    ) -> Result<UploadSlot, Refusal> {
        if size == 0 {
            return Err(refuse(400, "the file is empty"));
        }
        if size > self.cfg.max_bytes {
            return Err(refuse(
                413,
                format!(
                    "the file has {size} bytes; at most {} are allowed",
                    self.cfg.max_bytes
                ),
            ));
        }
        if limited {
            self.rate
                .hit(uploader)
                .map_err(|wait| refuse(429, format!("too many uploads; retry in {wait} s")))?;
        }
        let mut slots = self.slots.lock();
        let now = Instant::now();
        slots.retain(|_, s| {
            let open = s.expires > now;
            if !open {
                self.used.fetch_sub(s.size, Ordering::Relaxed);
            }
            open
        });
        if slots.len() >= MAX_SLOTS {
            return Err(refuse(503, "too many uploads in progress; retry shortly"));
        }
        let reserved = self.used.fetch_add(size, Ordering::Relaxed);
        if reserved + size > self.cfg.max_total_bytes {
            self.used.fetch_sub(size, Ordering::Relaxed);
            return Err(refuse(
                507,
                "the chat's file storage is full; ask the site's staff",
            ));
        }
        let id = crate::wamp::ids::random_id();
        let mut token = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut token);
        let url = format!(
            "{PATH}{thread}/{id}?token={}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
        );
        slots.insert(
            id,
            Slot {
                thread,
                uploader: uploader.to_owned(),
                name: clean_name(name),
                declared: declared.to_owned(),
                size,
                token,
                expires: now + SLOT_LIFETIME,
            },
        );
        Ok(UploadSlot { id, url })
    }

    /// The largest body an upload to this slot may send (the caller caps its read with it).
    pub fn slot_size(&self, thread: u64, id: u64) -> Option<u64> {
        self.slots
            .lock()
            .get(&id)
            .filter(|s| s.thread == thread)
            .map(|s| s.size)
    }

    /// Checks an upload's token against its slot (without using the slot up).
    pub fn check_token(&self, thread: u64, id: u64, token: &str) -> Result<(), Refusal> {
        let given = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .unwrap_or_default();
        let slots = self.slots.lock();
        let Some(slot) = slots.get(&id).filter(|s| s.thread == thread) else {
            return Err(refuse(
                404,
                "no such upload (it may have expired: ask again)",
            ));
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&given[..], &slot.token[..])) {
            return Err(refuse(403, "wrong upload token"));
        }
        if slot.expires <= Instant::now() {
            return Err(refuse(410, "the upload slot has expired: ask again"));
        }
        Ok(())
    }

    /// Stores the uploaded bytes durably and closes the slot.
    pub async fn finish(
        &self,
        thread: u64,
        id: u64,
        token: &str,
        bytes: &[u8],
    ) -> Result<FileRef, Refusal> {
        self.check_token(thread, id, token)?;
        let Some(slot) = self.slots.lock().remove(&id) else {
            return Err(refuse(409, "this upload is already being stored"));
        };
        let size = bytes.len() as u64;
        // Give back what the slot reserved beyond what came.
        self.used
            .fetch_sub(slot.size.saturating_sub(size), Ordering::Relaxed);
        if size == 0 || size > slot.size {
            self.used.fetch_sub(size, Ordering::Relaxed);
            return Err(refuse(
                if size == 0 { 400 } else { 413 },
                format!("the upload has {size} bytes; {} were announced", slot.size),
            ));
        }
        let record = FileRecord {
            id,
            thread,
            uploader: slot.uploader,
            name: slot.name,
            content_type: served_type(&slot.declared, bytes),
            size,
            created_ms: now_secs() * 1000,
        };
        let stored = match self.store.put_file(&record, bytes) {
            Ok(()) => self.store.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            self.used.fetch_sub(size, Ordering::Relaxed);
            tracing::error!(error = %e, "chat file could not be stored");
            return Err(refuse(500, "the file could not be stored"));
        }
        Ok(FileRef {
            id,
            name: record.name,
            content_type: record.content_type,
            size,
        })
    }

    /// A stored file, if `uploader` uploaded it into `thread` (for attaching it to a message).
    pub fn uploaded_by(
        &self,
        thread: u64,
        id: u64,
        uploader: &str,
    ) -> Result<Option<FileRef>, String> {
        let f = self.store.file(thread, id).map_err(|e| e.to_string())?;
        Ok(f.filter(|f| f.uploader == uploader).map(|f| FileRef {
            id: f.id,
            name: f.name,
            content_type: f.content_type,
            size: f.size,
        }))
    }

    fn signature(&self, thread: u64, id: u64, expires: u64) -> String {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(format!("{thread}/{id}/{expires}").as_bytes());
        let sig = mac.finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sig[..18])
    }

    /// A download link for a member, valid for an hour.
    pub fn link(&self, thread: u64, id: u64) -> String {
        let expires = now_secs() + LINK_LIFETIME_SECS;
        format!(
            "{PATH}{thread}/{id}?expires={expires}&sig={}",
            self.signature(thread, id, expires)
        )
    }

    /// Checks a download link's signature and expiry.
    pub fn check_link(&self, thread: u64, id: u64, expires: u64, sig: &str) -> Result<(), Refusal> {
        let want = self.signature(thread, id, expires);
        if want.is_empty()
            || !bool::from(subtle::ConstantTimeEq::ct_eq(
                want.as_bytes(),
                sig.as_bytes(),
            ))
        {
            return Err(refuse(403, "this link is not valid for this file"));
        }
        if expires < now_secs() {
            return Err(refuse(
                403,
                "this link has expired: reload the conversation",
            ));
        }
        Ok(())
    }

    /// A stored file and its bytes.
    pub fn get(&self, thread: u64, id: u64) -> Result<(FileRecord, sled::IVec), Refusal> {
        let file = self.store.file(thread, id);
        let bytes = self.store.file_bytes(thread, id);
        match (file, bytes) {
            (Ok(Some(f)), Ok(Some(b))) => Ok((f, b)),
            (Ok(None), _) | (_, Ok(None)) => Err(refuse(404, "no such file")),
            _ => Err(refuse(500, "the file could not be read")),
        }
    }

    /// Bytes of files deleted with their threads go back to the quota.
    pub fn recount(&self) {
        let open: u64 = self.slots.lock().values().map(|s| s.size).sum();
        if let Ok(stored) = self.store.files_total_bytes() {
            self.used.store(stored + open, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\a\\report.pdf"), "report.pdf");
        assert_eq!(clean_name("a\nb\u{0}c.txt"), "abc.txt");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), 200);
    }

    #[test]
    fn only_real_safe_images_are_shown_inline() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        assert_eq!(served_type("image/png", png), "image/png");
        // A lie either way is caught by the bytes.
        assert_eq!(served_type("application/pdf", png), "image/png");
        assert_eq!(
            served_type("image/png", b"<svg onload=alert(1)>"),
            "application/octet-stream"
        );
        assert_eq!(
            served_type("image/svg+xml", b"<svg/>"),
            "application/octet-stream"
        );
        assert_eq!(served_type("text/html", b"<b>"), "application/octet-stream");
        assert_eq!(
            served_type("application/pdf", b"%PDF-1.7"),
            "application/pdf"
        );
        assert_eq!(served_type("bogus", b"x"), "application/octet-stream");
        assert_eq!(
            served_type("text/plain; x=\"", b"x"),
            "application/octet-stream"
        );
        assert!(is_inline("image/webp"));
        assert!(!is_inline("application/pdf"));
    }

    #[test]
    fn disposition_quotes_safely() {
        assert_eq!(
            disposition(false, "a \"b\" é.pdf"),
            "attachment; filename=\"a _b_ _.pdf\"; filename*=UTF-8''a%20%22b%22%20%C3%A9.pdf"
        );
        assert!(disposition(true, "x.png").starts_with("inline;"));
    }
}
