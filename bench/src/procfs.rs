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

/// `pid` and every process below it (its children, theirs...), found by the parent
/// field of each `/proc/<pid>/stat`.
pub fn tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| Some((p, stat_fields(p)?.get(1)?.parse::<u32>().ok()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    out
}

/// CPU time so far of `pid` and every process below it, ms (see [`cpu_ms`]).
pub fn tree_cpu_ms(pid: u32) -> f64 {
    tree(pid).into_iter().filter_map(cpu_ms).sum()
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

    /// A child (and its own child) is found below this process, and only below it.
    #[test]
    fn a_process_tree_holds_the_children() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let me = std::process::id();
        let pid = child.id();
        // The grandchild appears once the shell has started it.
        let t = std::time::Instant::now();
        let mut found = tree(me);
        while found.len() < 3 && t.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::yield_now();
            found = tree(me);
        }
        let below = tree(pid);
        // The shell's sleep first, then the shell: nothing is left running.
        for p in below.iter().rev() {
            let _ = std::process::Command::new("kill").arg(p.to_string()).status();
        }
        child.wait().unwrap();
        assert_eq!(found[0], me);
        assert!(found.contains(&pid), "{found:?}");
        assert!(found.len() >= 3, "the shell's sleep is below it: {found:?}");
        assert_eq!(below.first(), Some(&pid));
        assert!(below.len() >= 2, "{below:?}");
        assert!(!below.contains(&me));
    }
}
