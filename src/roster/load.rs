//! Finding roster files, reading them within limits, parsing each into the
//! model, and merging them. Reading is the only I/O; `parse_file` and
//! `merge` are pure so that plan and the server reuse them.

use super::model::{Group, Partner, Policy, RosterFile};
use super::schema;
use super::yaml::{self, Node, Pos};
use crate::finding::{Code, Finding};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Files larger than this are refused before they are read. A roster of
/// 100,000 partners in 5,000 groups is about 20 MiB.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A roster file as read from disk.
#[derive(Debug, Clone)]
pub struct Input {
    /// The path as shown to users (as given, or below the directory given).
    pub name: String,
    /// The path relative to the roster directory, with `/`, for `restrictions`.
    pub rel: String,
    pub bytes: Vec<u8>,
}

/// A parsed roster file, kept for positions and snippets.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub rel: String,
    pub text: String,
    pub tree: Option<Node>,
}

/// Where an item was declared: file and index in that file's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub file: usize,
    pub index: usize,
}

#[derive(Debug, Clone)]
pub struct Entry<T> {
    pub item: T,
    pub at: Origin,
}

/// The merged desired state of all files, with where each item came from.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    pub files: Vec<SourceFile>,
    pub groups: Vec<Entry<Group>>,
    pub partners: Vec<Entry<Partner>>,
    /// The policy in force: the one block, or the defaults.
    pub policy: Policy,
    /// Where the policy block is, if there is one.
    pub policy_at: Option<usize>,
}

/// Which list an [`Origin`] indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Groups,
    Partners,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Section::Groups => "groups",
            Section::Partners => "partners",
        }
    }
}

impl Roster {
    /// The file name and position of a field of an item (or of the item
    /// itself with an empty path). Falls back to the item, then the file start.
    pub fn pos(&self, section: Section, at: Origin, path: &[&str]) -> (&str, Pos) {
        let file = &self.files[at.file];
        let idx = at.index.to_string();
        let item = file
            .tree
            .as_ref()
            .and_then(|t| t.at([section.key(), idx.as_str()]));
        let pos = item
            .and_then(|n| n.at(path.iter().copied()))
            .or(item)
            .map_or(
                Pos {
                    line: 1,
                    column: 1,
                    offset: 0,
                },
                |n| n.pos,
            );
        (&file.name, pos)
    }

    /// The position of a key (not its value) of an item, e.g. the policy's `restrictions:`.
    pub fn key_pos(&self, file: usize, path: &[&str], key: &str) -> (&str, Pos) {
        let f = &self.files[file];
        let pos = f
            .tree
            .as_ref()
            .and_then(|t| t.at(path.iter().copied()))
            .and_then(|n| n.entry(key))
            .map_or(
                Pos {
                    line: 1,
                    column: 1,
                    offset: 0,
                },
                |(k, _)| k.pos,
            );
        (&f.name, pos)
    }
}

/// Expand the command-line arguments into roster files, in path order.
/// With no arguments: `roster.yaml` or `roster/` in `cwd`.
pub fn discover(args: &[PathBuf], cwd: &Path) -> Result<Vec<(PathBuf, String, String)>, Finding> {
    let defaults;
    let args = if args.is_empty() {
        let file = cwd.join("roster.yaml");
        let dir = cwd.join("roster");
        defaults = if file.is_file() {
            vec![PathBuf::from("roster.yaml")]
        } else if dir.is_dir() {
            vec![PathBuf::from("roster")]
        } else {
            return Err(Finding::error(
                Code::NoRoster,
                ".",
                Pos::default(),
                "no roster given, and neither roster.yaml nor roster/ exists in this directory",
            )
            .help("name a roster file or directory: roster check path/to/roster.yaml"));
        };
        &defaults[..]
    } else {
        args
    };
    let mut out = Vec::new();
    for arg in args {
        let full = cwd.join(arg);
        let meta = std::fs::metadata(&full).map_err(|e| {
            Finding::error(
                Code::NotFound,
                &arg.display().to_string(),
                Pos::default(),
                format!("cannot read `{}`: {}", arg.display(), io_reason(&e)),
            )
            .help("check the path; a roster is a .yaml file or a directory of them")
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(&full, &mut found).map_err(|e| {
                Finding::error(
                    Code::IoError,
                    &arg.display().to_string(),
                    Pos::default(),
                    format!("cannot list `{}`: {}", arg.display(), io_reason(&e)),
                )
            })?;
            found.sort();
            if found.is_empty() {
                return Err(Finding::error(
                    Code::NoRosterFiles,
                    &arg.display().to_string(),
                    Pos::default(),
                    format!("directory `{}` holds no .yaml or .yml files", arg.display()),
                )
                .help(
                    "add a roster file that starts with `version: 1`, or name another directory",
                ));
            }
            for path in found {
                let rel = path
                    .strip_prefix(&full)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let name = arg.join(path.strip_prefix(&full).unwrap_or(&path));
                out.push((path.clone(), name.display().to_string(), rel));
            }
        } else {
            let rel = arg.file_name().map_or_else(
                || arg.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            out.push((full, arg.display().to_string(), rel));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // .git, editor swap files
        }
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Read the discovered files, refusing any over [`MAX_FILE_BYTES`] before reading it.
pub fn read(files: Vec<(PathBuf, String, String)>) -> (Vec<Input>, Vec<Finding>) {
    let mut inputs = Vec::new();
    let mut findings = Vec::new();
    for (path, name, rel) in files {
        let too_big = |size: u64| {
            Finding::error(
                Code::FileTooLarge,
                &name,
                Pos::default(),
                format!(
                    "file is {size} bytes; roster files may be at most {MAX_FILE_BYTES} bytes (64 MiB)"
                ),
            )
            .help("split the roster into several files in a directory")
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                findings.push(too_big(m.len()));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                findings.push(Finding::error(
                    Code::IoError,
                    &name,
                    Pos::default(),
                    format!("cannot read file: {}", io_reason(&e)),
                ));
                continue;
            }
        }
        // Read at most one byte past the limit, in case the file grew.
        use std::io::Read;
        let mut bytes = Vec::new();
        let res = std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
        match res {
            Ok(n) if n as u64 > MAX_FILE_BYTES => findings.push(too_big(n as u64)),
            Ok(_) => inputs.push(Input { name, rel, bytes }),
            Err(e) => findings.push(Finding::error(
                Code::IoError,
                &name,
                Pos::default(),
                format!("cannot read file: {}", io_reason(&e)),
            )),
        }
    }
    (inputs, findings)
}

/// Line and column (1-based, in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> Pos {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        offset: u32::try_from(offset).unwrap_or(u32::MAX),
    }
}

/// Decode, parse and validate one file. Pure.
pub fn parse_file(input: Input, order: usize) -> (SourceFile, Option<RosterFile>, Vec<Finding>) {
    let mut findings = Vec::new();
    let Input { name, rel, bytes } = input;
    let mut source = SourceFile {
        name: name.clone(),
        rel,
        text: String::new(),
        tree: None,
    };
    let err = |code, pos, msg: String| Finding::error(code, &name, pos, msg).in_file(order);

    // Text checks that YAML parsers report poorly or not at all.
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let prefix = String::from_utf8_lossy(&bytes[..valid]);
            let mut pos = line_col(&prefix, valid);
            pos.offset = u32::MAX; // no snippet: the line is not text
            findings.push(
                err(Code::NotUtf8, pos, "file is not valid UTF-8 text".into())
                    .help("save the file as UTF-8"),
            );
            return (source, None, findings);
        }
    };
    let text = text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text);
    if let Some(i) = text.find('\0') {
        let mut pos = line_col(&text, i);
        pos.offset = u32::MAX;
        findings.push(
            err(
                Code::NulByte,
                pos,
                "file contains a NUL byte; it is not a text file".into(),
            )
            .help("remove the NUL byte or check that this is the right file"),
        );
        return (source, None, findings);
    }
    if let Some(pos) = tab_indent(&text) {
        findings.push(
            err(Code::TabIndent, pos, "tab character in indentation".into())
                .help("YAML indentation must use spaces; replace the tab with spaces"),
        );
        source.text = text;
        return (source, None, findings);
    }
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if blank {
        findings.push(
            err(Code::EmptyFile, Pos::default(), "file is empty".into()).help(
                "a roster file starts with `version: 1`; delete the file if it is not needed",
            ),
        );
        source.text = text;
        return (source, None, findings);
    }

    let tree = match yaml::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            let pos = e.pos.unwrap_or_default();
            let f = if e.budget {
                err(
                    Code::YamlTooComplex,
                    pos,
                    format!("YAML refused: {}", e.message),
                )
                .help("roster files may not expand aliases into huge documents (\"billion laughs\"); write the data out plainly")
            } else {
                err(Code::YamlSyntax, pos, format!("YAML syntax error: {}", e.message))
                    .help("fix the YAML at this position; quote values that contain `: ` or start with a special character")
            };
            findings.push(f);
            source.text = text;
            return (source, None, findings);
        }
    };
    source.text = text;
    // A file the schema holds valid by its shape (see
    // `schema::valid_by_shape`) is read straight from the tree; any other,
    // or one the tree read refuses, through its JSON form, which gives the
    // findings.
    let direct = schema::valid_by_shape(&tree)
        .then(|| RosterFile::deserialize(&tree).ok())
        .flatten();
    let (mut schema_findings, typed) = match direct {
        Some(file) => (Vec::new(), Ok(file)),
        None => via_json(&tree, &name),
    };
    for f in &mut schema_findings {
        f.file_order = order;
    }
    findings.append(&mut schema_findings);
    source.tree = Some(tree);
    if findings.iter().any(Finding::is_error) {
        return (source, None, findings);
    }
    match typed {
        Ok(file) => (source, Some(file), findings),
        Err(e) => {
            // The schema is generated from these types, so this means they drifted.
            findings.push(err(
                Code::Invalid,
                Pos::default(),
                format!("cannot read roster: {e}"),
            ));
            (source, None, findings)
        }
    }
}

/// The schema's findings on a file and its typed form, both from its JSON form.
fn via_json(tree: &Node, name: &str) -> (Vec<Finding>, Result<RosterFile, serde_json::Error>) {
    let json = tree.to_json();
    // Validation and typed extraction read the same value: run them side by side.
    std::thread::scope(|s| {
        let typed = s.spawn(|| RosterFile::deserialize(&json));
        let mut found = Vec::new();
        schema::validate(tree, &json, name, &mut found);
        let typed = typed
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (found, typed)
    })
}

/// The first tab in a line's leading whitespace (tabs inside values are fine).
fn tab_indent(text: &str) -> Option<Pos> {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let lead = line.len() - line.trim_start_matches([' ', '\t', '-']).len();
        if let Some(col) = line[..lead].find('\t') {
            return Some(Pos {
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                column: u32::try_from(col + 1).unwrap_or(u32::MAX),
                offset: u32::try_from(offset + col).unwrap_or(u32::MAX),
            });
        }
        offset += line.len();
    }
    None
}

/// Merge parsed files into one roster. A second policy block is an error.
pub fn merge(parsed: Vec<(SourceFile, Option<RosterFile>)>, findings: &mut Vec<Finding>) -> Roster {
    let mut roster = Roster::default();
    for (i, (source, file)) in parsed.into_iter().enumerate() {
        roster.files.push(source);
        let Some(file) = file else { continue };
        for (index, item) in file.groups.into_iter().enumerate() {
            roster.groups.push(Entry {
                item,
                at: Origin { file: i, index },
            });
        }
        for (index, item) in file.partners.into_iter().enumerate() {
            roster.partners.push(Entry {
                item,
                at: Origin { file: i, index },
            });
        }
        if let Some(policy) = file.policy {
            if let Some(first) = roster.policy_at {
                let first_name = roster.files[first].name.clone();
                let (name, pos) = roster.key_pos(i, &[], "policy");
                findings.push(
                    Finding::error(
                        Code::DuplicatePolicy,
                        name,
                        pos,
                        format!(
                            "a second `policy:` block; the policy is already set in {first_name}"
                        ),
                    )
                    .help("keep one policy block, in one file")
                    .in_file(i),
                );
            } else {
                roster.policy = policy;
                roster.policy_at = Some(i);
            }
        }
    }
    roster
}
