//! A fast path for the plain block-style YAML that roster files are made
//! of (generated, exported or hand-written): mappings with identifier
//! keys, block lists, plain or simply quoted scalars and one-line flow
//! lists of plain scalars. It builds the same tree, positions included, as
//! the full parser in a fraction of the time. Anything outside that subset
//! (anchors, tags, escapes, multi-line scalars, trailing comments, empty
//! values, odd indentation, errors of any kind) returns `None`, and the
//! caller parses the text with the full parser, which also gives the exact
//! error.

use super::{Base, MAX_DEPTH, Node, Pos, Value, plain};

/// One line that holds content: byte offsets into the text.
struct Line {
    /// Where the line starts.
    start: usize,
    /// Where its content starts (after the indentation, or after `- `
    /// once the item's mapping is being read).
    content: usize,
    /// Where it ends, before the newline.
    end: usize,
    /// 0-based line number within the text.
    no: u32,
}

impl Line {
    fn indent(&self) -> usize {
        self.content - self.start
    }
}

struct Fast<'a> {
    text: &'a str,
    lines: Vec<Line>,
    i: usize,
    base: Base,
}

/// Parse `text` if it is within the subset; positions are offset by `base`.
pub(super) fn parse(text: &str, base: Base) -> Option<Node> {
    // Characters the subset never handles (the others matter only where a
    // scalar starts, which `plain_ok` checks).
    if text.bytes().any(|b| (b < 0x20 && b != b'\n') || b == 0x7f) {
        return None;
    }
    // Characters YAML does not allow in a document (outside its printable
    // set, or a byte order mark past the start), which the full parser
    // reports or handles.
    if !text.is_ascii()
        && text.chars().any(
            |c| matches!(c, '\u{80}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'),
        )
    {
        return None;
    }
    let mut lines = Vec::with_capacity(text.len() / 16);
    let mut start = 0usize;
    for (no, raw) in text.split_inclusive('\n').enumerate() {
        let line_start = start;
        start += raw.len();
        let body = raw.strip_suffix('\n').unwrap_or(raw);
        let trimmed = body.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // A comment after content, a document marker, or a line too long to
        // hold a simple key (YAML allows 1,024 characters): the full parser.
        if trimmed.contains('#')
            || body.starts_with("---")
            || body.starts_with("...")
            || body.len() > 1024
        {
            return None;
        }
        lines.push(Line {
            start: line_start,
            content: line_start + (body.len() - trimmed.len()),
            end: line_start + body.trim_end_matches(' ').len(),
            no: u32::try_from(no).ok()?,
        });
    }
    // A slice of a large file (see `yaml::parallel`) starts indented.
    let indent = lines.first()?.indent();
    let mut p = Fast {
        text,
        lines,
        i: 0,
        base,
    };
    let root = p.block(indent, 0)?;
    (p.i == p.lines.len()).then_some(root)
}

/// A mapping key: an identifier, then `:` at the end or before a space.
fn key_len(s: &str) -> Option<usize> {
    let n = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    let rest = &s.as_bytes()[n..];
    (n > 0 && rest.first() == Some(&b':') && matches!(rest.get(1), None | Some(b' '))).then_some(n)
}

/// A plain scalar the subset takes: no indicator first, nothing that ends a
/// plain scalar or starts a comment inside.
fn plain_ok(s: &str) -> bool {
    let Some(&first) = s.as_bytes().first() else {
        return false;
    };
    !matches!(
        first,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
            | b' '
    ) && !s.contains(": ")
        && !s.ends_with(':')
        && !s.contains(" #")
}

impl Fast<'_> {
    fn pos(&self, line: &Line, at: usize) -> Pos {
        let before = &self.text[line.start..at];
        let column = if before.is_ascii() {
            before.len()
        } else {
            before.chars().count()
        };
        Pos {
            line: self.base.line + line.no + 1,
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
            offset: self.base.offset + u32::try_from(at).unwrap_or(u32::MAX),
        }
    }

    /// The indentation of the line after the current one, if any.
    fn next_indent(&self) -> Option<usize> {
        self.lines.get(self.i).map(Line::indent)
    }

    /// The block node whose first line is the current one, at `indent`.
    fn block(&mut self, indent: usize, depth: usize) -> Option<Node> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let line = self.lines.get(self.i)?;
        if line.indent() != indent {
            return None;
        }
        let content = &self.text[line.content..line.end];
        if content.starts_with("- ") {
            self.seq(indent, depth)
        } else if key_len(content).is_some() {
            self.map(indent, depth)
        } else {
            None
        }
    }

    fn seq(&mut self, indent: usize, depth: usize) -> Option<Node> {
        let first = &self.lines[self.i];
        let pos = self.pos(first, first.content);
        let mut items = Vec::new();
        while let Some(line) = self.lines.get(self.i) {
            if line.indent() != indent {
                break;
            }
            let content = &self.text[line.content..line.end];
            let item = content.strip_prefix("- ")?;
            if item.starts_with(' ') || item.starts_with("- ") || item.is_empty() {
                return None;
            }
            let at = line.content + 2;
            if key_len(item).is_some() {
                // `- key: value`: a mapping whose keys line up after the dash.
                self.lines[self.i].content = at;
                items.push(self.map(indent + 2, depth + 1)?);
            } else {
                let line = &self.lines[self.i];
                items.push(self.scalar(line, at, line.end)?);
                self.i += 1;
                if self.next_indent().is_some_and(|n| n > indent) {
                    return None; // a continuation line
                }
            }
        }
        if self.next_indent().is_some_and(|n| n > indent) {
            return None;
        }
        Some(Node {
            pos,
            value: Value::Seq(items),
        })
    }

    fn map(&mut self, indent: usize, depth: usize) -> Option<Node> {
        let first = &self.lines[self.i];
        let pos = self.pos(first, first.content);
        let mut entries: Vec<(Node, Node)> = Vec::new();
        while let Some(line) = self.lines.get(self.i) {
            if line.indent() != indent {
                break;
            }
            let content = &self.text[line.content..line.end];
            let n = key_len(content)?;
            let name = &content[..n];
            if entries.len() > 64 || entries.iter().any(|(k, _)| k.value.as_str() == Some(name)) {
                return None; // a duplicate: the full parser says where
            }
            let key = Node {
                pos: self.pos(line, line.content),
                value: plain(name),
            };
            if key.value.as_str() != Some(name) {
                return None;
            }
            let rest = &content[n + 1..];
            let value = if rest.trim_start_matches(' ').is_empty() {
                self.i += 1;
                match self.next_indent() {
                    Some(next) if next > indent => self.block(next, depth + 1)?,
                    _ => return None, // empty, or a list at the key's own indentation
                }
            } else {
                let at = line.content + n + 1 + (rest.len() - rest.trim_start_matches(' ').len());
                let value = self.scalar(line, at, line.end)?;
                self.i += 1;
                if self.next_indent().is_some_and(|n| n > indent) {
                    return None; // a continuation line
                }
                value
            };
            entries.push((key, value));
        }
        if self.next_indent().is_some_and(|n| n > indent) {
            return None;
        }
        Some(Node {
            pos,
            value: Value::Map(entries),
        })
    }

    /// A scalar or one-line flow list at `at..end` of `line`.
    fn scalar(&self, line: &Line, at: usize, end: usize) -> Option<Node> {
        let s = &self.text[at..end];
        let pos = self.pos(line, at);
        let value = match s.as_bytes()[0] {
            q @ (b'"' | b'\'') => {
                let inner = s.get(1..s.len() - 1).filter(|_| s.len() >= 2)?;
                if !s.ends_with(q as char) || inner.contains([q as char, '\\']) {
                    return None;
                }
                Value::Str(inner.to_owned())
            }
            b'[' => {
                let inner = s.strip_suffix(']')?.get(1..)?;
                let mut items = Vec::new();
                if !inner.trim_start_matches(' ').is_empty() {
                    let mut offset = at + 1;
                    for part in inner.split(',') {
                        let item = part.trim_matches(' ');
                        let lead = part.len() - part.trim_start_matches(' ').len();
                        if !plain_ok(item) || item.contains(['[', ']', '{', '}', ':', '\'', '"']) {
                            return None;
                        }
                        items.push(Node {
                            pos: self.pos(line, offset + lead),
                            value: plain(item),
                        });
                        offset += part.len() + 1;
                    }
                }
                Value::Seq(items)
            }
            _ if plain_ok(s) => plain(s),
            _ => return None,
        };
        Some(Node { pos, value })
    }
}
