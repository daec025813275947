//! Sealed plans (SPEC §11): a saved plan carries an HMAC-SHA256 over its
//! content, keyed with a secret only those who can open the store hold, so
//! whoever can write the plan file between CI jobs cannot change what
//! `apply` does.
//!
//! The content is the plan's JSON as serde writes it, with `digest` and
//! `seal` left out: a plan read back and written again gives the same bytes,
//! whatever the spacing of the file.

use super::Plan;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SEAL_PREFIX: &str = "hmac-sha256:";

/// Bytes mixed into every seal, so a seal is never valid as any other MAC
/// made with the same key.
const SEAL_CONTEXT: &[u8] = b"roster plan seal v1\n";

/// The least key a SCIM store's `ROSTER_PLAN_KEY` may hold.
pub const MIN_KEY_LEN: usize = crate::store::MIN_PLAN_KEY_LEN;

/// The plan's content: everything but `digest` and `seal`.
fn content(plan: &Plan) -> Vec<u8> {
    let mut bare = plan.clone();
    bare.digest = None;
    bare.seal = None;
    // Serializing plain data with string keys cannot fail.
    serde_json::to_vec(&bare).unwrap_or_default()
}

/// `sha256:` over the plan as printed (without personal data), so the
/// digest a reviewer sees is the same for the printed plan, the saved plan
/// and the plan `apply` runs, and no digest can be used to guess a birth date.
pub fn digest(plan: &Plan) -> String {
    crate::secrets::sha256(&content(&plan.clone().into_display(false)))
}

fn mac(plan: &Plan, key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(SEAL_CONTEXT);
    mac.update(&content(plan));
    mac
}

/// Seal a plan with the store's key (and set its digest).
pub fn seal(plan: &mut Plan, key: &[u8]) {
    plan.digest = Some(digest(plan));
    let tag = mac(plan, key).finalize().into_bytes();
    plan.seal = Some(format!(
        "{SEAL_PREFIX}{}",
        data_encoding::HEXLOWER.encode(&tag)
    ));
}

/// Why a saved plan is not the plan `roster plan -o` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Altered {
    /// No seal: a printed plan, or one whose seal was removed.
    Unsealed,
    /// The seal is not `hmac-sha256:` and 64 hex digits.
    Malformed,
    /// The digest does not match the content.
    Digest,
    /// The seal does not match the content under this store's key: the
    /// content changed, or the plan was sealed by another store.
    Seal,
    /// The file holds more than the plan it reads as (fields `roster plan`
    /// never writes): sealed content plus additions. A key given twice is
    /// not a plan at all.
    Additions,
}

/// Whether `text` is exactly `plan` as JSON, field for field: nothing the
/// plan's types would drop on reading (unknown fields).
pub fn is_exactly(plan: &Plan, text: &str) -> bool {
    let read: Result<serde_json::Value, _> = serde_json::from_str(text);
    match (read, serde_json::to_value(plan)) {
        (Ok(read), Ok(written)) => read == written,
        _ => false,
    }
}

/// Check a plan read from a file against the store's key.
pub fn verify(plan: &Plan, key: &[u8]) -> Result<(), Altered> {
    let Some(seal) = plan.seal.as_deref() else {
        return Err(Altered::Unsealed);
    };
    let tag = seal
        .strip_prefix(SEAL_PREFIX)
        .and_then(|hex| {
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(hex.as_bytes())
                .ok()
        })
        .filter(|t| t.len() == 32)
        .ok_or(Altered::Malformed)?;
    if plan.digest.as_deref() != Some(digest(plan).as_str()) {
        return Err(Altered::Digest);
    }
    // Constant-time comparison.
    mac(plan, key).verify_slice(&tag).map_err(|_| Altered::Seal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Profile;
    use crate::plan::Action;

    fn plan() -> Plan {
        let actions = vec![Action::CreateAccount {
            account: "MMcCray".into(),
            partner: "mandy@example.com".into(),
            profile: Profile {
                email: "mandy@example.com".into(),
                first_name: "Mandy".into(),
                last_name: "McCray".into(),
                birth_date: Some("1972-09-01".into()),
                phone: None,
                extension: None,
                zip: None,
            },
            sign_in: None,
            roles: vec!["public-viewer".into()],
        }];
        Plan::for_tests("sqlite:roster.db", 3, actions)
    }

    #[test]
    fn a_sealed_plan_verifies_and_any_change_breaks_it() {
        let key = [7u8; 32];
        let mut p = plan();
        seal(&mut p, &key);
        assert_eq!(verify(&p, &key), Ok(()));
        // Read back from its JSON, it still verifies.
        let back: Plan = serde_json::from_str(&serde_json::to_string_pretty(&p).unwrap()).unwrap();
        assert_eq!(verify(&back, &key), Ok(()));
        assert_eq!(verify(&p, &[8u8; 32]), Err(Altered::Seal), "another key");
        let text = serde_json::to_string_pretty(&p).unwrap();
        assert!(is_exactly(&p, &text));
        let extra = text.replacen('{', "{\"extra\": 1, ", 1);
        assert!(!is_exactly(&p, &extra), "an added field");
        let twice = text.replacen('{', "{\"removal_limit\": 9, ", 1);
        assert!(
            serde_json::from_str::<Plan>(&twice).is_err(),
            "a key given twice is not a plan"
        );
        let mut q = p.clone();
        q.removal_limit = 1000;
        assert_eq!(verify(&q, &key), Err(Altered::Digest));
        // Personal data is not in the digest, but it is in the seal.
        let mut q = p.clone();
        if let Action::CreateAccount { profile, .. } = &mut q.actions[0] {
            profile.birth_date = Some("1972-09-02".into());
        }
        assert_eq!(verify(&q, &key), Err(Altered::Seal));
        let mut q = p.clone();
        q.seal = None;
        assert_eq!(verify(&q, &key), Err(Altered::Unsealed));
        for bad in ["hmac-sha256:zz", "sha256:00", "hmac-sha256:"] {
            q.seal = Some(bad.into());
            assert_eq!(verify(&q, &key), Err(Altered::Malformed), "{bad}");
        }
        // Hex digits in either case; a digit short or one too many is malformed.
        let hex = p
            .seal
            .as_deref()
            .unwrap()
            .strip_prefix(SEAL_PREFIX)
            .unwrap();
        q.seal = Some(format!("{SEAL_PREFIX}{}", hex.to_uppercase()));
        assert_eq!(verify(&q, &key), Ok(()));
        for bad in [&hex[1..], &format!("{hex}0")] {
            q.seal = Some(format!("{SEAL_PREFIX}{bad}"));
            assert_eq!(verify(&q, &key), Err(Altered::Malformed), "{bad}");
        }
    }

    #[test]
    fn printed_and_saved_plans_share_a_digest_without_personal_data() {
        let p = plan();
        let shown = p.clone().into_display(false);
        assert_eq!(digest(&p), digest(&shown));
        let mut other = p.clone();
        other.store.revision = 4;
        assert_ne!(digest(&p), digest(&other));
    }
}
