//! Finding the workspace's fixture child binary for tests that run real children.

use std::path::PathBuf;

/// `target/<profile>/fixture-child`, next to this test's own `deps/` directory.
/// `./scripts/test` (`cargo test --workspace`) builds it; a lone
/// `cargo test -p fjmcp-broker` may not, hence the message.
pub fn fixture_child() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile_dir.join("fixture-child");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p fixture-child` (./scripts/test does)",
        path.display()
    );
    path
}

/// `PATH` as the test runs with it, for children that need to find programs.
pub fn path_env() -> (String, String) {
    ("PATH".into(), std::env::var("PATH").unwrap_or_default())
}

/// The broker binary, which doubles as the resource-limit wrapper.
pub fn broker_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fjmcp-broker"))
}
