//! `roster serve`'s reads on the PostgreSQL store: the queries of
//! `../sqlite/directory.rs`, with `$N` placeholders and key lists sent as
//! arrays.

use super::{ACCOUNT_COLUMNS, PgReader, account_from_row, lwia_from, sql_err};
use crate::domain::Group;
use crate::store::StoreError;
use crate::store::directory::{
    Directory, GroupRecord, GroupRef, ListQuery, MemberRef, Scope, Token, UserRecord,
};
use crate::store::sql::columns::{GROUPS, USERS};
use crate::store::sql::filter::{Dialect, Param, Sql};
use crate::store::sql::listing;
use crate::store::sqlite::group_type;
use ::postgres::Row;
use ::postgres::types::ToSql;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// `sql_err`, but a statement cancelled by `statement_timeout` is
/// [`StoreError::TimedOut`].
fn read_err(url: &str) -> impl Fn(::postgres::Error) -> StoreError + '_ {
    move |e| {
        if e.code() == Some(&::postgres::error::SqlState::QUERY_CANCELED) {
            StoreError::TimedOut
        } else {
            sql_err(url)(e)
        }
    }
}

/// A parameter of a listing: the filter's own, the token's groups, or the
/// window.
enum Value<'a> {
    Filter(&'a Param),
    Ids(&'a [i64]),
    Int(i64),
}

impl Value<'_> {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Filter(p) => p.as_postgres(),
            Value::Ids(n) => n,
            Value::Int(i) => i,
        }
    }
}

fn refs<'v>(values: &'v [Value<'_>]) -> Vec<&'v (dyn ToSql + Sync)> {
    values.iter().map(Value::as_sql).collect()
}

/// The WHERE clause of a listing and its parameters. The filter was
/// translated with its placeholders numbered from 1, so the scope's continue
/// after them. `scope_sql` is the condition a scoped token adds, with `{}`
/// for the array of group ids.
fn where_clause<'a>(
    q: &ListQuery<'a>,
    filter: Option<&'a Sql>,
    scope_sql: &str,
) -> (String, Vec<Value<'a>>) {
    let mut conds = Vec::new();
    let mut values = Vec::new();
    if let Some(f) = filter {
        conds.push(format!("({})", f.text));
        values.extend(f.params.iter().map(Value::Filter));
    }
    if let Some(scope) = q.scope {
        conds.push(scope_sql.replace("{}", &format!("${}::bigint[]", values.len() + 1)));
        values.push(Value::Ids(scope));
    }
    let clause = if conds.is_empty() {
        "TRUE".to_string()
    } else {
        conds.join(" AND ")
    };
    (clause, values)
}

fn page_clause(q: &ListQuery, clause: &str, order: &str, values: &mut Vec<Value>) -> String {
    let n = values.len();
    values.push(Value::Int(q.limit.min(i64::MAX as u64) as i64));
    values.push(Value::Int(q.offset.min(i64::MAX as u64) as i64));
    format!(
        "{clause} ORDER BY {} LIMIT ${}::bigint OFFSET ${}::bigint",
        order,
        n + 1,
        n + 2
    )
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

const USER_SCOPE: &str = "EXISTS (SELECT 1 FROM memberships sm JOIN groups sg ON sg.id = sm.group_id \
     WHERE sm.account_id = a.id AND sm.group_id = ANY ({}))";
const GROUP_SCOPE: &str = "g.id = ANY ({})";

const TOKEN_COLUMNS: &str = "name, digest, scope, created_at, revoked_at";

impl PgReader {
    /// A token row, its stored scope read.
    fn token_from_row(&mut self, r: &Row) -> Result<Token, StoreError> {
        let stored: Option<String> = r.get(2);
        Ok(Token {
            name: r.get(0),
            digest: r.get(1),
            scope: Scope::read(stored.as_deref(), |ids| self.group_refs(ids))?,
            created_at: r.get(3),
            revoked_at: r.get(4),
        })
    }
}

impl PgReader {
    fn rows(&mut self, sql: &str, values: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        self.client.query(sql, values).map_err(read_err(&self.url))
    }

    /// Cap the statements that follow, in this read transaction, at what
    /// is left until `deadline`.
    fn limit(&mut self, deadline: Option<Instant>) -> Result<(), StoreError> {
        let Some(deadline) = deadline else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        // 0 would mean "no limit".
        // Never beyond the cap every statement of this process has.
        let cap = super::statement_timeout_ms().map_or(i32::MAX as u128, u128::from);
        let ms = left.as_millis().min(cap).min(i32::MAX as u128) as i32;
        if ms == 0 {
            return Err(StoreError::TimedOut);
        }
        self.client
            .batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
            .map_err(read_err(&self.url))
    }

    fn user_records(
        &mut self,
        clause: &str,
        values: &[Value],
    ) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, a.id, a.created_at, a.updated_at, a.external_id, a.display_name \
             FROM accounts a WHERE {clause}"
        );
        let mut users: Vec<UserRecord> = self
            .rows(&sql, &refs(values))?
            .iter()
            .map(|r| UserRecord {
                account: account_from_row(r),
                id: r.get(11),
                created: r.get(12),
                modified: r.get(13),
                external_id: r.get(14),
                display_name: r.get(15),
                groups: Vec::new(),
            })
            .collect();
        if users.is_empty() {
            return Ok(users);
        }
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let rows = self.rows(
            "SELECT m.account_id, g.id, g.name FROM memberships m JOIN groups g ON g.id = m.group_id \
             WHERE m.account_id = ANY ($1::bigint[]) ORDER BY g.name",
            &[&ids],
        )?;
        let mut by_user: HashMap<i64, Vec<GroupRef>> = HashMap::new();
        for r in &rows {
            by_user.entry(r.get(0)).or_default().push(GroupRef {
                id: r.get(1),
                name: r.get(2),
            });
        }
        for u in &mut users {
            u.groups = by_user.remove(&u.id).unwrap_or_default();
        }
        Ok(users)
    }

    fn group_records(
        &mut self,
        clause: &str,
        values: &[Value],
    ) -> Result<Vec<GroupRecord>, StoreError> {
        let sql = format!(
            "SELECT g.id, g.name, g.type, g.lwia, g.active, g.created_at, coalesce(g.updated_at, g.created_at), \
             g.external_id FROM groups g WHERE {clause}"
        );
        let mut groups: Vec<GroupRecord> = self
            .rows(&sql, &refs(values))?
            .iter()
            .map(|r| GroupRecord {
                id: r.get(0),
                group: Group {
                    name: r.get(1),
                    kind: group_type(r.get(2)),
                    lwia: lwia_from(r.get(3)),
                    active: r.get(4),
                },
                created: r.get(5),
                modified: r.get(6),
                external_id: r.get(7),
                members: Vec::new(),
            })
            .collect();
        if groups.is_empty() {
            return Ok(groups);
        }
        let ids: Vec<i64> = groups.iter().map(|g| g.id).collect();
        let rows = self.rows(
            "SELECT m.group_id, a.id, a.user_name, m.user_manager FROM memberships m \
             JOIN accounts a ON a.id = m.account_id WHERE m.group_id = ANY ($1::bigint[]) \
             ORDER BY a.user_key",
            &[&ids],
        )?;
        let mut by_group: HashMap<i64, Vec<MemberRef>> = HashMap::new();
        for r in &rows {
            by_group.entry(r.get(0)).or_default().push(MemberRef {
                id: r.get(1),
                user_name: r.get(2),
                user_manager: r.get(3),
            });
        }
        for g in &mut groups {
            g.members = by_group.remove(&g.id).unwrap_or_default();
        }
        Ok(groups)
    }

    fn count(&mut self, table: &str, clause: &str, values: &[Value]) -> Result<u64, StoreError> {
        let sql = format!("SELECT count(*) FROM {table} WHERE {clause}");
        self.client
            .query_one(&sql, &refs(values))
            .map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
            .map_err(read_err(&self.url))
    }
}

impl Directory for PgReader {
    fn users(&mut self, q: &ListQuery) -> Result<(u64, Vec<UserRecord>), StoreError> {
        let (filter, order) = listing(q, &USERS, Dialect::Postgres)?;
        if self.empty {
            return Ok((0, Vec::new()));
        }
        let (clause, mut values) = where_clause(q, filter.as_ref(), USER_SCOPE);
        let deadline = deadline(q.timeout);
        self.limit(deadline)?;
        let total = self.count("accounts a", &clause, &values)?;
        if q.limit == 0 {
            return Ok((total, Vec::new()));
        }
        let clause = page_clause(q, &clause, &order, &mut values);
        self.limit(deadline)?;
        Ok((total, self.user_records(&clause, &values)?))
    }

    fn user(&mut self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        if self.empty {
            return Ok(None);
        }
        Ok(self
            .user_records("a.id = $1::bigint", &[Value::Int(id)])?
            .pop())
    }

    fn groups(&mut self, q: &ListQuery) -> Result<(u64, Vec<GroupRecord>), StoreError> {
        let (filter, order) = listing(q, &GROUPS, Dialect::Postgres)?;
        if self.empty {
            return Ok((0, Vec::new()));
        }
        let (clause, mut values) = where_clause(q, filter.as_ref(), GROUP_SCOPE);
        let deadline = deadline(q.timeout);
        self.limit(deadline)?;
        let total = self.count("groups g", &clause, &values)?;
        if q.limit == 0 {
            return Ok((total, Vec::new()));
        }
        let clause = page_clause(q, &clause, &order, &mut values);
        self.limit(deadline)?;
        Ok((total, self.group_records(&clause, &values)?))
    }

    fn group(&mut self, id: i64) -> Result<Option<GroupRecord>, StoreError> {
        if self.empty {
            return Ok(None);
        }
        Ok(self
            .group_records("g.id = $1::bigint", &[Value::Int(id)])?
            .pop())
    }

    fn user_ids(&mut self, user_names: &[String]) -> Result<Vec<(i64, String)>, StoreError> {
        if self.empty || user_names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = user_names.iter().map(|n| n.to_lowercase()).collect();
        let rows = self.rows(
            "SELECT a.id, a.user_name FROM accounts a WHERE a.user_key = ANY ($1::text[])",
            &[&keys],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn user_names(&mut self, ids: &[i64]) -> Result<Vec<(i64, String)>, StoreError> {
        if self.empty || ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.rows(
            "SELECT id, user_name FROM accounts WHERE id = ANY ($1::bigint[])",
            &[&ids],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn group_id(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        if self.empty {
            return Ok(None);
        }
        self.client
            .query_opt("SELECT id FROM groups WHERE name = $1", &[&name])
            .map(|r| r.map(|r| r.get(0)))
            .map_err(sql_err(&self.url))
    }

    fn group_refs(&mut self, ids: &[i64]) -> Result<Vec<GroupRef>, StoreError> {
        if self.empty || ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.rows(
            "SELECT id, name FROM groups WHERE id = ANY ($1::bigint[])",
            &[&ids],
        )?;
        Ok(rows
            .iter()
            .map(|r| GroupRef {
                id: r.get(0),
                name: r.get(1),
            })
            .collect())
    }

    fn members_of(&mut self, groups: &[i64], ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        if self.empty || groups.is_empty() || ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.rows(
            "SELECT DISTINCT account_id FROM memberships \
             WHERE group_id = ANY ($1::bigint[]) AND account_id = ANY ($2::bigint[])",
            &[&groups, &ids],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn token(&mut self, digest: &str) -> Result<Option<Token>, StoreError> {
        if self.empty {
            return Ok(None);
        }
        let row = self
            .client
            .query_opt(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE digest = $1 AND revoked_at IS NULL"
                ),
                &[&digest],
            )
            .map_err(sql_err(&self.url))?;
        row.map(|r| self.token_from_row(&r)).transpose()
    }

    fn tokens(&mut self) -> Result<Vec<Token>, StoreError> {
        if self.empty {
            return Ok(Vec::new());
        }
        let rows = self.rows(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY name"),
            &[],
        )?;
        rows.iter().map(|r| self.token_from_row(r)).collect()
    }
}
