//! `roster serve`'s reads on the embedded store.

use super::{ACCOUNT_COLUMNS, SqliteReader, account_from_row, group_type, sql_err};
use crate::domain::Group;
use crate::store::StoreError;
use crate::store::directory::{
    Directory, GroupRecord, GroupRef, ListQuery, MemberRef, Scope, Token, UserRecord,
};
use crate::store::sql::columns::{GROUPS, USERS};
use crate::store::sql::filter::{Dialect, Param, Sql};
use crate::store::sql::listing;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params_from_iter};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// SQLite virtual-machine steps between two looks at the clock while a
/// listing runs under a deadline: a few microseconds of work.
const PROGRESS_STEPS: i32 = 1000;

fn value(p: &Param) -> Value {
    match p {
        Param::Text(s) => Value::Text(s.clone()),
        Param::Int(i) => Value::Integer(*i),
        Param::Bool(b) => Value::Integer(i64::from(*b)),
        Param::Real(f) => Value::Real(*f),
    }
}

/// `?N, ?N+1, …` for `n` values starting at `first`.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The WHERE clause of a listing and its parameters. `scope_sql` is the
/// condition a scoped token adds, with `{}` for the group-id placeholders.
fn where_clause<'a>(
    q: &ListQuery<'a>,
    filter: Option<&'a Sql>,
    scope_sql: &str,
) -> (String, Vec<Value>) {
    let mut conds = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(f) = filter {
        conds.push(format!("({})", f.text));
        values.extend(f.params.iter().map(value));
    }
    if let Some(scope) = q.scope {
        let ph = placeholders(values.len() + 1, scope.len().max(1));
        conds.push(scope_sql.replace("{}", &ph));
        if scope.is_empty() {
            values.push(Value::Null);
        }
        values.extend(scope.iter().map(|id| Value::Integer(*id)));
    }
    let clause = if conds.is_empty() {
        "1 = 1".to_string()
    } else {
        conds.join(" AND ")
    };
    (clause, values)
}

impl SqliteReader {
    fn ids_in<T>(
        &mut self,
        sql: &str,
        ids: &[i64],
        row: impl Fn(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = sql.replace("{}", &placeholders(1, ids.len()));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err(&self.url))?;
        let rows = stmt
            .query_map(params_from_iter(ids.iter()), row)
            .map_err(sql_err(&self.url))?;
        rows.collect::<Result<_, _>>().map_err(sql_err(&self.url))
    }

    fn user_records(
        &mut self,
        clause: &str,
        values: Vec<Value>,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, a.id, a.created_at, a.updated_at, a.external_id, a.display_name FROM accounts a WHERE {clause}"
        );
        let url = self.url.clone();
        let err = sql_err(&url);
        let mut users: Vec<UserRecord> = {
            let mut stmt = self.conn.prepare_cached(&sql).map_err(&err)?;
            let rows = stmt
                .query_map(params_from_iter(values), |r| {
                    Ok(UserRecord {
                        account: account_from_row(r)?,
                        id: r.get(11)?,
                        created: r.get(12)?,
                        modified: r.get(13)?,
                        external_id: r.get(14)?,
                        display_name: r.get(15)?,
                        groups: Vec::new(),
                    })
                })
                .map_err(&err)?;
            rows.collect::<Result<_, _>>().map_err(&err)?
        };
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let groups = self.ids_in(
            "SELECT m.account_id, g.id, g.name FROM memberships m JOIN groups g ON g.id = m.group_id \
             WHERE m.account_id IN ({}) ORDER BY g.name",
            &ids,
            |r| Ok((r.get::<_, i64>(0)?, GroupRef { id: r.get(1)?, name: r.get(2)? })),
        )?;
        let mut by_user: HashMap<i64, Vec<GroupRef>> = HashMap::new();
        for (a, g) in groups {
            by_user.entry(a).or_default().push(g);
        }
        for u in &mut users {
            u.groups = by_user.remove(&u.id).unwrap_or_default();
        }
        Ok(users)
    }

    fn group_records(
        &mut self,
        clause: &str,
        values: Vec<Value>,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        let sql = format!(
            "SELECT g.id, g.name, g.type, g.lwia, g.active, g.created_at, coalesce(g.updated_at, g.created_at), \
             g.external_id FROM groups g WHERE {clause}"
        );
        let url = self.url.clone();
        let err = sql_err(&url);
        let mut groups: Vec<GroupRecord> = {
            let mut stmt = self.conn.prepare_cached(&sql).map_err(&err)?;
            let rows = stmt
                .query_map(params_from_iter(values), |r| {
                    Ok(GroupRecord {
                        id: r.get(0)?,
                        group: Group {
                            name: r.get(1)?,
                            kind: group_type(&r.get::<_, String>(2)?),
                            lwia: r.get(3)?,
                            active: r.get(4)?,
                        },
                        created: r.get(5)?,
                        modified: r.get(6)?,
                        external_id: r.get(7)?,
                        members: Vec::new(),
                    })
                })
                .map_err(&err)?;
            rows.collect::<Result<_, _>>().map_err(&err)?
        };
        let ids: Vec<i64> = groups.iter().map(|g| g.id).collect();
        let members = self.ids_in(
            "SELECT m.group_id, a.id, a.user_name, m.user_manager FROM memberships m \
             JOIN accounts a ON a.id = m.account_id WHERE m.group_id IN ({}) ORDER BY a.user_key",
            &ids,
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    MemberRef {
                        id: r.get(1)?,
                        user_name: r.get(2)?,
                        user_manager: r.get(3)?,
                    },
                ))
            },
        )?;
        let mut by_group: HashMap<i64, Vec<MemberRef>> = HashMap::new();
        for (g, m) in members {
            by_group.entry(g).or_default().push(m);
        }
        for g in &mut groups {
            g.members = by_group.remove(&g.id).unwrap_or_default();
        }
        Ok(groups)
    }

    fn count(&mut self, table: &str, clause: &str, values: &[Value]) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE {clause}"),
                params_from_iter(values),
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(sql_err(&self.url))
    }

    /// Run `f` with every statement cut off once `timeout` has passed since
    /// the start: SQLite then interrupts the running statement, and the
    /// error becomes [`StoreError::TimedOut`]. The handler is removed before
    /// the connection goes back to the pool.
    fn capped<T>(
        &mut self,
        timeout: Option<Duration>,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(timeout) = timeout else {
            return f(self);
        };
        let deadline = Instant::now() + timeout;
        self.conn
            .progress_handler(PROGRESS_STEPS, Some(move || Instant::now() >= deadline))
            .map_err(sql_err(&self.url))?;
        let out = f(self);
        let removed = self
            .conn
            .progress_handler(0, None::<fn() -> bool>)
            .map_err(sql_err(&self.url));
        let out = out.map_err(|e| match e {
            StoreError::Sql {
                source: rusqlite::Error::SqliteFailure(f, _),
                ..
            } if f.code == rusqlite::ErrorCode::OperationInterrupted => StoreError::TimedOut,
            other => other,
        })?;
        removed?;
        Ok(out)
    }

    fn page_clause(q: &ListQuery, clause: &str, order: &str, values: &mut Vec<Value>) -> String {
        let n = values.len();
        values.push(Value::Integer(q.limit.min(i64::MAX as u64) as i64));
        values.push(Value::Integer(q.offset.min(i64::MAX as u64) as i64));
        format!(
            "{clause} ORDER BY {} LIMIT ?{} OFFSET ?{}",
            order,
            n + 1,
            n + 2
        )
    }
}

const USER_SCOPE: &str = "EXISTS (SELECT 1 FROM memberships sm JOIN groups sg ON sg.id = sm.group_id \
     WHERE sm.account_id = a.id AND sm.group_id IN ({}))";
const GROUP_SCOPE: &str = "g.id IN ({})";

/// A token row with its scope as stored; [`SqliteReader::token_of`] reads
/// the scope.
type TokenRow = (Token, Option<String>);

fn token_from_row(r: &rusqlite::Row) -> rusqlite::Result<TokenRow> {
    Ok((
        Token {
            name: r.get(0)?,
            digest: r.get(1)?,
            scope: Scope::Admin,
            created_at: r.get(3)?,
            revoked_at: r.get(4)?,
        },
        r.get(2)?,
    ))
}

impl SqliteReader {
    fn token_of(&mut self, (mut t, stored): TokenRow) -> Result<Token, StoreError> {
        t.scope = Scope::read(stored.as_deref(), |ids| self.group_refs(ids))?;
        Ok(t)
    }
}

impl Directory for SqliteReader {
    fn users(&mut self, q: &ListQuery) -> Result<(u64, Vec<UserRecord>), StoreError> {
        let (filter, order) = listing(q, &USERS, Dialect::Sqlite)?;
        let (clause, mut values) = where_clause(q, filter.as_ref(), USER_SCOPE);
        self.capped(q.timeout, |s| {
            let total = s.count("accounts a", &clause, &values)?;
            if q.limit == 0 {
                return Ok((total, Vec::new()));
            }
            let clause = Self::page_clause(q, &clause, &order, &mut values);
            Ok((total, s.user_records(&clause, values)?))
        })
    }

    fn user(&mut self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .user_records("a.id = ?1", vec![Value::Integer(id)])?
            .pop())
    }

    fn groups(&mut self, q: &ListQuery) -> Result<(u64, Vec<GroupRecord>), StoreError> {
        let (filter, order) = listing(q, &GROUPS, Dialect::Sqlite)?;
        let (clause, mut values) = where_clause(q, filter.as_ref(), GROUP_SCOPE);
        self.capped(q.timeout, |s| {
            let total = s.count("groups g", &clause, &values)?;
            if q.limit == 0 {
                return Ok((total, Vec::new()));
            }
            let clause = Self::page_clause(q, &clause, &order, &mut values);
            Ok((total, s.group_records(&clause, values)?))
        })
    }

    fn group(&mut self, id: i64) -> Result<Option<GroupRecord>, StoreError> {
        Ok(self
            .group_records("g.id = ?1", vec![Value::Integer(id)])?
            .pop())
    }

    fn user_ids(&mut self, user_names: &[String]) -> Result<Vec<(i64, String)>, StoreError> {
        let err = sql_err(&self.url);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, user_name FROM accounts WHERE user_key = ?1")
            .map_err(&err)?;
        let mut out = Vec::new();
        for n in user_names {
            if let Some(row) = stmt
                .query_row([n.to_lowercase()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(&err)?
            {
                out.push(row);
            }
        }
        Ok(out)
    }

    fn user_names(&mut self, ids: &[i64]) -> Result<Vec<(i64, String)>, StoreError> {
        self.ids_in(
            "SELECT id, user_name FROM accounts WHERE id IN ({})",
            ids,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn group_id(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT id FROM groups WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql_err(&self.url))
    }

    fn group_refs(&mut self, ids: &[i64]) -> Result<Vec<GroupRef>, StoreError> {
        self.ids_in("SELECT id, name FROM groups WHERE id IN ({})", ids, |r| {
            Ok(GroupRef {
                id: r.get(0)?,
                name: r.get(1)?,
            })
        })
    }

    fn members_of(&mut self, groups: &[i64], ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        if groups.is_empty() || ids.is_empty() {
            return Ok(Vec::new());
        }
        // Two JSON arrays, however many ids: no limit on placeholders.
        let err = sql_err(&self.url);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT account_id FROM memberships \
                 WHERE group_id IN (SELECT value FROM json_each(?1)) \
                 AND account_id IN (SELECT value FROM json_each(?2))",
            )
            .map_err(&err)?;
        let json = |v: &[i64]| serde_json::json!(v).to_string();
        let rows = stmt
            .query_map([json(groups), json(ids)], |r| r.get(0))
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn token(&mut self, digest: &str) -> Result<Option<Token>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT name, digest, scope, created_at, revoked_at FROM tokens \
                 WHERE digest = ?1 AND revoked_at IS NULL",
            )
            .and_then(|mut s| s.query_row([digest], token_from_row).optional())
            .map_err(sql_err(&self.url))?;
        row.map(|r| self.token_of(r)).transpose()
    }

    fn tokens(&mut self) -> Result<Vec<Token>, StoreError> {
        let url = self.url.clone();
        let err = sql_err(&url);
        let rows: Vec<TokenRow> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT name, digest, scope, created_at, revoked_at FROM tokens ORDER BY name",
                )
                .map_err(&err)?;
            let rows = stmt.query_map([], token_from_row).map_err(&err)?;
            rows.collect::<Result<_, _>>().map_err(&err)?
        };
        rows.into_iter().map(|r| self.token_of(r)).collect()
    }
}
