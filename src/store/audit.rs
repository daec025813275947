//! The audit chain: each row's hash covers its content and the previous
//! row's hash, so editing, inserting or deleting a row breaks the chain.

use super::{AuditEntry, Owner, StoreError};
use crate::domain::{CredentialState, Entitlement, GroupType, Profile};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hex SHA-256 of a row, given the previous row's hash. Each field is
/// length-prefixed (and absent values tagged), so no two rows encode alike.
// Every column of the row is hashed; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn row_hash(
    prev: &str,
    revision: i64,
    at: &str,
    actor: &str,
    op: &str,
    subject: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: Option<&[u8]>| match bytes {
        Some(b) => {
            h.update([1u8]);
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
        None => h.update([0u8]),
    };
    field(Some(prev.as_bytes()));
    field(Some(&revision.to_le_bytes()));
    field(Some(at.as_bytes()));
    field(Some(actor.as_bytes()));
    field(Some(op.as_bytes()));
    field(Some(subject.as_bytes()));
    field(before.map(str::as_bytes));
    field(after.map(str::as_bytes));
    data_encoding::HEXLOWER.encode(&h.finalize())
}

/// The chain's state in a write session: the revision, the last row's hash
/// and the next row's number. Each action makes one [`AuditRow`] from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLog {
    pub revision: i64,
    pub prev_hash: String,
    pub next_seq: i64,
}

/// One row to append to the audit table, hash included, borrowed from the
/// action that makes it and from the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRow<'a> {
    pub seq: i64,
    pub revision: i64,
    pub at: &'a str,
    pub actor: &'a str,
    pub op: &'a str,
    pub subject: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    pub hash: &'a str,
}

impl AuditLog {
    /// The chain after `last` (seq and hash of the last row, if any), at
    /// `revision`.
    pub fn new(revision: i64, last: Option<(i64, String)>) -> Self {
        let (prev_hash, next_seq) = match last {
            Some((seq, hash)) => (hash, seq + 1),
            None => (GENESIS.to_string(), 1),
        };
        AuditLog {
            revision,
            prev_hash,
            next_seq,
        }
    }

    /// The row of `change`, its text written in `text` (buffers reused
    /// from row to row): bumps the revision and moves the chain on.
    pub fn row<'a>(
        &'a mut self,
        now: &'a str,
        actor: &'a str,
        change: &Change,
        text: &'a mut RowText,
    ) -> AuditRow<'a> {
        let (subject, before, after) = text.fill(change);
        self.push(now, actor, change.op(), subject, before, after)
    }

    /// The next row, given its content: bumps the revision and moves the
    /// chain on (its hash is the chain's head, so the row borrows the log).
    pub fn push<'a>(
        &'a mut self,
        now: &'a str,
        actor: &'a str,
        op: &'a str,
        subject: &'a str,
        before: Option<&'a str>,
        after: Option<&'a str>,
    ) -> AuditRow<'a> {
        self.revision += 1;
        let (prev, revision) = (&self.prev_hash, self.revision);
        self.prev_hash = row_hash(prev, revision, now, actor, op, subject, before, after);
        let seq = self.next_seq;
        self.next_seq += 1;
        AuditRow {
            seq,
            revision: self.revision,
            at: now,
            actor,
            op,
            subject,
            before,
            after,
            hash: &self.prev_hash,
        }
    }
}

impl AuditRow<'_> {
    /// The row as the log reads it back, after the row whose hash is `prev_hash`.
    pub fn entry(&self, prev_hash: String) -> AuditEntry {
        let json = |s: Option<&str>| s.and_then(|s| serde_json::from_str(s).ok());
        AuditEntry {
            seq: self.seq,
            revision: self.revision,
            before: json(self.before),
            after: json(self.after),
            at: self.at.to_string(),
            actor: self.actor.to_string(),
            op: self.op.to_string(),
            subject: self.subject.to_string(),
            prev_hash,
            hash: self.hash.to_string(),
            raw: (
                self.before.map(str::to_string),
                self.after.map(str::to_string),
            ),
        }
    }
}

/// The text of one audit row (subject, before, after), kept between rows
/// so that a row costs no allocation of its own.
#[derive(Debug, Default)]
pub struct RowText {
    subject: String,
    before: Vec<u8>,
    after: Vec<u8>,
}

impl RowText {
    /// Write `change`'s subject and values, and give them as text.
    fn fill(&mut self, change: &Change) -> (&str, Option<&str>, Option<&str>) {
        self.subject.clear();
        change.write_subject(&mut self.subject);
        self.before.clear();
        self.after.clear();
        let (b, a) = change.write_values(&mut self.before, &mut self.after);
        // serde_json writes UTF-8 and the rest is copied from `&str`s.
        fn text(v: &[u8]) -> &str {
            std::str::from_utf8(v).unwrap_or_default()
        }
        (
            &self.subject,
            b.then(|| text(&self.before)),
            a.then(|| text(&self.after)),
        )
    }
}

/// One write, as every store records it: its audit row's op, subject,
/// before and after are made here and nowhere else.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    CreateGroup {
        name: &'a str,
        kind: GroupType,
        lwia: Option<u32>,
    },
    CreateAccount {
        user_name: &'a str,
        profile: &'a Profile,
        credential: CredentialState,
        /// The roles it holds from the start.
        roles: &'a [String],
    },
    SetActive {
        user_name: &'a str,
        active: bool,
    },
    UpdateProfile {
        user_name: &'a str,
        before: &'a Profile,
        after: &'a Profile,
    },
    AddMembership {
        user_name: &'a str,
        group: &'a str,
        user_manager: bool,
    },
    SetUserManager {
        user_name: &'a str,
        group: &'a str,
        user_manager: bool,
    },
    RemoveMembership {
        user_name: &'a str,
        group: &'a str,
        /// The user-manager grant it had.
        was: bool,
    },
    RenameAccount {
        user_name: &'a str,
        new_name: &'a str,
    },
    Role {
        user_name: &'a str,
        role: &'a str,
        granted: bool,
    },
    Entitlement {
        user_name: &'a str,
        entitlement: &'a Entitlement,
        granted: bool,
    },
    /// The case manager's user name before and after.
    CaseManager {
        user_name: &'a str,
        before: Option<&'a str>,
        after: Option<&'a str>,
    },
    DeleteAccount {
        user_name: &'a str,
    },
    UpdateGroup {
        name: &'a str,
        /// Type and LWIA before, as the store held them.
        was: (&'a str, Option<u32>),
        new_name: &'a str,
        kind: GroupType,
        lwia: Option<u32>,
    },
    DeleteGroup {
        name: &'a str,
    },
    ScimField {
        of: Owner,
        name: &'a str,
        /// The attribute's key in the audit value.
        key: &'a str,
        value: Option<&'a str>,
    },
    CreateToken {
        name: &'a str,
        scope: Option<&'a [String]>,
        group_ids: Option<&'a [i64]>,
    },
    RevokeToken {
        name: &'a str,
    },
    /// A reminder or reset queued with a fresh token (never the token).
    QueueMail {
        user_name: &'a str,
        kind: super::MailKind,
    },
    /// The account's one-time token was used on the activation page: a
    /// password set (never the token or the password in the row).
    Activate {
        user_name: &'a str,
        reset: bool,
    },
    /// An administrator set the account's password (`roster serve`: PUT or
    /// PATCH `password`); `was` is the credential before. Never the
    /// password or its hash in the row.
    SetPassword {
        user_name: &'a str,
        was: CredentialState,
    },
}

impl Change<'_> {
    pub fn op(&self) -> &'static str {
        match self {
            Change::CreateGroup { .. } => "create_group",
            Change::CreateAccount { .. } => "create_account",
            Change::SetActive { active: true, .. } => "reactivate_account",
            Change::SetActive { active: false, .. } => "deactivate_account",
            Change::UpdateProfile { .. } => "update_profile",
            Change::AddMembership { .. } => "add_membership",
            Change::SetUserManager {
                user_manager: true, ..
            } => "grant_user_manager",
            Change::SetUserManager { .. } => "revoke_user_manager",
            Change::RemoveMembership { .. } => "remove_membership",
            Change::RenameAccount { .. } => "rename_account",
            Change::Role { granted: true, .. } => "grant_role",
            Change::Role { .. } => "revoke_role",
            Change::Entitlement { granted: true, .. } => "grant_entitlement",
            Change::Entitlement { .. } => "revoke_entitlement",
            Change::CaseManager { .. } => "set_case_manager",
            Change::DeleteAccount { .. } => "delete_account",
            Change::UpdateGroup { .. } => "update_group",
            Change::DeleteGroup { .. } => "delete_group",
            Change::ScimField {
                of: Owner::Account, ..
            } => "set_account_scim_field",
            Change::ScimField { .. } => "set_group_scim_field",
            Change::CreateToken { .. } => "create_token",
            Change::RevokeToken { .. } => "revoke_token",
            Change::QueueMail {
                kind: super::MailKind::Reset,
                ..
            } => "queue_reset",
            Change::QueueMail { .. } => "queue_reminder",
            Change::Activate { reset: false, .. } => "activate_account",
            Change::Activate { reset: true, .. } => "reset_password",
            Change::SetPassword { .. } => "set_password",
        }
    }

    /// The account, group or token it changes, appended to `out`; a
    /// membership is `USER in GROUP`.
    fn write_subject(&self, out: &mut String) {
        match *self {
            Change::AddMembership {
                user_name, group, ..
            }
            | Change::SetUserManager {
                user_name, group, ..
            }
            | Change::RemoveMembership {
                user_name, group, ..
            } => {
                out.push_str(user_name);
                out.push_str(" in ");
                out.push_str(group);
            }
            Change::CreateAccount { user_name, .. }
            | Change::SetActive { user_name, .. }
            | Change::UpdateProfile { user_name, .. }
            | Change::RenameAccount { user_name, .. }
            | Change::Role { user_name, .. }
            | Change::Entitlement { user_name, .. }
            | Change::CaseManager { user_name, .. }
            | Change::DeleteAccount { user_name }
            | Change::QueueMail { user_name, .. }
            | Change::Activate { user_name, .. }
            | Change::SetPassword { user_name, .. } => out.push_str(user_name),
            Change::CreateGroup { name, .. }
            | Change::UpdateGroup { name, .. }
            | Change::DeleteGroup { name }
            | Change::ScimField { name, .. }
            | Change::CreateToken { name, .. }
            | Change::RevokeToken { name } => out.push_str(name),
        }
    }

    /// The row's before and after values (JSON text, personal data masked)
    /// appended to `before` and `after`; whether each has one.
    fn write_values(&self, before: &mut Vec<u8>, after: &mut Vec<u8>) -> (bool, bool) {
        // Writing JSON into a Vec cannot fail.
        let json = |out: &mut Vec<u8>, v: serde_json::Value| {
            let _ = serde_json::to_writer(out, &v);
            true
        };
        match *self {
            Change::CreateGroup { kind, lwia, .. } => (
                false,
                json(after, json!({ "type": kind.as_str(), "lwia": lwia })),
            ),
            Change::CreateAccount {
                profile,
                credential,
                roles,
                ..
            } => {
                let roles = (!roles.is_empty()).then_some(roles);
                write_masked(after, profile, Some(credential.as_str()), roles);
                (false, true)
            }
            Change::SetActive { active, .. } => (
                json(before, json!({ "active": !active })),
                json(after, json!({ "active": active })),
            ),
            Change::UpdateProfile {
                before: b,
                after: a,
                ..
            } => {
                write_masked(before, b, None, None);
                write_masked(after, a, None, None);
                (true, true)
            }
            Change::AddMembership { user_manager, .. } => {
                (false, json(after, json!({ "user_manager": user_manager })))
            }
            Change::SetUserManager { user_manager, .. } => (
                json(before, json!({ "user_manager": !user_manager })),
                json(after, json!({ "user_manager": user_manager })),
            ),
            Change::RemoveMembership { was, .. } => {
                (json(before, json!({ "user_manager": was })), false)
            }
            Change::RenameAccount {
                user_name,
                new_name,
            } => (
                json(before, json!({ "user_name": user_name })),
                json(after, json!({ "user_name": new_name })),
            ),
            Change::UpdateGroup {
                name,
                was,
                new_name,
                kind,
                lwia,
            } => (
                json(before, json!({"name": name, "type": was.0, "lwia": was.1})),
                json(
                    after,
                    json!({"name": new_name, "type": kind.as_str(), "lwia": lwia}),
                ),
            ),
            Change::Role { role, granted, .. } => {
                let out = if granted { &mut *after } else { &mut *before };
                json(out, json!({ "role": role }));
                (!granted, granted)
            }
            Change::Entitlement {
                entitlement: e,
                granted,
                ..
            } => {
                let out = if granted { &mut *after } else { &mut *before };
                json(out, json!({ "kind": e.kind, "value": e.value }));
                (!granted, granted)
            }
            Change::CaseManager {
                before: b,
                after: a,
                ..
            } => (
                json(before, json!({ "case_manager": b })),
                json(after, json!({ "case_manager": a })),
            ),
            Change::ScimField { key, value, .. } => (false, json(after, json!({ key: value }))),
            Change::CreateToken {
                scope, group_ids, ..
            } => (
                false,
                json(after, json!({ "scope": scope, "group_ids": group_ids })),
            ),
            Change::QueueMail { kind, .. } => {
                (false, json(after, json!({ "mail": kind.as_str() })))
            }
            Change::DeleteAccount { .. }
            | Change::DeleteGroup { .. }
            | Change::RevokeToken { .. } => (false, false),
            Change::Activate { .. } => (false, json(after, json!({"credential": "password_set"}))),
            Change::SetPassword { was, .. } => (
                json(before, json!({ "credential": was.as_str() })),
                json(after, json!({"credential": "password_set"})),
            ),
        }
    }
}

/// What every store answers to a write it refuses.
impl StoreError {
    /// `what` (``role `X` ``, …) held by the account already, or not held.
    fn held(user_name: &str, what: String, granted: bool) -> Self {
        if granted {
            StoreError::Taken(format!("account `{user_name}` already has {what}"))
        } else {
            StoreError::Invalid(format!("account `{user_name}` does not have {what}"))
        }
    }

    pub fn account_taken(user_name: &str) -> Self {
        StoreError::Taken(format!("account `{user_name}` already exists in the store"))
    }

    pub fn group_taken(name: &str) -> Self {
        StoreError::Taken(format!("group `{name}` already exists in the store"))
    }

    pub fn already_member(user_name: &str, group: &str) -> Self {
        StoreError::Taken(format!("`{user_name}` is already a member of `{group}`"))
    }

    pub fn token_taken(name: &str) -> Self {
        StoreError::Taken(format!(
            "a token named `{name}` already exists; pick another name or revoke it first"
        ))
    }

    pub fn no_account(user_name: &str) -> Self {
        StoreError::Invalid(format!("account `{user_name}` does not exist in the store"))
    }

    pub fn no_group(name: &str) -> Self {
        StoreError::Invalid(format!("group `{name}` does not exist in the store"))
    }

    pub fn not_member(user_name: &str, group: &str) -> Self {
        StoreError::Invalid(format!("`{user_name}` is not a member of `{group}`"))
    }

    pub fn no_live_token(name: &str) -> Self {
        StoreError::Invalid(format!(
            "no live token named `{name}`; `roster token list` shows them"
        ))
    }

    /// A change to what is already so.
    pub fn already_active(user_name: &str, active: bool) -> Self {
        StoreError::Invalid(format!(
            "account `{user_name}` is already {}",
            if active { "active" } else { "inactive" }
        ))
    }

    /// A role granted twice or revoked when not held.
    pub fn role_refused(user_name: &str, role: &str, granted: bool) -> Self {
        Self::held(user_name, format!("role `{role}`"), granted)
    }

    /// An entitlement granted twice or revoked when not held.
    pub fn entitlement_refused(user_name: &str, e: &Entitlement, granted: bool) -> Self {
        let what = format!("entitlement `{}: {}`", e.kind, e.value);
        Self::held(user_name, what, granted)
    }

    /// Why a case manager cannot be set, if it cannot: the account itself,
    /// or the one it has already.
    pub fn case_manager_refused(
        user_name: &str,
        current: Option<&str>,
        next: Option<&str>,
    ) -> Option<Self> {
        let same =
            |a: Option<&str>, b: Option<&str>| a.map(str::to_lowercase) == b.map(str::to_lowercase);
        if same(next, Some(user_name)) {
            return Some(StoreError::Invalid(format!(
                "account `{user_name}` cannot be its own case manager"
            )));
        }
        same(current, next).then(|| {
            StoreError::Invalid(match next {
                Some(n) => format!("account `{user_name}`'s case manager is already `{n}`"),
                None => format!("account `{user_name}` has no case manager to clear"),
            })
        })
    }

    /// A grant or revoke that finds no such membership.
    pub fn no_grant_to_change(user_name: &str, group: &str, user_manager: bool) -> Self {
        StoreError::Invalid(format!(
            "`{user_name}` is not a member of `{group}` {} the user-manager grant",
            if user_manager { "without" } else { "with" }
        ))
    }
}

/// What `roster log --verify` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Broken {
    /// Row `seq` does not hash to what it says, or does not follow the row before it.
    Row { seq: i64, reason: &'static str },
    /// The log ends before the store's revision: rows were cut off the end.
    Truncated { last: i64, revision: i64 },
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Row { seq, reason } => write!(f, "audit row {seq}: {reason}"),
            Broken::Truncated { last, revision } => write!(
                f,
                "the audit log ends at revision {last} but the store is at revision {revision}: rows were removed"
            ),
        }
    }
}

impl AuditEntry {
    /// The hash this row's content makes after the row whose hash is `prev`.
    pub fn content_hash(&self, prev: &str) -> String {
        let (before, after) = &self.raw;
        let (b, a) = (before.as_deref(), after.as_deref());
        row_hash(
            prev,
            self.revision,
            &self.at,
            &self.actor,
            &self.op,
            &self.subject,
            b,
            a,
        )
    }
}

/// Check the whole chain (entries in `seq` order, from the first row) against
/// the store's revision.
pub fn verify(entries: &[AuditEntry], revision: i64) -> Result<(), Broken> {
    let mut prev = GENESIS.to_string();
    let mut last_revision = 0;
    for (n, e) in entries.iter().enumerate() {
        if e.seq != n as i64 + 1 || e.prev_hash != prev {
            return Err(Broken::Row {
                seq: e.seq,
                reason: "does not follow the row before it (a row was removed or inserted)",
            });
        }
        if e.content_hash(&prev) != e.hash {
            return Err(Broken::Row {
                seq: e.seq,
                reason: "its content does not match its hash (the row was edited)",
            });
        }
        if e.revision <= last_revision {
            return Err(Broken::Row {
                seq: e.seq,
                reason: "its revision does not follow the row before it",
            });
        }
        last_revision = e.revision;
        prev = e.hash.clone();
    }
    if last_revision != revision {
        return Err(Broken::Truncated {
            last: last_revision,
            revision,
        });
    }
    Ok(())
}

/// Personal data in audit rows: present or not, never the value (what
/// [`write_masked`] writes, as a value).
#[cfg(test)]
fn masked(profile: &Profile) -> serde_json::Value {
    let hide = |v: &Option<String>| v.as_ref().map(|_| "***");
    serde_json::json!({
        "email": profile.email,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "birth_date": hide(&profile.birth_date),
        "phone": hide(&profile.phone),
        "extension": hide(&profile.extension),
        "zip": profile.zip,
    })
}

/// `masked` with the credential state, if given, as JSON appended to
/// `out`, written from borrows: the same bytes as `masked(profile)` (with
/// `"credential"` set) prints, keys in the same (sorted) order.
pub fn write_masked(
    out: &mut Vec<u8>,
    profile: &Profile,
    credential: Option<&str>,
    roles: Option<&[String]>,
) {
    #[derive(serde::Serialize)]
    struct Masked<'a> {
        birth_date: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        credential: Option<&'a str>,
        email: &'a str,
        extension: Option<&'a str>,
        first_name: &'a str,
        last_name: &'a str,
        phone: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        roles: Option<&'a [String]>,
        zip: Option<&'a str>,
    }
    let hide = |v: &Option<String>| v.as_ref().map(|_| "***");
    let m = Masked {
        birth_date: hide(&profile.birth_date),
        credential,
        email: &profile.email,
        extension: hide(&profile.extension),
        first_name: &profile.first_name,
        last_name: &profile.last_name,
        phone: hide(&profile.phone),
        roles,
        zip: profile.zip.as_deref(),
    };
    // Strings into a Vec: nothing here can fail.
    let _ = serde_json::to_writer(out, &m);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-formed chain of `n` rows, one revision each.
    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        let mut rows = Vec::new();
        for seq in 1..=n {
            let after = Some(format!("{{\"n\":{seq}}}"));
            let before = (seq > 1).then(|| format!("{{\"n\":{}}}", seq - 1));
            let at = format!("2026-01-01T00:00:{seq:02}Z");
            let subject = format!("user{seq}@example.org");
            let hash = row_hash(
                &prev,
                seq,
                &at,
                "admin",
                "update",
                &subject,
                before.as_deref(),
                after.as_deref(),
            );
            rows.push(AuditEntry {
                seq,
                revision: seq,
                at,
                actor: "admin".into(),
                op: "update".into(),
                subject,
                before: None,
                after: None,
                prev_hash: prev.clone(),
                hash: hash.clone(),
                raw: (before, after),
            });
            prev = hash;
        }
        rows
    }

    #[test]
    fn row_hash_covers_every_field_and_the_previous_hash() {
        type Row = (
            String,
            i64,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
        );
        type Values = (Option<&'static str>, Option<&'static str>);
        let base: (Row, Values) = (
            (GENESIS.to_string(), 1, "t", "a", "o", "s"),
            (Some("b"), Some("c")),
        );
        let hash = |(r, v): &(Row, Values)| row_hash(&r.0, r.1, r.2, r.3, r.4, r.5, v.0, v.1);
        let h = hash(&base);
        assert_eq!(h.len(), 64);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(h, hash(&base), "the hash is deterministic");
        let edits: [fn(&mut (Row, Values)); 10] = [
            |(r, _)| r.0 = "1".repeat(64),
            |(r, _)| r.1 = 2,
            |(r, _)| r.2 = "u",
            |(r, _)| r.3 = "b",
            |(r, _)| r.4 = "p",
            |(r, _)| r.5 = "x",
            |(_, v)| v.0 = None,
            |(_, v)| v.0 = Some(""),
            |(_, v)| v.1 = None,
            // Moving bytes from one field to the next changes the hash.
            |(r, _)| (r.3, r.4) = ("ao", ""),
        ];
        let mut seen = std::collections::HashSet::from([h]);
        for edit in edits {
            let mut v = base.clone();
            edit(&mut v);
            assert!(seen.insert(hash(&v)), "{v:?} hashes like another row");
        }
    }

    #[test]
    fn row_hash_is_stable_across_releases() {
        // Stores written by earlier releases must still verify.
        let h = row_hash(
            GENESIS,
            1,
            "2026-01-01T00:00:00Z",
            "admin",
            "create",
            "a@example.org",
            None,
            Some("{}"),
        );
        // Computed independently (Python's hashlib) from the format above:
        // length-prefixed fields, tag 0 for an absent value.
        let pinned = "b73ff78be7237ced246f449ec2857da05f054a3fd390c2c7b3d5d7d8081a9108";
        assert_eq!(h, pinned);
    }

    #[test]
    fn an_intact_chain_verifies() {
        for n in [0, 1, 2, 5] {
            assert_eq!(verify(&chain(n), n), Ok(()), "{n} rows");
        }
        // Rows link: each row's prev_hash is the hash before it.
        let rows = chain(3);
        assert_eq!(rows[0].prev_hash, GENESIS);
        assert_eq!(rows[1].prev_hash, rows[0].hash);
        assert_eq!(rows[2].prev_hash, rows[1].hash);
    }

    #[test]
    fn tampering_is_found_at_the_row_it_touched() {
        type Tamper = fn(&mut Vec<AuditEntry>);
        let row = |seq, reason| Broken::Row { seq, reason };
        let edited = "its content does not match its hash (the row was edited)";
        let unlinked = "does not follow the row before it (a row was removed or inserted)";
        let cases: [(&str, Tamper, Broken); 9] = [
            (
                "edit actor",
                |r| r[1].actor = "mallory".into(),
                row(2, edited),
            ),
            ("edit op", |r| r[2].op = "delete".into(), row(3, edited)),
            (
                "edit subject",
                |r| r[0].subject = "x@example.org".into(),
                row(1, edited),
            ),
            (
                "edit after",
                |r| r[3].raw.1 = Some("{\"n\":99}".into()),
                row(4, edited),
            ),
            ("drop before", |r| r[3].raw.0 = None, row(4, edited)),
            (
                "edit time",
                |r| r[4].at = "2030-01-01T00:00:00Z".into(),
                row(5, edited),
            ),
            (
                "remove a middle row",
                |r| {
                    r.remove(2);
                },
                row(4, unlinked),
            ),
            ("swap two rows", |r| r.swap(1, 2), row(3, unlinked)),
            (
                "re-hash an edited row",
                |r| {
                    // The edited row's own hash is recomputed, but the next row
                    // still holds the old one.
                    r[1].actor = "mallory".into();
                    r[1].hash = r[1].content_hash(&r[1].prev_hash);
                },
                row(3, unlinked),
            ),
        ];
        for (name, tamper, want) in cases {
            let mut rows = chain(5);
            tamper(&mut rows);
            assert_eq!(verify(&rows, 5), Err(want), "{name}");
        }
    }

    #[test]
    fn a_truncated_or_renumbered_chain_is_found() {
        let cut = |last, revision| Broken::Truncated { last, revision };
        // The last rows cut off: the chain holds, the revision says otherwise.
        let rows = chain(3);
        assert_eq!(verify(&rows, 5), Err(cut(3, 5)));
        assert_eq!(verify(&[], 2), Err(cut(0, 2)));
        assert_eq!(
            cut(3, 5).to_string(),
            "the audit log ends at revision 3 but the store is at revision 5: rows were removed"
        );
        // The first row removed.
        let mut rows = chain(3);
        rows.remove(0);
        assert_eq!(
            verify(&rows, 3),
            Err(Broken::Row {
                seq: 2,
                reason: "does not follow the row before it (a row was removed or inserted)"
            })
        );
        // A revision that does not grow, hashed consistently.
        let mut rows = chain(2);
        rows[1].revision = 1;
        rows[1].hash = rows[1].content_hash(&rows[0].hash);
        assert_eq!(
            verify(&rows, 1),
            Err(Broken::Row {
                seq: 2,
                reason: "its revision does not follow the row before it"
            })
        );
        assert_eq!(
            Broken::Row {
                seq: 2,
                reason: "x"
            }
            .to_string(),
            "audit row 2: x"
        );
    }

    #[test]
    fn the_log_numbers_rows_and_chains_their_hashes() {
        let mut log = AuditLog::new(7, None);
        // A row borrows the log: keep what is compared.
        let owned = |r: AuditRow| Kept {
            seq: r.seq,
            revision: r.revision,
            hash: r.hash.to_string(),
        };
        let a = owned(log.push("t", "ann", "create_group", "g", None, Some("{}")));
        let mut text = RowText::default();
        let b = owned(log.row("t", "ann", &Change::DeleteGroup { name: "g" }, &mut text));
        assert_eq!((a.seq, a.revision, b.seq, b.revision), (1, 8, 2, 9));
        assert_eq!(
            a.hash,
            row_hash(
                GENESIS,
                8,
                "t",
                "ann",
                "create_group",
                "g",
                None,
                Some("{}")
            )
        );
        assert_eq!(
            b.hash,
            row_hash(&a.hash, 9, "t", "ann", "delete_group", "g", None, None)
        );
        assert_eq!(log.prev_hash, b.hash);
        let after = AuditLog::new(9, Some((2, b.hash.clone())));
        assert_eq!((after.next_seq, after.prev_hash), (3, b.hash));
    }

    /// The rows stores wrote before keep their meaning: each change's op,
    /// subject and values, byte for byte.
    #[test]
    fn each_change_makes_the_row_stores_have_always_written() {
        let profile = Profile {
            email: "a@x.org".into(),
            first_name: "A".into(),
            last_name: "B".into(),
            birth_date: Some("1990-01-02".into()),
            phone: None,
            extension: None,
            zip: Some("62701".into()),
        };
        let roles = ["caseworker".to_string(), "user".to_string()];
        let product = Entitlement::new("products", "webcenter");
        let scope = ["G".to_string()];
        let (user_name, group) = ("ann", "G");
        // The change, its op, subject, before and after.
        type Case<'a> = (
            Change<'a>,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: [Case; 13] = [
            (
                Change::CreateGroup {
                    name: group,
                    kind: GroupType::Project,
                    lwia: Some(7),
                },
                "create_group",
                "G",
                None,
                Some(r#"{"lwia":7,"type":"project"}"#),
            ),
            (
                Change::CreateAccount {
                    user_name,
                    profile: &profile,
                    credential: CredentialState::Invited,
                    roles: &roles,
                },
                "create_account",
                "ann",
                None,
                Some(
                    r#"{"birth_date":"***","credential":"invited","email":"a@x.org","extension":null,"first_name":"A","last_name":"B","phone":null,"roles":["caseworker","user"],"zip":"62701"}"#,
                ),
            ),
            (
                Change::Role {
                    user_name,
                    role: "user",
                    granted: false,
                },
                "revoke_role",
                "ann",
                Some(r#"{"role":"user"}"#),
                None,
            ),
            (
                Change::Entitlement {
                    user_name,
                    entitlement: &product,
                    granted: true,
                },
                "grant_entitlement",
                "ann",
                None,
                Some(r#"{"kind":"products","value":"webcenter"}"#),
            ),
            (
                Change::CaseManager {
                    user_name,
                    before: None,
                    after: Some("bo"),
                },
                "set_case_manager",
                "ann",
                Some(r#"{"case_manager":null}"#),
                Some(r#"{"case_manager":"bo"}"#),
            ),
            (
                Change::SetActive {
                    user_name,
                    active: false,
                },
                "deactivate_account",
                "ann",
                Some(r#"{"active":true}"#),
                Some(r#"{"active":false}"#),
            ),
            (
                Change::SetUserManager {
                    user_name,
                    group,
                    user_manager: true,
                },
                "grant_user_manager",
                "ann in G",
                Some(r#"{"user_manager":false}"#),
                Some(r#"{"user_manager":true}"#),
            ),
            (
                Change::AddMembership {
                    user_name,
                    group,
                    user_manager: false,
                },
                "add_membership",
                "ann in G",
                None,
                Some(r#"{"user_manager":false}"#),
            ),
            (
                Change::Activate {
                    user_name,
                    reset: true,
                },
                "reset_password",
                "ann",
                None,
                Some(r#"{"credential":"password_set"}"#),
            ),
            (
                Change::RemoveMembership {
                    user_name,
                    group,
                    was: true,
                },
                "remove_membership",
                "ann in G",
                Some(r#"{"user_manager":true}"#),
                None,
            ),
            (
                Change::UpdateGroup {
                    name: group,
                    was: ("organization", None),
                    new_name: "H",
                    kind: GroupType::Project,
                    lwia: Some(3),
                },
                "update_group",
                "G",
                Some(r#"{"lwia":null,"name":"G","type":"organization"}"#),
                Some(r#"{"lwia":3,"name":"H","type":"project"}"#),
            ),
            (
                Change::ScimField {
                    of: Owner::Group,
                    name: group,
                    key: "external_id",
                    value: Some("x"),
                },
                "set_group_scim_field",
                "G",
                None,
                Some(r#"{"external_id":"x"}"#),
            ),
            (
                Change::CreateToken {
                    name: "t",
                    scope: Some(&scope),
                    group_ids: Some(&[4]),
                },
                "create_token",
                "t",
                None,
                Some(r#"{"group_ids":[4],"scope":["G"]}"#),
            ),
        ];
        for (change, op, subject, before, after) in cases {
            assert_eq!(change.op(), op);
            assert_eq!(
                RowText::default().fill(&change),
                (subject, before, after),
                "{op}"
            );
            // The same text, written over buffers a row before left full.
            let mut buf = RowText::default();
            buf.fill(&Change::DeleteAccount {
                user_name: "left over",
            });
            let mut log = AuditLog::new(0, None);
            let row = log.row("t", "ann", &change, &mut buf);
            assert_eq!(
                (row.subject, row.before, row.after),
                (subject, before, after),
                "{op}"
            );
        }
    }

    /// What a test keeps of an [`AuditRow`].
    struct Kept {
        seq: i64,
        revision: i64,
        hash: String,
    }

    fn profile(email: &str, first: &str, pii: bool) -> Profile {
        let some = |v: &str| pii.then(|| v.to_string());
        Profile {
            email: email.into(),
            first_name: first.into(),
            last_name: "O'Neil \"Jr\" \\ Núñez\t".into(),
            birth_date: some("1990-01-02"),
            phone: some("217-555-0100"),
            extension: some("12"),
            zip: some("60601"),
        }
    }

    #[test]
    fn masked_json_written_from_borrows_is_the_bytes_masked_prints() {
        // Existing stores hash these bytes: they must not change.
        for p in [
            profile("ann@x.org", "Ann", true),
            profile("b\u{e9}@x.org", "\u{1F600} <b>&", false),
        ] {
            let mut out = Vec::new();
            write_masked(&mut out, &p, None, None);
            assert_eq!(String::from_utf8(out).unwrap(), masked(&p).to_string());
            for state in ["invited", "password_set"] {
                let mut expected = masked(&p);
                expected["credential"] = state.into();
                let mut out = b"left over".to_vec();
                out.clear();
                write_masked(&mut out, &p, Some(state), None);
                assert_eq!(String::from_utf8(out).unwrap(), expected.to_string());
            }
        }
        let p = profile("ann@x.org", "Ann", true);
        let mut out = Vec::new();
        write_masked(&mut out, &p, Some("invited"), None);
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("1990") && !text.contains("217-555"),
            "{text}"
        );
    }
}
