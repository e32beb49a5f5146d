//! `switchboard backup FILE` and `switchboard restore FILE`.
//!
//! Backup asks the server running on the data directory for a consistent snapshot through its
//! admin socket (`admin`); with no server answering there it opens the store itself. The file
//! is written next to FILE, verified, made 0600 and renamed into place, so FILE is either the
//! old file or a complete new backup.
//!
//! Restore needs the server stopped (the store's lock says so), verifies the whole file
//! (magic, versions, checksum, structure) before it writes anything, and refuses a data
//! directory that already holds data unless `--force` (which empties it first).

use crate::admin::client::Client;
use crate::store::backup::{self, Summary};
use crate::store::{Store, StoreError, DEFAULT_CACHE_BYTES};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn exit(name: &str, r: Result<String, String>) -> ExitCode {
    match r {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard {name}: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn backup_main(file: &Path, data_dir: &Path) -> ExitCode {
    exit("backup", backup(file, data_dir))
}

pub fn restore_main(file: &Path, data_dir: &Path, force: bool) -> ExitCode {
    exit("restore", restore(file, data_dir, force))
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    file.with_file_name(name)
}

fn describe(s: &Summary) -> String {
    format!("{} trees, {} entries", s.trees, s.entries)
}

pub fn backup(file: &Path, data_dir: &Path) -> Result<String, String> {
    let partial = partial_path(file);
    let written = write_backup(&partial, data_dir).and_then(|how| {
        let (_, summary) = backup::verify_file(&partial)
            .map_err(|e| format!("the backup just written does not verify: {e}"))?;
        std::fs::rename(&partial, file)
            .map_err(|e| format!("cannot move the backup to {}: {e}", file.display()))?;
        Ok((how, summary))
    });
    match written {
        Ok((how, summary)) => Ok(format!(
            "backup of {} written to {} ({how}): {}",
            data_dir.display(),
            file.display(),
            describe(&summary)
        )),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Writes the backup to `path`; says how it was taken.
fn write_backup(path: &Path, data_dir: &Path) -> Result<&'static str, String> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let how = if let Some(server) = Client::connect(data_dir) {
        let mut buffered = std::io::BufWriter::new(&mut out);
        server.backup(&mut buffered)?;
        buffered
            .flush()
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        "from the running server"
    } else {
        if !data_dir.join("db").exists() {
            return Err(format!("no data store in {}", data_dir.display()));
        }
        let store = Store::open(data_dir, DEFAULT_CACHE_BYTES).map_err(|e| match e {
            StoreError::Locked(_) => format!(
                "{e} — and its admin socket {} does not answer",
                crate::admin::socket_path(data_dir).display()
            ),
            e => e.to_string(),
        })?;
        let mut buffered = std::io::BufWriter::new(&mut out);
        store
            .snapshot(&mut buffered)
            .map_err(|e| format!("cannot take the backup: {e}"))?;
        buffered
            .flush()
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        "store opened directly, no server running"
    };
    out.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(how)
}

pub fn restore(file: &Path, data_dir: &Path, force: bool) -> Result<String, String> {
    let (bytes, summary) =
        backup::verify_file(file).map_err(|e| format!("{}: {e}", file.display()))?;
    if Client::connect(data_dir).is_some() {
        return Err(format!(
            "a server is running on {}: stop it before restoring",
            data_dir.display()
        ));
    }
    let occupied = std::fs::read_dir(data_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if occupied {
        // Opening it proves no server holds it (and shows whether it holds anything).
        let store = Store::open(data_dir, DEFAULT_CACHE_BYTES).map_err(|e| e.to_string())?;
        let empty = store.is_empty().map_err(|e| e.to_string())?;
        drop(store);
        if !force && !empty {
            return Err(format!(
                "{} already holds data; restore into an empty or new directory, or pass --force to replace it",
                data_dir.display()
            ));
        }
        clear_dir(data_dir).map_err(|e| format!("cannot empty {}: {e}", data_dir.display()))?;
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let store = Store::open(data_dir, DEFAULT_CACHE_BYTES).map_err(|e| e.to_string())?;
    store
        .load_backup(&bytes)
        .map_err(|e| format!("restore failed: {e}"))?;
    Ok(format!(
        "restored {} into {}: {}",
        file.display(),
        data_dir.display(),
        describe(&summary)
    ))
}

/// Removes everything inside `dir` (not `dir` itself: it may be a mount point).
fn clear_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_and_restore_without_a_server() {
        let src = tempfile::tempdir().unwrap();
        {
            let store = Store::open(src.path(), 1 << 20).unwrap();
            let rec =
                crate::store::principals::PrincipalRecord::new("joe", None, "user", "pw", false);
            store.principals().add(&rec).unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("b.swb");
        let said = backup(&file, src.path()).unwrap();
        assert!(said.contains("directly"), "{said}");
        // Into a fresh directory.
        let dst = out.path().join("restored");
        restore(&file, &dst, false).unwrap();
        // A second time: refused without --force, done with it.
        let e = restore(&file, &dst, false).unwrap_err();
        assert!(e.contains("--force"), "{e}");
        restore(&file, &dst, true).unwrap();
        let store = Store::open(&dst, 1 << 20).unwrap();
        assert!(store.principals().get_exact(None, "joe").unwrap().is_some());
        drop(store);
        // A damaged file is refused before anything is touched.
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let e = restore(&file, &dst, true).unwrap_err();
        assert!(e.contains("checksum"), "{e}");
        let store = Store::open(&dst, 1 << 20).unwrap();
        assert!(store.principals().get_exact(None, "joe").unwrap().is_some());
    }
}
