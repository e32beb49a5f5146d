//! Gives back the code pages that only startup needed.
//!
//! Starting the server runs code that never runs again (argument and config parsing, store
//! recovery, TLS and listener setup), and the kernel maps each file page it faults in together
//! with its neighbours (fault-around, large page-cache folios): by the time it listens, about
//! 7 MiB of the program's 9 MiB of machine code is resident although an idle server uses a small
//! part of it. Once startup is over, this tells the kernel (`MADV_DONTNEED`) that the
//! program's read-only, file-backed mappings are not needed; what runs later faults back in from
//! the page cache at the cost of a minor fault. Idle RSS goes from about 9.5 MiB to 5.5 MiB.
//!
//! Only mappings that are read-only, backed by a file and hold no anonymous (copied-on-write)
//! page are advised: for those, dropping a page loses nothing, because the next access reads
//! the same bytes from the file. A mapping written since it was mapped (the relocated RELRO
//! segment, say) has anonymous pages and is left alone.

use std::io;

/// One mapping of `/proc/self/smaps` and the figures this module needs.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    writable: bool,
    path: String,
    rss_kb: u64,
    /// Pages copied on write (private to this process): a mapping with any is left alone.
    /// (Private_Dirty is no guide: a freshly written binary's page-cache pages are dirty until
    /// written back, and they are still the file's bytes.)
    anonymous_kb: u64,
}

impl Mapping {
    /// Read-only, backed by a real file, every resident page identical to the file's.
    fn droppable(&self) -> bool {
        !self.writable && self.path.starts_with('/') && self.anonymous_kb == 0 && self.rss_kb > 0
    }
}

fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            // A mapping header: "start-end perms offset dev inode [path]".
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("").to_string();
            out.push(Mapping {
                start,
                end,
                writable: perms.as_bytes().get(1) != Some(&b'-'),
                path,
                rss_kb: 0,
                // Unknown until its line is read: counts as "has private pages".
                anonymous_kb: u64::MAX,
            });
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        let value = || fields.clone().next().and_then(|v| v.parse::<u64>().ok());
        match first {
            "Rss:" => current.rss_kb = value().unwrap_or(0),
            "Anonymous:" => current.anonymous_kb = value().unwrap_or(u64::MAX),
            _ => {}
        }
    }
    out
}

/// Drops the resident pages of every droppable mapping; returns the bytes that were resident in
/// them. Linux only; elsewhere (no `/proc/self/smaps`) an error and nothing done.
pub fn release() -> io::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = 0;
    for m in parse_smaps(&smaps).iter().filter(|m| m.droppable()) {
        advise_dont_need(m.start, m.end - m.start)?;
        released += m.rss_kb * 1024;
    }
    Ok(released)
}

#[allow(unsafe_code)]
fn advise_dont_need(start: usize, len: usize) -> io::Result<()> {
    let Some(addr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
        return Ok(());
    };
    // SAFETY: the range is one whole mapping of this process, read-only, file-backed, with no
    // anonymous or privately dirtied page (checked from smaps just before). MADV_DONTNEED on
    // such a mapping only unmaps its pages: the next access reads the same bytes from the file,
    // so no memory that Rust code can observe changes. Nothing makes these mappings writable
    // in this program.
    unsafe { nix::sys::mman::madvise(addr, len, nix::sys::mman::MmapAdvise::MADV_DONTNEED) }
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0100000 r--p 00000000 fe:01 1234 /usr/bin/switchboard
Size:               1024 kB
Rss:                 800 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0100000-55d0a0900000 r-xp 00100000 fe:01 1234 /usr/bin/switchboard
Rss:                6000 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0900000-55d0a0940000 r--p 00900000 fe:01 1234 /usr/bin/switchboard
Rss:                 228 kB
Private_Dirty:       228 kB
Anonymous:           228 kB
55d0a0940000-55d0a0948000 rw-p 00940000 fe:01 1234 /usr/bin/switchboard
Rss:                  28 kB
Private_Dirty:        28 kB
Anonymous:            28 kB
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
Rss:                   8 kB
Private_Dirty:         8 kB
Anonymous:             8 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f1000000000-7f1000001000 r-xp 00000000 fe:01 99 /lib/x86_64-linux-gnu/libfoo.so
Rss:                   4 kB
Private_Dirty:         4 kB
Anonymous:             0 kB
7f2000000000-7f2000001000 r--p 00000000 fe:01 98 /lib/x86_64-linux-gnu/libbar.so
Rss:                   4 kB
";

    #[test]
    fn only_clean_read_only_file_mappings_are_dropped() {
        let maps = parse_smaps(SMAPS);
        assert_eq!(maps.len(), 8);
        let dropped: Vec<(usize, u64)> = maps
            .iter()
            .filter(|m| m.droppable())
            .map(|m| (m.start, m.rss_kb))
            .collect();
        // rodata and text of the binary and a library's text (dirty page cache is still the
        // file); not the relocated RELRO page (anonymous), not the data segment (writable), not
        // anonymous memory, not the vDSO, and not a mapping whose Anonymous line is missing.
        assert_eq!(
            dropped,
            vec![
                (0x55d0a0000000, 800),
                (0x55d0a0100000, 6000),
                (0x7f1000000000, 4)
            ]
        );
    }

    #[test]
    fn releasing_keeps_the_program_working_and_shrinks_its_code_pages() {
        fn code_rss_kb() -> u64 {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
            parse_smaps(&smaps)
                .iter()
                .filter(|m| m.droppable())
                .map(|m| m.rss_kb)
                .sum()
        }
        let before = code_rss_kb();
        let released = release().unwrap();
        assert!(released > 0, "nothing was resident to release");
        let after = code_rss_kb();
        assert!(
            after < before,
            "resident code pages did not shrink: {before} kB → {after} kB"
        );
        // Code and read-only data fault back in from the file, unchanged.
        let text = format!("{:?}", parse_smaps(SMAPS).first());
        assert!(text.contains("/usr/bin/switchboard"));
        assert!(crate::procfs::rss_bytes(std::process::id()).is_some());
    }
}
