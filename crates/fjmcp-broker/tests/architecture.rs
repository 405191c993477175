//! The invariants of ARCHITECTURE.md that a reading of the source can check:
//! which module may name which dependency, and which way imports go. A change
//! that breaks one fails here with the file and line to look at.

use std::path::{Path, PathBuf};

/// The broker's modules from the bottom up: a module may import only modules
/// of a lower layer (or its own). `main.rs` and `lib.rs` sit above everything.
const LAYERS: &[&[&str]] = &[
    &[
        "clock", "version", "upstream", "crypto", "backoff", "metrics", "shared",
    ],
    &["config", "telemetry"],
    &["store", "forgejo"],
    &["credentials"],
    &["children"],
    &["oauth"],
    &["mcp", "account"],
    &["http"],
    &["server", "cli", "admin"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, with its text.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), &mut out);
    assert!(out.len() > 20, "found the sources");
    out
}

/// The top-level module a source file belongs to (`store/users.rs` → `store`).
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(src()).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Lines of code (not comments) of files in `modules` that mention `needle`.
fn offenders(modules: &[&str], needle: &str) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(path, _)| modules.contains(&module_of(path).as_str()))
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| {
                    let code = line.trim_start();
                    !code.starts_with("//") && code.contains(needle)
                })
                .map(|(n, line)| format!("{}:{}: {}", path.display(), n + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_module_has_a_layer() {
    for (path, _) in sources() {
        let module = module_of(&path);
        if module == "main" || module == "lib" {
            continue;
        }
        assert!(
            layer_of(&module).is_some(),
            "{module} ({}) has no layer in this test: place it",
            path.display()
        );
    }
}

#[test]
fn imports_go_one_way_down_the_layers() {
    let mut wrong = Vec::new();
    for (path, text) in sources() {
        let module = module_of(&path);
        let Some(own) = layer_of(&module) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (target, _) in line.match_indices("crate::") {
                let rest = &line[target + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if let Some(theirs) = layer_of(&name)
                    && theirs > own
                {
                    wrong.push(format!(
                        "{}:{}: {module} imports {name}",
                        path.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "upward imports:\n{}", wrong.join("\n"));
}

#[test]
fn only_the_http_edge_and_its_handlers_know_axum() {
    let below = [
        "clock",
        "version",
        "upstream",
        "crypto",
        "backoff",
        "config",
        "telemetry",
        "store",
        "forgejo",
        "credentials",
        "children",
    ];
    let found = offenders(&below, "axum");
    assert!(
        found.is_empty(),
        "axum below the edge:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_store_knows_sql() {
    let others: Vec<&str> = LAYERS
        .iter()
        .flat_map(|layer| layer.iter().copied())
        .filter(|m| *m != "store")
        .collect();
    let found = offenders(&others, "sqlx");
    assert!(
        found.is_empty(),
        "SQL outside the store:\n{}",
        found.join("\n")
    );
}

#[test]
fn outbound_http_is_the_forgejo_client_and_the_metadata_fetcher_only() {
    let found: Vec<String> = offenders(
        &[
            "clock",
            "version",
            "upstream",
            "crypto",
            "config",
            "telemetry",
            "store",
            "children",
            "oauth",
            "mcp",
            "http",
            "server",
            "cli",
        ],
        "reqwest",
    )
    .into_iter()
    .filter(|line| !line.contains("oauth/client_metadata.rs"))
    .collect();
    assert!(
        found.is_empty(),
        "outbound HTTP elsewhere:\n{}",
        found.join("\n")
    );
}

#[test]
fn forgejo_and_the_store_do_not_know_each_other() {
    let found = offenders(&["forgejo"], "crate::store");
    assert!(found.is_empty(), "{}", found.join("\n"));
    let found = offenders(&["store"], "crate::forgejo");
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_server_loop_is_the_only_user_of_hyper() {
    let others: Vec<&str> = LAYERS
        .iter()
        .flat_map(|layer| layer.iter().copied())
        .filter(|m| *m != "http")
        .collect();
    let mut found = offenders(&others, "hyper");
    found.extend(
        offenders(&["http"], "hyper")
            .into_iter()
            .filter(|line| !line.contains("http/serve.rs")),
    );
    assert!(
        found.is_empty(),
        "hyper outside http/serve.rs:\n{}",
        found.join("\n")
    );
}
