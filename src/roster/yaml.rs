//! The YAML adapter: the only file that names the YAML crate.
//!
//! A roster file is parsed into a tree of [`Node`]s that keeps the line and
//! column of every key and value, so that every later finding (schema,
//! references, policy) can point into the file. Budgets bound the work a
//! hostile file can cause (alias bombs, deep nesting) before any of it is
//! allocated.

mod de;
mod fast;

use granit_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::{HashMap, HashSet};

pub use crate::finding::Pos;

/// A YAML node with the position where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A syntax error, budget breach or other failure to read YAML.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub pos: Option<Pos>,
    pub message: String,
    /// True when the input was refused for exceeding a budget (alias bomb, nesting).
    pub budget: bool,
}

/// Values that aliases may expand to, in all: anchors are for sharing a
/// few values, not for multiplying a document ("billion laughs").
pub const MAX_ALIAS_NODES: usize = 10_000;
/// Nesting a roster never needs (it has four levels).
pub const MAX_DEPTH: usize = 64;
/// Files above this size are parsed in slices on all cores (see [`parallel`]).
const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// Parse one YAML document into a positioned tree.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    if text.len() >= PARALLEL_MIN_BYTES
        && let Some(node) = parallel(text)
    {
        return Ok(node);
    }
    parse_at(text, Base::default())
}

/// Where a slice of the file starts, added to every position parsed in it.
#[derive(Clone, Copy, Default)]
struct Base {
    pub line: u32,
    pub offset: u32,
}

fn pos(span: &Span, base: Base) -> Pos {
    let m = span.start;
    Pos {
        line: base.line + u32::try_from(m.line()).unwrap_or(u32::MAX - base.line),
        column: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
        offset: base.offset
            + m.byte_offset()
                .and_then(|b| u32::try_from(b).ok())
                .unwrap_or(0),
    }
}

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    Map(
        Pos,
        usize,
        Vec<(Node, Node)>,
        Option<Node>,
        Option<HashSet<String>>,
    ),
}

fn err(pos: Option<Pos>, message: impl Into<String>, budget: bool) -> YamlError {
    YamlError {
        pos,
        message: message.into(),
        budget,
    }
}

fn parse_at(text: &str, base: Base) -> Result<Node, YamlError> {
    if let Some(node) = fast::parse(text, base) {
        return Ok(node);
    }
    parse_full(text, base)
}

/// Whether the fast path, where it takes `text`, builds exactly the tree of
/// the full parser: the fuzz bench's differential target (`yaml-fast`).
pub fn fast_path_agrees(text: &str) -> Result<(), String> {
    let Some(fast) = fast::parse(text, Base::default()) else {
        return Ok(());
    };
    match parse_full(text, Base::default()) {
        Ok(full) if full == fast => Ok(()),
        Ok(full) => Err(format!(
            "the fast path built {fast:?}, the full parser {full:?}"
        )),
        Err(e) => Err(format!(
            "the fast path took text the full parser refuses: {}",
            e.message
        )),
    }
}

/// [`parse_at`] with the full parser alone.
fn parse_full(text: &str, base: Base) -> Result<Node, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut alias_nodes = 0usize;
    let mut documents = 0usize;
    let mut root: Option<Node> = None;
    while let Some(item) = parser.next_event() {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            let p = Pos {
                line: base.line + u32::try_from(m.line()).unwrap_or(0),
                column: u32::try_from(m.col() + 1).unwrap_or(0),
                offset: base.offset
                    + m.byte_offset()
                        .and_then(|b| u32::try_from(b).ok())
                        .unwrap_or(0),
            };
            err(Some(p), e.info(), false)
        })?;
        let at = pos(&span, base);
        let node = match event {
            Event::StreamStart | Event::DocumentEnd => continue,
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        Some(at),
                        "the file holds more than one YAML document (`---`); put one roster in each file",
                        false,
                    ));
                }
                continue;
            }
            Event::Alias(id) => {
                let target = anchors
                    .get(&id)
                    .ok_or_else(|| err(Some(at), "alias to an unknown anchor", false))?;
                alias_nodes += target.count();
                if alias_nodes > MAX_ALIAS_NODES {
                    return Err(err(
                        Some(at),
                        format!("anchors and aliases expand to more than {MAX_ALIAS_NODES} values"),
                        true,
                    ));
                }
                let mut copy = target.clone();
                copy.pos = at;
                copy
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(
                    &text,
                    style,
                    tag.as_deref().map(|t| (t.handle(), t.suffix())),
                )
                .map_err(|m| err(Some(at), m, false))?;
                let node = Node { pos: at, value };
                if anchor != 0 {
                    anchors.insert(anchor, node.clone());
                }
                node
            }
            Event::SequenceStart(_, anchor, ref tag) | Event::MappingStart(_, anchor, ref tag) => {
                if tag.is_some() {
                    return Err(err(
                        Some(at),
                        "YAML tags (`!…`) are not supported in roster files",
                        false,
                    ));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(err(
                        Some(at),
                        format!("values are nested more than {MAX_DEPTH} levels deep"),
                        true,
                    ));
                }
                let is_seq = matches!(event, Event::SequenceStart(..));
                stack.push(if is_seq {
                    Frame::Seq(at, anchor, Vec::new())
                } else {
                    Frame::Map(at, anchor, Vec::new(), None, None)
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match stack.pop() {
                    Some(Frame::Seq(p, a, items)) => (
                        Node {
                            pos: p,
                            value: Value::Seq(items),
                        },
                        a,
                    ),
                    Some(Frame::Map(p, a, entries, _, _)) => (
                        Node {
                            pos: p,
                            value: Value::Map(entries),
                        },
                        a,
                    ),
                    None => return Err(err(Some(at), "unbalanced YAML structure", false)),
                };
                if anchor != 0 {
                    anchors.insert(anchor, node.clone());
                }
                node
            }
            _ => continue,
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, entries, pending, keys)) => match pending.take() {
                None => {
                    let name = node.key_text();
                    let dup = match keys {
                        Some(set) => !set.insert(name.clone()),
                        None => {
                            let d = entries.iter().any(|(k, _)| k.key_text() == name);
                            if entries.len() >= 16 {
                                *keys = Some(
                                    entries
                                        .iter()
                                        .map(|(k, _)| k.key_text())
                                        .chain([name.clone()])
                                        .collect(),
                                );
                            }
                            d
                        }
                    };
                    if dup {
                        return Err(err(
                            Some(node.pos),
                            format!("duplicate key `{name}` in one mapping"),
                            false,
                        ));
                    }
                    *pending = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
    Ok(root.unwrap_or(Node {
        pos: Pos {
            line: 1,
            column: 1,
            offset: 0,
        },
        value: Value::Null,
    }))
}

/// Resolve a scalar by the YAML 1.2 core schema. Numbers with leading zeros
/// stay text (ZIP codes), and only `true`/`false` are booleans (no `yes`/`no`).
fn scalar(text: &str, style: ScalarStyle, tag: Option<(&str, &str)>) -> Result<Value, String> {
    if let Some((handle, suffix)) = tag {
        if handle != "tag:yaml.org,2002:" {
            return Err("YAML tags (`!…`) are not supported in roster files".into());
        }
        return match suffix {
            "str" => Ok(Value::Str(text.to_owned())),
            "null" | "bool" | "int" | "float" => Ok(plain(text)),
            _ => Err(format!(
                "YAML tag `!!{suffix}` is not supported in roster files"
            )),
        };
    }
    Ok(if style == ScalarStyle::Plain {
        plain(text)
    } else {
        Value::Str(text.to_owned())
    })
}

fn plain(t: &str) -> Value {
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    let first = digits.as_bytes().first().copied().unwrap_or(b'x');
    if !(first.is_ascii_digit() || first == b'.') {
        return Value::Str(t.to_owned());
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        if digits.len() > 1 && digits.starts_with('0') {
            return Value::Str(t.to_owned());
        }
        return t
            .parse()
            .map_or_else(|_| Value::Str(t.to_owned()), Value::Int);
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).map_or_else(|_| Value::Str(t.to_owned()), Value::Int);
    }
    if let Some(oct) = t.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).map_or_else(|_| Value::Str(t.to_owned()), Value::Int);
    }
    let float_chars = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || b"eE.+-".contains(&b));
    match (float_chars, t.parse::<f64>()) {
        (true, Ok(f)) if f.is_finite() => Value::Float(f),
        _ => Value::Str(t.to_owned()),
    }
}

/// Parse a large file in slices on all cores. A roster is a mapping of a
/// few keys whose big values are block lists; an item starts on a line of
/// its own at the list's indentation, which no valid continuation line can
/// have, so such lines are safe places to cut. Anything unusual (anchors,
/// tags, flow style at the top, document markers) or any error in a slice
/// returns `None`, and the caller parses the whole file the ordinary way,
/// which also gives the exact error.
fn parallel(text: &str) -> Option<Node> {
    if text.bytes().any(|b| matches!(b, b'&' | b'*' | b'!')) {
        return None;
    }
    // Top-level sections: lines that start a key in column 1.
    let mut sections: Vec<(usize, u32)> = Vec::new(); // (byte offset, 1-based line)
    let mut line_no = 0u32;
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        line_no += 1;
        match line.as_bytes().first() {
            None | Some(b' ' | b'#' | b'\n' | b'\r') => {}
            Some(b'-' | b'.' | b'[' | b'{' | b'%' | b'?' | b'\t') => return None,
            Some(_) => sections.push((offset, line_no)),
        }
        offset += line.len();
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4);
    let mut entries: Vec<(Node, Node)> = Vec::new();
    let mut keys = HashSet::new();
    for (i, &(start, line)) in sections.iter().enumerate() {
        let end = sections.get(i + 1).map_or(text.len(), |s| s.0);
        let section = &text[start..end];
        let key_end = section.find('\n').map_or(section.len(), |i| i + 1);
        let key_line = &section[..key_end];
        let base = Base {
            line: line - 1,
            offset: u32::try_from(start).ok()?,
        };
        let head = if section.len() < PARALLEL_MIN_BYTES / 4 || !key_line.trim_end().ends_with(':')
        {
            parse_at(section, base).ok()?
        } else {
            let mut head = parse_at(key_line, base).ok()?;
            let body_start = start + key_end;
            let items = parse_list(
                &text[body_start..end],
                Base {
                    line,
                    offset: u32::try_from(body_start).ok()?,
                },
                threads,
            )?;
            if let Value::Map(e) = &mut head.value
                && let [(_, v)] = e.as_mut_slice()
                && v.value == Value::Null
            {
                *v = items;
            } else {
                return None;
            }
            head
        };
        let Value::Map(mut e) = head.value else {
            return None;
        };
        if e.len() != 1 || !keys.insert(e[0].0.key_text()) {
            return None;
        }
        entries.append(&mut e);
    }
    let pos = entries.first().map(|(k, _)| k.pos)?;
    Some(Node {
        pos,
        value: Value::Map(entries),
    })
}

/// Parse the body of a block list in `threads` slices cut at item starts.
fn parse_list(body: &str, base: Base, threads: usize) -> Option<Node> {
    let first = body
        .split_inclusive('\n')
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    let indent = first.len() - first.trim_start_matches(' ').len();
    let is_item = |l: &str| {
        l.len() > indent + 1
            && l.as_bytes()[..indent].iter().all(|&b| b == b' ')
            && l.as_bytes()[indent] == b'-'
            && matches!(l.as_bytes()[indent + 1], b' ' | b'\n' | b'\r')
    };
    if !is_item(first) {
        return None;
    }
    // Cut points near equal sizes, each at an item start.
    let target = body.len() / threads + 1;
    let mut cuts = vec![(0usize, 0u32)];
    let (mut offset, mut line) = (0usize, 0u32);
    for l in body.split_inclusive('\n') {
        if offset >= cuts.last()?.0 + target && is_item(l) {
            cuts.push((offset, line));
        }
        offset += l.len();
        line += 1;
    }
    let slices: Vec<(&str, Base)> = cuts
        .iter()
        .enumerate()
        .map(|(i, &(o, l))| {
            let end = cuts.get(i + 1).map_or(body.len(), |c| c.0);
            (
                &body[o..end],
                Base {
                    line: base.line + l,
                    offset: base.offset + u32::try_from(o).unwrap_or(0),
                },
            )
        })
        .collect();
    let parsed: Vec<Option<Node>> = std::thread::scope(|s| {
        let handles: Vec<_> = slices
            .iter()
            .map(|&(t, b)| s.spawn(move || parse_at(t, b).ok()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let mut items = Vec::new();
    let mut pos = None;
    for node in parsed {
        let node = node?;
        pos.get_or_insert(node.pos);
        let Value::Seq(mut v) = node.value else {
            return None;
        };
        items.append(&mut v);
    }
    Some(Node {
        pos: pos?,
        value: Value::Seq(items),
    })
}

impl Value {
    /// The YAML type name, as a user would say it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl Node {
    /// How many nodes this subtree holds.
    pub fn count(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(k, v)| k.count() + v.count()).sum(),
            _ => 0,
        }
    }

    /// The value under `key` in a mapping, with the key's own node.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.value.as_str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    pub fn index(&self, i: usize) -> Option<&Node> {
        match &self.value {
            Value::Seq(items) => items.get(i),
            _ => None,
        }
    }

    /// Follow a JSON-pointer-like path of keys and indexes.
    pub fn at<'a, I, S>(&self, path: I) -> Option<&Node>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str> + 'a,
    {
        let mut node = self;
        for seg in path {
            let seg = seg.as_ref();
            node = match &node.value {
                Value::Seq(_) => node.index(seg.parse().ok()?)?,
                _ => node.get(seg)?,
            };
        }
        Some(node)
    }

    /// Convert to JSON for schema validation and typed extraction; the tree
    /// stays, for positions in findings.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A mapping key as text (YAML allows non-string keys; JSON does not).
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Seq(_) | Value::Map(_) => "<complex key>".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let n = parse("version: 1\npartners:\n  - email: a@b.org\n    zip: 02134\n").unwrap();
        let email = n.at(["partners", "0", "email"]).unwrap();
        assert_eq!((email.pos.line, email.pos.column), (3, 12));
        let (key, _) = n
            .get("partners")
            .unwrap()
            .index(0)
            .unwrap()
            .entry("zip")
            .unwrap();
        assert_eq!((key.pos.line, key.pos.column), (4, 5));
        // A leading zero keeps a ZIP a string instead of a number.
        assert_eq!(
            n.at(["partners", "0", "zip"]).unwrap().value,
            Value::Str("02134".into())
        );
    }

    #[test]
    fn large_files_parse_in_slices_to_the_same_tree() {
        let mut text = String::from("# big\nversion: 1\ngroups:\n");
        for g in 0..4_000 {
            text.push_str(&format!(
                "  - name: \"Group {g}\"\n    members:\n      - p{g}@example.org\n"
            ));
        }
        text.push_str("partners:\n");
        for p in 0..20_000 {
            text.push_str(&format!("  # person {p}\n  - email: p{p}@example.org\n    first_name: A\n    zip: \"0{p:04}\"\n"));
        }
        text.push_str("policy: {min_user_managers: 1}\n");
        assert!(text.len() > PARALLEL_MIN_BYTES);
        let sliced = parallel(&text).expect("the fast path applies");
        let whole = parse_at(&text, Base::default()).unwrap();
        assert_eq!(sliced, whole);
        let last = whole.at(["partners", "19999", "zip"]).unwrap();
        assert_eq!(last.pos.line as usize, text.lines().count() - 1);
        // Anything unusual falls back to the whole-file parse.
        assert!(parallel(&text.replace("first_name: A", "first_name: &x A")).is_none());
        assert!(parallel(&text.replacen("    zip", "   zip", 1)).is_none());
    }

    /// A roster as generated, with §9 fields on each partner.
    fn generated(partners: usize) -> String {
        let mut t = String::from(
            "version: 1\ngroups:\n  - name: Agency 00001\n    lwia: 3\n    members:\n      - email: p0@example.org\n        user_manager: true\n",
        );
        for p in 1..partners {
            t.push_str(&format!("      - p{p}@example.org\n"));
        }
        t.push_str("partners:\n");
        for p in 0..partners {
            t.push_str(&format!(
                "  - email: p{p}@example.org\n    first_name: José\n    last_name: \"O'Neil\"\n    birth_date: 1972-09-0{}\n    phone: \"217-555-{p:04}\"\n    zip: '0{p:04}'\n    roles: [public-viewer, caseworker]\n    entitlements:\n      products: [webcenter,job-board]\n      dashboards: []\n    case_manager: p0@example.org\n    active: true\n    lwia: 12\n",
                1 + p % 9
            ));
        }
        t.push_str("policy:\n  min_user_managers: 1\n  roles: [public-viewer, individual, caseworker]\n  max_removals: \"25%\"\n");
        t
    }

    #[test]
    fn the_fast_path_builds_the_full_parsers_tree() {
        let text = generated(50);
        let fast = super::fast::parse(&text, Base::default()).expect("in the subset");
        assert_eq!(fast, parse_full(&text, Base::default()).unwrap());
        // Every shipped roster and fixture: the same tree, or the full parser.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        let mut dirs = vec![root.join("examples"), root.join("tests")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                    files.push(p);
                }
            }
        }
        let mut taken = 0;
        for f in &files {
            let Ok(text) = std::fs::read_to_string(f) else {
                continue;
            };
            if let Some(fast) = super::fast::parse(&text, Base::default()) {
                taken += 1;
                assert_eq!(
                    Ok(fast),
                    parse_full(&text, Base::default()),
                    "{}",
                    f.display()
                );
            }
        }
        assert!(taken >= 5, "{taken} of {} files", files.len());
        // Long lists convert to JSON in order.
        let big = parse(&generated(5000)).unwrap();
        let json = big.to_json();
        let partners = json["partners"].as_array().unwrap();
        assert_eq!(partners.len(), 5000);
        for (i, p) in partners.iter().enumerate() {
            assert_eq!(p["email"], format!("p{i}@example.org"));
        }
        assert_eq!(json["groups"][0]["members"][4999], "p4999@example.org");
        // Slices of a large file start indented, and take the fast path too.
        let body = &text[text.find("  - name:").unwrap()..text.find("partners:").unwrap()];
        let base = Base {
            line: 2,
            offset: 20,
        };
        let fast = super::fast::parse(body, base).expect("a slice in the subset");
        assert_eq!(fast, parse_full(body, base).unwrap());
        // Variants: each is either the same tree or left to the full parser.
        let variants = [
            "a: b\n  c: d\n",
            "a:\n- x\n- y\n",
            "a:\n  - x\n   - y\n",
            "a: x\n  continued\n",
            "a: [x, 'y']\n",
            "a: \"x\\ty\"\n",
            "a: b # note\n",
            "a: b\na: c\n",
            "a:\nb: c\n",
            "- a\n- b: c\n  d: e\n-  f\n",
            "a: -5\nb: 0x1F\nc: 1e3\nd: ~\ne: True\nf: 012\n",
            "x: Ünïcödé: y\n",
            "x: 'it''s'\n",
            "a: [b, c\n",
            "a:   spaced   \n",
            "k-1: v\nk_2: [ ]\n",
            "  a: b\n",
        ];
        for v in variants {
            let full = parse_full(v, Base::default());
            if let Some(fast) = super::fast::parse(v, Base::default()) {
                assert_eq!(Ok(fast), full, "{v:?}");
            }
        }
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let n = parse("a: yes\nb: true\n").unwrap();
        assert_eq!(n.get("a").unwrap().value, Value::Str("yes".into()));
        assert_eq!(n.get("b").unwrap().value, Value::Bool(true));
    }
}
