//! Process figures from Linux's /proc: resident memory and CPU time. Used by the status API
//! (for this process) and by the load tool (for the server under test). `None` off Linux.

/// Clock ticks per second for /proc/PID/stat times (USER_HZ, 100 on every Linux ABI we target).
const TICKS_PER_SEC: f64 = 100.0;

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss(&status)
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// User + system CPU time in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu(&stat)
}

fn parse_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are
    // space-separated, starting with field 3 (state). utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        assert_eq!(
            parse_rss("Name:\tx\nVmRSS:\t    5508 kB\nThreads: 3\n"),
            Some(5508 * 1024)
        );
        let stat = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(parse_cpu(stat), Some(3.0));
        assert!(rss_bytes(std::process::id()).is_some_and(|r| r > 0));
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
