//! Planning's reads, written once: every look-up sends its keys as one
//! list ([`Conn::keys`]), so planning many partners takes a handful of
//! statements, not one per partner.

use super::conn::{Conn, Value, params};
use super::{ACCOUNT_COLUMNS, fill_grants, take_account};
use crate::domain::{Account, Group, Membership, NameDob};
use crate::store::audit::GENESIS;
use crate::store::{AuditEntry, Invitation, Reader, StoreError};

/// A read-only snapshot of a SQL store, or of one that does not exist yet
/// (no connection: everything reads as empty at revision 0).
pub struct SqlReader {
    url: String,
    conn: Option<Box<dyn Conn>>,
}

impl SqlReader {
    pub fn new(url: String, conn: Option<Box<dyn Conn>>) -> Self {
        SqlReader { url, conn }
    }

    /// The connection, in its read transaction; `None` for a store not
    /// created yet.
    pub fn conn(&mut self) -> Option<&mut (dyn Conn + 'static)> {
        self.conn.as_deref_mut()
    }

    /// The key that seals this store's plans, if it has one yet.
    pub fn plan_key(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(None);
        };
        c.query_opt("SELECT key FROM plan_keys WHERE id = 1", &[])?
            .map(|r| r.get(0))
            .transpose()
    }

    /// Accounts joined to the key table of the text lists `lists` (columns
    /// `names`) on `on`, in key order.
    fn accounts_by(
        &mut self,
        lists: Vec<Vec<String>>,
        names: &[&str],
        on: &str,
    ) -> Result<Vec<Account>, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(Vec::new());
        };
        if lists.first().is_none_or(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let params: Vec<usize> = (1..=lists.len()).collect();
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, k.ord, a.id FROM {} {} accounts a ON {on}",
            c.keys(&params, names, "k"),
            c.join()
        );
        let values: Vec<Value> = lists.into_iter().map(Value::TextList).collect();
        let mut found = Vec::new();
        c.query_each(&sql, &values, &mut |r| {
            found.push(((r.get::<i64>(11)?, r.get::<i64>(12)?), take_account(r)?));
            Ok(())
        })?;
        in_key_order(&mut found);
        let ids: Vec<i64> = found.iter().map(|((_, id), _)| *id).collect();
        let mut rows: Vec<(i64, &mut Account)> =
            found.iter_mut().map(|((_, id), a)| (*id, a)).collect();
        fill_grants(c, Some(&ids), &mut rows)?;
        Ok(found.into_iter().map(|(_, a)| a).collect())
    }
}

/// Rows in the order of their keys (then of what follows the key): sorted
/// here, where the rows mostly come in that order already, rather than by
/// the database.
fn in_key_order<K: Ord, T>(rows: &mut [(K, T)]) {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
}

fn json(s: &Option<String>) -> Option<serde_json::Value> {
    s.as_deref().and_then(|s| serde_json::from_str(s).ok())
}

impl Reader for SqlReader {
    fn url(&self) -> &str {
        &self.url
    }

    fn revision(&mut self) -> Result<i64, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(0);
        };
        c.query_one("SELECT value FROM meta WHERE key = 'revision'", &[])?
            .get(0)
    }

    fn accounts_by_user_name(&mut self, names: &[String]) -> Result<Vec<Account>, StoreError> {
        let keys = names.iter().map(|n| n.to_lowercase()).collect();
        self.accounts_by(vec![keys], &["key"], "a.user_key = k.key")
    }

    fn accounts_by_email(&mut self, emails: &[String]) -> Result<Vec<Account>, StoreError> {
        self.accounts_by(vec![emails.to_vec()], &["key"], "a.email_key = k.key")
    }

    fn accounts_by_name_dob(&mut self, keys: &[NameDob]) -> Result<Vec<Account>, StoreError> {
        let column = |f: fn(&NameDob) -> &String| keys.iter().map(f).cloned().collect();
        self.accounts_by(
            vec![
                column(|k| &k.last),
                column(|k| &k.first),
                column(|k| &k.birth_date),
            ],
            &["last", "first", "dob"],
            "a.last_key = k.last AND a.first_key = k.first AND a.birth_date = k.dob",
        )
    }

    fn user_names_like(&mut self, bases: &[String]) -> Result<Vec<String>, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(Vec::new());
        };
        if bases.is_empty() {
            return Ok(Vec::new());
        }
        let bases: Vec<String> = bases.iter().map(|b| b.to_lowercase()).collect();
        let c8 = c.bytewise();
        // ':' sorts right after '9': the range holds the base and the base + digits.
        let sql = format!(
            "SELECT a.user_key, k.ord FROM {} {} accounts a ON a.user_key >= k.base{c8} \
             AND a.user_key < (k.base || ':'){c8}",
            c.keys(&[1], &["base"], "k"),
            c.join()
        );
        let mut found = Vec::new();
        c.query_each(&sql, &params![bases], &mut |r| {
            let key: String = r.take(0)?;
            found.push(((r.get::<i64>(1)?, key), ()));
            Ok(())
        })?;
        in_key_order(&mut found);
        Ok(found.into_iter().map(|((_, key), ())| key).collect())
    }

    fn groups(&mut self, names: Option<&[String]>) -> Result<Vec<Group>, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(Vec::new());
        };
        let rows = match names {
            None => c.query(
                "SELECT g.name, g.type, g.lwia, g.active FROM groups g ORDER BY g.name",
                &[],
            )?,
            Some([]) => return Ok(Vec::new()),
            Some(names) => {
                let sql = format!(
                    "SELECT g.name, g.type, g.lwia, g.active FROM {} \
                     {} groups g ON g.name = k.name ORDER BY k.ord",
                    c.keys(&[1], &["name"], "k"),
                    c.join()
                );
                c.query(&sql, &params![names])?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(Group {
                    name: r.get(0)?,
                    kind: r.get::<String>(1)?.parse().unwrap_or_default(),
                    lwia: r.get::<Option<i64>>(2)?.and_then(|v| u32::try_from(v).ok()),
                    active: r.get(3)?,
                })
            })
            .collect()
    }

    fn memberships(&mut self, groups: &[String]) -> Result<Vec<Membership>, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(Vec::new());
        };
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT k.ord, m.account_id, a.user_name, m.user_manager FROM {k} \
             {j} groups g ON g.name = k.name \
             {j} memberships m ON m.group_id = g.id \
             {j} accounts a ON a.id = m.account_id",
            k = c.keys(&[1], &["name"], "k"),
            j = c.join()
        );
        let mut found = Vec::new();
        c.query_each(&sql, &params![groups], &mut |r| {
            let ord: i64 = r.get(0)?;
            let group = usize::try_from(ord - 1)
                .ok()
                .and_then(|i| groups.get(i))
                .cloned()
                .unwrap_or_default();
            let m = Membership {
                group,
                user_name: r.take(2)?,
                user_manager: r.get(3)?,
            };
            found.push(((ord, r.get::<i64>(1)?), m));
            Ok(())
        })?;
        in_key_order(&mut found);
        Ok(found.into_iter().map(|(_, m)| m).collect())
    }

    fn all_accounts(&mut self) -> Result<Vec<Account>, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        c.query_each(
            &format!("SELECT {ACCOUNT_COLUMNS}, a.id FROM accounts a ORDER BY a.user_key"),
            &[],
            &mut |r| {
                found.push((r.get::<i64>(11)?, take_account(r)?));
                Ok(())
            },
        )?;
        let mut rows: Vec<(i64, &mut Account)> = found.iter_mut().map(|(id, a)| (*id, a)).collect();
        fill_grants(c, None, &mut rows)?;
        Ok(found.into_iter().map(|(_, a)| a).collect())
    }

    fn active_accounts(&mut self) -> Result<u64, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(0);
        };
        let n: i64 = c
            .query_one("SELECT count(*) FROM accounts WHERE active", &[])?
            .get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn in_other_groups(
        &mut self,
        user_names: &[String],
        groups: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(Vec::new());
        };
        if user_names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = user_names.iter().map(|u| u.to_lowercase()).collect();
        let sql = format!(
            "SELECT k.ord FROM {} WHERE EXISTS (SELECT 1 FROM accounts a \
               JOIN memberships m ON m.account_id = a.id JOIN groups g ON g.id = m.group_id \
               WHERE a.user_key = k.key AND NOT ({})) ORDER BY k.ord",
            c.keys(&[1], &["key"], "k"),
            c.in_list("g.name", 2)
        );
        let rows = c.query(&sql, &params![keys, groups])?;
        let mut out = Vec::new();
        for r in rows {
            let ord: i64 = r.get(0)?;
            if let Some(u) = usize::try_from(ord - 1)
                .ok()
                .and_then(|i| user_names.get(i))
            {
                out.push(u.clone());
            }
        }
        Ok(out)
    }

    fn audit(&mut self, since: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(Vec::new());
        };
        let rows = c.query(
            "SELECT seq, revision, at, actor, op, subject, before, after, \
             CASE WHEN seq = 1 THEN ?2 ELSE (SELECT hash FROM audit p WHERE p.seq = audit.seq - 1) END, hash \
             FROM audit WHERE at >= ?1 ORDER BY seq",
            &params![since.unwrap_or(""), GENESIS],
        )?;
        rows.iter()
            .map(|r| {
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
                    prev_hash: r.get::<Option<String>>(8)?.unwrap_or_default(),
                    hash: r.get(9)?,
                    raw,
                })
            })
            .collect()
    }

    fn invitations(&mut self) -> Result<Vec<Invitation>, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(Vec::new());
        };
        c.query(
            "SELECT user_name, email, invited_at, reminded_at FROM accounts \
             WHERE credential = 'invited' AND activation_digest IS NOT NULL \
             AND activated_at IS NULL AND active ORDER BY invited_at, user_key",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(Invitation {
                user_name: r.get(0)?,
                email: r.get(1)?,
                invited_at: r.get(2)?,
                reminded_at: r.get(3)?,
            })
        })
        .collect()
    }

    fn mail_states(&mut self) -> Result<Vec<crate::store::MailState>, StoreError> {
        match self.conn() {
            Some(c) => super::outbox::states(c),
            None => Ok(Vec::new()),
        }
    }

    fn token_holder(
        &mut self,
        digest: &str,
        ttl: std::time::Duration,
        now: &str,
    ) -> Result<crate::store::TokenLookup, StoreError> {
        match self.conn() {
            Some(c) => Ok(super::activate::lookup(c, digest, ttl, now)?.1),
            None => Ok(Err(crate::store::TokenRefused::Unknown)),
        }
    }

    fn activation_times(
        &mut self,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let Some(c) = self.conn() else {
            return Ok(Default::default());
        };
        c.query(
            "SELECT user_key, activated_at FROM accounts WHERE activated_at IS NOT NULL",
            &[],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect()
    }
}
