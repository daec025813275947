//! The audit chain: each row's hash covers its content and the previous
//! row's hash, so editing, inserting or deleting a row breaks the chain.

use super::AuditEntry;
use crate::domain::Profile;
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
    let hex = hex_hash(prev, revision, at, actor, op, subject, before, after);
    hex.iter().map(|&b| char::from(b)).collect()
}

/// [`row_hash`] as ASCII bytes, on the stack.
#[allow(clippy::too_many_arguments)]
fn hex_hash(
    prev: &str,
    revision: i64,
    at: &str,
    actor: &str,
    op: &str,
    subject: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> [u8; 64] {
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
    let mut hex = [0u8; 64];
    data_encoding::HEXLOWER.encode_mut(&h.finalize(), &mut hex);
    hex
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
        match last {
            Some((seq, hash)) => AuditLog {
                revision,
                prev_hash: hash,
                next_seq: seq + 1,
            },
            None => AuditLog {
                revision,
                prev_hash: GENESIS.to_string(),
                next_seq: 1,
            },
        }
    }

    /// The next row: bumps the revision and moves the chain on (its hash
    /// is the chain's head, so the row borrows the log).
    pub fn row<'a>(
        &'a mut self,
        now: &'a str,
        actor: &'a str,
        op: &'a str,
        subject: &'a str,
        before: Option<&'a str>,
        after: Option<&'a str>,
    ) -> AuditRow<'a> {
        self.revision += 1;
        let hex = hex_hash(
            &self.prev_hash,
            self.revision,
            now,
            actor,
            op,
            subject,
            before,
            after,
        );
        // The head's buffer is reused: hex digits are ASCII.
        self.prev_hash.clear();
        self.prev_hash.extend(hex.iter().map(|&b| char::from(b)));
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
        let (before, after) = &e.raw;
        let h = row_hash(
            &prev,
            e.revision,
            &e.at,
            &e.actor,
            &e.op,
            &e.subject,
            before.as_deref(),
            after.as_deref(),
        );
        if h != e.hash {
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

/// Personal data in audit rows: present or not, never the value.
pub fn masked(profile: &Profile) -> serde_json::Value {
    let hide = |v: &Option<String>| v.as_ref().map(|_| "***");
    serde_json::json!({
        "email": profile.email,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "birth_date": hide(&profile.birth_date),
        "phone": hide(&profile.phone),
        "extension": hide(&profile.extension),
        "zip": profile.zip,
        "role": profile.role.as_str(),
    })
}

/// [`masked`] with the credential state, if given, as JSON appended to
/// `out`, written from borrows: the same bytes as `masked(profile)` (with
/// `"credential"` set) prints, keys in the same (sorted) order.
pub fn write_masked(out: &mut Vec<u8>, profile: &Profile, credential: Option<&str>) {
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
        role: &'a str,
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
        role: profile.role.as_str(),
        zip: profile.zip.as_deref(),
    };
    // Strings into a Vec: nothing here can fail.
    let _ = serde_json::to_writer(out, &m);
}

/// Audit values of the flags, as `serde_json` writes them.
pub fn manager_json(user_manager: bool) -> &'static str {
    if user_manager {
        r#"{"user_manager":true}"#
    } else {
        r#"{"user_manager":false}"#
    }
}

/// Audit value of the active flag.
pub fn active_json(active: bool) -> &'static str {
    if active {
        r#"{"active":true}"#
    } else {
        r#"{"active":false}"#
    }
}

/// The subject of a membership's audit rows.
pub fn membership_subject(user_name: &str, group: &str) -> String {
    let mut s = String::new();
    write_membership_subject(&mut s, user_name, group);
    s
}

/// [`membership_subject`], written over `out` (a reused buffer).
pub fn write_membership_subject(out: &mut String, user_name: &str, group: &str) {
    out.clear();
    out.push_str(user_name);
    out.push_str(" in ");
    out.push_str(group);
}

/// An account (re)activated or deactivated: its audit row's op, before
/// and after.
pub fn activation(active: bool) -> (&'static str, &'static str, &'static str) {
    if active {
        ("reactivate_account", active_json(false), active_json(true))
    } else {
        ("deactivate_account", active_json(true), active_json(false))
    }
}

/// User management granted or revoked: the audit row's op, before and
/// after.
pub fn grant(user_manager: bool) -> (&'static str, &'static str, &'static str) {
    let op = if user_manager {
        "grant_user_manager"
    } else {
        "revoke_user_manager"
    };
    (op, manager_json(!user_manager), manager_json(user_manager))
}

/// What a store answers to a change that is already so.
pub fn already_active(user_name: &str, active: bool) -> super::StoreError {
    super::StoreError::Invalid(format!(
        "account `{user_name}` is already {}",
        if active { "active" } else { "inactive" }
    ))
}

/// What a store answers to a grant or revoke that finds no such membership.
pub fn no_grant_to_change(user_name: &str, group: &str, user_manager: bool) -> super::StoreError {
    super::StoreError::Invalid(format!(
        "`{user_name}` is not a member of `{group}` {} the user-manager grant",
        if user_manager { "without" } else { "with" }
    ))
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
        let base = || {
            (
                GENESIS.to_string(),
                1i64,
                "t".to_string(),
                "a".to_string(),
                "o".to_string(),
                "s".to_string(),
                Some("b".to_string()),
                Some("c".to_string()),
            )
        };
        let hash = |r: &(
            String,
            i64,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
        )| {
            row_hash(
                &r.0,
                r.1,
                &r.2,
                &r.3,
                &r.4,
                &r.5,
                r.6.as_deref(),
                r.7.as_deref(),
            )
        };
        let h = hash(&base());
        assert_eq!(h.len(), 64);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(h, hash(&base()), "the hash is deterministic");
        let mut variants: Vec<_> = Vec::new();
        let mut v = base();
        v.0 = "1".repeat(64);
        variants.push(v);
        let mut v = base();
        v.1 = 2;
        variants.push(v);
        let mut v = base();
        v.2 = "u".into();
        variants.push(v);
        let mut v = base();
        v.3 = "b".into();
        variants.push(v);
        let mut v = base();
        v.4 = "p".into();
        variants.push(v);
        let mut v = base();
        v.5 = "x".into();
        variants.push(v);
        let mut v = base();
        v.6 = None;
        variants.push(v);
        let mut v = base();
        v.6 = Some(String::new());
        variants.push(v);
        let mut v = base();
        v.7 = None;
        variants.push(v);
        // Moving bytes from one field to the next changes the hash.
        let mut v = base();
        v.3 = "ao".into();
        v.4 = String::new();
        variants.push(v);
        let mut seen = std::collections::HashSet::from([h]);
        for v in &variants {
            assert!(seen.insert(hash(v)), "{v:?} hashes like another row");
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
        let edited = "its content does not match its hash (the row was edited)";
        let unlinked = "does not follow the row before it (a row was removed or inserted)";
        let cases: [(&str, Tamper, Broken); 9] = [
            (
                "edit actor",
                |r| r[1].actor = "mallory".into(),
                Broken::Row {
                    seq: 2,
                    reason: edited,
                },
            ),
            (
                "edit op",
                |r| r[2].op = "delete".into(),
                Broken::Row {
                    seq: 3,
                    reason: edited,
                },
            ),
            (
                "edit subject",
                |r| r[0].subject = "x@example.org".into(),
                Broken::Row {
                    seq: 1,
                    reason: edited,
                },
            ),
            (
                "edit after",
                |r| r[3].raw.1 = Some("{\"n\":99}".into()),
                Broken::Row {
                    seq: 4,
                    reason: edited,
                },
            ),
            (
                "drop before",
                |r| r[3].raw.0 = None,
                Broken::Row {
                    seq: 4,
                    reason: edited,
                },
            ),
            (
                "edit time",
                |r| r[4].at = "2030-01-01T00:00:00Z".into(),
                Broken::Row {
                    seq: 5,
                    reason: edited,
                },
            ),
            (
                "remove a middle row",
                |r| {
                    r.remove(2);
                },
                Broken::Row {
                    seq: 4,
                    reason: unlinked,
                },
            ),
            (
                "swap two rows",
                |r| r.swap(1, 2),
                Broken::Row {
                    seq: 3,
                    reason: unlinked,
                },
            ),
            (
                "re-hash an edited row",
                |r| {
                    // The edited row's own hash is recomputed, but the next row
                    // still holds the old one.
                    r[1].actor = "mallory".into();
                    let e = &r[1];
                    r[1].hash = row_hash(
                        &e.prev_hash,
                        e.revision,
                        &e.at,
                        &e.actor,
                        &e.op,
                        &e.subject,
                        e.raw.0.as_deref(),
                        e.raw.1.as_deref(),
                    );
                },
                Broken::Row {
                    seq: 3,
                    reason: unlinked,
                },
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
        // The last rows cut off: the chain holds, the revision says otherwise.
        let rows = chain(3);
        assert_eq!(
            verify(&rows, 5),
            Err(Broken::Truncated {
                last: 3,
                revision: 5
            })
        );
        assert_eq!(
            verify(&[], 2),
            Err(Broken::Truncated {
                last: 0,
                revision: 2
            })
        );
        assert_eq!(
            Broken::Truncated {
                last: 3,
                revision: 5
            }
            .to_string(),
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
        let r = &rows[1];
        let hash = row_hash(
            &r.prev_hash,
            1,
            &r.at,
            &r.actor,
            &r.op,
            &r.subject,
            r.raw.0.as_deref(),
            r.raw.1.as_deref(),
        );
        rows[1].revision = 1;
        rows[1].hash = hash;
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
        let a = owned(log.row("t", "ann", "create_group", "g", None, Some("{}")));
        let b = owned(log.row("t", "ann", "delete_group", "g", None, None));
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
            role: if pii {
                crate::domain::Role::Individual
            } else {
                Default::default()
            },
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
            write_masked(&mut out, &p, None);
            assert_eq!(String::from_utf8(out).unwrap(), masked(&p).to_string());
            for state in ["invited", "password_set"] {
                let mut expected = masked(&p);
                expected["credential"] = state.into();
                let mut out = b"left over".to_vec();
                out.clear();
                write_masked(&mut out, &p, Some(state));
                assert_eq!(String::from_utf8(out).unwrap(), expected.to_string());
            }
        }
        let p = profile("ann@x.org", "Ann", true);
        let mut out = Vec::new();
        write_masked(&mut out, &p, Some("invited"));
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("1990") && !text.contains("217-555"),
            "{text}"
        );
    }

    #[test]
    fn a_reused_subject_buffer_holds_only_the_last_subject() {
        let mut s = String::from("old text");
        write_membership_subject(&mut s, "ann", "Group A");
        assert_eq!(s, membership_subject("ann", "Group A"));
        assert_eq!(s, "ann in Group A");
    }
}
