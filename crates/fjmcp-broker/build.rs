//! Records the git revision for `--version` and `/healthz`.

// A build script's settings come from the environment cargo gives it.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FJMCP_GIT_REVISION");
    if let Ok(revision) = std::env::var("FJMCP_GIT_REVISION") {
        println!("cargo:rustc-env=FJMCP_GIT_REVISION={revision}");
        return;
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| s.trim().to_string())
    };
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        // Rebuild when HEAD moves (a commit, a checkout).
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs/heads");
        println!("cargo:rerun-if-changed={dir}/packed-refs");
    }
    let revision = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FJMCP_GIT_REVISION={revision}");
}
