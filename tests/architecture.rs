//! The README's "Architecture" section stays true: it gives every module of
//! the crate its line, and every file or folder it names exists.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text of the README's `## Architecture` section.
fn section(readme: &str) -> &str {
    let start = readme
        .find("\n## Architecture\n")
        .expect("README has a \"## Architecture\" section")
        + 1;
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The crate's top-level modules, as `src/lib.rs` declares them.
fn modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

/// The words of `text` between backticks.
fn quoted(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Whether a quoted word names a file or folder (`src/plan/`, `sql/sqlite.rs`,
/// `compute.rs`), rather than code (`store::open`, `&dyn Store`).
fn is_path(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b))
        && (word.contains('/') || word.ends_with(".rs") || word.ends_with(".json"))
}

/// Every file and folder under `dir`, relative to the repository.
fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        out.push(rel);
        if path.is_dir() {
            walk(&path, root, out);
        }
    }
}

/// Whether `word` names something that exists: from the repository's top,
/// or (written under the line of its module) as the end of a path in `src/`.
fn exists(word: &str, root: &Path, under_src: &[String]) -> bool {
    let word = word.trim_end_matches('/');
    root.join(word).exists()
        || under_src
            .iter()
            .any(|p| p.strip_suffix(word).is_some_and(|s| s.ends_with('/')))
}

fn problems(readme: &str, lib: &str, root: &Path, under_src: &[String]) -> Vec<String> {
    let text = section(readme);
    let mut found = Vec::new();
    for m in modules(lib) {
        let lines = [format!("- `src/{m}.rs`"), format!("- `src/{m}/`")];
        let named = text
            .lines()
            .any(|l| lines.iter().any(|start| l.starts_with(start.as_str())));
        if !named {
            found.push(format!(
                "module `{m}` has no line of its own (start one with {} or {})",
                lines[0], lines[1]
            ));
        }
    }
    for word in quoted(text).into_iter().filter(|w| is_path(w)) {
        if !exists(word, root, under_src) {
            found.push(format!("`{word}` is named but does not exist"));
        }
    }
    found
}

#[test]
fn the_architecture_section_names_every_module_and_only_what_exists() {
    let root = repo();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let mut under_src = Vec::new();
    walk(&root.join("src"), &root, &mut under_src);
    let found = problems(&readme, &lib, &root, &under_src);
    assert!(
        found.is_empty(),
        "README.md, ## Architecture:\n{}",
        found.join("\n")
    );
}

/// The check itself sees a missing module and a path that is gone.
#[test]
fn a_missing_module_and_a_stale_path_are_found() {
    let root = repo();
    let under_src = vec![
        "src/plan".to_string(),
        "src/plan/compute.rs".to_string(),
        "src/store".to_string(),
        "src/store/sql".to_string(),
        "src/store/sql/sqlite.rs".to_string(),
    ];
    let lib = "pub mod plan;\npub mod store;\nmod mail;\n";
    let readme = "# x\n\n## Architecture\n\nThe path: `plan/` → `store/`.\n\n\
                  - `src/plan/`: `compute.rs`, `render.rs`.\n\
                  - `src/store/`: `sql/sqlite.rs` and `store::open`.\n\n## Design\n\n- `src/mail/`\n";
    assert_eq!(
        problems(readme, lib, &root, &under_src),
        [
            "module `mail` has no line of its own (start one with - `src/mail.rs` or - `src/mail/`)",
            "`render.rs` is named but does not exist",
        ]
    );
    let fixed = readme
        .replace(", `render.rs`", "")
        .replace("\n\n## Design", "\n- `src/mail/`: mail.\n\n## Design");
    assert!(problems(&fixed, lib, &root, &under_src).is_empty());
}
