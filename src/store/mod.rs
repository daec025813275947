//! The live account store (SPEC §3), reached through two capabilities:
//! [`Reader`] for planning (a read-only snapshot with targeted look-ups, so
//! planning cost follows the roster, not the store) and [`Session`] for
//! applying (one transaction under the store's write lock).
//!
//! `sqlite:` is the embedded store, `postgres://` the same store shared by
//! many admins and servers, and `scim+https://` any SCIM 2.0 service
//! provider, all behind the same traits.

pub mod audit;
pub mod directory;
pub mod memory;
pub mod scim;
pub mod sql;

use crate::domain::GroupType;
pub use crate::domain::{
    Account, CredentialState, Entitlement, Group, Membership, NameDob, Profile,
};
use serde::Serialize;

/// The default store when neither `--store` nor `ROSTER_STORE` is given.
pub const DEFAULT_URL: &str = "sqlite:roster.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported store URL `{0}`: use sqlite:PATH, postgres://USER@HOST/DATABASE or scim+https://HOST/PATH"
    )]
    UnsupportedUrl(String),
    #[error("store {url}: {message}")]
    Open { url: String, message: String },
    #[error("store {url}: {source}")]
    Sql {
        url: String,
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL's error in its own words (the client's `Display` leaves
    /// them out).
    #[error("store {url}: {message}")]
    Postgres { url: String, message: String },
    #[error("stale plan: the store changed since this plan was made; run plan again")]
    Stale,
    #[error(
        "store {url} is locked by another apply; try again when it finishes (waited {waited_ms} ms)"
    )]
    Locked { url: String, waited_ms: u64 },
    #[error("{0}")]
    Invalid(String),
    /// A SCIM filter or sort attribute the store cannot answer: an unknown
    /// attribute, a value of the wrong type.
    #[error("{0}")]
    Filter(crate::scim::filter::FilterError),
    /// A query ran longer than the statement timeout and was cancelled.
    #[error("the store cancelled a query that ran longer than the statement timeout")]
    TimedOut,
    /// A name (user name, group, token) that is already taken.
    #[error("{0}")]
    Taken(String),
    /// A remote store answered with an error, or could not be reached.
    #[error("store {url}: {message}")]
    Remote { url: String, message: String },
    /// A store that applies action by action (SCIM) applied some actions
    /// and failed others; each failure names its action.
    #[error(
        "store {url}: {} failed, {applied} applied; run `roster plan` to see what is left:{}",
        crate::report::plural(failures.len(), "action"),
        failures.iter().map(|f| format!("\n  - {f}")).collect::<String>()
    )]
    Partial {
        url: String,
        applied: usize,
        failures: Vec<String>,
    },
}

impl StoreError {
    /// A new account's email is another account's (`roster serve` keeps
    /// emails unique, as `roster check` compares them).
    pub fn email_taken() -> Self {
        StoreError::Taken(
            "emails: another User holds this email address; emails are unique, in any case".into(),
        )
    }
}

/// What a store cannot keep of what a roster says: a SCIM provider
/// without roster's extension schemas. Each is the reason, for a warning.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Birth dates, ZIP codes and phone extensions.
    pub profile_extras: Option<String>,
    /// Group types, LWIAs and user-manager grants.
    pub group_extras: Option<String>,
}

/// A read-only view of the store for planning. Every look-up sees the same
/// revision.
pub trait Reader {
    fn url(&self) -> &str;
    fn revision(&mut self) -> Result<i64, StoreError>;
    /// Planning is about to look up this many pinned user names and
    /// partners: a remote store may read everything at once when that takes
    /// fewer requests than asking key by key.
    fn expect_lookups(&mut self, _pinned: usize, _partners: usize) {}
    /// What this store cannot keep.
    fn limits(&self) -> Limits {
        Limits::default()
    }
    /// Accounts whose user name is one of these (compared case-insensitively).
    fn accounts_by_user_name(&mut self, names: &[String]) -> Result<Vec<Account>, StoreError>;
    /// Accounts whose email is one of these (lower-cased keys).
    fn accounts_by_email(&mut self, emails: &[String]) -> Result<Vec<Account>, StoreError>;
    /// Accounts with one of these name + birth-date keys.
    fn accounts_by_name_dob(&mut self, keys: &[NameDob]) -> Result<Vec<Account>, StoreError>;
    /// Lower-cased user names equal to one of these bases or the base followed by digits.
    fn user_names_like(&mut self, bases: &[String]) -> Result<Vec<String>, StoreError>;
    /// Groups with these names; all groups when `names` is `None`.
    fn groups(&mut self, names: Option<&[String]>) -> Result<Vec<Group>, StoreError>;
    /// Memberships of these groups, with the members' user names.
    fn memberships(&mut self, groups: &[String]) -> Result<Vec<Membership>, StoreError>;
    /// Every account, in user-name order (export).
    fn all_accounts(&mut self) -> Result<Vec<Account>, StoreError>;
    /// How many accounts are active: the licence seats in use.
    fn active_accounts(&mut self) -> Result<u64, StoreError>;
    /// Accounts (among `user_names`) that belong to a group outside `groups`.
    fn in_other_groups(
        &mut self,
        user_names: &[String],
        groups: &[String],
    ) -> Result<Vec<String>, StoreError>;
    fn audit(&mut self, since: Option<&str>) -> Result<Vec<AuditEntry>, StoreError>;
    fn invitations(&mut self) -> Result<Vec<Invitation>, StoreError>;
    /// Every active account with a pending invitation or any mail, and the
    /// state of its last mail (`roster invitations`).
    /// A store without an outbox lists its pending invitations.
    fn mail_states(&mut self) -> Result<Vec<MailState>, StoreError> {
        Ok(self
            .invitations()?
            .into_iter()
            .map(|i| MailState {
                user_name: i.user_name,
                email: i.email,
                invited_at: Some(i.invited_at),
                reminded_at: i.reminded_at,
                pending: true,
                ..MailState::default()
            })
            .collect())
    }
    /// The account the one-time token with this digest opens now (`now`,
    /// RFC 3339), its tokens living `ttl` after they were issued. A store
    /// that keeps no tokens knows none.
    fn token_holder(
        &mut self,
        _digest: &str,
        _ttl: std::time::Duration,
        _now: &str,
    ) -> Result<TokenLookup, StoreError> {
        Ok(Err(TokenRefused::Unknown))
    }
    /// When each activated account activated, by lower-cased user name.
    fn activation_times(
        &mut self,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        Ok(Default::default())
    }
}

/// What a SCIM-only value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Account,
    Group,
}

/// Values roster keeps for SCIM clients but does not reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimField {
    ExternalId,
    /// A user's `displayName` (a group's is its name).
    DisplayName,
}

/// Credentials of a new account: set by the apply step, never by the plan.
#[derive(Clone)]
pub enum NewCredential {
    /// Invited: the one-time activation token, for the queued invitation,
    /// and its SHA-256 digest, which is all the account keeps.
    Invite { token: String, token_digest: String },
    /// A password: its Argon2id PHC string, which a roster store keeps, and
    /// the password itself, which a SCIM provider is given to hash its way.
    Password { hash: String, password: String },
    /// Signed in by an identity provider: active at once, with no
    /// password and no invitation.
    Sso,
}

impl NewCredential {
    /// The state an account created with it starts in.
    pub fn state(&self) -> CredentialState {
        match self {
            NewCredential::Invite { .. } => CredentialState::Invited,
            NewCredential::Password { .. } => CredentialState::PasswordSet,
            NewCredential::Sso => CredentialState::None,
        }
    }
}

/// What an account is given or has taken back: a role or an entitlement.
#[derive(Debug, Clone, Copy)]
pub enum Grant<'a> {
    Role(&'a str),
    Entitlement(&'a Entitlement),
}

impl<'a> Grant<'a> {
    /// The audit change of this grant given (`granted`) or taken back.
    pub fn change(self, user_name: &'a str, granted: bool) -> audit::Change<'a> {
        match self {
            Grant::Role(role) => audit::Change::Role {
                user_name,
                role,
                granted,
            },
            Grant::Entitlement(entitlement) => audit::Change::Entitlement {
                user_name,
                entitlement,
                granted,
            },
        }
    }

    /// The refusal: given while held, or taken back while not held.
    pub fn refused(self, user_name: &str, granted: bool) -> StoreError {
        match self {
            Grant::Role(role) => StoreError::role_refused(user_name, role, granted),
            Grant::Entitlement(e) => StoreError::entitlement_refused(user_name, e, granted),
        }
    }
}

/// A write transaction holding the store's lock. Dropped without
/// [`Session::commit`], nothing of it lands. `Send`: `roster serve` hands
/// one session from request to request.
pub trait Session: Send {
    fn revision(&mut self) -> Result<i64, StoreError>;
    fn create_group(
        &mut self,
        name: &str,
        kind: GroupType,
        lwia: Option<u32>,
    ) -> Result<(), StoreError>;
    fn create_account(
        &mut self,
        user_name: &str,
        profile: &Profile,
        credential: NewCredential,
    ) -> Result<(), StoreError> {
        self.create_account_with_roles(user_name, profile, &[], credential)
    }
    /// Create an account holding these roles from the start: one change,
    /// one audit row, as a plan's `create_account` is one action.
    fn create_account_with_roles(
        &mut self,
        user_name: &str,
        profile: &Profile,
        roles: &[String],
        credential: NewCredential,
    ) -> Result<(), StoreError>;
    /// Reactivate (`active`) or deactivate an account; refused when it is
    /// so already.
    fn set_active(&mut self, user_name: &str, active: bool) -> Result<(), StoreError>;
    fn reactivate_account(&mut self, user_name: &str) -> Result<(), StoreError> {
        self.set_active(user_name, true)
    }
    fn deactivate_account(&mut self, user_name: &str) -> Result<(), StoreError> {
        self.set_active(user_name, false)
    }
    /// Set these fields of the profile (names as in the roster: `phone`, `zip`, …).
    fn update_profile(
        &mut self,
        _user_name: &str,
        profile: &Profile,
        fields: &[String],
    ) -> Result<(), StoreError>;
    fn add_membership(
        &mut self,
        _user_name: &str,
        group: &str,
        user_manager: bool,
    ) -> Result<(), StoreError>;
    fn set_user_manager(
        &mut self,
        _user_name: &str,
        group: &str,
        user_manager: bool,
    ) -> Result<(), StoreError>;
    fn remove_membership(&mut self, _user_name: &str, group: &str) -> Result<(), StoreError>;
    /// Rename an account (`roster serve`: a SCIM client changed `userName`).
    fn rename_account(&mut self, user_name: &str, new_name: &str) -> Result<(), StoreError>;
    /// Give the account a role or an entitlement (`granted`), or take it
    /// back; refused when it holds it already, or does not.
    fn change_grant(
        &mut self,
        user_name: &str,
        grant: Grant,
        granted: bool,
    ) -> Result<(), StoreError>;
    /// Give the account a role (from the roster's catalog).
    fn grant_role(&mut self, user_name: &str, role: &str) -> Result<(), StoreError> {
        self.change_grant(user_name, Grant::Role(role), true)
    }
    fn revoke_role(&mut self, user_name: &str, role: &str) -> Result<(), StoreError> {
        self.change_grant(user_name, Grant::Role(role), false)
    }
    /// Give the account an entitlement (`kind`: `products`, `coverage`, …).
    fn grant_entitlement(&mut self, user_name: &str, e: &Entitlement) -> Result<(), StoreError> {
        self.change_grant(user_name, Grant::Entitlement(e), true)
    }
    fn revoke_entitlement(&mut self, user_name: &str, e: &Entitlement) -> Result<(), StoreError> {
        self.change_grant(user_name, Grant::Entitlement(e), false)
    }
    /// Set (or, with `None`, clear) the account that oversees this one.
    fn set_case_manager(
        &mut self,
        _user_name: &str,
        _manager: Option<&str>,
    ) -> Result<(), StoreError> {
        Err(self.unsupported("case managers"))
    }
    /// Delete an account and its memberships (`roster serve`: SCIM DELETE).
    /// roster itself only ever deactivates.
    fn delete_account(&mut self, _user_name: &str) -> Result<(), StoreError> {
        Err(self.unsupported("deleting accounts"))
    }
    /// Change a group's name, type and LWIA.
    fn update_group(
        &mut self,
        _name: &str,
        _new_name: &str,
        _kind: GroupType,
        _lwia: Option<u32>,
    ) -> Result<(), StoreError> {
        Err(self.unsupported("changing groups"))
    }
    /// Delete a group and its memberships.
    fn delete_group(&mut self, _name: &str) -> Result<(), StoreError> {
        Err(self.unsupported("deleting groups"))
    }
    /// Set or clear a value only SCIM clients use (`externalId`, a user's
    /// `displayName`) on an account or group.
    fn set_scim_field(
        &mut self,
        _of: Owner,
        _name: &str,
        _field: ScimField,
        _value: Option<&str>,
    ) -> Result<(), StoreError> {
        Err(self.unsupported("SCIM-only attributes"))
    }
    /// Keep an API token's digest; `scope` None is an admin token.
    fn create_token(
        &mut self,
        _name: &str,
        _digest: &str,
        _scope: Option<&[String]>,
    ) -> Result<(), StoreError> {
        Err(self.unsupported("API tokens"))
    }
    fn revoke_token(&mut self, _name: &str) -> Result<(), StoreError> {
        Err(self.unsupported("API tokens"))
    }
    /// The row id and creation time of an account this session created,
    /// once its row is written (a name taken then fails here); `None` where
    /// the store does not say, and the caller reads the account back.
    fn created_account(&mut self, _user_name: &str) -> Result<Option<(i64, String)>, StoreError> {
        Ok(None)
    }
    /// Mark the point that [`Session::rollback_to_savepoint`] returns to
    /// (one level): `roster serve` commits a queue of writes together, each
    /// in a savepoint, so one refused write does not undo the others.
    fn savepoint(&mut self) -> Result<(), StoreError> {
        Err(self.unsupported("savepoints"))
    }
    /// Undo everything since [`Session::savepoint`], audit rows and
    /// revision included.
    fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        Err(self.unsupported("savepoints"))
    }
    /// Keep everything since [`Session::savepoint`].
    fn release_savepoint(&mut self) -> Result<(), StoreError> {
        Err(self.unsupported("savepoints"))
    }
    /// What a store that cannot do something answers.
    fn unsupported(&self, what: &str) -> StoreError {
        StoreError::Invalid(format!("this store does not support {what}"))
    }
    /// Write everything and release the lock.
    fn commit(self: Box<Self>) -> Result<i64, StoreError>;
    /// Claim up to `limit` messages due now for a `send` run, held until
    /// `until`: messages of deactivated and activated accounts are dropped
    /// instead (a reset is dropped only when its account is deactivated).
    fn claim_mail(&mut self, _until: &str, _limit: usize) -> Result<Vec<Mail>, StoreError> {
        Err(self.unsupported("mail delivery"))
    }
    /// The relay accepted the message: sent, its raw token erased.
    fn mail_sent(&mut self, _id: i64) -> Result<(), StoreError> {
        Err(self.unsupported("mail delivery"))
    }
    /// A temporary failure: one more attempt, tried again from `next_try_at`.
    fn mail_deferred(
        &mut self,
        _id: i64,
        _next_try_at: &str,
        _error: &str,
    ) -> Result<(), StoreError> {
        Err(self.unsupported("mail delivery"))
    }
    /// A permanent failure: failed for good, its raw token erased.
    fn mail_failed(&mut self, _id: i64, _error: &str) -> Result<(), StoreError> {
        Err(self.unsupported("mail delivery"))
    }
    /// Give up the claim on messages not sent (a run that stops early).
    fn release_mail(&mut self, _ids: &[i64]) -> Result<(), StoreError> {
        Err(self.unsupported("mail delivery"))
    }
    /// Invited accounts due a reminder: nothing queued for them, their last
    /// mail sent at or before `sent_before`, fewer than `max` reminders.
    fn due_reminders(&mut self, _sent_before: &str, _max: u32) -> Result<Vec<String>, StoreError> {
        Err(self.unsupported("mail delivery"))
    }
    /// Queue a reminder or a password reset with a fresh one-time token
    /// (the account keeps only `token_digest`; its old token stops working).
    fn queue_mail(
        &mut self,
        _user_name: &str,
        _kind: MailKind,
        _token: &str,
        _token_digest: &str,
    ) -> Result<(), StoreError> {
        Err(self.unsupported("mail delivery"))
    }
    /// Use the one-time token with this digest (invitation, reminder or
    /// password reset; it lives `ttl` after it was issued): the account
    /// gets this Argon2id hash as its password, its activation time (kept
    /// from a first activation), no token and no mail waiting. A token
    /// works once; a deactivated account's not at all.
    fn activate(
        &mut self,
        _digest: &str,
        _password_hash: &str,
        _ttl: std::time::Duration,
    ) -> Result<TokenLookup, StoreError> {
        Err(self.unsupported("activation"))
    }
    /// An administrator sets the account's password (`roster serve`: PUT
    /// or PATCH `password`): this Argon2id hash, the credential
    /// `password_set`, and any one-time token and unsent mail gone (an
    /// invitation or reset link stops working). The caller refuses an
    /// account that signs in with SSO.
    fn set_password(&mut self, user_name: &str, password_hash: &str) -> Result<(), StoreError> {
        let _ = (user_name, password_hash);
        Err(self.unsupported("passwords set by an administrator"))
    }
    /// From here on, refuse a new account whose email (in any case)
    /// another account holds, with [`StoreError::email_taken`], in the
    /// statement that writes the account's row (`roster serve`: no look-up
    /// of its own). `false` where this store does not: the caller checks.
    fn refuse_taken_emails(&mut self) -> bool {
        false
    }
    /// The name of the live (not revoked) admin API token with this
    /// digest, `None` if there is none. A session holds the lock that
    /// revoking a token takes: the answer holds until the session ends.
    fn live_admin_token(&mut self, digest: &str) -> Result<Option<String>, StoreError> {
        let _ = digest;
        Err(self.unsupported("API tokens"))
    }
    /// Write the next `creates` account creates of this session together,
    /// in one statement at [`Session::write_deferred`] (or at the first
    /// action that needs their rows), instead of one statement each; their
    /// ids are known at once. `false` where this store does not (each
    /// create is then written as usual). `admin_token`: a digest for
    /// [`Session::live_admin_token`] to know the answer for at once.
    fn defer_creates(
        &mut self,
        creates: usize,
        admin_token: Option<&str>,
    ) -> Result<bool, StoreError> {
        let _ = (creates, admin_token);
        Ok(false)
    }
    /// Write what deferred creates queued. `false`: one of them was refused
    /// (its name or email taken) and none was written, but the transaction
    /// may hold others' rows: it can only be rolled back.
    fn write_deferred(&mut self) -> Result<bool, StoreError> {
        Ok(true)
    }
}

crate::domain::names! {
    "lowercase";
    /// What an outbox message is (SPEC §10).
    #[derive(Default, strum::EnumString)]
    pub enum MailKind {
        #[default]
        Invitation,
        Reminder,
        Reset,
    }
}

impl MailKind {
    /// The kind of a stored row; anything unknown reads as an invitation
    /// (the one kind schemas before 6 wrote).
    pub fn parse(s: &str) -> Self {
        s.parse().unwrap_or_default()
    }

    /// Whether account `user_name` (`active`, `invited` and not activated)
    /// may be queued this kind of mail; every store refuses alike.
    pub fn check(self, user_name: &str, active: bool, invited: bool) -> Result<(), StoreError> {
        let why = match self {
            _ if !active => "is deactivated: it gets no mail",
            MailKind::Reset if invited => {
                "has not activated yet: `roster invitations send` reminds them with a fresh link"
            }
            MailKind::Reminder | MailKind::Invitation if !invited => {
                "is not waiting for an invitation"
            }
            _ => return Ok(()),
        };
        Err(StoreError::Invalid(format!("account `{user_name}` {why}")))
    }
}

/// A message claimed for delivery, with its one-time token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub id: i64,
    pub kind: MailKind,
    pub user_name: String,
    pub recipient: String,
    pub first_name: String,
    pub last_name: String,
    pub token: String,
    /// Deliveries tried before this one.
    pub attempts: i64,
}

/// An account's invitation or reset and its last mail.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MailState {
    pub user_name: String,
    pub email: String,
    pub invited_at: Option<String>,
    pub token_issued_at: Option<String>,
    pub reminded_at: Option<String>,
    pub activated_at: Option<String>,
    /// Invited, with a token, not activated yet.
    pub pending: bool,
    /// The last mail: its kind, when sent or failed, why, attempts.
    pub kind: Option<MailKind>,
    pub sent_at: Option<String>,
    pub failed_at: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    /// Reminders sent so far.
    pub reminders: i64,
}

/// One row of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub revision: i64,
    pub at: String,
    pub actor: String,
    pub op: String,
    pub subject: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// The hash of the row before (seq - 1), which this row's hash covers.
    pub prev_hash: String,
    pub hash: String,
    /// `before` and `after` exactly as stored, which is what the hash covers.
    #[serde(skip)]
    pub raw: (Option<String>, Option<String>),
}

/// A pending invitation: an invited account that has not activated.
#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    pub user_name: String,
    pub email: String,
    pub invited_at: String,
    pub reminded_at: Option<String>,
}

/// How a store is opened: what every connection and write of the handle
/// shares.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a write waits for another apply's lock.
    pub lock_timeout: std::time::Duration,
    /// The most connections the handle holds at once (SQL stores).
    pub connections: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lock_timeout: std::time::Duration::from_secs(10),
            connections: 4,
        }
    }
}

/// A store, opened once: every read, write and key of one command or one
/// server goes through this handle.
pub trait Store: Send + Sync {
    /// The URL as given (print it with [`display_url`]).
    fn url(&self) -> &str;
    /// A read-only snapshot for planning. A store that does not exist yet
    /// reads as empty at revision 0; nothing is created.
    fn reader(&self) -> Result<Box<dyn Reader>, StoreError>;
    /// A write session: creates and migrates the store on first use, takes
    /// the write lock (waiting up to [`Options::lock_timeout`]), and records
    /// `actor` and `now` on every audit row.
    fn begin(&self, actor: &str, now: &str) -> Result<Box<dyn Session>, StoreError>;
    /// The key that seals this store's saved plans (SPEC §11); `create`
    /// makes one (and the store) the first time it is needed.
    fn plan_key(&self, create: bool) -> Result<Option<Vec<u8>>, StoreError>;
    /// A read connection for `roster serve`, in a read transaction.
    fn served(&self) -> Result<Box<dyn Served>, StoreError>;
    /// Requests sent to the store through this handle so far, for
    /// `--verbose`; `None` for stores not reached over HTTP.
    fn requests(&self) -> Option<u64> {
        None
    }
}

/// Open the store at `url`. Nothing is read or created until it is used.
pub fn open(url: &str, options: Options) -> Result<Box<dyn Store>, StoreError> {
    if is_postgres(url) {
        let backend = sql::postgres::Postgres::new(url);
        return Ok(Box::new(sql::SqlStore::new(url, backend, options)));
    }
    if scim::is_scim(url) {
        return Ok(Box::new(scim::ScimStore::open(url)?));
    }
    match sqlite_path(url)? {
        Some(path) => {
            let backend = sql::sqlite::Sqlite::new(url, path);
            Ok(Box::new(sql::SqlStore::new(url, backend, options)))
        }
        None => Err(StoreError::UnsupportedUrl(display_url(url))),
    }
}

/// The file of a `sqlite:` URL. An empty path or `:memory:` would be a
/// store that vanishes when roster exits: refused.
fn sqlite_path(url: &str) -> Result<Option<&str>, StoreError> {
    match url.strip_prefix("sqlite:") {
        Some(p) if p.trim().is_empty() || p.starts_with(":memory:") || p.starts_with("file:") => {
            Err(StoreError::Open {
                url: url.to_string(),
                message: "give the store a file: sqlite:PATH (e.g. sqlite:roster.db)".into(),
            })
        }
        other => Ok(other),
    }
}

/// The current time as audit rows record it: RFC 3339 in UTC to the second.
pub fn now() -> String {
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A read connection `roster serve` keeps between requests.
pub trait Served: directory::Directory + Send {
    /// End the read transaction: an idle connection holds no snapshot.
    fn end_read(&mut self) -> Result<(), StoreError>;
    /// Start a read transaction: what follows sees one snapshot.
    fn begin_read(&mut self) -> Result<(), StoreError>;
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The store URL as roster prints and records it: never with a password.
pub fn display_url(url: &str) -> String {
    if url.contains("://") {
        sql::postgres::redact(url)
    } else {
        url.to_string()
    }
}

/// Where a SCIM store's plan key comes from.
pub const PLAN_KEY_VAR: &str = "ROSTER_PLAN_KEY";

/// The least key a SCIM store's [`PLAN_KEY_VAR`] may hold.
pub const MIN_PLAN_KEY_LEN: usize = 32;

/// The account a one-time token opens: what the activation page may show
/// (the user name and first name, no other personal data) and what its
/// password rule needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHolder {
    pub user_name: String,
    pub first_name: String,
    pub email: String,
    /// A password reset, rather than a first activation.
    pub reset: bool,
}

/// Why a one-time token opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefused {
    /// No account holds it: never issued, used already, or replaced by a
    /// newer one.
    Unknown,
    /// Issued longer ago than the tokens live.
    Expired,
    /// The account is deactivated.
    Deactivated,
}

impl TokenRefused {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRefused::Unknown => "unknown or used",
            TokenRefused::Expired => "expired",
            TokenRefused::Deactivated => "account deactivated",
        }
    }
}

/// What a one-time token opens, or why nothing.
pub type TokenLookup = Result<TokenHolder, TokenRefused>;

impl TokenHolder {
    /// What the token of this account (`active`, its token issued at
    /// `issued`) opens at `now`, tokens living `ttl`.
    pub fn judge(
        self,
        active: bool,
        issued: Option<&str>,
        ttl: std::time::Duration,
        now: &str,
    ) -> TokenLookup {
        if !active {
            Err(TokenRefused::Deactivated)
        } else if token_expired(issued, ttl, now) {
            Err(TokenRefused::Expired)
        } else {
            Ok(self)
        }
    }
}

/// Whether a token issued at `issued` (RFC 3339; `None` or unreadable:
/// expired, failing closed) has run out by `now`, living `ttl`.
pub fn token_expired(issued: Option<&str>, ttl: std::time::Duration, now: &str) -> bool {
    let (Some(issued), Ok(now)) = (issued, now.parse::<jiff::Timestamp>()) else {
        return true;
    };
    let Ok(issued) = issued.parse::<jiff::Timestamp>() else {
        return true;
    };
    let age = now.duration_since(issued);
    !age.is_negative() && age.unsigned_abs() >= ttl
}

#[cfg(test)]
mod token_tests {
    use super::token_expired;
    use std::time::Duration;

    #[test]
    fn tokens_expire_a_ttl_after_issue_and_unreadable_times_fail_closed() {
        let day = Duration::from_secs(86_400);
        let now = "2026-01-15T12:00:00Z";
        assert!(!token_expired(Some("2026-01-15T11:00:00Z"), day, now));
        assert!(!token_expired(Some("2026-01-14T12:00:01Z"), day, now));
        assert!(token_expired(Some("2026-01-14T12:00:00Z"), day, now));
        assert!(token_expired(Some("2025-12-01T00:00:00Z"), day, now));
        assert!(token_expired(None, day, now));
        assert!(token_expired(Some("yesterday"), day, now));
    }
}
