//! A store kept in memory: the same observable behaviour as the SQL stores
//! (revisions, the audit chain, one writer at a time, sessions that land
//! whole or not at all) without a file or a server, so the planning and
//! applying logic can be tested in-process. It lives as long as its handle;
//! nothing is written anywhere.
//!
//! The committed state is one immutable value: a reader shares it (a
//! snapshot for free), a session works on its own copy and a commit puts the
//! copy in its place. Copying the whole state per session and savepoint
//! keeps the code plain; it is meant for stores of test size.

use super::audit::{AuditLog, Change, RowText};
use super::{
    AuditEntry, Grant, Invitation, Mail, MailKind, NewCredential, Options, Reader, Served, Session,
    Store, StoreError, TokenHolder, TokenLookup, TokenRefused,
};
use crate::domain::{Account, CredentialState, Group, GroupType, Membership, NameDob, Profile};
use crate::roster::normalize::{email_key, name_key};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The URL an in-memory store reports (roster's CLI does not open it).
pub const URL: &str = "memory:";

/// A store held in this process's memory.
pub struct MemoryStore {
    lock_timeout: Duration,
    shared: Arc<Shared>,
}

struct Shared {
    /// The committed state.
    committed: Mutex<Arc<Data>>,
    /// Whether a session holds the write lock.
    writing: Mutex<bool>,
    released: Condvar,
}

/// Everything a store holds. Ids are never reused, as in the SQL stores.
#[derive(Clone, Default)]
struct Data {
    revision: i64,
    accounts: BTreeMap<i64, AccountRow>,
    /// Lower-cased user name → account id.
    user_keys: BTreeMap<String, i64>,
    groups: BTreeMap<i64, Group>,
    /// Group name (exact) → group id.
    group_names: BTreeMap<String, i64>,
    /// (group id, account id) → user manager.
    memberships: BTreeMap<(i64, i64), bool>,
    outbox: Vec<Outgoing>,
    tokens: Vec<TokenRow>,
    audit: Vec<AuditEntry>,
    plan_key: Option<Vec<u8>>,
    last_account: i64,
    last_group: i64,
    last_mail: i64,
}

#[derive(Clone)]
struct AccountRow {
    /// The account, its case manager left out: that is `case_manager`.
    account: Account,
    /// The id of the account that oversees this one.
    case_manager: Option<i64>,
    /// Invited accounts: when the invitation was made.
    invited_at: Option<String>,
    /// The current one-time token's digest and when it was made; when the
    /// last reminder and reset were queued.
    digest: Option<String>,
    token_issued_at: Option<String>,
    reminded_at: Option<String>,
    reset_requested_at: Option<String>,
    password_hash: Option<String>,
    activated_at: Option<String>,
}

/// A mail waiting for delivery, with its one-time token, and how its
/// delivery went (SPEC §10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    id: i64,
    account: i64,
    pub kind: MailKind,
    pub recipient: String,
    /// Empty once sent or failed.
    pub token: String,
    sent_at: Option<String>,
    failed_at: Option<String>,
    error: Option<String>,
    attempts: i64,
    next_try_at: Option<String>,
    claimed_until: Option<String>,
}

impl Outgoing {
    /// Neither sent nor failed yet.
    fn waiting(&self) -> bool {
        self.sent_at.is_none() && self.failed_at.is_none()
    }
}

#[derive(Clone)]
struct TokenRow {
    name: String,
    digest: String,
    revoked: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are replaced whole, never left half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 0, whose writers wait as long as
    /// [`Options::default`] says.
    pub fn new() -> Self {
        Self::with_options(&Options::default())
    }

    pub fn with_options(options: &Options) -> Self {
        MemoryStore {
            lock_timeout: options.lock_timeout,
            shared: Arc::new(Shared {
                committed: Mutex::new(Arc::new(Data::default())),
                writing: Mutex::new(false),
                released: Condvar::new(),
            }),
        }
    }

    /// The mails waiting for delivery (the outbox of the SQL stores).
    pub fn outbox(&self) -> Vec<Outgoing> {
        lock(&self.shared.committed)
            .outbox
            .iter()
            .filter(|m| m.waiting())
            .cloned()
            .collect()
    }

    fn snapshot(&self) -> Arc<Data> {
        lock(&self.shared.committed).clone()
    }

    /// Take the write lock, waiting at most the lock timeout.
    fn write_lock(&self) -> Result<WriteLock, StoreError> {
        let started = Instant::now();
        let mut writing = lock(&self.shared.writing);
        while *writing {
            let left = self.lock_timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(StoreError::Locked {
                    url: URL.to_string(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            writing = self
                .shared
                .released
                .wait_timeout(writing, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *writing = true;
        Ok(WriteLock(self.shared.clone()))
    }

    fn session(&self, actor: &str, now: &str) -> Result<MemorySession, StoreError> {
        let held = self.write_lock()?;
        Ok(MemorySession {
            data: (*self.snapshot()).clone(),
            saved: None,
            actor: actor.to_string(),
            now: now.to_string(),
            held,
        })
    }
}

/// The write lock, released when dropped (commit or not).
struct WriteLock(Arc<Shared>);

impl Drop for WriteLock {
    fn drop(&mut self) {
        *lock(&self.0.writing) = false;
        self.0.released.notify_one();
    }
}

impl Store for MemoryStore {
    fn url(&self) -> &str {
        URL
    }

    fn reader(&self) -> Result<Box<dyn Reader>, StoreError> {
        Ok(Box::new(MemoryReader {
            data: self.snapshot(),
        }))
    }

    fn begin(&self, actor: &str, now: &str) -> Result<Box<dyn Session>, StoreError> {
        Ok(Box::new(self.session(actor, now)?))
    }

    fn plan_key(&self, create: bool) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self.snapshot().plan_key.clone();
        if found.is_some() || !create {
            return Ok(found);
        }
        // Under the write lock, as the SQL stores make theirs: two first
        // plans agree on one key.
        let mut s = self.session("roster", &super::now())?;
        let key = s.data.plan_key.get_or_insert_with(|| {
            let mut fresh = vec![0u8; 32];
            rand::fill(&mut fresh[..]);
            fresh
        });
        let key = key.clone();
        Box::new(s).commit()?;
        Ok(Some(key))
    }

    fn served(&self) -> Result<Box<dyn Served>, StoreError> {
        Err(StoreError::Invalid(
            "an in-memory store cannot be served over SCIM".into(),
        ))
    }
}

/// A snapshot for planning: the committed state when it was opened.
struct MemoryReader {
    data: Arc<Data>,
}

impl Data {
    fn accounts_where(&self, mut keep: impl FnMut(&Account) -> bool) -> Vec<Account> {
        self.accounts
            .values()
            .filter(|r| keep(&r.account))
            .map(|r| self.read(r))
            .collect()
    }

    /// The account of `row` as readers see it, with its case manager.
    fn read(&self, row: &AccountRow) -> Account {
        let mut a = row.account.clone();
        a.case_manager = row
            .case_manager
            .and_then(|id| self.accounts.get(&id))
            .map(|m| m.account.user_name.clone());
        a
    }

    fn account_id(&self, user_name: &str) -> Result<i64, StoreError> {
        self.user_keys
            .get(&user_name.to_lowercase())
            .copied()
            .ok_or_else(|| StoreError::no_account(user_name))
    }

    fn group_id(&self, name: &str) -> Result<i64, StoreError> {
        self.group_names
            .get(name)
            .copied()
            .ok_or_else(|| StoreError::no_group(name))
    }

    fn account_mut(&mut self, id: i64) -> &mut AccountRow {
        // Ids come from `user_keys`, which holds only ids of `accounts`.
        self.accounts.get_mut(&id).expect("indexed account exists")
    }

    fn mail_mut(&mut self, id: i64) -> Option<&mut Outgoing> {
        self.outbox.iter_mut().find(|m| m.id == id)
    }

    /// Drop the account's mail not sent or failed yet.
    fn drop_unsent(&mut self, account: i64) {
        self.outbox.retain(|m| m.account != account || !m.waiting());
    }

    /// Queue a mail (ids never reused: one after the last).
    fn push_mail(&mut self, account: i64, kind: MailKind, to: &str, token: String) {
        self.last_mail += 1;
        let id = self.last_mail;
        self.outbox.push(Outgoing {
            id,
            account,
            kind,
            recipient: to.to_string(),
            token,
            ..Outgoing::default()
        });
    }
}

impl Reader for MemoryReader {
    fn url(&self) -> &str {
        URL
    }

    fn revision(&mut self) -> Result<i64, StoreError> {
        Ok(self.data.revision)
    }

    fn accounts_by_user_name(&mut self, names: &[String]) -> Result<Vec<Account>, StoreError> {
        let d = &self.data;
        Ok(names
            .iter()
            .filter_map(|n| d.user_keys.get(&n.to_lowercase()))
            .map(|id| d.read(&d.accounts[id]))
            .collect())
    }

    fn accounts_by_email(&mut self, emails: &[String]) -> Result<Vec<Account>, StoreError> {
        let d = &self.data;
        Ok(emails
            .iter()
            .flat_map(|e| d.accounts_where(|a| email_key(&a.profile.email) == e.as_str()))
            .collect())
    }

    fn accounts_by_name_dob(&mut self, keys: &[NameDob]) -> Result<Vec<Account>, StoreError> {
        let d = &self.data;
        Ok(keys
            .iter()
            .flat_map(|k| {
                d.accounts_where(|a| {
                    a.profile.birth_date.as_deref() == Some(k.birth_date.as_str())
                        && name_key(&a.profile.last_name) == k.last
                        && name_key(&a.profile.first_name) == k.first
                })
            })
            .collect())
    }

    fn user_names_like(&mut self, bases: &[String]) -> Result<Vec<String>, StoreError> {
        // The SQL stores' range: the base up to the base + ':' (which sorts
        // right after '9'), so the base and the base + digits.
        let mut out = Vec::new();
        for b in bases {
            let low = b.to_lowercase();
            let high = format!("{low}:");
            out.extend(self.data.user_keys.range(low..high).map(|(k, _)| k.clone()));
        }
        Ok(out)
    }

    fn groups(&mut self, names: Option<&[String]>) -> Result<Vec<Group>, StoreError> {
        let d = &self.data;
        Ok(match names {
            None => d
                .group_names
                .values()
                .map(|id| d.groups[id].clone())
                .collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| d.group_names.get(n))
                .map(|id| d.groups[id].clone())
                .collect(),
        })
    }

    fn memberships(&mut self, groups: &[String]) -> Result<Vec<Membership>, StoreError> {
        let d = &self.data;
        let mut out = Vec::new();
        for g in groups {
            let Some(&gid) = d.group_names.get(g) else {
                continue;
            };
            out.extend(d.memberships.range((gid, i64::MIN)..=(gid, i64::MAX)).map(
                |(&(_, aid), &user_manager)| Membership {
                    group: g.clone(),
                    user_name: d.accounts[&aid].account.user_name.clone(),
                    user_manager,
                },
            ));
        }
        Ok(out)
    }

    fn all_accounts(&mut self) -> Result<Vec<Account>, StoreError> {
        let d = &self.data;
        Ok(d.user_keys
            .values()
            .map(|id| d.read(&d.accounts[id]))
            .collect())
    }

    fn active_accounts(&mut self) -> Result<u64, StoreError> {
        Ok(self
            .data
            .accounts
            .values()
            .filter(|r| r.account.active)
            .count() as u64)
    }

    fn in_other_groups(
        &mut self,
        user_names: &[String],
        groups: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let d = &self.data;
        let managed: HashSet<&str> = groups.iter().map(String::as_str).collect();
        Ok(user_names
            .iter()
            .filter(|u| {
                d.user_keys.get(&u.to_lowercase()).is_some_and(|&aid| {
                    d.memberships.keys().any(|&(gid, a)| {
                        a == aid && !managed.contains(d.groups[&gid].name.as_str())
                    })
                })
            })
            .cloned()
            .collect())
    }

    fn audit(&mut self, since: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        let since = since.unwrap_or("");
        Ok(self
            .data
            .audit
            .iter()
            .filter(|e| e.at.as_str() >= since)
            .cloned()
            .collect())
    }

    fn token_holder(
        &mut self,
        digest: &str,
        ttl: Duration,
        now: &str,
    ) -> Result<TokenLookup, StoreError> {
        Ok(self.data.token_holder(digest, ttl, now).1)
    }

    fn activation_times(
        &mut self,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        Ok(self
            .data
            .user_keys
            .iter()
            .filter_map(|(key, id)| {
                Some((key.clone(), self.data.accounts[id].activated_at.clone()?))
            })
            .collect())
    }

    fn invitations(&mut self) -> Result<Vec<Invitation>, StoreError> {
        let d = &self.data;
        // In user-name order, then (a stable sort) by invitation time.
        let mut out: Vec<Invitation> = (d.user_keys.values().map(|id| &d.accounts[id]))
            .filter(|r| r.account.active && r.account.credential == CredentialState::Invited)
            .filter_map(|r| {
                Some(Invitation {
                    user_name: r.account.user_name.clone(),
                    email: r.account.profile.email.clone(),
                    invited_at: r.invited_at.clone()?,
                    reminded_at: r.reminded_at.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.invited_at.cmp(&b.invited_at));
        Ok(out)
    }
}

/// Insert `v` into (or remove it from) the sorted `list`; whether that
/// changed it.
fn change<T: Ord>(list: &mut Vec<T>, v: T, insert: bool) -> bool {
    match (list.binary_search(&v), insert) {
        (Err(at), true) => {
            list.insert(at, v);
            true
        }
        (Ok(at), false) => {
            list.remove(at);
            true
        }
        _ => false,
    }
}

/// A write session: a copy of the committed state, put in its place by
/// [`Session::commit`]; dropped, the copy and the lock go.
struct MemorySession {
    data: Data,
    /// The state at [`Session::savepoint`].
    saved: Option<Data>,
    actor: String,
    now: String,
    held: WriteLock,
}

impl MemorySession {
    /// Append the audit row of `change` and bump the revision.
    fn record(&mut self, change: Change) -> Result<(), StoreError> {
        let d = &mut self.data;
        let last = d.audit.last().map(|e| (e.seq, e.hash.clone()));
        let mut log = AuditLog::new(d.revision, last);
        let prev_hash = log.prev_hash.clone();
        let mut text = RowText::default();
        let row = log.row(&self.now, &self.actor, &change, &mut text);
        d.revision = row.revision;
        d.audit.push(row.entry(prev_hash));
        Ok(())
    }

    fn membership(&self, user_name: &str, group: &str) -> Result<(i64, i64), StoreError> {
        Ok((self.data.group_id(group)?, self.data.account_id(user_name)?))
    }
}

impl Session for MemorySession {
    fn revision(&mut self) -> Result<i64, StoreError> {
        Ok(self.data.revision)
    }

    fn create_group(
        &mut self,
        name: &str,
        kind: GroupType,
        lwia: Option<u32>,
    ) -> Result<(), StoreError> {
        let d = &mut self.data;
        if d.group_names.contains_key(name) {
            return Err(StoreError::group_taken(name));
        }
        d.last_group += 1;
        let group = Group {
            name: name.to_string(),
            kind,
            lwia,
            active: true,
        };
        d.groups.insert(d.last_group, group);
        d.group_names.insert(name.to_string(), d.last_group);
        self.record(Change::CreateGroup { name, kind, lwia })
    }

    fn create_account_with_roles(
        &mut self,
        user_name: &str,
        profile: &Profile,
        roles: &[String],
        credential: NewCredential,
    ) -> Result<(), StoreError> {
        let key = user_name.to_lowercase();
        let d = &mut self.data;
        if d.user_keys.contains_key(&key) {
            return Err(StoreError::account_taken(user_name));
        }
        d.last_account += 1;
        let id = d.last_account;
        let state = credential.state();
        let mut account = Account::new(user_name, profile.clone(), state);
        account.roles = crate::domain::sorted_unique(roles.to_vec());
        let roles = account.roles.clone();
        let mut row = AccountRow {
            account,
            case_manager: None,
            invited_at: None,
            digest: None,
            token_issued_at: None,
            reminded_at: None,
            reset_requested_at: None,
            password_hash: None,
            activated_at: None,
        };
        match credential {
            NewCredential::Invite {
                token,
                token_digest,
            } => {
                row.invited_at = Some(self.now.clone());
                row.token_issued_at = Some(self.now.clone());
                row.digest = Some(token_digest);
                d.push_mail(id, MailKind::Invitation, &profile.email, token);
            }
            NewCredential::Password { hash, .. } => row.password_hash = Some(hash),
            NewCredential::Sso => {}
        }
        d.accounts.insert(id, row);
        d.user_keys.insert(key, id);
        self.record(Change::CreateAccount {
            user_name,
            profile,
            credential: state,
            roles: &roles,
        })
    }

    fn set_active(&mut self, user_name: &str, active: bool) -> Result<(), StoreError> {
        let id = self.data.account_id(user_name)?;
        let row = self.data.account_mut(id);
        if row.account.active == active {
            return Err(StoreError::already_active(user_name, active));
        }
        row.account.active = active;
        if !active {
            // A deactivated account is not invited (again).
            self.data.drop_unsent(id);
        }
        self.record(Change::SetActive { user_name, active })
    }

    fn update_profile(
        &mut self,
        user_name: &str,
        profile: &Profile,
        fields: &[String],
    ) -> Result<(), StoreError> {
        let id = self.data.account_id(user_name)?;
        let before = self.data.accounts[&id].account.profile.clone();
        let after = before
            .with_fields(profile, fields)
            .map_err(StoreError::Invalid)?;
        self.data.account_mut(id).account.profile = after.clone();
        self.record(Change::UpdateProfile {
            user_name,
            before: &before,
            after: &after,
        })
    }

    fn add_membership(
        &mut self,
        user_name: &str,
        group: &str,
        user_manager: bool,
    ) -> Result<(), StoreError> {
        let key = self.membership(user_name, group)?;
        if self.data.memberships.contains_key(&key) {
            return Err(StoreError::already_member(user_name, group));
        }
        self.data.memberships.insert(key, user_manager);
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
        let key = self.membership(user_name, group)?;
        match self.data.memberships.get_mut(&key) {
            Some(um) if *um != user_manager => *um = user_manager,
            _ => {
                return Err(StoreError::no_grant_to_change(
                    user_name,
                    group,
                    user_manager,
                ));
            }
        }
        self.record(Change::SetUserManager {
            user_name,
            group,
            user_manager,
        })
    }

    fn remove_membership(&mut self, user_name: &str, group: &str) -> Result<(), StoreError> {
        let key = self.membership(user_name, group)?;
        let Some(was) = self.data.memberships.remove(&key) else {
            return Err(StoreError::not_member(user_name, group));
        };
        self.record(Change::RemoveMembership {
            user_name,
            group,
            was,
        })
    }

    fn rename_account(&mut self, user_name: &str, new_name: &str) -> Result<(), StoreError> {
        let id = self.data.account_id(user_name)?;
        let new_key = new_name.to_lowercase();
        if self.data.user_keys.get(&new_key).is_some_and(|&o| o != id) {
            return Err(StoreError::account_taken(new_name));
        }
        self.data.user_keys.remove(&user_name.to_lowercase());
        self.data.user_keys.insert(new_key, id);
        self.data.account_mut(id).account.user_name = new_name.to_string();
        self.record(Change::RenameAccount {
            user_name,
            new_name,
        })
    }

    fn change_grant(
        &mut self,
        user_name: &str,
        grant: Grant,
        granted: bool,
    ) -> Result<(), StoreError> {
        let id = self.data.account_id(user_name)?;
        let a = &mut self.data.account_mut(id).account;
        let changed = match grant {
            Grant::Role(role) => change(&mut a.roles, role.to_string(), granted),
            Grant::Entitlement(e) => change(&mut a.entitlements, e.clone(), granted),
        };
        if !changed {
            return Err(grant.refused(user_name, granted));
        }
        self.record(grant.change(user_name, granted))
    }

    fn set_case_manager(
        &mut self,
        user_name: &str,
        case_manager: Option<&str>,
    ) -> Result<(), StoreError> {
        let id = self.data.account_id(user_name)?;
        let manager = case_manager.map(|m| self.data.account_id(m)).transpose()?;
        let current = self.data.read(&self.data.accounts[&id]).case_manager;
        if let Some(e) =
            StoreError::case_manager_refused(user_name, current.as_deref(), case_manager)
        {
            return Err(e);
        }
        self.data.account_mut(id).case_manager = manager;
        self.record(Change::CaseManager {
            user_name,
            before: current.as_deref(),
            after: case_manager,
        })
    }

    fn delete_account(&mut self, user_name: &str) -> Result<(), StoreError> {
        let id = self.data.account_id(user_name)?;
        let d = &mut self.data;
        d.memberships.retain(|&(_, a), _| a != id);
        d.outbox.retain(|m| m.account != id);
        for r in d.accounts.values_mut() {
            if r.case_manager == Some(id) {
                r.case_manager = None;
            }
        }
        d.accounts.remove(&id);
        d.user_keys.remove(&user_name.to_lowercase());
        self.record(Change::DeleteAccount { user_name })
    }

    fn update_group(
        &mut self,
        name: &str,
        new_name: &str,
        kind: GroupType,
        lwia: Option<u32>,
    ) -> Result<(), StoreError> {
        let id = self.data.group_id(name)?;
        if self
            .data
            .group_names
            .get(new_name)
            .is_some_and(|&o| o != id)
        {
            return Err(StoreError::group_taken(new_name));
        }
        let g = &self.data.groups[&id];
        let was = (g.kind.as_str(), g.lwia);
        self.data.group_names.remove(name);
        self.data.group_names.insert(new_name.to_string(), id);
        if let Some(g) = self.data.groups.get_mut(&id) {
            g.name = new_name.to_string();
            g.kind = kind;
            g.lwia = lwia;
        }
        self.record(Change::UpdateGroup {
            name,
            was,
            new_name,
            kind,
            lwia,
        })
    }

    fn delete_group(&mut self, name: &str) -> Result<(), StoreError> {
        let id = self.data.group_id(name)?;
        let d = &mut self.data;
        d.memberships.retain(|&(g, _), _| g != id);
        d.groups.remove(&id);
        d.group_names.remove(name);
        self.record(Change::DeleteGroup { name })
    }

    fn create_token(
        &mut self,
        name: &str,
        digest: &str,
        scope: Option<&[String]>,
    ) -> Result<(), StoreError> {
        // Kept as the groups' ids, as the SQL stores keep them.
        let ids: Option<Vec<i64>> = scope
            .map(|names| names.iter().map(|n| self.data.group_id(n)).collect())
            .transpose()?;
        if self
            .data
            .tokens
            .iter()
            .any(|t| t.name == name || t.digest == digest)
        {
            return Err(StoreError::token_taken(name));
        }
        self.data.tokens.push(TokenRow {
            name: name.to_string(),
            digest: digest.to_string(),
            revoked: false,
        });
        self.record(Change::CreateToken {
            name,
            scope,
            group_ids: ids.as_deref(),
        })
    }

    fn revoke_token(&mut self, name: &str) -> Result<(), StoreError> {
        let Some(t) = self
            .data
            .tokens
            .iter_mut()
            .find(|t| t.name == name && !t.revoked)
        else {
            return Err(StoreError::no_live_token(name));
        };
        t.revoked = true;
        self.record(Change::RevokeToken { name })
    }

    fn savepoint(&mut self) -> Result<(), StoreError> {
        self.saved = Some(self.data.clone());
        Ok(())
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        // The savepoint stays, as SQL's ROLLBACK TO keeps it.
        match &self.saved {
            Some(saved) => {
                self.data = saved.clone();
                Ok(())
            }
            None => Err(no_savepoint()),
        }
    }

    fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.saved.take().map(|_| ()).ok_or_else(no_savepoint)
    }

    fn commit(self: Box<Self>) -> Result<i64, StoreError> {
        let revision = self.data.revision;
        *lock(&self.held.0.committed) = Arc::new(self.data);
        // `held` drops here: the lock is free once the state is in place.
        Ok(revision)
    }

    fn claim_mail(&mut self, until: &str, limit: usize) -> Result<Vec<Mail>, StoreError> {
        let d = &mut self.data;
        let accounts = &d.accounts;
        // Nobody deactivated gets mail, nobody activated an invitation.
        d.outbox.retain(|m| {
            let a = &accounts[&m.account].account;
            !m.waiting()
                || (a.active
                    && (m.kind == MailKind::Reset || a.credential == CredentialState::Invited))
        });
        let now = self.now.as_str();
        let mut out = Vec::new();
        for m in d.outbox.iter_mut() {
            let due = m.waiting()
                && !m.token.is_empty()
                && m.next_try_at.as_deref().is_none_or(|t| t <= now)
                && m.claimed_until.as_deref().is_none_or(|t| t <= now);
            if !due || out.len() >= limit {
                continue;
            }
            m.claimed_until = Some(until.to_string());
            let a = &accounts[&m.account].account;
            out.push(Mail {
                id: m.id,
                kind: m.kind,
                user_name: a.user_name.clone(),
                recipient: m.recipient.clone(),
                first_name: a.profile.first_name.clone(),
                last_name: a.profile.last_name.clone(),
                token: m.token.clone(),
                attempts: m.attempts,
            });
        }
        Ok(out)
    }

    fn mail_sent(&mut self, id: i64) -> Result<(), StoreError> {
        let now = self.now.clone();
        if let Some(m) = self.data.mail_mut(id) {
            m.sent_at = Some(now);
            m.token.clear();
            m.claimed_until = None;
            m.error = None;
            m.attempts += 1;
        }
        Ok(())
    }

    fn mail_deferred(&mut self, id: i64, next_try_at: &str, error: &str) -> Result<(), StoreError> {
        if let Some(m) = self.data.mail_mut(id).filter(|m| m.sent_at.is_none()) {
            m.attempts += 1;
            m.next_try_at = Some(next_try_at.to_string());
            m.error = Some(error.to_string());
            m.claimed_until = None;
        }
        Ok(())
    }

    fn mail_failed(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        let now = self.now.clone();
        if let Some(m) = self.data.mail_mut(id).filter(|m| m.sent_at.is_none()) {
            m.attempts += 1;
            m.failed_at = Some(now);
            m.error = Some(error.to_string());
            m.token.clear();
            m.claimed_until = None;
        }
        Ok(())
    }

    fn release_mail(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        for m in &mut self.data.outbox {
            if ids.contains(&m.id) && m.sent_at.is_none() {
                m.claimed_until = None;
            }
        }
        Ok(())
    }

    fn due_reminders(&mut self, sent_before: &str, max: u32) -> Result<Vec<String>, StoreError> {
        let d = &self.data;
        let mut out = Vec::new();
        for id in d.user_keys.values() {
            let r = &d.accounts[id];
            if !r.account.active
                || r.account.credential != CredentialState::Invited
                || r.digest.is_none()
            {
                continue;
            }
            let mails: Vec<&Outgoing> = d.outbox.iter().filter(|m| m.account == *id).collect();
            let waiting = mails.iter().any(|m| m.sent_at.is_none());
            let last = mails.iter().filter_map(|m| m.sent_at.as_deref()).max();
            let reminders = mails
                .iter()
                .filter(|m| m.kind == MailKind::Reminder)
                .count();
            if !waiting && last.is_some_and(|t| t <= sent_before) && reminders < max as usize {
                out.push(r.account.user_name.clone());
            }
        }
        // In user-name order, as `user_keys` is.
        Ok(out)
    }

    fn queue_mail(
        &mut self,
        user_name: &str,
        kind: MailKind,
        token: &str,
        token_digest: &str,
    ) -> Result<(), StoreError> {
        let id = self.data.account_id(user_name)?;
        let now = self.now.clone();
        let row = self.data.account_mut(id);
        let invited = row.account.credential == CredentialState::Invited;
        kind.check(user_name, row.account.active, invited)?;
        row.digest = Some(token_digest.to_string());
        row.token_issued_at = Some(now.clone());
        match kind {
            MailKind::Reset => row.reset_requested_at = Some(now.clone()),
            _ => row.reminded_at = Some(now.clone()),
        }
        let email = row.account.profile.email.clone();
        self.data.drop_unsent(id);
        self.data.push_mail(id, kind, &email, token.to_string());
        self.record(Change::QueueMail { user_name, kind })
    }

    fn activate(
        &mut self,
        digest: &str,
        password_hash: &str,
        ttl: Duration,
    ) -> Result<TokenLookup, StoreError> {
        let (id, found) = self.data.token_holder(digest, ttl, &self.now);
        let (Some(id), Ok(holder)) = (id, &found) else {
            return Ok(found);
        };
        let now = self.now.clone();
        let row = self.data.account_mut(id);
        row.digest = None;
        row.token_issued_at = None;
        row.reset_requested_at = None;
        row.password_hash = Some(password_hash.to_string());
        row.account.credential = CredentialState::PasswordSet;
        row.activated_at.get_or_insert(now);
        self.data.outbox.retain(|m| m.account != id);
        self.record(Change::Activate {
            user_name: &holder.user_name,
            reset: holder.reset,
        })?;
        Ok(found)
    }

    fn set_password(&mut self, user_name: &str, password_hash: &str) -> Result<(), StoreError> {
        let id = self.data.account_id(user_name)?;
        let row = self.data.account_mut(id);
        let was = row.account.credential;
        row.digest = None;
        row.token_issued_at = None;
        row.reset_requested_at = None;
        row.password_hash = Some(password_hash.to_string());
        row.account.credential = CredentialState::PasswordSet;
        self.data
            .outbox
            .retain(|m| m.account != id || m.sent_at.is_some());
        self.record(Change::SetPassword { user_name, was })
    }
}

impl Data {
    /// The account holding the token with `digest`, by id, or why none.
    fn token_holder(&self, digest: &str, ttl: Duration, now: &str) -> (Option<i64>, TokenLookup) {
        let Some((id, row)) = self
            .accounts
            .iter()
            .find(|(_, r)| r.digest.as_deref() == Some(digest))
        else {
            return (None, Err(TokenRefused::Unknown));
        };
        let issued = row
            .token_issued_at
            .as_deref()
            .or(row.reminded_at.as_deref())
            .or(row.invited_at.as_deref());
        let holder = TokenHolder {
            user_name: row.account.user_name.clone(),
            first_name: row.account.profile.first_name.clone(),
            email: row.account.profile.email.clone(),
            reset: row.reset_requested_at.is_some(),
        };
        let found = holder.judge(row.account.active, issued, ttl, now);
        (Some(*id), found)
    }
}

impl MemoryStore {
    /// The password hash and activation time of an account (tests).
    pub fn credential_of(&self, user_name: &str) -> Option<(Option<String>, Option<String>)> {
        let d = self.snapshot();
        let id = d.account_id(user_name).ok()?;
        let row = &d.accounts[&id];
        Some((row.password_hash.clone(), row.activated_at.clone()))
    }
}

fn no_savepoint() -> StoreError {
    StoreError::Invalid("no savepoint to return to: call savepoint first".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(n: u32) -> NewCredential {
        NewCredential::Invite {
            token: format!("token-{n}"),
            token_digest: format!("digest-{n}"),
        }
    }

    fn profile(email: &str) -> Profile {
        Profile {
            email: email.into(),
            first_name: "A".into(),
            last_name: "B".into(),
            birth_date: None,
            phone: None,
            extension: None,
            zip: None,
        }
    }

    #[test]
    fn a_password_set_by_an_administrator_ends_the_invitation() {
        let store = MemoryStore::new();
        let mut s = store.begin("admin", "2026-01-01T00:00:00Z").unwrap();
        s.create_account("ann", &profile("ann@example.org"), invite(0))
            .unwrap();
        s.commit().unwrap();
        let mut s = store.begin("token:ci", "2026-01-02T00:00:00Z").unwrap();
        s.set_password("Ann", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
            .unwrap();
        assert!(s.set_password("nobody", "$argon2id$x").is_err());
        s.commit().unwrap();
        let (hash, activated) = store.credential_of("ann").unwrap();
        assert_eq!(
            (hash.as_deref(), activated),
            (Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"), None)
        );
        assert!(store.outbox().is_empty());
        let mut r = store.reader().unwrap();
        let held = r.token_holder(
            "digest-0",
            Duration::from_secs(86_400),
            "2026-01-02T00:00:01Z",
        );
        assert_eq!(held.unwrap(), Err(TokenRefused::Unknown));
        let audit = r.audit(None).unwrap();
        let last = audit.last().unwrap();
        assert_eq!(
            (last.op.as_str(), last.subject.as_str()),
            ("set_password", "Ann")
        );
        assert_eq!(last.raw.0.as_deref(), Some(r#"{"credential":"invited"}"#));
        assert_eq!(
            last.raw.1.as_deref(),
            Some(r#"{"credential":"password_set"}"#)
        );
    }

    #[test]
    fn invitations_wait_in_the_outbox_until_their_account_goes() {
        let store = MemoryStore::new();
        let mut s = store.begin("admin", "2026-01-01T00:00:00Z").unwrap();
        for (n, name) in ["ann", "bob", "cat"].iter().enumerate() {
            let email = format!("{name}@example.org");
            s.create_account(name, &profile(&email), invite(n as u32))
                .unwrap();
        }
        // Uncommitted: nothing waits yet.
        assert!(store.outbox().is_empty());
        s.commit().unwrap();
        let tokens = |store: &MemoryStore| -> Vec<String> {
            store.outbox().into_iter().map(|m| m.token).collect()
        };
        assert_eq!(tokens(&store), ["token-0", "token-1", "token-2"]);
        let mut s = store.begin("admin", "2026-01-01T00:00:00Z").unwrap();
        s.deactivate_account("ann").unwrap();
        s.delete_account("cat").unwrap();
        s.commit().unwrap();
        assert_eq!(tokens(&store), ["token-1"]);
        // Reactivated, an account is not invited again.
        let mut s = store.begin("admin", "2026-01-01T00:00:00Z").unwrap();
        s.reactivate_account("ann").unwrap();
        s.commit().unwrap();
        assert_eq!(tokens(&store), ["token-1"]);
    }

    #[test]
    fn mail_is_claimed_once_and_reminders_get_fresh_tokens() {
        let store = MemoryStore::new();
        let t0 = "2026-01-01T00:00:00Z";
        let mut s = store.begin("admin", t0).unwrap();
        for (n, name) in ["ann", "bob", "cat"].iter().enumerate() {
            let email = format!("{name}@example.org");
            s.create_account(name, &profile(&email), invite(n as u32))
                .unwrap();
        }
        s.commit().unwrap();
        let until = "2026-01-01T00:05:00Z";
        let mut s = store.begin("mailer", t0).unwrap();
        let first = s.claim_mail(until, 2).unwrap();
        assert_eq!(first.len(), 2);
        // Claimed: a second claim before `until` gets only the third.
        let second = s.claim_mail(until, 10).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].user_name, "cat");
        s.mail_sent(first[0].id).unwrap();
        s.mail_deferred(first[1].id, "2026-01-01T01:00:00Z", "421 later")
            .unwrap();
        s.mail_failed(second[0].id, "550 no such mailbox").unwrap();
        assert!(s.claim_mail(until, 10).unwrap().is_empty());
        s.commit().unwrap();
        assert_eq!(tokens_of(&store), ["token-1"]);
        // Sent at t0: a reminder is due after it, once.
        let mut s = store.begin("mailer", "2026-01-02T00:00:00Z").unwrap();
        assert!(
            s.due_reminders("2025-12-31T00:00:00Z", 3)
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.due_reminders(t0, 3).unwrap(), ["ann"]);
        s.queue_mail("ann", MailKind::Reminder, "fresh", "sha256:fresh")
            .unwrap();
        assert!(s.due_reminders(t0, 3).unwrap().is_empty());
        // Bob's deferred invitation is due again, and Ann's reminder.
        let r = s.claim_mail("2026-01-02T00:05:00Z", 10).unwrap();
        let got: Vec<_> = r.iter().map(|m| (m.kind, m.token.as_str())).collect();
        assert_eq!(
            got,
            [
                (MailKind::Invitation, "token-1"),
                (MailKind::Reminder, "fresh")
            ]
        );
        // Resets are for accounts that activated.
        assert!(
            s.queue_mail("bob", MailKind::Reset, "t", "sha256:t")
                .unwrap_err()
                .to_string()
                .contains("has not activated yet")
        );
        s.commit().unwrap();
        let log = store.reader().unwrap().audit(None).unwrap();
        assert_eq!(log.last().unwrap().op, "queue_reminder");
        assert!(!format!("{:?}", log.last().unwrap()).contains("fresh\""));
    }

    fn tokens_of(store: &MemoryStore) -> Vec<String> {
        store.outbox().into_iter().map(|m| m.token).collect()
    }

    #[test]
    fn a_token_activates_once_and_never_a_deactivated_account() {
        let store = MemoryStore::new();
        let day = Duration::from_secs(86_400);
        let mut s = store.begin("admin", "2026-01-01T00:00:00Z").unwrap();
        s.create_account("ann", &profile("ann@example.org"), invite(1))
            .unwrap();
        s.create_account("bob", &profile("bob@example.org"), invite(2))
            .unwrap();
        s.deactivate_account("bob").unwrap();
        s.commit().unwrap();
        let holder = store
            .reader()
            .unwrap()
            .token_holder("digest-1", day, "2026-01-01T01:00:00Z")
            .unwrap()
            .unwrap();
        assert_eq!(holder.user_name, "ann");
        // Expired a TTL later.
        let mut s = store.begin("page", "2026-01-02T00:00:00Z").unwrap();
        assert_eq!(
            s.activate("digest-1", "$argon2id$x", day).unwrap(),
            Err(TokenRefused::Expired)
        );
        drop(s);
        let mut s = store.begin("page", "2026-01-01T02:00:00Z").unwrap();
        assert_eq!(
            s.activate("digest-2", "$argon2id$x", day).unwrap(),
            Err(TokenRefused::Deactivated)
        );
        assert!(s.activate("digest-1", "$argon2id$x", day).unwrap().is_ok());
        assert_eq!(
            s.activate("digest-1", "$argon2id$y", day).unwrap(),
            Err(TokenRefused::Unknown)
        );
        s.commit().unwrap();
        assert!(
            store
                .outbox()
                .iter()
                .all(|m| m.recipient != "ann@example.org")
        );
        assert_eq!(
            store.credential_of("ann"),
            Some((
                Some("$argon2id$x".to_string()),
                Some("2026-01-01T02:00:00Z".to_string())
            ))
        );
        let audit = store.reader().unwrap().audit(None).unwrap();
        let last = audit.last().unwrap();
        assert_eq!(
            (last.op.as_str(), last.subject.as_str()),
            ("activate_account", "ann")
        );
    }
}
