//! The store on PostgreSQL: the same tables, revision and audit chain as the
//! embedded store, for many admins and servers sharing one database. Here is
//! what only PostgreSQL does: connecting, the statement timeout, the
//! advisory write lock, the schema version in `meta`, and its side of
//! [`Conn`] (`?N` rewritten to `$N` once per statement text, statements
//! prepared once per connection, one [`Value`] fitting any column by the
//! parameter's type, the server's error codes).
//!
//! Readers run inside one `REPEATABLE READ READ ONLY` transaction, so every
//! look-up of a plan sees the same revision and none can write. A session is
//! one transaction holding a transaction-level advisory lock on a fixed key:
//! a second apply (from another admin, or another `roster serve` replica)
//! waits up to its lock timeout and then fails cleanly instead of
//! interleaving.

use super::conn::{Ahead, Arg, Conn, Dialect, EachRow, Row, Value, dollar_placeholders, params};
use super::session::HEAD;
use super::{Backend, Schema};
use crate::store::StoreError;
use ::postgres::error::SqlState;
use ::postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use ::postgres::{Client, Statement};
use bytes::BytesMut;
use std::collections::HashMap;
use std::error::Error;
use std::str::FromStr;
use std::time::Duration;
use std::time::Instant;

/// Prepared statements a connection keeps; beyond, the cache starts over
/// (served listings vary their SQL by filter).
const STATEMENTS_MAX: usize = 256;

/// A PostgreSQL connection that runs shared SQL.
pub struct PgConn {
    url: String,
    /// Present until the connection is dropped (see its `Drop`).
    client: Option<Client>,
    statements: HashMap<String, Statement>,
    in_tx: bool,
    /// The store's schema was found current on this connection: a write
    /// session then reads only its version, with its lock.
    schema_checked: bool,
    /// The answer to [`HEAD`], read with the write transaction's `BEGIN`
    /// and lock, for the session's first statement to take.
    head: Option<Row>,
    /// Kept for the next batch of creates (see [`Ahead`]).
    ahead: Ahead,
    /// The foreign keys of the tables this transaction created, taken off
    /// while it fills them and added back before its `COMMIT` (see
    /// [`keys_after_load`]).
    keys_after: Vec<String>,
    /// Statements of the transaction asked for with [`Conn::batch_soon`]
    /// and not sent yet: they go with the next statement batch, or in one
    /// batch of their own before the next query. A transaction that ends
    /// first needs none of its statement caps.
    due: Vec<String>,
}

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.arg().to_sql(ty, out)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl ToSql for Arg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let int = |i: i64, out: &mut BytesMut| -> Result<IsNull, BoxError> {
            match *ty {
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                    i.to_string().as_str().to_sql(ty, out)
                }
                _ => i.to_sql(ty, out),
            }
        };
        match *self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(i) => int(i, out),
            Arg::Bool(b) if *ty == Type::BOOL => b.to_sql(ty, out),
            Arg::Bool(b) => int(i64::from(b), out),
            Arg::Text(s) => s.to_sql(ty, out),
            Arg::Bytes(b) => b.to_sql(ty, out),
            Arg::TextList(l) => l.to_sql(ty, out),
            Arg::IntList(l) => match *ty {
                Type::INT4_ARRAY => l
                    .iter()
                    .map(|i| i32::try_from(*i))
                    .collect::<Result<Vec<_>, _>>()?
                    .to_sql(ty, out),
                _ => l.to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A row's column as a [`Value`], by its type.
fn value_of(r: &::postgres::Row, i: usize) -> Result<Value, ::postgres::Error> {
    let ty = r.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(i)?.into(),
        Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(i64::from).into(),
        Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(i64::from).into(),
        Type::BOOL => r.try_get::<_, Option<bool>>(i)?.into(),
        Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.into(),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => r.try_get::<_, Option<Vec<String>>>(i)?.into(),
        Type::INT8_ARRAY => r.try_get::<_, Option<Vec<i64>>>(i)?.into(),
        // Text and anything else that reads as text (an error says if not).
        _ => r.try_get::<_, Option<String>>(i)?.into(),
    })
}

/// A client error with the server's own words, which the client's `Display`
/// leaves out.
pub fn describe(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; {h}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                s.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            s
        }
    }
}

/// A client error as roster reports it.
pub fn store_error(url: &str, e: &::postgres::Error) -> StoreError {
    match e.code() {
        Some(&SqlState::UNIQUE_VIOLATION) => StoreError::Taken(describe(e)),
        Some(&SqlState::LOCK_NOT_AVAILABLE) => StoreError::Locked {
            url: url.to_string(),
            waited_ms: 0,
        },
        Some(&SqlState::QUERY_CANCELED) => StoreError::TimedOut,
        _ => StoreError::Postgres {
            url: url.to_string(),
            message: describe(e),
        },
    }
}

impl PgConn {
    /// `url` is the store's URL without its password.
    pub fn new(url: &str, client: Client) -> Self {
        PgConn {
            url: url.to_string(),
            client: Some(client),
            statements: HashMap::new(),
            in_tx: false,
            schema_checked: false,
            head: None,
            ahead: Ahead::default(),
            keys_after: Vec::new(),
            due: Vec::new(),
        }
    }

    /// The client itself, for what only PostgreSQL has.
    pub fn raw(&mut self) -> &mut Client {
        self.client.as_mut().expect("client present until dropped")
    }

    pub fn into_raw(mut self) -> Client {
        self.client.take().expect("client present until dropped")
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(Client::is_closed)
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if !self.due.is_empty() {
            let due = std::mem::take(&mut self.due).join("; ");
            self.raw()
                .batch_execute(&due)
                .map_err(|e| store_error(&self.url, &e))?;
        }
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .raw()
            .prepare(&dollar_placeholders(sql))
            .map_err(|e| store_error(&self.url, &e))?;
        if self.statements.len() >= STATEMENTS_MAX {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // Closing a client waits on its connection, which a thread that
        // drives an async runtime may not do (`roster serve` drops its
        // store's connections on one when it shuts down): such a client is
        // closed on a thread of its own.
        if let Some(client) = self.client.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new().spawn(move || drop(client));
        }
    }
}

fn refs<T: ToSql + Sync>(params: &[T]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Conn for PgConn {
    fn source(&self) -> (Dialect, &str) {
        (Dialect::Postgres, &self.url)
    }

    fn execute_args(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        self.head = None;
        let s = self.statement(sql)?;
        self.raw()
            .execute(&s, &refs(args))
            .map_err(|e| store_error(&self.url, &e))
    }

    fn query_rows(&mut self, sql: &str, args: &[Arg], each: EachRow) -> Result<(), StoreError> {
        // The session's first read, answered with its `BEGIN`.
        if let Some(mut head) = self.head.take()
            && sql == HEAD
            && args.is_empty()
        {
            return each(&mut head);
        }
        let s = self.statement(sql)?;
        let rows = self
            .raw()
            .query(&s, &refs(args))
            .map_err(|e| store_error(&self.url, &e))?;
        for r in &rows {
            let mut row = (0..r.len())
                .map(|i| value_of(r, i))
                .collect::<Result<Vec<_>, _>>()
                .map(Row::new)
                .map_err(|e| store_error(&self.url, &e))?;
            each(&mut row)?;
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.head = None;
        let with_due;
        let mut sql = sql;
        if !self.due.is_empty() {
            let due = std::mem::take(&mut self.due);
            let ends_first = sql.split(';').next().and_then(ends_transaction).is_some();
            if !ends_first || due.iter().any(|d| begins_transaction(d)) {
                with_due = format!("{}; {sql}", due.join("; "));
                sql = &with_due;
            }
        }
        let with_keys;
        let ends = sql.split(';').filter_map(ends_transaction).next_back();
        if ends.is_some() && !self.keys_after.is_empty() {
            // Added back in the batch that commits: checked there, each in
            // one pass over its table; a row they refuse fails the commit.
            // A rollback takes them off with the tables.
            let keys = std::mem::take(&mut self.keys_after);
            if ends == Some(true) {
                with_keys = format!("{}; {sql}", keys.join("; "));
                sql = &with_keys;
            }
        }
        if let Err(e) = self.raw().batch_execute(sql) {
            // A batch that began a transaction may have failed inside it:
            // the connection is rolled back before it is used again.
            self.in_tx |= sql.split(';').any(begins_transaction);
            return Err(store_error(&self.url, &e));
        }
        // The last transaction statement of the batch says where it ends.
        for part in sql.split(';') {
            if begins_transaction(part) {
                self.in_tx = true;
            } else if ends_transaction(part).is_some() {
                self.in_tx = false;
            }
        }
        Ok(())
    }

    fn deadline(&mut self, deadline: Option<Instant>) -> Result<(), StoreError> {
        let Some(at) = deadline else {
            return self.batch_soon("SET LOCAL statement_timeout TO DEFAULT");
        };
        let left = at.saturating_duration_since(Instant::now());
        // Never beyond the cap every statement of this process has.
        let cap = statement_timeout_ms().map_or(i32::MAX as u128, u128::from);
        let ms = left.as_millis().min(cap).min(i32::MAX as u128);
        // 0 would mean "no limit".
        if ms == 0 {
            return Err(StoreError::TimedOut);
        }
        self.batch_soon(&format!("SET LOCAL statement_timeout = {ms}"))
    }

    fn batch_soon(&mut self, sql: &str) -> Result<(), StoreError> {
        self.head = None;
        if begins_transaction(sql) {
            self.in_tx = true;
        }
        self.due.push(sql.to_string());
        Ok(())
    }

    fn in_transaction(&self) -> bool {
        self.in_tx
    }

    fn ahead(&mut self) -> Option<&mut Ahead> {
        Some(&mut self.ahead)
    }
}

/// Migrations, in order; `meta.schema_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_tokens.sql"),
    include_str!("../migrations/postgres/0003_ids_and_scopes.sql"),
    include_str!("../migrations/postgres/0004_plan_key.sql"),
    include_str!("../migrations/postgres/0005_roles_entitlements.sql"),
    include_str!("../migrations/postgres/0006_delivery.sql"),
];

/// The advisory lock every session holds: "roster" in ASCII. Anything else
/// that writes the store can take it too (`pg_advisory_xact_lock`).
pub const LOCK_KEY: i64 = 0x726f_7374_6572;

/// How long connecting may take before roster gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The URL as roster shows it: without a password, whether it came in the
/// user part or as a `password=` parameter.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // A password with a bare `@` or `/` in it is still cut out whole: the
    // user part runs to the last `@`.
    let authority = match before_query.rfind('@') {
        Some(at) => {
            let (userinfo, host) = before_query.split_at(at);
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}{host}")
        }
        None => before_query.to_string(),
    };
    let query = query
        .map(|q| {
            q.split('&')
                .filter(|kv| {
                    // The key as the client reads it, percent-decoded:
                    // `pass%77ord=` is a password too.
                    !url::form_urlencoded::parse(kv.as_bytes())
                        .next()
                        .is_some_and(|(key, _)| key.eq_ignore_ascii_case("password"))
                })
                .collect::<Vec<_>>()
                .join("&")
        })
        .filter(|q| !q.is_empty())
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}{query}")
}

fn open_err(url: &str, message: String) -> StoreError {
    StoreError::Open {
        url: url.to_string(),
        message,
    }
}

/// Milliseconds any statement of this process may run; 0: no limit.
static STATEMENT_TIMEOUT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Cap every statement of the connections opened from now on (`roster
/// serve`: no request holds the database for long). Waiting for the write
/// lock is capped by the lock timeout instead.
pub fn set_statement_timeout(limit: Duration) {
    let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    STATEMENT_TIMEOUT_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// The cap [`set_statement_timeout`] set, if any.
pub(crate) fn statement_timeout_ms() -> Option<u64> {
    Some(STATEMENT_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed)).filter(|ms| *ms > 0)
}

/// Connect to the database of `url` (`shown` is `url` without its password).
pub fn connect(url: &str, shown: &str) -> Result<Client, StoreError> {
    let mut config = ::postgres::Config::from_str(url).map_err(|e| {
        open_err(
            shown,
            format!(
                "not a PostgreSQL URL ({}); write postgres://USER@HOST:PORT/DATABASE",
                describe(&e)
            ),
        )
    })?;
    // As libpq does: the password may stay out of the URL (and so out of
    // plans and shell history), and the user defaults to the login name.
    if config.get_password().is_none()
        && let Some(p) = std::env::var_os("PGPASSWORD")
    {
        config.password(p.to_string_lossy().as_bytes());
    }
    if config.get_user().is_none()
        && let Some(u) = ["PGUSER", "USER"]
            .iter()
            .find_map(|k| std::env::var(k).ok())
    {
        config.user(&u);
    }
    if config.get_application_name().is_none() {
        config.application_name("roster");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if let Some(ms) = statement_timeout_ms() {
        // After the URL's own options, so this one wins.
        let options = format!(
            "{} -c statement_timeout={ms}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_start());
    }
    config.connect(::postgres::NoTls).map_err(|e| {
        let hint = match e.code() {
            Some(&SqlState::INVALID_CATALOG_NAME) => {
                "; create the database first (createdb), roster creates the tables"
            }
            Some(&SqlState::INVALID_PASSWORD)
            | Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => {
                "; check the user and password (PGPASSWORD)"
            }
            _ => "; check the host, port and that the server is running",
        };
        open_err(shown, format!("cannot connect: {}{hint}", describe(&e)))
    })
}

/// The store in a PostgreSQL database (its current schema).
pub struct Postgres {
    /// The URL as given, password included, to connect with.
    given: String,
    shown: String,
}

impl Postgres {
    pub fn new(url: &str) -> Self {
        Postgres {
            given: url.to_string(),
            shown: redact(url),
        }
    }
}

fn schema_of(c: &mut PgConn) -> Result<Schema, StoreError> {
    let row = c.query_one(
        "SELECT count(*), count(*) FILTER (WHERE c.relname = 'meta') FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
        &[],
    )?;
    let (tables, meta): (i64, i64) = (row.get(0)?, row.get(1)?);
    if tables == 0 {
        return Ok(Schema::Empty);
    }
    if meta == 0 {
        return Ok(Schema::Foreign(NOT_A_STORE));
    }
    // Another program's `meta` may have other columns or types: not ours.
    let version = c
        .raw()
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .ok()
        .flatten()
        .and_then(|r| r.try_get::<_, i64>(0).ok());
    Ok(match version {
        Some(v) if v > 0 => Schema::Version(usize::try_from(v).unwrap_or(usize::MAX)),
        _ => Schema::Foreign(NOT_A_STORE),
    })
}

const NOT_A_STORE: &str = "this database holds tables that are not a roster store; give an empty database (or another schema via options=-csearch_path=NAME)";

/// A read snapshot: read-only repeatable read, what SQLite's deferred
/// transaction gives.
pub const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Begin the write transaction and wait for the store's write lock, at
/// most `timeout`, in one round trip. With `version`, the schema version
/// in `meta` is read in the same round trip, under the lock (only a
/// migration, which holds it too, changes it); `None` when not asked or
/// not there. The session's first read ([`HEAD`]) is sent with them too;
/// its answer waits on the connection for the session to take.
fn begin_locked(
    c: &mut PgConn,
    timeout: Duration,
    version: bool,
) -> Result<Option<usize>, StoreError> {
    c.head = None;
    // Those of a transaction that ended without this connection's word.
    c.keys_after.clear();
    c.due.clear();
    let started = Instant::now();
    let locked = |url: &str| StoreError::Locked {
        url: url.to_string(),
        waited_ms: started.elapsed().as_millis() as u64,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128);
    if ms == 0 {
        // `lock_timeout = 0` would mean waiting for ever: try once.
        c.batch("BEGIN")?;
        let got: bool = c
            .query_one("SELECT pg_try_advisory_xact_lock(?1)", &params![LOCK_KEY])?
            .get(0)?;
        if !got {
            return Err(locked(&c.url));
        }
        if !version {
            return Ok(None);
        }
        let row = c.query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])?;
        return Ok(row
            .and_then(|r| r.get::<i64>(0).ok())
            .and_then(|v| usize::try_from(v).ok()));
    }
    let read = if version {
        format!("; SELECT value FROM meta WHERE key = 'schema_version'; {HEAD}")
    } else {
        String::new()
    };
    // The rest of the session waits on nothing but this lock's holders.
    let sql = format!(
        "BEGIN; SET LOCAL lock_timeout = {ms}; SET LOCAL statement_timeout = 0; \
         SELECT pg_advisory_xact_lock({LOCK_KEY}); \
         SET LOCAL lock_timeout TO DEFAULT; SET LOCAL statement_timeout TO DEFAULT{read}"
    );
    // It began a transaction, failed or not: rolled back before reuse.
    c.in_tx = true;
    let messages = match c.raw().simple_query(&sql) {
        Ok(m) => m,
        Err(e) => {
            return Err(match e.code() {
                Some(&SqlState::LOCK_NOT_AVAILABLE) => locked(&c.url),
                _ => store_error(&c.url, &e),
            });
        }
    };
    if !version {
        return Ok(None);
    }
    // The last rows: the version's, then the head's.
    let mut rows = messages.iter().rev().filter_map(|m| match m {
        ::postgres::SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    c.head = rows.next().and_then(head_of);
    let value = rows
        .next()
        .and_then(|r| r.try_get(0).ok()??.parse::<usize>().ok());
    Ok(value)
}

/// Whether a statement of a batch begins a transaction.
fn begins_transaction(part: &str) -> bool {
    let word = part.trim_start().to_ascii_uppercase();
    word.starts_with("BEGIN") || word.starts_with("START TRANSACTION")
}

/// Whether a statement of a batch ends the transaction: `Some(true)` if it
/// commits it, `Some(false)` if it rolls it back.
fn ends_transaction(part: &str) -> Option<bool> {
    let word = part.trim_start().to_ascii_uppercase();
    if word.starts_with("COMMIT") || word.starts_with("END") {
        Some(true)
    } else if word.starts_with("ROLLBACK") && !word.starts_with("ROLLBACK TO") {
        Some(false)
    } else {
        None
    }
}

/// Take off the foreign keys of the tables this transaction has just
/// created, to add them back before its `COMMIT` (in [`PgConn::batch`]).
///
/// A first apply fills an empty store: PostgreSQL would check each row's
/// keys as it goes in, a look-up per membership, role and invitation (a
/// third of the server's work for 20,000 accounts), where a key added after
/// the rows checks them all in one pass: the order PostgreSQL's manual
/// gives for loading a database ("Populating a Database"). Nobody else sees
/// tables created by a transaction not yet committed, so this holds no
/// reader back, and the store's rows are never without their keys once
/// committed.
fn keys_after_load(c: &mut PgConn) -> Result<(), StoreError> {
    let rows = c.query(
        "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname), \
                format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, \
                       pg_get_constraintdef(oid)) \
         FROM pg_constraint \
         WHERE contype = 'f' \
           AND connamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
         ORDER BY conrelid::regclass::text, conname",
        &[],
    )?;
    let mut drops = Vec::new();
    let mut adds = Vec::new();
    for r in &rows {
        drops.push(r.get::<String>(0)?);
        adds.push(r.get::<String>(1)?);
    }
    if drops.is_empty() {
        return Ok(());
    }
    c.batch(&drops.join("; "))?;
    c.keys_after = adds;
    Ok(())
}

/// [`HEAD`]'s row as the simple query protocol gives it (text), in the
/// types the extended one gives; `None` if it does not read so.
fn head_of(r: &::postgres::SimpleQueryRow) -> Option<Row> {
    if r.len() != 3 {
        return None;
    }
    let int = |i: usize| -> Option<Value> {
        match r.try_get(i).ok()? {
            None => Some(Value::Null),
            Some(v) => v.parse::<i64>().ok().map(Value::Int),
        }
    };
    let hash = match r.try_get(2).ok()? {
        None => Value::Null,
        Some(h) => Value::Text(h.to_string()),
    };
    Some(Row::new(vec![int(0)?, int(1)?, hash]))
}

impl Backend for Postgres {
    type C = PgConn;
    const MIGRATIONS: &'static [&'static str] = MIGRATIONS;

    fn url(&self) -> &str {
        &self.shown
    }

    fn connect(&self, _write: bool) -> Result<PgConn, StoreError> {
        Ok(PgConn::new(&self.shown, connect(&self.given, &self.shown)?))
    }

    fn schema(&self, c: &mut PgConn) -> Result<Schema, StoreError> {
        schema_of(c)
    }

    fn begin_read(&self, c: &mut PgConn) -> Result<(), StoreError> {
        // One snapshot: every look-up sees the same revision.
        c.batch(BEGIN_READ)
    }

    fn begin_write(&self, c: &mut PgConn, lock_timeout: Duration) -> Result<(), StoreError> {
        // READ COMMITTED: each statement after the lock sees what the
        // session before committed.
        let checked = std::mem::take(&mut c.schema_checked);
        let version = begin_locked(c, lock_timeout, checked)?;
        if checked && version == Some(MIGRATIONS.len()) {
            c.schema_checked = true;
            return Ok(());
        }
        // Read before a migration: the session reads it again.
        c.head = None;
        // Under the lock, so two first applies do not both create the tables;
        // in the session's transaction, so a failed apply leaves no half store.
        let from = schema_of(c)?.migrate_from(&self.shown, MIGRATIONS.len())?;
        if from < MIGRATIONS.len() {
            // A migration is never cut short by the statement cap of
            // `roster serve` (a large store's takes longer); until commit.
            c.batch("SET LOCAL statement_timeout = 0")?;
        }
        super::migrate(c, from, MIGRATIONS, |c, v| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &params![v],
            )
            .map(|_| ())
        })?;
        if from == 0 {
            keys_after_load(c)?;
        }
        // Current once this session commits; a session rolled back leaves
        // the flag on a connection whose next check finds the version again.
        c.schema_checked = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            (
                "postgres://roster:s3cret@db:5432/roster",
                "postgres://roster@db:5432/roster",
            ),
            (
                "postgresql://u:p@ss/w@rd@h/d?sslmode=disable&password=x",
                "postgresql://u@h/d?sslmode=disable",
            ),
            ("postgres://h/d?password=x", "postgres://h/d"),
            (
                "postgres://u@h/d?pass%77ord=x&sslmode=disable&PASSWORD=y",
                "postgres://u@h/d?sslmode=disable",
            ),
            ("postgres://u@h/d", "postgres://u@h/d"),
        ] {
            assert_eq!(redact(url), shown);
        }
    }
}
