//! The small layer every SQL backend speaks: values, rows and a connection
//! that runs statements written once, with `?N` placeholders, for SQLite and
//! PostgreSQL alike. What truly differs between the two (list parameters,
//! statement deadlines, error codes) is a method of [`Conn`].

use crate::store::StoreError;
use std::time::Instant;

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    /// A list parameter: see [`Conn::in_list`] and [`Conn::keys`].
    TextList(Vec<String>),
    IntList(Vec<i64>),
}

impl Value {
    /// The value's kind, for errors.
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Bool(_) => "a boolean",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::TextList(_) => "a text list",
            Value::IntList(_) => "an integer list",
        }
    }
}

/// A parameter borrowed from what the caller holds: binding it copies no
/// text or bytes (the write path binds these).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    Bool(bool),
    Text(&'a str),
    Bytes(&'a [u8]),
    TextList(&'a [String]),
    IntList(&'a [i64]),
}

impl Value {
    /// The value as a parameter, borrowed.
    pub fn arg(&self) -> Arg<'_> {
        match self {
            Value::Null => Arg::Null,
            Value::Int(i) => Arg::Int(*i),
            Value::Bool(b) => Arg::Bool(*b),
            Value::Text(s) => Arg::Text(s),
            Value::Bytes(b) => Arg::Bytes(b),
            Value::TextList(l) => Arg::TextList(l),
            Value::IntList(l) => Arg::IntList(l),
        }
    }
}

impl Arg<'_> {
    /// A list as SQLite's `json_each` reads it.
    pub(crate) fn list_json(&self) -> Option<String> {
        match self {
            Arg::TextList(l) => Some(serde_json::to_string(l).unwrap_or_default()),
            Arg::IntList(l) => Some(serde_json::to_string(l).unwrap_or_default()),
            _ => None,
        }
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::Null, Arg::Text)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Value::TextList(v)
    }
}
impl From<&[String]> for Value {
    fn from(v: &[String]) -> Self {
        Value::TextList(v.to_vec())
    }
}
impl From<Vec<i64>> for Value {
    fn from(v: Vec<i64>) -> Self {
        Value::IntList(v)
    }
}
impl From<&[i64]> for Value {
    fn from(v: &[i64]) -> Self {
        Value::IntList(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Parameters from a list of anything that converts: `params![a, b]`.
#[allow(unused_macros)]
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        [$($crate::store::sql::conn::Value::from($v)),*]
    };
}
#[allow(unused_imports)]
pub(crate) use params;

/// One result row.
#[derive(Debug, Clone, Default)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    pub fn new(values: Vec<Value>) -> Self {
        Row { values }
    }

    /// Make this row hold `values` instead (a reused row).
    pub fn refill(&mut self, values: impl IntoIterator<Item = Value>) {
        self.values.clear();
        self.values.extend(values);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The column at `i` (0-based) as `T`; a column of another type is an
    /// error naming both.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, StoreError> {
        let v = self.values.get(i).unwrap_or(&Value::Null);
        T::from_value(v).ok_or_else(|| {
            StoreError::Invalid(format!(
                "the store holds {} in result column {}, where roster expects {}",
                v.kind(),
                i + 1,
                T::EXPECTED
            ))
        })
    }

    /// The column at `i` as `T`, moved out of the row (which then holds
    /// NULL there): no copy of text or bytes.
    pub fn take<T: FromValue>(&mut self, i: usize) -> Result<T, StoreError> {
        let Some(slot) = self.values.get_mut(i) else {
            return self.get(i);
        };
        let v = std::mem::replace(slot, Value::Null);
        let kind = v.kind();
        T::from_owned(v).ok_or_else(|| {
            StoreError::Invalid(format!(
                "the store holds {kind} in result column {}, where roster expects {}",
                i + 1,
                T::EXPECTED
            ))
        })
    }

    /// The raw value at `i`.
    pub fn value(&self, i: usize) -> &Value {
        self.values.get(i).unwrap_or(&Value::Null)
    }
}

/// A Rust type a column converts to.
pub trait FromValue: Sized {
    const EXPECTED: &'static str;
    fn from_value(v: &Value) -> Option<Self>;
    /// The same, from a value given away.
    fn from_owned(v: Value) -> Option<Self> {
        Self::from_value(&v)
    }
}

impl FromValue for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

impl FromValue for u32 {
    const EXPECTED: &'static str = "a small integer";
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u32::try_from(i).ok())
    }
}

impl FromValue for bool {
    const EXPECTED: &'static str = "a boolean";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(*b),
            // SQLite keeps booleans as 0 and 1.
            Value::Int(i) => Some(*i != 0),
            _ => None,
        }
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "text";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
    fn from_owned(v: Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    const EXPECTED: &'static str = "bytes";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Bytes(b) => Some(b.clone()),
            Value::Text(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        }
    }
}

impl FromValue for Vec<String> {
    const EXPECTED: &'static str = "a text list";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::TextList(l) => Some(l.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<i64> {
    const EXPECTED: &'static str = "an integer list";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::IntList(l) => Some(l.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
    fn from_owned(v: Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_owned(v).map(Some),
        }
    }
}

/// Which SQL a connection speaks, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// What a query hands each row to, as it comes (the row may be reused for
/// the next: take what is kept out of it).
pub type EachRow<'a> = &'a mut dyn FnMut(&mut Row) -> Result<(), StoreError>;

/// A connection to a SQL store. Statements use `?1`, `?2`… placeholders;
/// each connection prepares a statement text once and reuses it.
///
/// A backend implements what differs: [`Conn::source`],
/// [`Conn::execute_args`], [`Conn::query_rows`], [`Conn::batch`],
/// [`Conn::deadline`] and [`Conn::in_transaction`]. The other methods are
/// written once over those.
///
/// Errors are [`StoreError`]s already: a uniqueness violation is
/// [`StoreError::Taken`] (with the database's words: the caller names what
/// is taken), a write lock not had in time [`StoreError::Locked`] (with
/// `waited_ms` 0: the caller knows how long it waited), a statement past its
/// deadline [`StoreError::TimedOut`].
pub trait Conn: Send {
    /// Which SQL this connection speaks, and the store's URL as roster
    /// shows it (no password).
    fn source(&self) -> (Dialect, &str);
    fn url(&self) -> &str {
        self.source().1
    }
    fn dialect(&self) -> Dialect {
        self.source().0
    }
    /// Run one statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let args: Vec<Arg> = params.iter().map(Value::arg).collect();
        self.execute_args(sql, &args)
    }
    /// [`Conn::execute`] with borrowed parameters.
    fn execute_args(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError>;
    /// Run one statement; every row it returned.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut rows = Vec::new();
        self.query_each(sql, params, &mut |row| {
            rows.push(Row::new(std::mem::take(&mut row.values)));
            Ok(())
        })?;
        Ok(rows)
    }
    /// Run one statement and hand each row to `each` as it comes (the row
    /// may be reused for the next: take what is kept out of it).
    fn query_each(&mut self, sql: &str, params: &[Value], each: EachRow) -> Result<(), StoreError> {
        let args: Vec<Arg> = params.iter().map(Value::arg).collect();
        self.query_rows(sql, &args, each)
    }
    /// [`Conn::query_each`] with borrowed parameters.
    fn query_rows(&mut self, sql: &str, args: &[Arg], each: EachRow) -> Result<(), StoreError>;
    /// Run one statement; its first row, if any.
    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
    /// Run one statement that returns a row.
    fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, StoreError> {
        self.query_opt(sql, params)?.ok_or_else(|| {
            StoreError::Invalid(format!(
                "store {}: a query that always returns a row returned none",
                self.url()
            ))
        })
    }
    /// Run statements without parameters, separated by `;` (transaction
    /// control, migrations).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// [`Conn::batch`], sent with the connection's next statement rather
    /// than on its own where the database is a round trip away
    /// (PostgreSQL): a read snapshot's `BEGIN`, a statement cap. Run at
    /// once elsewhere.
    fn batch_soon(&mut self, sql: &str) -> Result<(), StoreError> {
        self.batch(sql)
    }
    /// A condition: `expr` is one of the list bound at `?param`.
    fn in_list(&self, expr: &str, param: usize) -> String {
        match self.dialect() {
            Dialect::Sqlite => format!("{expr} IN (SELECT value FROM json_each(?{param}))"),
            Dialect::Postgres => format!("{expr} = ANY(?{param})"),
        }
    }
    /// A table of keys: the text lists bound at `params` (all of one
    /// length) side by side as the columns `names`, numbered from 1 in the
    /// column `ord`, under the alias `alias`.
    fn keys(&self, params: &[usize], names: &[&str], alias: &str) -> String {
        keys(self.dialect(), params, names, alias)
    }
    /// The join that keeps the table on its left the outer loop: a key
    /// table ([`Conn::keys`]) drives its look-ups, whatever SQLite's
    /// planner guesses of its size (SQLite's `CROSS JOIN`; PostgreSQL
    /// plans by its statistics).
    fn join(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "CROSS JOIN",
            Dialect::Postgres => "JOIN",
        }
    }
    /// The most rows one queued INSERT writes. SQLite has no round trip
    /// to save: a cached one-row statement is faster there than a
    /// many-row one (which also needs a statement journal, to undo its
    /// earlier rows if a later one fails).
    fn rows_per_insert(&self) -> usize {
        match self.dialect() {
            Dialect::Sqlite => 1,
            Dialect::Postgres => usize::MAX,
        }
    }
    /// The id of the row the last INSERT wrote, where the database keeps
    /// it (SQLite); elsewhere `None`: ask with `RETURNING`.
    fn last_insert_id(&mut self) -> Option<i64> {
        None
    }
    /// Comparisons in byte order (SQLite's own; PostgreSQL's "C").
    fn bytewise(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " COLLATE \"C\"",
        }
    }
    /// Cut off the statements that follow once `deadline` has passed
    /// ([`StoreError::TimedOut`]); `None` lifts the cap.
    fn deadline(&mut self, deadline: Option<Instant>) -> Result<(), StoreError>;
    /// In a transaction (an explicit `BEGIN` not ended yet).
    fn in_transaction(&self) -> bool;
    /// What this connection keeps for the next batch of creates, where it
    /// keeps anything (PostgreSQL).
    fn ahead(&mut self) -> Option<&mut Ahead> {
        None
    }
}

/// What a write connection keeps from one transaction to the next so that
/// a batch of creates needs no round trip before its insert: account ids
/// drawn ahead from the table's sequence (never handed out twice; an id
/// drawn and not used is a gap, as one rolled back is), and the admin token
/// last found live, which the batch's insert checks again as it writes.
#[derive(Debug, Default)]
pub struct Ahead {
    /// Drawn and not handed out yet, the largest first.
    pub ids: Vec<i64>,
    /// The digest and name of the admin token last found live.
    pub admin: Option<(String, String)>,
}

/// See [`Conn::keys`].
pub fn keys(dialect: Dialect, params: &[usize], names: &[&str], alias: &str) -> String {
    match dialect {
        Dialect::Postgres => {
            let lists: Vec<String> = params.iter().map(|p| format!("?{p}::text[]")).collect();
            format!(
                "unnest({}) WITH ORDINALITY AS {alias} ({}, ord)",
                lists.join(", "),
                names.join(", ")
            )
        }
        Dialect::Sqlite => {
            let mut cols = vec!["j0.key + 1 AS ord".to_string()];
            let mut from = Vec::new();
            for (i, (p, n)) in params.iter().zip(names).enumerate() {
                cols.push(format!("j{i}.value AS {n}"));
                // The first list drives; each other one is made a table
                // once (LIMIT -1 keeps it from being folded in), which SQLite
                // indexes by position: a join of plain json_each tables
                // would scan one per row of the other.
                from.push(if i == 0 {
                    format!("json_each(?{p}) j0")
                } else {
                    format!(
                        "CROSS JOIN (SELECT key, value FROM json_each(?{p}) LIMIT -1) j{i} \
                         ON j{i}.key = j0.key"
                    )
                });
            }
            format!(
                "(SELECT {} FROM {}) AS {alias}",
                cols.join(", "),
                from.join(" ")
            )
        }
    }
}

/// `sql` with `?N` placeholders as `$N`, outside quoted text.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    out.push(c);
                }
                '?' if chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
                c => out.push(c),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            dollar_placeholders("SELECT ?1, '?2', \"a?3\", x || ?12 WHERE y = '?' AND z = ?"),
            "SELECT $1, '?2', \"a?3\", x || $12 WHERE y = '?' AND z = ?"
        );
    }

    #[test]
    fn rows_convert_or_say_what_they_hold() {
        let row = Row::new(vec![
            Value::Int(1),
            Value::Null,
            Value::Text("x".into()),
            Value::Int(0),
        ]);
        assert_eq!(row.get::<i64>(0).unwrap(), 1);
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(row.get::<String>(2).unwrap(), "x");
        assert!(!row.get::<bool>(3).unwrap());
        let e = row.get::<i64>(2).unwrap_err().to_string();
        assert!(e.contains("text in result column 3"), "{e}");
        assert!(row.get::<String>(1).is_err());
    }

    #[test]
    fn options_and_lists_convert_to_values() {
        let p = params![1i64, "a", None::<String>, true, vec![2i64, 3]];
        assert_eq!(
            p.to_vec(),
            vec![
                Value::Int(1),
                Value::Text("a".into()),
                Value::Null,
                Value::Bool(true),
                Value::IntList(vec![2, 3])
            ]
        );
    }
}
