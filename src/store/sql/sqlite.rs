//! The embedded store: one SQLite file in WAL mode. Here is what only
//! SQLite does: the file made 0600 and whole, recovery of what a killed
//! process left, pragmas, `PRAGMA user_version`, and its side of [`Conn`]
//! (lists bound as JSON text for `json_each`, its error codes).
//!
//! Readers run inside one read transaction, so every look-up of a plan sees
//! the same revision. A session is a `BEGIN IMMEDIATE` transaction: it holds
//! the file's write lock, so a second apply waits (up to the busy timeout)
//! and then fails cleanly instead of interleaving.

use super::conn::{Arg, Conn, Dialect, EachRow, Row, Value};
use super::{Backend, Schema};
use crate::store::StoreError;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::{Duration, Instant};

/// How many SQLite VM steps pass between two looks at a deadline.
const PROGRESS_STEPS: i32 = 1_000;

/// A SQLite connection that runs shared SQL.
pub struct SqliteConn {
    url: String,
    conn: rusqlite::Connection,
}

/// A parameter as SQLite binds it: text and bytes borrowed, lists as JSON.
fn sql_of(a: Arg<'_>) -> ToSqlOutput<'_> {
    match a {
        Arg::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        Arg::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(i)),
        Arg::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(b))),
        Arg::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        Arg::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        list => ToSqlOutput::Owned(rusqlite::types::Value::Text(
            list.list_json().unwrap_or_default(),
        )),
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(sql_of(*self))
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(sql_of(self.arg()))
    }
}

pub(crate) fn value_of(v: ValueRef) -> Value {
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
    fn source(&self) -> (Dialect, &str) {
        (Dialect::Sqlite, &self.url)
    }

    fn execute_args(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err())?;
        let n = stmt
            .execute(rusqlite::params_from_iter(args))
            .map_err(self.err())?;
        Ok(n as u64)
    }

    fn query_rows(&mut self, sql: &str, args: &[Arg], each: EachRow) -> Result<(), StoreError> {
        let err = self.err();
        let mut stmt = self.conn.prepare_cached(sql).map_err(&err)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(&err)?;
        let mut row = Row::new(Vec::with_capacity(n));
        while let Some(r) = rows.next().map_err(&err)? {
            let mut failed = None;
            row.refill((0..n).map_while(|i| match r.get_ref(i) {
                Ok(v) => Some(value_of(v)),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }));
            if let Some(e) = failed {
                return Err(err(e));
            }
            each(&mut row)?;
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        // One statement (a transaction's `BEGIN`, `ROLLBACK`, a savepoint)
        // is prepared once, as other statements are; a batch each time.
        if !sql.contains(';') {
            return self
                .conn
                .prepare_cached(sql)
                .and_then(|mut s| s.raw_execute())
                .map(drop)
                .map_err(self.err());
        }
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

    fn last_insert_id(&mut self) -> Option<i64> {
        Some(self.conn.last_insert_rowid())
    }
}

/// Migrations, in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_tokens.sql"),
    include_str!("../migrations/0003_ids_and_scopes.sql"),
    include_str!("../migrations/0004_plan_key.sql"),
    include_str!("../migrations/0005_roles_entitlements.sql"),
    include_str!("../migrations/0006_delivery.sql"),
];

/// Page cache of a connection, in KiB (negative: SQLite's unit for KiB).
const CACHE_KIB: i64 = -131_072;

/// How long a reader waits for a migration to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The store in one SQLite file.
pub struct Sqlite {
    url: String,
    path: String,
}

impl Sqlite {
    pub fn new(url: &str, path: &str) -> Self {
        Sqlite {
            url: url.to_string(),
            path: path.to_string(),
        }
    }
}

fn open_error(url: &str, e: rusqlite::Error) -> StoreError {
    StoreError::Open {
        url: url.to_string(),
        message: match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                "this file is not a SQLite database; give another path with --store sqlite:PATH"
                    .into()
            }
            e => format!("cannot open: {e}"),
        },
    }
}

const NOT_A_STORE: &str =
    "this SQLite file is not a roster store; give another path with --store sqlite:PATH";

fn schema_version(c: &mut SqliteConn) -> Result<usize, StoreError> {
    let v: i64 = c.query_one("PRAGMA user_version", &[])?.get(0)?;
    Ok(usize::try_from(v).unwrap_or(0))
}

fn schema_of(c: &mut SqliteConn) -> Result<Schema, StoreError> {
    let version = schema_version(c)?;
    if version > 0 {
        return Ok(Schema::Version(version));
    }
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            &[],
        )?
        .get(0)?;
    Ok(if tables > 0 {
        Schema::Foreign(NOT_A_STORE)
    } else {
        Schema::Empty
    })
}

/// Bring a store up to the current schema, in one transaction.
fn migrate(c: &mut SqliteConn) -> Result<(), StoreError> {
    c.batch("BEGIN IMMEDIATE")?;
    let from = schema_of(c)?.migrate_from(&c.url, MIGRATIONS.len())?;
    super::migrate(c, from, MIGRATIONS, |c, v| {
        c.batch(&format!("PRAGMA user_version = {v}"))
    })?;
    c.batch("COMMIT")
}

/// Make the store's file, readable by its owner only, before SQLite opens
/// it: it will hold password hashes, unsent activation tokens and personal
/// data, and SQLite gives the `-wal` and `-shm` files the database's mode.
/// The schema is then made in one transaction, so a crash leaves either a
/// whole store or a file without tables, which reads as a new store.
fn create_private(url: &str, path: &str) -> Result<(), StoreError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Open {
            url: url.to_string(),
            message: format!("cannot create the store: {e}"),
        }),
    }
}

/// A new store is made whole under a temporary name beside `path`, then
/// linked into place (never over a file already there): a kill while it is
/// made leaves no half-made store at `path`. Where the file system has no
/// hard links, the store is made in place as before.
fn create_whole(url: &str, path: &str) -> Result<(), StoreError> {
    let target = Path::new(path);
    if target.exists() {
        return Ok(());
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let cannot = |e: std::io::Error| StoreError::Open {
        url: url.to_string(),
        message: format!("cannot create the store: {e}"),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.new-");
    remove_leftovers(dir, &prefix);
    // Made 0600 by tempfile; SQLite gives its -wal and -shm the same mode.
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .tempfile_in(dir)
        .map_err(cannot)?;
    {
        let c = Connection::open(tmp.path()).map_err(|e| open_error(url, e))?;
        c.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(url, e))?;
        let mut c = SqliteConn::new(url, c);
        migrate(&mut c)?;
        // Closing the only connection checkpoints and removes the -wal.
        c.into_raw().close().map_err(|(_, e)| open_error(url, e))?;
    }
    match std::fs::hard_link(tmp.path(), target) {
        Ok(()) => Ok(()),
        // Another roster made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // No hard links here: make it in place.
        Err(_) => Ok(()),
    }
}

/// Half-made stores (and their journals) that a killed roster left beside
/// the store, a minute or more ago: a roster making one now is younger.
fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let old = |m: std::fs::Metadata| {
        m.modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(60))
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) && e.metadata().is_ok_and(old) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A file without tables that becomes a store: an earlier roster made it
/// with the umask's mode; give it the store's.
fn make_private(path: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// A process killed while it wrote the store (even while it created it)
/// leaves a hot `-journal` or a `-wal` beside it, which only a connection
/// that may write can roll back or recover: read-only connections would fail
/// with "attempt to write a readonly database" on every later read. Open the
/// store for writing once so SQLite does it; without write access, the
/// read-only open says what is wrong.
fn recover(path: &str) {
    let beside = |suffix: &str| Path::new(&format!("{path}{suffix}")).exists();
    if !beside("-journal") && !beside("-wal") {
        return;
    }
    if let Ok(c) = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        let _ = c.busy_timeout(BUSY_TIMEOUT);
        // Reading the schema version reads the first page, which rolls a
        // hot journal back or replays the log.
        let _ = c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
    }
}

impl Backend for Sqlite {
    type C = SqliteConn;
    const MIGRATIONS: &'static [&'static str] = MIGRATIONS;

    fn url(&self) -> &str {
        &self.url
    }

    fn absent(&self) -> bool {
        !Path::new(&self.path).exists()
    }

    fn connect(&self, write: bool) -> Result<SqliteConn, StoreError> {
        let (url, path) = (&self.url, &self.path);
        let err = |e| store_error(url, e);
        if !write {
            recover(path);
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| open_error(url, e))?;
            c.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
            return Ok(SqliteConn::new(url, c));
        }
        create_whole(url, path)?;
        create_private(url, path)?;
        let c = Connection::open(path).map_err(|e| open_error(url, e))?;
        // Another first apply may be creating the store right now.
        c.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        c.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(url, e))?;
        c.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // A large apply touches many index pages: keep them in memory.
        c.pragma_update(None, "cache_size", CACHE_KIB)
            .map_err(err)?;
        c.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        c.pragma_update(None, "wal_autocheckpoint", 10_000)
            .map_err(err)?;
        Ok(SqliteConn::new(url, c))
    }

    fn schema(&self, c: &mut SqliteConn) -> Result<Schema, StoreError> {
        schema_of(c).map_err(|e| match e {
            StoreError::Sql { source, .. } => open_error(&self.url, source),
            e => e,
        })
    }

    fn begin_read(&self, c: &mut SqliteConn) -> Result<(), StoreError> {
        // One read transaction: every look-up sees the same revision.
        c.batch("BEGIN")
    }

    fn begin_write(&self, c: &mut SqliteConn, lock_timeout: Duration) -> Result<(), StoreError> {
        c.raw()
            .busy_timeout(lock_timeout)
            .map_err(|e| store_error(&self.url, e))?;
        let started = Instant::now();
        let waited = |e: StoreError| match e {
            StoreError::Locked { url, .. } => StoreError::Locked {
                url,
                waited_ms: started.elapsed().as_millis() as u64,
            },
            e => e,
        };
        let version = schema_version(c)?;
        if version != MIGRATIONS.len() {
            if version == 0 {
                make_private(&self.path);
            }
            migrate(c).map_err(waited)?;
        }
        c.batch("BEGIN IMMEDIATE").map_err(waited)
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
    fn key_tables_of_many_lists_are_looked_up_by_position_not_scanned() {
        let (_dir, mut c) = conn();
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT t.id FROM {} JOIN t ON t.name = k.a AND t.note = k.b",
            c.keys(&[1, 2], &["a", "b"], "k")
        );
        let plan: Vec<String> = c
            .query(&sql, &params![vec!["x".to_string()], vec!["y".to_string()]])
            .unwrap()
            .iter()
            .map(|r| r.get::<String>(3).unwrap())
            .collect();
        assert!(
            plan.iter()
                .any(|p| p.starts_with("SEARCH j1 USING AUTOMATIC")),
            "{plan:?}"
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
