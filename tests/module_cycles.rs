//! The crate's modules form no import cycle.
//!
//! Granularity: one node per source file (`src/store/mod.rs` is `store`,
//! `src/store/scim/commit.rs` is `store::scim::commit`). Inline modules
//! (`mod tests { .. }`, `mod pool { .. }`) belong to the file that holds them;
//! they only matter for what `self::` and `super::` mean inside them.
//!
//! Edges: every path a file names that leads into the crate — `use crate::..`,
//! `use super::..`, `use self::..`, a child module's name (`sqlite::open(..)`),
//! and the same forms written inline in code (`crate::report::line(..)`). A path
//! points at the deepest file module it walks through, so naming a re-export
//! (`crate::store::Account`) is an edge to the module that re-exports it.
//! A `mod child;` declaration is not an edge, and neither is a path from a
//! module up to one of its own ancestors (`use super::Finding` in
//! `check::rules`, `crate::store::Account` in `store::scim`): a parent declares
//! its children and re-exports their items, and a child builds on what its
//! parent offers. Every other path counts: a parent calling into its child,
//! siblings (`serve::attrs` and `serve::resources`), modules of different trees
//! (`roster::load` and `check::finding`). So `scim::resource` naming `store`,
//! which calls into `store::scim`, which names `scim::resource`, is a cycle.
//!
//! The test fails listing every cycle it finds (one per strongly connected
//! component, with the edges and the lines that make it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Source text with comments, string and char literals blanked out.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let keep_newlines = |out: &mut Vec<u8>, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { b'\n' } else { b' ' });
        }
    };
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            let end = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p);
            keep_newlines(&mut out, &b[i..end]);
            i = end;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            let start = i;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            keep_newlines(&mut out, &b[start..i]);
        } else if (c == b'r' || (c == b'b' && b.get(i + 1) == Some(&b'r')))
            && (i == 0 || !is_ident(b[i - 1]))
            && {
                let j = if c == b'b' { i + 2 } else { i + 1 };
                let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
                b.get(j + hashes) == Some(&b'"')
            }
        {
            let j = if c == b'b' { i + 2 } else { i + 1 };
            let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
            let body = j + hashes + 1;
            let mut close = b"\"".to_vec();
            close.extend(std::iter::repeat_n(b'#', hashes));
            let end = b[body..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(b.len(), |p| body + p + close.len());
            keep_newlines(&mut out, &b[i..end]);
            i = end;
        } else if c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            keep_newlines(&mut out, &b[start..i]);
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                let end = b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map_or(b.len(), |p| i + 2 + p + 1);
                keep_newlines(&mut out, &b[i..end]);
                i = end;
            } else if let Some(len) = std::str::from_utf8(&b[i + 1..])
                .ok()
                .and_then(|s| s.chars().next())
                .map(char::len_utf8)
                .filter(|len| b.get(i + 1 + len) == Some(&b'\''))
            {
                keep_newlines(&mut out, &b[i..i + len + 2]);
                i += len + 2;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Path, // ::
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if is_ident(c) || c >= 0x80 {
            let start = i;
            while i < b.len() && (is_ident(b[i]) || b[i] >= 0x80) {
                i += 1;
            }
            let word = &src[start..i];
            let word = word.strip_prefix("r#").unwrap_or(word);
            out.push((Tok::Ident(word.to_string()), line));
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((
                match c {
                    b'{' => Tok::Open,
                    b'}' => Tok::Close,
                    b',' => Tok::Comma,
                    b';' => Tok::Semi,
                    b'*' => Tok::Star,
                    _ => Tok::Other,
                },
                line,
            ));
            i += 1;
        }
    }
    out
}

/// The paths of one `use` tree starting at `toks[*i]`, ending after its `;`.
fn use_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    while *i < toks.len() {
        match &toks[*i].0 {
            Tok::Ident(w) if w == "as" => {
                *i += 2;
            }
            Tok::Ident(w) => {
                path.push(w.clone());
                *i += 1;
            }
            Tok::Path | Tok::Star => *i += 1,
            Tok::Open => {
                *i += 1;
                loop {
                    use_tree(toks, i, &path, out);
                    match toks.get(*i).map(|t| &t.0) {
                        Some(Tok::Comma) => {
                            *i += 1;
                            if toks.get(*i).map(|t| &t.0) == Some(&Tok::Close) {
                                *i += 1;
                                break;
                            }
                        }
                        Some(Tok::Close) => {
                            *i += 1;
                            break;
                        }
                        _ => break,
                    }
                }
                return;
            }
            Tok::Comma | Tok::Close | Tok::Semi | Tok::Other => break,
        }
    }
    if path.last().is_some_and(|s| s == "self") {
        path.pop();
    }
    out.push(path);
}

struct Crate {
    /// File modules, by path ("" is the crate root).
    files: BTreeMap<Vec<String>, PathBuf>,
}

impl Crate {
    fn load(src: &Path) -> Crate {
        let mut files = BTreeMap::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let rel = path.strip_prefix(src).unwrap().with_extension("");
                    let mut segs: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    if segs.last().is_some_and(|s| s == "mod") {
                        segs.pop();
                    }
                    if segs == ["lib"] {
                        segs.clear();
                    }
                    if segs == ["main"] {
                        // The binary is its own crate: it reaches the library by name.
                        continue;
                    }
                    files.insert(segs, path);
                }
            }
        }
        Crate { files }
    }

    fn is_module(&self, path: &[String]) -> bool {
        self.files.contains_key(path)
    }

    /// The file module a path leads into, from module `here` (file + inline
    /// modules) inside file module `file`.
    fn resolve(&self, file: &[String], here: &[String], path: &[String]) -> Option<Vec<String>> {
        let mut segs = path.iter();
        let mut at: Vec<String> = match path.first()?.as_str() {
            "crate" => {
                segs.next();
                Vec::new()
            }
            "self" | "super" => here.to_vec(),
            first => {
                let mut child = here.to_vec();
                child.push(first.to_string());
                if !self.is_module(&child) {
                    return None;
                }
                here.to_vec()
            }
        };
        let mut segs = segs.peekable();
        while let Some(s) = segs.peek() {
            match s.as_str() {
                "self" => {}
                "super" => {
                    at.pop()?;
                }
                _ => break,
            }
            segs.next();
        }
        // Deepest file module on the path (inline modules fold into their file).
        let mut target = if at.starts_with(file) {
            file.to_vec()
        } else {
            at.clone()
        };
        while !self.is_module(&target) {
            target.pop()?;
        }
        for s in segs {
            at.push(s.clone());
            if self.is_module(&at) {
                target = at.clone();
            } else {
                break;
            }
        }
        Some(target)
    }
}

type Edges = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

fn edges(krate: &Crate) -> Edges {
    let mut edges: Edges = BTreeMap::new();
    for (file, path) in &krate.files {
        let src = std::fs::read_to_string(path).unwrap();
        let toks = tokens(&strip(&src));
        let shown = path.display().to_string();
        let mut add = |to: Vec<String>, line: usize| {
            // A path up to one's own ancestor is how a child reaches the items its
            // parent declares or re-exports: not an edge (see the top of the file).
            if &to != file && !to.is_empty() && !file.starts_with(&to) {
                let at = edges
                    .entry(name(file))
                    .or_default()
                    .entry(name(&to))
                    .or_default();
                let line = format!("{shown}:{line}");
                if !at.contains(&line) {
                    at.push(line);
                }
            }
        };
        // Inline modules: (name, brace depth at which their body closes).
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0;
        let mut i = 0;
        while i < toks.len() {
            let here: Vec<String> = file
                .iter()
                .cloned()
                .chain(inline.iter().map(|(n, _)| n.clone()))
                .collect();
            match &toks[i].0 {
                Tok::Open => {
                    depth += 1;
                    i += 1;
                }
                Tok::Close => {
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                    depth -= 1;
                    i += 1;
                }
                Tok::Ident(w) if w == "mod" => {
                    if let (Some((Tok::Ident(n), _)), Some((Tok::Open, _))) =
                        (toks.get(i + 1), toks.get(i + 2))
                    {
                        inline.push((n.clone(), depth + 1));
                        i += 2;
                    } else {
                        i += 3; // `mod name;`: a declaration, not a use
                    }
                }
                Tok::Ident(w) if w == "use" => {
                    let line = toks[i].1;
                    i += 1;
                    if toks.get(i).map(|t| &t.0) == Some(&Tok::Path) {
                        i += 1;
                    }
                    let mut paths = Vec::new();
                    use_tree(&toks, &mut i, &[], &mut paths);
                    for p in paths {
                        if let Some(to) = krate.resolve(file, &here, &p) {
                            add(to, line);
                        }
                    }
                }
                Tok::Ident(w) if i == 0 || toks[i - 1].0 != Tok::Path => {
                    let line = toks[i].1;
                    let mut p = vec![w.clone()];
                    let mut j = i + 1;
                    while let (Some((Tok::Path, _)), Some((Tok::Ident(n), _))) =
                        (toks.get(j), toks.get(j + 1))
                    {
                        p.push(n.clone());
                        j += 2;
                    }
                    if p.len() > 1
                        && let Some(to) = krate.resolve(file, &here, &p)
                    {
                        add(to, line);
                    }
                    i = j;
                }
                _ => i += 1,
            }
        }
    }
    edges
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a Edges,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        if let Some(next) = s.edges.get(v) {
            for w in next.keys() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let l = s.low[w].min(s.low[v]);
                    s.low.insert(v, l);
                } else if s.on.contains(w) {
                    let l = s.index[w].min(s.low[v]);
                    s.low.insert(v, l);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_module_imports_from_a_module_that_imports_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let krate = Crate::load(&src);
    assert!(
        krate.files.len() > 10,
        "found only {} modules under {}",
        krate.files.len(),
        src.display()
    );
    let edges = edges(&krate);
    let found = cycles(&edges);
    let mut report = String::new();
    for comp in &found {
        report.push_str(&format!("cycle among {}:\n", comp.join(", ")));
        for from in comp {
            for (to, at) in &edges[from] {
                if comp.contains(to) {
                    report.push_str(&format!("  {from} -> {to}  ({})\n", at.join(", ")));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "{} import cycle(s):\n{report}",
        found.len()
    );
}

/// The scanner itself: it sees each form of path, ignores comments and
/// strings, and finds a planted cycle.
#[test]
fn the_scanner_sees_uses_and_finds_a_planted_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\nmod d;\n").unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "mod inner;\n// use crate::d::X;\nconst S: &str = \"crate::d::Y\";\nuse crate::{b::{self, B}, c::C as D};\n\
         fn f() { let _ = inner::g(); }\n#[cfg(test)]\nmod tests { use super::f; }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("a/inner.rs"),
        "pub fn g() -> char { let _ = '\"'; super::f2() }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub struct B;\nfn h() { crate::c::run(); }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("c.rs"),
        "pub struct C;\npub fn run<'a>(_: &'a str) { let _ = crate::d::ok(); }\n",
    )
    .unwrap();
    std::fs::write(src.join("d.rs"), "pub fn ok() {}\n").unwrap();
    let krate = Crate::load(src);
    let edges = edges(&krate);
    let targets = |m: &str| {
        edges
            .get(m)
            .map(|t| t.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    // a::inner -> a is a child reaching up to its parent: not an edge.
    assert_eq!(targets("a"), ["a::inner", "b", "c"]);
    assert_eq!(targets("a::inner"), Vec::<String>::new());
    assert_eq!(targets("b"), ["c"]);
    assert_eq!(targets("c"), ["d"]);
    assert!(cycles(&edges).is_empty(), "{edges:?}");

    // d -> b closes b -> c -> d.
    std::fs::write(src.join("d.rs"), "pub fn ok() { use crate::b::B; }\n").unwrap();
    let edges = self::edges(&Crate::load(src));
    assert_eq!(
        cycles(&edges),
        [vec!["b".to_string(), "c".to_string(), "d".to_string()]]
    );

    // Through a parent: a -> a::inner -> b, and b -> a.
    std::fs::write(src.join("d.rs"), "pub fn ok() {}\n").unwrap();
    std::fs::write(
        src.join("a/inner.rs"),
        "fn g() { self::super::super::b::h(); }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub struct B;\nfn h() { let _ = crate::a::f; }\n",
    )
    .unwrap();
    let edges = self::edges(&Crate::load(src));
    assert_eq!(
        cycles(&edges),
        [vec![
            "a".to_string(),
            "a::inner".to_string(),
            "b".to_string()
        ]]
    );
}
