//! Resource limits for a child, set without `unsafe`, in one of two ways.
//!
//! Setting limits between `fork` and `exec` needs `CommandExt::pre_exec`, an `unsafe` function
//! this crate forbids. So a child running as the broker's own user gets its limits with
//! `prlimit(2)` right after the spawn ([`ResourceLimits::apply_to`]), before the broker writes it
//! anything: its program starts under the broker's limits for those microseconds and has its own
//! before its first message. These limits stop a child that runs away while serving (memory,
//! descriptors, CPU, processes); they are not a sandbox against the program's start-up.
//!
//! Setting the limits of another user's process takes `CAP_SYS_RESOURCE`, which containers
//! drop; a child running as another user therefore goes through a wrapper: the broker
//! re-executes itself with a hidden subcommand, [`EXEC_LIMITED`], and that process (already the
//! child: same pid, process group, user, working directory and environment) lowers its own
//! limits with `setrlimit` and then replaces itself with the real program through the safe
//! `CommandExt::exec`. That costs a second `exec` of the broker's binary on every spawn (about
//! a millisecond of a new user's first response), which is why it is not the common path.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use rustix::process::{Pid, Resource, Rlimit, getrlimit, prlimit, setrlimit};

/// The hidden first argument that makes the broker binary act as the limit-setting wrapper.
/// `main` checks for it before parsing the command line, so it never appears in `--help` and
/// needs no configuration.
pub const EXEC_LIMITED: &str = "__exec-limited";

/// Optional per-child resource limits (from configuration). Each one set becomes both the soft
/// and the hard limit, so the child cannot raise it again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Largest virtual address space in bytes (`RLIMIT_AS`): caps a runaway child's memory.
    pub address_space_bytes: Option<u64>,
    /// Most open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// CPU time in seconds (`RLIMIT_CPU`); the kernel kills the child when it is used up.
    pub cpu_seconds: Option<u64>,
    /// Most processes and threads of the child's user (`RLIMIT_NPROC`): stops a fork bomb.
    /// The kernel counts every task of the user, so this suits children running as a
    /// user of their own.
    pub processes: Option<u64>,
    /// The binary that understands [`EXEC_LIMITED`] (the broker itself). `None` means the
    /// running executable, which is right in production; tests, whose executable is the test
    /// harness, pass the broker binary's path.
    pub wrapper: Option<PathBuf>,
}

impl ResourceLimits {
    /// Whether any limit is set, i.e. whether the child must go through the wrapper.
    pub(crate) fn any(&self) -> bool {
        self.address_space_bytes.is_some()
            || self.open_files.is_some()
            || self.cpu_seconds.is_some()
            || self.processes.is_some()
    }

    /// Sets every limit on the process `pid`: a child just spawned as the broker's user, which
    /// inherited the broker's limits. Each is capped at the broker's own hard limit, since
    /// raising a hard limit takes a privilege the broker need not have. A child that has
    /// already exited is not an error here; its start fails on its own.
    pub(crate) fn apply_to(&self, pid: u32) -> io::Result<()> {
        let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return Err(io::Error::other(format!("not a process id: {pid}")));
        };
        for (name, resource, wanted) in self.set() {
            match prlimit(Some(pid), resource, both(capped(resource, wanted))) {
                Ok(_) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "cannot set {name} of the child: {}",
                        io::Error::from(e)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The limits that are set, with the resource each one limits.
    fn set(&self) -> impl Iterator<Item = (&'static str, Resource, u64)> {
        [
            ("RLIMIT_AS", Resource::As, self.address_space_bytes),
            ("RLIMIT_NOFILE", Resource::Nofile, self.open_files),
            ("RLIMIT_CPU", Resource::Cpu, self.cpu_seconds),
            ("RLIMIT_NPROC", Resource::Nproc, self.processes),
        ]
        .into_iter()
        .filter_map(|(name, resource, value)| Some((name, resource, value?)))
    }

    /// The wrapper's arguments (after the wrapper binary itself):
    /// `__exec-limited [--as N] [--nofile N] [--cpu N] [--nproc N] -- program args…`.
    pub(crate) fn wrapper_args(&self, program_and_args: &[String]) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![EXEC_LIMITED.into()];
        for (flag, value) in [
            ("--as", self.address_space_bytes),
            ("--nofile", self.open_files),
            ("--cpu", self.cpu_seconds),
            ("--nproc", self.processes),
        ] {
            if let Some(value) = value {
                args.push(flag.into());
                args.push(value.to_string().into());
            }
        }
        args.push("--".into());
        args.extend(program_and_args.iter().map(OsString::from));
        args
    }
}

/// Why the wrapper could not become the child program. It reports on stderr, which the broker
/// logs and keeps for the start-failure message.
#[derive(Debug, thiserror::Error)]
pub enum ExecLimitedError {
    /// The arguments were not what [`ResourceLimits::wrapper_args`] produces.
    #[error(
        "usage: fjmcp-broker {EXEC_LIMITED} [--as BYTES] [--nofile N] [--cpu SECONDS] [--nproc N] -- PROGRAM [ARGS…]: {0}"
    )]
    Usage(String),
    /// `setrlimit` refused.
    #[error("cannot set {resource}: {source}")]
    SetLimit {
        resource: &'static str,
        source: std::io::Error,
    },
    /// `exec` failed (program not found, not executable, …).
    #[error("cannot run {program}: {source}")]
    Exec {
        program: String,
        source: std::io::Error,
    },
}

impl ExecLimitedError {
    /// The exit status `main` should use, following the shell's convention (127: cannot run
    /// the program; 2: usage; 1: other).
    pub fn exit_code(&self) -> u8 {
        match self {
            ExecLimitedError::Usage(_) => 2,
            ExecLimitedError::SetLimit { .. } => 1,
            ExecLimitedError::Exec { .. } => 127,
        }
    }
}

/// Parsed wrapper arguments.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    limits: Vec<(&'static str, Resource, u64)>,
    program: OsString,
    args: Vec<OsString>,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Plan, ExecLimitedError> {
    let mut args = args.into_iter();
    let mut limits = Vec::new();
    loop {
        let Some(flag) = args.next() else {
            return Err(ExecLimitedError::Usage("missing `--`".into()));
        };
        let (name, resource) = match flag.to_str() {
            Some("--") => break,
            Some("--as") => ("RLIMIT_AS", Resource::As),
            Some("--nofile") => ("RLIMIT_NOFILE", Resource::Nofile),
            Some("--cpu") => ("RLIMIT_CPU", Resource::Cpu),
            Some("--nproc") => ("RLIMIT_NPROC", Resource::Nproc),
            _ => {
                return Err(ExecLimitedError::Usage(format!(
                    "unknown argument {}",
                    flag.to_string_lossy()
                )));
            }
        };
        let value = args
            .next()
            .and_then(|v| v.to_str().and_then(|v| v.parse::<u64>().ok()))
            .ok_or_else(|| ExecLimitedError::Usage(format!("{name} needs a number")))?;
        limits.push((name, resource, value));
    }
    let program = args
        .next()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ExecLimitedError::Usage("missing program".into()))?;
    Ok(Plan {
        limits,
        program,
        args: args.collect(),
    })
}

/// Runs the wrapper: `args` are the arguments after [`EXEC_LIMITED`]. Sets each limit (capped
/// at the current hard limit, since an unprivileged process cannot raise that) and `exec`s the
/// program with the inherited environment, working directory and file descriptors. Returns only
/// on failure; the caller prints the error to stderr and exits with [`ExecLimitedError::exit_code`].
/// It must not write to stdout: that is the child's JSON-RPC channel.
pub fn exec_limited(args: impl IntoIterator<Item = OsString>) -> ExecLimitedError {
    let plan = match parse(args) {
        Ok(plan) => plan,
        Err(e) => return e,
    };
    for (name, resource, wanted) in plan.limits {
        if let Err(e) = setrlimit(resource, both(capped(resource, wanted))) {
            return ExecLimitedError::SetLimit {
                resource: name,
                source: e.into(),
            };
        }
    }
    let source = std::process::Command::new(&plan.program)
        .args(&plan.args)
        .exec();
    ExecLimitedError::Exec {
        program: OsStr::new(&plan.program).to_string_lossy().into_owned(),
        source,
    }
}

/// `wanted`, or this process's hard limit of `resource` if that is lower: an unprivileged
/// process cannot raise it.
fn capped(resource: Resource, wanted: u64) -> u64 {
    match getrlimit(resource).maximum {
        Some(hard) => wanted.min(hard),
        None => wanted,
    }
}

/// `value` as both the soft and the hard limit, so the child cannot raise it again.
fn both(value: u64) -> Rlimit {
    Rlimit {
        current: Some(value),
        maximum: Some(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn wrapper_args_round_trip_through_the_parser() {
        let limits = ResourceLimits {
            address_space_bytes: Some(1 << 30),
            open_files: None,
            cpu_seconds: Some(60),
            processes: Some(512),
            wrapper: None,
        };
        assert!(limits.any());
        let args = limits.wrapper_args(&["prog".into(), "--flag".into(), "--".into()]);
        assert_eq!(args[0], EXEC_LIMITED);
        let plan = parse(args.into_iter().skip(1)).unwrap();
        assert_eq!(
            plan,
            Plan {
                limits: vec![
                    ("RLIMIT_AS", Resource::As, 1 << 30),
                    ("RLIMIT_CPU", Resource::Cpu, 60),
                    ("RLIMIT_NPROC", Resource::Nproc, 512)
                ],
                program: "prog".into(),
                args: os(&["--flag", "--"]),
            }
        );
    }

    #[test]
    fn no_limits_means_nothing_to_apply() {
        assert!(!ResourceLimits::default().any());
        assert_eq!(ResourceLimits::default().set().count(), 0);
    }

    #[test]
    fn the_wrapper_and_prlimit_set_the_same_limits() {
        let limits = ResourceLimits {
            address_space_bytes: Some(1 << 30),
            open_files: Some(64),
            cpu_seconds: None,
            processes: Some(512),
            wrapper: None,
        };
        let plan = parse(limits.wrapper_args(&["prog".into()]).into_iter().skip(1)).unwrap();
        assert_eq!(plan.limits, limits.set().collect::<Vec<_>>());
    }

    #[test]
    fn bad_wrapper_arguments_are_usage_errors() {
        for args in [
            &[][..],
            &["--nofile"],
            &["--nofile", "x", "--", "p"],
            &["--bogus", "1", "--", "p"],
            &["--cpu", "1", "--"],
            &["--cpu", "1", "--", ""],
        ] {
            let e = parse(os(args)).unwrap_err();
            assert!(matches!(e, ExecLimitedError::Usage(_)), "{args:?}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
    }
}
