//! Backup files: a consistent snapshot of every sled tree, in a versioned format with a
//! checksum, and the restore that verifies one before it writes anything.
//!
//! Format (all integers big-endian):
//!
//! ```text
//! "SWBACKUP"            8 bytes magic
//! format version        u16 (FORMAT_VERSION)
//! store schema version  u8  (codec::SCHEMA_VERSION of the values inside)
//! created               u64 Unix milliseconds
//! records               0x01 tree:  u32 name length, name
//!                       0x02 entry: u32 key length, key, u32 value length, value (in the last tree)
//!                       0xFF end:   u64 number of entries
//! SHA-256               32 bytes over everything before it
//! ```
//!
//! Keys and values are copied as sled holds them (values already carry the codec's version
//! byte), so a restore is a byte-for-byte copy of the trees.
//!
//! Consistency: the snapshot is taken under the store's write barrier held exclusively
//! ([`super::Store::snapshot`]); every writer applies its batch under the barrier held shared, so
//! the snapshot sees each batch whole or not at all, across all trees.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"SWBACKUP";
pub const FORMAT_VERSION: u16 = 1;
const TAG_TREE: u8 = 0x01;
const TAG_ENTRY: u8 = 0x02;
const TAG_END: u8 = 0xFF;
/// Largest tree name, key or value a backup may hold (sled's own limits are far below).
const MAX_FIELD: u32 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("data store error: {0}")]
    Sled(#[from] sled::Error),
    #[error("not a switchboard backup file (bad magic)")]
    Magic,
    #[error(
        "backup format version {0} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    Version(u16),
    #[error("backup holds store schema version {0}, this build reads version {1}")]
    Schema(u8, u8),
    #[error("backup is corrupt: checksum mismatch (the file was damaged or truncated)")]
    Checksum,
    #[error("backup is corrupt: {0}")]
    Corrupt(String),
}

/// What a verified backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub created_ms: u64,
    pub trees: usize,
    pub entries: u64,
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn field(w: &mut impl Write, bytes: &[u8]) -> Result<(), BackupError> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&l| l <= MAX_FIELD)
        .ok_or_else(|| BackupError::Corrupt("a stored key or value is too large".into()))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(bytes)?;
    Ok(())
}

/// Writes every tree of `db` to `out`. The caller holds the write barrier.
pub(super) fn write(db: &sled::Db, out: impl Write) -> Result<Summary, BackupError> {
    let created_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut w = Hashing {
        inner: out,
        hash: Sha256::new(),
    };
    w.write_all(MAGIC)?;
    w.write_all(&FORMAT_VERSION.to_be_bytes())?;
    w.write_all(&[super::codec::SCHEMA_VERSION])?;
    w.write_all(&created_ms.to_be_bytes())?;
    let mut entries = 0u64;
    let mut names = db.tree_names();
    names.sort();
    for name in &names {
        let tree = db.open_tree(name)?;
        w.write_all(&[TAG_TREE])?;
        field(&mut w, name)?;
        for kv in tree.iter() {
            let (k, v) = kv?;
            w.write_all(&[TAG_ENTRY])?;
            field(&mut w, &k)?;
            field(&mut w, &v)?;
            entries += 1;
        }
    }
    w.write_all(&[TAG_END])?;
    w.write_all(&entries.to_be_bytes())?;
    let digest = w.hash.finalize();
    w.inner.write_all(&digest)?;
    w.inner.flush()?;
    Ok(Summary {
        created_ms,
        trees: names.len(),
        entries,
    })
}

/// A reader over a backup's body (everything before the checksum).
struct Body<'a> {
    bytes: &'a [u8],
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BackupError> {
        if self.bytes.len() < n {
            return Err(BackupError::Corrupt("unexpected end of data".into()));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], BackupError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn field(&mut self) -> Result<&'a [u8], BackupError> {
        let len = u32::from_be_bytes(self.array()?);
        if len > MAX_FIELD {
            return Err(BackupError::Corrupt("field length out of range".into()));
        }
        self.take(len as usize)
    }
}

/// Parses a whole backup held in memory: checks magic, versions and the checksum first, then
/// walks the records, calling `tree` for each tree and `entry` for each key/value (nothing is
/// called unless the checksum matched).
pub fn parse(
    bytes: &[u8],
    mut tree: impl FnMut(&[u8]) -> Result<(), BackupError>,
    mut entry: impl FnMut(&[u8], &[u8]) -> Result<(), BackupError>,
) -> Result<Summary, BackupError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(BackupError::Magic);
    }
    if bytes.len() < MAGIC.len() + 2 + 1 + 8 + 1 + 8 + 32 {
        return Err(BackupError::Checksum);
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    let mut b = Body { bytes: body };
    b.take(MAGIC.len())?;
    let version = u16::from_be_bytes(b.array()?);
    if version != FORMAT_VERSION {
        return Err(BackupError::Version(version));
    }
    if Sha256::digest(body).as_slice() != digest {
        return Err(BackupError::Checksum);
    }
    let [schema] = b.array()?;
    if schema != super::codec::SCHEMA_VERSION {
        return Err(BackupError::Schema(schema, super::codec::SCHEMA_VERSION));
    }
    let created_ms = u64::from_be_bytes(b.array()?);
    let mut trees = 0usize;
    let mut entries = 0u64;
    loop {
        let [tag] = b.array()?;
        match tag {
            TAG_TREE => {
                tree(b.field()?)?;
                trees += 1;
            }
            TAG_ENTRY => {
                if trees == 0 {
                    return Err(BackupError::Corrupt("an entry before any tree".into()));
                }
                let k = b.field()?;
                let v = b.field()?;
                entry(k, v)?;
                entries += 1;
            }
            TAG_END => {
                let counted = u64::from_be_bytes(b.array()?);
                if counted != entries {
                    return Err(BackupError::Corrupt(format!(
                        "{entries} entries, the trailer says {counted}"
                    )));
                }
                if !b.bytes.is_empty() {
                    return Err(BackupError::Corrupt("data after the end record".into()));
                }
                return Ok(Summary {
                    created_ms,
                    trees,
                    entries,
                });
            }
            other => return Err(BackupError::Corrupt(format!("unknown record tag {other}"))),
        }
    }
}

/// Reads and verifies a backup file without writing anything.
pub fn verify_file(path: &Path) -> Result<(Vec<u8>, Summary), BackupError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let summary = parse(&bytes, |_| Ok(()), |_, _| Ok(()))?;
    Ok((bytes, summary))
}

/// Writes a verified backup into a freshly opened, empty database.
pub(super) fn load(db: &sled::Db, bytes: &[u8]) -> Result<Summary, BackupError> {
    let current = std::cell::RefCell::new(None::<sled::Tree>);
    let summary = parse(
        bytes,
        |name| {
            *current.borrow_mut() = Some(db.open_tree(name)?);
            Ok(())
        },
        |k, v| {
            if let Some(t) = current.borrow().as_ref() {
                t.insert(k, v)?;
            }
            Ok(())
        },
    )?;
    db.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.insert(b"default-key", b"v0").unwrap();
        let a = db.open_tree("a").unwrap();
        a.insert(b"k1", b"v1").unwrap();
        a.insert(b"k2", vec![0u8; 300]).unwrap();
        db.open_tree("empty").unwrap();
        let mut out = Vec::new();
        let s = write(&db, &mut out).unwrap();
        assert_eq!(s.entries, 3);
        (dir, out)
    }

    #[test]
    fn round_trip_copies_every_tree() {
        let (_d, bytes) = sample();
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let s = load(&db, &bytes).unwrap();
        assert_eq!(s.entries, 3);
        assert_eq!(db.get(b"default-key").unwrap().unwrap(), b"v0");
        let a = db.open_tree("a").unwrap();
        assert_eq!(a.get(b"k1").unwrap().unwrap(), b"v1");
        assert_eq!(a.get(b"k2").unwrap().unwrap().len(), 300);
        assert!(db.tree_names().iter().any(|n| n == b"empty"));
    }

    #[test]
    fn damage_is_refused_before_anything_is_written() {
        let (_d, bytes) = sample();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            let calls = std::cell::Cell::new(0);
            let r = parse(
                &bad,
                |_| {
                    calls.set(calls.get() + 1);
                    Ok(())
                },
                |_, _| {
                    calls.set(calls.get() + 1);
                    Ok(())
                },
            );
            assert!(r.is_err(), "flipping byte {i} went unnoticed");
            assert_eq!(calls.get(), 0, "byte {i}: records read from a damaged file");
        }
        for n in 0..bytes.len() {
            assert!(parse(&bytes[..n], |_| Ok(()), |_, _| Ok(())).is_err());
        }
        assert!(matches!(
            parse(b"hello world", |_| Ok(()), |_, _| Ok(())),
            Err(BackupError::Magic)
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            parse(&longer, |_| Ok(()), |_, _| Ok(())),
            Err(BackupError::Checksum)
        ));
    }
}
