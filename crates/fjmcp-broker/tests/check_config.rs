//! `fjmcp-broker check-config` and the child command: found on the children's
//! PATH and asked its `--version` with no secret in sight, or a configuration
//! error naming `child_command`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use support::broker::command;

async fn check_config(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let mut cmd = command(dir);
    cmd.arg("check-config").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("check-config finishes")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A stand-in `forgejo-mcp` in `dir` that records its arguments and
/// environment beside itself, then runs `then`.
fn fake_child(dir: &Path, then: &str) {
    let path = dir.join("forgejo-mcp");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$@\" > {dir}/args\nenv > {dir}/env\n{then}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn the_child_is_found_on_the_childrens_path_and_asked_its_version_without_secrets() {
    let state = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    fake_child(bin.path(), "echo 'forgejo-mcp 2.34.1'");
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let (code, stdout, stderr) = check_config(state.path(), &[], &[("PATH", &path)]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "# child_command: `forgejo-mcp` found at {}/forgejo-mcp (children's PATH: {path})",
            bin.path().display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("# child_command: `forgejo-mcp --version` printed: forgejo-mcp 2.34.1"),
        "{stdout}"
    );
    assert!(stdout.ends_with("# configuration is valid\n"));
    // Only --version, and only the children's environment: no broker setting, no secret.
    assert_eq!(
        std::fs::read_to_string(bin.path().join("args"))
            .unwrap()
            .trim(),
        "--version"
    );
    let env = std::fs::read_to_string(bin.path().join("env")).unwrap();
    assert!(!env.contains("forgejo-client-secret-value"), "{env}");
    assert!(
        !env.contains("FJMCP_") && !env.contains("FORGEJO_"),
        "{env}"
    );
    assert!(env.contains(&format!("PATH={path}")), "{env}");

    // The real fixture child, named by its full path.
    let fixture = support::children::fixture_child();
    let (code, stdout, stderr) = check_config(
        state.path(),
        &["--child-command", &fixture.display().to_string()],
        &[],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("# child_command: {} exists", fixture.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("--version` printed: fixture-child "),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_missing_child_is_a_configuration_error_naming_the_setting() {
    let state = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().display().to_string();
    let (code, stdout, stderr) = check_config(state.path(), &[], &[("PATH", &path)]).await;
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "child_command: `forgejo-mcp` is not on the children's PATH ({path})"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("FJMCP_CHILD_COMMAND") && stderr.contains("Installing forgejo-mcp"),
        "{stderr}"
    );
    assert!(!stdout.contains("configuration is valid"));

    let absent = empty.path().join("bin/forgejo-mcp");
    let (code, _, stderr) = check_config(
        state.path(),
        &[],
        &[(
            "FJMCP_CHILD_COMMAND",
            &format!("{} --transport stdio", absent.display()),
        )],
    )
    .await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(&format!(
            "child_command: {} does not exist",
            absent.display()
        )),
        "{stderr}"
    );

    // Checking a configuration meant for another machine.
    let (code, stdout, stderr) =
        check_config(state.path(), &["--skip-child-check"], &[("PATH", &path)]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("# child_command: not checked (--skip-child-check)"));
}

#[tokio::test]
async fn a_child_whose_version_fails_is_a_warning_not_an_error() {
    let state = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    fake_child(
        bin.path(),
        "echo 'flag provided but not defined: -version' >&2; exit 2",
    );
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let (code, stdout, stderr) = check_config(state.path(), &[], &[("PATH", &path)]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(
            "# warning: child_command: `forgejo-mcp --version` failed (exit status: 2), printing: flag provided but not defined: -version"
        ),
        "{stdout}"
    );
}
