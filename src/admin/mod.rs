//! The admin control socket: how `switchboard backup` and `switchboard user …` reach a running
//! server, whose sled store is locked to every other process.
//!
//! A Unix socket `admin.sock` in the data directory, mode 0600, owned by the server's user;
//! a connecting peer must be that user or root (checked with `SO_PEERCRED`). One request per
//! connection: a JSON object on one line (at most [`MAX_REQUEST`] bytes), answered by one JSON
//! line `{"ok": true, …}` or `{"ok": false, "error": "…"}`; a `backup` answer is followed by the
//! backup file's bytes until the server closes the connection.
//!
//! Requests (`op`): `ping`, `backup`, `user.get`, `user.list`, `user.add`, `user.passwd`,
//! `user.remove`, `chat.export`, `chat.forget`, `reload` (see [`Request`]).

pub mod client;

use crate::store::principals::PrincipalRecord;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";
/// Longest request line, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// The socket of the server on data directory `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_NAME)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op")]
pub enum Request {
    #[serde(rename = "ping")]
    Ping,
    #[serde(rename = "backup")]
    Backup,
    #[serde(rename = "user.get")]
    UserGet {
        authid: String,
        realm: Option<String>,
    },
    #[serde(rename = "user.list")]
    UserList,
    #[serde(rename = "user.add")]
    UserAdd {
        authid: String,
        realm: Option<String>,
        role: String,
        password: String,
        wampcra: bool,
    },
    #[serde(rename = "user.passwd")]
    UserPasswd {
        authid: String,
        realm: Option<String>,
        password: String,
    },
    #[serde(rename = "user.remove")]
    UserRemove {
        authid: String,
        realm: Option<String>,
    },
    /// One visitor's threads and messages as JSON (`export` in the answer).
    #[serde(rename = "chat.export")]
    ChatExport { visitor: String },
    /// Deletes one visitor's threads and messages (`threads`: how many).
    #[serde(rename = "chat.forget")]
    ChatForget { visitor: String },
    /// What SIGHUP does (config, certificates), answered with each step's outcome.
    #[serde(rename = "reload")]
    Reload,
}

/// The running chat service, once it has started (the socket starts without it).
pub type ChatHandle = Arc<std::sync::OnceLock<Arc<crate::chat::service::Chat>>>;

/// A principal as the admin tools show it: names only, never a salt or key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserRow {
    pub authid: String,
    pub realm: Option<String>,
    pub role: String,
    pub methods: Vec<String>,
    pub created: u64,
}

impl From<&PrincipalRecord> for UserRow {
    fn from(r: &PrincipalRecord) -> UserRow {
        UserRow {
            authid: r.authid.clone(),
            realm: r.realm.clone(),
            role: r.role.clone(),
            methods: r.methods().into_iter().map(String::from).collect(),
            created: r.created,
        }
    }
}

/// The running admin socket; [`Admin::stop`] removes it.
pub struct Admin {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Admin {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stop(&self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `admin.sock` in `dir` (replacing a stale one: the caller holds the store's lock, so no
/// other server uses it) and serves it. `Err` if it cannot be bound; the server runs on without.
pub fn serve(
    store: Arc<Store>,
    dir: &Path,
    chat: ChatHandle,
    reload: crate::reload::Reload,
) -> std::io::Result<Admin> {
    let path = socket_path(dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let owner = std::fs::metadata(&path)?.uid();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // EMFILE and the like: wait instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let allowed = stream
                .peer_cred()
                .map(|c| c.uid() == owner || c.uid() == 0)
                .unwrap_or(false);
            if !allowed {
                tracing::warn!("admin socket: connection from another user refused");
                continue;
            }
            tokio::spawn(handle(store.clone(), chat.clone(), reload.clone(), stream));
        }
    });
    Ok(Admin { path, task })
}

fn ok(mut fields: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    fields.insert("ok".into(), true.into());
    serde_json::Value::Object(fields)
}

fn refusal(message: impl std::fmt::Display) -> serde_json::Value {
    serde_json::json!({ "ok": false, "error": message.to_string() })
}

async fn write_line(stream: &mut UnixStream, v: &serde_json::Value) -> std::io::Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).await
}

async fn handle(
    store: Arc<Store>,
    chat: ChatHandle,
    reload: crate::reload::Reload,
    stream: UnixStream,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut limited = (&mut reader).take(MAX_REQUEST as u64 + 1);
    let read = limited.read_until(b'\n', &mut line);
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), read).await;
    drop(limited);
    let mut stream = reader.into_inner();
    if !matches!(read, Ok(Ok(_))) {
        return;
    }
    if line.len() > MAX_REQUEST {
        let _ = write_line(&mut stream, &refusal("request too long")).await;
        return;
    }
    let request: Request = match serde_json::from_slice(&line) {
        Ok(r) => r,
        Err(e) => {
            let _ = write_line(&mut stream, &refusal(format!("bad request: {e}"))).await;
            return;
        }
    };
    if request == Request::Reload {
        tracing::info!("admin socket: reload requested");
        let answer = match tokio::task::spawn_blocking(move || reload.run_report()).await {
            Ok(steps) => {
                let failed: Vec<String> = steps
                    .iter()
                    .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
                    .collect();
                if failed.is_empty() {
                    let mut out = serde_json::Map::new();
                    let done: Vec<String> = steps
                        .into_iter()
                        .filter_map(|(name, r)| r.ok().map(|d| format!("{name}: {d}")))
                        .collect();
                    out.insert("reloaded".into(), done.into());
                    ok(out)
                } else {
                    refusal(failed.join("; "))
                }
            }
            Err(e) => refusal(e),
        };
        let _ = write_line(&mut stream, &answer).await;
        return;
    }
    if let Request::ChatExport { visitor } | Request::ChatForget { visitor } = &request {
        let answer = chat_request(&chat, &request, visitor).await;
        let _ = write_line(&mut stream, &answer).await;
        return;
    }
    if request == Request::Backup {
        let snap = store.clone();
        let taken = tokio::task::spawn_blocking(move || {
            let mut bytes = Vec::new();
            snap.snapshot(&mut bytes).map(|s| (bytes, s))
        })
        .await;
        match taken {
            Ok(Ok((bytes, summary))) => {
                tracing::info!(
                    trees = summary.trees,
                    entries = summary.entries,
                    bytes = bytes.len(),
                    "admin socket: backup taken"
                );
                let mut head = serde_json::Map::new();
                head.insert("bytes".into(), bytes.len().into());
                head.insert("entries".into(), summary.entries.into());
                if write_line(&mut stream, &ok(head)).await.is_ok() {
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.shutdown().await;
                }
            }
            Ok(Err(e)) => {
                let _ = write_line(&mut stream, &refusal(e)).await;
            }
            Err(e) => {
                let _ = write_line(&mut stream, &refusal(e)).await;
            }
        }
        return;
    }
    let answer = tokio::task::spawn_blocking(move || answer(&store, request))
        .await
        .unwrap_or_else(refusal);
    let _ = write_line(&mut stream, &answer).await;
}

/// `chat.export` and `chat.forget`: through the running chat service, so its thread table
/// stays in step (and open inboxes hear of the deletion).
async fn chat_request(chat: &ChatHandle, request: &Request, visitor: &str) -> serde_json::Value {
    let Some(chat) = chat.get() else {
        return refusal("the chat service is not running on this server");
    };
    let mut out = serde_json::Map::new();
    match request {
        Request::ChatForget { .. } => match chat.forget_visitor(visitor).await {
            Ok(n) => {
                tracing::info!(threads = n, "admin socket: a visitor's chat data deleted");
                out.insert("threads".into(), n.into());
            }
            Err(e) => return refusal(e),
        },
        _ => {
            let (chat_store, visitor) = (chat.store().clone(), visitor.to_owned());
            match tokio::task::spawn_blocking(move || {
                crate::chat::export::visitor(&chat_store, &visitor)
            })
            .await
            {
                Ok(Ok(v)) => {
                    out.insert("export".into(), v);
                }
                Ok(Err(e)) => return refusal(e),
                Err(e) => return refusal(e),
            }
        }
    }
    ok(out)
}

/// Answers a request other than `backup` (blocking: key derivation and flushes).
fn answer(store: &Store, request: Request) -> serde_json::Value {
    match try_answer(store, request) {
        Ok(v) => v,
        Err(e) => refusal(e),
    }
}

fn try_answer(store: &Store, request: Request) -> Result<serde_json::Value, StoreError> {
    let principals = store.principals();
    let mut out = serde_json::Map::new();
    let row = |r: &PrincipalRecord| serde_json::to_value(UserRow::from(r)).unwrap_or_default();
    match request {
        Request::Ping | Request::Backup => {}
        Request::ChatExport { .. } | Request::ChatForget { .. } | Request::Reload => {
            return Ok(refusal("answered elsewhere"))
        }
        Request::UserGet { authid, realm } => {
            let found = principals.get_exact(realm.as_deref(), &authid)?;
            out.insert(
                "user".into(),
                found.as_ref().map(row).unwrap_or(serde_json::Value::Null),
            );
        }
        Request::UserList => {
            let rows: Vec<serde_json::Value> = principals.list()?.iter().map(row).collect();
            out.insert("users".into(), rows.into());
        }
        Request::UserAdd {
            authid,
            realm,
            role,
            password,
            wampcra,
        } => {
            crate::store::principals::validate(&authid, realm.as_deref(), &role)?;
            if password.is_empty() || password.len() > crate::cli_user::MAX_PASSWORD_LEN {
                return Err(StoreError::Invalid(
                    "the password is empty or too long".into(),
                ));
            }
            let rec = PrincipalRecord::new(&authid, realm.as_deref(), &role, &password, wampcra);
            principals.add(&rec)?;
            tracing::info!(authid = %authid, role = %role, "admin socket: user added");
            out.insert("user".into(), row(&rec));
        }
        Request::UserPasswd {
            authid,
            realm,
            password,
        } => {
            let changed = principals.set_password(realm.as_deref(), &authid, &password)?;
            if changed {
                tracing::info!(authid = %authid, "admin socket: password changed");
            }
            out.insert("changed".into(), changed.into());
        }
        Request::UserRemove { authid, realm } => {
            let removed = principals.remove(realm.as_deref(), &authid)?;
            if removed {
                tracing::info!(authid = %authid, "admin socket: user removed");
            }
            out.insert("removed".into(), removed.into());
        }
    }
    Ok(ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let r: Request =
            serde_json::from_str(r#"{"op":"user.remove","authid":"joe","realm":null}"#).unwrap();
        assert_eq!(
            r,
            Request::UserRemove {
                authid: "joe".into(),
                realm: None
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"rm -rf"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Request::Backup).unwrap(),
            r#"{"op":"backup"}"#
        );
    }
}
