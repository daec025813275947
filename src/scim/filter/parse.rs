//! Lexer and recursive-descent parser for the filter grammar.

use super::{AttrPath, CompareOp, Filter, FilterError, Value};
use crate::scim::excerpt;

/// Longest filter text accepted, in bytes.
pub const MAX_LEN: usize = 8 * 1024;

/// Deepest nesting of `(`, `not (` and `[` accepted; the parser recurses once per level,
/// so this is what keeps hostile input from exhausting the stack.
pub const MAX_DEPTH: usize = 64;

/// Parses filter text (already URL-decoded) into a [`Filter`].
///
/// Errors carry the position and say what was expected there; a server answers them with
/// 400 and `scimType` `invalidFilter`. Input longer than [`MAX_LEN`] or nested deeper than
/// [`MAX_DEPTH`] is refused.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    check_len(input)?;
    let mut p = Parser::new(input);
    let f = p.or_expr(0, false)?;
    let t = p.next()?;
    if t.kind != Tok::End {
        return Err(p.err(
            t.start,
            format!(
                "expected 'and', 'or' or the end of the filter, found {}",
                p.describe(&t)
            ),
        ));
    }
    Ok(f)
}

/// Parses a lone attribute path, e.g. the `sortBy` parameter or a client-side path:
/// `userName`, `name.givenName`, `urn:ietf:params:scim:schemas:core:2.0:User:userName`.
pub fn parse_path(input: &str) -> Result<AttrPath, FilterError> {
    check_len(input)?;
    let mut p = Parser::new(input);
    let t = p.next()?;
    let Tok::Word = t.kind else {
        return Err(p.err(
            t.start,
            format!("expected an attribute path, found {}", p.describe(&t)),
        ));
    };
    let path = p.attr_path(&t, false)?;
    let end = p.next()?;
    if end.kind != Tok::End {
        return Err(p.err(
            end.start,
            format!(
                "expected the end of the attribute path, found {}",
                p.describe(&end)
            ),
        ));
    }
    Ok(path)
}

fn check_len(input: &str) -> Result<(), FilterError> {
    if input.len() > MAX_LEN {
        return Err(FilterError::at(
            input,
            MAX_LEN,
            format!(
                "filter is {} bytes long; at most {MAX_LEN} are accepted",
                input.len()
            ),
        ));
    }
    Ok(())
}

/// `ATTRNAME = ALPHA *(nameChar)`, plus a leading `$` for `$ref` (RFC 7643 §2.1 names
/// `$ref` itself as the exception).
pub(crate) fn is_attr_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'$')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A schema URN as it may precede an attribute name: `urn:` and then characters the lexer
/// keeps inside one word, so that rendering and parsing agree on where it ends.
pub(crate) fn is_urn(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        && s.len() > 4
        && s.bytes().all(is_word_byte)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'$' | b':' | b'.')
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An attribute path or keyword; the text is `src[start..end]`.
    Word,
    Str(String),
    Num(serde_json::Number),
    LParen,
    RParen,
    LBracket,
    RBracket,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    peeked: Option<Token>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            peeked: None,
        }
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> FilterError {
        FilterError::at(self.src, offset, message)
    }

    fn text(&self, t: &Token) -> &'a str {
        self.src.get(t.start..t.end).unwrap_or("")
    }

    fn describe(&self, t: &Token) -> String {
        match &t.kind {
            Tok::Word => format!("'{}'", excerpt(self.text(t))),
            Tok::Str(_) => "a string".into(),
            Tok::Num(_) => "a number".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::End => "the end of the filter".into(),
        }
    }

    fn is_keyword(&self, t: &Token, kw: &str) -> bool {
        t.kind == Tok::Word && self.text(t).eq_ignore_ascii_case(kw)
    }

    fn column(&self, offset: usize) -> usize {
        self.src
            .char_indices()
            .take_while(|&(i, _)| i < offset)
            .count()
            + 1
    }

    fn peek(&mut self) -> Result<&Token, FilterError> {
        if self.peeked.is_none() {
            let t = self.lex()?;
            self.peeked = Some(t);
        }
        match &self.peeked {
            Some(t) => Ok(t),
            None => Err(self.err(self.pos, "internal error: no token")),
        }
    }

    fn next(&mut self) -> Result<Token, FilterError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn nest(&self, depth: usize, at: usize) -> Result<usize, FilterError> {
        if depth >= MAX_DEPTH {
            return Err(self.err(at, format!("filter nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(depth + 1)
    }

    /// `or`-separated `and` chains; left-associative, built in a loop so long chains cost no
    /// stack.
    fn or_expr(&mut self, depth: usize, inner: bool) -> Result<Filter, FilterError> {
        let mut left = self.and_expr(depth, inner)?;
        loop {
            let t = self.peek()?.clone();
            if !self.is_keyword(&t, "or") {
                return Ok(left);
            }
            self.next()?;
            let right = self.and_expr(depth, inner)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
    }

    fn and_expr(&mut self, depth: usize, inner: bool) -> Result<Filter, FilterError> {
        let mut left = self.unary(depth, inner)?;
        loop {
            let t = self.peek()?.clone();
            if !self.is_keyword(&t, "and") {
                return Ok(left);
            }
            self.next()?;
            let right = self.unary(depth, inner)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self, depth: usize, inner: bool) -> Result<Filter, FilterError> {
        let t = self.next()?;
        match t.kind {
            Tok::LParen => {
                let depth = self.nest(depth, t.start)?;
                let f = self.or_expr(depth, inner)?;
                self.close(&t, Tok::RParen, "')'")?;
                Ok(f)
            }
            Tok::Word if self.is_keyword(&t, "not") => {
                let next = self.peek()?.clone();
                match next.kind {
                    Tok::LParen => {
                        self.next()?;
                        let depth = self.nest(depth, next.start)?;
                        let f = self.or_expr(depth, inner)?;
                        self.close(&next, Tok::RParen, "')'")?;
                        Ok(Filter::Not(Box::new(f)))
                    }
                    // An attribute may be called `not`: `not pr`, `not eq 1`.
                    Tok::Word
                        if self.is_keyword(&next, "pr")
                            || CompareOp::from_keyword(self.text(&next)).is_some() =>
                    {
                        self.attr_expr(&t, depth, inner)
                    }
                    _ => Err(self.err(
                        next.start,
                        format!("expected '(' after 'not', found {}", self.describe(&next)),
                    )),
                }
            }
            Tok::Word => self.attr_expr(&t, depth, inner),
            _ => Err(self.err(
                t.start,
                format!(
                    "expected an attribute path, 'not' or '(', found {}",
                    self.describe(&t)
                ),
            )),
        }
    }

    /// After a group's contents: the closing token, or an error naming the opening one.
    fn close(&mut self, open: &Token, want: Tok, shown: &str) -> Result<(), FilterError> {
        let t = self.next()?;
        if t.kind == want {
            return Ok(());
        }
        Err(self.err(
            t.start,
            format!(
                "expected 'and', 'or' or {shown} to close the {} at column {}, found {}",
                self.describe(open),
                self.column(open.start),
                self.describe(&t)
            ),
        ))
    }

    /// `attrPath pr`, `attrPath op value` or `attrPath "[" valFilter "]"`, the path in `word`.
    fn attr_expr(
        &mut self,
        word: &Token,
        depth: usize,
        inner: bool,
    ) -> Result<Filter, FilterError> {
        let path = self.attr_path(word, inner)?;
        let t = self.next()?;
        match t.kind {
            Tok::LBracket => {
                if inner {
                    return Err(self.err(
                        t.start,
                        "a value path cannot be nested inside another value path",
                    ));
                }
                if path.sub.is_some() {
                    return Err(self.err(
                        t.start,
                        format!(
                            "'[' must follow an attribute without sub-attribute, not '{}'",
                            excerpt(&path.to_string())
                        ),
                    ));
                }
                let depth = self.nest(depth, t.start)?;
                let f = self.or_expr(depth, true)?;
                self.close(&t, Tok::RBracket, "']'")?;
                Ok(Filter::ValuePath(path, Box::new(f)))
            }
            Tok::Word if self.is_keyword(&t, "pr") => Ok(Filter::Present(path)),
            Tok::Word => {
                let Some(op) = CompareOp::from_keyword(self.text(&t)) else {
                    return Err(self.err(
                        t.start,
                        format!(
                            "unknown operator {}; expected pr, eq, ne, co, sw, ew, gt, ge, lt or le",
                            self.describe(&t)
                        ),
                    ));
                };
                let v = self.next()?;
                let value = match v.kind {
                    Tok::Str(s) => Value::Str(s),
                    Tok::Num(n) => Value::Num(n),
                    Tok::Word if self.is_keyword(&v, "true") => Value::Bool(true),
                    Tok::Word if self.is_keyword(&v, "false") => Value::Bool(false),
                    Tok::Word if self.is_keyword(&v, "null") => Value::Null,
                    _ => {
                        return Err(self.err(
                            v.start,
                            format!(
                                "expected a value (a string, a number, true, false or null) after '{}', found {}",
                                excerpt(self.text(&t)),
                                self.describe(&v)
                            ),
                        ));
                    }
                };
                Ok(Filter::Compare(path, op, value))
            }
            _ => Err(self.err(
                t.start,
                format!(
                    "expected an operator (pr, eq, ne, co, sw, ew, gt, ge, lt, le) or '[' after '{}', found {}",
                    excerpt(&path.to_string()),
                    self.describe(&t)
                ),
            )),
        }
    }

    /// Splits a word into `[urn ":"] attr ["." sub]`; the URN is everything before the last
    /// colon, since URNs themselves contain colons and dots (`...:core:2.0:User`).
    fn attr_path(&self, word: &Token, inner: bool) -> Result<AttrPath, FilterError> {
        let text = self.text(word);
        let shown = excerpt(text);
        let (urn, rest, rest_at) = match text.rfind(':') {
            Some(colon) => {
                let urn = &text[..colon];
                if !is_urn(urn) {
                    return Err(self.err(
                        word.start,
                        format!("'{shown}': expected an attribute name, or a schema URN (urn:...) before ':'"),
                    ));
                }
                (
                    Some(urn.to_owned()),
                    &text[colon + 1..],
                    word.start + colon + 1,
                )
            }
            None => (None, text, word.start),
        };
        let (attr, sub) = match rest.split_once('.') {
            Some((a, s)) => (a, Some(s)),
            None => (rest, None),
        };
        if !is_attr_name(attr) {
            return Err(self.err(
                rest_at,
                if attr.is_empty() {
                    format!("expected an attribute name in '{shown}'")
                } else {
                    format!("'{}' is not an attribute name (a letter, then letters, digits, '-' or '_')", excerpt(attr))
                },
            ));
        }
        if let Some(sub) = sub {
            let sub_at = rest_at + attr.len() + 1;
            if let Some(dot) = sub.find('.') {
                return Err(self.err(
                    sub_at + dot,
                    format!("'{shown}': an attribute path has at most one sub-attribute"),
                ));
            }
            if !is_attr_name(sub) {
                return Err(self.err(
                    sub_at,
                    if sub.is_empty() {
                        format!("expected a sub-attribute name after '.' in '{shown}'")
                    } else {
                        format!("'{}' is not an attribute name (a letter, then letters, digits, '-' or '_')", excerpt(sub))
                    },
                ));
            }
        }
        if inner && (urn.is_some() || sub.is_some()) {
            return Err(self.err(
                word.start,
                format!("inside '[...]' name a sub-attribute alone, not '{shown}'"),
            ));
        }
        Ok(AttrPath {
            urn,
            attr: attr.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }

    fn lex(&mut self) -> Result<Token, FilterError> {
        let bytes = self.src.as_bytes();
        while bytes.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&b) = bytes.get(start) else {
            return Ok(Token {
                kind: Tok::End,
                start,
                end: start,
            });
        };
        let kind = match b {
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'[' => Tok::LBracket,
            b']' => Tok::RBracket,
            b'"' => return self.string(start),
            b'-' | b'0'..=b'9' => return self.number(start),
            b if b.is_ascii_alphabetic() || b == b'$' => {
                let mut end = start;
                while bytes.get(end).is_some_and(|&b| is_word_byte(b)) {
                    end += 1;
                }
                self.pos = end;
                return Ok(Token {
                    kind: Tok::Word,
                    start,
                    end,
                });
            }
            _ => {
                let c = self
                    .src
                    .get(start..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?');
                return Err(self.err(start, format!("unexpected character {c:?}")));
            }
        };
        self.pos = start + 1;
        Ok(Token {
            kind,
            start,
            end: start + 1,
        })
    }

    /// A JSON string (RFC 8259 §7), escapes decoded.
    fn string(&mut self, start: usize) -> Result<Token, FilterError> {
        let mut out = String::new();
        let body = self.src.get(start + 1..).unwrap_or("");
        let mut chars = body.char_indices().map(|(i, c)| (start + 1 + i, c));
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = at + 1;
                    return Ok(Token {
                        kind: Tok::Str(out),
                        start,
                        end: at + 1,
                    });
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    let decoded = match e {
                        '"' => '"',
                        '\\' => '\\',
                        '/' => '/',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'u' => match self.unicode_escape(at, &mut chars)? {
                            // PostgreSQL cannot hold or compare NUL in text:
                            // no store could match it, so it is refused here.
                            '\0' => {
                                return Err(FilterError::value_at(
                                    self.src,
                                    at,
                                    "a string may not hold NUL (\\u0000); no stored value has one",
                                ));
                            }
                            c => c,
                        },
                        other => {
                            return Err(self.err(
                                at,
                                format!("invalid escape '\\{other}' in string; expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX"),
                            ));
                        }
                    };
                    out.push(decoded);
                }
                c if u32::from(c) < 0x20 => {
                    return Err(self.err(
                        at,
                        format!("control character {c:?} in string; write it as an escape"),
                    ));
                }
                c => out.push(c),
            }
        }
        Err(self.err(start, "unterminated string: expected a closing '\"'"))
    }

    /// The `XXXX` of `\uXXXX` (and a following low surrogate escape when `XXXX` is a high one).
    fn unicode_escape(
        &self,
        at: usize,
        chars: &mut impl Iterator<Item = (usize, char)>,
    ) -> Result<char, FilterError> {
        let hex4 = |chars: &mut dyn Iterator<Item = (usize, char)>| -> Option<u32> {
            let mut v = 0;
            for _ in 0..4 {
                v = v * 16 + chars.next()?.1.to_digit(16)?;
            }
            Some(v)
        };
        let bad = |msg: &str| self.err(at, msg.to_owned());
        let hi = hex4(chars).ok_or_else(|| bad("expected four hex digits after '\\u'"))?;
        let code = match hi {
            0xD800..=0xDBFF => {
                let lo = match (chars.next(), chars.next()) {
                    (Some((_, '\\')), Some((_, 'u'))) => hex4(chars),
                    _ => None,
                };
                match lo {
                    Some(lo @ 0xDC00..=0xDFFF) => 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00),
                    _ => {
                        return Err(bad(
                            "high surrogate '\\u' escape without a low surrogate after it",
                        ));
                    }
                }
            }
            0xDC00..=0xDFFF => {
                return Err(bad(
                    "low surrogate '\\u' escape without a high surrogate before it",
                ));
            }
            v => v,
        };
        char::from_u32(code).ok_or_else(|| bad("invalid '\\u' escape"))
    }

    /// A JSON number (RFC 8259 §6).
    fn number(&mut self, start: usize) -> Result<Token, FilterError> {
        let bytes = self.src.as_bytes();
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        match bytes.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(self.err(i, "expected a digit in number")),
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(self.err(i, "expected a digit after '.' in number"));
            }
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(self.err(i, "expected a digit in the exponent of number"));
            }
        }
        if bytes.get(i).is_some_and(|&b| is_word_byte(b)) {
            return Err(self.err(
                start,
                "invalid number (JSON numbers have no leading zeros, letters or trailing '.')",
            ));
        }
        let text = self.src.get(start..i).unwrap_or("");
        let n = text
            .parse::<serde_json::Number>()
            .map_err(|_| self.err(start, format!("number {} is out of range", excerpt(text))))?;
        self.pos = i;
        Ok(Token {
            kind: Tok::Num(n),
            start,
            end: i,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CompareOp::*;

    fn p(attr: &str) -> AttrPath {
        AttrPath::new(attr)
    }
    fn ps(attr: &str, sub: &str) -> AttrPath {
        AttrPath::with_sub(attr, sub)
    }
    fn cmp(path: AttrPath, op: CompareOp, v: impl Into<Value>) -> Filter {
        Filter::Compare(path, op, v.into())
    }
    fn num(s: &str) -> Value {
        Value::Num(s.parse().unwrap())
    }
    fn pr(attr: &str) -> Filter {
        Filter::Present(p(attr))
    }
    fn and(l: Filter, r: Filter) -> Filter {
        l.and(r)
    }
    fn or(l: Filter, r: Filter) -> Filter {
        l.or(r)
    }
    fn not(f: Filter) -> Filter {
        Filter::not(f)
    }
    fn vp(attr: &str, f: Filter) -> Filter {
        Filter::value_path(p(attr), f)
    }

    const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    #[test]
    fn valid_filters() {
        let cases: Vec<(String, Filter)> = vec![
            // RFC 7644 §3.4.2.2 examples.
            (r#"userName eq "bjensen""#.into(), cmp(p("userName"), Eq, "bjensen")),
            (r#"name.familyName co "O'Malley""#.into(), cmp(ps("name", "familyName"), Co, "O'Malley")),
            (r#"userName sw "J""#.into(), cmp(p("userName"), Sw, "J")),
            (
                format!(r#"{CORE}:userName sw "J""#),
                cmp(p("userName").in_schema(CORE), Sw, "J"),
            ),
            ("title pr".into(), pr("title")),
            (
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#.into(),
                cmp(ps("meta", "lastModified"), Gt, "2011-05-13T04:42:34Z"),
            ),
            (
                r#"meta.lastModified ge "2011-05-13T04:42:34Z""#.into(),
                cmp(ps("meta", "lastModified"), Ge, "2011-05-13T04:42:34Z"),
            ),
            (r#"meta.lastModified lt "x""#.into(), cmp(ps("meta", "lastModified"), Lt, "x")),
            (r#"meta.lastModified le "x""#.into(), cmp(ps("meta", "lastModified"), Le, "x")),
            (r#"userName ew "sen""#.into(), cmp(p("userName"), Ew, "sen")),
            (r#"userName ne "x""#.into(), cmp(p("userName"), Ne, "x")),
            (
                r#"title pr and userType eq "Employee""#.into(),
                and(pr("title"), cmp(p("userType"), Eq, "Employee")),
            ),
            (
                r#"title pr or userType eq "Intern""#.into(),
                or(pr("title"), cmp(p("userType"), Eq, "Intern")),
            ),
            (
                format!(r#"schemas eq "{ENTERPRISE}""#),
                cmp(p("schemas"), Eq, ENTERPRISE),
            ),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#.into(),
                and(
                    cmp(p("userType"), Eq, "Employee"),
                    or(
                        cmp(p("emails"), Co, "example.com"),
                        cmp(ps("emails", "value"), Co, "example.org"),
                    ),
                ),
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#.into(),
                and(
                    cmp(p("userType"), Ne, "Employee"),
                    not(or(
                        cmp(p("emails"), Co, "example.com"),
                        cmp(ps("emails", "value"), Co, "example.org"),
                    )),
                ),
            ),
            (
                r#"userType eq "Employee" and (emails.type eq "work")"#.into(),
                and(cmp(p("userType"), Eq, "Employee"), cmp(ps("emails", "type"), Eq, "work")),
            ),
            (
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#.into(),
                and(
                    cmp(p("userType"), Eq, "Employee"),
                    vp(
                        "emails",
                        and(cmp(p("type"), Eq, "work"), cmp(p("value"), Co, "@example.com")),
                    ),
                ),
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#.into(),
                or(
                    vp(
                        "emails",
                        and(cmp(p("type"), Eq, "work"), cmp(p("value"), Co, "@example.com")),
                    ),
                    vp(
                        "ims",
                        and(cmp(p("type"), Eq, "xmpp"), cmp(p("value"), Co, "@foo.com")),
                    ),
                ),
            ),
            // Precedence and associativity.
            ("a pr or b pr and c pr".into(), or(pr("a"), and(pr("b"), pr("c")))),
            ("a pr and b pr or c pr".into(), or(and(pr("a"), pr("b")), pr("c"))),
            ("a pr or b pr or c pr".into(), or(or(pr("a"), pr("b")), pr("c"))),
            ("a pr and b pr and c pr".into(), and(and(pr("a"), pr("b")), pr("c"))),
            ("a pr and (b pr or c pr)".into(), and(pr("a"), or(pr("b"), pr("c")))),
            ("(a pr or b pr) and c pr".into(), and(or(pr("a"), pr("b")), pr("c"))),
            ("a pr or (b pr or c pr)".into(), or(pr("a"), or(pr("b"), pr("c")))),
            (
                "not (a pr) and b pr or not (c pr and d pr)".into(),
                or(and(not(pr("a")), pr("b")), not(and(pr("c"), pr("d")))),
            ),
            ("((a pr))".into(), pr("a")),
            ("not (not (a pr))".into(), not(not(pr("a")))),
            // Case-insensitive keywords, names kept as written.
            (
                r#"USERNAME EQ "bjensen" AND Active Eq TRUE OR x Pr"#.into(),
                or(
                    and(cmp(p("USERNAME"), Eq, "bjensen"), cmp(p("Active"), Eq, true)),
                    pr("x"),
                ),
            ),
            ("NOT (a PR)".into(), not(pr("a"))),
            // Whitespace variants.
            ("  a   eq\t\"x\"  ".into(), cmp(p("a"), Eq, "x")),
            ("(a pr)and(b pr)".into(), and(pr("a"), pr("b"))),
            ("not(a pr)".into(), not(pr("a"))),
            ("NOT ( a pr )".into(), not(pr("a"))),
            ("a eq\"x\"".into(), cmp(p("a"), Eq, "x")),
            ("emails [ type eq \"work\" ]".into(), vp("emails", cmp(p("type"), Eq, "work"))),
            ("a pr\nand\r\nb pr".into(), and(pr("a"), pr("b"))),
            // String escapes.
            (
                r#"a eq "q\"uote \\back\/slash\n\t\u00e9\ud83d\ude00""#.into(),
                cmp(p("a"), Eq, "q\"uote \\back/slash\n\té\u{1F600}"),
            ),
            (r#"a eq """#.into(), cmp(p("a"), Eq, "")),
            (r#"a eq "é ü 日本""#.into(), cmp(p("a"), Eq, "é ü 日本")),
            (r#"a eq "x' OR 1=1 --""#.into(), cmp(p("a"), Eq, "x' OR 1=1 --")),
            // Other values.
            ("a eq 42".into(), cmp(p("a"), Eq, num("42"))),
            ("a gt -1.5e3".into(), cmp(p("a"), Gt, num("-1.5e3"))),
            ("a eq 0".into(), cmp(p("a"), Eq, num("0"))),
            ("a eq 0.25E+2".into(), cmp(p("a"), Eq, num("0.25E+2"))),
            ("a eq true".into(), cmp(p("a"), Eq, true)),
            ("a eq FALSE".into(), cmp(p("a"), Eq, false)),
            ("a eq null".into(), cmp(p("a"), Eq, Value::Null)),
            ("a ne Null".into(), cmp(p("a"), Ne, Value::Null)),
            // Attribute paths.
            (
                format!(r#"{ENTERPRISE}:manager.value eq "26118915""#),
                cmp(ps("manager", "value").in_schema(ENTERPRISE), Eq, "26118915"),
            ),
            (
                r#"urn:roster:params:scim:schemas:extension:roster:2.0:User:birthDate lt "2000-01-01""#.into(),
                cmp(
                    p("birthDate").in_schema("urn:roster:params:scim:schemas:extension:roster:2.0:User"),
                    Lt,
                    "2000-01-01",
                ),
            ),
            (r#"members[$ref eq "x"]"#.into(), vp("members", cmp(p("$ref"), Eq, "x"))),
            (r#"members.$ref eq "x""#.into(), cmp(ps("members", "$ref"), Eq, "x")),
            ("x-y_z9 pr".into(), pr("x-y_z9")),
            // An attribute may share a keyword's name.
            ("not pr".into(), pr("not")),
            ("and eq 1 or or pr".into(), or(cmp(p("and"), Eq, num("1")), pr("or"))),
            (r#"emails[not (type eq "work")]"#.into(), vp("emails", not(cmp(p("type"), Eq, "work")))),
            (
                r#"emails[(type eq "work" or type eq "home") and primary eq true]"#.into(),
                vp(
                    "emails",
                    and(
                        or(cmp(p("type"), Eq, "work"), cmp(p("type"), Eq, "home")),
                        cmp(p("primary"), Eq, true),
                    ),
                ),
            ),
        ];
        for (input, want) in &cases {
            match parse(input) {
                Ok(got) => assert_eq!(&got, want, "{input}"),
                Err(e) => panic!("{input}: {e}"),
            }
        }
    }

    #[test]
    fn nesting_up_to_the_limit() {
        let deep = format!("{}a pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(parse(&deep).unwrap(), pr("a"));
        let nots = format!("{}a pr{}", "not (".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&nots).is_ok());
        let mixed = format!(
            "{}emails[type pr]{}",
            "(".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(&mixed).is_ok());
    }

    #[test]
    fn long_chains_need_no_depth() {
        let chain = vec!["a pr"; 1000].join(" or ");
        assert!(chain.len() <= MAX_LEN);
        assert!(matches!(parse(&chain), Ok(Filter::Or(..))));
    }

    #[test]
    fn invalid_filters() {
        let deep = format!(
            "{}a pr{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let deep_not = format!(
            "{}a pr{}",
            "not (".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let deep_vp = format!(
            "{}emails[type pr]{}",
            "(".repeat(MAX_DEPTH),
            ")".repeat(MAX_DEPTH)
        );
        let huge_parens = "(".repeat(MAX_LEN + 1);
        let long = format!("userName eq \"{}\"", "x".repeat(MAX_LEN));
        // (input, 1-based column, part of the message)
        let cases: Vec<(&str, usize, &str)> = vec![
            (
                "",
                1,
                "expected an attribute path, 'not' or '(', found the end of the filter",
            ),
            ("   ", 4, "expected an attribute path"),
            (r#"userName eq "bjensen"#, 13, "unterminated string"),
            (
                "userName eq",
                12,
                "expected a value (a string, a number, true, false or null) after 'eq', found the end",
            ),
            (
                "userName",
                9,
                "expected an operator (pr, eq, ne, co, sw, ew, gt, ge, lt, le) or '[' after 'userName'",
            ),
            (r#"userName xx "a""#, 10, "unknown operator 'xx'"),
            (r#"userName === "a""#, 10, "unexpected character '='"),
            (r#"userName eq bjensen"#, 13, "expected a value"),
            (r#"userName eq ("x")"#, 13, "expected a value"),
            (
                "userName pr and",
                16,
                "expected an attribute path, 'not' or '(', found the end",
            ),
            ("userName pr or or", 18, "expected an operator"),
            ("and", 4, "expected an operator"),
            ("or userName pr", 4, "unknown operator 'userName'"),
            (
                "userName pr userName pr",
                13,
                "expected 'and', 'or' or the end of the filter, found 'userName'",
            ),
            (
                "userName pr)",
                12,
                "expected 'and', 'or' or the end of the filter, found ')'",
            ),
            (
                "(userName pr",
                13,
                "expected 'and', 'or' or ')' to close the '(' at column 1, found the end",
            ),
            ("(a pr]", 6, "to close the '(' at column 1, found ']'"),
            (
                "()",
                2,
                "expected an attribute path, 'not' or '(', found ')'",
            ),
            (
                r#"emails[type eq "work""#,
                22,
                "expected 'and', 'or' or ']' to close the '[' at column 7",
            ),
            (r#"emails[type eq "work")"#, 22, "to close the '['"),
            (r#"emails[type eq "work"]]"#, 23, "found ']'"),
            (
                r#"emails[type eq "work"].value pr"#,
                23,
                "unexpected character '.'",
            ),
            ("emails[]", 8, "expected an attribute path"),
            ("emails[type[value pr]]", 12, "cannot be nested"),
            ("emails.value[type pr]", 13, "without sub-attribute"),
            ("emails[urn:x:type pr]", 8, "name a sub-attribute alone"),
            ("emails[type.x pr]", 8, "name a sub-attribute alone"),
            (
                "not userName pr",
                5,
                "expected '(' after 'not', found 'userName'",
            ),
            ("not", 4, "expected '(' after 'not'"),
            ("not (a pr", 10, "to close the '(' at column 5"),
            (r#"a eq "\x""#, 7, r"invalid escape '\x'"),
            (r#"a eq "\u12""#, 7, "four hex digits"),
            (r#"a eq "\ud800""#, 7, "high surrogate"),
            (r#"a eq "\ud800\u0041""#, 7, "high surrogate"),
            (r#"a eq "\udc00""#, 7, "low surrogate"),
            ("a eq \"tab\there\"", 10, "control character"),
            ("a eq 01", 6, "invalid number"),
            ("a eq 1.", 8, "expected a digit after '.'"),
            ("a eq 1.x", 8, "expected a digit after '.'"),
            ("a eq -", 7, "expected a digit"),
            ("a eq 1e", 8, "exponent"),
            ("a eq 12abc", 6, "invalid number"),
            ("a eq 1e999", 6, "out of range"),
            ("a eq 'x'", 6, "unexpected character '\\''"),
            ("a.b.c pr", 4, "at most one sub-attribute"),
            ("a. pr", 3, "expected a sub-attribute name after '.'"),
            ("a.1 pr", 3, "'1' is not an attribute name"),
            ("foo:bar pr", 1, "schema URN"),
            ("urn:x: pr", 7, "expected an attribute name"),
            ("urn:x:9a pr", 7, "'9a' is not an attribute name"),
            ("a$b pr", 1, "'a$b' is not an attribute name"),
            (
                "1 eq 1",
                1,
                "expected an attribute path, 'not' or '(', found a number",
            ),
            (r#""x" eq 1"#, 1, "found a string"),
            ("a pr #", 6, "unexpected character '#'"),
            ("é pr", 1, "unexpected character 'é'"),
            (r#"name eq "é" xx"#, 13, "found 'xx'"),
            (&deep, MAX_DEPTH + 1, "nested deeper than 64 levels"),
            (&deep_not, 5 * MAX_DEPTH + 5, "nested deeper than 64 levels"),
            (&deep_vp, MAX_DEPTH + 7, "nested deeper than 64 levels"),
            (&huge_parens, MAX_LEN + 1, "at most 8192 are accepted"),
            (&long, MAX_LEN + 1, "at most 8192 are accepted"),
        ];
        for (input, column, message) in &cases {
            let shown = input.get(..60).unwrap_or(input);
            match parse(input) {
                Ok(f) => panic!("{shown}: parsed as {f:?}"),
                Err(e) => {
                    assert!(e.message.contains(message), "{shown}: {e}");
                    assert_eq!(e.column, Some(*column), "{shown}: {e}");
                    assert!(e.offset.is_some(), "{shown}");
                }
            }
        }
    }

    #[test]
    fn error_display_names_the_column() {
        let e = parse(r#"userName xx "a""#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "at column 10: unknown operator 'xx'; expected pr, eq, ne, co, sw, ew, gt, ge, lt or le"
        );
        assert_eq!(e.offset, Some(9));
    }

    #[test]
    fn no_panic_on_arbitrary_input() {
        // Every prefix of tricky filters, and a few byte soups: errors, never panics.
        let samples = [
            r#"emails[type eq "work" and value co "@ex\u00e9.com"] or not (userName sw "J\"")"#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName ge -0.5e-3"#,
            "é(]\"\\u\u{0}[)not not(and or pr",
        ];
        for s in samples {
            for (i, _) in s.char_indices() {
                let _ = parse(&s[..i]);
                let _ = parse(&s[i..]);
                let _ = parse_path(&s[i..]);
            }
        }
        let _ = parse(&"not (".repeat(2000));
        let _ = parse(&"[".repeat(2000));
        let _ = parse(&"a[".repeat(2000));
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path("userName").unwrap(), p("userName"));
        assert_eq!(
            parse_path(" name.givenName ").unwrap(),
            ps("name", "givenName")
        );
        assert_eq!(
            parse_path(&format!("{CORE}:userName")).unwrap(),
            p("userName").in_schema(CORE)
        );
        for bad in ["", "a b", "a.b.c", "a pr", "\"a\"", "(a)", "a["] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
        let e = parse_path("a b").unwrap_err();
        assert_eq!(e.column, Some(3));
    }

    #[test]
    fn nul_in_a_string_is_an_invalid_value() {
        for f in [
            r#"userName co "\u0000""#,
            r#"externalId le "a\u0000""#,
            r#"emails[value eq "\u0000"]"#,
        ] {
            let e = parse(f).unwrap_err();
            assert_eq!(e.scim_type, "invalidValue", "{f}");
            assert!(e.message.contains("NUL"), "{f}: {}", e.message);
        }
        // Other escaped control characters are values a store can hold.
        assert!(parse(r#"a eq "\u0001\n""#).is_ok());
        assert_eq!(
            parse(r#"a eq "\x""#).unwrap_err().scim_type,
            "invalidFilter"
        );
    }
}
