//! Translation of a [`Filter`] into a SQL condition with bound parameters.
//!
//! Every condition produced is two-valued (never SQL `NULL`): comparisons are guarded with
//! `expr IS NOT NULL AND ...`, so `NOT` and `ne` give SCIM's answer for missing values
//! ("not equal") instead of SQL's unknown. Values only ever travel as parameters.

use super::{AttrPath, CompareOp, Filter, FilterError, TREE_DEPTH, Value};

/// The SQL flavour of the placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?N`.
    Sqlite,
    /// `$N`, with a cast naming the parameter's type (`$N::text`) so the server never has to
    /// infer it.
    Postgres,
}

/// A bound parameter of a [`Sql`] fragment.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
    /// A boolean (SQLite stores it as 0/1).
    Bool(bool),
    /// A double.
    Real(f64),
}

impl Param {
    /// The parameter for the `postgres` crate.
    pub fn as_postgres(&self) -> &(dyn postgres::types::ToSql + Sync) {
        match self {
            Param::Text(s) => s,
            Param::Int(i) => i,
            Param::Bool(b) => b,
            Param::Real(x) => x,
        }
    }
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput;
        Ok(match self {
            Param::Text(s) => ToSqlOutput::from(s.as_str()),
            Param::Int(i) => ToSqlOutput::from(*i),
            Param::Bool(b) => ToSqlOutput::from(*b),
            Param::Real(x) => ToSqlOutput::from(*x),
        })
    }
}

/// A SQL condition for a `WHERE` clause and its parameters: `params[i]` is placeholder number
/// `first_param + i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    /// The condition, parenthesized so it can be joined with `AND` as it is.
    pub text: String,
    /// Values for the placeholders, in order.
    pub params: Vec<Param>,
}

/// How a value of an attribute compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string; `case_exact: false` compares with `lower()` on both sides (RFC 7643 §2.2
    /// `caseExact`). SQLite's `lower()` folds ASCII letters only.
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

/// Where an attribute lives in SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    /// The SQL expression of the value, e.g. `a.user_name`. For a multi-valued attribute,
    /// the value compared when the filter names no sub-attribute (normally `value`),
    /// evaluated inside [`Multi::exists`].
    pub expr: String,
    /// How it compares.
    pub kind: Kind,
    /// Set for a multi-valued attribute kept in other tables.
    pub multi: Option<Multi>,
}

impl Attr {
    /// A single-valued attribute.
    pub fn new(expr: impl Into<String>, kind: Kind) -> Self {
        Attr {
            expr: expr.into(),
            kind,
            multi: None,
        }
    }

    /// This attribute, multi-valued: `exists` is an `EXISTS (...)` template with one `{}`
    /// for the condition, and `subs` lists the sub-attributes usable inside it.
    pub fn multi(mut self, exists: impl Into<String>, subs: Vec<SubAttr>) -> Self {
        self.multi = Some(Multi {
            exists: exists.into(),
            subs,
        });
        self
    }
}

/// A multi-valued attribute kept in other tables, e.g. a user's `groups`, a group's `members`.
#[derive(Debug, Clone, PartialEq)]
pub struct Multi {
    /// `EXISTS (SELECT 1 FROM ... WHERE <correlation> AND {})`: the condition on the
    /// sub-attributes replaces the `{}`. All conditions of one value path go into one
    /// `EXISTS`, so they must hold for the same value.
    pub exists: String,
    /// The sub-attributes (`value`, `display`, `type`, `$ref`, ...), expressions valid inside
    /// `exists`.
    pub subs: Vec<SubAttr>,
}

/// A sub-attribute of a [`Multi`].
#[derive(Debug, Clone, PartialEq)]
pub struct SubAttr {
    /// Its name; looked up ignoring case.
    pub name: String,
    /// Its SQL expression inside [`Multi::exists`].
    pub expr: String,
    /// How it compares.
    pub kind: Kind,
}

impl SubAttr {
    /// A sub-attribute named `name` at `expr`.
    pub fn new(name: impl Into<String>, expr: impl Into<String>, kind: Kind) -> Self {
        SubAttr {
            name: name.into(),
            expr: expr.into(),
            kind,
        }
    }
}

/// The server's mapping from SCIM attributes to SQL.
pub trait Attributes {
    /// Where `path` lives, or `None` for an attribute that cannot be filtered on.
    ///
    /// Names and URNs come as written in the filter and compare case-insensitively; the URN
    /// may be absent, the resource's core schema or an extension: the mapping decides. For a
    /// path with a sub-attribute the full path is asked first; when that gives `None` (or a
    /// multi-valued attribute), the parent is asked and the sub-attribute is looked up in
    /// [`Multi::subs`].
    fn resolve(&self, path: &AttrPath) -> Option<Attr>;
}

/// Translates `f` into a SQL condition over the columns that `attrs` names, its placeholders
/// numbered from `first_param` (1 for a statement without other parameters).
///
/// Errors, all answered as `invalidFilter`: an attribute `attrs` does not know (named in the
/// message), a value of the wrong type for the attribute, an operator the attribute's type
/// has no meaning for (`gt` on a boolean, `co` on an integer).
pub fn to_sql(
    f: &Filter,
    attrs: &dyn Attributes,
    dialect: Dialect,
    first_param: usize,
) -> Result<Sql, FilterError> {
    if first_param == 0 {
        return Err(FilterError::new("placeholders are numbered from 1"));
    }
    let mut t = Translator {
        attrs,
        dialect,
        next: first_param,
        params: Vec::new(),
    };
    let text = t.cond(f, Scope::Top, 0)?;
    Ok(Sql {
        text,
        params: t.params,
    })
}

/// The expression to sort by for `sortBy` = `path`, or `None` when `path` is unknown or
/// multi-valued. Case-insensitive text sorts by its `lower()`.
pub fn order_by(path: &AttrPath, attrs: &dyn Attributes) -> Option<String> {
    let attr = attrs.resolve(path)?;
    if attr.multi.is_some() {
        return None;
    }
    Some(match attr.kind {
        Kind::Text { case_exact: false } => format!("lower({})", attr.expr),
        _ => attr.expr,
    })
}

/// The operands of a chain of `and` (or `or`), flattened on both sides without recursion.
pub(crate) fn chain(f: &Filter, is_and: bool) -> Vec<&Filter> {
    let mut out = Vec::new();
    let mut stack = vec![f];
    while let Some(g) = stack.pop() {
        match (g, is_and) {
            (Filter::And(l, r), true) | (Filter::Or(l, r), false) => {
                stack.push(r);
                stack.push(l);
            }
            _ => out.push(g),
        }
    }
    out
}

/// Where the paths of a condition are looked up.
#[derive(Clone, Copy)]
enum Scope<'s> {
    /// The resource itself.
    Top,
    /// Inside `parent[...]` of a multi-valued attribute: sub-attribute names, already inside
    /// its `EXISTS`.
    InMulti(&'s AttrPath, &'s Multi),
    /// Inside `parent[...]` of a single-valued complex attribute: `parent.name`.
    Complex(&'s AttrPath),
}

/// A resolved value: its expression and kind, and the `EXISTS` template it needs, if any.
struct Column {
    expr: String,
    kind: Kind,
    exists: Option<String>,
}

struct Translator<'a> {
    attrs: &'a dyn Attributes,
    dialect: Dialect,
    next: usize,
    params: Vec<Param>,
}

impl Translator<'_> {
    fn cond(&mut self, f: &Filter, scope: Scope<'_>, depth: usize) -> Result<String, FilterError> {
        if depth > TREE_DEPTH {
            return Err(FilterError::new(format!(
                "filter nested deeper than {TREE_DEPTH} levels"
            )));
        }
        match f {
            // `eq null` is "has no value" and `ne null` "has a value"; both wrap the whole
            // test, so on a multi-valued attribute `eq null` means no value at all.
            Filter::Compare(path, CompareOp::Eq, Value::Null) => {
                Ok(format!("(NOT {})", self.present(path, scope)?))
            }
            Filter::Compare(path, CompareOp::Ne, Value::Null) => self.present(path, scope),
            Filter::Compare(path, op, value) => {
                let col = self.resolve(path, scope)?;
                let c = self.compare(&col, path, *op, value)?;
                wrap(col.exists.as_deref(), &c, path)
            }
            Filter::Present(path) => self.present(path, scope),
            Filter::And(..) | Filter::Or(..) => {
                let is_and = matches!(f, Filter::And(..));
                let parts = chain(f, is_and)
                    .into_iter()
                    .map(|g| self.cond(g, scope, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(balanced(&parts, if is_and { "AND" } else { "OR" }))
            }
            Filter::Not(g) => Ok(format!("(NOT {})", self.cond(g, scope, depth + 1)?)),
            Filter::ValuePath(path, g) => {
                if !matches!(scope, Scope::Top) {
                    return Err(FilterError::new(format!(
                        "value path {path}[...] inside another value path"
                    )));
                }
                if path.sub.is_some() {
                    return Err(FilterError::new(format!(
                        "value path {path}[...] must not name a sub-attribute before '['"
                    )));
                }
                match self.attrs.resolve(path) {
                    Some(Attr {
                        multi: Some(multi), ..
                    }) => {
                        let c = self.cond(g, Scope::InMulti(path, &multi), depth + 1)?;
                        wrap(Some(&multi.exists), &c, path)
                    }
                    _ => self.cond(g, Scope::Complex(path), depth + 1),
                }
            }
        }
    }

    fn present(&mut self, path: &AttrPath, scope: Scope<'_>) -> Result<String, FilterError> {
        let col = self.resolve(path, scope)?;
        let e = &col.expr;
        let c = match col.kind {
            Kind::Text { .. } | Kind::DateTime => format!("({e} IS NOT NULL AND {e} <> '')"),
            Kind::Bool | Kind::Int => format!("({e} IS NOT NULL)"),
        };
        wrap(col.exists.as_deref(), &c, path)
    }

    fn resolve(&self, path: &AttrPath, scope: Scope<'_>) -> Result<Column, FilterError> {
        match scope {
            Scope::Top => self.resolve_top(path),
            Scope::InMulti(parent, multi) => {
                let sub = AttrPath {
                    sub: Some(path.attr.clone()),
                    ..parent.clone()
                };
                if path.urn.is_some() || path.sub.is_some() {
                    return Err(unknown(path));
                }
                multi
                    .subs
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(&path.attr))
                    .map(|s| Column {
                        expr: s.expr.clone(),
                        kind: s.kind,
                        exists: None,
                    })
                    .ok_or_else(|| unknown(&sub))
            }
            Scope::Complex(parent) => {
                if path.urn.is_some() || path.sub.is_some() {
                    return Err(unknown(path));
                }
                self.resolve_top(&AttrPath {
                    sub: Some(path.attr.clone()),
                    ..parent.clone()
                })
            }
        }
    }

    fn resolve_top(&self, path: &AttrPath) -> Result<Column, FilterError> {
        let attr = match self.attrs.resolve(path) {
            Some(attr) => attr,
            None if path.sub.is_some() => match self.attrs.resolve(&path.parent()) {
                Some(attr) if attr.multi.is_some() => attr,
                _ => return Err(unknown(path)),
            },
            None => return Err(unknown(path)),
        };
        let Some(multi) = attr.multi else {
            return Ok(Column {
                expr: attr.expr,
                kind: attr.kind,
                exists: None,
            });
        };
        let Some(sub) = &path.sub else {
            return Ok(Column {
                expr: attr.expr,
                kind: attr.kind,
                exists: Some(multi.exists),
            });
        };
        let found = multi
            .subs
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(sub))
            .ok_or_else(|| unknown(path))?;
        Ok(Column {
            expr: found.expr.clone(),
            kind: found.kind,
            exists: Some(multi.exists.clone()),
        })
    }

    fn compare(
        &mut self,
        col: &Column,
        path: &AttrPath,
        op: CompareOp,
        value: &Value,
    ) -> Result<String, FilterError> {
        if op == CompareOp::Ne {
            // Not equal includes "no value": the negation of the guarded, two-valued `eq`.
            return Ok(format!(
                "(NOT {})",
                self.compare(col, path, CompareOp::Eq, value)?
            ));
        }
        let e = &col.expr;
        let sql_op = match op {
            CompareOp::Eq => "=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Ne | CompareOp::Co | CompareOp::Sw | CompareOp::Ew => "",
        };
        let is_like = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
        let cmp = match (col.kind, value) {
            (Kind::Text { case_exact }, Value::Str(s)) if is_like => {
                self.like(e, case_exact, op, s)
            }
            (Kind::Text { case_exact: true } | Kind::DateTime, Value::Str(s)) if !is_like => {
                let p = self.bind(Param::Text(s.clone()));
                format!("{e} {sql_op} {p}")
            }
            (Kind::Text { case_exact: false }, Value::Str(s)) => {
                let p = self.bind(Param::Text(s.clone()));
                format!("lower({e}) {sql_op} lower({p})")
            }
            (Kind::Bool, Value::Bool(b)) if op == CompareOp::Eq => {
                let p = self.bind(Param::Bool(*b));
                format!("{e} = {p}")
            }
            (Kind::Int, Value::Num(n)) if !is_like => {
                let param = match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => Param::Int(i),
                    (None, Some(x)) => Param::Real(x),
                    (None, None) => {
                        return Err(FilterError::new(format!(
                            "{path}: number {n} is out of range"
                        )));
                    }
                };
                let p = self.bind(param);
                format!("{e} {sql_op} {p}")
            }
            (_, Value::Null) => {
                return Err(FilterError::new(format!(
                    "'{path} {} null': null compares with eq and ne only",
                    op.as_str()
                )));
            }
            (kind, _) => {
                return Err(mismatch(path, kind, op, value));
            }
        };
        Ok(format!("({e} IS NOT NULL AND {cmp})"))
    }

    /// `co`/`sw`/`ew`: a `LIKE` pattern with the value's own `%`, `_` and `\` escaped.
    /// SQLite's `LIKE` ignores ASCII case whatever the column, so case-exact text there uses
    /// `GLOB`, whose metacharacters are escaped by brackets.
    fn like(&mut self, e: &str, case_exact: bool, op: CompareOp, s: &str) -> String {
        let glob = case_exact && self.dialect == Dialect::Sqlite;
        let mut escaped = String::with_capacity(s.len() + 2);
        for c in s.chars() {
            match (glob, c) {
                (false, '%' | '_' | '\\') => {
                    escaped.push('\\');
                    escaped.push(c);
                }
                (true, '*' | '?' | '[') => {
                    escaped.push('[');
                    escaped.push(c);
                    escaped.push(']');
                }
                _ => escaped.push(c),
            }
        }
        let any = if glob { "*" } else { "%" };
        let pattern = match op {
            CompareOp::Co => format!("{any}{escaped}{any}"),
            CompareOp::Sw => format!("{escaped}{any}"),
            _ => format!("{any}{escaped}"),
        };
        let p = self.bind(Param::Text(pattern));
        match (glob, case_exact) {
            (true, _) => format!("{e} GLOB {p}"),
            (false, true) => format!("{e} LIKE {p} ESCAPE '\\'"),
            (false, false) => format!("lower({e}) LIKE lower({p}) ESCAPE '\\'"),
        }
    }

    fn bind(&mut self, param: Param) -> String {
        let n = self.next;
        self.next += 1;
        let placeholder = match (self.dialect, &param) {
            (Dialect::Sqlite, _) => format!("?{n}"),
            (Dialect::Postgres, Param::Text(_)) => format!("${n}::text"),
            (Dialect::Postgres, Param::Int(_)) => format!("${n}::bigint"),
            (Dialect::Postgres, Param::Bool(_)) => format!("${n}::boolean"),
            (Dialect::Postgres, Param::Real(_)) => format!("${n}::float8"),
        };
        self.params.push(param);
        placeholder
    }
}

fn unknown(path: &AttrPath) -> FilterError {
    FilterError::new(format!("unknown attribute '{path}'"))
}

fn mismatch(path: &AttrPath, kind: Kind, op: CompareOp, value: &Value) -> FilterError {
    let what = match kind {
        Kind::Text { .. } => "a string attribute",
        Kind::Bool => "a boolean attribute",
        Kind::Int => "an integer attribute",
        Kind::DateTime => "a dateTime attribute",
    };
    let allowed = match kind {
        Kind::Text { .. } => "eq ne co sw ew gt ge lt le pr with a string",
        Kind::Bool => "eq ne pr with true or false",
        Kind::Int => "eq ne gt ge lt le pr with a number",
        Kind::DateTime => "eq ne gt ge lt le pr with a string",
    };
    let given = match value {
        Value::Str(_) => "a string",
        Value::Num(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    };
    FilterError::new(format!(
        "'{path}' is {what}: '{}' with {given} does not apply (use {allowed})",
        op.as_str()
    ))
}

/// Puts `cond` into the `{}` of an `EXISTS` template.
fn wrap(exists: Option<&str>, cond: &str, path: &AttrPath) -> Result<String, FilterError> {
    let Some(template) = exists else {
        return Ok(cond.to_owned());
    };
    let Some((head, tail)) = template.split_once("{}") else {
        return Err(FilterError::new(format!(
            "the mapping of '{path}' has no {{}} in its EXISTS template"
        )));
    };
    Ok(format!("{head}{cond}{tail}"))
}

/// `parts` joined with `op` as a balanced tree: SQLite refuses expressions more than 1000
/// levels deep, and a long `or` chain would otherwise be one level per operand.
fn balanced(parts: &[String], op: &str) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        _ => {
            let (l, r) = parts.split_at(parts.len() / 2);
            format!("({} {op} {})", balanced(l, op), balanced(r, op))
        }
    }
}
