//! Findings: what `check` (and later `plan`) says about roster files.
//! Rules push findings; nothing here prints.

pub mod code;

pub use code::Code;
use serde::Serialize;

/// A position in a source file: 1-based line and column, 0-based byte offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
    pub offset: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, pointing into a file. `code` says what it is about; it
/// serializes as its stable kebab-case name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// Byte offset and length of the span in the file, for snippets.
    #[serde(skip)]
    pub offset: Option<(u32, u32)>,
    /// Order of the file among the roster's files, for sorting.
    #[serde(skip)]
    pub file_order: usize,
}

impl Finding {
    pub fn error(code: Code, file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, file, pos, message)
    }

    pub fn warning(code: Code, file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, file, pos, message)
    }

    fn new(
        severity: Severity,
        code: Code,
        file: &str,
        pos: Pos,
        message: impl Into<String>,
    ) -> Self {
        let offset = (pos.line > 0 && pos.offset != u32::MAX).then_some((pos.offset, 1));
        Finding {
            severity,
            code,
            message: message.into(),
            help: None,
            file: file.to_string(),
            line: pos.line.max(1),
            column: pos.column.max(1),
            offset,
            file_order: usize::MAX,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Underline `len` bytes instead of one.
    pub fn span_len(mut self, len: usize) -> Self {
        if let Some((o, _)) = self.offset {
            self.offset = Some((o, u32::try_from(len.max(1)).unwrap_or(1)));
        }
        self
    }

    pub fn in_file(mut self, order: usize) -> Self {
        self.file_order = order;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sort findings for stable output: file order, then position, then code.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (
            a.file_order,
            &a.file,
            a.line,
            a.column,
            a.code.as_str(),
            &a.message,
        )
            .cmp(&(
                b.file_order,
                &b.file,
                b.line,
                b.column,
                b.code.as_str(),
                &b.message,
            ))
    });
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let w = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&w, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
