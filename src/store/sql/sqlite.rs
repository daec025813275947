//! SQLite's side of [`Conn`]: rusqlite's connection, its statement cache,
//! lists bound as JSON text for `json_each`, and its error codes.

use super::conn::{Conn, Dialect, Row, Value};
use crate::store::StoreError;
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::time::Instant;

/// How many SQLite VM steps pass between two looks at a deadline.
const PROGRESS_STEPS: i32 = 1_000;

/// A SQLite connection that runs shared SQL.
pub struct SqliteConn {
    url: String,
    conn: rusqlite::Connection,
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            list => ToSqlOutput::Owned(rusqlite::types::Value::Text(
                list.list_json().unwrap_or_default(),
            )),
        })
    }
}

fn value_of(v: ValueRef) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Text(f.to_string()),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

/// A rusqlite error as roster reports it.
pub fn store_error(url: &str, e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            rusqlite::ErrorCode::ConstraintViolation
                if matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Taken(e.to_string())
            }
            rusqlite::ErrorCode::DatabaseBusy => StoreError::Locked {
                url: url.to_string(),
                waited_ms: 0,
            },
            rusqlite::ErrorCode::OperationInterrupted => StoreError::TimedOut,
            _ => StoreError::Sql {
                url: url.to_string(),
                source: e,
            },
        },
        _ => StoreError::Sql {
            url: url.to_string(),
            source: e,
        },
    }
}

impl SqliteConn {
    pub fn new(url: &str, conn: rusqlite::Connection) -> Self {
        // Served listings vary their SQL by filter: keep more of them prepared.
        conn.set_prepared_statement_cache_capacity(64);
        SqliteConn {
            url: url.to_string(),
            conn,
        }
    }

    /// The connection itself, for what only SQLite has (pragmas).
    pub fn raw(&mut self) -> &mut rusqlite::Connection {
        &mut self.conn
    }

    pub fn into_raw(self) -> rusqlite::Connection {
        self.conn
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| store_error(&self.url, e)
    }
}

impl Conn for SqliteConn {
    fn url(&self) -> &str {
        &self.url
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err())?;
        let n = stmt
            .execute(rusqlite::params_from_iter(params))
            .map_err(self.err())?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let err = self.err();
        let mut stmt = self.conn.prepare_cached(sql).map_err(&err)?;
        let n = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(&err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(&err)? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(value_of(r.get_ref(i).map_err(&err)?));
            }
            out.push(Row::new(values));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(self.err())
    }

    fn deadline(&mut self, deadline: Option<Instant>) -> Result<(), StoreError> {
        match deadline {
            Some(at) => self
                .conn
                .progress_handler(PROGRESS_STEPS, Some(move || Instant::now() >= at)),
            None => self.conn.progress_handler(0, None::<fn() -> bool>),
        }
        .map_err(self.err())
    }

    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::conn::params;

    fn conn() -> (tempfile::TempDir, SqliteConn) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut c = SqliteConn::new("sqlite:t.db", c);
        c.batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, \
             flag INTEGER NOT NULL, note TEXT, data BLOB)",
        )
        .unwrap();
        (dir, c)
    }

    #[test]
    fn values_round_trip_through_a_file() {
        let (_dir, mut c) = conn();
        let row = c
            .query_one(
                "INSERT INTO t (name, flag, note, data) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                &params!["ann", true, None::<String>, vec![1u8, 2]],
            )
            .unwrap();
        let id: i64 = row.get(0).unwrap();
        let r = c
            .query_one(
                "SELECT name, flag, note, data FROM t WHERE id = ?1",
                &params![id],
            )
            .unwrap();
        assert_eq!(r.get::<String>(0).unwrap(), "ann");
        assert!(r.get::<bool>(1).unwrap());
        assert_eq!(r.get::<Option<String>>(2).unwrap(), None);
        assert_eq!(r.get::<Vec<u8>>(3).unwrap(), vec![1, 2]);
        assert!(
            c.query_opt("SELECT id FROM t WHERE name = ?1", &params!["bob"])
                .unwrap()
                .is_none()
        );
        assert_eq!(
            c.execute("UPDATE t SET flag = ?1", &params![false])
                .unwrap(),
            1
        );
    }

    #[test]
    fn a_unique_violation_is_taken() {
        let (_dir, mut c) = conn();
        let insert = "INSERT INTO t (name, flag) VALUES (?1, 0)";
        c.execute(insert, &params!["ann"]).unwrap();
        let e = c.execute(insert, &params!["ann"]).unwrap_err();
        assert!(matches!(e, StoreError::Taken(_)), "{e:?}");
        // Other constraints are not "taken".
        let e = c
            .execute("INSERT INTO t (name, flag) VALUES (NULL, 0)", &[])
            .unwrap_err();
        assert!(matches!(e, StoreError::Sql { .. }), "{e:?}");
    }

    #[test]
    fn lists_and_key_tables_bind_as_json() {
        let (_dir, mut c) = conn();
        for n in ["ann", "bob", "cy"] {
            c.execute("INSERT INTO t (name, flag) VALUES (?1, 0)", &params![n])
                .unwrap();
        }
        let sql = format!(
            "SELECT name FROM t WHERE {} ORDER BY name",
            c.in_list("name", 1)
        );
        let names: Vec<String> = c
            .query(&sql, &params![vec!["cy".to_string(), "ann".into()]])
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(names, ["ann", "cy"]);
        let ids = format!("SELECT name FROM t WHERE {}", c.in_list("id", 1));
        assert_eq!(c.query(&ids, &params![vec![2i64]]).unwrap().len(), 1);
        // In the keys' order, with the keys' numbers.
        let sql = format!(
            "SELECT k.ord, t.name, k.b FROM {} JOIN t ON t.name = k.a ORDER BY k.ord",
            c.keys(&[1, 2], &["a", "b"], "k")
        );
        let rows = c
            .query(
                &sql,
                &params![
                    vec!["cy".to_string(), "zed".into(), "ann".into()],
                    vec!["1".to_string(), "2".into(), "3".into()]
                ],
            )
            .unwrap();
        let got: Vec<(i64, String, String)> = rows
            .iter()
            .map(|r| (r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap()))
            .collect();
        assert_eq!(
            got,
            [(1, "cy".into(), "1".into()), (3, "ann".into(), "3".into())]
        );
    }

    #[test]
    fn a_passed_deadline_times_out() {
        let (_dir, mut c) = conn();
        c.deadline(Some(Instant::now())).unwrap();
        let e = c
            .query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000) \
                 SELECT count(*) FROM n",
                &[],
            )
            .unwrap_err();
        assert!(matches!(e, StoreError::TimedOut), "{e:?}");
        c.deadline(None).unwrap();
        assert_eq!(
            c.query_one("SELECT count(*) FROM t", &[])
                .unwrap()
                .get::<i64>(0)
                .unwrap(),
            0
        );
    }

    #[test]
    fn transactions_are_seen() {
        let (_dir, mut c) = conn();
        assert!(!c.in_transaction());
        c.batch("BEGIN").unwrap();
        assert!(c.in_transaction());
        c.batch("ROLLBACK").unwrap();
        assert!(!c.in_transaction());
    }
}
