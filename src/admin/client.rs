//! The blocking client of the admin socket, for the CLI.

use super::{Request, UserRow};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A server's admin socket that answered a connect.
pub struct Client {
    path: PathBuf,
}

/// Longest answer line (a user list of some thousand users fits).
const MAX_ANSWER: u64 = 16 << 20;

impl Client {
    /// The admin socket of a server running on `dir`, if one accepts connections: `None` when
    /// there is no socket or nobody listens on it (a stale one from a killed server).
    pub fn connect(dir: &Path) -> Option<Client> {
        let path = super::socket_path(dir);
        UnixStream::connect(&path).ok().map(|_| Client { path })
    }

    fn send(&self, request: &Request) -> Result<BufReader<UnixStream>, String> {
        let fail = |e: std::io::Error| format!("admin socket {}: {e}", self.path.display());
        let mut stream = UnixStream::connect(&self.path).map_err(fail)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(fail)?;
        let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
        line.push('\n');
        stream.write_all(line.as_bytes()).map_err(fail)?;
        Ok(BufReader::new(stream))
    }

    fn answer(reader: &mut BufReader<UnixStream>) -> Result<serde_json::Value, String> {
        let mut line = Vec::new();
        reader
            .by_ref()
            .take(MAX_ANSWER)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("admin socket: {e}"))?;
        let v: serde_json::Value = serde_json::from_slice(&line)
            .map_err(|e| format!("admin socket: unreadable answer: {e}"))?;
        if v.get("ok").and_then(|o| o.as_bool()) == Some(true) {
            Ok(v)
        } else {
            Err(v
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("the server refused the request")
                .to_owned())
        }
    }

    /// One request, one answer.
    pub fn request(&self, request: &Request) -> Result<serde_json::Value, String> {
        let mut reader = self.send(request)?;
        Self::answer(&mut reader)
    }

    /// Asks for a backup and copies its bytes to `out`; returns how many were copied.
    pub fn backup(&self, out: &mut impl Write) -> Result<u64, String> {
        let mut reader = self.send(&Request::Backup)?;
        let head = Self::answer(&mut reader)?;
        let expected = head.get("bytes").and_then(|b| b.as_u64());
        let copied = std::io::copy(&mut reader, out)
            .map_err(|e| format!("admin socket: backup interrupted: {e}"))?;
        if expected.is_some_and(|n| n != copied) {
            return Err(format!(
                "admin socket: backup cut short ({copied} of {} bytes)",
                expected.unwrap_or(0)
            ));
        }
        Ok(copied)
    }

    pub fn user(&self, authid: &str, realm: Option<&str>) -> Result<Option<UserRow>, String> {
        let v = self.request(&Request::UserGet {
            authid: authid.into(),
            realm: realm.map(String::from),
        })?;
        row(v.get("user"))
    }

    pub fn users(&self) -> Result<Vec<UserRow>, String> {
        let v = self.request(&Request::UserList)?;
        serde_json::from_value(v.get("users").cloned().unwrap_or_default())
            .map_err(|e| format!("admin socket: unreadable user list: {e}"))
    }
}

fn row(v: Option<&serde_json::Value>) -> Result<Option<UserRow>, String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("admin socket: unreadable user: {e}")),
    }
}
