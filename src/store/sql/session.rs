//! Applying, written once: one transaction holding the store's write lock,
//! an audit row per action chained by [`AuditLog`], and the ids of the
//! accounts and groups it touched kept at hand.
//!
//! Rows nothing in the session reads back before it needs them (new
//! accounts, their invitations and memberships, whose uniqueness it checks
//! itself, and audit rows) are queued and written many to a statement:
//! before any action that could read or change them, at a savepoint, at
//! commit, and once they hold more than a few statements' worth. A large apply then costs a few statements per thousand accounts,
//! not five per account, which is what a store a network round trip away
//! needs. A new account whose name turns out taken when its queue is
//! written is refused then, by name. On PostgreSQL, the rows of a large
//! apply are written on a thread of their own while the session queues the
//! next ones (`SqlSession::flush_behind`).
//!
//! A queue keeps its text in one buffer and binds it borrowed, and audit
//! rows are built from borrows: a row costs no allocation of its own.

use super::conn::{Arg, Conn, params};
use super::outbox;
use super::{ACCOUNT_COLUMNS, account_from_row};
use crate::domain::{CredentialState, Entitlement, GroupType, Profile};
use crate::roster::normalize::{email_key, name_key};
use crate::store::audit::{AuditLog, Change, RowText};
use crate::store::{Grant, Mail, MailKind, NewCredential, Owner, ScimField, Session, StoreError};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// One queued value; text lies in its queue's buffer.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    Int(i64),
    Bool(bool),
    /// The buffer's bytes `start..end`.
    Text(usize, usize),
    /// A new account by its key (the buffer's `start..end`), written
    /// as its id once known.
    Account(usize, usize),
}

/// Rows of one table waiting to be written together.
#[derive(Default)]
struct Queue {
    cells: Vec<Cell>,
    text: String,
}

/// A queued table: the statement's head and how many values make a row.
struct Table {
    insert: &'static str,
    width: usize,
}

const ACCOUNTS: Table = Table {
    insert: "INSERT INTO accounts (user_name, user_key, email, email_key, first_name, last_name, \
             first_key, last_key, birth_date, phone, extension, zip, role, active, credential, \
             password_hash, activation_digest, invited_at, created_at, updated_at) VALUES ",
    width: 20,
};
const ROLES: Table = Table {
    insert: "INSERT INTO account_roles (account_id, role) VALUES ",
    width: 2,
};
const ENTITLEMENTS: Table = Table {
    insert: "INSERT INTO account_entitlements (account_id, kind, value) VALUES ",
    width: 3,
};
const MEMBERSHIPS: Table = Table {
    insert: "INSERT INTO memberships (group_id, account_id, user_manager) VALUES ",
    width: 3,
};
const OUTBOX: Table = Table {
    insert: "INSERT INTO outbox (kind, account_id, recipient, token, created_at) VALUES ",
    width: 5,
};
const AUDIT: Table = Table {
    insert: "INSERT INTO audit (seq, revision, at, actor, op, subject, before, after, hash) VALUES ",
    width: 9,
};

/// The most parameters one queued statement binds (both databases take
/// many more).
const PARAMS_MAX: usize = 3_000;

/// Queued values beyond which the queues are written at the end of an
/// action, so a large apply's memory stays that of a few statements.
const QUEUED_MAX: usize = 20 * PARAMS_MAX;

impl Table {
    /// `values` values cut into statements (how many values each binds):
    /// as many rows as fit, then fewer by powers of two, so a table has a
    /// handful of statement texts, each prepared once.
    /// No statement holds more than `rows_max` rows.
    fn chunks(&self, values: usize, rows_max: usize) -> Vec<usize> {
        let most = (1 << (PARAMS_MAX / self.width).ilog2()).min(rows_max.max(1));
        let mut out = Vec::new();
        let mut rest = values / self.width;
        while rest > 0 {
            let rows = 1 << rest.min(most).ilog2();
            out.push(rows * self.width);
            rest -= rows;
        }
        out
    }

    /// The insert of `n` values' rows.
    fn sql(&self, n: usize) -> String {
        let mut sql = String::new();
        self.sql_into(n, 0, &mut sql);
        sql
    }

    /// The insert of `n` values' rows, appended to `sql`, its placeholders
    /// numbered after `before`.
    fn sql_into(&self, n: usize, before: usize, sql: &mut String) {
        sql.push_str(self.insert);
        for row in 0..n / self.width {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for col in 0..self.width {
                let n = before + row * self.width + col + 1;
                let _ = write!(sql, "{}?{n}", if col == 0 { "" } else { ", " });
            }
            sql.push(')');
        }
    }
}

impl Queue {
    fn len(&self) -> usize {
        self.cells.len()
    }

    fn clear(&mut self) {
        self.cells.clear();
        self.text.clear();
    }

    fn span(&mut self, s: &str) -> (usize, usize) {
        let start = self.text.len();
        self.text.push_str(s);
        (start, self.text.len())
    }

    fn text(&mut self, s: &str) -> &mut Self {
        let (start, end) = self.span(s);
        self.cells.push(Cell::Text(start, end));
        self
    }

    fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(s),
            None => {
                self.cells.push(Cell::Null);
                self
            }
        }
    }

    fn int(&mut self, i: i64) -> &mut Self {
        self.cells.push(Cell::Int(i));
        self
    }

    fn bool(&mut self, b: bool) -> &mut Self {
        self.cells.push(Cell::Bool(b));
        self
    }

    /// The account of key `key`: its id if `ids` has it, else the key,
    /// looked up when the queue is written (after the accounts').
    fn account(&mut self, key: &str, ids: &HashMap<String, i64>) -> &mut Self {
        match ids.get(key) {
            Some(id) => self.int(*id),
            None => {
                let (start, end) = self.span(key);
                self.cells.push(Cell::Account(start, end));
                self
            }
        }
    }

    /// A profile as the accounts table stores it: the values and the
    /// normalized keys the ladder looks up, in column order (`email` …
    /// `zip`).
    fn profile(&mut self, p: &Profile) -> &mut Self {
        self.text(&p.email)
            .text(&email_key(&p.email))
            .text(&p.first_name)
            .text(&p.last_name)
            .text(&name_key(&p.first_name))
            .text(&name_key(&p.last_name))
            .opt(p.birth_date.as_deref())
            .opt(p.phone.as_deref())
            .opt(p.extension.as_deref())
            .opt(p.zip.as_deref())
    }

    /// The key of an account cell (empty for any other).
    fn key(&self, c: Cell) -> &str {
        match c {
            Cell::Account(start, end) => &self.text[start..end],
            _ => "",
        }
    }

    /// Cell `c` as a parameter.
    fn arg(&self, c: Cell, ids: &HashMap<String, i64>) -> Result<Arg<'_>, StoreError> {
        Ok(match c {
            Cell::Null => Arg::Null,
            Cell::Int(i) => Arg::Int(i),
            Cell::Bool(b) => Arg::Bool(b),
            Cell::Text(start, end) => Arg::Text(&self.text[start..end]),
            Cell::Account(start, end) => {
                let key = &self.text[start..end];
                Arg::Int(ids.get(key).copied().ok_or_else(|| {
                    StoreError::Invalid(format!("account `{key}` was not written"))
                })?)
            }
        })
    }

    /// Each account cell whose id `ids` has as that id.
    fn resolve(&mut self, ids: &HashMap<String, i64>) {
        for c in &mut self.cells {
            if let Cell::Account(start, end) = *c
                && let Some(id) = ids.get(&self.text[start..end])
            {
                *c = Cell::Int(*id);
            }
        }
    }

    /// The cells `range` as parameters, in `args` (emptied first).
    fn args<'q>(
        &'q self,
        range: std::ops::Range<usize>,
        ids: &HashMap<String, i64>,
        args: &mut Vec<Arg<'q>>,
    ) -> Result<(), StoreError> {
        args.clear();
        for c in &self.cells[range] {
            args.push(self.arg(*c, ids)?);
        }
        Ok(())
    }

    /// Write the queued rows, many to a statement. Accounts queued by
    /// their keys get their ids from `ids`.
    fn write(
        &mut self,
        conn: &mut dyn Conn,
        table: &Table,
        ids: &HashMap<String, i64>,
    ) -> Result<(), StoreError> {
        {
            // Chunks come largest first: each text is made once per write.
            let mut sql = (0, String::new());
            let mut args = Vec::new();
            let mut at = 0;
            for n in table.chunks(self.len(), conn.rows_per_insert()) {
                if sql.0 != n {
                    sql = (n, table.sql(n));
                }
                self.args(at..at + n, ids, &mut args)?;
                conn.execute_args(&sql.1, &args)?;
                at += n;
            }
        }
        self.clear();
        Ok(())
    }
}

/// The queued rows that come after the new accounts' (they may name them
/// by key): memberships, and the roles and entitlements of accounts this
/// session created, invitations, and audit rows.
#[derive(Default)]
struct Rows {
    memberships: Queue,
    roles: Queue,
    entitlements: Queue,
    outbox: Queue,
    audit: Queue,
}

impl Rows {
    /// Each queue with its table, in the order they are written.
    fn parts(&self) -> [(&Queue, &'static Table); 5] {
        [
            (&self.memberships, &MEMBERSHIPS),
            (&self.roles, &ROLES),
            (&self.entitlements, &ENTITLEMENTS),
            (&self.outbox, &OUTBOX),
            (&self.audit, &AUDIT),
        ]
    }

    fn parts_mut(&mut self) -> [(&mut Queue, &'static Table); 5] {
        [
            (&mut self.memberships, &MEMBERSHIPS),
            (&mut self.roles, &ROLES),
            (&mut self.entitlements, &ENTITLEMENTS),
            (&mut self.outbox, &OUTBOX),
            (&mut self.audit, &AUDIT),
        ]
    }

    fn len(&self) -> usize {
        self.parts().iter().map(|(q, _)| q.len()).sum()
    }

    fn clear(&mut self) {
        for (q, _) in self.parts_mut() {
            q.clear();
        }
    }
}

/// Rows of each table a flush may write in one statement together with
/// the other tables' (a handful of statement texts, each prepared once).
const TOGETHER_ROWS: usize = 4;

/// One statement inserting the rows of every non-empty queue of `parts`:
/// the last such as the statement, those before it as `WITH` clauses (which
/// PostgreSQL runs as well). Its text goes to `sql`, its parameters to
/// `args`.
fn together<'q>(
    parts: &[(&'q Queue, &Table)],
    ids: &HashMap<String, i64>,
    sql: &mut String,
    args: &mut Vec<Arg<'q>>,
) -> Result<(), StoreError> {
    let parts: Vec<_> = parts.iter().filter(|(q, _)| q.len() > 0).collect();
    for (i, (queue, table)) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if !last {
            let _ = write!(sql, "{}w{i} AS (", if i == 0 { "WITH " } else { ", " });
        } else if i > 0 {
            sql.push(' ');
        }
        table.sql_into(queue.len(), args.len(), sql);
        if !last {
            sql.push(')');
        }
        for c in &queue.cells {
            args.push(queue.arg(*c, ids)?);
        }
    }
    Ok(())
}

/// The insert of one queued `row` of `table`, appended to `sql` (its
/// parameters to `args`): a row naming an account not written yet takes
/// its id from the new accounts of the same statement (the `WITH` clause
/// `new`), and is not written if that account's name was taken. With
/// `all` (how many accounts the statement writes), the row is written only
/// if every one of them was: the statement writes all its rows or none.
#[allow(clippy::too_many_arguments)]
fn naming_new<'q>(
    queue: &'q Queue,
    table: &Table,
    row: &[Cell],
    ids: &HashMap<String, i64>,
    new: &HashMap<String, String>,
    all: Option<usize>,
    sql: &mut String,
    args: &mut Vec<Arg<'q>>,
) -> Result<(), StoreError> {
    let pending = row
        .iter()
        .find(|c| matches!(c, Cell::Account(..)) && !ids.contains_key(queue.key(**c)))
        .copied();
    let names = match pending {
        Some(Cell::Account(start, end)) => Some((start, end)),
        _ if all.is_none() => {
            // Every account it names has its id: a row like any other.
            table.sql_into(row.len(), args.len(), sql);
            for c in row {
                args.push(queue.arg(*c, ids)?);
            }
            return Ok(());
        }
        _ => None,
    };
    if let Some((start, end)) = names
        && !new.contains_key(&queue.text[start..end])
    {
        return Err(StoreError::Invalid(format!(
            "account `{}` was not written",
            &queue.text[start..end]
        )));
    }
    let head = table.insert.strip_suffix("VALUES ").unwrap_or(table.insert);
    sql.push_str(head);
    sql.push_str("SELECT ");
    for (i, c) in row.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        if matches!((c, names), (Cell::Account(s, e), Some(n)) if (*s, *e) == n) {
            sql.push_str("new.id");
            continue;
        }
        let arg = queue.arg(*c, ids)?;
        // Outside `VALUES`, a parameter's type is not the column's: say it.
        let Some(ty) = cast(&arg) else {
            sql.push_str("NULL");
            continue;
        };
        args.push(arg);
        let _ = write!(sql, "?{}::{ty}", args.len());
    }
    let mut cond = " WHERE";
    if let Some((start, end)) = names {
        args.push(Arg::Text(&queue.text[start..end]));
        let _ = write!(sql, " FROM new WHERE new.user_key = ?{}", args.len());
        cond = " AND";
    }
    if let Some(n) = all {
        let _ = write!(sql, "{cond} (SELECT count(*) FROM new) = {n}");
    }
    Ok(())
}

/// Insert the queued new accounts of `queue`, many to a statement, and
/// put their ids in `ids` (a name taken leaves its account out).
fn insert_accounts(
    conn: &mut dyn Conn,
    queue: &Queue,
    ids: &mut HashMap<String, i64>,
) -> Result<(), StoreError> {
    let mut sql = (0, String::new());
    let mut args = Vec::new();
    let mut at = 0;
    let no_ids = HashMap::new();
    for n in ACCOUNTS.chunks(queue.len(), conn.rows_per_insert()) {
        if sql.0 != n {
            sql = (
                n,
                format!(
                    "{} ON CONFLICT (user_key) DO NOTHING RETURNING user_key, id",
                    ACCOUNTS.sql(n)
                ),
            );
        }
        // An account row names no other account.
        queue.args(at..at + n, &no_ids, &mut args)?;
        conn.query_rows(&sql.1, &args, &mut |r| {
            ids.insert(r.take(0)?, r.get(1)?);
            Ok(())
        })?;
        at += n;
    }
    Ok(())
}

/// The PostgreSQL type a parameter is cast to outside `VALUES`; `None`
/// for a NULL, written as the literal instead.
fn cast(arg: &Arg) -> Option<&'static str> {
    Some(match arg {
        Arg::Null => return None,
        Arg::Int(_) => "bigint",
        Arg::Bool(_) => "boolean",
        Arg::Bytes(_) => "bytea",
        Arg::Text(_) | Arg::TextList(_) | Arg::IntList(_) => "text",
    })
}

/// The rows of `queue` (`width` values each) as a `VALUES` list appended
/// to `sql` (its parameters to `args`), every parameter cast to its
/// column's type (outside an `INSERT … VALUES`, a parameter's type is not
/// the column's); a column of NULLs only is text. One text per row count.
fn typed_values<'q>(
    queue: &'q Queue,
    width: usize,
    ids: &HashMap<String, i64>,
    sql: &mut String,
    args: &mut Vec<Arg<'q>>,
) -> Result<(), StoreError> {
    let rows = queue.len() / width;
    let mut types = Vec::with_capacity(width);
    for col in 0..width {
        let mut ty = "text";
        for row in 0..rows {
            if let Some(t) = cast(&queue.arg(queue.cells[row * width + col], ids)?) {
                ty = t;
                break;
            }
        }
        types.push(ty);
    }
    sql.push_str("(VALUES ");
    for (i, c) in queue.cells.iter().enumerate() {
        let col = i % width;
        sql.push_str(match (col, i) {
            (0, 0) => "(",
            (0, _) => "), (",
            _ => ", ",
        });
        args.push(queue.arg(*c, ids)?);
        let _ = write!(sql, "?{}::{}", args.len(), types[col]);
    }
    sql.push_str("))");
    Ok(())
}

/// How many account ids a PostgreSQL write connection draws ahead at once
/// for batches of creates.
const IDS_AHEAD: usize = 256;

/// Where a queued account row holds its email (`email` in [`ACCOUNTS`]).
const EMAIL: usize = 2;

/// The insert of one queued account `row`, appended to `sql` (its
/// parameters to `args`), that writes nothing when another account holds
/// its email (in any case): `INSERT … SELECT … WHERE NOT EXISTS`, the
/// look-up and the write in one statement. `typed`: each parameter says
/// its type (PostgreSQL, where a parameter outside `VALUES` does not take
/// its column's).
fn account_if_email_free<'q>(
    queue: &'q Queue,
    row: &[Cell],
    ids: &HashMap<String, i64>,
    typed: bool,
    sql: &mut String,
    args: &mut Vec<Arg<'q>>,
) -> Result<(), StoreError> {
    let head = ACCOUNTS
        .insert
        .strip_suffix("VALUES ")
        .unwrap_or(ACCOUNTS.insert);
    sql.push_str(head);
    sql.push_str("SELECT ");
    let mut email = String::new();
    for (i, c) in row.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let arg = queue.arg(*c, ids)?;
        let Some(ty) = cast(&arg) else {
            sql.push_str("NULL");
            continue;
        };
        args.push(arg);
        let p = match typed {
            true => format!("?{}::{ty}", args.len()),
            false => format!("?{}", args.len()),
        };
        sql.push_str(&p);
        if i == EMAIL {
            email = p;
        }
    }
    if email.is_empty() {
        return Err(StoreError::Invalid(
            "a new account without an email value".into(),
        ));
    }
    let _ = write!(
        sql,
        " WHERE {email} = '' OR NOT EXISTS \
         (SELECT 1 FROM accounts x WHERE lower(x.email) = lower({email}))"
    );
    Ok(())
}

/// The session's connection. A savepoint asked for is sent with the
/// session's next statement rather than on its own, and not at all when
/// the rows written under it go in a way that writes all of them or none
/// (see [`SqlSession::flush`]): such a savepoint has nothing to undo in the
/// database, and costs neither a round trip to a server nor SQLite's
/// sub-journal of every page changed under it. A savepoint released sends
/// its `RELEASE` with the next `SAVEPOINT` (one statement batch, one round
/// trip) or leaves it to the commit, which releases it anyway.
///
/// On PostgreSQL a large apply's queued rows are written on a thread of
/// their own while the session goes on queueing the next ones (see
/// [`SqlSession::flush_behind`]): the connection goes with them and comes
/// back, with their outcome, before the session's next statement.
struct Held {
    /// Away (`None`) while `writing` has it.
    conn: Option<Box<dyn Conn>>,
    /// Queued rows being written on another thread, on the connection.
    writing: Option<std::thread::JoinHandle<Written>>,
    /// The ids of new accounts written there, for the session to learn.
    landed: HashMap<String, i64>,
    url: String,
    dialect: super::conn::Dialect,
    rows_per_insert: usize,
    /// A `SAVEPOINT` asked for and not sent yet.
    savepoint_due: bool,
    /// A savepoint released whose `RELEASE` is not sent yet.
    release_due: bool,
    /// A statement failed (reset by the caller that asks).
    failed: bool,
    /// A statement failed while a savepoint was due but not sent: the
    /// database may have ended the transaction's good standing, and there
    /// is no savepoint in it to go back to.
    failed_unsaved: bool,
}

/// The connection back from writing queued rows, how that went, and the
/// ids of the new accounts written.
type Written = (Box<dyn Conn>, Result<(), StoreError>, HashMap<String, i64>);

impl Held {
    fn new(conn: Box<dyn Conn>) -> Self {
        Held {
            url: conn.url().to_string(),
            dialect: conn.dialect(),
            rows_per_insert: conn.rows_per_insert(),
            conn: Some(conn),
            writing: None,
            landed: HashMap::new(),
            savepoint_due: false,
            release_due: false,
            failed: false,
            failed_unsaved: false,
        }
    }

    /// The connection, once the rows being written on another thread are
    /// (their failure is this call's).
    fn conn(&mut self) -> Result<&mut dyn Conn, StoreError> {
        if let Some(writing) = self.writing.take() {
            let written = match writing.join() {
                Ok((conn, written, ids)) => {
                    self.conn = Some(conn);
                    self.landed.extend(ids);
                    written
                }
                Err(_) => Err(StoreError::Invalid(
                    "writing the queued rows stopped short; nothing was written".into(),
                )),
            };
            self.noted(written)?;
        }
        match &mut self.conn {
            Some(conn) => Ok(conn.as_mut()),
            None => Err(StoreError::Invalid(
                "the store connection was lost; nothing was written".into(),
            )),
        }
    }

    /// Write on another thread, which takes the connection until the
    /// session's next statement, the new accounts of `accounts` (their keys
    /// and names `names`), then `queues`, which name accounts by id or else
    /// as one of these. A name taken is refused by name.
    fn write_behind(
        &mut self,
        accounts: Queue,
        names: HashMap<String, String>,
        queues: Vec<(Queue, &'static Table)>,
    ) -> Result<(), StoreError> {
        self.send_due()?;
        self.conn()?;
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        let spawned = std::thread::Builder::new()
            .name("roster-write".into())
            .spawn(move || {
                let mut ids = HashMap::new();
                let written = (|| {
                    insert_accounts(conn.as_mut(), &accounts, &mut ids)?;
                    if let Some((_, name)) = names.iter().find(|(key, _)| !ids.contains_key(*key)) {
                        return Err(StoreError::account_taken(name));
                    }
                    for (mut queue, table) in queues {
                        queue.resolve(&ids);
                        queue.write(conn.as_mut(), table, &ids)?;
                    }
                    Ok(())
                })();
                (conn, written, ids)
            });
        match spawned {
            Ok(writing) => {
                self.writing = Some(writing);
                Ok(())
            }
            Err(e) => self.noted(Err(StoreError::Invalid(format!(
                "cannot start writing the queued rows ({e}); nothing was written"
            )))),
        }
    }

    /// The savepoint commands due, as one statement batch.
    fn due(&self) -> Option<&'static str> {
        match (self.savepoint_due, self.release_due) {
            (false, _) => None,
            (true, false) => Some("SAVEPOINT roster_write"),
            (true, true) => Some("RELEASE SAVEPOINT roster_write; SAVEPOINT roster_write"),
        }
    }

    /// `r`, a statement's outcome, its failure noted.
    fn noted<T>(&mut self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.failed |= r.is_err();
        r
    }

    /// One statement on the connection: the savepoint due sent first, the
    /// statement's failure noted.
    fn run<T>(
        &mut self,
        statement: impl FnOnce(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.send_due()?;
        let r = statement(self.conn()?);
        self.noted(r)
    }

    /// Send the savepoint due, if any.
    fn send_due(&mut self) -> Result<(), StoreError> {
        if let Some(sql) = self.due() {
            let r = self.conn()?.batch(sql);
            self.noted(r)?;
            self.savepoint_due = false;
            self.release_due = false;
        }
        Ok(())
    }
}

impl Conn for Held {
    fn source(&self) -> (super::conn::Dialect, &str) {
        (self.dialect, &self.url)
    }
    fn execute_args(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        self.run(|c| c.execute_args(sql, args))
    }
    fn query_rows(
        &mut self,
        sql: &str,
        args: &[Arg],
        each: super::conn::EachRow,
    ) -> Result<(), StoreError> {
        self.run(|c| c.query_rows(sql, args, each))
    }
    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match self.due() {
            Some(due) => {
                let r = self.conn()?.batch(&format!("{due}; {sql}"));
                self.noted(r)?;
                self.savepoint_due = false;
                self.release_due = false;
                Ok(())
            }
            None => {
                let r = self.conn()?.batch(sql);
                self.noted(r)
            }
        }
    }
    fn rows_per_insert(&self) -> usize {
        self.rows_per_insert
    }
    fn last_insert_id(&mut self) -> Option<i64> {
        // A failure of rows written on another thread stays noted.
        self.conn().ok()?.last_insert_id()
    }
    fn deadline(&mut self, deadline: Option<std::time::Instant>) -> Result<(), StoreError> {
        self.conn()?.deadline(deadline)
    }
    fn in_transaction(&self) -> bool {
        // Rows being written are written in the session's transaction.
        self.writing.is_some() || self.conn.as_ref().is_some_and(|c| c.in_transaction())
    }
    fn ahead(&mut self) -> Option<&mut super::conn::Ahead> {
        // Away while rows are written on another thread: nothing kept.
        self.conn.as_mut().and_then(|c| c.ahead())
    }
}

/// A write transaction on a SQL store.
pub struct SqlSession {
    conn: Held,
    actor: String,
    now: String,
    log: AuditLog,
    accounts: HashMap<String, i64>,
    groups: HashMap<String, i64>,
    /// The chain as it was at [`Session::savepoint`].
    savepoint: Option<AuditLog>,
    /// Accounts this session created (by key, each numbered), with the
    /// memberships it gave them (by group id and number: an account
    /// created again under the same name has none of its namesake's)
    /// gave them.
    created: HashMap<String, u64>,
    added: HashSet<(i64, u64)>,
    next_created: u64,
    /// New accounts not written yet: their rows, and their keys with the
    /// names they were given.
    accounts_queue: Queue,
    new_names: HashMap<String, String>,
    /// Keys of new accounts being written on another thread.
    in_flight: HashSet<String>,
    /// New accounts not written yet whose emails must be free (by key):
    /// see [`Session::refuse_taken_emails`].
    new_emails: HashMap<String, String>,
    /// New accounts are refused an email another account holds.
    unique_emails: bool,
    /// Live admin tokens found in this transaction (digest → name).
    live_admins: HashMap<String, String>,
    /// Ids drawn for the creates [`Session::defer_creates`] announced and
    /// not made yet: `Some` while creates are deferred.
    deferred: Option<Vec<i64>>,
    /// The admin token (digest, name) the deferred creates were let in by
    /// without a look-up: their insert writes only if it is still live.
    deferred_admin: Option<(String, String)>,
    /// Deferred new accounts' rows, each with its drawn id first.
    deferred_accounts: Queue,
    /// The other queued rows.
    rows: Rows,
    /// What the accounts this session created hold (by key).
    granted: HashMap<String, HashSet<Entitlement>>,
    /// The audit rows' text, reused from row to row.
    row_text: RowText,
    open: bool,
}

/// `s` lowercased, copied only if that changes it.
fn lowercase(s: &str) -> Cow<'_, str> {
    if !s.is_ascii() || s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// How a role is kept among the grants of a new account.
fn role_grant(role: &str) -> Entitlement {
    Entitlement::new("", role)
}

/// A write that a uniqueness constraint may refuse; `taken` says what is
/// already there.
fn unique<T>(
    result: Result<T, StoreError>,
    taken: impl FnOnce() -> StoreError,
) -> Result<T, StoreError> {
    match result {
        Err(StoreError::Taken(_)) => Err(taken()),
        other => other,
    }
}

const SAVEPOINT: &str = "roster_write";

/// The revision and the audit chain's head (its last `seq` and `hash`), in
/// one statement that a session reads first. PostgreSQL sends it with the
/// transaction's `BEGIN` and lock ([`super::postgres`]).
pub(super) const HEAD: &str = "SELECT (SELECT value FROM meta WHERE key = 'revision'), \
     (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1), \
     (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1)";

impl SqlSession {
    /// The session on `conn`, already in its transaction under the lock.
    pub fn begin(mut conn: Box<dyn Conn>, actor: &str, now: &str) -> Result<Self, StoreError> {
        // The revision and the audit chain's head, in one statement.
        let head = conn.query_one(HEAD, &[])?;
        let revision: i64 = head.get(0)?;
        let last = match (head.get(1)?, head.get(2)?) {
            (Some(seq), Some(hash)) => Some((seq, hash)),
            _ => None,
        };
        Ok(SqlSession {
            conn: Held::new(conn),
            actor: actor.to_string(),
            now: now.to_string(),
            log: AuditLog::new(revision, last),
            accounts: HashMap::new(),
            groups: HashMap::new(),
            savepoint: None,
            created: HashMap::new(),
            added: HashSet::new(),
            next_created: 0,
            accounts_queue: Queue::default(),
            new_names: HashMap::new(),
            in_flight: HashSet::new(),
            new_emails: HashMap::new(),
            unique_emails: false,
            live_admins: HashMap::new(),
            deferred: None,
            deferred_accounts: Queue::default(),
            deferred_admin: None,
            rows: Rows::default(),
            granted: HashMap::new(),
            row_text: RowText::default(),
            open: true,
        })
    }

    /// The key that seals this store's plans: `fresh` unless it has one.
    pub fn plan_key(&mut self, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.flush()?;
        self.conn.execute(
            "INSERT INTO plan_keys (id, key, created_at) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO NOTHING",
            &params![fresh, &self.now],
        )?;
        self.conn
            .query_one("SELECT key FROM plan_keys WHERE id = 1", &[])?
            .get(0)
    }

    /// Append the audit row of `change` and bump the revision.
    fn record(&mut self, change: Change) -> Result<(), StoreError> {
        let r = self
            .log
            .row(&self.now, &self.actor, &change, &mut self.row_text);
        self.rows
            .audit
            .int(r.seq)
            .int(r.revision)
            .text(r.at)
            .text(r.actor)
            .text(r.op)
            .text(r.subject)
            .opt(r.before)
            .opt(r.after)
            .text(r.hash);
        if self.accounts_queue.len() + self.rows.len() > QUEUED_MAX {
            self.flush_behind()?;
        }
        Ok(())
    }

    /// Write every queued row; on PostgreSQL, outside a savepoint, on
    /// another thread while the session goes on (it learns the new
    /// accounts' ids before its next statement): the server writes one part
    /// while the session makes the next, on a machine's two cores. A
    /// failure there is that of the session's next statement, and ends the
    /// apply as any other (its transaction never commits).
    fn flush_behind(&mut self) -> Result<(), StoreError> {
        if self.conn.dialect() != super::conn::Dialect::Postgres
            || self.conn.savepoint_due
            || self.savepoint.is_some()
            || !self.new_emails.is_empty()
        {
            return self.flush();
        }
        self.settle()?;
        let mut queues = Vec::new();
        for (queue, table) in self.rows.parts_mut() {
            if queue.len() > 0 {
                queue.resolve(&self.accounts);
                queues.push((std::mem::take(queue), table));
            }
        }
        let accounts = std::mem::take(&mut self.accounts_queue);
        let names = std::mem::take(&mut self.new_names);
        self.in_flight.extend(names.keys().cloned());
        self.conn.write_behind(accounts, names, queues)
    }

    /// Wait for the rows being written on another thread, and learn the
    /// ids of the new accounts written there.
    fn settle(&mut self) -> Result<(), StoreError> {
        let written = self.conn.conn().map(drop);
        if self.conn.writing.is_none() {
            self.accounts.extend(self.conn.landed.drain());
            self.in_flight.clear();
        }
        written
    }

    /// Write every queued row.
    fn flush(&mut self) -> Result<(), StoreError> {
        self.settle()?;
        if self.deferred_accounts.len() > 0 {
            return match self.flush_deferred()? {
                true => Ok(()),
                false => Err(StoreError::Invalid(
                    "a create written together with this one was refused; try again".into(),
                )),
            };
        }
        let together = self.conn.rows_per_insert() > 1
            && self.accounts_queue.len() <= TOGETHER_ROWS * ACCOUNTS.width
            && self
                .rows
                .parts()
                .iter()
                .all(|(q, t)| q.len() <= TOGETHER_ROWS * t.width);
        // A savepoint due stays unsent when a name taken leaves nothing
        // written: one statement that writes all its rows or none, or a
        // single new account, whose insert comes first and stops the rest.
        // Any other failure leaves the transaction unable to go on.
        let unsaved = self.conn.savepoint_due && (together || self.new_names.len() <= 1);
        if !unsaved {
            return self.flush_queues(together, false);
        }
        self.conn.savepoint_due = false;
        self.conn.failed = false;
        let written = self.flush_queues(together, true);
        self.conn.savepoint_due = true;
        if let Err(e) = &written
            && (self.conn.failed || !matches!(e, StoreError::Taken(_)))
        {
            self.conn.failed_unsaved = true;
        }
        written
    }

    fn flush_queues(&mut self, together: bool, all_or_none: bool) -> Result<(), StoreError> {
        if together {
            return self.flush_together(all_or_none);
        }
        self.write_accounts()?;
        for (queue, table) in self.rows.parts_mut() {
            queue.write(&mut self.conn, table, &self.accounts)?;
        }
        Ok(())
    }

    /// Write the queues before an action on this account, if they may hold
    /// rows of it.
    fn flush_for(&mut self, user_name: &str) -> Result<(), StoreError> {
        if self.created.contains_key(&*lowercase(user_name)) {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the deferred creates' rows and every other queued row in one
    /// statement: the new accounts (their ids drawn before), each only if
    /// no account holds its email (in any case) or its name, and the other
    /// rows only if every new account was written. `false`: one was not,
    /// and none of the other rows were (the transaction can only be rolled
    /// back: the accounts that were written stay in it).
    fn flush_deferred(&mut self) -> Result<bool, StoreError> {
        let width = ACCOUNTS.width + 1;
        let accounts = self.deferred_accounts.len() / width;
        let admin = self.deferred_admin.take();
        if accounts == 0 {
            // No insert to check the token: the creates again one by one.
            if admin.is_some() {
                return Ok(false);
            }
            return self.flush().map(|()| true);
        }
        let ids = &self.accounts;
        let mut sql = String::from("WITH new AS (");
        let mut args = Vec::new();
        let columns = |t: &Table| {
            let head = t.insert.strip_suffix(" VALUES ").unwrap_or(t.insert);
            head.find('(').map_or("", |at| &head[at..])
        };
        let _ = write!(
            sql,
            "INSERT INTO accounts (id, {} OVERRIDING SYSTEM VALUE SELECT * FROM ",
            &columns(&ACCOUNTS)[1..]
        );
        typed_values(&self.deferred_accounts, width, ids, &mut sql, &mut args)?;
        // Each email looked up by the index, one row at a time: `OFFSET 0`
        // keeps the planner from hashing every account's email instead,
        // which a plan made while the table was small would keep doing
        // as it grows.
        //
        // Each id above every account's (ids drawn ahead are smaller than
        // any other connection drew since: the batch then writes
        // nothing, and its creates go again one by one), so ids keep the
        // order in which accounts were committed. And, for a token not
        // looked up in this transaction, only while it is a live admin's.
        let mut only_if = String::from(" AND v.id > (SELECT coalesce(max(id), 0) FROM accounts)");
        if let Some((digest, name)) = &admin {
            args.push(Arg::Text(digest));
            args.push(Arg::Text(name));
            let _ = write!(
                only_if,
                " AND EXISTS (SELECT 1 FROM tokens WHERE digest = ?{}::text AND name = ?{}::text \
                 AND revoked_at IS NULL AND scope IS NULL)",
                args.len() - 1,
                args.len()
            );
        }
        let _ = write!(
            sql,
            " v (id, {} WHERE (v.email = '' OR NOT EXISTS \
             (SELECT 1 FROM accounts x WHERE lower(x.email) = lower(v.email) OFFSET 0)){only_if} \
             ON CONFLICT (user_key) DO NOTHING RETURNING 1)",
            &columns(&ACCOUNTS)[1..]
        );
        for (i, (queue, table)) in self.rows.parts().iter().enumerate() {
            if queue.len() == 0 {
                continue;
            }
            let head = table.insert.strip_suffix("VALUES ").unwrap_or(table.insert);
            let _ = write!(sql, ", w{i} AS ({head}SELECT * FROM ");
            typed_values(queue, table.width, ids, &mut sql, &mut args)?;
            let _ = write!(sql, " v WHERE (SELECT count(*) FROM new) = {accounts})");
        }
        sql.push_str(" SELECT count(*) FROM new");
        let mut written = 0;
        self.conn.query_rows(&sql, &args, &mut |r| {
            written = r.get::<i64>(0)?;
            Ok(())
        })?;
        drop(args);
        self.deferred_accounts.clear();
        self.rows.clear();
        self.new_names.clear();
        let all = usize::try_from(written).is_ok_and(|w| w == accounts);
        if !all && let Some(ahead) = self.conn.ahead() {
            // Ids or token out of date: drawn and looked up again.
            *ahead = Default::default();
        }
        Ok(all)
    }

    /// Write a few queued rows in one statement (a server a round trip
    /// away): the new accounts first, the rows that name them by their new
    /// ids, and the rest. A name taken is refused as
    /// [`SqlSession::write_accounts`] does (the rows naming it are not
    /// written).
    fn flush_together(&mut self, all_or_none: bool) -> Result<(), StoreError> {
        let ids = &mut self.accounts;
        let mut sql = String::new();
        let mut args = Vec::new();
        let parts = self.rows.parts();
        let conn = &mut self.conn;
        let mut unwritten = Vec::new();
        let written = if self.new_names.is_empty() {
            if parts.iter().any(|(q, _)| q.len() > 0) {
                together(&parts, ids, &mut sql, &mut args)?;
                conn.execute_args(&sql, &args).map(drop)
            } else {
                Ok(())
            }
        } else {
            sql.push_str("WITH new AS (");
            let queue = &self.accounts_queue;
            if self.new_emails.is_empty() {
                ACCOUNTS.sql_into(queue.len(), 0, &mut sql);
                for c in &queue.cells {
                    args.push(queue.arg(*c, ids)?);
                }
            } else {
                // One new account (see `create_account_with_roles`).
                account_if_email_free(queue, &queue.cells, ids, true, &mut sql, &mut args)?;
            }
            sql.push_str(" ON CONFLICT (user_key) DO NOTHING RETURNING user_key, id)");
            // A name taken writes none of the other rows either.
            let all = all_or_none.then_some(self.new_names.len());
            let mut n = 0;
            for (queue, table) in parts {
                if all.is_none() && queue.cells.iter().all(|c| !matches!(c, Cell::Account(..))) {
                    if queue.len() > 0 {
                        let _ = write!(sql, ", w{n} AS (");
                        n += 1;
                        table.sql_into(queue.len(), args.len(), &mut sql);
                        sql.push(')');
                        for c in &queue.cells {
                            args.push(queue.arg(*c, ids)?);
                        }
                    }
                    continue;
                }
                for row in queue.cells.chunks(table.width) {
                    let _ = write!(sql, ", w{n} AS (");
                    n += 1;
                    naming_new(
                        queue,
                        table,
                        row,
                        ids,
                        &self.new_names,
                        all,
                        &mut sql,
                        &mut args,
                    )?;
                    sql.push(')');
                }
            }
            sql.push_str(" SELECT user_key, id FROM new");
            let mut found = Vec::new();
            let r = conn.query_rows(&sql, &args, &mut |r| {
                found.push((r.take::<String>(0)?, r.get::<i64>(1)?));
                Ok(())
            });
            drop(args);
            if all.is_some() && found.len() < self.new_names.len() {
                // Nothing was written: none of these ids is an account's.
                unwritten = found.iter().map(|(k, _)| k.clone()).collect();
            }
            ids.extend(found);
            r
        };
        written?;
        self.accounts_queue.clear();
        self.rows.clear();
        let names = std::mem::take(&mut self.new_names);
        let missing = names.into_iter().find(|(key, _)| !ids.contains_key(key));
        for key in unwritten {
            ids.remove(&key);
        }
        match missing {
            Some((key, name)) => Err(self.unwritten(&key, &name)?),
            None => {
                self.new_emails.clear();
                Ok(())
            }
        }
    }

    /// Why the new account `key` (named `name`) was not written: its email
    /// held by another account (looked for first, as the caller of a
    /// session without [`Session::refuse_taken_emails`] does before the
    /// create), else its name taken.
    fn unwritten(&mut self, key: &str, name: &str) -> Result<StoreError, StoreError> {
        let emails = std::mem::take(&mut self.new_emails);
        if let Some(email) = emails.get(key).filter(|e| !e.is_empty()) {
            let held = self.conn.query_opt(
                "SELECT 1 FROM accounts WHERE lower(email) = lower(?1) LIMIT 1",
                &params![email.as_str()],
            )?;
            if held.is_some() {
                return Ok(StoreError::email_taken());
            }
        }
        Ok(StoreError::account_taken(name))
    }

    /// Write the queued accounts and learn their ids; a name taken in the
    /// store meanwhile is refused by name.
    fn write_accounts(&mut self) -> Result<(), StoreError> {
        if self.new_names.is_empty() {
            return Ok(());
        }
        let rows_max = self.conn.rows_per_insert();
        // One row a statement, its id kept by the database (SQLite).
        let alone = rows_max == 1 && self.conn.last_insert_id().is_some();
        if alone && let Some(email) = self.new_emails.values().next() {
            // One new account (see `create_account_with_roles`), written
            // only if its email is free: looked up first, then a plain
            // insert. `INSERT … SELECT` would make SQLite keep a statement
            // journal of every page the insert changes.
            let held = !email.is_empty()
                && self
                    .conn
                    .query_opt(
                        "SELECT 1 FROM accounts WHERE lower(email) = lower(?1) LIMIT 1",
                        &params![email.as_str()],
                    )?
                    .is_some();
            if held {
                self.accounts_queue.clear();
            }
        }
        if !self.new_emails.is_empty() && !alone {
            // One new account (see `create_account_with_roles`), written
            // only if its email is free.
            let typed = self.conn.dialect() == super::conn::Dialect::Postgres;
            let (mut sql, mut args) = (String::new(), Vec::new());
            let queue = &self.accounts_queue;
            account_if_email_free(
                queue,
                &queue.cells,
                &self.accounts,
                typed,
                &mut sql,
                &mut args,
            )?;
            sql.push_str(" ON CONFLICT (user_key) DO NOTHING");
            if rows_max == 1 && self.conn.last_insert_id().is_some() {
                // No `RETURNING` where the database keeps the id (as below).
                let key = self.new_emails.keys().next().cloned().unwrap_or_default();
                if self.conn.execute_args(&sql, &args)? == 1
                    && let Some(id) = self.conn.last_insert_id()
                {
                    self.accounts.insert(key, id);
                }
            } else {
                sql.push_str(" RETURNING user_key, id");
                let accounts = &mut self.accounts;
                self.conn.query_rows(&sql, &args, &mut |r| {
                    accounts.insert(r.take(0)?, r.get(1)?);
                    Ok(())
                })?;
            }
            drop(args);
            self.accounts_queue.clear();
        } else if alone {
            // One row a statement, its id kept by the database: no
            // `RETURNING`, which SQLite runs as a trigger that needs a
            // statement journal for every row.
            let sql = format!(
                "{} ON CONFLICT (user_key) DO NOTHING",
                ACCOUNTS.sql(ACCOUNTS.width)
            );
            let queue = &self.accounts_queue;
            let mut args = Vec::with_capacity(ACCOUNTS.width);
            for at in (0..queue.len()).step_by(ACCOUNTS.width) {
                queue.args(at..at + ACCOUNTS.width, &self.accounts, &mut args)?;
                if self.conn.execute_args(&sql, &args)? == 1
                    && let (Some(id), Arg::Text(key)) = (self.conn.last_insert_id(), args[1])
                {
                    self.accounts.insert(key.to_string(), id);
                }
            }
            self.accounts_queue.clear();
        }
        insert_accounts(&mut self.conn, &self.accounts_queue, &mut self.accounts)?;
        self.accounts_queue.clear();
        let names = std::mem::take(&mut self.new_names);
        match names
            .into_iter()
            .find(|(key, _)| !self.accounts.contains_key(key))
        {
            Some((key, name)) => Err(self.unwritten(&key, &name)?),
            None => {
                self.new_emails.clear();
                Ok(())
            }
        }
    }

    fn account_id(&mut self, user_name: &str) -> Result<i64, StoreError> {
        let key = user_name.to_lowercase();
        if self.new_names.contains_key(&key) {
            self.flush()?;
        }
        if let Some(id) = self.accounts.get(&key) {
            return Ok(*id);
        }
        // Maybe written on another thread.
        self.settle()?;
        if let Some(id) = self.accounts.get(&key) {
            return Ok(*id);
        }
        let id = self
            .conn
            .query_opt(
                "SELECT id FROM accounts WHERE user_key = ?1",
                &params![&key],
            )?
            .ok_or_else(|| StoreError::no_account(user_name))?
            .get(0)?;
        self.accounts.insert(key, id);
        Ok(id)
    }

    fn group_id(&mut self, name: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.groups.get(name) {
            return Ok(*id);
        }
        let id = self
            .conn
            .query_opt("SELECT id FROM groups WHERE name = ?1", &params![name])?
            .ok_or_else(|| StoreError::no_group(name))?
            .get(0)?;
        self.groups.insert(name.to_string(), id);
        Ok(id)
    }

    /// An account name that no longer names what this session knew by it.
    fn forget(&mut self, key: &str) {
        self.accounts.remove(key);
        self.created.remove(key);
        self.granted.remove(key);
    }

    /// Run `sql` for each statement with the one parameter `id`.
    fn delete_by_id(&mut self, statements: &[&str], id: i64) -> Result<(), StoreError> {
        for sql in statements {
            self.conn.execute(sql, &params![id])?;
        }
        Ok(())
    }
}

impl Session for SqlSession {
    fn revision(&mut self) -> Result<i64, StoreError> {
        Ok(self.log.revision)
    }

    fn create_group(
        &mut self,
        name: &str,
        kind: GroupType,
        lwia: Option<u32>,
    ) -> Result<(), StoreError> {
        let row = self.conn.query_one(
            "INSERT INTO groups (name, type, lwia, active, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            &params![name, kind.as_str(), lwia, true, &self.now],
        );
        let id: i64 = unique(row, || StoreError::group_taken(name))?.get(0)?;
        self.groups.insert(name.to_string(), id);
        self.record(Change::CreateGroup { name, kind, lwia })
    }

    fn create_account_with_roles(
        &mut self,
        user_name: &str,
        profile: &Profile,
        roles: &[String],
        credential: NewCredential,
    ) -> Result<(), StoreError> {
        let (state, hash, digest) = match &credential {
            NewCredential::Invite {
                token_digest,
                token,
            } => (CredentialState::Invited, None, Some((token_digest, token))),
            NewCredential::Password { hash, .. } => {
                (CredentialState::PasswordSet, Some(hash), None)
            }
            NewCredential::Sso => (CredentialState::None, None, None),
        };
        let key = user_name.to_lowercase();
        if self.accounts.contains_key(&key)
            || self.new_names.contains_key(&key)
            || self.in_flight.contains(&key)
        {
            return Err(StoreError::account_taken(user_name));
        }
        let deferred = match &mut self.deferred {
            // Its id drawn, its row queued with those of the other
            // deferred creates, each checking its own email.
            Some(ids) => Some(
                ids.pop()
                    .ok_or_else(|| StoreError::Invalid("more creates than were deferred".into()))?,
            ),
            None => None,
        };
        if let Some(id) = deferred {
            self.accounts.insert(key.clone(), id);
            self.deferred_accounts.int(id);
        } else if self.unique_emails {
            if let Some(ahead) = self.conn.ahead() {
                // Its id comes from the sequence as it is written: ids
                // drawn before it would come after it.
                ahead.ids.clear();
            }
            // Its email is looked for as its row is written, alone: rows of
            // one statement do not see each other.
            if !self.new_names.is_empty() {
                self.flush()?;
            }
            self.new_emails.insert(key.clone(), profile.email.clone());
        }
        let now = self.now.as_str();
        let queue = match deferred {
            Some(_) => &mut self.deferred_accounts,
            None => &mut self.accounts_queue,
        };
        queue
            .text(user_name)
            .text(&key)
            .profile(profile)
            // Roles live in account_roles; the old column stays empty.
            .text("")
            .bool(true)
            .text(state.as_str())
            .opt(hash.map(String::as_str))
            .opt(digest.map(|(d, _)| d.as_str()))
            .opt(digest.map(|_| now))
            .text(now)
            .text(now);
        if let Some((_, token)) = digest {
            self.rows
                .outbox
                .text("invitation")
                .account(&key, &self.accounts)
                .text(&profile.email)
                .text(token)
                .text(now);
        }
        // A new number: nothing an account of this name deleted or renamed
        // in this session had is its.
        self.next_created += 1;
        self.created.insert(key.clone(), self.next_created);
        let roles = crate::domain::sorted_unique(roles.to_vec());
        self.granted.remove(&key);
        if !roles.is_empty() {
            let held = self.granted.entry(key.clone()).or_default();
            for r in &roles {
                held.insert(role_grant(r));
                self.rows.roles.account(&key, &self.accounts).text(r);
            }
        }
        self.new_names.insert(key, user_name.to_string());
        self.record(Change::CreateAccount {
            user_name,
            profile,
            credential: state,
            roles: &roles,
        })
    }

    fn set_active(&mut self, user_name: &str, active: bool) -> Result<(), StoreError> {
        self.flush_for(user_name)?;
        let id = self.account_id(user_name)?;
        let changed = self.conn.execute(
            "UPDATE accounts SET active = ?2, updated_at = ?3 WHERE id = ?1 AND active = ?4",
            &params![id, active, &self.now, !active],
        )?;
        if changed != 1 {
            return Err(StoreError::already_active(user_name, active));
        }
        if !active {
            // A deactivated account is not invited (again).
            self.conn.execute(
                "DELETE FROM outbox WHERE account_id = ?1 AND sent_at IS NULL",
                &params![id],
            )?;
        }
        self.record(Change::SetActive { user_name, active })
    }

    fn update_profile(
        &mut self,
        user_name: &str,
        profile: &Profile,
        fields: &[String],
    ) -> Result<(), StoreError> {
        let id = self.account_id(user_name)?;
        let row = self
            .conn
            .query_opt(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.id = ?1"),
                &params![id],
            )?
            .ok_or_else(|| StoreError::no_account(user_name))?;
        let before = account_from_row(&row)?.profile;
        let p = before
            .with_fields(profile, fields)
            .map_err(StoreError::Invalid)?;
        let mut row = Queue::default();
        row.int(id).profile(&p).text(&self.now);
        let mut args = Vec::new();
        row.args(0..row.len(), &self.accounts, &mut args)?;
        self.conn.execute_args(
            "UPDATE accounts SET email = ?2, email_key = ?3, first_name = ?4, last_name = ?5, \
             first_key = ?6, last_key = ?7, birth_date = ?8, phone = ?9, extension = ?10, zip = ?11, \
             updated_at = ?12 WHERE id = ?1",
            &args,
        )?;
        self.record(Change::UpdateProfile {
            user_name,
            before: &before,
            after: &p,
        })
    }

    fn add_membership(
        &mut self,
        user_name: &str,
        group: &str,
        user_manager: bool,
    ) -> Result<(), StoreError> {
        let key = lowercase(user_name);
        let taken = || StoreError::already_member(user_name, group);
        if let Some(&n) = self.created.get(&*key) {
            let g = self.group_id(group)?;
            // Nobody else writes while this session holds the lock: the
            // new account has only the memberships this session gave it.
            if !self.added.insert((g, n)) {
                return Err(taken());
            }
            self.rows
                .memberships
                .int(g)
                .account(&key, &self.accounts)
                .bool(user_manager);
        } else {
            let a = self.account_id(user_name)?;
            let g = self.group_id(group)?;
            let written = self.conn.execute(
                "INSERT INTO memberships (group_id, account_id, user_manager) VALUES (?1, ?2, ?3)",
                &params![g, a, user_manager],
            );
            unique(written, taken)?;
        }
        self.record(Change::AddMembership {
            user_name,
            group,
            user_manager,
        })
    }

    fn set_user_manager(
        &mut self,
        user_name: &str,
        group: &str,
        user_manager: bool,
    ) -> Result<(), StoreError> {
        self.flush_for(user_name)?;
        let a = self.account_id(user_name)?;
        let g = self.group_id(group)?;
        let changed = self.conn.execute(
            "UPDATE memberships SET user_manager = ?3 \
             WHERE group_id = ?1 AND account_id = ?2 AND user_manager = ?4",
            &params![g, a, user_manager, !user_manager],
        )?;
        if changed != 1 {
            return Err(StoreError::no_grant_to_change(
                user_name,
                group,
                user_manager,
            ));
        }
        self.record(Change::SetUserManager {
            user_name,
            group,
            user_manager,
        })
    }

    fn remove_membership(&mut self, user_name: &str, group: &str) -> Result<(), StoreError> {
        self.flush_for(user_name)?;
        let a = self.account_id(user_name)?;
        let g = self.group_id(group)?;
        let was: Option<bool> = self
            .conn
            .query_opt(
                "DELETE FROM memberships WHERE group_id = ?1 AND account_id = ?2 \
                 RETURNING user_manager",
                &params![g, a],
            )?
            .map(|r| r.get(0))
            .transpose()?;
        let Some(was) = was else {
            return Err(StoreError::not_member(user_name, group));
        };
        self.record(Change::RemoveMembership {
            user_name,
            group,
            was,
        })
    }

    fn rename_account(&mut self, user_name: &str, new_name: &str) -> Result<(), StoreError> {
        self.flush_for(user_name)?;
        let id = self.account_id(user_name)?;
        let key = new_name.to_lowercase();
        let written = self.conn.execute(
            "UPDATE accounts SET user_name = ?2, user_key = ?3, updated_at = ?4 WHERE id = ?1",
            &params![id, new_name, &key, &self.now],
        );
        unique(written, || StoreError::account_taken(new_name))?;
        self.forget(&user_name.to_lowercase());
        self.accounts.insert(key, id);
        self.record(Change::RenameAccount {
            user_name,
            new_name,
        })
    }

    fn change_grant(
        &mut self,
        user_name: &str,
        what: Grant,
        grant: bool,
    ) -> Result<(), StoreError> {
        let key = user_name.to_lowercase();
        let refused = || what.refused(user_name, grant);
        let (kind, value, held) = match what {
            Grant::Role(role) => (None, role, role_grant(role)),
            Grant::Entitlement(e) => (Some(e.kind.as_str()), e.value.as_str(), e.clone()),
        };
        if grant && self.created.contains_key(&key) {
            // Nobody else writes while this session holds the lock: the
            // new account has only the grants this session gave it.
            if !self.granted.entry(key.clone()).or_default().insert(held) {
                return Err(refused());
            }
            match kind {
                None => self.rows.roles.account(&key, &self.accounts).text(value),
                Some(k) => self
                    .rows
                    .entitlements
                    .account(&key, &self.accounts)
                    .text(k)
                    .text(value),
            };
        } else {
            self.flush_for(user_name)?;
            let id = self.account_id(user_name)?;
            let (sql, values) = match (kind, grant) {
                (None, true) => (
                    "INSERT INTO account_roles (account_id, role) VALUES (?1, ?2)",
                    params![id, value].to_vec(),
                ),
                (None, false) => (
                    "DELETE FROM account_roles WHERE account_id = ?1 AND role = ?2",
                    params![id, value].to_vec(),
                ),
                (Some(k), true) => (
                    "INSERT INTO account_entitlements (account_id, kind, value) \
                     VALUES (?1, ?2, ?3)",
                    params![id, k, value].to_vec(),
                ),
                (Some(k), false) => (
                    "DELETE FROM account_entitlements \
                     WHERE account_id = ?1 AND kind = ?2 AND value = ?3",
                    params![id, k, value].to_vec(),
                ),
            };
            let changed = unique(self.conn.execute(sql, &values), refused)?;
            if changed != 1 {
                return Err(refused());
            }
            if !grant && let Some(held_by) = self.granted.get_mut(&key) {
                held_by.remove(&held);
            }
        }
        self.record(what.change(user_name, grant))
    }

    fn set_case_manager(
        &mut self,
        user_name: &str,
        case_manager: Option<&str>,
    ) -> Result<(), StoreError> {
        let id = self.account_id(user_name)?;
        let manager = case_manager.map(|m| self.account_id(m)).transpose()?;
        let current: Option<String> = self
            .conn
            .query_one(
                "SELECT (SELECT cm.user_name FROM accounts cm WHERE cm.id = a.case_manager_id) \
                 FROM accounts a WHERE a.id = ?1",
                &params![id],
            )?
            .get(0)?;
        if let Some(e) =
            StoreError::case_manager_refused(user_name, current.as_deref(), case_manager)
        {
            return Err(e);
        }
        self.conn.execute(
            "UPDATE accounts SET case_manager_id = ?2, updated_at = ?3 WHERE id = ?1",
            &params![id, manager, &self.now],
        )?;
        self.record(Change::CaseManager {
            user_name,
            before: current.as_deref(),
            after: case_manager,
        })
    }

    fn delete_account(&mut self, user_name: &str) -> Result<(), StoreError> {
        self.flush_for(user_name)?;
        let id = self.account_id(user_name)?;
        self.delete_by_id(
            &[
                "UPDATE accounts SET case_manager_id = NULL WHERE case_manager_id = ?1",
                "DELETE FROM account_roles WHERE account_id = ?1",
                "DELETE FROM account_entitlements WHERE account_id = ?1",
                "DELETE FROM memberships WHERE account_id = ?1",
                "DELETE FROM outbox WHERE account_id = ?1",
                "DELETE FROM accounts WHERE id = ?1",
            ],
            id,
        )?;
        self.forget(&user_name.to_lowercase());
        self.record(Change::DeleteAccount { user_name })
    }

    fn update_group(
        &mut self,
        name: &str,
        new_name: &str,
        kind: GroupType,
        lwia: Option<u32>,
    ) -> Result<(), StoreError> {
        let id = self.group_id(name)?;
        let row = self
            .conn
            .query_opt("SELECT type, lwia FROM groups WHERE id = ?1", &params![id])?
            .ok_or_else(|| StoreError::no_group(name))?;
        let was_kind: String = row.get(0)?;
        let was_lwia = row
            .get::<Option<i64>>(1)?
            .and_then(|v| u32::try_from(v).ok());
        let written = self.conn.execute(
            "UPDATE groups SET name = ?2, type = ?3, lwia = ?4, updated_at = ?5 WHERE id = ?1",
            &params![id, new_name, kind.as_str(), lwia, &self.now],
        );
        unique(written, || StoreError::group_taken(new_name))?;
        self.groups.remove(name);
        self.groups.insert(new_name.to_string(), id);
        self.record(Change::UpdateGroup {
            name,
            was: (&was_kind, was_lwia),
            new_name,
            kind,
            lwia,
        })
    }

    fn delete_group(&mut self, name: &str) -> Result<(), StoreError> {
        self.flush()?;
        let id = self.group_id(name)?;
        self.delete_by_id(
            &[
                "DELETE FROM memberships WHERE group_id = ?1",
                "DELETE FROM groups WHERE id = ?1",
            ],
            id,
        )?;
        self.groups.remove(name);
        self.record(Change::DeleteGroup { name })
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
        self.conn.execute(&sql, &params![id, value, &self.now])?;
        self.record(Change::ScimField {
            of,
            name,
            key,
            value,
        })
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
        let written = self.conn.execute(
            "INSERT INTO tokens (name, digest, scope, created_at) VALUES (?1, ?2, ?3, ?4)",
            &params![name, digest, stored, &self.now],
        );
        unique(written, || StoreError::token_taken(name))?;
        self.record(Change::CreateToken {
            name,
            scope,
            group_ids: ids.as_deref(),
        })
    }

    fn revoke_token(&mut self, name: &str) -> Result<(), StoreError> {
        self.live_admins.clear();
        let changed = self.conn.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            &params![name, &self.now],
        )?;
        if changed != 1 {
            return Err(StoreError::no_live_token(name));
        }
        self.record(Change::RevokeToken { name })
    }

    fn created_account(&mut self, user_name: &str) -> Result<Option<(i64, String)>, StoreError> {
        let key = user_name.to_lowercase();
        if !self.created.contains_key(&key) {
            return Ok(None);
        }
        if self.deferred.is_some() {
            // Its id was drawn: written with the other deferred creates.
            return Ok(self.accounts.get(&key).map(|id| (*id, self.now.clone())));
        }
        self.flush()?;
        Ok(self.accounts.get(&key).map(|id| (*id, self.now.clone())))
    }

    fn savepoint(&mut self) -> Result<(), StoreError> {
        if self.savepoint.is_some() {
            return Err(StoreError::Invalid(
                "a savepoint is already set: release it or roll back to it first".into(),
            ));
        }
        self.flush()?;
        self.conn.savepoint_due = true;
        self.savepoint = Some(self.log.clone());
        Ok(())
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        let Some(log) = self.savepoint.take() else {
            return Err(StoreError::Invalid("no savepoint to roll back to".into()));
        };
        if self.conn.savepoint_due {
            // Never sent: nothing since it reached the database.
            self.conn.savepoint_due = false;
            if self.conn.failed_unsaved {
                // A statement failed with no savepoint to go back to: the
                // transaction cannot go on (nor commit).
                return Err(StoreError::Invalid(
                    "a write failed in a transaction shared with others; try again".into(),
                ));
            }
        } else {
            self.conn.batch(&format!(
                "ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"
            ))?;
        }
        self.log = log;
        // Ids cached since may name rows that are gone, or names that
        // changed back: look them up again. What was queued since is
        // undone too (the queues were empty at the savepoint).
        self.accounts.clear();
        self.groups.clear();
        self.created.clear();
        self.added.clear();
        self.accounts_queue.clear();
        self.new_names.clear();
        self.new_emails.clear();
        self.live_admins.clear();
        self.rows.clear();
        self.granted.clear();
        Ok(())
    }

    fn release_savepoint(&mut self) -> Result<(), StoreError> {
        if self.savepoint.is_none() {
            return Err(StoreError::Invalid("no savepoint to release".into()));
        }
        // Rows refused when the queue is written (a name taken) leave the
        // savepoint set, for the caller to roll back to.
        self.flush()?;
        // What it holds is the transaction's now: nothing rolls back to
        // it. A savepoint never sent has nothing to release; the `RELEASE`
        // of one sent waits for the next statement batch.
        if !std::mem::take(&mut self.conn.savepoint_due) {
            self.conn.release_due = true;
        }
        self.savepoint = None;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<i64, StoreError> {
        if self.conn.failed_unsaved {
            // Dropped: rolled back.
            return Err(StoreError::Invalid(
                "a write failed in a transaction shared with others; try again".into(),
            ));
        }
        self.flush()?;
        let revision = self.log.revision;
        // One statement batch: one round trip to a server.
        self.conn.batch(&format!(
            "UPDATE meta SET value = {revision} WHERE key = 'revision'; COMMIT"
        ))?;
        self.open = false;
        Ok(revision)
    }

    fn activate(
        &mut self,
        digest: &str,
        password_hash: &str,
        ttl: std::time::Duration,
    ) -> Result<crate::store::TokenLookup, StoreError> {
        self.flush()?;
        let (id, found) = super::activate::lookup(&mut self.conn, digest, ttl, &self.now)?;
        let (Some(id), Ok(holder)) = (id, &found) else {
            return Ok(found);
        };
        if !super::activate::activate(&mut self.conn, id, digest, password_hash, &self.now)? {
            return Ok(Err(crate::store::TokenRefused::Unknown));
        }
        self.record(Change::Activate {
            user_name: &holder.user_name,
            reset: holder.reset,
        })?;
        Ok(found)
    }

    fn refuse_taken_emails(&mut self) -> bool {
        self.unique_emails = true;
        true
    }

    fn live_admin_token(&mut self, digest: &str) -> Result<Option<String>, StoreError> {
        if let Some(name) = self.live_admins.get(digest) {
            return Ok(Some(name.clone()));
        }
        // A read: sent without the savepoint due, which it does not need
        // (a failure leaves the transaction unable to go on, as any
        // statement failing under a savepoint not sent does).
        let row = self.conn.conn().and_then(|c| {
            c.query_opt(
            "SELECT name FROM tokens WHERE digest = ?1 AND revoked_at IS NULL AND scope IS NULL",
                &params![digest],
            )
        });
        if row.is_err() {
            self.conn.failed = true;
            self.conn.failed_unsaved |= self.conn.savepoint_due;
        }
        let name: Option<String> = row?.map(|r| r.get(0)).transpose()?;
        if let Some(n) = &name {
            self.live_admins.insert(digest.to_string(), n.clone());
        }
        Ok(name)
    }

    fn defer_creates(
        &mut self,
        creates: usize,
        admin_token: Option<&str>,
    ) -> Result<bool, StoreError> {
        // A server a round trip away gains; SQLite writes a row in
        // microseconds, and its queued rows take no `OVERRIDING`.
        if self.conn.dialect() != super::conn::Dialect::Postgres
            || creates < 2
            || self.savepoint.is_some()
        {
            return Ok(false);
        }
        self.flush()?;
        let Some(ahead) = self.conn.ahead() else {
            return Ok(false);
        };
        let known = match (admin_token, &ahead.admin) {
            (None, _) => true,
            (Some(digest), Some((d, _))) => d == digest,
            (Some(_), None) => false,
        };
        if ahead.ids.len() < creates || !known {
            // Ids for this batch and the next ones, and the token's name
            // if it is a live admin's (as `live_admin_token` looks it up),
            // in one round trip.
            let mut drawn = Vec::with_capacity(creates.max(IDS_AHEAD));
            let mut admin = None;
            self.conn.query_rows(
                "SELECT nextval(pg_get_serial_sequence('accounts', 'id')), \
                 (SELECT name FROM tokens WHERE digest = ?2 AND revoked_at IS NULL AND scope IS NULL) \
                 FROM generate_series(1, ?1::bigint)",
                &[
                    Arg::Int(creates.max(IDS_AHEAD) as i64),
                    Arg::Text(admin_token.unwrap_or("")),
                ],
                &mut |r| {
                    drawn.push(r.get(0)?);
                    admin = r.take::<Option<String>>(1)?;
                    Ok(())
                },
            )?;
            let Some(ahead) = self.conn.ahead() else {
                return Ok(false);
            };
            // Drawn after those kept, so larger: kept last, handed out first.
            drawn.sort_unstable_by(|a: &i64, b| b.cmp(a));
            drawn.append(&mut ahead.ids);
            ahead.ids = drawn;
            if let Some(digest) = admin_token {
                ahead.admin = admin.clone().map(|name| (digest.to_string(), name.clone()));
                if let Some(name) = admin {
                    // Looked up in this transaction, under its lock.
                    self.live_admins.insert(digest.to_string(), name);
                }
            }
        } else if let (Some(digest), Some(admin)) = (admin_token, &ahead.admin) {
            // Let in as the last batch found it; the insert checks it again.
            self.live_admins.insert(digest.to_string(), admin.1.clone());
            self.deferred_admin = Some(admin.clone());
        }
        let Some(ahead) = self.conn.ahead() else {
            return Ok(false);
        };
        // The smallest, handed out from the end.
        let ids = ahead.ids.split_off(ahead.ids.len() - creates);
        self.deferred = Some(ids);
        Ok(true)
    }

    fn write_deferred(&mut self) -> Result<bool, StoreError> {
        let written = self.flush_deferred()?;
        self.deferred = None;
        Ok(written)
    }

    fn claim_mail(&mut self, until: &str, limit: usize) -> Result<Vec<Mail>, StoreError> {
        self.flush()?;
        outbox::claim(&mut self.conn, &self.now, until, limit)
    }

    fn mail_sent(&mut self, id: i64) -> Result<(), StoreError> {
        outbox::sent(&mut self.conn, &self.now, id)
    }

    fn mail_deferred(&mut self, id: i64, next_try_at: &str, error: &str) -> Result<(), StoreError> {
        outbox::deferred(&mut self.conn, id, next_try_at, error)
    }

    fn mail_failed(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        outbox::failed(&mut self.conn, &self.now, id, error)
    }

    fn release_mail(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        outbox::release(&mut self.conn, ids)
    }

    fn due_reminders(&mut self, sent_before: &str, max: u32) -> Result<Vec<String>, StoreError> {
        self.flush()?;
        outbox::due_reminders(&mut self.conn, sent_before, max)
    }

    fn queue_mail(
        &mut self,
        user_name: &str,
        kind: MailKind,
        token: &str,
        token_digest: &str,
    ) -> Result<(), StoreError> {
        self.flush_for(user_name)?;
        let id = self.account_id(user_name)?;
        let now = self.now.clone();
        outbox::queue(
            &mut self.conn,
            &now,
            user_name,
            id,
            kind,
            token,
            token_digest,
        )?;
        self.record(Change::QueueMail { user_name, kind })
    }

    fn set_password(&mut self, user_name: &str, password_hash: &str) -> Result<(), StoreError> {
        self.flush_for(user_name)?;
        let id = self.account_id(user_name)?;
        let now = self.now.clone();
        let was = super::activate::set_password(&mut self.conn, id, password_hash, &now)?;
        self.record(Change::SetPassword {
            user_name,
            was: CredentialState::parse(&was),
        })
    }
}

impl Drop for SqlSession {
    fn drop(&mut self) {
        if self.open {
            // Nothing of an unfinished apply lands (and the lock is free
            // at once).
            if let Ok(conn) = self.conn.conn() {
                let _ = conn.batch("ROLLBACK");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::{GroupType, Profile};
    use crate::store::{self, NewCredential, Options, Reader, StoreError, audit};

    fn profile(email: &str) -> Profile {
        Profile {
            email: email.into(),
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            birth_date: Some("1990-01-02".into()),
            phone: None,
            extension: None,
            zip: None,
        }
    }

    fn invite() -> NewCredential {
        NewCredential::Invite {
            token: "tok".into(),
            token_digest: "digest".into(),
        }
    }

    fn store(dir: &tempfile::TempDir, options: Options) -> Box<dyn store::Store> {
        let url = format!("sqlite:{}", dir.path().join("s.db").display());
        store::open(&url, options).unwrap()
    }

    fn members(r: &mut dyn Reader, group: &str) -> Vec<String> {
        r.memberships(&[group.to_string()])
            .unwrap()
            .into_iter()
            .map(|m| m.user_name)
            .collect()
    }

    /// A savepoint whose rows go all or none is not sent; a statement
    /// failing under it anyway (the invitation refused, here by a trigger,
    /// after the account's row was written) leaves nothing to roll back to
    /// in the database: the session neither goes on nor commits, and
    /// nothing lands.
    #[test]
    fn a_write_failing_under_a_savepoint_not_sent_cannot_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, Options::default());
        let w = s.begin("t", "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(w.commit().unwrap(), 0);
        rusqlite::Connection::open(dir.path().join("s.db"))
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER no_mail BEFORE INSERT ON outbox \
                 BEGIN SELECT RAISE(ABORT, 'no mail today'); END",
            )
            .unwrap();
        let mut w = s.begin("t", "2026-01-01T00:00:00Z").unwrap();
        w.savepoint().unwrap();
        w.create_account("ann", &profile("ann@x.org"), invite())
            .unwrap();
        assert!(w.release_savepoint().is_err());
        assert!(w.rollback_to_savepoint().is_err());
        assert!(w.commit().is_err());

        let mut r = s.reader().unwrap();
        assert_eq!(r.revision().unwrap(), 0);
        assert!(r.audit(None).unwrap().is_empty());
        assert!(
            r.accounts_by_user_name(&["ann".to_string()])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_rolled_back_savepoint_leaves_no_row_audit_row_or_revision() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, Options::default());
        let mut w = s.begin("t", "2026-01-01T00:00:00Z").unwrap();
        w.create_group("A", GroupType::default(), None).unwrap();
        w.savepoint().unwrap();
        w.create_account("ann", &profile("ann@x.org"), invite())
            .unwrap();
        w.add_membership("ann", "A", false).unwrap();
        w.rollback_to_savepoint().unwrap();
        assert_eq!(w.revision().unwrap(), 1);
        w.savepoint().unwrap();
        w.create_account("bob", &profile("bob@x.org"), invite())
            .unwrap();
        w.add_membership("bob", "A", true).unwrap();
        w.release_savepoint().unwrap();
        // The name the rolled-back write took is free again.
        w.create_account("ann", &profile("ann@x.org"), invite())
            .unwrap();
        assert_eq!(w.commit().unwrap(), 4);

        let mut r = s.reader().unwrap();
        assert_eq!(r.revision().unwrap(), 4);
        assert_eq!(members(r.as_mut(), "A"), ["bob"]);
        let log = r.audit(None).unwrap();
        let ops: Vec<&str> = log.iter().map(|e| e.op.as_str()).collect();
        assert_eq!(
            ops,
            [
                "create_group",
                "create_account",
                "add_membership",
                "create_account"
            ]
        );
        audit::verify(&log, 4).unwrap();
        let invited: Vec<String> = r
            .invitations()
            .unwrap()
            .into_iter()
            .map(|i| i.user_name)
            .collect();
        assert_eq!(invited, ["ann", "bob"]);
    }

    #[test]
    fn savepoints_are_one_level() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, Options::default());
        let mut w = s.begin("t", "2026-01-01T00:00:00Z").unwrap();
        assert!(w.rollback_to_savepoint().is_err());
        assert!(w.release_savepoint().is_err());
        w.savepoint().unwrap();
        assert!(w.savepoint().is_err());
    }

    #[test]
    fn a_second_membership_is_taken_for_new_and_old_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, Options::default());
        let mut w = s.begin("t", "2026-01-01T00:00:00Z").unwrap();
        w.create_group("A", GroupType::default(), None).unwrap();
        w.create_account("ann", &profile("ann@x.org"), invite())
            .unwrap();
        w.add_membership("ann", "A", false).unwrap();
        let e = w.add_membership("ANN", "A", true).unwrap_err();
        assert!(
            matches!(&e, StoreError::Taken(m) if m == "`ANN` is already a member of `A`"),
            "{e:?}"
        );
        w.commit().unwrap();
        let mut w = s.begin("t", "2026-01-01T00:00:01Z").unwrap();
        let e = w.add_membership("ann", "A", false).unwrap_err();
        assert!(
            matches!(&e, StoreError::Taken(m) if m == "`ann` is already a member of `A`"),
            "{e:?}"
        );
        // Queued rows land before an action that changes them.
        w.create_account("cy", &profile("cy@x.org"), invite())
            .unwrap();
        w.add_membership("cy", "A", false).unwrap();
        w.remove_membership("cy", "A").unwrap();
        w.deactivate_account("cy").unwrap();
        assert_eq!(w.commit().unwrap(), 7);
        let mut r = s.reader().unwrap();
        assert_eq!(members(r.as_mut(), "A"), ["ann"]);
        assert_eq!(r.invitations().unwrap().len(), 1);
        audit::verify(&r.audit(None).unwrap(), 7).unwrap();
    }

    #[test]
    fn a_new_account_whose_name_is_taken_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, Options::default());
        let mut w = s.begin("t", "2026-01-01T00:00:00Z").unwrap();
        w.create_account("ann", &profile("ann@x.org"), invite())
            .unwrap();
        let e = w
            .create_account("ANN", &profile("ann@x.org"), invite())
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Taken(m) if m == "account `ANN` already exists in the store"),
            "{e:?}"
        );
        w.commit().unwrap();
        // Known to the store only: refused when the queue is written.
        let mut w = s.begin("t", "2026-01-01T00:00:01Z").unwrap();
        w.create_account("bob", &profile("bob@x.org"), invite())
            .unwrap();
        w.create_account("Ann", &profile("ann@x.org"), invite())
            .unwrap();
        let e = w.commit().unwrap_err();
        assert!(
            matches!(&e, StoreError::Taken(m) if m == "account `Ann` already exists in the store"),
            "{e:?}"
        );
        let mut r = s.reader().unwrap();
        assert_eq!(r.revision().unwrap(), 1);
        assert_eq!(r.all_accounts().unwrap().len(), 1);
        // A renamed new account keeps its memberships; its old name is free.
        let mut w = s.begin("t", "2026-01-01T00:00:02Z").unwrap();
        w.create_group("A", GroupType::default(), None).unwrap();
        w.create_account("cy", &profile("cy@x.org"), invite())
            .unwrap();
        w.add_membership("cy", "A", false).unwrap();
        w.rename_account("cy", "dee").unwrap();
        w.create_account("cy", &profile("cy2@x.org"), invite())
            .unwrap();
        w.add_membership("cy", "A", true).unwrap();
        w.commit().unwrap();
        let mut r = s.reader().unwrap();
        let mut m: Vec<(String, bool)> = r
            .memberships(&["A".to_string()])
            .unwrap()
            .into_iter()
            .map(|m| (m.user_name, m.user_manager))
            .collect();
        m.sort();
        assert_eq!(m, [("cy".to_string(), true), ("dee".to_string(), false)]);
        audit::verify(&r.audit(None).unwrap(), r.revision().unwrap()).unwrap();
    }

    #[test]
    fn an_account_created_again_under_its_name_has_none_of_its_namesakes_memberships() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, Options::default());
        let mut w = s.begin("t", "2026-01-01T00:00:00Z").unwrap();
        w.create_group("A", GroupType::default(), None).unwrap();
        w.create_account("ann", &profile("ann@x.org"), invite())
            .unwrap();
        w.add_membership("ann", "A", false).unwrap();
        w.delete_account("ANN").unwrap();
        w.create_account("Ann", &profile("ann2@x.org"), invite())
            .unwrap();
        w.add_membership("ann", "A", true).unwrap();
        let e = w.add_membership("ANN", "A", false).unwrap_err();
        assert!(matches!(e, StoreError::Taken(_)), "{e:?}");
        w.commit().unwrap();
        let mut r = s.reader().unwrap();
        let m: Vec<(String, bool)> = r
            .memberships(&["A".to_string()])
            .unwrap()
            .into_iter()
            .map(|m| (m.user_name, m.user_manager))
            .collect();
        assert_eq!(m, [("Ann".to_string(), true)]);
        audit::verify(&r.audit(None).unwrap(), r.revision().unwrap()).unwrap();
    }

    #[test]
    fn queues_written_mid_session_keep_every_row_and_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, Options::default());
        let mut w = s.begin("t", "2026-01-01T00:00:00Z").unwrap();
        w.create_group("A", GroupType::default(), None).unwrap();
        // More values than the queues hold before they are written.
        let n = super::QUEUED_MAX / 20;
        for i in 0..n {
            let name = format!("u{i}");
            w.create_account(&name, &profile(&format!("{name}@x.org")), invite())
                .unwrap();
            w.add_membership(&name, "A", i % 2 == 0).unwrap();
        }
        let revision = w.commit().unwrap();
        assert_eq!(revision, 1 + 2 * n as i64);
        let mut r = s.reader().unwrap();
        assert_eq!(members(r.as_mut(), "A").len(), n);
        assert_eq!(r.invitations().unwrap().len(), n);
        audit::verify(&r.audit(None).unwrap(), revision).unwrap();
    }

    #[test]
    fn the_pool_holds_at_most_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            lock_timeout: std::time::Duration::from_secs(1),
            connections: 1,
        };
        let s = store(&dir, options);
        s.begin("t", "2026-01-01T00:00:00Z")
            .unwrap()
            .commit()
            .unwrap();
        let reader = s.reader().unwrap();
        // The one connection is the reader's: a session waits, then says so.
        let e = s.begin("t", "2026-01-01T00:00:01Z").err().unwrap();
        assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
        drop(reader);
        s.begin("t", "2026-01-01T00:00:02Z")
            .unwrap()
            .commit()
            .unwrap();
    }
}
