//! glibc malloc tuning for the server process: how many malloc arenas its threads share.
//!
//! glibc gives each thread that allocates its own arena, up to eight per core, and a freed
//! chunk goes back to the arena it came from. Under a durable chat write load, sled's cached
//! nodes, page-table entries and I/O buffers are allocated and freed all the time by the tokio
//! workers, sled's flusher and its I/O threads; with one arena per thread the free space ends
//! up scattered over several arenas in holes that the next allocations do not fit, and RSS
//! climbs while the live heap stays flat (README "Soak": heap profile flat, `malloc_stats`
//! showing arenas with twice as many bytes taken from the system as in use). With one arena
//! the free space is reused and RSS stays flat; the durable chat write path was not measurably
//! slower (README "Soak").
//!
//! `MALLOC_ARENA_MAX` in the environment (read by glibc itself) takes precedence, and 0 leaves
//! glibc's default. Other C libraries (the static musl build) have nothing to set.

/// What [`limit_arenas`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arenas {
    /// Capped at this many.
    Limited(u32),
    /// Left as it is: 0 was asked for, or `MALLOC_ARENA_MAX` is set in the environment.
    Default,
    /// Not glibc: nothing to set.
    Unsupported,
    /// glibc refused the value.
    Refused,
}

/// The arenas the server uses unless told otherwise (`--malloc-arenas`).
pub const DEFAULT_ARENAS: u32 = 1;

/// Caps the malloc arenas of this process at `n` (see the module comment). Call it before
/// threads are started: a thread keeps the arena it was given.
pub fn limit_arenas(n: u32) -> Arenas {
    if n == 0 || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return Arenas::Default;
    }
    set_arena_max(n)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(n: u32) -> Arenas {
    let Ok(value) = libc::c_int::try_from(n) else {
        return Arenas::Refused;
    };
    // SAFETY: mallopt only stores an allocator parameter (M_ARENA_MAX takes any positive int);
    // it touches no memory of ours and is thread-safe in glibc.
    match unsafe { libc::mallopt(libc::M_ARENA_MAX, value) } {
        1 => Arenas::Limited(n),
        _ => Arenas::Refused,
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_n: u32) -> Arenas {
    Arenas::Unsupported
}
