//! The embedded store: one SQLite file in WAL mode.
//!
//! Readers run inside one read transaction, so every look-up of a plan sees
//! the same revision. A session is a `BEGIN IMMEDIATE` transaction: it holds
//! the file's write lock, so a second apply waits (up to the busy timeout)
//! and then fails cleanly instead of interleaving.

use super::audit::{self, GENESIS};
use super::{AuditEntry, Invitation, NewCredential, Owner, Reader, ScimField, Session, StoreError};
use crate::domain::{Account, CredentialState, Group, GroupType, Membership, NameDob, Profile};
use crate::roster::normalize::{email_key, name_key};
use rusqlite::{Connection, OpenFlags, OptionalExtension, ToSql, params};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

mod directory;

/// Migrations, in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_tokens.sql"),
    include_str!("migrations/0003_ids_and_scopes.sql"),
    include_str!("migrations/0004_plan_key.sql"),
];

/// Page cache of a connection, in KiB (negative: SQLite's unit for KiB).
const CACHE_KIB: i64 = -131_072;

/// How long a reader waits for a migration to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const ACCOUNT_COLUMNS: &str = "user_name, email, first_name, last_name, birth_date, phone, \
     extension, zip, role, active, credential";

fn sql_err(url: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sql {
        url: url.to_string(),
        source,
    }
}

fn account_from_row(r: &rusqlite::Row) -> rusqlite::Result<Account> {
    let role: String = r.get(8)?;
    let credential: String = r.get(10)?;
    Ok(Account {
        user_name: r.get(0)?,
        profile: Profile {
            email: r.get(1)?,
            first_name: r.get(2)?,
            last_name: r.get(3)?,
            birth_date: r.get(4)?,
            phone: r.get(5)?,
            extension: r.get(6)?,
            zip: r.get(7)?,
            role: role.parse().unwrap_or_default(),
        },
        active: r.get(9)?,
        credential: CredentialState::parse(&credential),
    })
}

pub(super) fn group_type(s: &str) -> GroupType {
    s.parse().unwrap_or_default()
}

pub(super) fn type_str(t: GroupType) -> &'static str {
    t.as_str()
}

fn table_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )
}

fn schema_version(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map(|v| v as usize)
}

/// Bring a store up to the current schema, in one transaction.
fn migrate(conn: &mut Connection, url: &str) -> Result<(), StoreError> {
    let err = sql_err(url);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&err)?;
    let version = schema_version(&tx).map_err(&err)?;
    if version > MIGRATIONS.len() {
        return Err(newer_schema(url, version));
    }
    if version == 0 && table_count(&tx).map_err(&err)? > 0 {
        return Err(not_a_store(url));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(m).map_err(&err)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(&err)?;
    }
    tx.commit().map_err(&err)
}

fn newer_schema(url: &str, version: usize) -> StoreError {
    StoreError::Open {
        url: url.to_string(),
        message: format!(
            "the store uses schema version {version}, newer than this roster understands ({}); upgrade roster",
            MIGRATIONS.len()
        ),
    }
}

fn not_a_store(url: &str) -> StoreError {
    StoreError::Open {
        url: url.to_string(),
        message:
            "this SQLite file is not a roster store; give another path with --store sqlite:PATH"
                .into(),
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
        let mut c = Connection::open(tmp.path()).map_err(|e| open_error(url, e))?;
        c.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(url, e))?;
        migrate(&mut c, url)?;
        // Closing the only connection checkpoints and removes the -wal.
        c.close().map_err(|(_, e)| open_error(url, e))?;
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
        let _ = schema_version(&c);
    }
}

/// Read-only access for planning, export, log and invitations.
pub struct SqliteReader {
    url: String,
    conn: Pooled,
}

/// Connections kept open between transactions of one thread, by file and
/// by purpose. Opening a connection means reading and parsing the schema,
/// which costs more than a small transaction: a long-running process (`roster
/// serve`) reuses them. Each connection is used by one thread at a time.
mod pool {
    use rusqlite::Connection;
    use std::cell::RefCell;

    /// At most this many idle connections per thread.
    const IDLE_MAX: usize = 4;

    thread_local! {
        static IDLE: RefCell<Vec<(String, bool, Connection)>> = const { RefCell::new(Vec::new()) };
    }

    pub fn take(path: &str, writer: bool) -> Option<Connection> {
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let i = idle
                .iter()
                .position(|(p, w, _)| p == path && *w == writer)?;
            Some(idle.swap_remove(i).2)
        })
    }

    pub fn give(path: String, writer: bool, conn: Connection) {
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            if idle.len() < IDLE_MAX {
                idle.push((path, writer, conn));
            }
        });
    }
}

/// A connection that goes back to the thread's pool when dropped, outside
/// any transaction. In-memory connections are not pooled.
pub(super) struct Pooled {
    conn: Option<Connection>,
    home: Option<(String, bool)>,
}

impl Pooled {
    fn new(conn: Connection, home: Option<(String, bool)>) -> Self {
        Pooled {
            conn: Some(conn),
            home,
        }
    }
}

impl std::ops::Deref for Pooled {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Only `drop` takes the connection out.
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let (Some(conn), Some((path, writer))) = (self.conn.take(), self.home.take()) {
            let clean = conn.is_autocommit() || conn.execute_batch("ROLLBACK").is_ok();
            if clean {
                pool::give(path, writer, conn);
            }
        }
    }
}

impl super::Served for SqliteReader {
    fn end_read(&mut self) -> Result<(), StoreError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn
            .execute_batch("ROLLBACK")
            .map_err(sql_err(&self.url))
    }
    fn begin_read(&mut self) -> Result<(), StoreError> {
        self.end_read()?;
        self.conn.execute_batch("BEGIN").map_err(sql_err(&self.url))
    }
}

impl SqliteReader {
    pub fn open(url: &str, path: &str) -> Result<Self, StoreError> {
        let conn = if Path::new(path).exists() {
            let conn = match pool::take(path, false) {
                Some(c) => c,
                None => {
                    recover(path);
                    let c = Connection::open_with_flags(
                        path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(|e| open_error(url, e))?;
                    c.busy_timeout(BUSY_TIMEOUT).map_err(sql_err(url))?;
                    c
                }
            };
            let conn = Pooled::new(conn, Some((path.to_string(), false)));
            let version = schema_version(&conn).map_err(|e| open_error(url, e))?;
            if version > MIGRATIONS.len() {
                return Err(newer_schema(url, version));
            }
            if version == 0 {
                if table_count(&conn).map_err(|e| open_error(url, e))? > 0 {
                    return Err(not_a_store(url));
                }
                // A file with no tables at all (an apply killed while it
                // created the store) is a store not created yet.
                drop(conn);
                return Self::empty(url);
            }
            if version < MIGRATIONS.len() {
                return Err(StoreError::Open {
                    url: url.to_string(),
                    message: format!(
                        "the store uses schema version {version}; run `roster apply` to migrate it to {}",
                        MIGRATIONS.len()
                    ),
                });
            }
            conn
        } else {
            return Self::empty(url);
        };
        Self::begin(url, conn)
    }

    /// A store that does not exist yet is empty; planning creates nothing.
    fn empty(url: &str) -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory().map_err(sql_err(url))?;
        migrate(&mut conn, url)?;
        Self::begin(url, Pooled::new(conn, None))
    }

    fn begin(url: &str, conn: Pooled) -> Result<Self, StoreError> {
        // One read transaction: every look-up below sees the same revision.
        // Served listings vary their SQL by filter: keep more of them prepared.
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch("BEGIN").map_err(sql_err(url))?;
        Ok(SqliteReader {
            url: url.to_string(),
            conn,
        })
    }

    /// The key that seals this store's plans, if it has one yet.
    pub fn plan_key(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row("SELECT key FROM plan_keys WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(sql_err(&self.url))
    }

    fn accounts_where(
        &mut self,
        clause: &str,
        keys: &[Vec<String>],
    ) -> Result<Vec<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {clause}");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err(&self.url))?;
        let mut out = Vec::new();
        for key in keys {
            let rows = stmt
                .query_map(rusqlite::params_from_iter(key.iter()), account_from_row)
                .map_err(sql_err(&self.url))?;
            for r in rows {
                out.push(r.map_err(sql_err(&self.url))?);
            }
        }
        Ok(out)
    }
}

impl Reader for SqliteReader {
    fn url(&self) -> &str {
        &self.url
    }

    fn revision(&mut self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                r.get(0)
            })
            .map_err(sql_err(&self.url))
    }

    fn accounts_by_user_name(&mut self, names: &[String]) -> Result<Vec<Account>, StoreError> {
        let keys: Vec<Vec<String>> = names.iter().map(|n| vec![n.to_lowercase()]).collect();
        self.accounts_where("user_key = ?1", &keys)
    }

    fn accounts_by_email(&mut self, emails: &[String]) -> Result<Vec<Account>, StoreError> {
        let keys: Vec<Vec<String>> = emails.iter().map(|e| vec![e.clone()]).collect();
        self.accounts_where("email_key = ?1", &keys)
    }

    fn accounts_by_name_dob(&mut self, keys: &[NameDob]) -> Result<Vec<Account>, StoreError> {
        let keys: Vec<Vec<String>> = keys
            .iter()
            .map(|k| vec![k.last.clone(), k.first.clone(), k.birth_date.clone()])
            .collect();
        self.accounts_where(
            "last_key = ?1 AND first_key = ?2 AND birth_date = ?3",
            &keys,
        )
    }

    fn user_names_like(&mut self, bases: &[String]) -> Result<Vec<String>, StoreError> {
        // ':' sorts right after '9': the range holds the base and the base + digits.
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT user_key FROM accounts WHERE user_key >= ?1 AND user_key < ?1 || ':'",
            )
            .map_err(sql_err(&self.url))?;
        let mut out = Vec::new();
        for b in bases {
            let rows = stmt
                .query_map([b.to_lowercase()], |r| r.get::<_, String>(0))
                .map_err(sql_err(&self.url))?;
            for r in rows {
                out.push(r.map_err(sql_err(&self.url))?);
            }
        }
        Ok(out)
    }

    fn groups(&mut self, names: Option<&[String]>) -> Result<Vec<Group>, StoreError> {
        let err = sql_err(&self.url);
        let row = |r: &rusqlite::Row| -> rusqlite::Result<Group> {
            let t: String = r.get(1)?;
            Ok(Group {
                name: r.get(0)?,
                kind: group_type(&t),
                lwia: r.get(2)?,
                active: r.get(3)?,
            })
        };
        let mut out = Vec::new();
        match names {
            None => {
                let mut stmt = self
                    .conn
                    .prepare_cached("SELECT name, type, lwia, active FROM groups ORDER BY name")
                    .map_err(&err)?;
                for g in stmt.query_map([], row).map_err(&err)? {
                    out.push(g.map_err(&err)?);
                }
            }
            Some(names) => {
                let mut stmt = self
                    .conn
                    .prepare_cached("SELECT name, type, lwia, active FROM groups WHERE name = ?1")
                    .map_err(&err)?;
                for n in names {
                    if let Some(g) = stmt.query_row([n], row).optional().map_err(&err)? {
                        out.push(g);
                    }
                }
            }
        }
        Ok(out)
    }

    fn memberships(&mut self, groups: &[String]) -> Result<Vec<Membership>, StoreError> {
        let err = sql_err(&self.url);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT a.user_name, m.user_manager FROM groups g \
                 JOIN memberships m ON m.group_id = g.id \
                 JOIN accounts a ON a.id = m.account_id WHERE g.name = ?1",
            )
            .map_err(&err)?;
        let mut out = Vec::new();
        for g in groups {
            let rows = stmt
                .query_map([g], |r| {
                    Ok(Membership {
                        group: g.clone(),
                        user_name: r.get(0)?,
                        user_manager: r.get(1)?,
                    })
                })
                .map_err(&err)?;
            for m in rows {
                out.push(m.map_err(&err)?);
            }
        }
        Ok(out)
    }

    fn all_accounts(&mut self) -> Result<Vec<Account>, StoreError> {
        self.accounts_where("1 ORDER BY user_key", &[vec![]])
    }

    fn in_other_groups(
        &mut self,
        user_names: &[String],
        groups: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let err = sql_err(&self.url);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT g.name FROM accounts a JOIN memberships m ON m.account_id = a.id \
                 JOIN groups g ON g.id = m.group_id WHERE a.user_key = ?1",
            )
            .map_err(&err)?;
        let managed: std::collections::HashSet<&str> = groups.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        for u in user_names {
            let names = stmt
                .query_map([u.to_lowercase()], |r| r.get::<_, String>(0))
                .map_err(&err)?;
            for n in names {
                if !managed.contains(n.map_err(&err)?.as_str()) {
                    out.push(u.clone());
                    break;
                }
            }
        }
        Ok(out)
    }

    fn audit(&mut self, since: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        let err = sql_err(&self.url);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, revision, at, actor, op, subject, before, after, \
                 CASE WHEN seq = 1 THEN ?2 ELSE (SELECT hash FROM audit p WHERE p.seq = audit.seq - 1) END, hash \
                 FROM audit WHERE at >= ?1 ORDER BY seq",
            )
            .map_err(&err)?;
        let json = |s: &Option<String>| s.as_deref().and_then(|s| serde_json::from_str(s).ok());
        let rows = stmt
            .query_map([since.unwrap_or(""), GENESIS], |r| {
                let raw: (Option<String>, Option<String>) = (r.get(6)?, r.get(7)?);
                Ok(AuditEntry {
                    seq: r.get(0)?,
                    revision: r.get(1)?,
                    at: r.get(2)?,
                    actor: r.get(3)?,
                    op: r.get(4)?,
                    subject: r.get(5)?,
                    before: json(&raw.0),
                    after: json(&raw.1),
                    prev_hash: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                    hash: r.get(9)?,
                    raw,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn invitations(&mut self) -> Result<Vec<Invitation>, StoreError> {
        let err = sql_err(&self.url);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT user_name, email, invited_at, reminded_at FROM accounts \
                 WHERE credential = 'invited' AND activation_digest IS NOT NULL \
                 AND activated_at IS NULL AND active ORDER BY invited_at, user_key",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Invitation {
                    user_name: r.get(0)?,
                    email: r.get(1)?,
                    invited_at: r.get(2)?,
                    reminded_at: r.get(3)?,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }
}

/// Personal data in audit rows: present or not, never the value.
pub(super) fn masked(profile: &Profile) -> serde_json::Value {
    let hide = |v: &Option<String>| v.as_ref().map(|_| "***");
    serde_json::json!({
        "email": profile.email,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "birth_date": hide(&profile.birth_date),
        "phone": hide(&profile.phone),
        "extension": hide(&profile.extension),
        "zip": profile.zip,
        "role": profile.role.as_str(),
    })
}

/// A profile as the accounts table stores it: the values and the
/// normalized keys the ladder looks up, in column order (`email` … `role`).
struct ProfileRow<'a> {
    p: &'a Profile,
    email_key: String,
    first_key: String,
    last_key: String,
    role: &'static str,
}

impl<'a> ProfileRow<'a> {
    fn new(p: &'a Profile) -> Self {
        ProfileRow {
            p,
            email_key: email_key(&p.email).into_owned(),
            first_key: name_key(&p.first_name),
            last_key: name_key(&p.last_name),
            role: p.role.as_str(),
        }
    }

    fn values(&self) -> [&dyn ToSql; 11] {
        [
            &self.p.email,
            &self.email_key,
            &self.p.first_name,
            &self.p.last_name,
            &self.first_key,
            &self.last_key,
            &self.p.birth_date,
            &self.p.phone,
            &self.p.extension,
            &self.p.zip,
            &self.role,
        ]
    }
}

/// Audit values of the flags, as `serde_json` writes them.
pub(super) fn manager_json(user_manager: bool) -> &'static str {
    if user_manager {
        r#"{"user_manager":true}"#
    } else {
        r#"{"user_manager":false}"#
    }
}

pub(super) fn active_json(active: bool) -> &'static str {
    if active {
        r#"{"active":true}"#
    } else {
        r#"{"active":false}"#
    }
}

/// A write transaction on the embedded store.
pub struct SqliteSession {
    url: String,
    conn: Pooled,
    actor: String,
    now: String,
    revision: i64,
    prev_hash: String,
    accounts: HashMap<String, i64>,
    groups: HashMap<String, i64>,
    /// What [`Session::rollback_to_savepoint`] restores.
    saved: Option<SqliteSaved>,
    open: bool,
}

/// The session's own state at its savepoint.
struct SqliteSaved {
    revision: i64,
    prev_hash: String,
    accounts: HashMap<String, i64>,
    groups: HashMap<String, i64>,
}

impl SqliteSession {
    pub fn begin(
        url: &str,
        path: &str,
        actor: &str,
        now: &str,
        lock_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let err = sql_err(url);
        let mut conn = match pool::take(path, true) {
            Some(c) => Pooled::new(c, Some((path.to_string(), true))),
            None => {
                create_whole(url, path)?;
                create_private(url, path)?;
                let c = Connection::open(path).map_err(|e| open_error(url, e))?;
                // Another first apply may be creating the store right now.
                c.busy_timeout(lock_timeout).map_err(&err)?;
                c.pragma_update(None, "journal_mode", "WAL")
                    .map_err(|e| open_error(url, e))?;
                c.pragma_update(None, "synchronous", "NORMAL")
                    .map_err(&err)?;
                // A large apply touches many index pages: keep them in memory.
                c.pragma_update(None, "cache_size", CACHE_KIB)
                    .map_err(&err)?;
                c.pragma_update(None, "foreign_keys", "ON").map_err(&err)?;
                Pooled::new(c, Some((path.to_string(), true)))
            }
        };
        conn.busy_timeout(lock_timeout).map_err(&err)?;
        let started = std::time::Instant::now();
        let locked = |e: StoreError| match e {
            StoreError::Sql {
                source: rusqlite::Error::SqliteFailure(f, _),
                ..
            } if f.code == rusqlite::ErrorCode::DatabaseBusy => StoreError::Locked {
                url: url.to_string(),
                waited_ms: started.elapsed().as_millis() as u64,
            },
            e => e,
        };
        let version = schema_version(&conn).map_err(&err)?;
        if version != MIGRATIONS.len() {
            if version == 0 {
                make_private(path);
            }
            migrate(&mut conn, url).map_err(locked)?;
        }
        conn.execute("BEGIN IMMEDIATE", [])
            .map_err(|e| locked(err(e)))?;
        let revision = conn
            .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                r.get(0)
            })
            .map_err(&err)?;
        let prev_hash = conn
            .query_row(
                "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(&err)?
            .unwrap_or_else(|| GENESIS.to_string());
        Ok(SqliteSession {
            url: url.to_string(),
            conn,
            actor: actor.to_string(),
            now: now.to_string(),
            revision,
            prev_hash,
            accounts: HashMap::new(),
            groups: HashMap::new(),
            saved: None,
            open: true,
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sql_err(&self.url)
    }

    /// The key that seals this store's plans: `fresh` unless it has one.
    pub fn plan_key(&mut self, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.conn
            .execute(
                "INSERT INTO plan_keys (id, key, created_at) VALUES (1, ?1, ?2) \
                 ON CONFLICT (id) DO NOTHING",
                params![fresh, self.now],
            )
            .map_err(self.err())?;
        self.conn
            .query_row("SELECT key FROM plan_keys WHERE id = 1", [], |r| r.get(0))
            .map_err(self.err())
    }

    /// A write that a uniqueness constraint may refuse; `taken` says what
    /// is already there.
    fn unique<T>(
        &self,
        result: rusqlite::Result<T>,
        taken: impl FnOnce() -> String,
    ) -> Result<T, StoreError> {
        match result {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Taken(taken()))
            }
            other => other.map_err(self.err()),
        }
    }

    /// Append an audit row and bump the revision.
    fn record(
        &mut self,
        op: &str,
        subject: &str,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<(), StoreError> {
        self.revision += 1;
        let hash = audit::row_hash(
            &self.prev_hash,
            self.revision,
            &self.now,
            &self.actor,
            op,
            subject,
            before,
            after,
        );
        self.conn
            .prepare_cached(
                "INSERT INTO audit (revision, at, actor, op, subject, before, after, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    self.revision,
                    self.now,
                    self.actor,
                    op,
                    subject,
                    before,
                    after,
                    hash
                ])
            })
            .map_err(self.err())?;
        self.prev_hash = hash;
        Ok(())
    }

    fn account_id(&mut self, user_name: &str) -> Result<i64, StoreError> {
        let key = user_name.to_lowercase();
        if let Some(id) = self.accounts.get(&key) {
            return Ok(*id);
        }
        let id = self
            .conn
            .prepare_cached("SELECT id FROM accounts WHERE user_key = ?1")
            .and_then(|mut s| s.query_row([&key], |r| r.get(0)).optional())
            .map_err(self.err())?
            .ok_or_else(|| {
                StoreError::Invalid(format!("account `{user_name}` does not exist in the store"))
            })?;
        self.accounts.insert(key, id);
        Ok(id)
    }

    fn group_id(&mut self, name: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.groups.get(name) {
            return Ok(*id);
        }
        let id = self
            .conn
            .prepare_cached("SELECT id FROM groups WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
            .map_err(self.err())?
            .ok_or_else(|| {
                StoreError::Invalid(format!("group `{name}` does not exist in the store"))
            })?;
        self.groups.insert(name.to_string(), id);
        Ok(id)
    }

    fn set_active(&mut self, user_name: &str, active: bool) -> Result<(), StoreError> {
        let id = self.account_id(user_name)?;
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE accounts SET active = ?2, updated_at = ?3 WHERE id = ?1 AND active = ?4",
            )
            .and_then(|mut s| s.execute(params![id, active, self.now, !active]))
            .map_err(self.err())?;
        if changed != 1 {
            return Err(StoreError::Invalid(format!(
                "account `{user_name}` is already {}",
                if active { "active" } else { "inactive" }
            )));
        }
        if !active {
            // A deactivated account is not invited (again).
            self.conn
                .prepare_cached("DELETE FROM outbox WHERE account_id = ?1 AND sent_at IS NULL")
                .and_then(|mut s| s.execute([id]))
                .map_err(self.err())?;
        }
        let (op, before, after) = if active {
            ("reactivate_account", false, true)
        } else {
            ("deactivate_account", true, false)
        };
        self.record(
            op,
            user_name,
            Some(active_json(before)),
            Some(active_json(after)),
        )
    }

    fn membership_subject(user_name: &str, group: &str) -> String {
        format!("{user_name} in {group}")
    }
}

impl Session for SqliteSession {
    fn revision(&mut self) -> Result<i64, StoreError> {
        Ok(self.revision)
    }

    fn create_group(
        &mut self,
        name: &str,
        kind: GroupType,
        lwia: Option<u32>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT INTO groups (name, type, lwia, active, created_at) VALUES (?1, ?2, ?3, 1, ?4)")
            .and_then(|mut s| s.execute(params![name, type_str(kind), lwia, self.now]))
            .map_err(self.err())?;
        let id = self.conn.last_insert_rowid();
        self.groups.insert(name.to_string(), id);
        self.record(
            "create_group",
            name,
            None,
            Some(&serde_json::json!({ "type": type_str(kind), "lwia": lwia }).to_string()),
        )
    }

    fn create_account(
        &mut self,
        user_name: &str,
        profile: &Profile,
        credential: NewCredential,
    ) -> Result<(), StoreError> {
        let (state, hash, digest) = match &credential {
            NewCredential::Invite {
                token_digest,
                token,
            } => ("invited", None, Some((token_digest, token))),
            NewCredential::Password { hash, .. } => ("password_set", Some(hash), None),
        };
        let key = user_name.to_lowercase();
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO accounts (user_name, user_key, email, email_key, first_name, last_name, \
                 first_key, last_key, birth_date, phone, extension, zip, role, active, credential, \
                 password_hash, activation_digest, invited_at, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1, ?14, ?15, ?16, ?17, ?18, ?18)",
            )
            .and_then(|mut s| {
                let row = ProfileRow::new(profile);
                let invited_at = digest.map(|_| &self.now);
                let digest = digest.map(|(d, _)| d);
                let mut values: Vec<&dyn ToSql> = vec![&user_name, &key];
                values.extend(row.values());
                values.extend([&state as &dyn ToSql, &hash, &digest, &invited_at, &self.now]);
                s.execute(rusqlite::params_from_iter(values))
            });
        self.unique(inserted, || {
            format!("account `{user_name}` already exists in the store")
        })?;
        let id = self.conn.last_insert_rowid();
        self.accounts.insert(key, id);
        if let Some((_, token)) = digest {
            self.conn
                .prepare_cached("INSERT INTO outbox (kind, account_id, recipient, token, created_at) VALUES ('invitation', ?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![id, profile.email, token, self.now]))
                .map_err(self.err())?;
        }
        let mut after = masked(profile);
        after["credential"] = state.into();
        self.record("create_account", user_name, None, Some(&after.to_string()))
    }

    fn reactivate_account(&mut self, user_name: &str) -> Result<(), StoreError> {
        self.set_active(user_name, true)
    }

    fn deactivate_account(&mut self, user_name: &str) -> Result<(), StoreError> {
        self.set_active(user_name, false)
    }

    fn update_profile(
        &mut self,
        user_name: &str,
        profile: &Profile,
        fields: &[String],
    ) -> Result<(), StoreError> {
        let id = self.account_id(user_name)?;
        let before = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([id], account_from_row))
            .map_err(self.err())?;
        let mut p = before.profile.clone();
        for f in fields {
            match f.as_str() {
                "email" => p.email = profile.email.clone(),
                "first_name" => p.first_name = profile.first_name.clone(),
                "last_name" => p.last_name = profile.last_name.clone(),
                "birth_date" => p.birth_date = profile.birth_date.clone(),
                "phone" => p.phone = profile.phone.clone(),
                "extension" => p.extension = profile.extension.clone(),
                "zip" => p.zip = profile.zip.clone(),
                "role" => p.role = profile.role,
                other => {
                    return Err(StoreError::Invalid(format!(
                        "unknown profile field `{other}`"
                    )));
                }
            }
        }
        self.conn
            .prepare_cached(
                "UPDATE accounts SET email = ?2, email_key = ?3, first_name = ?4, last_name = ?5, \
                 first_key = ?6, last_key = ?7, birth_date = ?8, phone = ?9, extension = ?10, zip = ?11, \
                 role = ?12, updated_at = ?13 WHERE id = ?1",
            )
            .and_then(|mut s| {
                let row = ProfileRow::new(&p);
                let mut values: Vec<&dyn ToSql> = vec![&id];
                values.extend(row.values());
                values.push(&self.now);
                s.execute(rusqlite::params_from_iter(values))
            })
            .map_err(self.err())?;
        self.record(
            "update_profile",
            user_name,
            Some(&masked(&before.profile).to_string()),
            Some(&masked(&p).to_string()),
        )
    }

    fn add_membership(
        &mut self,
        user_name: &str,
        group: &str,
        user_manager: bool,
    ) -> Result<(), StoreError> {
        let a = self.account_id(user_name)?;
        let g = self.group_id(group)?;
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO memberships (group_id, account_id, user_manager) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![g, a, user_manager]));
        self.unique(inserted, || {
            format!("`{user_name}` is already a member of `{group}`")
        })?;
        self.record(
            "add_membership",
            &Self::membership_subject(user_name, group),
            None,
            Some(manager_json(user_manager)),
        )
    }

    fn set_user_manager(
        &mut self,
        user_name: &str,
        group: &str,
        user_manager: bool,
    ) -> Result<(), StoreError> {
        let a = self.account_id(user_name)?;
        let g = self.group_id(group)?;
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE memberships SET user_manager = ?3 WHERE group_id = ?1 AND account_id = ?2 AND user_manager = ?4",
            )
            .and_then(|mut s| s.execute(params![g, a, user_manager, !user_manager]))
            .map_err(self.err())?;
        if changed != 1 {
            return Err(StoreError::Invalid(format!(
                "`{user_name}` is not a member of `{group}` {} the user-manager grant",
                if user_manager { "without" } else { "with" }
            )));
        }
        let op = if user_manager {
            "grant_user_manager"
        } else {
            "revoke_user_manager"
        };
        self.record(
            op,
            &Self::membership_subject(user_name, group),
            Some(manager_json(!user_manager)),
            Some(manager_json(user_manager)),
        )
    }

    fn remove_membership(&mut self, user_name: &str, group: &str) -> Result<(), StoreError> {
        let a = self.account_id(user_name)?;
        let g = self.group_id(group)?;
        let was: Option<bool> = self
            .conn
            .prepare_cached("DELETE FROM memberships WHERE group_id = ?1 AND account_id = ?2 RETURNING user_manager")
            .and_then(|mut s| s.query_row(params![g, a], |r| r.get(0)).optional())
            .map_err(self.err())?;
        let Some(was) = was else {
            return Err(StoreError::Invalid(format!(
                "`{user_name}` is not a member of `{group}`"
            )));
        };
        self.record(
            "remove_membership",
            &Self::membership_subject(user_name, group),
            Some(manager_json(was)),
            None,
        )
    }

    fn rename_account(&mut self, user_name: &str, new_name: &str) -> Result<(), StoreError> {
        let id = self.account_id(user_name)?;
        let renamed = self
            .conn
            .prepare_cached(
                "UPDATE accounts SET user_name = ?2, user_key = ?3, updated_at = ?4 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, new_name, new_name.to_lowercase(), self.now]));
        self.unique(renamed, || {
            format!("account `{new_name}` already exists in the store")
        })?;
        self.accounts.remove(&user_name.to_lowercase());
        self.accounts.insert(new_name.to_lowercase(), id);
        let json = |n: &str| serde_json::json!({ "user_name": n }).to_string();
        self.record(
            "rename_account",
            user_name,
            Some(&json(user_name)),
            Some(&json(new_name)),
        )
    }

    fn delete_account(&mut self, user_name: &str) -> Result<(), StoreError> {
        let id = self.account_id(user_name)?;
        for sql in [
            "DELETE FROM memberships WHERE account_id = ?1",
            "DELETE FROM outbox WHERE account_id = ?1",
            "DELETE FROM accounts WHERE id = ?1",
        ] {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut s| s.execute([id]))
                .map_err(self.err())?;
        }
        self.accounts.remove(&user_name.to_lowercase());
        self.record("delete_account", user_name, None, None)
    }

    fn update_group(
        &mut self,
        name: &str,
        new_name: &str,
        kind: GroupType,
        lwia: Option<u32>,
    ) -> Result<(), StoreError> {
        let id = self.group_id(name)?;
        let before = self
            .conn
            .prepare_cached("SELECT type, lwia FROM groups WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    Ok(serde_json::json!({"name": name, "type": r.get::<_, String>(0)?, "lwia": r.get::<_, Option<u32>>(1)?}))
                })
            })
            .map_err(self.err())?;
        let updated = self
            .conn
            .prepare_cached(
                "UPDATE groups SET name = ?2, type = ?3, lwia = ?4, updated_at = ?5 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, new_name, type_str(kind), lwia, self.now]));
        self.unique(updated, || {
            format!("group `{new_name}` already exists in the store")
        })?;
        self.groups.remove(name);
        self.groups.insert(new_name.to_string(), id);
        let after = serde_json::json!({"name": new_name, "type": type_str(kind), "lwia": lwia});
        self.record(
            "update_group",
            name,
            Some(&before.to_string()),
            Some(&after.to_string()),
        )
    }

    fn delete_group(&mut self, name: &str) -> Result<(), StoreError> {
        let id = self.group_id(name)?;
        for sql in [
            "DELETE FROM memberships WHERE group_id = ?1",
            "DELETE FROM groups WHERE id = ?1",
        ] {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut s| s.execute([id]))
                .map_err(self.err())?;
        }
        self.groups.remove(name);
        self.record("delete_group", name, None, None)
    }

    fn set_scim_field(
        &mut self,
        of: Owner,
        name: &str,
        field: ScimField,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let (table, id) = match of {
            Owner::Account => ("accounts", self.account_id(name)?),
            Owner::Group => ("groups", self.group_id(name)?),
        };
        let (column, key) = match (of, field) {
            (_, ScimField::ExternalId) => ("external_id", "external_id"),
            (Owner::Account, ScimField::DisplayName) => ("display_name", "display_name"),
            (Owner::Group, ScimField::DisplayName) => {
                return Err(StoreError::Invalid(
                    "a group's display name is its name".into(),
                ));
            }
        };
        // Table and column come from the match above, never from input.
        let sql = format!("UPDATE {table} SET {column} = ?2, updated_at = ?3 WHERE id = ?1");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.execute(params![id, value, self.now]))
            .map_err(self.err())?;
        let after = serde_json::json!({ key: value }).to_string();
        let op = match of {
            Owner::Account => "set_account_scim_field",
            Owner::Group => "set_group_scim_field",
        };
        self.record(op, name, None, Some(&after))
    }

    fn create_token(
        &mut self,
        name: &str,
        digest: &str,
        scope: Option<&[String]>,
    ) -> Result<(), StoreError> {
        // Kept as the groups' ids: a scope follows its group through
        // renames and dies with it.
        let ids: Option<Vec<i64>> = scope
            .map(|names| names.iter().map(|n| self.group_id(n)).collect())
            .transpose()?;
        let stored = ids.as_deref().map(crate::store::directory::Scope::stored);
        let inserted = self.conn.execute(
            "INSERT INTO tokens (name, digest, scope, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, digest, stored, self.now],
        );
        self.unique(inserted, || {
            format!("a token named `{name}` already exists; pick another name or revoke it first")
        })?;
        let after = serde_json::json!({ "scope": scope, "group_ids": ids }).to_string();
        self.record("create_token", name, None, Some(&after))
    }

    fn revoke_token(&mut self, name: &str) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, self.now],
            )
            .map_err(self.err())?;
        if changed != 1 {
            return Err(StoreError::Invalid(format!(
                "no live token named `{name}`; `roster token list` shows them"
            )));
        }
        self.record("revoke_token", name, None, None)
    }

    fn savepoint(&mut self) -> Result<(), StoreError> {
        if self.saved.is_some() {
            return Err(StoreError::Invalid("a savepoint is already set".into()));
        }
        self.conn
            .execute_batch("SAVEPOINT write")
            .map_err(self.err())?;
        self.saved = Some(SqliteSaved {
            revision: self.revision,
            prev_hash: self.prev_hash.clone(),
            accounts: self.accounts.clone(),
            groups: self.groups.clone(),
        });
        Ok(())
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        let saved = self
            .saved
            .take()
            .ok_or_else(|| StoreError::Invalid("no savepoint to roll back to".into()))?;
        self.conn
            .execute_batch("ROLLBACK TO write; RELEASE write")
            .map_err(self.err())?;
        self.revision = saved.revision;
        self.prev_hash = saved.prev_hash;
        self.accounts = saved.accounts;
        self.groups = saved.groups;
        Ok(())
    }

    fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.saved
            .take()
            .ok_or_else(|| StoreError::Invalid("no savepoint to release".into()))?;
        self.conn.execute_batch("RELEASE write").map_err(self.err())
    }

    fn commit(mut self: Box<Self>) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'revision'",
                [self.revision],
            )
            .map_err(self.err())?;
        self.conn.execute_batch("COMMIT").map_err(self.err())?;
        self.open = false;
        Ok(self.revision)
    }
}

impl Drop for SqliteSession {
    fn drop(&mut self) {
        if self.open {
            // Nothing of an unfinished apply lands.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
