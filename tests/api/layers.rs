//! The walls of `src/` (lib.rs, "Layout"), read from the code itself: every `crate::…` a
//! module names is at its own layer or below, axum and the api stay in `api/` and `app.rs`,
//! and only `main.rs` and `app.rs` read the whole `Config`.

use std::path::{Path, PathBuf};

/// Each top-level module's layer; a module may name only modules of its layer or below.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("metrics", 0),
    ("names", 0),
    ("ids", 0),
    ("loot", 0),
    ("auth", 1),
    ("fairness", 1),
    ("receipts", 1),
    ("seeds", 1),
    ("ledger", 1),
    ("shards", 1),
    ("redis_client", 1),
    ("engine", 2),
    ("claims", 2),
    ("zones", 2),
    ("loot_tables", 2),
    ("verify", 2),
    ("audit", 2),
    ("moves", 2),
    ("rebalance", 2),
    ("transcripts", 2),
    ("realtime", 3),
    ("leaderboards", 3),
    ("ratelimit", 3),
    ("local", 4),
    ("api", 4),
    ("probe", 5),
    ("config", 5),
    ("app", 6),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/realtime/hub.rs` → `realtime`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

/// The code of a file without comment lines (docs may name anything).
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("read source");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::name` the code names.
fn crate_refs(code: &str) -> Vec<String> {
    code.match_indices("crate::")
        .filter(|(i, _)| {
            // Not `trove_crate::` or the like: a path that starts here.
            !code[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        })
        .map(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn modules_only_import_their_own_layer_or_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let own = layer(&module).unwrap_or_else(|| panic!("{module} has no layer in LAYERS"));
        let code = code(file);
        for used in crate_refs(&code) {
            // Re-exports at the crate root (`crate::Engine`, `crate::Result`) are below all.
            let Some(theirs) = layer(&used).or(match used.as_str() {
                "Engine" => Some(2),
                "Error" | "Result" => Some(0),
                _ => None,
            }) else {
                panic!("{} names crate::{used}, which has no layer", file.display());
            };
            if theirs > own && used != module {
                wrong.push(format!("{} ({module}) imports {used}", file.display()));
            }
        }
        let in_api = module == "api" || module == "app";
        // The probe serves its own tiny metrics page with axum, outside Trove's API.
        if !in_api && module != "probe" && code.contains("axum") {
            wrong.push(format!(
                "{} uses axum outside api/ and app.rs",
                file.display()
            ));
        }
        if module != "app" && module != "config" && code.contains("crate::config") {
            wrong.push(format!("{} reads the whole Config", file.display()));
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_layer_check_sees_imports() {
    let refs = crate_refs("use crate::api::AppState;\nlet x = crate::shards::shard_index(a);");
    assert_eq!(refs, ["api", "shards"]);
    assert!(layer("api") > layer("realtime") && layer("realtime") > layer("ledger"));
}
