//! `switchboard::malloc::limit_arenas`: once the server has capped glibc's malloc arenas,
//! threads started later share the arenas that exist instead of each creating one more (which
//! is what let free space scatter and RSS climb under the soak's chat load). The arenas are
//! counted as glibc lays them out in `/proc/self/maps`: every arena but the main one lives in
//! an anonymous heap reserved as 64 MiB aligned to 64 MiB, its used part read-write and the
//! rest without access. Its own test binary, with one test, so that nothing else in the
//! process starts threads or sets the limit.

#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Barrier;
use switchboard::malloc::{limit_arenas, Arenas};

/// glibc's HEAP_MAX_SIZE on 64-bit targets: 2 × the largest mmap threshold (4 MiB × 8).
const HEAP_MAX: u64 = 64 << 20;

/// The arena heaps in `/proc/self/maps`: an anonymous read-write mapping that starts on a
/// 64 MiB boundary and, with the inaccessible mapping right after it (if any), ends exactly
/// 64 MiB later.
fn arena_heaps() -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let regions: Vec<(u64, u64, String, bool)> = maps
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (start, end) = f.next()?.split_once('-')?;
            let perms = f.next()?.to_owned();
            let anonymous = f.nth(3).is_none_or(|path| path.is_empty());
            Some((
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
                perms,
                anonymous,
            ))
        })
        .collect();
    regions
        .iter()
        .enumerate()
        .filter(|(i, (start, end, perms, anonymous))| {
            if !anonymous || !perms.starts_with("rw-p") || start % HEAP_MAX != 0 {
                return false;
            }
            if end - start == HEAP_MAX {
                return true;
            }
            regions.get(i + 1).is_some_and(|(s2, e2, p2, a2)| {
                s2 == end && *a2 && p2.starts_with("---p") && e2 - start == HEAP_MAX
            })
        })
        .count()
}

/// Starts `n` threads that are all alive at once, each allocating, and waits for them.
fn allocate_on_threads(n: usize) {
    let barrier = Barrier::new(n);
    std::thread::scope(|s| {
        for i in 0..n {
            let barrier = &barrier;
            s.spawn(move || {
                let held: Vec<Box<[u8; 64]>> = (0..256).map(|_| Box::new([i as u8; 64])).collect();
                barrier.wait();
                std::hint::black_box(held);
            });
        }
    });
}

#[test]
fn threads_started_after_the_limit_get_no_arena_of_their_own() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        eprintln!("MALLOC_ARENA_MAX is set: glibc's own limit applies, nothing to test");
        return;
    }
    // Without a limit, threads alive at the same time get an arena each: this also shows that
    // arena_heaps() sees them.
    let before_control = arena_heaps();
    allocate_on_threads(3);
    let before = arena_heaps();
    assert!(
        before >= before_control + 3,
        "three concurrent threads should have made three arenas ({before_control} → {before})"
    );
    assert_eq!(limit_arenas(1), Arenas::Limited(1));
    // These reuse the arenas the control threads left behind, then share existing ones.
    allocate_on_threads(8);
    allocate_on_threads(8);
    assert_eq!(
        arena_heaps(),
        before,
        "threads started after limit_arenas(1) created arenas"
    );
}
