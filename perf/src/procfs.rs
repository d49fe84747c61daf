//! The broker's cost, read from /proc: CPU seconds (utime + stime) and resident memory, and
//! finding the broker's pid from the port it listens on.

use std::fs;

use anyhow::{bail, ensure, Context, Result};

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds used so far by a process (all threads), user plus system.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_stat_cpu_ticks(&stat).map(|ticks| ticks as f64 / clock_ticks_per_s())
}

/// utime + stime from a /proc/<pid>/stat line. The command name may contain spaces and
/// parentheses, so fields are counted after the last ')'.
pub fn parse_stat_cpu_ticks(stat: &str) -> Result<u64> {
    let after = &stat[stat.rfind(')').context("no ')' in stat")? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime is field 14, stime 15.
    ensure!(fields.len() > 12, "stat too short");
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// Steal time so far, all CPUs (seconds): time the hypervisor ran something else while
/// this VM's CPUs had work.
pub fn steal_seconds() -> Result<f64> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_steal_ticks(&stat).map(|ticks| ticks as f64 / clock_ticks_per_s())
}

/// The steal field (the 8th number) of /proc/stat's first line, `cpu  user nice system idle
/// iowait irq softirq steal ...`.
pub fn parse_steal_ticks(stat: &str) -> Result<u64> {
    let line = stat.lines().next().context("empty /proc/stat")?;
    let mut fields = line.split_whitespace();
    ensure!(
        fields.next() == Some("cpu"),
        "/proc/stat does not start with 'cpu'"
    );
    let steal = fields.nth(7).context("no steal field in /proc/stat")?;
    Ok(steal.parse::<u64>()?)
}

/// Resident set size in bytes (VmRSS).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_kb(&status, "VmRSS:").map(|kb| kb * 1024)
}

pub fn status_kb(status: &str, key: &str) -> Result<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("{key} missing"))?;
    let kb = line[key.len()..]
        .split_whitespace()
        .next()
        .context("empty value")?;
    Ok(kb.parse()?)
}

/// Socket inodes listening on `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue; // 0A = LISTEN
            }
            let Some((_, p)) = f[1].rsplit_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                if let Ok(inode) = f[9].parse() {
                    out.push(inode);
                }
            }
        }
    }
    out
}

/// The processes that own a socket listening on `port`. More than one means the port is
/// shared (SO_REUSEPORT): connections are spread over several brokers, and a benchmark
/// against it measures a mix.
pub fn pids_by_port(port: u16) -> Result<Vec<u32>> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        bail!("nothing listens on port {port}");
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                    pids.push(pid);
                    break;
                }
            }
        }
    }
    if pids.is_empty() {
        bail!("no visible process owns the listener on port {port}");
    }
    Ok(pids)
}

/// The one process listening on `port`; an error if none or several do.
pub fn pid_by_port(port: u16) -> Result<u32> {
    let pids = pids_by_port(port)?;
    if pids.len() > 1 {
        bail!("port {port} is shared by processes {pids:?} (SO_REUSEPORT): connections would be spread over several brokers");
    }
    Ok(pids[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_number_of_the_cpu_line() {
        let stat = "cpu  10 1 20 300 4 0 2 77 0 0\ncpu0 5 0 10 150 2 0 1 40 0 0\n";
        assert_eq!(parse_steal_ticks(stat).unwrap(), 77);
        assert!(parse_steal_ticks("cpu  10 1 20\n").is_err());
        assert!(parse_steal_ticks("intr 1 2 3 4 5 6 7 8 9\n").is_err());
    }

    #[test]
    fn stat_fields_after_odd_names() {
        let stat = "1234 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(parse_stat_cpu_ticks(stat).unwrap(), 300);
        assert!(parse_stat_cpu_ticks("1 (x) S 1 2").is_err());
    }

    #[test]
    fn own_process_is_visible() {
        let me = std::process::id();
        assert!(cpu_seconds(me).unwrap() >= 0.0);
        assert!(rss_bytes(me).unwrap() > 0);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(pid_by_port(port).unwrap(), me);
        assert_eq!(pids_by_port(port).unwrap(), vec![me]);
        drop(l);
        assert!(pid_by_port(port).is_err());
    }
}
