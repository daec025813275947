//! Rendering findings for people (snippets), machines (JSON) and GitHub
//! Actions (workflow annotations). Returns strings; never prints.

use crate::finding::{Finding, Severity};
use crate::roster::SourceFile;
use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};
use std::borrow::Cow;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
    pub show_pii: bool,
}

/// Does this character change how a terminal (or a Markdown viewer) shows
/// what follows it: C0 and C1 controls (ESC, CR, BEL, …), DEL, bidi
/// overrides and isolates, and line and paragraph separators?
fn unsafe_to_print(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
                | '\u{2028}' | '\u{2029}'
        )
}

/// Text from a store, a provider or any other outside source, safe to put on
/// a terminal: every control, escape and bidi character is shown as
/// `\u{..}`, so a group named `\x1b[31m…` cannot recolor, rewrite or hide
/// what roster prints.
pub fn printable(s: &str) -> Cow<'_, str> {
    neutralize(s, |_| false)
}

/// [`printable`] for text of several lines: newlines and tabs stay.
pub fn printable_text(s: &str) -> Cow<'_, str> {
    neutralize(s, |c| c == '\n' || c == '\t')
}

fn neutralize(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let bad = |c: char| unsafe_to_print(c) && !keep(c);
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Keys whose values are personal data, masked in snippets.
const PII_KEYS: [&str; 3] = ["birth_date", "phone", "extension"];

/// Replace the values of personal-data keys on one line with `*`, one per
/// character, keeping every column where it was (byte offsets move when a
/// masked character is not ASCII: see `same_char`).
pub fn mask_pii(line: &str) -> String {
    let mut out = line.to_string();
    for key in PII_KEYS {
        let mut search = 0;
        while let Some(found) = out[search..].find(key) {
            let start = search + found;
            let after = start + key.len();
            search = after;
            let boundary = start == 0
                || !out[..start]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
            let rest = &out[after..];
            let ws = rest.len() - rest.trim_start_matches([' ', '"', '\'']).len();
            if !boundary || !rest.trim_start_matches([' ', '"', '\'']).starts_with(':') {
                continue;
            }
            let value_start = after + ws + 1;
            let value_end = out[value_start..]
                .find([',', '}', '#', '\n'])
                .map_or(out.len(), |i| value_start + i);
            let masked: String = out[value_start..value_end]
                .chars()
                .map(|c| if c.is_alphanumeric() { '*' } else { c })
                .collect();
            out.replace_range(value_start..value_end, &masked);
            // The masked value may be shorter: go on after it, not after
            // where the original ended.
            search = value_start + masked.len();
        }
    }
    out
}

/// The byte offset in `to` of the character that sits at byte `at` of
/// `from`, for two texts with the same characters count (a line and its
/// masked form).
fn same_char(from: &str, to: &str, at: usize) -> usize {
    let nth = from.get(..at).map_or(0, |s| s.chars().count());
    to.char_indices().nth(nth).map_or(to.len(), |(i, _)| i)
}

fn line_around(text: &str, offset: usize) -> Option<(usize, &str)> {
    if offset > text.len() || !text.is_char_boundary(offset) {
        return None;
    }
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    Some((start, &text[start..end]))
}

/// The length of the scalar at the start of `rest`, for underlining a whole value.
fn token_len(rest: &str) -> usize {
    let quoted = rest.starts_with(['"', '\'']);
    let end = if quoted {
        let q = &rest[..1];
        rest[1..].find(q).map_or(rest.len(), |i| i + 2)
    } else {
        let stop = [
            rest.find(" #"),
            rest.find(", "),
            rest.find('}'),
            rest.find(']'),
            rest.find(": "),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
        rest[..stop].trim_end().len()
    };
    end.max(1)
}

/// Findings with source snippets, then a summary line.
pub fn human(findings: &[Finding], files: &[SourceFile], style: Style) -> String {
    let texts: HashMap<&str, &str> = files
        .iter()
        .map(|f| (f.name.as_str(), f.text.as_str()))
        .collect();
    let renderer = if style.color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for f in findings {
        let level = match f.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let snippet = f.offset.and_then(|(off, len)| {
            let text = texts.get(f.file.as_str())?;
            let (start, line) = line_around(text, off as usize)?;
            let from = off as usize - start;
            let len = if len == 1 {
                token_len(&line[from..])
            } else {
                len as usize
            };
            let mut to = (from + len).min(line.len()).max(from);
            while to < line.len() && !line.is_char_boundary(to) {
                to += 1;
            }
            if style.show_pii {
                return Some((line.to_string(), from..to));
            }
            let shown = mask_pii(line);
            let range = same_char(line, &shown, from)..same_char(line, &shown, to);
            Some((shown, range))
        });
        let message = printable(&f.message);
        let title = level
            .clone()
            .primary_title(message.as_ref())
            .id(f.code.as_str());
        let mut group = match &snippet {
            Some((line, range)) => title.element(
                Snippet::source(line.as_str())
                    .line_start(f.line as usize)
                    .path(f.file.as_str())
                    .annotation(AnnotationKind::Primary.span(range.clone())),
            ),
            None => title.element(
                annotate_snippets::Origin::path(f.file.as_str())
                    .line(f.line as usize)
                    .char_column(f.column as usize),
            ),
        };
        if let Some(h) = &f.help {
            group = group.element(Level::HELP.message(printable_text(h)));
        }
        out.push_str(&renderer.render(&[group]));
        out.push_str("\n\n");
    }
    out
}

/// "2 errors, 1 warning" style counts.
pub fn counts(findings: &[Finding]) -> (usize, usize) {
    let errors = findings.iter().filter(|f| f.is_error()).count();
    (errors, findings.len() - errors)
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A JSON list of findings.
pub fn json(findings: &[Finding]) -> String {
    let mut s = serde_json::to_string_pretty(findings).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

/// GitHub Actions workflow commands: one annotation per finding.
pub fn github(findings: &[Finding]) -> String {
    fn data(s: &str) -> String {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn prop(s: &str) -> String {
        data(s).replace(':', "%3A").replace(',', "%2C")
    }
    let mut out = String::new();
    for f in findings {
        let kind = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut msg = format!("{} [{}]", f.message, f.code);
        if let Some(h) = &f.help {
            msg.push_str("\nhelp: ");
            msg.push_str(h);
        }
        out.push_str(&format!(
            "::{kind} file={},line={},col={},title={}::{}\n",
            prop(&printable(&f.file)),
            f.line,
            f.column,
            prop(f.code.as_str()),
            data(&printable_text(&msg))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::code::Code;

    #[test]
    fn masks_personal_values_but_keeps_columns() {
        assert_eq!(
            mask_pii("    birth_date: 1972-09-01"),
            "    birth_date: ****-**-**"
        );
        assert_eq!(
            mask_pii(r#"  - { phone: "217-852-9634", zip: "62568" }"#),
            r#"  - { phone: "***-***-****", zip: "62568" }"#
        );
        assert_eq!(
            mask_pii("    email: phone@example.org"),
            "    email: phone@example.org"
        );
        assert_eq!(
            mask_pii("    extension: '12' # desk"),
            "    extension: '**' # desk"
        );
    }

    #[test]
    fn masking_non_ascii_keeps_characters_and_spans() {
        for line in [
            r#"    phone: "ééééé""#,
            "    birth_date: 1985-04-ẞ17",
            "    extension: '١٢٣'",
            "    phone: 📞📞📞",
            "  - { birth_date: \"ß\", phone: ℡ }",
        ] {
            let masked = mask_pii(line);
            assert_eq!(masked.chars().count(), line.chars().count(), "{masked}");
            for (at, _) in line.char_indices().chain([(line.len(), ' ')]) {
                let m = same_char(line, &masked, at);
                assert!(masked.is_char_boundary(m), "{line}: {at} -> {m}");
                assert_eq!(
                    line[..at].chars().count(),
                    masked[..m].chars().count(),
                    "{line}"
                );
            }
        }
        assert_eq!(mask_pii(r#"    phone: "ééééé""#), r#"    phone: "*****""#);
        // A shorter masked value does not throw the search off for the next key.
        assert_eq!(
            mask_pii("  - { phone: \"ééé\", extension: '1\u{2028}' }"),
            "  - { phone: \"***\", extension: '*\u{2028}' }"
        );
    }

    #[test]
    fn printable_neutralizes_controls_escapes_and_bidi() {
        assert_eq!(printable("Ops"), "Ops");
        assert!(matches!(printable("José Núñez"), Cow::Borrowed(_)));
        assert_eq!(printable("\x1b[31mred"), "\\u{1b}[31mred");
        assert_eq!(
            printable("a\rb\u{7}c\nd\te"),
            "a\\u{d}b\\u{7}c\\u{a}d\\u{9}e"
        );
        assert_eq!(printable("x\u{9b}y\u{7f}"), "x\\u{9b}y\\u{7f}");
        assert_eq!(printable("\u{202e}gnp.exe"), "\\u{202e}gnp.exe");
        assert_eq!(printable("a\u{2066}b\u{2028}"), "a\\u{2066}b\\u{2028}");
    }

    #[test]
    fn github_escapes_properties_and_data() {
        let f = Finding::error(
            Code::Internal,
            "a,b:c.yaml",
            Default::default(),
            "50% done\nnext",
        );
        assert_eq!(
            github(&[f]),
            "::error file=a%2Cb%3Ac.yaml,line=1,col=1,title=internal::50%25 done%0Anext [internal]\n"
        );
    }
}
