//! Translation of a SCIM [`Filter`] into a SQL condition with bound parameters.
//!
//! Every condition produced is two-valued (never SQL `NULL`): comparisons are guarded with
//! `expr IS NOT NULL AND ...`, so `NOT` and `ne` give SCIM's answer for missing values
//! ("not equal") instead of SQL's unknown. Values only ever travel as parameters.

use super::conn::{Dialect, Value as Param};
use crate::scim::excerpt;
use crate::scim::filter::{AttrPath, CompareOp, Filter, FilterError, Kind, TREE_DEPTH, Value};

/// A SQL condition for a `WHERE` clause and its parameters: `params[i]` is placeholder number
/// `first_param + i`, written `?N` in both dialects (the PostgreSQL connection numbers them
/// `$N`); on PostgreSQL each names its type (`?N::text`) so the server never has to infer it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    /// The condition, parenthesized so it can be joined with `AND` as it is.
    pub text: String,
    /// Values for the placeholders, in order.
    pub params: Vec<Param>,
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

    /// This attribute, multi-valued: `exists` is a template with one `{}` ([`Multi::exists`])
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
    /// "Some value satisfies `{}`": `EXISTS (SELECT 1 FROM ... WHERE <correlation> AND {})`,
    /// or better an uncorrelated semi-join, `key IN (SELECT owner FROM ... WHERE {})`, which
    /// a database runs once per statement rather than once per row. The condition on the
    /// sub-attributes replaces the `{}`. All conditions of one value path go into one
    /// template, so they must hold for the same value; so do the operands of an `or` chain
    /// that use the same template (some value satisfies a or some satisfies b, exactly when
    /// some value satisfies a or b), which makes a long chain one look-up, not one each.
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

/// Where the attributes of a resource live in SQL ([`super::columns::Mapped`]).
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

/// A condition and the `EXISTS` template it still has to go into, if any.
struct Part {
    exists: Option<String>,
    cond: String,
    /// The attribute the template belongs to, for messages.
    path: AttrPath,
}

impl Part {
    fn new(exists: Option<String>, cond: String, path: &AttrPath) -> Self {
        Part {
            exists,
            cond,
            path: path.clone(),
        }
    }

    fn plain(cond: String) -> Self {
        Part {
            exists: None,
            cond,
            path: AttrPath::new(""),
        }
    }

    fn wrapped(self) -> Result<String, FilterError> {
        wrap(self.exists.as_deref(), &self.cond, &self.path)
    }
}

struct Translator<'a> {
    attrs: &'a dyn Attributes,
    dialect: Dialect,
    next: usize,
    params: Vec<Param>,
}

impl Translator<'_> {
    fn cond(&mut self, f: &Filter, scope: Scope<'_>, depth: usize) -> Result<String, FilterError> {
        let part = self.part(f, scope, depth)?;
        part.wrapped()
    }

    /// `f` translated, its `EXISTS` (if any) not yet applied, so that an `or` chain can put
    /// the conditions of several operands into one.
    fn part(&mut self, f: &Filter, scope: Scope<'_>, depth: usize) -> Result<Part, FilterError> {
        if depth > TREE_DEPTH {
            return Err(FilterError::new(format!(
                "filter nested deeper than {TREE_DEPTH} levels"
            )));
        }
        match f {
            // `eq null` is "has no value" and `ne null` "has a value"; both wrap the whole
            // test, so on a multi-valued attribute `eq null` means no value at all.
            Filter::Compare(path, CompareOp::Eq, Value::Null) => Ok(Part::plain(format!(
                "(NOT {})",
                self.present(path, scope)?.wrapped()?
            ))),
            Filter::Compare(path, CompareOp::Ne, Value::Null) => self.present(path, scope),
            Filter::Compare(path, op, value) => {
                let col = self.resolve(path, scope)?;
                let c = self.compare(&col, path, *op, value)?;
                Ok(Part::new(col.exists, c, path))
            }
            Filter::Present(path) => self.present(path, scope),
            Filter::And(..) => {
                let parts = chain(f, true)
                    .into_iter()
                    .map(|g| self.part(g, scope, depth + 1)?.wrapped())
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Part::plain(balanced(&parts, "AND")))
            }
            Filter::Or(..) => self.or_chain(f, scope, depth),
            Filter::Not(g) => Ok(Part::plain(format!(
                "(NOT {})",
                self.part(g, scope, depth + 1)?.wrapped()?
            ))),
            Filter::ValuePath(path, g) => {
                if !matches!(scope, Scope::Top) {
                    return Err(FilterError::new(format!(
                        "value path {}[...] inside another value path",
                        excerpt(&path.to_string())
                    )));
                }
                if path.sub.is_some() {
                    return Err(FilterError::new(format!(
                        "value path {}[...] must not name a sub-attribute before '['",
                        excerpt(&path.to_string())
                    )));
                }
                match self.attrs.resolve(path) {
                    Some(Attr {
                        multi: Some(multi), ..
                    }) => {
                        let c = self.cond(g, Scope::InMulti(path, &multi), depth + 1)?;
                        Ok(Part::new(Some(multi.exists), c, path))
                    }
                    _ => self.part(g, Scope::Complex(path), depth + 1),
                }
            }
        }
    }

    /// An `or` chain.
    #[inline(never)]
    fn or_chain(
        &mut self,
        f: &Filter,
        scope: Scope<'_>,
        depth: usize,
    ) -> Result<Part, FilterError> {
        // Operands over the same multi-valued attribute share one template: "some
        // value matches a, or some value matches b" is "some value matches a or b",
        // and one look-up of the values beats one per operand.
        let mut plain: Vec<String> = Vec::new();
        let mut multi: Vec<(String, AttrPath, Vec<String>)> = Vec::new();
        for g in chain(f, false) {
            let part = self.part(g, scope, depth + 1)?;
            match part.exists {
                None => plain.push(part.cond),
                Some(t) => match multi.iter_mut().find(|(u, ..)| *u == t) {
                    Some((.., conds)) => conds.push(part.cond),
                    None => multi.push((t, part.path, vec![part.cond])),
                },
            }
        }
        if plain.is_empty()
            && let [(t, path, conds)] = multi.as_mut_slice()
        {
            return Ok(Part {
                exists: Some(std::mem::take(t)),
                cond: balanced(conds, "OR"),
                path: std::mem::replace(path, AttrPath::new("")),
            });
        }
        for (t, path, conds) in multi {
            plain.push(wrap(Some(&t), &balanced(&conds, "OR"), &path)?);
        }
        Ok(Part::plain(balanced(&plain, "OR")))
    }

    fn present(&mut self, path: &AttrPath, scope: Scope<'_>) -> Result<Part, FilterError> {
        let col = self.resolve(path, scope)?;
        let e = &col.expr;
        let c = match col.kind {
            Kind::Text { .. } | Kind::DateTime => format!("({e} IS NOT NULL AND {e} <> '')"),
            Kind::Bool | Kind::Int => format!("({e} IS NOT NULL)"),
        };
        Ok(Part::new(col.exists, c, path))
    }

    fn resolve(&self, path: &AttrPath, scope: Scope<'_>) -> Result<Column, FilterError> {
        let (parent, multi) = match scope {
            Scope::Top => return self.resolve_top(path),
            Scope::InMulti(parent, multi) => (parent, Some(multi)),
            Scope::Complex(parent) => (parent, None),
        };
        if path.urn.is_some() || path.sub.is_some() {
            return Err(unknown(path));
        }
        let sub = AttrPath {
            sub: Some(path.attr.clone()),
            ..parent.clone()
        };
        match multi {
            Some(multi) => sub_column(multi, &path.attr, None).ok_or_else(|| unknown(&sub)),
            None => self.resolve_top(&sub),
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
        let (expr, kind) = (attr.expr, attr.kind);
        match (attr.multi, &path.sub) {
            (None, _) => Ok(Column {
                expr,
                kind,
                exists: None,
            }),
            (Some(multi), None) => Ok(Column {
                expr,
                kind,
                exists: Some(multi.exists),
            }),
            (Some(multi), Some(sub)) => {
                sub_column(&multi, sub, Some(multi.exists.clone())).ok_or_else(|| unknown(path))
            }
        }
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
        let sql_op = sql_op(op).unwrap_or_default();
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
            (Kind::Int, Value::Num(n)) if !is_like => match whole(n, op) {
                Some(Bound::Int(op, i)) => {
                    let p = self.bind(Param::Int(i));
                    format!("{e} {op} {p}")
                }
                Some(Bound::Always(holds)) => (if holds { "1 = 1" } else { "1 = 0" }).into(),
                None => {
                    return Err(FilterError::new(format!(
                        "{}: number {} is out of range",
                        excerpt(&path.to_string()),
                        excerpt(&n.to_string())
                    )));
                }
            },
            (_, Value::Null) => {
                return Err(FilterError::new(format!(
                    "'{} {} null': null compares with eq and ne only",
                    excerpt(&path.to_string()),
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
        let cast = match (self.dialect, &param) {
            (Dialect::Sqlite, _) => "",
            (Dialect::Postgres, Param::Int(_)) => "::bigint",
            (Dialect::Postgres, Param::Bool(_)) => "::boolean",
            (Dialect::Postgres, _) => "::text",
        };
        self.params.push(param);
        format!("?{n}{cast}")
    }
}

/// An integer comparison with a number: the operator and integer that give the same answer
/// over integers (`gt 6.5` is `> 6`, `le 1e1` is `<= 10`), or the answer itself when no
/// integer can hold (`eq 6.5`, `lt 1e30`).
enum Bound {
    Int(&'static str, i64),
    Always(bool),
}

/// The SQL operator of an equality or ordering comparison.
fn sql_op(op: CompareOp) -> Option<&'static str> {
    Some(match op {
        CompareOp::Eq => "=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Ne | CompareOp::Co | CompareOp::Sw | CompareOp::Ew => return None,
    })
}

fn whole(n: &serde_json::Number, op: CompareOp) -> Option<Bound> {
    let sql_op = sql_op(op)?;
    if let Some(i) = n.as_i64() {
        return Some(Bound::Int(sql_op, i));
    }
    let x = n.as_f64().filter(|x| x.is_finite())?;
    // 2^63: the first value beyond i64::MAX.
    let limit = 9_223_372_036_854_775_808.0_f64;
    if x >= limit || x < -limit {
        // Above every integer (or below every one).
        let above = x > 0.0;
        return Some(Bound::Always(match op {
            CompareOp::Lt | CompareOp::Le => above,
            CompareOp::Gt | CompareOp::Ge => !above,
            _ => false,
        }));
    }
    if x.fract() == 0.0 {
        return Some(Bound::Int(sql_op, x as i64));
    }
    let (floor, ceil) = (x.floor() as i64, x.ceil() as i64);
    Some(match op {
        CompareOp::Gt => Bound::Int(">", floor),
        CompareOp::Ge => Bound::Int(">=", ceil),
        CompareOp::Lt => Bound::Int("<", ceil),
        CompareOp::Le => Bound::Int("<=", floor),
        _ => Bound::Always(false),
    })
}

/// The column of `multi`'s sub-attribute `name`, inside `exists`.
fn sub_column(multi: &Multi, name: &str, exists: Option<String>) -> Option<Column> {
    let s = multi
        .subs
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))?;
    Some(Column {
        expr: s.expr.clone(),
        kind: s.kind,
        exists,
    })
}

fn unknown(path: &AttrPath) -> FilterError {
    FilterError::new(format!(
        "unknown attribute '{}'",
        excerpt(&path.to_string())
    ))
}

fn mismatch(path: &AttrPath, kind: Kind, op: CompareOp, value: &Value) -> FilterError {
    let (what, allowed) = match kind {
        Kind::Text { .. } => ("a string", "eq ne co sw ew gt ge lt le pr with a string"),
        Kind::Bool => ("a boolean", "eq ne pr with true or false"),
        Kind::Int => ("an integer", "eq ne gt ge lt le pr with a number"),
        Kind::DateTime => ("a dateTime", "eq ne gt ge lt le pr with a string"),
    };
    let given = match value {
        Value::Str(_) => "a string",
        Value::Num(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    };
    FilterError::new(format!(
        "'{}' is {what} attribute: '{}' with {given} does not apply (use {allowed})",
        excerpt(&path.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse;
    use rusqlite::Connection;

    const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const EXT: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:User";

    /// The mapping a server would supply, over the test tables.
    struct Map;

    impl Attributes for Map {
        fn resolve(&self, path: &AttrPath) -> Option<Attr> {
            let ci = Kind::Text { case_exact: false };
            let exact = Kind::Text { case_exact: true };
            if path
                .urn
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(EXT))
            {
                return match () {
                    _ if path.is("birthDate", None) => {
                        Some(Attr::new("a.birth_date", Kind::DateTime))
                    }
                    _ if path.is("loginCount", None) => Some(Attr::new("a.login_count", Kind::Int)),
                    _ => None,
                };
            }
            if !path.urn_is_or_none(CORE) {
                return None;
            }
            // `groups` answers for any sub-attribute; `to_sql` looks the sub-attribute up.
            if path.attr.eq_ignore_ascii_case("groups") {
                return Some(Attr::new("CAST(m.group_id AS TEXT)", exact).multi(
                    "EXISTS (SELECT 1 FROM memberships m JOIN groups g ON g.id = m.group_id \
                     WHERE m.account_id = a.id AND {})",
                    vec![
                        SubAttr::new("value", "CAST(m.group_id AS TEXT)", exact),
                        SubAttr::new("display", "g.display_name", ci),
                    ],
                ));
            }
            let (expr, kind) = match () {
                _ if path.is("id", None) => ("CAST(a.id AS TEXT)", exact),
                _ if path.is("userName", None) => ("a.user_name", ci),
                _ if path.is("name", Some("givenName")) => ("a.given_name", ci),
                _ if path.is("emails", None) || path.is("emails", Some("value")) => ("a.email", ci),
                _ if path.is("active", None) => ("a.active", Kind::Bool),
                _ if path.is("title", None) => ("a.title", exact),
                _ => return None,
            };
            Some(Attr::new(expr, kind))
        }
    }

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            r#"
            CREATE TABLE accounts (id INTEGER PRIMARY KEY, user_name TEXT, given_name TEXT,
                email TEXT, active INTEGER, birth_date TEXT, title TEXT, login_count INTEGER);
            CREATE TABLE groups (id INTEGER PRIMARY KEY, display_name TEXT);
            CREATE TABLE memberships (group_id INTEGER, account_id INTEGER);
            INSERT INTO accounts VALUES
                (1, 'bjensen', 'Barbara', 'bjensen@example.com', 1, '1980-02-01', 'Manager', 10),
                (2, 'JSmith', 'John', 'john@Example.ORG', 0, '1975-12-24', NULL, 0),
                (3, 'x'' OR 1=1 --', NULL, NULL, 1, NULL, '', NULL),
                (4, '50%off', 'Ann_b', 'a_b@example.com', NULL, '2001-07-30', 'manager', 5),
                (5, 'a\b', 'Anna', 'ab@example.com', 1, '1990-01-01', 'Dr.*?[x]', 7),
                (6, 'o"brien', 'Ronxbo', '', 0, NULL, 'Senior Manager', -3);
            INSERT INTO groups VALUES (1, 'Admins'), (2, 'Staff'), (3, 'Ops_1');
            INSERT INTO memberships VALUES (1, 1), (2, 1), (2, 2), (3, 4), (1, 5);
            "#,
        )
        .unwrap();
        conn
    }

    fn run(conn: &Connection, sql: &Sql, extra: &[Param]) -> Vec<i64> {
        let q = format!("SELECT id FROM accounts a WHERE {} ORDER BY id", sql.text);
        let mut st = conn.prepare(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let params = extra.iter().chain(&sql.params);
        st.query_map(rusqlite::params_from_iter(params), |r| r.get(0))
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn ids(conn: &Connection, filter: &str) -> Result<Vec<i64>, FilterError> {
        let f = parse(filter)?;
        let sql = to_sql(&f, &Map, Dialect::Sqlite, 1)?;
        Ok(run(conn, &sql, &[]))
    }

    #[test]
    fn filters_select_exactly_these_accounts() {
        let conn = db();
        let birth = format!("{EXT}:birthDate");
        let logins = format!("{EXT}:loginCount");
        let cases: Vec<(String, &[i64])> = vec![
            // Equality, case-insensitive names and values, URNs.
            (r#"userName eq "bjensen""#.into(), &[1]),
            (r#"userName eq "BJensen""#.into(), &[1]),
            (r#"USERNAME EQ "bjensen""#.into(), &[1]),
            (format!(r#"{CORE}:userName eq "jsmith""#), &[2]),
            (
                format!(r#"{}:USERNAME eq "jsmith""#, CORE.to_uppercase()),
                &[2],
            ),
            (r#"id eq "4""#.into(), &[4]),
            (r#"userName eq "nobody""#.into(), &[]),
            // Injection attempts are values like any other.
            (r#"userName eq "x' OR 1=1 --""#.into(), &[3]),
            (r#"userName eq "x' or 1=1 --""#.into(), &[3]),
            (r#"userName eq "nobody' OR '1'='1""#.into(), &[]),
            (r#"userName eq "\" or 1=1 --""#.into(), &[]),
            (r#"userName eq "'); DROP TABLE accounts; --""#.into(), &[]),
            (r#"userName co "?1""#.into(), &[]),
            (r#"userName co "o\"b""#.into(), &[6]),
            // LIKE metacharacters and the escape character.
            (r#"userName co "50%""#.into(), &[4]),
            (r#"userName co "%""#.into(), &[4]),
            (r#"userName sw "5_%""#.into(), &[]),
            (r#"name.givenName co "n_b""#.into(), &[4]),
            (r#"name.givenName sw "Ann_""#.into(), &[4]),
            (r#"name.givenName sw "ann""#.into(), &[4, 5]),
            (r#"emails sw "a_b""#.into(), &[4]),
            (r#"userName eq "a\\b""#.into(), &[5]),
            (r#"userName co "\\""#.into(), &[5]),
            (r#"userName sw "a\\""#.into(), &[5]),
            (r#"userName ew "\\b""#.into(), &[5]),
            (r#"userName co """#.into(), &[1, 2, 3, 4, 5, 6]),
            // co, sw, ew ignoring case.
            (r#"userName ew "SEN""#.into(), &[1]),
            (r#"emails co "EXAMPLE.org""#.into(), &[2]),
            (r#"emails.value co "@example.""#.into(), &[1, 2, 4, 5]),
            (r#"userName sw "J""#.into(), &[2]),
            // Case-exact text, GLOB metacharacters as plain characters.
            (r#"title eq "Manager""#.into(), &[1]),
            (r#"title eq "manager""#.into(), &[4]),
            (r#"title co "anager""#.into(), &[1, 4, 6]),
            (r#"title co "MANAGER""#.into(), &[]),
            (r#"title sw "M""#.into(), &[1]),
            (r#"title ew "Manager""#.into(), &[1, 6]),
            (r#"title co "*?[""#.into(), &[5]),
            (r#"title co "?""#.into(), &[5]),
            (r#"title co "*""#.into(), &[5]),
            (r#"title sw "Dr.*""#.into(), &[5]),
            (r#"title ew "]""#.into(), &[5]),
            (r#"title co "[x]""#.into(), &[5]),
            (r#"title co "[a-z]""#.into(), &[]),
            // pr: not null and not empty.
            ("title pr".into(), &[1, 4, 5, 6]),
            ("emails pr".into(), &[1, 2, 4, 5]),
            ("active pr".into(), &[1, 2, 3, 5, 6]),
            (format!("{birth} pr"), &[1, 2, 4, 5]),
            (format!("{logins} pr"), &[1, 2, 4, 5, 6]),
            ("not (title pr)".into(), &[2, 3]),
            ("title eq null".into(), &[2, 3]),
            ("title ne null".into(), &[1, 4, 5, 6]),
            // ne and not: a missing value is "not equal".
            (r#"title ne "Manager""#.into(), &[2, 3, 4, 5, 6]),
            (r#"not (title eq "Manager")"#.into(), &[2, 3, 4, 5, 6]),
            (r#"name.givenName ne "anna""#.into(), &[1, 2, 3, 4, 6]),
            (r#"not (not (title eq "Manager"))"#.into(), &[1]),
            // Booleans.
            ("active eq true".into(), &[1, 3, 5]),
            ("active eq FALSE".into(), &[2, 6]),
            ("active ne true".into(), &[2, 4, 6]),
            ("not (active eq true)".into(), &[2, 4, 6]),
            ("active eq null".into(), &[4]),
            // Precedence and grouping.
            (
                r#"userName eq "bjensen" or userName eq "jsmith" and active eq true"#.into(),
                &[1],
            ),
            (
                r#"(userName eq "bjensen" or userName eq "jsmith") and active eq false"#.into(),
                &[2],
            ),
            (
                r#"userName eq "jsmith" and active eq false or title eq "manager""#.into(),
                &[2, 4],
            ),
            (
                r#"not (userName eq "bjensen" or userName eq "jsmith") and active eq true"#.into(),
                &[3, 5],
            ),
            (r#"title pr and not (title co "anager")"#.into(), &[5]),
            // Ordering: text, dateTime as text, integers.
            (r#"userName gt "x""#.into(), &[3]),
            (r#"userName le "B""#.into(), &[4, 5]),
            (format!(r#"{birth} lt "1980-01-01""#), &[2]),
            (format!(r#"{birth} ge "1990-01-01""#), &[4, 5]),
            (format!(r#"{birth} eq "1980-02-01""#), &[1]),
            (format!(r#"{birth} ne "1980-02-01""#), &[2, 3, 4, 5, 6]),
            (format!("{logins} gt 5"), &[1, 5]),
            (format!("{logins} ge 5"), &[1, 4, 5]),
            (format!("{logins} le 0"), &[2, 6]),
            (format!("{logins} lt -1"), &[6]),
            (format!("{logins} eq 7"), &[5]),
            (format!("{logins} gt 6.5"), &[1, 5]),
            (format!("{logins} eq 1e1"), &[1]),
            // Numbers no integer equals compare as they would as reals.
            (format!("{logins} ge 6.5"), &[1, 5]),
            (format!("{logins} lt 6.5"), &[2, 4, 6]),
            (format!("{logins} le 6.5"), &[2, 4, 6]),
            (format!("{logins} eq 6.5"), &[]),
            (format!("{logins} ne 6.5"), &[1, 2, 3, 4, 5, 6]),
            (format!("{logins} lt -2.5"), &[6]),
            (format!("{logins} gt -0.5"), &[1, 2, 4, 5]),
            (format!("{logins} le 1e1"), &[1, 2, 4, 5, 6]),
            (format!("{logins} gt 1e30"), &[]),
            (format!("{logins} lt 1e30"), &[1, 2, 4, 5, 6]),
            (format!("{logins} ge -1e30"), &[1, 2, 4, 5, 6]),
            (format!("{logins} le -1e30"), &[]),
            (format!("{logins} eq 1e30"), &[]),
            (format!("{logins} ne 10"), &[2, 3, 4, 5, 6]),
            // Multi-valued: any value matches.
            (r#"groups.value eq "1""#.into(), &[1, 5]),
            (r#"groups.VALUE eq "1""#.into(), &[1, 5]),
            (r#"groups eq "2""#.into(), &[1, 2]),
            (r#"groups.display eq "staff""#.into(), &[1, 2]),
            (r#"groups.display co "_""#.into(), &[4]),
            (format!(r#"{CORE}:groups.display eq "ops_1""#), &[4]),
            ("groups pr".into(), &[1, 2, 4, 5]),
            ("not (groups pr)".into(), &[3, 6]),
            ("groups eq null".into(), &[3, 6]),
            ("groups.display ne null".into(), &[1, 2, 4, 5]),
            (r#"groups.display ne "Admins""#.into(), &[1, 2, 4]),
            (r#"not (groups.display eq "Admins")"#.into(), &[2, 3, 4, 6]),
            // Separate conditions may hold for different values ...
            (
                r#"groups.value eq "1" and groups.display eq "Staff""#.into(),
                &[1],
            ),
            // ... a value path needs one value that satisfies all of it.
            (r#"groups[value eq "1" and display eq "Staff"]"#.into(), &[]),
            (
                r#"groups[value eq "2" and display eq "staff"]"#.into(),
                &[1, 2],
            ),
            (
                r#"groups[value eq "1" and display eq "admins"]"#.into(),
                &[1, 5],
            ),
            (
                r#"groups[display sw "A" or display sw "O"]"#.into(),
                &[1, 4, 5],
            ),
            (r#"groups[not (display eq "Admins")]"#.into(), &[1, 2, 4]),
            (r#"not (groups[display eq "Admins"])"#.into(), &[2, 3, 4, 6]),
            (r#"groups[value eq null]"#.into(), &[]),
            (r#"groups[display pr]"#.into(), &[1, 2, 4, 5]),
            (
                r#"groups[display eq "Admins"] and not (groups[display eq "Staff"])"#.into(),
                &[5],
            ),
            // A value path over a single-valued complex attribute.
            (r#"emails[value co "example.com"]"#.into(), &[1, 4, 5]),
            (r#"name[givenName sw "A"]"#.into(), &[4, 5]),
            (
                r#"emails[value ew ".org"] and active eq false"#.into(),
                &[2],
            ),
        ];
        for (filter, want) in &cases {
            match ids(&conn, filter) {
                Ok(got) => assert_eq!(&got, want, "{filter}"),
                Err(e) => panic!("{filter}: {e}"),
            }
        }
        // The injection attempts left the data alone.
        let n: i64 = conn
            .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 6);
    }

    #[test]
    fn refused_filters_say_why() {
        let conn = db();
        let cases = [
            ("nickName pr", "unknown attribute 'nickName'"),
            ("name.middleName pr", "unknown attribute 'name.middleName'"),
            (r#"groups.type eq "x""#, "unknown attribute 'groups.type'"),
            (r#"groups[type eq "x"]"#, "unknown attribute 'groups.type'"),
            (
                r#"emails[type eq "work"]"#,
                "unknown attribute 'emails.type'",
            ),
            (
                r#"urn:foo:userName eq "x""#,
                "unknown attribute 'urn:foo:userName'",
            ),
            (r#"birthDate lt "2000""#, "unknown attribute 'birthDate'"),
            (
                "active gt true",
                "'active' is a boolean attribute: 'gt' with a boolean",
            ),
            ("active le false", "is a boolean attribute"),
            (r#"active co "t""#, "is a boolean attribute"),
            (
                r#"active eq "true""#,
                "is a boolean attribute: 'eq' with a string",
            ),
            ("userName eq 1", "is a string attribute: 'eq' with a number"),
            ("userName eq true", "is a string attribute"),
            (
                &format!(r#"{EXT}:loginCount co "1""#),
                "is an integer attribute: 'co' with a string",
            ),
            (&format!("{EXT}:loginCount sw 1"), "is an integer attribute"),
            (&format!("{EXT}:birthDate gt 1"), "is a dateTime attribute"),
            (
                &format!(r#"{EXT}:birthDate co "19""#),
                "is a dateTime attribute",
            ),
            ("userName gt null", "null compares with eq and ne only"),
            ("groups co null", "null compares with eq and ne only"),
        ];
        for (filter, message) in cases {
            match ids(&conn, filter) {
                Ok(got) => panic!("{filter}: matched {got:?}"),
                Err(e) => {
                    assert!(e.message.contains(message), "{filter}: {e}");
                    assert_eq!(e.offset, None);
                }
            }
        }
    }

    #[test]
    fn values_are_never_in_the_sql_text() {
        let f =
            parse(r#"userName eq "x' OR 1=1 --" or title co "50%" or groups[display eq "';--"]"#)
                .unwrap();
        let sql = to_sql(&f, &Map, Dialect::Sqlite, 1).unwrap();
        for v in ["OR 1=1", "50", "';--"] {
            assert!(!sql.text.contains(v), "{}", sql.text);
        }
        assert_eq!(
            sql.params,
            [
                Param::Text("x' OR 1=1 --".into()),
                Param::Text("*50%*".into()),
                Param::Text("';--".into()),
            ]
        );
    }

    #[test]
    fn placeholders_follow_other_parameters() {
        let conn = db();
        let f = parse(r#"userName sw "j" or groups[value eq "1" and display sw "a"]"#).unwrap();
        let sql = to_sql(&f, &Map, Dialect::Sqlite, 2).unwrap();
        assert!(sql.text.contains("?2") && sql.text.contains("?4") && !sql.text.contains("?1"));
        let wrapped = Sql {
            text: format!("a.id <> ?1 AND {}", sql.text),
            params: sql.params,
        };
        assert_eq!(run(&conn, &wrapped, &[Param::Int(5)]), [1, 2]);
        assert!(to_sql(&f, &Map, Dialect::Sqlite, 0).is_err());
    }

    #[test]
    fn postgres_placeholders() {
        let f = parse(&format!(
            r#"userName eq "a" and (title co "b" or active eq true) and groups[value eq "1" and display sw "A"] and not ({EXT}:loginCount gt 2.5) and {EXT}:loginCount lt 3 and title ne "c""#
        ))
        .unwrap();
        let first = 3;
        let sql = to_sql(&f, &Map, Dialect::Postgres, first).unwrap();
        assert_eq!(sql.params.len(), 8);
        assert!(!sql.text.contains('$'), "{}", sql.text);
        let mut numbers = Vec::new();
        let mut rest = sql.text.as_str();
        while let Some(i) = rest.find('?') {
            rest = &rest[i + 1..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            numbers.push(digits.parse::<usize>().unwrap());
        }
        assert_eq!(
            numbers,
            (first..first + sql.params.len()).collect::<Vec<_>>()
        );
        for (placeholder, cast) in [
            ("?3", "?3::text"),
            ("?5", "?5::boolean"),
            ("?8", "?8::bigint"),
            ("?9", "?9::bigint"),
        ] {
            assert!(sql.text.contains(cast), "{placeholder}: {}", sql.text);
        }
        // `gt 2.5` over integers is `> 2`.
        assert!(
            sql.text.contains("a.login_count > ?8::bigint"),
            "{}",
            sql.text
        );
        assert_eq!(sql.params[5], Param::Int(2));
        // PostgreSQL's LIKE already respects case: case-exact text needs no GLOB there.
        assert!(
            sql.text.contains("a.title LIKE ?4::text ESCAPE '\\'"),
            "{}",
            sql.text
        );
        assert!(!sql.text.contains("GLOB"));
        assert_eq!(sql.params[1], Param::Text("%b%".into()));
    }

    #[test]
    fn long_or_chains_stay_shallow() {
        let conn = db();
        let filter = (0..500)
            .map(|i| format!(r#"id eq "{i}""#))
            .collect::<Vec<_>>()
            .join(" or ");
        assert!(filter.len() <= crate::scim::filter::MAX_LEN);
        assert_eq!(ids(&conn, &filter).unwrap(), [1, 2, 3, 4, 5, 6]);
        // Beyond SQLite's limit of 1000 levels of expression, were the chain not balanced.
        let id = |i: i64| Filter::compare(AttrPath::new("id"), CompareOp::Eq, i.to_string());
        let chain = (1..1500).fold(id(0), |f, i| f.or(id(i)));
        let sql = to_sql(&chain, &Map, Dialect::Sqlite, 1).unwrap();
        assert_eq!(run(&conn, &sql, &[]), [1, 2, 3, 4, 5, 6]);
        let all = (1..1500).fold(Filter::present(AttrPath::new("title")), |f, _| {
            f.and(Filter::present(AttrPath::new("title")))
        });
        let sql = to_sql(&all, &Map, Dialect::Sqlite, 1).unwrap();
        assert_eq!(run(&conn, &sql, &[]), [1, 4, 5, 6]);
    }

    #[test]
    fn hand_built_trees_are_checked_too() {
        let inner = Filter::value_path(
            AttrPath::new("groups"),
            Filter::present(AttrPath::new("value")),
        );
        let nested = Filter::value_path(AttrPath::new("groups"), inner);
        assert!(to_sql(&nested, &Map, Dialect::Sqlite, 1).is_err());
        let with_sub = Filter::value_path(
            AttrPath::with_sub("groups", "value"),
            Filter::present(AttrPath::new("value")),
        );
        assert!(to_sql(&with_sub, &Map, Dialect::Sqlite, 1).is_err());
        let mut deep = Filter::present(AttrPath::new("title"));
        for _ in 0..10_000 {
            deep = Filter::not(deep);
        }
        let e = to_sql(&deep, &Map, Dialect::Sqlite, 1).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e}");
        // Dropping a deep tree recurses too; unwind it by hand.
        while let Filter::Not(g) = deep {
            deep = *g;
        }
    }

    /// [`Map`], with `groups` as an uncorrelated semi-join, as the server maps it.
    struct SemiJoin;

    impl Attributes for SemiJoin {
        fn resolve(&self, path: &AttrPath) -> Option<Attr> {
            let mut attr = Map.resolve(path)?;
            if let Some(multi) = &mut attr.multi {
                multi.exists = "a.id IN (SELECT m.account_id FROM memberships m \
                     JOIN groups g ON g.id = m.group_id WHERE {})"
                    .into();
            }
            Some(attr)
        }
    }

    #[test]
    fn or_chains_over_one_multi_valued_attribute_share_one_look_up() {
        let conn = db();
        let cases: &[(&str, &[i64])] = &[
            (
                r#"groups.display eq "staff" or groups.display co "ops" or groups.display eq "x""#,
                &[1, 2, 4],
            ),
            (
                r#"groups.display eq "admins" or userName eq "JSmith" or groups.value eq "3""#,
                &[1, 2, 4, 5],
            ),
            (
                r#"groups[display eq "staff"] or groups eq "1" or groups.display pr"#,
                &[1, 2, 4, 5],
            ),
            (
                r#"not (groups.display eq "staff" or groups.display eq "admins")"#,
                &[3, 4, 6],
            ),
            (r#"groups eq null or groups.display eq "ops_1""#, &[3, 4, 6]),
            (
                r#"(groups.display eq "staff" or title pr) and (groups.value eq "1" or groups.value eq "3")"#,
                &[1, 4, 5],
            ),
            (
                r#"groups[display eq "staff" and value eq "1"] or groups[display eq "admins" and value eq "2"]"#,
                &[],
            ),
            (
                r#"groups.display ne "admins" or groups.display eq "nobody""#,
                &[1, 2, 4],
            ),
        ];
        for (filter, want) in cases {
            let f = parse(filter).unwrap();
            for attrs in [&Map as &dyn Attributes, &SemiJoin] {
                let sql = to_sql(&f, attrs, Dialect::Sqlite, 1).unwrap();
                assert_eq!(run(&conn, &sql, &[]), *want, "{filter}: {}", sql.text);
            }
        }
        // Three terms over `groups`, one look-up of the groups.
        let f = parse(
            r#"groups.display eq "a" or userName eq "b" or groups.display co "c" or groups eq "1""#,
        )
        .unwrap();
        let sql = to_sql(&f, &SemiJoin, Dialect::Sqlite, 1).unwrap();
        assert_eq!(sql.text.matches("SELECT").count(), 1, "{}", sql.text);
        // Placeholders keep their numbers whatever the order the conditions land in.
        let placeholders: Vec<&str> = ["?1", "?2", "?3", "?4"]
            .into_iter()
            .filter(|p| sql.text.contains(p))
            .collect();
        assert_eq!(placeholders.len(), 4);
        // A long chain (built by hand: beyond the text's length limit) stays within
        // SQLite's expression depth, in one look-up.
        let term =
            |s: &str| Filter::compare(AttrPath::with_sub("groups", "display"), CompareOp::Eq, s);
        let f = (0..1500).fold(term("ops_1"), |f, i| f.or(term(&format!("g{i}"))));
        let sql = to_sql(&f, &SemiJoin, Dialect::Sqlite, 1).unwrap();
        assert_eq!(sql.text.matches("SELECT").count(), 1);
        assert_eq!(run(&conn, &sql, &[]), [4]);
    }

    /// A mapping that answers for `groups` only without a sub-attribute.
    struct ParentsOnly;

    impl Attributes for ParentsOnly {
        fn resolve(&self, path: &AttrPath) -> Option<Attr> {
            if path.attr.eq_ignore_ascii_case("groups") && path.sub.is_some() {
                return None;
            }
            Map.resolve(path)
        }
    }

    #[test]
    fn sub_attributes_of_multi_valued_attributes_come_from_the_parent() {
        let conn = db();
        for (filter, want) in [
            (r#"groups.display eq "staff""#, &[1, 2][..]),
            (r#"groups[display eq "staff" and value eq "2"]"#, &[1, 2]),
            (r#"groups eq "1""#, &[1, 5]),
        ] {
            let sql = to_sql(&parse(filter).unwrap(), &ParentsOnly, Dialect::Sqlite, 1).unwrap();
            assert_eq!(run(&conn, &sql, &[]), want, "{filter}");
        }
        let e = to_sql(
            &parse("groups.type pr").unwrap(),
            &ParentsOnly,
            Dialect::Sqlite,
            1,
        );
        assert_eq!(e.unwrap_err().message, "unknown attribute 'groups.type'");
    }

    #[test]
    fn sort_expressions() {
        assert_eq!(
            order_by(&AttrPath::new("userName"), &Map).as_deref(),
            Some("lower(a.user_name)")
        );
        assert_eq!(
            order_by(&AttrPath::new("title"), &Map).as_deref(),
            Some("a.title")
        );
        assert_eq!(
            order_by(&AttrPath::new("birthDate").in_schema(EXT), &Map).as_deref(),
            Some("a.birth_date")
        );
        assert_eq!(order_by(&AttrPath::new("groups"), &Map), None);
        assert_eq!(
            order_by(&AttrPath::with_sub("groups", "display"), &Map),
            None
        );
        assert_eq!(order_by(&AttrPath::new("nickName"), &Map), None);
    }
}
