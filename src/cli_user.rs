//! `switchboard user …`: manage the built-in principal store (see `store::principals`) from
//! the shell.
//!
//! Passwords are never taken from the command line: from the terminal without echo (asked
//! twice when set), or the first line of standard input when that is not a terminal. The
//! store is locked while a server runs on the same data directory; the commands then go
//! through that server's admin socket (`admin`), and open the store themselves only when no
//! server answers there. Every error exits with status 2.

use crate::admin::client::Client;
use crate::admin::{Request, UserRow};
use crate::store::principals::PrincipalRecord;
use crate::store::{realm_label, Store, DEFAULT_CACHE_BYTES};
use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user with a SCRAM credential (and a WAMP-CRA key with --wampcra). The password is
    /// asked on the terminal, or read from the first line of standard input.
    Add {
        /// The authid the client will send.
        name: String,
        /// The role the user gets.
        #[arg(long)]
        role: String,
        /// Only for this realm (default: any realm).
        #[arg(long)]
        realm: Option<String>,
        /// Also derive a WAMP-CRA key (salted, PBKDF2-HMAC-SHA256).
        #[arg(long)]
        wampcra: bool,
        #[command(flatten)]
        store: DataDir,
    },
    /// List the users (authid, realm, role, methods, created) — never any secret.
    List {
        #[command(flatten)]
        store: DataDir,
    },
    /// Change a user's password (new salts for every credential it has).
    Passwd {
        name: String,
        /// The realm the user was added for (default: the user for any realm).
        #[arg(long)]
        realm: Option<String>,
        #[command(flatten)]
        store: DataDir,
    },
    /// Remove a user.
    Remove {
        name: String,
        /// The realm the user was added for (default: the user for any realm).
        #[arg(long)]
        realm: Option<String>,
        #[command(flatten)]
        store: DataDir,
    },
}

#[derive(Args, Debug)]
pub struct DataDir {
    /// Directory of the embedded data store (the server's --data-dir; a server running on it
    /// makes the change through its admin socket).
    #[arg(
        long,
        default_value = "./switchboard-data",
        env = "SWITCHBOARD_DATA_DIR"
    )]
    pub data_dir: PathBuf,
}

/// Runs the command; an error is printed and exits with status 2.
pub fn main(cmd: UserCommand) -> ExitCode {
    match run(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard user: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn run(cmd: UserCommand) -> Result<(), String> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            realm,
            wampcra,
            store,
        } => add(&store.data_dir, &name, realm.as_deref(), &role, wampcra),
        UserCommand::List { store } => list(&store.data_dir),
        UserCommand::Passwd { name, realm, store } => {
            passwd(&store.data_dir, &name, realm.as_deref())
        }
        UserCommand::Remove { name, realm, store } => {
            remove(&store.data_dir, &name, realm.as_deref())
        }
    }
}

fn open(dir: &Path) -> Result<Store, String> {
    Store::open(dir, DEFAULT_CACHE_BYTES).map_err(|e| e.to_string())
}

/// Opens an existing store; `None` if the directory does not exist (nothing is created).
fn open_existing(dir: &Path) -> Result<Option<Store>, String> {
    if dir.exists() {
        open(dir).map(Some)
    } else {
        Ok(None)
    }
}

/// The rows of a local store (none if it does not exist).
fn local_rows(store: Option<&Store>) -> Vec<UserRow> {
    store
        .and_then(|s| s.principals().list().ok())
        .unwrap_or_default()
        .iter()
        .map(UserRow::from)
        .collect()
}

fn add(
    dir: &Path,
    name: &str,
    realm: Option<&str>,
    role: &str,
    wampcra: bool,
) -> Result<(), String> {
    crate::store::principals::validate(name, realm, role).map_err(|e| e.to_string())?;
    let exists = || {
        format!(
            "user '{name}' ({}) already exists; use 'switchboard user passwd' to change its password",
            realm_label(realm)
        )
    };
    let methods = if let Some(server) = Client::connect(dir) {
        // A server runs on this data directory: it does the change.
        if server.user(name, realm)?.is_some() {
            return Err(exists());
        }
        let password = read_password(true)?;
        let v = server.request(&Request::UserAdd {
            authid: name.into(),
            realm: realm.map(String::from),
            role: role.into(),
            password,
            wampcra,
        })?;
        let row: UserRow = serde_json::from_value(v.get("user").cloned().unwrap_or_default())
            .map_err(|e| format!("admin socket: unreadable answer: {e}"))?;
        row.methods
    } else {
        let store = open(dir)?;
        let principals = store.principals();
        // Refuse a duplicate before asking for a password.
        if principals
            .get_exact(realm, name)
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Err(exists());
        }
        let password = read_password(true)?;
        let rec = PrincipalRecord::new(name, realm, role, &password, wampcra);
        principals.add(&rec).map_err(|e| e.to_string())?;
        rec.methods().into_iter().map(String::from).collect()
    };
    println!(
        "added user '{name}' ({}) with role '{role}': {}",
        realm_label(realm),
        methods.join(", ")
    );
    Ok(())
}

fn unknown(rows: &[UserRow], dir: &Path, name: &str, realm: Option<&str>) -> String {
    let mut msg = format!(
        "no user '{name}' ({}) in {}",
        realm_label(realm),
        dir.display()
    );
    // Point at the realm(s) the name does exist in.
    let others: Vec<String> = rows
        .iter()
        .filter(|r| r.authid == name)
        .map(|r| match &r.realm {
            Some(r) => format!("realm '{r}' (--realm {r})"),
            None => "any realm (no --realm)".to_owned(),
        })
        .collect();
    if !others.is_empty() {
        msg.push_str(&format!("; it exists for {}", others.join(", ")));
    }
    msg
}

fn passwd(dir: &Path, name: &str, realm: Option<&str>) -> Result<(), String> {
    if let Some(server) = Client::connect(dir) {
        if server.user(name, realm)?.is_none() {
            return Err(unknown(&server.users()?, dir, name, realm));
        }
        let password = read_password(true)?;
        let v = server.request(&Request::UserPasswd {
            authid: name.into(),
            realm: realm.map(String::from),
            password,
        })?;
        if v.get("changed").and_then(|c| c.as_bool()) != Some(true) {
            return Err(unknown(&server.users()?, dir, name, realm));
        }
    } else {
        let store = match open_existing(dir)? {
            Some(s) => s,
            None => return Err(unknown(&[], dir, name, realm)),
        };
        if store
            .principals()
            .get_exact(realm, name)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Err(unknown(&local_rows(Some(&store)), dir, name, realm));
        }
        let password = read_password(true)?;
        if !store
            .principals()
            .set_password(realm, name, &password)
            .map_err(|e| e.to_string())?
        {
            return Err(unknown(&local_rows(Some(&store)), dir, name, realm));
        }
    }
    println!("changed the password of '{name}' ({})", realm_label(realm));
    Ok(())
}

fn remove(dir: &Path, name: &str, realm: Option<&str>) -> Result<(), String> {
    if let Some(server) = Client::connect(dir) {
        let v = server.request(&Request::UserRemove {
            authid: name.into(),
            realm: realm.map(String::from),
        })?;
        if v.get("removed").and_then(|c| c.as_bool()) != Some(true) {
            return Err(unknown(&server.users()?, dir, name, realm));
        }
    } else {
        let store = open_existing(dir)?;
        let removed = match &store {
            Some(s) => s
                .principals()
                .remove(realm, name)
                .map_err(|e| e.to_string())?,
            None => false,
        };
        if !removed {
            return Err(unknown(&local_rows(store.as_ref()), dir, name, realm));
        }
    }
    println!("removed user '{name}' ({})", realm_label(realm));
    Ok(())
}

fn list(dir: &Path) -> Result<(), String> {
    let rows = match Client::connect(dir) {
        Some(server) => server.users()?,
        None => local_rows(open_existing(dir)?.as_ref()),
    };
    let mut out = std::io::stdout().lock();
    let result = if rows.is_empty() {
        writeln!(out, "no users in {}", dir.display())
    } else {
        write_table(&mut out, &rows)
    };
    result.map_err(|e| format!("cannot write the list: {e}"))
}

/// The table `user list` prints; only names, never a salt or key.
fn write_table(out: &mut impl Write, records: &[UserRow]) -> std::io::Result<()> {
    let header = ["AUTHID", "REALM", "ROLE", "METHODS", "CREATED"].map(String::from);
    let rows: Vec<[String; 5]> = records
        .iter()
        .map(|r| {
            [
                r.authid.clone(),
                r.realm.clone().unwrap_or_else(|| "*".into()),
                r.role.clone(),
                r.methods.join(","),
                crate::clock::rfc3339(UNIX_EPOCH + Duration::from_secs(r.created)),
            ]
        })
        .collect();
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The password: from the terminal without echo (twice if `confirm`), or the first line of
/// standard input when that is not a terminal.
fn read_password(confirm: bool) -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| format!("cannot read the password from the terminal: {e}"))?;
        if confirm && !first.is_empty() {
            let again = rpassword::prompt_password("Repeat the password: ")
                .map_err(|e| format!("cannot read the password from the terminal: {e}"))?;
            if again != first {
                return Err("the passwords do not match".into());
            }
        }
        first
    } else {
        first_line(std::io::stdin().lock())?
    };
    check_password(&password)?;
    Ok(password)
}

/// The first line of `input` without its line ending, at most [`MAX_PASSWORD_LEN`] bytes.
fn first_line(input: impl BufRead) -> Result<String, String> {
    let mut bytes = Vec::new();
    input
        .take(MAX_PASSWORD_LEN as u64 + 2)
        .read_until(b'\n', &mut bytes)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "the password is longer than {MAX_PASSWORD_LEN} bytes"
        ));
    }
    String::from_utf8(bytes).map_err(|_| "the password is not valid UTF-8".to_owned())
}

fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "the password is longer than {MAX_PASSWORD_LEN} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn first_line_strips_only_the_line_ending() {
        assert_eq!(
            first_line(&b"  pw with spaces \nrest"[..]).unwrap(),
            "  pw with spaces "
        );
        assert_eq!(first_line(&b"pw\r\n"[..]).unwrap(), "pw");
        assert_eq!(first_line(&b"no newline"[..]).unwrap(), "no newline");
        assert_eq!(first_line(&b"\nsecond"[..]).unwrap(), "");
        assert!(first_line(&b"\xff\xfe\n"[..])
            .unwrap_err()
            .contains("UTF-8"));
        let long = "x".repeat(MAX_PASSWORD_LEN);
        assert_eq!(first_line(format!("{long}\n").as_bytes()).unwrap(), long);
        assert!(first_line(format!("{long}y\n").as_bytes())
            .unwrap_err()
            .contains("longer"));
        // An endless line is cut off, not read whole.
        let endless = std::io::repeat(b'x').take(1 << 30);
        assert!(first_line(std::io::BufReader::new(endless)).is_err());
        assert!(check_password("").unwrap_err().contains("empty"));
    }

    #[test]
    fn table_has_names_and_no_secrets() {
        let mut a = PrincipalRecord::new("joe", None, "user", "pw", true);
        a.created = 0;
        let b = PrincipalRecord::new("ann-long-name", Some("realm1"), "admin", "pw", false);
        let mut out = Vec::new();
        write_table(&mut out, &[UserRow::from(&a), UserRow::from(&b)]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("AUTHID         REALM   ROLE   METHODS"),
            "{text}"
        );
        assert!(
            lines[1]
                .starts_with("joe            *       user   scram,wampcra  1970-01-01T00:00:00Z"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("ann-long-name  realm1  admin  scram"),
            "{text}"
        );
        let cra = a.wampcra.unwrap();
        for secret in [
            cra.key.clone(),
            cra.salt.clone(),
            hex::encode(a.scram.salt),
            hex::encode(a.scram.stored_key),
        ] {
            assert!(!text.contains(&secret), "{text}");
        }
    }
}
