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
//! written is refused then, by name.

use super::conn::{Conn, Value, params};
use super::{ACCOUNT_COLUMNS, account_from_row};
use crate::domain::{GroupType, Profile};
use crate::roster::normalize::{email_key, name_key};
use crate::store::audit::{self, AuditLog, AuditRow, manager_json, masked};
use crate::store::{NewCredential, Owner, ScimField, Session, StoreError};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// Rows of one table waiting to be written together.
#[derive(Default)]
struct Queue {
    values: Vec<Value>,
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
    /// `values` cut into statements: as many rows as fit, then fewer by
    /// powers of two, so a table has a handful of statement texts, each
    /// prepared once.
    /// No statement holds more than `rows_max` rows.
    fn chunks<'v>(&self, values: &'v [Value], rows_max: usize) -> Vec<&'v [Value]> {
        let most = (1 << (PARAMS_MAX / self.width).ilog2()).min(rows_max.max(1));
        let mut out = Vec::new();
        let mut rest = values;
        while !rest.is_empty() {
            let rows = (rest.len() / self.width).min(most);
            let rows = 1 << rows.ilog2();
            let (chunk, tail) = rest.split_at(rows * self.width);
            out.push(chunk);
            rest = tail;
        }
        out
    }

    /// The insert of `n` values' rows.
    fn sql(&self, n: usize) -> String {
        let mut sql = String::from(self.insert);
        for row in 0..n / self.width {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for col in 0..self.width {
                let n = row * self.width + col + 1;
                let _ = write!(sql, "{}?{n}", if col == 0 { "" } else { ", " });
            }
            sql.push(')');
        }
        sql
    }
}

impl Queue {
    /// Write the queued rows, many to a statement. An account queued by
    /// its key (column `account`) gets its id from `ids` first.
    fn write(
        &mut self,
        conn: &mut dyn Conn,
        table: &Table,
        account: usize,
        ids: &HashMap<String, i64>,
    ) -> Result<(), StoreError> {
        for row in self.values.chunks_mut(table.width) {
            if let Value::Text(key) = &row[account] {
                let id = ids.get(key).copied().ok_or_else(|| {
                    StoreError::Invalid(format!("account `{key}` was not written"))
                })?;
                row[account] = Value::Int(id);
            }
        }
        // Chunks come largest first: each text is made once per write.
        let mut sql = (0, String::new());
        for chunk in table.chunks(&self.values, conn.rows_per_insert()) {
            if sql.0 != chunk.len() {
                sql = (chunk.len(), table.sql(chunk.len()));
            }
            conn.execute(&sql.1, chunk)?;
        }
        self.values.clear();
        Ok(())
    }
}

/// A write transaction on a SQL store.
pub struct SqlSession {
    conn: Box<dyn Conn>,
    actor: String,
    now: String,
    log: AuditLog,
    accounts: HashMap<String, i64>,
    groups: HashMap<String, i64>,
    /// The chain as it was at [`Session::savepoint`].
    savepoint: Option<AuditLog>,
    /// Accounts this session created (by key), with the memberships it
    /// gave them.
    created: HashSet<String>,
    added: HashSet<(i64, String)>,
    /// New accounts not written yet: their rows, and their keys with the
    /// names they were given.
    accounts_queue: Queue,
    new_names: HashMap<String, String>,
    memberships: Queue,
    outbox: Queue,
    audit: Queue,
    open: bool,
}

/// A profile as the accounts table stores it: the values and the
/// normalized keys the ladder looks up, in column order (`email` … `role`).
fn profile_values(p: &Profile) -> [Value; 11] {
    params![
        &p.email,
        email_key(&p.email).into_owned(),
        &p.first_name,
        &p.last_name,
        name_key(&p.first_name),
        name_key(&p.last_name),
        p.birth_date.clone(),
        p.phone.clone(),
        p.extension.clone(),
        p.zip.clone(),
        p.role.as_str(),
    ]
}

/// A write that a uniqueness constraint may refuse; `taken` says what is
/// already there.
fn unique<T>(
    result: Result<T, StoreError>,
    taken: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    match result {
        Err(StoreError::Taken(_)) => Err(StoreError::Taken(taken())),
        other => other,
    }
}

const SAVEPOINT: &str = "roster_write";

impl SqlSession {
    /// The session on `conn`, already in its transaction under the lock.
    pub fn begin(mut conn: Box<dyn Conn>, actor: &str, now: &str) -> Result<Self, StoreError> {
        let revision: i64 = conn
            .query_one("SELECT value FROM meta WHERE key = 'revision'", &[])?
            .get(0)?;
        let last =
            match conn.query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])? {
                Some(r) => Some((r.get(0)?, r.get(1)?)),
                None => None,
            };
        Ok(SqlSession {
            conn,
            actor: actor.to_string(),
            now: now.to_string(),
            log: AuditLog::new(revision, last),
            accounts: HashMap::new(),
            groups: HashMap::new(),
            savepoint: None,
            created: HashSet::new(),
            added: HashSet::new(),
            accounts_queue: Queue::default(),
            new_names: HashMap::new(),
            memberships: Queue::default(),
            outbox: Queue::default(),
            audit: Queue::default(),
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

    /// Append an audit row and bump the revision.
    fn record(
        &mut self,
        op: &str,
        subject: &str,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<(), StoreError> {
        let r: AuditRow = self
            .log
            .row(&self.now, &self.actor, op, subject, before, after);
        self.audit.values.extend(params![
            r.seq, r.revision, r.at, r.actor, r.op, r.subject, r.before, r.after, r.hash
        ]);
        let queued = [
            &self.accounts_queue,
            &self.memberships,
            &self.outbox,
            &self.audit,
        ]
        .iter()
        .map(|q| q.values.len())
        .sum::<usize>();
        if queued > QUEUED_MAX {
            self.flush()?;
        }
        Ok(())
    }

    /// Write every queued row.
    fn flush(&mut self) -> Result<(), StoreError> {
        self.write_accounts()?;
        let conn = self.conn.as_mut();
        self.memberships
            .write(conn, &MEMBERSHIPS, 1, &self.accounts)?;
        self.outbox.write(conn, &OUTBOX, 1, &self.accounts)?;
        self.audit.write(conn, &AUDIT, 0, &self.accounts)
    }

    /// Write the queues before an action on this account, if they may hold
    /// rows of it.
    fn flush_for(&mut self, user_name: &str) -> Result<(), StoreError> {
        if self.created.contains(&user_name.to_lowercase()) {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the queued accounts and learn their ids; a name taken in the
    /// store meanwhile is refused by name.
    fn write_accounts(&mut self) -> Result<(), StoreError> {
        if self.new_names.is_empty() {
            return Ok(());
        }
        let rows_max = self.conn.rows_per_insert();
        if rows_max == 1 && self.conn.last_insert_id().is_some() {
            // One row a statement, its id kept by the database: no
            // `RETURNING`, which SQLite runs as a trigger that needs a
            // statement journal for every row.
            let sql = format!(
                "{} ON CONFLICT (user_key) DO NOTHING",
                ACCOUNTS.sql(ACCOUNTS.width)
            );
            for row in self.accounts_queue.values.chunks_mut(ACCOUNTS.width) {
                if self.conn.execute(&sql, row)? == 1
                    && let (Some(id), Value::Text(key)) = (
                        self.conn.last_insert_id(),
                        std::mem::replace(&mut row[1], Value::Null),
                    )
                {
                    self.accounts.insert(key, id);
                }
            }
            self.accounts_queue.values.clear();
        }
        let mut sql = (0, String::new());
        for chunk in ACCOUNTS.chunks(&self.accounts_queue.values, rows_max) {
            if sql.0 != chunk.len() {
                sql = (
                    chunk.len(),
                    format!(
                        "{} ON CONFLICT (user_key) DO NOTHING RETURNING user_key, id",
                        ACCOUNTS.sql(chunk.len())
                    ),
                );
            }
            let accounts = &mut self.accounts;
            self.conn.query_each(&sql.1, chunk, &mut |r| {
                accounts.insert(r.take(0)?, r.get(1)?);
                Ok(())
            })?;
        }
        self.accounts_queue.values.clear();
        let names = std::mem::take(&mut self.new_names);
        match names
            .iter()
            .find(|(key, _)| !self.accounts.contains_key(*key))
        {
            Some((_, name)) => Err(StoreError::Taken(format!(
                "account `{name}` already exists in the store"
            ))),
            None => Ok(()),
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
        let id = self
            .conn
            .query_opt(
                "SELECT id FROM accounts WHERE user_key = ?1",
                &params![&key],
            )?
            .ok_or_else(|| {
                StoreError::Invalid(format!("account `{user_name}` does not exist in the store"))
            })?
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
            .ok_or_else(|| {
                StoreError::Invalid(format!("group `{name}` does not exist in the store"))
            })?
            .get(0)?;
        self.groups.insert(name.to_string(), id);
        Ok(id)
    }

    fn set_active(&mut self, user_name: &str, active: bool) -> Result<(), StoreError> {
        self.flush_for(user_name)?;
        let id = self.account_id(user_name)?;
        let changed = self.conn.execute(
            "UPDATE accounts SET active = ?2, updated_at = ?3 WHERE id = ?1 AND active = ?4",
            &params![id, active, &self.now, !active],
        )?;
        if changed != 1 {
            return Err(audit::already_active(user_name, active));
        }
        if !active {
            // A deactivated account is not invited (again).
            self.conn.execute(
                "DELETE FROM outbox WHERE account_id = ?1 AND sent_at IS NULL",
                &params![id],
            )?;
        }
        let (op, before, after) = audit::activation(active);
        self.record(op, user_name, Some(before), Some(after))
    }

    /// An account name that no longer names what this session knew by it.
    fn forget(&mut self, key: &str) {
        self.accounts.remove(key);
        self.created.remove(key);
        self.added.retain(|(_, k)| k != key);
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
        let id: i64 = unique(row, || {
            format!("group `{name}` already exists in the store")
        })?
        .get(0)?;
        self.groups.insert(name.to_string(), id);
        self.record(
            "create_group",
            name,
            None,
            Some(&serde_json::json!({ "type": kind.as_str(), "lwia": lwia }).to_string()),
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
        let mut values = params![user_name, &key].to_vec();
        values.extend(profile_values(profile));
        values.extend(params![
            true,
            state,
            hash,
            digest.map(|(d, _)| d),
            digest.map(|_| &self.now),
            &self.now
        ]);
        values.push(Value::from(&self.now));
        if self.accounts.contains_key(&key) || self.new_names.contains_key(&key) {
            return Err(StoreError::Taken(format!(
                "account `{user_name}` already exists in the store"
            )));
        }
        self.accounts_queue.values.extend(values);
        self.new_names.insert(key.clone(), user_name.to_string());
        // Purged of what an account of this name deleted or renamed in
        // this session had.
        self.added.retain(|(_, k)| *k != key);
        self.created.insert(key.clone());
        if let Some((_, token)) = digest {
            self.outbox
                .values
                .extend(params!["invitation", key, &profile.email, token, &self.now]);
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
        let row = self
            .conn
            .query_opt(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.id = ?1"),
                &params![id],
            )?
            .ok_or_else(|| {
                StoreError::Invalid(format!("account `{user_name}` does not exist in the store"))
            })?;
        let before = account_from_row(&row)?;
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
        let mut values = vec![Value::Int(id)];
        values.extend(profile_values(&p));
        values.push(Value::from(&self.now));
        self.conn.execute(
            "UPDATE accounts SET email = ?2, email_key = ?3, first_name = ?4, last_name = ?5, \
             first_key = ?6, last_key = ?7, birth_date = ?8, phone = ?9, extension = ?10, zip = ?11, \
             role = ?12, updated_at = ?13 WHERE id = ?1",
            &values,
        )?;
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
        let key = user_name.to_lowercase();
        let taken = || format!("`{user_name}` is already a member of `{group}`");
        if self.created.contains(&key) {
            let g = self.group_id(group)?;
            // Nobody else writes while this session holds the lock: the
            // new account has only the memberships this session gave it.
            if !self.added.insert((g, key.clone())) {
                return Err(StoreError::Taken(taken()));
            }
            let account = match self.accounts.get(&key) {
                Some(id) => Value::Int(*id),
                None => Value::Text(key),
            };
            self.memberships
                .values
                .extend([Value::Int(g), account, Value::Bool(user_manager)]);
        } else {
            let a = self.account_id(user_name)?;
            let g = self.group_id(group)?;
            let written = self.conn.execute(
                "INSERT INTO memberships (group_id, account_id, user_manager) VALUES (?1, ?2, ?3)",
                &params![g, a, user_manager],
            );
            unique(written, taken)?;
        }
        self.record(
            "add_membership",
            &audit::membership_subject(user_name, group),
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
        self.flush_for(user_name)?;
        let a = self.account_id(user_name)?;
        let g = self.group_id(group)?;
        let changed = self.conn.execute(
            "UPDATE memberships SET user_manager = ?3 \
             WHERE group_id = ?1 AND account_id = ?2 AND user_manager = ?4",
            &params![g, a, user_manager, !user_manager],
        )?;
        if changed != 1 {
            return Err(audit::no_grant_to_change(user_name, group, user_manager));
        }
        let (op, before, after) = audit::grant(user_manager);
        self.record(
            op,
            &audit::membership_subject(user_name, group),
            Some(before),
            Some(after),
        )
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
            return Err(StoreError::Invalid(format!(
                "`{user_name}` is not a member of `{group}`"
            )));
        };
        self.record(
            "remove_membership",
            &audit::membership_subject(user_name, group),
            Some(manager_json(was)),
            None,
        )
    }

    fn rename_account(&mut self, user_name: &str, new_name: &str) -> Result<(), StoreError> {
        self.flush_for(user_name)?;
        let id = self.account_id(user_name)?;
        let key = new_name.to_lowercase();
        let written = self.conn.execute(
            "UPDATE accounts SET user_name = ?2, user_key = ?3, updated_at = ?4 WHERE id = ?1",
            &params![id, new_name, &key, &self.now],
        );
        unique(written, || {
            format!("account `{new_name}` already exists in the store")
        })?;
        self.forget(&user_name.to_lowercase());
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
        self.flush_for(user_name)?;
        let id = self.account_id(user_name)?;
        self.delete_by_id(
            &[
                "DELETE FROM memberships WHERE account_id = ?1",
                "DELETE FROM outbox WHERE account_id = ?1",
                "DELETE FROM accounts WHERE id = ?1",
            ],
            id,
        )?;
        self.forget(&user_name.to_lowercase());
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
        let row = self
            .conn
            .query_opt("SELECT type, lwia FROM groups WHERE id = ?1", &params![id])?
            .ok_or_else(|| {
                StoreError::Invalid(format!("group `{name}` does not exist in the store"))
            })?;
        let before = serde_json::json!({
            "name": name,
            "type": row.get::<String>(0)?,
            "lwia": row.get::<Option<i64>>(1)?.and_then(|v| u32::try_from(v).ok()),
        });
        let written = self.conn.execute(
            "UPDATE groups SET name = ?2, type = ?3, lwia = ?4, updated_at = ?5 WHERE id = ?1",
            &params![id, new_name, kind.as_str(), lwia, &self.now],
        );
        unique(written, || {
            format!("group `{new_name}` already exists in the store")
        })?;
        self.groups.remove(name);
        self.groups.insert(new_name.to_string(), id);
        let after = serde_json::json!({"name": new_name, "type": kind.as_str(), "lwia": lwia});
        self.record(
            "update_group",
            name,
            Some(&before.to_string()),
            Some(&after.to_string()),
        )
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
        self.conn.execute(&sql, &params![id, value, &self.now])?;
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
        let written = self.conn.execute(
            "INSERT INTO tokens (name, digest, scope, created_at) VALUES (?1, ?2, ?3, ?4)",
            &params![name, digest, stored, &self.now],
        );
        unique(written, || {
            format!("a token named `{name}` already exists; pick another name or revoke it first")
        })?;
        let after = serde_json::json!({ "scope": scope, "group_ids": ids }).to_string();
        self.record("create_token", name, None, Some(&after))
    }

    fn revoke_token(&mut self, name: &str) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            &params![name, &self.now],
        )?;
        if changed != 1 {
            return Err(StoreError::Invalid(format!(
                "no live token named `{name}`; `roster token list` shows them"
            )));
        }
        self.record("revoke_token", name, None, None)
    }

    fn created_account(&mut self, user_name: &str) -> Result<Option<(i64, String)>, StoreError> {
        let key = user_name.to_lowercase();
        if !self.created.contains(&key) {
            return Ok(None);
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
        self.conn.batch(&format!("SAVEPOINT {SAVEPOINT}"))?;
        self.savepoint = Some(self.log.clone());
        Ok(())
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        let Some(log) = self.savepoint.take() else {
            return Err(StoreError::Invalid("no savepoint to roll back to".into()));
        };
        self.conn.batch(&format!(
            "ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"
        ))?;
        self.log = log;
        // Ids cached since may name rows that are gone, or names that
        // changed back: look them up again. What was queued since is
        // undone too (the queues were empty at the savepoint).
        self.accounts.clear();
        self.groups.clear();
        self.created.clear();
        self.added.clear();
        self.accounts_queue.values.clear();
        self.new_names.clear();
        self.memberships.values.clear();
        self.outbox.values.clear();
        self.audit.values.clear();
        Ok(())
    }

    fn release_savepoint(&mut self) -> Result<(), StoreError> {
        if self.savepoint.is_none() {
            return Err(StoreError::Invalid("no savepoint to release".into()));
        }
        // Rows refused when the queue is written (a name taken) leave the
        // savepoint set, for the caller to roll back to.
        self.flush()?;
        self.conn.batch(&format!("RELEASE SAVEPOINT {SAVEPOINT}"))?;
        self.savepoint = None;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<i64, StoreError> {
        self.flush()?;
        let revision = self.log.revision;
        self.conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'revision'",
            &params![revision],
        )?;
        self.conn.batch("COMMIT")?;
        self.open = false;
        Ok(revision)
    }
}

impl Drop for SqlSession {
    fn drop(&mut self) {
        if self.open {
            // Nothing of an unfinished apply lands (and the lock is free
            // at once).
            let _ = self.conn.batch("ROLLBACK");
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
            role: Default::default(),
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
