//! The SQL store, written once over a small connection layer ([`conn`]):
//! the reader ([`reader`]), the write session ([`session`]) and the handle
//! with its bounded pool of connections (here). What SQLite and PostgreSQL
//! do differently (opening, locking, schema version, migrations' DDL) is a
//! [`Backend`] in [`sqlite`] and [`postgres`].

pub mod activate;
pub mod columns;
pub mod conn;
pub mod directory;
pub mod filter;
pub mod outbox;
pub mod postgres;
pub mod reader;
pub mod session;
pub mod sqlite;

use super::directory::ListQuery;
use super::{Options, Reader, Served, Session, StoreError};
use crate::domain::{Account, CredentialState, Profile};
use crate::scim::filter::FilterError;
use columns::{Mapped, Table};
use conn::{Conn, Dialect, Row};
use filter::Sql;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a database's current schema holds.
pub enum Schema {
    /// No tables at all: a store not created yet.
    Empty,
    /// A roster store at this schema version.
    Version(usize),
    /// Somebody else's tables: why they are not a roster store, and what
    /// to do.
    Foreign(&'static str),
}

impl Schema {
    /// The schema version migrating starts from (0: a store not created
    /// yet); somebody else's tables, or a newer roster's store, refused.
    pub fn migrate_from(self, url: &str, known: usize) -> Result<usize, StoreError> {
        match self {
            Schema::Empty => Ok(0),
            Schema::Foreign(why) => Err(StoreError::Open {
                url: url.to_string(),
                message: why.into(),
            }),
            Schema::Version(version) if version > known => Err(StoreError::Open {
                url: url.to_string(),
                message: format!(
                    "the store uses schema version {version}, newer than this roster understands ({known}); upgrade roster"
                ),
            }),
            Schema::Version(version) => Ok(version),
        }
    }
}

/// What one SQL database does its own way.
pub trait Backend: Send + Sync + 'static {
    type C: Conn + 'static;
    /// The store's URL as roster shows it.
    fn url(&self) -> &str;
    /// The migrations, in order.
    const MIGRATIONS: &'static [&'static str];
    /// Whether a reader can skip connecting: the store surely does not
    /// exist yet (SQLite: no file).
    fn absent(&self) -> bool {
        false
    }
    /// A new connection, for reads or for writes.
    fn connect(&self, write: bool) -> Result<Self::C, StoreError>;
    fn schema(&self, conn: &mut Self::C) -> Result<Schema, StoreError>;
    /// Start a read-only snapshot.
    fn begin_read(&self, conn: &mut Self::C) -> Result<(), StoreError>;
    /// Start the write transaction: the store created and migrated, its
    /// write lock held (waiting at most `lock_timeout`).
    fn begin_write(&self, conn: &mut Self::C, lock_timeout: Duration) -> Result<(), StoreError>;
}

/// Run the migrations after `from` (each then recorded by `record`).
pub fn migrate<C: Conn + ?Sized>(
    conn: &mut C,
    from: usize,
    migrations: &[&str],
    mut record: impl FnMut(&mut C, usize) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for (i, m) in migrations.iter().enumerate().skip(from) {
        conn.batch(m)?;
        record(conn, i + 1)?;
    }
    Ok(())
}

/// The store is there to read: `Some(true)` current, `Some(false)` none yet.
fn readable<B: Backend>(b: &B, conn: &mut B::C) -> Result<bool, StoreError> {
    let known = B::MIGRATIONS.len();
    match b.schema(conn)?.migrate_from(b.url(), known)? {
        0 => Ok(false),
        v if v < known => Err(StoreError::Open {
            url: b.url().to_string(),
            message: format!(
                "the store uses schema version {v}; run `roster apply` to migrate it to {known}"
            ),
        }),
        _ => Ok(true),
    }
}

/// A connection in a read snapshot of the store, opened outside any pool;
/// `None` when the store does not exist yet.
pub fn open_snapshot<B: Backend>(b: &B) -> Result<Option<B::C>, StoreError> {
    if b.absent() {
        return Ok(None);
    }
    let mut c = b.connect(false)?;
    b.begin_read(&mut c)?;
    Ok(readable(b, &mut c)?.then_some(c))
}

/// The account columns every account query selects, over `accounts a`:
/// the case manager's user name comes with the account, its roles and
/// entitlements from [`fill_grants`].
pub const ACCOUNT_COLUMNS: &str = "a.user_name, a.email, a.first_name, a.last_name, a.birth_date, \
     a.phone, a.extension, a.zip, \
     (SELECT cm.user_name FROM accounts cm WHERE cm.id = a.case_manager_id), a.active, a.credential";

/// An account from the first 11 columns of `r` ([`ACCOUNT_COLUMNS`]).
pub fn account_from_row(r: &Row) -> Result<Account, StoreError> {
    take_account(&mut r.clone())
}

/// An account from the first 11 columns of `r`, moved out of it; its
/// roles and entitlements are [`fill_grants`]'s.
pub fn take_account(r: &mut Row) -> Result<Account, StoreError> {
    let credential: String = r.take(10)?;
    Ok(Account {
        user_name: r.take(0)?,
        profile: Profile {
            email: r.take(1)?,
            first_name: r.take(2)?,
            last_name: r.take(3)?,
            birth_date: r.take(4)?,
            phone: r.take(5)?,
            extension: r.take(6)?,
            zip: r.take(7)?,
        },
        active: r.take(9)?,
        credential: CredentialState::parse(&credential),
        roles: Vec::new(),
        entitlements: Vec::new(),
        case_manager: r.take(8)?,
    })
}

/// The roles and entitlements of `accounts` (whose row ids are `ids`, in
/// the same order), read in one statement; `None`: every account's, for a
/// listing of them all.
pub fn fill_grants(
    c: &mut dyn Conn,
    ids: Option<&[i64]>,
    accounts: &mut [(i64, &mut Account)],
) -> Result<(), StoreError> {
    if accounts.is_empty() {
        return Ok(());
    }
    let (sql, values) = match ids {
        Some(ids) => (
            format!(
                "SELECT account_id, role, NULL FROM account_roles WHERE {} \
                 UNION ALL SELECT account_id, kind, value FROM account_entitlements WHERE {}",
                c.in_list("account_id", 1),
                c.in_list("account_id", 1)
            ),
            vec![conn::Value::IntList(ids.to_vec())],
        ),
        None => (
            "SELECT account_id, role, NULL FROM account_roles \
             UNION ALL SELECT account_id, kind, value FROM account_entitlements"
                .to_string(),
            Vec::new(),
        ),
    };
    // An account read twice (two keys finding it) gets its grants on
    // every copy: `first` finds its first copy, `next` the one after.
    let mut first: std::collections::HashMap<i64, usize> =
        std::collections::HashMap::with_capacity(accounts.len());
    let mut next: Vec<Option<usize>> = vec![None; accounts.len()];
    for (i, (id, _)) in accounts.iter().enumerate().rev() {
        next[i] = first.insert(*id, i);
    }
    c.query_each(&sql, &values, &mut |r| {
        let Some(&at) = first.get(&r.get::<i64>(0)?) else {
            return Ok(());
        };
        let name: String = r.take(1)?;
        let value = r.take::<Option<String>>(2)?;
        // Copies get clones; the last copy (most often the only one) takes the row's own.
        let mut i = at;
        while let Some(after) = next[i] {
            let a = &mut accounts[i].1;
            match &value {
                None => a.roles.push(name.clone()),
                Some(value) => a.entitlements.push(crate::domain::Entitlement {
                    kind: name.clone(),
                    value: value.clone(),
                }),
            }
            i = after;
        }
        let a = &mut accounts[i].1;
        match value {
            None => a.roles.push(name),
            Some(value) => a
                .entitlements
                .push(crate::domain::Entitlement { kind: name, value }),
        }
        Ok(())
    })?;
    for (_, a) in accounts.iter_mut() {
        a.roles.sort();
        a.entitlements.sort();
    }
    Ok(())
}

/// Idle connections and how many are open, for writes and reads apart.
struct Idle<C> {
    read: Vec<C>,
    write: Vec<C>,
    open: usize,
}

/// A bounded pool: at most `max` connections open at once, idle ones
/// reused by every reader, session and served request of the handle.
pub struct Pool<B: Backend> {
    backend: B,
    idle: Mutex<Idle<B::C>>,
    freed: Condvar,
    max: usize,
    /// How long a caller waits for a connection when all are in use.
    wait: Duration,
}

impl<B: Backend> Pool<B> {
    fn new(backend: B, options: &Options) -> Arc<Self> {
        Arc::new(Pool {
            backend,
            idle: Mutex::new(Idle {
                read: Vec::new(),
                write: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            max: options.connections.max(1),
            wait: options.lock_timeout.max(Duration::from_secs(1)),
        })
    }

    /// An idle connection of this kind, or the right to open one.
    fn slot(&self, write: bool) -> Result<Option<B::C>, StoreError> {
        let deadline = Instant::now() + self.wait;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let mine = if write {
                &mut idle.write
            } else {
                &mut idle.read
            };
            if let Some(c) = mine.pop() {
                return Ok(Some(c));
            }
            if idle.open < self.max {
                idle.open += 1;
                return Ok(None);
            }
            // Full of the other kind: close one of those.
            let other = if write {
                &mut idle.read
            } else {
                &mut idle.write
            };
            if other.pop().is_some() {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && write {
                // Every connection is busy with writes: as good as locked.
                return Err(StoreError::Locked {
                    url: self.backend.url().to_string(),
                    waited_ms: self.wait.as_millis() as u64,
                });
            }
            if left.is_zero() {
                return Err(StoreError::Open {
                    url: self.backend.url().to_string(),
                    message: format!(
                        "all {} connections of the store are in use; try again",
                        self.max
                    ),
                });
            }
            idle = self
                .freed
                .wait_timeout(idle, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// A connection, reused or new, made ready by `ready` (a reused one the
    /// server dropped meanwhile is let go and a new one opened).
    fn lease(
        self: &Arc<Self>,
        write: bool,
        mut ready: impl FnMut(&B, &mut B::C) -> Result<(), StoreError>,
    ) -> Result<Lease<B>, StoreError> {
        let mut lease = Lease {
            conn: None,
            write,
            pool: Arc::clone(self),
        };
        if let Some(mut c) = self.slot(write)? {
            match ready(&self.backend, &mut c) {
                Ok(()) => {
                    lease.conn = Some(c);
                    return Ok(lease);
                }
                Err(e @ (StoreError::Locked { .. } | StoreError::Open { .. })) => {
                    lease.conn = Some(c);
                    return Err(e);
                }
                Err(_) => {}
            }
        }
        let mut c = self.backend.connect(write)?;
        let ready = ready(&self.backend, &mut c);
        lease.conn = Some(c);
        ready.map(|()| lease)
    }
}

/// A pooled connection: back to its pool when dropped, outside any
/// transaction (or closed, if it cannot get out of one).
pub struct Lease<B: Backend> {
    conn: Option<B::C>,
    write: bool,
    pool: Arc<Pool<B>>,
}

impl<B: Backend> Lease<B> {
    fn inner(&mut self) -> &mut B::C {
        // Only `drop` takes the connection out.
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl<B: Backend> Drop for Lease<B> {
    fn drop(&mut self) {
        let back = self
            .conn
            .take()
            .and_then(|mut c| (!c.in_transaction() || c.batch("ROLLBACK").is_ok()).then_some(c));
        let mut idle = self
            .pool
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match back {
            Some(c) if self.write => idle.write.push(c),
            Some(c) => idle.read.push(c),
            None => idle.open = idle.open.saturating_sub(1),
        }
        drop(idle);
        self.pool.freed.notify_one();
    }
}

impl<B: Backend> Conn for Lease<B> {
    fn source(&self) -> (conn::Dialect, &str) {
        let conn = self.conn.as_ref().expect("connection present until drop");
        (conn.dialect(), self.pool.backend.url())
    }
    fn execute_args(&mut self, sql: &str, args: &[conn::Arg]) -> Result<u64, StoreError> {
        self.inner().execute_args(sql, args)
    }
    fn query_rows(
        &mut self,
        sql: &str,
        args: &[conn::Arg],
        each: conn::EachRow,
    ) -> Result<(), StoreError> {
        self.inner().query_rows(sql, args, each)
    }
    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.inner().batch(sql)
    }
    fn batch_soon(&mut self, sql: &str) -> Result<(), StoreError> {
        self.inner().batch_soon(sql)
    }
    fn last_insert_id(&mut self) -> Option<i64> {
        self.inner().last_insert_id()
    }
    fn deadline(&mut self, deadline: Option<Instant>) -> Result<(), StoreError> {
        self.inner().deadline(deadline)
    }
    fn in_transaction(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.in_transaction())
    }
    fn ahead(&mut self) -> Option<&mut conn::Ahead> {
        self.inner().ahead()
    }
}

/// A SQL store opened once: the handle of [`super::open`].
pub struct SqlStore<B: Backend> {
    /// The URL as given (with its password, if any).
    url: String,
    pool: Arc<Pool<B>>,
    options: Options,
}

impl<B: Backend> SqlStore<B> {
    pub fn new(url: &str, backend: B, options: Options) -> Self {
        SqlStore {
            url: url.to_string(),
            pool: Pool::new(backend, &options),
            options,
        }
    }

    /// A reader; `None` inside when the store does not exist yet.
    pub fn snapshot(&self) -> Result<reader::SqlReader, StoreError> {
        let url = self.pool.backend.url().to_string();
        if self.pool.backend.absent() {
            return Ok(reader::SqlReader::new(url, None));
        }
        let mut found = true;
        let lease = self.pool.lease(false, |b, c| {
            b.begin_read(c)?;
            found = readable(b, c)?;
            Ok(())
        });
        let lease = lease?;
        Ok(reader::SqlReader::new(
            url,
            found.then(|| Box::new(lease) as Box<dyn Conn>),
        ))
    }

    pub fn session(&self, actor: &str, now: &str) -> Result<session::SqlSession, StoreError> {
        let timeout = self.options.lock_timeout;
        let lease = self.pool.lease(true, |b, c| b.begin_write(c, timeout))?;
        session::SqlSession::begin(Box::new(lease), actor, now)
    }
}

impl<B: Backend> super::Store for SqlStore<B> {
    fn url(&self) -> &str {
        &self.url
    }
    fn reader(&self) -> Result<Box<dyn Reader>, StoreError> {
        Ok(Box::new(self.snapshot()?))
    }
    fn begin(&self, actor: &str, now: &str) -> Result<Box<dyn Session>, StoreError> {
        Ok(Box::new(self.session(actor, now)?))
    }
    fn plan_key(&self, create: bool) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self.snapshot()?.plan_key()?;
        if found.is_some() || !create {
            return Ok(found);
        }
        let mut fresh = [0u8; 32];
        rand::fill(&mut fresh);
        let mut s = self.session("roster", &super::now())?;
        let key = s.plan_key(&fresh)?;
        Box::new(s).commit()?;
        Ok(Some(key))
    }
    fn served(&self) -> Result<Box<dyn Served>, StoreError> {
        served(&self.pool.backend)
    }
}

/// A read connection of its own for `roster serve`, which keeps it between
/// requests, in a read snapshot.
pub fn served<B: Backend>(b: &B) -> Result<Box<dyn Served>, StoreError> {
    let conn = open_snapshot(b)?.map(|c| Box::new(c) as Box<dyn Conn>);
    Ok(Box::new(directory::SqlDirectory::new(conn)?))
}

/// A listing's filter translated for `dialect`, its placeholders numbered
/// from 1, and its ORDER BY: the sort attribute (NULLs last whichever the
/// direction, RFC 7644 §3.4.2.3), then the table's key so pages never
/// overlap.
pub fn listing(
    q: &ListQuery,
    table: &Table,
    dialect: Dialect,
) -> Result<(Option<Sql>, String), StoreError> {
    let attrs = Mapped {
        schema: q.schema,
        table,
    };
    let sql = q
        .filter
        .map(|f| filter::to_sql(f, &attrs, dialect, 1))
        .transpose()
        .map_err(StoreError::Filter)?;
    let order = match q.sort_by {
        None => table.key.to_string(),
        Some(path) => {
            let expr = filter::order_by(path, &attrs).ok_or_else(|| {
                StoreError::Filter(FilterError {
                    scim_type: "invalidValue",
                    ..FilterError::new(format!("cannot sort by `{path}`"))
                })
            })?;
            let dir = if q.descending { "DESC" } else { "ASC" };
            format!("{expr} {dir} NULLS LAST, {}", table.key)
        }
    };
    Ok((sql, order))
}
