//! What the kernel says about a process: CPU time and resident memory, from `/proc`.

use std::fs;
use std::time::Duration;

use anyhow::Context;

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// User plus system CPU time the process has used so far.
pub fn cpu_time(pid: u32, ticks_per_second: u64) -> anyhow::Result<Duration> {
    let stat =
        fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis start
    // at field 3 (state), so utime (14) and stime (15) are the 12th and 13th of them.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no ')' in /proc/<pid>/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short /proc/<pid>/stat")?
            .parse::<u64>()
            .context("a time in /proc/<pid>/stat")
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_micros(total * 1_000_000 / ticks_per_second))
}

/// A `Vm…:` line of `/proc/<pid>/status`, in KiB (`VmHWM` peak resident, `VmRSS` resident now).
pub fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status =
        fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/<pid>/status"))
}

/// Resets the peak resident set size (`VmHWM`) to the current one, so the next reading is the
/// peak of what ran since (`clear_refs` value 5, Linux 4.0+).
pub fn reset_peak(pid: u32) -> anyhow::Result<()> {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").context("writing /proc/<pid>/clear_refs")
}

/// Machine facts for the report.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu_and_has_a_resident_set() {
        let pid = std::process::id();
        let spin = std::time::Instant::now();
        let mut x = 0_u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_time(pid, clock_ticks_per_second()).expect("stat") > Duration::ZERO);
        assert!(status_kib(pid, "VmRSS").expect("status") > 0);
        assert!(
            status_kib(pid, "VmHWM").expect("status") >= status_kib(pid, "VmRSS").unwrap_or(0) / 2
        );
    }
}
