//! The store on PostgreSQL: the same tables, revision and audit chain as the
//! embedded store, for many admins and servers sharing one database.
//!
//! Readers run inside one `REPEATABLE READ READ ONLY` transaction, so every
//! look-up of a plan sees the same revision and none can write. A session is
//! one transaction holding a transaction-level advisory lock on a fixed key:
//! a second apply (from another admin, or another `roster serve` replica)
//! waits up to its lock timeout and then fails cleanly instead of
//! interleaving. Look-ups send their keys as arrays, so planning many
//! partners takes a handful of round trips, not one per partner.

use super::audit::{self, GENESIS};
use super::sqlite::{active_json, group_type, manager_json, masked, type_str};
use super::{AuditEntry, Invitation, NewCredential, Owner, Reader, ScimField, Session, StoreError};
use crate::domain::{Account, CredentialState, Group, GroupType, Membership, NameDob, Profile};
use crate::roster::normalize::{email_key, name_key};
use ::postgres::error::SqlState;
use ::postgres::types::ToSql;
use ::postgres::{Client, NoTls, Row, Statement};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

mod directory;

/// Migrations, in order; `meta.schema_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_init.sql"),
    include_str!("migrations/postgres/0002_tokens.sql"),
    include_str!("migrations/postgres/0003_ids_and_scopes.sql"),
    include_str!("migrations/postgres/0004_plan_key.sql"),
];

/// The advisory lock every session holds: "roster" in ASCII. Anything else
/// that writes the store can take it too (`pg_advisory_xact_lock`).
pub const LOCK_KEY: i64 = 0x726f_7374_6572;

/// How long connecting may take before roster gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const ACCOUNT_COLUMNS: &str = "a.user_name, a.email, a.first_name, a.last_name, a.birth_date, \
     a.phone, a.extension, a.zip, a.role, a.active, a.credential";

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

/// A client error with the server's own words, which the client's `Display`
/// leaves out.
fn describe(e: &::postgres::Error) -> String {
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

fn sql_err(url: &str) -> impl Fn(::postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Postgres {
        url: url.to_string(),
        message: describe(&e),
    }
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
fn connect(url: &str, shown: &str) -> Result<Client, StoreError> {
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
    let ms = STATEMENT_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed);
    if ms > 0 {
        // After the URL's own options, so this one wins.
        let options = format!(
            "{} -c statement_timeout={ms}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_start());
    }
    config.connect(NoTls).map_err(|e| {
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

/// What the database's current schema holds.
enum Schema {
    /// No tables at all: a store not created yet.
    Empty,
    /// A roster store at this schema version.
    Version(usize),
    /// Somebody else's tables.
    Foreign,
}

fn schema(client: &mut Client, url: &str) -> Result<Schema, StoreError> {
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE c.relname = 'meta') FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            &[],
        )
        .map_err(sql_err(url))?;
    let (tables, meta): (i64, i64) = (row.get(0), row.get(1));
    if tables == 0 {
        return Ok(Schema::Empty);
    }
    if meta == 0 {
        return Ok(Schema::Foreign);
    }
    // Another program's `meta` may have other columns or types: not ours.
    let version = client
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .ok()
        .flatten()
        .and_then(|r| r.try_get::<_, i64>(0).ok());
    Ok(match version {
        Some(v) if v > 0 => Schema::Version(usize::try_from(v).unwrap_or(usize::MAX)),
        _ => Schema::Foreign,
    })
}

fn newer_schema(url: &str, version: usize) -> StoreError {
    open_err(
        url,
        format!(
            "the store uses schema version {version}, newer than this roster understands ({}); upgrade roster",
            MIGRATIONS.len()
        ),
    )
}

fn not_a_store(url: &str) -> StoreError {
    open_err(
        url,
        "this database holds tables that are not a roster store; give an empty database (or another schema via options=-csearch_path=NAME)".into(),
    )
}

fn account_from_row(r: &Row) -> Account {
    let role: String = r.get(8);
    let credential: String = r.get(10);
    Account {
        user_name: r.get(0),
        profile: Profile {
            email: r.get(1),
            first_name: r.get(2),
            last_name: r.get(3),
            birth_date: r.get(4),
            phone: r.get(5),
            extension: r.get(6),
            zip: r.get(7),
            role: role.parse().unwrap_or_default(),
        },
        active: r.get(9),
        credential: CredentialState::parse(&credential),
    }
}

fn lwia_from(v: Option<i64>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok())
}

/// Read-only access for planning, export, log and invitations.
pub struct PgReader {
    url: String,
    client: Client,
    /// No roster tables yet: everything reads as empty at revision 0.
    empty: bool,
}

impl PgReader {
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let shown = redact(url);
        let mut client = connect(url, &shown)?;
        // One snapshot: every look-up below sees the same revision.
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(sql_err(&shown))?;
        let empty = match schema(&mut client, &shown)? {
            Schema::Empty => true,
            Schema::Foreign => return Err(not_a_store(&shown)),
            Schema::Version(v) if v > MIGRATIONS.len() => return Err(newer_schema(&shown, v)),
            Schema::Version(v) if v < MIGRATIONS.len() => {
                return Err(open_err(
                    &shown,
                    format!(
                        "the store uses schema version {v}; run `roster apply` to migrate it to {}",
                        MIGRATIONS.len()
                    ),
                ));
            }
            Schema::Version(_) => false,
        };
        Ok(PgReader {
            url: shown,
            client,
            empty,
        })
    }

    /// The key that seals this store's plans, if it has one yet.
    pub fn plan_key(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        if self.empty {
            return Ok(None);
        }
        self.client
            .query_opt("SELECT key FROM plan_keys WHERE id = 1", &[])
            .map(|r| r.map(|r| r.get(0)))
            .map_err(sql_err(&self.url))
    }

    /// Accounts joined to `from` (which names the look-up keys), in key order.
    fn accounts_where(
        &mut self,
        from: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Account>, StoreError> {
        if self.empty {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM {from}");
        let rows = self
            .client
            .query(&sql, params)
            .map_err(sql_err(&self.url))?;
        Ok(rows.iter().map(account_from_row).collect())
    }
}

impl super::Served for PgReader {
    fn end_read(&mut self) -> Result<(), StoreError> {
        self.client
            .batch_execute("ROLLBACK")
            .map_err(sql_err(&self.url))
    }
    fn begin_read(&mut self) -> Result<(), StoreError> {
        self.client
            .batch_execute("ROLLBACK; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(sql_err(&self.url))
    }
}

impl Reader for PgReader {
    fn url(&self) -> &str {
        &self.url
    }

    fn revision(&mut self) -> Result<i64, StoreError> {
        if self.empty {
            return Ok(0);
        }
        self.client
            .query_one("SELECT value FROM meta WHERE key = 'revision'", &[])
            .map(|r| r.get(0))
            .map_err(sql_err(&self.url))
    }

    fn accounts_by_user_name(&mut self, names: &[String]) -> Result<Vec<Account>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
        self.accounts_where(
            "unnest($1::text[]) WITH ORDINALITY AS k (key, ord) \
             JOIN accounts a ON a.user_key = k.key ORDER BY k.ord, a.id",
            &[&keys],
        )
    }

    fn accounts_by_email(&mut self, emails: &[String]) -> Result<Vec<Account>, StoreError> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        self.accounts_where(
            "unnest($1::text[]) WITH ORDINALITY AS k (key, ord) \
             JOIN accounts a ON a.email_key = k.key ORDER BY k.ord, a.id",
            &[&emails],
        )
    }

    fn accounts_by_name_dob(&mut self, keys: &[NameDob]) -> Result<Vec<Account>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let last: Vec<&str> = keys.iter().map(|k| k.last.as_str()).collect();
        let first: Vec<&str> = keys.iter().map(|k| k.first.as_str()).collect();
        let dob: Vec<&str> = keys.iter().map(|k| k.birth_date.as_str()).collect();
        self.accounts_where(
            "unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k (last, first, dob, ord) \
             JOIN accounts a ON a.last_key = k.last AND a.first_key = k.first AND a.birth_date = k.dob \
             ORDER BY k.ord, a.id",
            &[&last, &first, &dob],
        )
    }

    fn user_names_like(&mut self, bases: &[String]) -> Result<Vec<String>, StoreError> {
        if self.empty || bases.is_empty() {
            return Ok(Vec::new());
        }
        let bases: Vec<String> = bases.iter().map(|b| b.to_lowercase()).collect();
        // ':' sorts right after '9': the range holds the base and the base + digits.
        let rows = self
            .client
            .query(
                "SELECT a.user_key FROM unnest($1::text[]) WITH ORDINALITY AS k (base, ord) \
                 JOIN accounts a ON a.user_key >= k.base COLLATE \"C\" \
                 AND a.user_key < (k.base || ':') COLLATE \"C\" ORDER BY k.ord, a.user_key",
                &[&bases],
            )
            .map_err(sql_err(&self.url))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn groups(&mut self, names: Option<&[String]>) -> Result<Vec<Group>, StoreError> {
        if self.empty {
            return Ok(Vec::new());
        }
        let rows = match names {
            None => self
                .client
                .query(
                    "SELECT g.name, g.type, g.lwia, g.active FROM groups g ORDER BY g.name",
                    &[],
                )
                .map_err(sql_err(&self.url))?,
            Some([]) => return Ok(Vec::new()),
            Some(names) => self
                .client
                .query(
                    "SELECT g.name, g.type, g.lwia, g.active \
                     FROM unnest($1::text[]) WITH ORDINALITY AS k (name, ord) \
                     JOIN groups g ON g.name = k.name ORDER BY k.ord",
                    &[&names],
                )
                .map_err(sql_err(&self.url))?,
        };
        Ok(rows
            .iter()
            .map(|r| Group {
                name: r.get(0),
                kind: group_type(r.get(1)),
                lwia: lwia_from(r.get(2)),
                active: r.get(3),
            })
            .collect())
    }

    fn memberships(&mut self, groups: &[String]) -> Result<Vec<Membership>, StoreError> {
        if self.empty || groups.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT k.name, a.user_name, m.user_manager \
                 FROM unnest($1::text[]) WITH ORDINALITY AS k (name, ord) \
                 JOIN groups g ON g.name = k.name \
                 JOIN memberships m ON m.group_id = g.id \
                 JOIN accounts a ON a.id = m.account_id ORDER BY k.ord, m.account_id",
                &[&groups],
            )
            .map_err(sql_err(&self.url))?;
        Ok(rows
            .iter()
            .map(|r| Membership {
                group: r.get(0),
                user_name: r.get(1),
                user_manager: r.get(2),
            })
            .collect())
    }

    fn all_accounts(&mut self) -> Result<Vec<Account>, StoreError> {
        self.accounts_where("accounts a ORDER BY a.user_key", &[])
    }

    fn in_other_groups(
        &mut self,
        user_names: &[String],
        groups: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if self.empty || user_names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = user_names.iter().map(|u| u.to_lowercase()).collect();
        let rows = self
            .client
            .query(
                "SELECT k.ord FROM unnest($1::text[]) WITH ORDINALITY AS k (key, ord) \
                 WHERE EXISTS (SELECT 1 FROM accounts a \
                   JOIN memberships m ON m.account_id = a.id JOIN groups g ON g.id = m.group_id \
                   WHERE a.user_key = k.key AND NOT (g.name = ANY ($2::text[]))) \
                 ORDER BY k.ord",
                &[&keys, &groups],
            )
            .map_err(sql_err(&self.url))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let ord: i64 = r.get(0);
                usize::try_from(ord - 1)
                    .ok()
                    .and_then(|i| user_names.get(i))
                    .cloned()
            })
            .collect())
    }

    fn audit(&mut self, since: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        if self.empty {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT seq, revision, at, actor, op, subject, before, after, \
                 CASE WHEN seq = 1 THEN $2 ELSE (SELECT hash FROM audit p WHERE p.seq = audit.seq - 1) END, hash \
                 FROM audit WHERE at >= $1 ORDER BY seq",
                &[&since.unwrap_or(""), &GENESIS],
            )
            .map_err(sql_err(&self.url))?;
        let json = |s: &Option<String>| s.as_deref().and_then(|s| serde_json::from_str(s).ok());
        Ok(rows
            .iter()
            .map(|r| {
                let raw: (Option<String>, Option<String>) = (r.get(6), r.get(7));
                AuditEntry {
                    seq: r.get(0),
                    revision: r.get(1),
                    at: r.get(2),
                    actor: r.get(3),
                    op: r.get(4),
                    subject: r.get(5),
                    before: json(&raw.0),
                    after: json(&raw.1),
                    prev_hash: r.get::<_, Option<String>>(8).unwrap_or_default(),
                    hash: r.get(9),
                    raw,
                }
            })
            .collect())
    }

    fn invitations(&mut self) -> Result<Vec<Invitation>, StoreError> {
        if self.empty {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT user_name, email, invited_at, reminded_at FROM accounts \
                 WHERE credential = 'invited' AND activation_digest IS NOT NULL \
                 AND activated_at IS NULL AND active ORDER BY invited_at, user_key",
                &[],
            )
            .map_err(sql_err(&self.url))?;
        Ok(rows
            .iter()
            .map(|r| Invitation {
                user_name: r.get(0),
                email: r.get(1),
                invited_at: r.get(2),
                reminded_at: r.get(3),
            })
            .collect())
    }
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

    fn values(&self) -> [&(dyn ToSql + Sync); 11] {
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

/// A write transaction on the PostgreSQL store.
pub struct PgSession {
    url: String,
    client: Client,
    actor: String,
    now: String,
    revision: i64,
    prev_hash: String,
    /// The next audit row's number: assigned here so the chain has no gaps.
    next_seq: i64,
    accounts: HashMap<String, i64>,
    groups: HashMap<String, i64>,
    /// Prepared once per session: a large apply runs the same few statements.
    statements: HashMap<&'static str, Statement>,
    /// What [`Session::rollback_to_savepoint`] restores.
    saved: Option<PgSaved>,
    open: bool,
}

/// The session's own state at its savepoint.
struct PgSaved {
    revision: i64,
    prev_hash: String,
    next_seq: i64,
    accounts: HashMap<String, i64>,
    groups: HashMap<String, i64>,
}

/// Wait for the store's write lock, at most `timeout`.
fn lock(client: &mut Client, url: &str, timeout: Duration) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let locked = || StoreError::Locked {
        url: url.to_string(),
        waited_ms: started.elapsed().as_millis() as u64,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128);
    if ms == 0 {
        // `lock_timeout = 0` would mean waiting for ever.
        let got: bool = client
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_KEY])
            .map(|r| r.get(0))
            .map_err(sql_err(url))?;
        return if got { Ok(()) } else { Err(locked()) };
    }
    client
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = {ms}; SET LOCAL statement_timeout = 0"
        ))
        .map_err(sql_err(url))?;
    match client.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]) {
        Ok(_) => {}
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => return Err(locked()),
        Err(e) => return Err(sql_err(url)(e)),
    }
    // The rest of the session waits on nothing but this lock's holders.
    client
        .batch_execute("SET LOCAL lock_timeout TO DEFAULT; SET LOCAL statement_timeout TO DEFAULT")
        .map_err(sql_err(url))
}

impl PgSession {
    pub fn begin(
        url: &str,
        actor: &str,
        now: &str,
        lock_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let shown = redact(url);
        let mut client = connect(url, &shown)?;
        let err = sql_err(&shown);
        // READ COMMITTED: each statement after the lock sees what the
        // session before committed.
        client.batch_execute("BEGIN").map_err(&err)?;
        let mut session = PgSession {
            url: shown.clone(),
            client,
            actor: actor.to_string(),
            now: now.to_string(),
            revision: 0,
            prev_hash: GENESIS.to_string(),
            next_seq: 1,
            accounts: HashMap::new(),
            groups: HashMap::new(),
            statements: HashMap::new(),
            saved: None,
            open: true,
        };
        let client = &mut session.client;
        lock(client, &shown, lock_timeout)?;
        // Under the lock, so two first applies do not both create the tables;
        // in the session's transaction, so a failed apply leaves no half store.
        let from = match schema(client, &shown)? {
            Schema::Empty => 0,
            Schema::Foreign => return Err(not_a_store(&shown)),
            Schema::Version(v) if v > MIGRATIONS.len() => return Err(newer_schema(&shown, v)),
            Schema::Version(v) => v,
        };
        for (i, m) in MIGRATIONS.iter().enumerate().skip(from) {
            client.batch_execute(m).map_err(&err)?;
            client
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&((i + 1) as i64)],
                )
                .map_err(&err)?;
        }
        session.revision = client
            .query_one("SELECT value FROM meta WHERE key = 'revision'", &[])
            .map(|r| r.get(0))
            .map_err(&err)?;
        if let Some(last) = client
            .query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])
            .map_err(&err)?
        {
            session.next_seq = last.get::<_, i64>(0) + 1;
            session.prev_hash = last.get(1);
        }
        Ok(session)
    }

    fn err(&self) -> impl Fn(::postgres::Error) -> StoreError + '_ {
        sql_err(&self.url)
    }

    /// The key that seals this store's plans: `fresh` unless it has one.
    pub fn plan_key(&mut self, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        let now = self.now.clone();
        self.client
            .execute(
                "INSERT INTO plan_keys (id, key, created_at) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO NOTHING",
                &[&fresh, &now],
            )
            .map_err(sql_err(&self.url))?;
        self.client
            .query_one("SELECT key FROM plan_keys WHERE id = 1", &[])
            .map(|r| r.get(0))
            .map_err(sql_err(&self.url))
    }

    /// A write that a uniqueness constraint may refuse; `taken` says what
    /// is already there.
    fn unique<T>(
        &self,
        result: Result<T, ::postgres::Error>,
        taken: impl FnOnce() -> String,
    ) -> Result<T, StoreError> {
        match result {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::Taken(taken()))
            }
            other => other.map_err(self.err()),
        }
    }

    fn stmt(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(sql_err(&self.url))?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, ::postgres::Error> {
        let s = match self.statements.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = self.client.prepare(sql)?;
                self.statements.insert(sql, s.clone());
                s
            }
        };
        self.client.execute(&s, params)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let s = self.stmt(sql)?;
        self.client.query_opt(&s, params).map_err(self.err())
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
        let (seq, revision, now, actor) = (
            self.next_seq,
            self.revision,
            self.now.clone(),
            self.actor.clone(),
        );
        self.execute(
            "INSERT INTO audit (seq, revision, at, actor, op, subject, before, after, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &seq, &revision, &now, &actor, &op, &subject, &before, &after, &hash,
            ],
        )
        .map_err(self.err())?;
        self.next_seq += 1;
        self.prev_hash = hash;
        Ok(())
    }

    fn account_id(&mut self, user_name: &str) -> Result<i64, StoreError> {
        let key = user_name.to_lowercase();
        if let Some(id) = self.accounts.get(&key) {
            return Ok(*id);
        }
        let id = self
            .query_opt("SELECT id FROM accounts WHERE user_key = $1", &[&key])?
            .map(|r| r.get(0))
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
            .query_opt("SELECT id FROM groups WHERE name = $1", &[&name])?
            .map(|r| r.get(0))
            .ok_or_else(|| {
                StoreError::Invalid(format!("group `{name}` does not exist in the store"))
            })?;
        self.groups.insert(name.to_string(), id);
        Ok(id)
    }

    fn set_active(&mut self, user_name: &str, active: bool) -> Result<(), StoreError> {
        let id = self.account_id(user_name)?;
        let now = self.now.clone();
        let changed = self
            .execute(
                "UPDATE accounts SET active = $2, updated_at = $3 WHERE id = $1 AND active = $4",
                &[&id, &active, &now, &!active],
            )
            .map_err(self.err())?;
        if changed != 1 {
            return Err(StoreError::Invalid(format!(
                "account `{user_name}` is already {}",
                if active { "active" } else { "inactive" }
            )));
        }
        if !active {
            // A deactivated account is not invited (again).
            self.execute(
                "DELETE FROM outbox WHERE account_id = $1 AND sent_at IS NULL",
                &[&id],
            )
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

impl Session for PgSession {
    fn revision(&mut self) -> Result<i64, StoreError> {
        Ok(self.revision)
    }

    fn create_group(
        &mut self,
        name: &str,
        kind: GroupType,
        lwia: Option<u32>,
    ) -> Result<(), StoreError> {
        let lwia64 = lwia.map(i64::from);
        let now = self.now.clone();
        let id: i64 = self
            .query_opt(
                "INSERT INTO groups (name, type, lwia, active, created_at) \
                 VALUES ($1, $2, $3, TRUE, $4) RETURNING id",
                &[&name, &type_str(kind), &lwia64, &now],
            )?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::Invalid(format!("group `{name}` was not created")))?;
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
        let now = self.now.clone();
        let row = ProfileRow::new(profile);
        let invited_at = digest.map(|_| &now);
        let token_digest = digest.map(|(d, _)| d);
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&user_name, &key];
        values.extend(row.values());
        values.extend([
            &state as &(dyn ToSql + Sync),
            &hash,
            &token_digest,
            &invited_at,
            &now,
        ]);
        let inserted = self.stmt(
            "INSERT INTO accounts (user_name, user_key, email, email_key, first_name, last_name, \
             first_key, last_key, birth_date, phone, extension, zip, role, active, credential, \
             password_hash, activation_digest, invited_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, TRUE, $14, $15, $16, $17, $18, $18) \
             RETURNING id",
        )
        .and_then(|s| {
            let row = self.client.query_one(&s, &values);
            self.unique(row.map(|r| r.get::<_, i64>(0)), || {
                format!("account `{user_name}` already exists in the store")
            })
        });
        let id = inserted?;
        self.accounts.insert(key, id);
        if let Some((_, token)) = digest {
            self.execute(
                "INSERT INTO outbox (kind, account_id, recipient, token, created_at) \
                 VALUES ('invitation', $1, $2, $3, $4)",
                &[&id, &profile.email, token, &now],
            )
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
            .query_opt(
                "SELECT a.user_name, a.email, a.first_name, a.last_name, a.birth_date, \
                 a.phone, a.extension, a.zip, a.role, a.active, a.credential \
                 FROM accounts a WHERE a.id = $1",
                &[&id],
            )?
            .map(|r| account_from_row(&r))
            .ok_or_else(|| {
                StoreError::Invalid(format!("account `{user_name}` does not exist in the store"))
            })?;
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
        let now = self.now.clone();
        let row = ProfileRow::new(&p);
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&id];
        values.extend(row.values());
        values.push(&now);
        let s = self.stmt(
            "UPDATE accounts SET email = $2, email_key = $3, first_name = $4, last_name = $5, \
             first_key = $6, last_key = $7, birth_date = $8, phone = $9, extension = $10, zip = $11, \
             role = $12, updated_at = $13 WHERE id = $1",
        )?;
        self.client.execute(&s, &values).map_err(self.err())?;
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
        let written = self.execute(
            "INSERT INTO memberships (group_id, account_id, user_manager) VALUES ($1, $2, $3)",
            &[&g, &a, &user_manager],
        );
        self.unique(written, || {
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
            .execute(
                "UPDATE memberships SET user_manager = $3 \
                 WHERE group_id = $1 AND account_id = $2 AND user_manager = $4",
                &[&g, &a, &user_manager, &!user_manager],
            )
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
            .query_opt(
                "DELETE FROM memberships WHERE group_id = $1 AND account_id = $2 \
                 RETURNING user_manager",
                &[&g, &a],
            )?
            .map(|r| r.get(0));
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
        let key = new_name.to_lowercase();
        let now = self.now.clone();
        let written = self.execute(
            "UPDATE accounts SET user_name = $2, user_key = $3, updated_at = $4 WHERE id = $1",
            &[&id, &new_name, &key, &now],
        );
        self.unique(written, || {
            format!("account `{new_name}` already exists in the store")
        })?;
        self.accounts.remove(&user_name.to_lowercase());
        self.accounts.insert(key, id);
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
            "DELETE FROM memberships WHERE account_id = $1",
            "DELETE FROM outbox WHERE account_id = $1",
            "DELETE FROM accounts WHERE id = $1",
        ] {
            self.execute(sql, &[&id]).map_err(self.err())?;
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
            .query_opt("SELECT type, lwia FROM groups WHERE id = $1", &[&id])?
            .map(|r| {
                serde_json::json!({
                    "name": name,
                    "type": r.get::<_, String>(0),
                    "lwia": lwia_from(r.get(1)),
                })
            })
            .ok_or_else(|| {
                StoreError::Invalid(format!("group `{name}` does not exist in the store"))
            })?;
        let now = self.now.clone();
        let lwia64 = lwia.map(i64::from);
        let written = self.execute(
            "UPDATE groups SET name = $2, type = $3, lwia = $4, updated_at = $5 WHERE id = $1",
            &[&id, &new_name, &type_str(kind), &lwia64, &now],
        );
        self.unique(written, || {
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
            "DELETE FROM memberships WHERE group_id = $1",
            "DELETE FROM groups WHERE id = $1",
        ] {
            self.execute(sql, &[&id]).map_err(self.err())?;
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
        let id = match of {
            Owner::Account => self.account_id(name)?,
            Owner::Group => self.group_id(name)?,
        };
        let (sql, key) = match (of, field) {
            (Owner::Account, ScimField::ExternalId) => (
                "UPDATE accounts SET external_id = $2, updated_at = $3 WHERE id = $1",
                "external_id",
            ),
            (Owner::Account, ScimField::DisplayName) => (
                "UPDATE accounts SET display_name = $2, updated_at = $3 WHERE id = $1",
                "display_name",
            ),
            (Owner::Group, ScimField::ExternalId) => (
                "UPDATE groups SET external_id = $2, updated_at = $3 WHERE id = $1",
                "external_id",
            ),
            (Owner::Group, ScimField::DisplayName) => {
                return Err(StoreError::Invalid(
                    "a group's display name is its name".into(),
                ));
            }
        };
        let now = self.now.clone();
        self.execute(sql, &[&id, &value, &now])
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
        let now = self.now.clone();
        let written = self.execute(
            "INSERT INTO tokens (name, digest, scope, created_at) VALUES ($1, $2, $3, $4)",
            &[&name, &digest, &stored, &now],
        );
        self.unique(written, || {
            format!("a token named `{name}` already exists; pick another name or revoke it first")
        })?;
        let after = serde_json::json!({ "scope": scope, "group_ids": ids }).to_string();
        self.record("create_token", name, None, Some(&after))
    }

    fn revoke_token(&mut self, name: &str) -> Result<(), StoreError> {
        let now = self.now.clone();
        let changed = self
            .execute(
                "UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &now],
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
        self.client
            .batch_execute("SAVEPOINT write")
            .map_err(self.err())?;
        self.saved = Some(PgSaved {
            revision: self.revision,
            prev_hash: self.prev_hash.clone(),
            next_seq: self.next_seq,
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
        // Also what a failed statement needs: PostgreSQL refuses every
        // statement of the transaction after it until this.
        self.client
            .batch_execute("ROLLBACK TO SAVEPOINT write; RELEASE SAVEPOINT write")
            .map_err(self.err())?;
        self.revision = saved.revision;
        self.prev_hash = saved.prev_hash;
        self.next_seq = saved.next_seq;
        self.accounts = saved.accounts;
        self.groups = saved.groups;
        Ok(())
    }

    fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.saved
            .take()
            .ok_or_else(|| StoreError::Invalid("no savepoint to release".into()))?;
        self.client
            .batch_execute("RELEASE SAVEPOINT write")
            .map_err(self.err())
    }

    fn commit(mut self: Box<Self>) -> Result<i64, StoreError> {
        let revision = self.revision;
        self.execute(
            "UPDATE meta SET value = $1 WHERE key = 'revision'",
            &[&revision],
        )
        .map_err(self.err())?;
        self.client.batch_execute("COMMIT").map_err(self.err())?;
        self.open = false;
        Ok(self.revision)
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        if self.open {
            // Nothing of an unfinished apply lands (closing would roll back
            // too; this says so at once, so the lock is free at once).
            let _ = self.client.batch_execute("ROLLBACK");
        }
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
