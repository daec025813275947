//! The audit chain: each row's hash covers its content and the previous
//! row's hash, so editing, inserting or deleting a row breaks the chain.

use super::AuditEntry;
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
