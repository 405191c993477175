//! `check-config`'s look at the child command: is the program there, and what
//! does `<program> --version` say? Serving would fail every spawn of a program
//! that is missing, so an operator learns it before the first user does.
//!
//! The program is looked up the way a spawn finds it: on the `PATH` children
//! get (the allow-listed value, or the C library's default without one). It
//! runs with the children's inherited environment only — never a Forgejo
//! token or any other secret — no standard input, and a deadline.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The search path `execvp` uses when a child's environment has no `PATH`.
const DEFAULT_PATH: &str = "/bin:/usr/bin";
/// Longest `--version` line reported.
const MAX_VERSION_CHARS: usize = 200;

/// Why the child command cannot be started.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    #[error("`{program}` is not on the children's PATH ({path})")]
    NotOnPath { program: String, path: String },
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("{} is not an executable file", .0.display())]
    NotExecutable(PathBuf),
    #[error("{} cannot be started: {reason}", .path.display())]
    Unstartable { path: PathBuf, reason: String },
}

/// What `--version` showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionAnswer {
    /// Exited 0; the first line it printed (stdout, else stderr), if any.
    Printed(Option<String>),
    /// Exited otherwise (the program may not know `--version`).
    Failed {
        status: String,
        line: Option<String>,
    },
    /// Still running at the deadline; it was killed.
    TimedOut(Duration),
}

/// The program found and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildProbe {
    /// The program as configured (first word of `child_command`).
    pub program: String,
    /// Where it was found.
    pub path: PathBuf,
    /// The `PATH` searched, when the program was looked up there.
    pub searched: Option<String>,
    pub version: VersionAnswer,
}

impl std::fmt::Display for ChildProbe {
    /// Comment lines for `check-config`'s output (TOML comments).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.searched {
            Some(path) => writeln!(
                f,
                "# child_command: `{}` found at {} (children's PATH: {path})",
                self.program,
                self.path.display()
            )?,
            None => writeln!(f, "# child_command: {} exists", self.path.display())?,
        }
        let line = |line: &Option<String>| line.clone().unwrap_or_else(|| "nothing".into());
        match &self.version {
            VersionAnswer::Printed(printed) => writeln!(
                f,
                "# child_command: `{} --version` printed: {}",
                self.program,
                line(printed)
            ),
            VersionAnswer::Failed {
                status,
                line: printed,
            } => writeln!(
                f,
                "# warning: child_command: `{} --version` failed ({status}), printing: {}; check that it is forgejo-mcp",
                self.program,
                line(printed)
            ),
            VersionAnswer::TimedOut(after) => writeln!(
                f,
                "# warning: child_command: `{} --version` did not finish within {} s and was stopped; check that it is forgejo-mcp",
                self.program,
                after.as_secs_f64()
            ),
        }
    }
}

/// Finds the program of `command` (the `child_command` setting) and runs it
/// with `--version` in `inherited_env` (the children's, from the allow-list),
/// for at most `timeout`.
pub async fn probe(
    command: &[String],
    inherited_env: &[(String, String)],
    timeout: Duration,
) -> Result<ChildProbe, ProbeError> {
    let program = command.first().cloned().unwrap_or_default();
    let child_path = inherited_env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map_or(DEFAULT_PATH, |(_, value)| value.as_str());
    let (path, searched) = if program.contains('/') {
        (PathBuf::from(&program), None)
    } else {
        let found = std::env::split_paths(OsStr::new(child_path))
            .map(|dir| dir.join(&program))
            .find(|candidate| is_executable(candidate));
        match found {
            Some(path) => (path, Some(child_path.to_string())),
            None => {
                return Err(ProbeError::NotOnPath {
                    program,
                    path: child_path.to_string(),
                });
            }
        }
    };
    if !path.exists() {
        return Err(ProbeError::Missing(path));
    }
    if !is_executable(&path) {
        return Err(ProbeError::NotExecutable(path));
    }
    let version = run_version(&path, inherited_env, timeout).await?;
    Ok(ChildProbe {
        program,
        path,
        searched,
        version,
    })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

async fn run_version(
    path: &Path,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<VersionAnswer, ProbeError> {
    let child = tokio::process::Command::new(path)
        .arg("--version")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ProbeError::Unstartable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => return Ok(VersionAnswer::TimedOut(timeout)),
        Ok(Err(e)) => {
            return Err(ProbeError::Unstartable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
        Ok(Ok(output)) => output,
    };
    let line = first_line(&output.stdout).or_else(|| first_line(&output.stderr));
    Ok(if output.status.success() {
        VersionAnswer::Printed(line)
    } else {
        VersionAnswer::Failed {
            status: output.status.to_string(),
            line,
        }
    })
}

fn first_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(|line| line.chars().take(MAX_VERSION_CHARS).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `probe` of a command line, with `PATH` as the only inherited variable if given.
    async fn probe_of(
        command: &str,
        path: Option<&str>,
        timeout: Duration,
    ) -> Result<ChildProbe, ProbeError> {
        let env: Vec<(String, String)> = path
            .map(|p| vec![("PATH".to_string(), p.to_string())])
            .unwrap_or_default();
        probe(&shell_words::split(command).unwrap(), &env, timeout).await
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn a_program_on_the_childrens_path_is_found_and_asked_its_version() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "forgejo-mcp",
            "echo; echo \"forgejo-mcp 2.34.1\"",
        );
        let path = format!("/nonexistent:{}", dir.path().display());
        let found = probe_of(
            "forgejo-mcp --transport stdio",
            Some(&path),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(found.path, dir.path().join("forgejo-mcp"));
        assert_eq!(found.searched.as_deref(), Some(path.as_str()));
        assert_eq!(
            found.version,
            VersionAnswer::Printed(Some("forgejo-mcp 2.34.1".into()))
        );
    }

    #[tokio::test]
    async fn missing_or_unusable_programs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        assert_eq!(
            probe_of("forgejo-mcp", Some(&path), Duration::from_secs(10)).await,
            Err(ProbeError::NotOnPath {
                program: "forgejo-mcp".into(),
                path: path.clone()
            })
        );
        let absent = dir.path().join("absent");
        assert_eq!(
            probe_of(&absent.display().to_string(), None, Duration::from_secs(10)).await,
            Err(ProbeError::Missing(absent))
        );
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "not a program").unwrap();
        assert_eq!(
            probe_of(&plain.display().to_string(), None, Duration::from_secs(10)).await,
            Err(ProbeError::NotExecutable(plain.clone()))
        );
        // Executable bits on something the kernel cannot run.
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            probe_of(&plain.display().to_string(), None, Duration::from_secs(10)).await,
            Err(ProbeError::Unstartable { .. })
        ));
    }

    #[tokio::test]
    async fn a_failing_or_hanging_version_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let failing = script(
            dir.path(),
            "failing",
            "echo 'unknown flag: --version' >&2; exit 3",
        );
        let found = probe_of(
            &failing.display().to_string(),
            None,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(
            found.version,
            VersionAnswer::Failed {
                status: "exit status: 3".into(),
                line: Some("unknown flag: --version".into())
            }
        );
        let pid_file = dir.path().join("pid");
        let hanging = script(
            dir.path(),
            "hanging",
            &format!("echo $$ > {}; exec sleep 30", pid_file.display()),
        );
        let deadline = Duration::from_millis(500);
        let found = probe_of(&hanging.display().to_string(), None, deadline)
            .await
            .unwrap();
        assert_eq!(found.version, VersionAnswer::TimedOut(deadline));
        // Killed at the deadline: the process goes away (or is a zombie until reaped).
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
        let gone = || {
            std::fs::read_to_string(&stat)
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(true)
        };
        let mut waited = 0;
        while !gone() && waited < 500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert!(gone(), "the hanging program was killed");
    }
}
