//! SCIM filters (RFC 7644 §3.4.2.2): parsing into an AST, the attributes a server lets a
//! filter name ([`Schema`]), and safe construction of filter text on the client side. A store
//! translates the AST into its own queries (the SQL stores in `store::sql::filter`).
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! ```
//!
//! `and` binds tighter than `or`; both are left-associative. Keywords, operators and
//! `true`/`false`/`null` are case-insensitive; strings and numbers are JSON literals.

mod parse;

pub use parse::{MAX_DEPTH, MAX_LEN, parse, parse_path};

/// How deep [`render`] and a store's translation recurse into a tree: beyond what any parsed
/// filter needs (each of the [`MAX_DEPTH`] levels adds at most two), so that only trees built
/// by hand can hit it.
pub const TREE_DEPTH: usize = 4 * MAX_DEPTH;

/// The `scimType` of the 400 response a server sends for any [`FilterError`].
pub const SCIM_TYPE: &str = "invalidFilter";

/// An attribute path as written in a filter: `[urn ":"] attr ["." sub]`.
///
/// Names keep the spelling of the filter; SCIM names are case-insensitive (RFC 7643 §2.1),
/// so compare them with [`AttrPath::is`] or `eq_ignore_ascii_case`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN before the attribute name, e.g.
    /// `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub urn: Option<String>,
    /// The attribute name, e.g. `userName`, `emails`, `$ref`.
    pub attr: String,
    /// The sub-attribute name, e.g. `givenName` in `name.givenName`.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path without URN or sub-attribute.
    pub fn new(attr: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            attr: attr.into(),
            sub: None,
        }
    }

    /// `attr.sub`.
    pub fn with_sub(attr: impl Into<String>, sub: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            attr: attr.into(),
            sub: Some(sub.into()),
        }
    }

    /// The same path qualified by a schema URN.
    pub fn in_schema(mut self, urn: impl Into<String>) -> Self {
        self.urn = Some(urn.into());
        self
    }

    /// Whether the attribute and sub-attribute names are `attr` and `sub`, ignoring case
    /// (the URN is not looked at).
    pub fn is(&self, attr: &str, sub: Option<&str>) -> bool {
        self.attr.eq_ignore_ascii_case(attr)
            && match (&self.sub, sub) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }

    /// Whether the path has no URN or the URN is `urn`, ignoring case.
    pub fn urn_is_or_none(&self, urn: &str) -> bool {
        self.urn
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(urn))
    }

    /// The path without its sub-attribute.
    pub fn parent(&self) -> AttrPath {
        AttrPath {
            urn: self.urn.clone(),
            attr: self.attr.clone(),
            sub: None,
        }
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// How a value of an attribute compares (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string; `case_exact: false` compares ignoring case (RFC 7643 §2.2 `caseExact`).
    Text {
        /// Whether case matters.
        case_exact: bool,
    },
    /// A boolean: only `eq`, `ne` and `pr`.
    Bool,
    /// An integer.
    Int,
    /// A dateTime held as ISO 8601 text in one fixed format, compared as text.
    DateTime,
}

/// An attribute a filter may name, under its canonical name: what a resource's schema says of
/// it, not where a store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The canonical name: `userName`, `name.givenName`, `meta.created`, `groups`; an
    /// extension's attribute by its bare name (`birthDate`).
    pub name: &'static str,
    /// How it compares; for a multi-valued attribute, how its `value` compares.
    pub kind: Kind,
    /// Set for a multi-valued attribute: the sub-attributes a filter may name inside it
    /// (`groups.display`, `members[value eq "1"]`). Its own name alone means `value`.
    pub subs: Option<&'static [SubField]>,
}

impl Field {
    /// A single-valued attribute.
    pub const fn new(name: &'static str, kind: Kind) -> Self {
        Field {
            name,
            kind,
            subs: None,
        }
    }

    /// A multi-valued attribute with these sub-attributes.
    pub const fn multi(name: &'static str, kind: Kind, subs: &'static [SubField]) -> Self {
        Field {
            name,
            kind,
            subs: Some(subs),
        }
    }
}

/// A sub-attribute of a multi-valued [`Field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubField {
    /// Its name (`value`, `display`, `type`); looked up ignoring case.
    pub name: &'static str,
    /// How it compares.
    pub kind: Kind,
}

impl SubField {
    pub const fn new(name: &'static str, kind: Kind) -> Self {
        SubField { name, kind }
    }
}

/// A resource type's attributes, as filters and `sortBy` name them.
pub trait Schema {
    /// The attribute `path` names, or `None` for one that cannot be filtered on.
    ///
    /// Names and URNs come as written and compare case-insensitively; the URN may be absent,
    /// the resource's core schema or an extension: the schema decides. For a path with a
    /// sub-attribute the full path is asked first; when that gives `None` (or a multi-valued
    /// attribute), the parent is asked and the sub-attribute is looked up in [`Field::subs`].
    fn field(&self, path: &AttrPath) -> Option<Field>;
}

/// A comparison operator (RFC 7644 Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal; also true when the attribute has no value.
    Ne,
    /// `co`: contains.
    Co,
    /// `sw`: starts with.
    Sw,
    /// `ew`: ends with.
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
}

impl CompareOp {
    /// The operator as written in a filter, in lower case.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The operator named `word`, ignoring case.
    pub fn from_keyword(word: &str) -> Option<CompareOp> {
        word.parse().ok()
    }
}

/// A comparison value: a JSON literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A JSON string, escapes decoded.
    Str(String),
    /// A JSON number; integers stay exact.
    Num(serde_json::Number),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Num(n.into())
    }
}

/// A parsed filter. Grouping parentheses leave no trace: `(a pr)` is `a pr`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath op value`.
    Compare(AttrPath, CompareOp, Value),
    /// `attrPath pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// `l and r`.
    And(Box<Filter>, Box<Filter>),
    /// `l or r`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (f)`.
    Not(Box<Filter>),
    /// `attr[f]`, e.g. `emails[type eq "work" and value co "@example.com"]`: one value of the
    /// multi-valued (or complex) attribute must satisfy all of `f`. The paths inside `f` are
    /// sub-attribute names (`attr` only, no URN or sub).
    ValuePath(AttrPath, Box<Filter>),
}

impl Filter {
    /// `path op value`.
    pub fn compare(path: AttrPath, op: CompareOp, value: impl Into<Value>) -> Filter {
        Filter::Compare(path, op, value.into())
    }

    /// `path pr`.
    pub fn present(path: AttrPath) -> Filter {
        Filter::Present(path)
    }

    /// `self and other`.
    pub fn and(self, other: Filter) -> Filter {
        Filter::And(Box::new(self), Box::new(other))
    }

    /// `self or other`.
    pub fn or(self, other: Filter) -> Filter {
        Filter::Or(Box::new(self), Box::new(other))
    }

    /// `not (f)`.
    #[allow(clippy::should_implement_trait)]
    pub fn not(f: Filter) -> Filter {
        Filter::Not(Box::new(f))
    }

    /// `path[f]`.
    pub fn value_path(path: AttrPath, f: Filter) -> Filter {
        Filter::ValuePath(path, Box::new(f))
    }
}

/// Why a filter was refused: answered as 400 with `scimType` [`SCIM_TYPE`],
/// or `invalidValue` for a value no store can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Byte offset into the filter text, when the error has a place in it.
    pub offset: Option<usize>,
    /// 1-based character column matching `offset`.
    pub column: Option<usize>,
    /// What was expected or what is wrong.
    pub message: String,
    /// The `scimType` of the 400 a server answers.
    pub scim_type: &'static str,
}

impl FilterError {
    /// An error about the filter as a whole (e.g. an unknown attribute found during translation).
    pub fn new(message: impl Into<String>) -> Self {
        FilterError {
            offset: None,
            column: None,
            message: message.into(),
            scim_type: SCIM_TYPE,
        }
    }

    pub(crate) fn at(input: &str, offset: usize, message: impl Into<String>) -> Self {
        let column = input
            .char_indices()
            .take_while(|&(i, _)| i < offset)
            .count()
            + 1;
        FilterError {
            offset: Some(offset),
            column: Some(column),
            message: message.into(),
            scim_type: SCIM_TYPE,
        }
    }

    /// A value the filter may not compare: answered `invalidValue`.
    pub(crate) fn value_at(input: &str, offset: usize, message: impl Into<String>) -> Self {
        FilterError {
            scim_type: "invalidValue",
            ..Self::at(input, offset, message)
        }
    }
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.column {
            Some(column) => write!(f, "at column {column}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for FilterError {}

/// `s` as a JSON string literal, for placing a value into filter text built on the client:
/// whatever `s` holds (`O"Brien`, `x" or userName pr or "`), the filter sees one string.
pub fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Filter text for `f`, e.g. for the `filter` query parameter of a SCIM client.
///
/// Values are quoted with [`quote`]; attribute names and URNs are checked against the
/// grammar, so a name cannot smuggle in filter syntax either. `parse(&render(f)?)` gives
/// back `f`.
pub fn render(f: &Filter) -> Result<String, FilterError> {
    let mut out = String::new();
    render_into(f, &mut out, 0, false)?;
    Ok(out)
}

fn render_into(f: &Filter, out: &mut String, depth: usize, inner: bool) -> Result<(), FilterError> {
    if depth > TREE_DEPTH {
        return Err(FilterError::new(format!(
            "filter nested deeper than {TREE_DEPTH} levels"
        )));
    }
    match f {
        Filter::Compare(path, op, value) => {
            render_path(path, out, inner)?;
            out.push(' ');
            out.push_str(op.as_str());
            out.push(' ');
            match value {
                Value::Str(s) => out.push_str(&quote(s)),
                Value::Num(n) => out.push_str(&n.to_string()),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::Null => out.push_str("null"),
            }
        }
        Filter::Present(path) => {
            render_path(path, out, inner)?;
            out.push_str(" pr");
        }
        Filter::And(..) | Filter::Or(..) => {
            let is_and = matches!(f, Filter::And(..));
            // Only the left spine is flattened (`a or b or c` is `Or(Or(a, b), c)`), so any
            // operand with the same operator was grouped explicitly and keeps its parentheses;
            // `or` under `and` needs them for precedence.
            let mut operands = Vec::new();
            let mut cur = f;
            loop {
                match (cur, is_and) {
                    (Filter::And(l, r), true) | (Filter::Or(l, r), false) => {
                        operands.push(&**r);
                        cur = l;
                    }
                    _ => {
                        operands.push(cur);
                        break;
                    }
                }
            }
            for (i, operand) in operands.iter().rev().enumerate() {
                if i > 0 {
                    out.push_str(if is_and { " and " } else { " or " });
                }
                let parens = match operand {
                    Filter::Or(..) => true,
                    Filter::And(..) => is_and,
                    _ => false,
                };
                if parens {
                    out.push('(');
                }
                render_into(operand, out, depth + 1, inner)?;
                if parens {
                    out.push(')');
                }
            }
        }
        Filter::Not(g) => {
            out.push_str("not (");
            render_into(g, out, depth + 1, inner)?;
            out.push(')');
        }
        Filter::ValuePath(path, g) => {
            if inner {
                return Err(FilterError::new(format!(
                    "value path {path} inside another value path"
                )));
            }
            if path.sub.is_some() {
                return Err(FilterError::new(format!(
                    "value path {path} has a sub-attribute before '['"
                )));
            }
            render_path(path, out, false)?;
            out.push('[');
            render_into(g, out, depth + 1, true)?;
            out.push(']');
        }
    }
    Ok(())
}

fn render_path(path: &AttrPath, out: &mut String, inner: bool) -> Result<(), FilterError> {
    if inner && (path.urn.is_some() || path.sub.is_some()) {
        return Err(FilterError::new(format!(
            "{path}: inside a value path only sub-attribute names are allowed"
        )));
    }
    if let Some(urn) = &path.urn {
        if !parse::is_urn(urn) {
            return Err(FilterError::new(format!("invalid schema URN {urn:?}")));
        }
        out.push_str(urn);
        out.push(':');
    }
    for name in std::iter::once(&path.attr).chain(&path.sub) {
        if !parse::is_attr_name(name) {
            return Err(FilterError::new(format!("invalid attribute name {name:?}")));
        }
    }
    out.push_str(&path.attr);
    if let Some(sub) = &path.sub {
        out.push('.');
        out.push_str(sub);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &[&str] = &[
        "",
        "O\"Brien",
        r#"x" or userName pr or ""#,
        r#"x") or (userName pr"#,
        "x] or emails[type pr",
        "back\\slash\\",
        "\\\"",
        "\\u0022",
        "x' OR 1=1 --",
        "line\nbreak\r\ttab\u{1f}\u{7f}",
        "é ü 日本 \u{1F600} \u{2028}",
        "50% a_b *?[x]",
    ];

    #[test]
    fn quote_round_trips_through_parse() {
        for s in NASTY {
            let filter = format!("userName eq {}", quote(s));
            let want = Filter::compare(AttrPath::new("userName"), CompareOp::Eq, *s);
            assert_eq!(parse(&filter), Ok(want), "{filter}");
            // What the server sees is one comparison, whatever the value held.
            let combined = format!("userName eq {} and active eq true", quote(s));
            assert!(
                matches!(parse(&combined), Ok(Filter::And(l, _)) if matches!(*l, Filter::Compare(..))),
                "{combined}"
            );
        }
        assert_eq!(quote("O\"Brien"), r#""O\"Brien""#);
        assert_eq!(quote("a\u{1}"), r#""a\u0001""#);
        // NUL is quoted, and the parser refuses it: no store holds one.
        assert_eq!(quote("a\u{0}"), r#""a\u0000""#);
        let nul = parse(&format!("userName eq {}", quote("a\u{0}")));
        assert_eq!(nul.unwrap_err().scim_type, "invalidValue");
    }

    #[test]
    fn quote_is_json() {
        for s in NASTY {
            assert_eq!(serde_json::from_str::<String>(&quote(s)).unwrap(), *s);
        }
    }

    #[test]
    fn render_round_trips_through_parse() {
        let filters = [
            r#"userName eq "bjensen""#,
            "a pr or b pr and c pr",
            "a pr and b pr or c pr",
            "a pr or (b pr or c pr)",
            "a pr and (b pr and c pr)",
            "(a pr or b pr) and (c pr or d pr)",
            "not (a pr or b pr) and not (c pr)",
            r#"emails[type eq "work" and (value co "@x" or primary eq true)] or x.y lt -1.5e-3"#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName ne null and members[$ref sw "ht\"tp"]"#,
            "a eq 12345678901234567890 or b eq 0.1 or c eq -0 or d eq 1E400",
        ];
        for input in filters {
            let Ok(f) = parse(input) else {
                // The last one holds a number out of range on purpose.
                assert!(input.contains("1E400"));
                continue;
            };
            let text = render(&f).unwrap();
            assert_eq!(parse(&text).as_ref(), Ok(&f), "{input} -> {text}");
        }
        let f =
            Filter::compare(
                AttrPath::with_sub("name", "givenName"),
                CompareOp::Sw,
                "O\"B",
            )
            .and(Filter::present(AttrPath::new("title")).or(Filter::not(
                Filter::compare(AttrPath::new("active"), CompareOp::Eq, true),
            )));
        assert_eq!(
            render(&f).unwrap(),
            r#"name.givenName sw "O\"B" and (title pr or not (active eq true))"#
        );
        for s in NASTY {
            let f = Filter::value_path(
                AttrPath::new("emails"),
                Filter::compare(AttrPath::new("value"), CompareOp::Co, *s),
            );
            assert_eq!(parse(&render(&f).unwrap()), Ok(f));
        }
    }

    #[test]
    fn render_refuses_names_that_are_not_names() {
        let bad_paths = [
            AttrPath::new("userName pr or x"),
            AttrPath::new(""),
            AttrPath::new("a\"b"),
            AttrPath::with_sub("name", "given Name"),
            AttrPath::with_sub("name", ""),
            AttrPath::new("userName").in_schema("urn:x) or (a"),
            AttrPath::new("userName").in_schema("not-a-urn"),
        ];
        for path in bad_paths {
            let f = Filter::present(path.clone());
            assert!(render(&f).is_err(), "{path:?}");
        }
        let nested = Filter::value_path(
            AttrPath::new("a"),
            Filter::value_path(AttrPath::new("b"), Filter::present(AttrPath::new("c"))),
        );
        assert!(render(&nested).is_err());
        let qualified_inner = Filter::value_path(
            AttrPath::new("a"),
            Filter::present(AttrPath::with_sub("b", "c")),
        );
        assert!(render(&qualified_inner).is_err());
    }

    #[test]
    fn paths() {
        let p = AttrPath::with_sub("Name", "GivenName")
            .in_schema("urn:ietf:params:scim:schemas:core:2.0:User");
        assert!(p.is("name", Some("givenname")));
        assert!(!p.is("name", None));
        assert!(p.urn_is_or_none("URN:IETF:params:scim:schemas:core:2.0:user"));
        assert!(!p.urn_is_or_none("urn:other"));
        assert!(AttrPath::new("x").urn_is_or_none("urn:other"));
        assert_eq!(
            p.to_string(),
            "urn:ietf:params:scim:schemas:core:2.0:User:Name.GivenName"
        );
        assert_eq!(parse_path(&p.to_string()), Ok(p));
    }
}
