//! `switchboard user …` run as a real process, the password piped on standard input.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use switchboard::auth::scram::Credential;
use switchboard::store::principals::PrincipalRecord;
use switchboard::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Runs `switchboard user ARGS --data-dir DIR`, writing `stdin` (if any) to its input, and
/// checks while it runs that its command line does not hold `stdin`'s text.
fn user(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("SWITCHBOARD_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let secret = stdin.trim_end();
    // (Short secrets such as "pw" are skipped: a random temporary directory name in argv may
    // contain them by chance.)
    if secret.len() >= 8 {
        // The process is alive (waiting for its input or already done): its argv must not
        // contain the password.
        if let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", child.id())) {
            assert!(
                !cmdline
                    .windows(secret.len())
                    .any(|w| w == secret.as_bytes()),
                "password in argv: {:?}",
                String::from_utf8_lossy(&cmdline)
            );
        }
    }
    let mut input = child.stdin.take().expect("stdin");
    // The command may exit before reading (e.g. a duplicate): a broken pipe is fine.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout {}\nstderr {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Asserts exit status 2 and returns stderr.
fn fails(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout {}\nstderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

fn records(dir: &Path) -> Vec<PrincipalRecord> {
    Store::open(dir, 1 << 20)
        .expect("store opens after the command")
        .principals()
        .list()
        .expect("list")
}

/// Whether any file under `dir` contains `needle`.
fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).expect("read_dir").any(|e| {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files_contain(&p, needle)
        } else {
            std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}

#[test]
fn add_list_passwd_remove() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    const PW: &str = "first-Pa55word";
    const PW2: &str = "second-Pa55word";

    // list on a directory that does not exist: empty, and nothing is created.
    assert!(ok(&user(&dir, &["list"], "")).contains("no users"));
    assert!(!dir.exists());

    let out = ok(&user(
        &dir,
        &["add", "joe", "--role", "user", "--wampcra"],
        &format!("{PW}\n"),
    ));
    assert!(out.contains("added user 'joe'"), "{out}");
    ok(&user(
        &dir,
        &["add", "ann", "--role", "admin", "--realm", "realm1"],
        PW2,
    ));

    let recs = records(&dir);
    assert_eq!(recs.len(), 2);
    let joe = recs.iter().find(|r| r.authid == "joe").expect("joe");
    assert_eq!((joe.realm.as_deref(), joe.role.as_str()), (None, "user"));
    // The stored SCRAM credential is the piped password's (line ending stripped).
    let s = &joe.scram;
    assert_eq!(
        Credential::derive_with(PW, s.kdf, &s.salt, s.iterations, s.memory).expect("derive"),
        *s
    );
    let cra = joe.wampcra.clone().expect("wampcra key");
    assert_eq!(
        cra.key,
        switchboard::auth::wampcra::derive_key(PW, &cra.salt, cra.iterations, cra.keylen)
    );
    assert!(!files_contain(&dir, PW.as_bytes()), "password stored");

    let list = ok(&user(&dir, &["list"], ""));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    let cols = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        cols(lines[0]),
        ["AUTHID", "REALM", "ROLE", "METHODS", "CREATED"]
    );
    assert_eq!(cols(lines[1])[..4], ["joe", "*", "user", "scram,wampcra"]);
    assert_eq!(cols(lines[2])[..4], ["ann", "realm1", "admin", "scram"]);
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    for secret in [
        PW.to_owned(),
        PW2.to_owned(),
        cra.key.clone(),
        cra.salt.clone(),
        b64(&s.salt),
        b64(&s.stored_key),
        b64(&s.server_key),
        hex::encode(&s.salt),
        hex::encode(s.stored_key),
        hex::encode(s.server_key),
    ] {
        assert!(!list.contains(&secret), "list shows {secret}:\n{list}");
    }

    let out = ok(&user(&dir, &["passwd", "joe"], &format!("{PW2}\r\n")));
    assert!(out.contains("changed the password of 'joe'"), "{out}");
    let joe2 = records(&dir)
        .into_iter()
        .find(|r| r.authid == "joe")
        .expect("joe");
    let s2 = &joe2.scram;
    assert_ne!(s2.salt, s.salt, "fresh salt");
    assert_eq!(
        Credential::derive_with(PW2, s2.kdf, &s2.salt, s2.iterations, s2.memory).expect("derive"),
        *s2
    );
    let cra2 = joe2.wampcra.expect("still has a wampcra key");
    assert_eq!(
        cra2.key,
        switchboard::auth::wampcra::derive_key(PW2, &cra2.salt, cra2.iterations, cra2.keylen)
    );
    assert_eq!(joe2.created, joe.created);

    assert!(ok(&user(&dir, &["remove", "joe"], "")).contains("removed user 'joe'"));
    assert!(ok(&user(&dir, &["remove", "ann", "--realm", "realm1"], "")).contains("removed"));
    assert!(ok(&user(&dir, &["list"], "")).contains("no users"));
    assert!(records(&dir).is_empty());
}

#[test]
fn errors_exit_2_with_a_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    ok(&user(&dir, &["add", "joe", "--role", "user"], "pw\n"));
    let before = records(&dir);

    let e = fails(&user(&dir, &["add", "joe", "--role", "admin"], "other\n"));
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(records(&dir), before, "duplicate changed nothing");

    for stdin in ["", "\n", "\r\n"] {
        let e = fails(&user(&dir, &["add", "amy", "--role", "user"], stdin));
        assert!(e.contains("password is empty"), "{e}");
        let e = fails(&user(&dir, &["passwd", "joe"], stdin));
        assert!(e.contains("password is empty"), "{e}");
    }
    assert_eq!(records(&dir), before, "empty passwords changed nothing");

    let e = fails(&user(&dir, &["passwd", "nobody"], "pw\n"));
    assert!(e.contains("no user 'nobody'"), "{e}");
    let e = fails(&user(&dir, &["remove", "nobody"], ""));
    assert!(e.contains("no user 'nobody'"), "{e}");
    // The name exists, but for any realm: the message says how to address it.
    let e = fails(&user(&dir, &["remove", "joe", "--realm", "realm1"], ""));
    assert!(e.contains("no user 'joe' (realm 'realm1')"), "{e}");
    assert!(e.contains("any realm (no --realm)"), "{e}");
    // A data directory that does not exist: unknown user, and nothing is created.
    let missing = tmp.path().join("missing");
    assert!(fails(&user(&missing, &["passwd", "joe"], "pw\n")).contains("no user 'joe'"));
    assert!(fails(&user(&missing, &["remove", "joe"], "")).contains("no user 'joe'"));
    assert!(!missing.exists());

    // Names are checked before the password is asked for.
    let e = fails(&user(
        &dir,
        &["add", "amy", "--role", "user", "--realm", "my realm"],
        "pw\n",
    ));
    assert!(e.contains("not a valid realm URI"), "{e}");

    // There is no way to put a password on the command line.
    let e = fails(&user(
        &dir,
        &["add", "amy", "--role", "user", "--password", "pw"],
        "",
    ));
    assert!(e.contains("--password"), "{e}");
    assert_eq!(records(&dir), before);
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_server_makes_the_changes_through_its_admin_socket() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let start = || {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().expect("stdout");
        // The first line is printed once the store is open and the listener bound.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("line");
        assert!(line.starts_with("switchboard listening"), "{line:?}");
        Server(child)
    };
    let mut server = start();
    let sock = dir.join("admin.sock");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&sock)
            .expect("admin socket")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "admin socket mode {mode:o}");

    let out = ok(&user(&dir, &["add", "joe", "--role", "user"], "pw\n"));
    assert!(out.contains("added user 'joe'"), "{out}");
    let e = fails(&user(&dir, &["add", "joe", "--role", "user"], "pw\n"));
    assert!(e.contains("already exists"), "{e}");
    let out = ok(&user(&dir, &["list"], ""));
    assert!(out.contains("joe") && out.contains("scram"), "{out}");
    ok(&user(&dir, &["passwd", "joe"], "pw2\n"));
    let e = fails(&user(&dir, &["passwd", "joe", "--realm", "realm1"], "pw\n"));
    assert!(e.contains("any realm (no --realm)"), "{e}");
    ok(&user(
        &dir,
        &["add", "ann", "--role", "user", "--wampcra"],
        "pw\n",
    ));
    ok(&user(&dir, &["remove", "ann"], ""));
    let e = fails(&user(&dir, &["remove", "ann"], ""));
    assert!(e.contains("no user 'ann'"), "{e}");

    // A server killed without its shutdown leaves a stale socket behind: the commands open
    // the store themselves.
    server.0.kill().expect("SIGKILL");
    server.0.wait().expect("reaped");
    assert!(sock.exists());
    ok(&user(&dir, &["add", "kim", "--role", "user"], "pw\n"));
    let names: Vec<String> = records(&dir).into_iter().map(|r| r.authid).collect();
    assert_eq!(names, ["joe", "kim"]);
    // A new server replaces the stale socket and removes it when it stops.
    let mut server = start();
    let out = ok(&user(&dir, &["list"], ""));
    assert!(out.contains("kim"), "{out}");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.0.id().to_string())
        .status();
    server.0.wait().expect("reaped");
    assert!(!sock.exists(), "socket removed on shutdown");
}
