//! Latency summaries and number formatting shared by the scenarios.

#[derive(Clone, Copy, Debug, Default, serde::Serialize, PartialEq)]
pub struct Latency {
    pub count: usize,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Latency {
    /// Summarizes microsecond samples (sorts them).
    pub fn of(samples: &mut [u64]) -> Latency {
        samples.sort_unstable();
        Latency {
            count: samples.len(),
            p50_us: percentile(samples, 50.0),
            p90_us: percentile(samples, 90.0),
            p99_us: percentile(samples, 99.0),
            max_us: samples.last().copied().unwrap_or(0),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  max {}",
            fmt_us(self.p50_us),
            fmt_us(self.p90_us),
            fmt_us(self.p99_us),
            fmt_us(self.max_us)
        )
    }
}

/// p-th percentile (0..=100) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn fmt_bytes(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b.abs() >= 1024.0 {
        format!("{:.2} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

pub fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
}

/// Microseconds since the Unix epoch (publishers stamp events; subscribers on the same machine
/// subtract).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let l = Latency::of(&mut v);
        assert_eq!((l.p50_us, l.p99_us, l.max_us, l.count), (51, 99, 100, 100));
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
