//! What the kernel counts for us: CPU time of a process tree, memory of a process,
//! the machine's busy time and load. Linux `/proc` only.
//!
//! CPU time of a server is that of its whole process tree, each process found by its
//! parent pid (so a child that runs in its own process group, or was exec'd through a
//! wrapper, still counts):
//! - the root's user + system time from `/proc/<pid>/stat` (`utime + stime`), which
//!   includes its threads that have exited, plus `cutime + cstime` (what its reaped
//!   children used, so a child that exits inside a window is not lost). These are in
//!   clock ticks (10 ms), truncated once per process: at most 20 ms off per window;
//! - every live descendant's time from `/proc/<pid>/task/*/schedstat` (nanoseconds on
//!   the CPU, per thread), plus its `cutime + cstime`. Truncating each of a hundred
//!   small children to 10 ms ticks would lose most of their time; their threads live as
//!   long as they do, so summing the live ones misses nothing.

use std::collections::HashMap;
use std::fs;

use anyhow::{Context, Result, bail};

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticks(f64);

impl Ticks {
    /// `getconf CLK_TCK`; Linux fixes `USER_HZ` at 100 where that is not available.
    pub(crate) fn detect() -> Ticks {
        let from_getconf = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0);
        Ticks(from_getconf.unwrap_or(100.0))
    }

    pub(crate) fn seconds(self, ticks: u64) -> f64 {
        ticks as f64 / self.0
    }
}

/// The fields of `/proc/<pid>/stat` the bench reads.
#[derive(Debug, Clone, Copy)]
struct Stat {
    ppid: u32,
    /// utime + stime of the process itself.
    own: u64,
    /// cutime + cstime: its reaped children's.
    reaped: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces and parentheses itself.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(num(1)?).ok()?,
        own: num(11)? + num(12)?,
        reaped: num(13)? + num(14)?,
    })
}

/// CPU seconds of a process tree at one moment, split into the root and the rest.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TreeCpu {
    /// The root's own time plus what its reaped children used.
    pub(crate) root: f64,
    /// Every live descendant's own and reaped time.
    pub(crate) descendants: f64,
    /// How many live descendants there were.
    pub(crate) processes: usize,
}

/// Nanoseconds the live threads of `pid` spent on a CPU.
fn schedstat_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(text) = fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total += text
            .split_ascii_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// How the root's own time is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RootClock {
    /// `utime + stime`: right for a process whose threads come and go (the broker's
    /// blocking threads), at 10 ms resolution.
    Stat,
    /// Its live threads' `schedstat`: exact, for a single-threaded root (the stdio
    /// floor's child), whose small CPU time ticks would truncate badly.
    Schedstat,
}

/// CPU seconds of `root` and all its live descendants.
pub(crate) fn tree_cpu(root: u32, clock: RootClock, ticks: Ticks) -> Result<TreeCpu> {
    let Some(root_stat) = read_stat(root) else {
        bail!("process {root} is gone");
    };
    let mut children: HashMap<u32, Vec<(u32, Stat)>> = HashMap::new();
    for entry in fs::read_dir("/proc").context("read /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = read_stat(pid) {
            children.entry(stat.ppid).or_default().push((pid, stat));
        }
    }
    let root_own = match clock {
        RootClock::Stat => ticks.seconds(root_stat.own),
        RootClock::Schedstat => schedstat_ns(root).map_or(0.0, |ns| ns as f64 / 1e9),
    };
    let mut total = TreeCpu {
        root: root_own + ticks.seconds(root_stat.reaped),
        ..TreeCpu::default()
    };
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for (pid, stat) in children.get(&parent).map(Vec::as_slice).unwrap_or(&[]) {
            let own =
                schedstat_ns(*pid).map_or_else(|| ticks.seconds(stat.own), |ns| ns as f64 / 1e9);
            total.descendants += own + ticks.seconds(stat.reaped);
            total.processes += 1;
            queue.push(*pid);
        }
    }
    Ok(total)
}

/// This process's own CPU seconds (the load generator and the in-process Forgejo double).
pub(crate) fn self_cpu(ticks: Ticks) -> f64 {
    read_stat(std::process::id()).map_or(0.0, |s| ticks.seconds(s.own))
}

/// The pids of the live direct children of `parent`.
pub(crate) fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| read_stat(*pid).is_some_and(|s| s.ppid == parent))
        .collect()
}

/// The IPv4 TCP ports process `pid` listens on: its socket descriptors' inodes
/// looked up in `/proc/<pid>/net/tcp` (state `0A`, LISTEN).
pub(crate) fn listening_ports(pid: u32) -> Result<Vec<u16>> {
    let inodes: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("read /proc/{pid}/fd"))?
        .filter_map(|fd| {
            let target = fs::read_link(fd.ok()?.path()).ok()?;
            let inode = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?;
            Some(inode.to_string())
        })
        .collect();
    let table = fs::read_to_string(format!("/proc/{pid}/net/tcp"))
        .with_context(|| format!("read /proc/{pid}/net/tcp"))?;
    Ok(listening_in(&table, &inodes))
}

/// The local ports of the LISTEN rows of a `/proc/net/tcp` table whose inode is one of `inodes`.
fn listening_in(table: &str, inodes: &[String]) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != "0A" || !inodes.iter().any(|i| i == inode) {
                return None;
            }
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect()
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub(crate) fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kb: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("{field}: {line}"))?;
    Ok(kb * 1024)
}

/// The machine's busy and total CPU ticks (all cores) from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MachineCpu {
    pub(crate) busy: u64,
}

pub(crate) fn machine_cpu() -> MachineCpu {
    let Ok(text) = fs::read_to_string("/proc/stat") else {
        return MachineCpu::default();
    };
    let Some(line) = text.lines().next() else {
        return MachineCpu::default();
    };
    // cpu user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    // already inside user and nice.
    let fields: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    if fields.len() < 8 {
        return MachineCpu::default();
    }
    let idle = fields[3] + fields[4];
    let total: u64 = fields.iter().sum();
    MachineCpu { busy: total - idle }
}

/// `/proc/loadavg`'s three averages.
pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_ports_are_the_listen_rows_of_the_process_sockets() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:A0B1 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 111 1 0 20 4 30 10 -1
   3: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0
";
        let mine = ["111".to_string(), "222".to_string()];
        assert_eq!(listening_in(table, &mine), vec![8080, 41137]);
    }

    #[test]
    fn reads_its_own_stat_and_memory() {
        let me = std::process::id();
        let stat = read_stat(me).unwrap();
        assert!(stat.ppid > 0);
        assert!(status_kb(me, "VmRSS").unwrap() > 0);
        assert!(tree_cpu(me, RootClock::Stat, Ticks::detect()).is_ok());
        assert!(schedstat_ns(me).is_some());
    }
}
