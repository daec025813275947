//! `roster serve`'s reads ([`Directory`]) and its kept read connection
//! ([`Served`]), written once over [`Conn`]: the listings' filters come as
//! the SCIM filter's AST and are translated here ([`super::listing`]); key
//! lists are bound as one list parameter ([`Conn::in_list`]); the listing's
//! time cap is the connection's deadline (SQLite's progress handler,
//! PostgreSQL's `statement_timeout`).

use super::columns::{GROUPS, USERS};
use super::conn::{Conn, Dialect, Row, Value};
use super::filter::Sql;
use super::{ACCOUNT_COLUMNS, account_from_row, fill_grants, listing};
use crate::domain::Group;
use crate::store::directory::{
    Directory, GroupRecord, GroupRef, ListQuery, MemberRef, Scope, Token, UserRecord,
};
use crate::store::{Served, StoreError};
use std::collections::HashMap;
use std::time::Instant;

const TOKEN_COLUMNS: &str = "name, digest, scope, created_at, revoked_at";

/// What a user record adds to [`ACCOUNT_COLUMNS`].
const USER_COLUMNS: &str = "a.id, a.created_at, a.updated_at, a.external_id, a.display_name";

/// A read connection of `roster serve`, in a read snapshot; no connection
/// for a store not created yet, which reads as empty.
///
/// The snapshot starts with the first read that needs one: a read of one
/// statement (a token, a user by id or name, ids of names) is a snapshot of
/// its own and runs as it comes, so a request that reads one row at a time
/// sends no `BEGIN` and no `ROLLBACK`; a read of several statements (a
/// listing and its total, a group and its members) starts the snapshot that
/// the rest of the request then shares.
pub struct SqlDirectory {
    conn: Option<Box<dyn Conn>>,
    /// A snapshot was asked for and not started yet.
    pending: bool,
}

impl SqlDirectory {
    /// `conn` in a read snapshot from here on (it may be in one already).
    pub fn new(conn: Option<Box<dyn Conn>>) -> Result<Self, StoreError> {
        let mut d = SqlDirectory {
            conn,
            pending: false,
        };
        if !d.conn.as_deref().is_some_and(|c| c.in_transaction()) {
            d.begin_read()?;
        }
        Ok(d)
    }

    /// Start the snapshot asked for, before a read of several statements.
    fn snapshot(&mut self) -> Result<(), StoreError> {
        if let (true, Some(c)) = (self.pending, self.conn.as_deref_mut()) {
            c.batch_soon(begin_read(c.dialect()))?;
        }
        self.pending = false;
        Ok(())
    }
}

/// How a read snapshot starts: PostgreSQL's read-only repeatable read is
/// what SQLite's deferred transaction gives.
fn begin_read(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "BEGIN",
        Dialect::Postgres => super::postgres::BEGIN_READ,
    }
}

impl Served for SqlDirectory {
    fn end_read(&mut self) -> Result<(), StoreError> {
        self.pending = false;
        match self.conn.as_deref_mut() {
            Some(c) if c.in_transaction() => c.batch("ROLLBACK"),
            _ => Ok(()),
        }
    }

    fn begin_read(&mut self) -> Result<(), StoreError> {
        self.end_read()?;
        self.pending = self.conn.is_some();
        Ok(())
    }
}

/// The WHERE clause of a listing and its parameters: the filter's (numbered
/// from 1), then the token's groups as one list. `scope` is the condition a
/// scoped token adds, given the group-id list's parameter number.
fn where_clause(
    c: &dyn Conn,
    filter: Option<Sql>,
    groups: Option<&[i64]>,
    scope: impl Fn(&dyn Conn, usize) -> String,
) -> (String, Vec<Value>) {
    let mut conds = Vec::new();
    let mut values = Vec::new();
    if let Some(f) = filter {
        conds.push(format!("({})", f.text));
        values.extend(f.params);
    }
    if let Some(groups) = groups {
        values.push(Value::IntList(groups.to_vec()));
        conds.push(scope(c, values.len()));
    }
    let clause = if conds.is_empty() {
        "1 = 1".to_string()
    } else {
        conds.join(" AND ")
    };
    (clause, values)
}

fn user_scope(c: &dyn Conn, param: usize) -> String {
    format!(
        "EXISTS (SELECT 1 FROM memberships sm JOIN groups sg ON sg.id = sm.group_id \
         WHERE sm.account_id = a.id AND {})",
        c.in_list("sm.group_id", param)
    )
}

fn group_scope(c: &dyn Conn, param: usize) -> String {
    c.in_list("g.id", param)
}

/// `clause` with the listing's order and window.
fn page(q: &ListQuery, clause: &str, order: &str) -> String {
    // The window is written into the statement, not bound: SQLite plans a
    // bound LIMIT or OFFSET by its value, and prepares the statement anew
    // whenever a value of 0 or 1 is bound or replaced (every first page).
    // Numbers only, so nothing of the request reaches the SQL text.
    let limit = q.limit.min(i64::MAX as u64);
    match q.offset.min(i64::MAX as u64) {
        0 => format!("{clause} ORDER BY {order} LIMIT {limit}"),
        offset => format!("{clause} ORDER BY {order} LIMIT {limit} OFFSET {offset}"),
    }
}

fn count(c: &mut dyn Conn, from: &str, clause: &str, values: &[Value]) -> Result<u64, StoreError> {
    let n: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM {from} WHERE {clause}"),
            values,
        )?
        .get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The value of a listing's `total` column (see [`list`]), the last of its
/// first row; `None` without one.
fn total_of(rows: &[Row], total: Option<&str>) -> Result<Option<u64>, StoreError> {
    match (total, rows.first()) {
        (Some(_), Some(r)) => Ok(Some(
            u64::try_from(r.get::<i64>(r.len().saturating_sub(1))?).unwrap_or(0),
        )),
        _ => Ok(None),
    }
}

/// How many columns [`ACCOUNT_COLUMNS`] and [`USER_COLUMNS`] make: a user's
/// [`user_sets`] come after them.
const USER_WIDTH: usize = 16;

/// What a user's row has after [`ACCOUNT_COLUMNS`] and [`USER_COLUMNS`]:
/// its groups (id and name), roles and entitlements (kind and value), each
/// a JSON array. A listing's page, or a user, is then one statement: one
/// round trip to a server, and on PostgreSQL one plan kept for every
/// request (a look-up by a list of ids is planned anew at each).
fn user_sets(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => {
            "(SELECT json_agg(json_build_array(g.id, g.name))::text FROM memberships m \
              JOIN groups g ON g.id = m.group_id WHERE m.account_id = a.id), \
             (SELECT json_agg(r.role)::text FROM account_roles r WHERE r.account_id = a.id), \
             (SELECT json_agg(json_build_array(e.kind, e.value))::text \
              FROM account_entitlements e WHERE e.account_id = a.id)"
        }
        Dialect::Sqlite => {
            "(SELECT json_group_array(json_array(g.id, g.name)) FROM memberships m \
              JOIN groups g ON g.id = m.group_id WHERE m.account_id = a.id), \
             (SELECT json_group_array(r.role) FROM account_roles r WHERE r.account_id = a.id), \
             (SELECT json_group_array(json_array(e.kind, e.value)) \
              FROM account_entitlements e WHERE e.account_id = a.id)"
        }
    }
}

/// The JSON array in column `i` of `r` ([`user_sets`]); none for `NULL`
/// (PostgreSQL's aggregate of no rows).
fn json_list<T: serde::de::DeserializeOwned>(r: &Row, i: usize) -> Result<Vec<T>, StoreError> {
    match r.get::<Option<String>>(i)? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            StoreError::Invalid(format!("a user's groups or grants do not read ({e})"))
        }),
    }
}

/// The most users a page may hold for their groups and grants to come in
/// their own rows ([`user_sets`]); a larger page reads them for all its
/// users at once, in two statements, which costs a server less than a
/// look-up per user.
const SETS_IN_ROW_MAX: u64 = 100;

/// The users `clause` selects (at most `rows_max`), and, with `total`, that
/// column's value too.
fn user_records(
    c: &mut dyn Conn,
    total: Option<&str>,
    clause: &str,
    values: &[Value],
    rows_max: u64,
) -> Result<(Option<u64>, Vec<UserRecord>), StoreError> {
    let in_row = rows_max <= SETS_IN_ROW_MAX;
    let sets = match in_row {
        true => format!(", {}", user_sets(c.dialect())),
        false => String::new(),
    };
    let extra = total.map(|t| format!(", {t}")).unwrap_or_default();
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS}, {USER_COLUMNS}{sets}{extra} FROM accounts a WHERE {clause}"
    );
    let rows = c.query(&sql, values)?;
    let counted = total_of(&rows, total)?;
    let mut users = rows
        .iter()
        .map(|r| user_from_row(r, in_row))
        .collect::<Result<Vec<_>, _>>()?;
    if !in_row && !users.is_empty() {
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let sql = format!(
            "SELECT m.account_id, g.id, g.name FROM memberships m \
             JOIN groups g ON g.id = m.group_id WHERE {}",
            c.in_list("m.account_id", 1)
        );
        let mut by_user: HashMap<i64, Vec<GroupRef>> = HashMap::new();
        for r in c.query(&sql, &[Value::IntList(ids.clone())])? {
            by_user.entry(r.get(0)?).or_default().push(GroupRef {
                id: r.get(1)?,
                name: r.get(2)?,
            });
        }
        for u in &mut users {
            u.groups = by_user.remove(&u.id).unwrap_or_default();
        }
        let mut grants: Vec<(i64, &mut crate::domain::Account)> =
            users.iter_mut().map(|u| (u.id, &mut u.account)).collect();
        fill_grants(c, Some(&ids), &mut grants)?;
    }
    // Groups in name order, byte by byte, as listings sort.
    for u in &mut users {
        u.groups.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok((counted, users))
}

/// A user of a row that starts with [`ACCOUNT_COLUMNS`] and [`USER_COLUMNS`],
/// and with `sets` [`user_sets`]: its groups, and its roles and
/// entitlements sorted. Without, they are left to the caller.
fn user_from_row(r: &Row, sets: bool) -> Result<UserRecord, StoreError> {
    let mut account = account_from_row(r)?;
    let mut groups = Vec::new();
    if sets {
        groups = json_list::<(i64, String)>(r, USER_WIDTH)?
            .into_iter()
            .map(|(id, name)| GroupRef { id, name })
            .collect();
        account.roles = json_list(r, USER_WIDTH + 1)?;
        account.roles.sort();
        account.entitlements = json_list::<(String, String)>(r, USER_WIDTH + 2)?
            .into_iter()
            .map(|(kind, value)| crate::domain::Entitlement { kind, value })
            .collect();
        account.entitlements.sort();
    }
    Ok(UserRecord {
        account,
        id: r.get(11)?,
        created: r.get(12)?,
        modified: r.get(13)?,
        external_id: r.get(14)?,
        display_name: r.get(15)?,
        groups,
    })
}

/// The one user `clause` selects, with its groups and grants.
fn one_user(
    c: &mut dyn Conn,
    clause: &str,
    values: &[Value],
) -> Result<Option<UserRecord>, StoreError> {
    Ok(user_records(c, None, clause, values, 1)?.1.pop())
}

/// The groups `clause` selects, and, with `total`, that column's value too.
fn group_records(
    c: &mut dyn Conn,
    total: Option<&str>,
    clause: &str,
    values: &[Value],
) -> Result<(Option<u64>, Vec<GroupRecord>), StoreError> {
    let extra = total.map(|t| format!(", {t}")).unwrap_or_default();
    let sql = format!(
        "SELECT g.id, g.name, g.type, g.lwia, g.active, g.created_at, \
         coalesce(g.updated_at, g.created_at), g.external_id{extra} FROM groups g WHERE {clause}"
    );
    let rows = c.query(&sql, values)?;
    let counted = total_of(&rows, total)?;
    let mut groups = rows
        .iter()
        .map(|r| {
            Ok(GroupRecord {
                id: r.get(0)?,
                group: Group {
                    name: r.get(1)?,
                    kind: r.get::<String>(2)?.parse().unwrap_or_default(),
                    lwia: r.get::<Option<i64>>(3)?.and_then(|v| u32::try_from(v).ok()),
                    active: r.get(4)?,
                },
                created: r.get(5)?,
                modified: r.get(6)?,
                external_id: r.get(7)?,
                members: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    if groups.is_empty() {
        return Ok((counted, groups));
    }
    let ids: Vec<i64> = groups.iter().map(|g| g.id).collect();
    let sql = format!(
        "SELECT m.group_id, a.id, a.user_name, m.user_manager FROM memberships m \
         JOIN accounts a ON a.id = m.account_id WHERE {} ORDER BY a.user_key",
        c.in_list("m.group_id", 1)
    );
    let mut by_group: HashMap<i64, Vec<MemberRef>> = HashMap::new();
    for r in c.query(&sql, &[Value::IntList(ids)])? {
        by_group.entry(r.get(0)?).or_default().push(MemberRef {
            id: r.get(1)?,
            user_name: r.get(2)?,
            user_manager: r.get(3)?,
        });
    }
    for g in &mut groups {
        g.members = by_group.remove(&g.id).unwrap_or_default();
    }
    Ok((counted, groups))
}

/// Run `f` with the connection's statements cut off at `deadline`; `f`
/// renews the cap (with what is left) before each of its statements, as
/// PostgreSQL's cap counts per statement. The cap is lifted afterwards, and
/// the first error wins.
fn capped<T>(
    c: &mut dyn Conn,
    deadline: Option<Instant>,
    f: impl FnOnce(
        &mut dyn Conn,
        &dyn Fn(&mut dyn Conn) -> Result<(), StoreError>,
    ) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let Some(at) = deadline else {
        return f(c, &|_| Ok(()));
    };
    let out = f(c, &|c| c.deadline(Some(at)));
    // A statement cut off leaves PostgreSQL's transaction failed: lifting
    // the cap then fails too, and says less than the first error.
    let lifted = c.deadline(None);
    let out = out?;
    lifted?;
    Ok(out)
}

/// A listing's total and page, over `from` with rows read by `records`,
/// all within the listing's time cap. The total is a column of the page's
/// statement (one round trip to a server, not two); only an empty page
/// after the first asks for it on its own.
fn list<T>(
    c: &mut dyn Conn,
    q: &ListQuery,
    table: &super::columns::Table,
    scope: impl Fn(&dyn Conn, usize) -> String,
    records: impl FnOnce(
        &mut dyn Conn,
        Option<&str>,
        &str,
        &[Value],
    ) -> Result<(Option<u64>, Vec<T>), StoreError>,
) -> Result<(u64, Vec<T>), StoreError> {
    let (filter, order) = listing(q, table, c.dialect())?;
    let (clause, values) = where_clause(c, filter, q.scope, scope);
    let deadline = q.timeout.map(|t| Instant::now() + t);
    capped(c, deadline, |c, renew| {
        renew(c)?;
        if q.limit == 0 {
            return Ok((count(c, table.from, &clause, &values)?, Vec::new()));
        }
        let total = format!("(SELECT count(*) FROM {} WHERE {clause})", table.from);
        let paged = page(q, &clause, &order);
        let (counted, rows) = records(c, Some(&total), &paged, &values)?;
        let total = match counted {
            Some(n) => n,
            // No row matched at all.
            None if q.offset == 0 => 0,
            None => {
                renew(c)?;
                count(c, table.from, &clause, &values)?
            }
        };
        Ok((total, rows))
    })
}

impl SqlDirectory {
    fn token_from_row(&mut self, r: &Row) -> Result<Token, StoreError> {
        let stored: Option<String> = r.get(2)?;
        Ok(Token {
            name: r.get(0)?,
            digest: r.get(1)?,
            scope: Scope::read(stored.as_deref(), |ids| self.group_refs(ids))?,
            created_at: r.get(3)?,
            revoked_at: r.get(4)?,
        })
    }

    /// `f` over the connection; a store not created yet reads as empty.
    fn read<T: Default>(
        &mut self,
        f: impl FnOnce(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self.conn.as_deref_mut() {
            Some(c) => f(c),
            None => Ok(T::default()),
        }
    }

    /// A listing of `table` read by `f`; a store not created yet lists
    /// nothing, but refuses what the store would refuse.
    fn listed<T: Default>(
        &mut self,
        q: &ListQuery,
        table: &super::columns::Table,
        f: impl FnOnce(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self.conn.as_deref_mut() {
            Some(c) => f(c),
            None => listing(q, table, Dialect::Sqlite).map(|_| T::default()),
        }
    }

    /// The rows of `SELECT {what} WHERE expr IN list`, read by `row`; none
    /// for an empty list or store.
    fn by_list<T>(
        &mut self,
        what: &str,
        expr: &str,
        list: Value,
        row: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        if matches!(&list, Value::IntList(l) if l.is_empty())
            || matches!(&list, Value::TextList(l) if l.is_empty())
        {
            return Ok(Vec::new());
        }
        self.read(|c| {
            let sql = format!("SELECT {what} WHERE {}", c.in_list(expr, 1));
            c.query(&sql, &[list])?.iter().map(row).collect()
        })
    }
}

fn id_name(r: &Row) -> Result<(i64, String), StoreError> {
    Ok((r.get(0)?, r.get(1)?))
}

impl Directory for SqlDirectory {
    fn users(&mut self, q: &ListQuery) -> Result<(u64, Vec<UserRecord>), StoreError> {
        self.snapshot()?;
        self.listed(q, &USERS, |c| {
            list(c, q, &USERS, user_scope, |c, total, clause, values| {
                user_records(c, total, clause, values, q.limit)
            })
        })
    }

    fn user(&mut self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        self.read(|c| one_user(c, "a.id = ?1", &[Value::Int(id)]))
    }

    fn user_ids_where(&mut self, q: &ListQuery) -> Result<Vec<i64>, StoreError> {
        // A time cap is set by a statement of its own, in the snapshot.
        if q.timeout.is_some() {
            self.snapshot()?;
        }
        self.listed(q, &USERS, |c| {
            let (filter, order) = listing(q, &USERS, c.dialect())?;
            let (clause, values) = where_clause(c, filter, q.scope, user_scope);
            let deadline = q.timeout.map(|t| Instant::now() + t);
            capped(c, deadline, |c, renew| {
                renew(c)?;
                let clause = page(q, &clause, &order);
                let sql = format!("SELECT a.id FROM {} WHERE {clause}", USERS.from);
                c.query(&sql, &values)?.iter().map(|r| r.get(0)).collect()
            })
        })
    }

    fn user_named(&mut self, user_name: &str) -> Result<Option<UserRecord>, StoreError> {
        let key = user_name.to_lowercase();
        self.read(|c| one_user(c, "a.user_key = ?1", &[key.into()]))
    }

    fn groups(&mut self, q: &ListQuery) -> Result<(u64, Vec<GroupRecord>), StoreError> {
        self.snapshot()?;
        self.listed(q, &GROUPS, |c| {
            list(c, q, &GROUPS, group_scope, group_records)
        })
    }

    fn group(&mut self, id: i64) -> Result<Option<GroupRecord>, StoreError> {
        self.snapshot()?;
        self.read(|c| {
            Ok(group_records(c, None, "g.id = ?1", &[Value::Int(id)])?
                .1
                .pop())
        })
    }

    fn user_ids(&mut self, user_names: &[String]) -> Result<Vec<(i64, String)>, StoreError> {
        let keys: Vec<String> = user_names.iter().map(|n| n.to_lowercase()).collect();
        let what = "a.id, a.user_name FROM accounts a";
        self.by_list(what, "a.user_key", Value::TextList(keys), id_name)
    }

    fn user_names(&mut self, ids: &[i64]) -> Result<Vec<(i64, String)>, StoreError> {
        let what = "id, user_name FROM accounts";
        self.by_list(what, "id", Value::IntList(ids.to_vec()), id_name)
    }

    fn group_id(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            let row = c.query_opt("SELECT id FROM groups WHERE name = ?1", &[name.into()])?;
            row.map(|r| r.get(0)).transpose()
        })
    }

    fn group_refs(&mut self, ids: &[i64]) -> Result<Vec<GroupRef>, StoreError> {
        let what = "id, name FROM groups";
        self.by_list(what, "id", Value::IntList(ids.to_vec()), |r| {
            let (id, name) = id_name(r)?;
            Ok(GroupRef { id, name })
        })
    }

    fn members_of(&mut self, groups: &[i64], ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        if groups.is_empty() || ids.is_empty() {
            return Ok(Vec::new());
        }
        self.read(|c| {
            // Two lists, however many ids: no limit on placeholders.
            let sql = format!(
                "SELECT DISTINCT account_id FROM memberships WHERE {} AND {}",
                c.in_list("group_id", 1),
                c.in_list("account_id", 2)
            );
            let values = [
                Value::IntList(groups.to_vec()),
                Value::IntList(ids.to_vec()),
            ];
            c.query(&sql, &values)?.iter().map(|r| r.get(0)).collect()
        })
    }

    fn token(&mut self, digest: &str) -> Result<Option<Token>, StoreError> {
        let Some(c) = self.conn.as_deref_mut() else {
            return Ok(None);
        };
        let row = c.query_opt(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE digest = ?1 AND revoked_at IS NULL"),
            &[digest.into()],
        )?;
        row.map(|r| self.token_from_row(&r)).transpose()
    }

    fn tokens(&mut self) -> Result<Vec<Token>, StoreError> {
        self.snapshot()?;
        let Some(c) = self.conn.as_deref_mut() else {
            return Ok(Vec::new());
        };
        let rows = c.query(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY name"),
            &[],
        )?;
        rows.iter().map(|r| self.token_from_row(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::{AttrPath, CompareOp, Field, Filter, Kind, Schema};

    /// `userName` only.
    struct Names;

    impl Schema for Names {
        fn field(&self, path: &AttrPath) -> Option<Field> {
            path.is("userName", None)
                .then_some(Field::new("userName", Kind::Text { case_exact: false }))
        }
    }

    fn query<'a>(filter: Option<&'a Filter>, sort_by: Option<&'a AttrPath>) -> ListQuery<'a> {
        ListQuery {
            schema: &Names,
            filter,
            sort_by,
            descending: false,
            offset: 0,
            limit: 10,
            scope: None,
            timeout: None,
        }
    }

    #[test]
    fn a_store_not_created_yet_reads_empty_and_still_refuses_what_it_cannot_answer() {
        let mut d = SqlDirectory::new(None).unwrap();
        let known = Filter::compare(AttrPath::new("userName"), CompareOp::Eq, "ann");
        assert_eq!(d.users(&query(Some(&known), None)).unwrap().0, 0);
        assert_eq!(d.groups(&query(None, None)).unwrap().0, 0);
        let unknown = Filter::present(AttrPath::new("shoeSize"));
        match d.users(&query(Some(&unknown), None)) {
            Err(StoreError::Filter(e)) => {
                assert_eq!(e.scim_type, "invalidFilter");
                assert!(e.message.contains("'shoeSize'"), "{e}");
            }
            other => panic!("{:?}", other.map(|(n, _)| n)),
        }
        let sort = AttrPath::new("shoeSize");
        match d.users(&query(None, Some(&sort))) {
            Err(StoreError::Filter(e)) => assert_eq!(e.scim_type, "invalidValue"),
            other => panic!("{:?}", other.map(|(n, _)| n)),
        }
        assert!(d.user(1).unwrap().is_none());
        assert!(d.token("digest").unwrap().is_none());
        assert!(d.tokens().unwrap().is_empty());
        assert!(d.user_ids(&["ann".into()]).unwrap().is_empty());
        assert!(d.members_of(&[1], &[1]).unwrap().is_empty());
        d.begin_read().unwrap();
        d.end_read().unwrap();
    }
}
