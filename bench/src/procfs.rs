//! What the benchmarks read of a process in `/proc`: its resident memory and its CPU time.
//! One reader, so that every bench measures a process the same way.

use std::fmt::Display;

/// Resident memory (VmRSS) of `pid` (a number, or `self`), KiB; None once it is gone.
pub fn rss_kib(pid: impl Display) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The fields of `/proc/<pid>/stat` after the command's closing parenthesis: the state
/// first, then the 4th field of the line onwards.
fn stat_fields(pid: impl Display) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The process state letter of `pid` (`Z`: a zombie); None once it is gone.
pub fn state(pid: impl Display) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// CPU time of `pid` so far, user and system, every thread's (exited ones too), ms:
/// utime and stime, the 14th and 15th fields, in clock ticks of 10 ms (Linux's USER_HZ).
pub fn cpu_ms(pid: impl Display) -> Option<f64> {
    let fields = stat_fields(pid)?;
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 * 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process is running, resident, and spends CPU when it works.
    #[test]
    fn this_process_reads_as_running() {
        assert!(rss_kib("self").is_some_and(|k| k > 0));
        assert!(matches!(state("self"), Some('R' | 'S')));
        // Busy until the counter moves two ticks (bounded: a shared machine may lend little).
        let before = cpu_ms("self").unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_ms("self").unwrap() < before + 20.0 {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(30),
                "no CPU time counted"
            );
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        assert_eq!(rss_kib(u32::MAX), None);
    }
}
