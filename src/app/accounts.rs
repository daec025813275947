//! `roster accounts`: the store's accounts as the seed systems' user
//! screens list them (SPEC §9), each with its groups, roles, entitlements
//! and case manager, narrowed by the filters those screens offer. Filters
//! combine: an account is listed when it passes every one given.

use crate::domain::{Account, CredentialState};
use crate::finding::did_you_mean;
use crate::store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// `--status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Accounts that can sign in (invited, activated or SSO).
    Active,
    /// Active accounts whose person never activated the invitation.
    Invited,
    /// Active accounts whose person signed in or set a password.
    Activated,
    /// Deactivated accounts.
    Deactivated,
}

/// How an account's person signs in, as far as the store says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// Invited, never activated.
    Invited,
    /// Signed in or set a password.
    Activated,
    /// Signed in by the identity provider: no password, no invitation.
    Sso,
    /// The store does not say (a SCIM provider keeps no credential state
    /// that SCIM publishes).
    Unknown,
}

impl SignIn {
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            SignIn::Invited => Some("invited"),
            SignIn::Activated => Some("activated"),
            SignIn::Sso => Some("sso"),
            SignIn::Unknown => None,
        }
    }
}

/// What to list: every field `None` lists every account.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<Status>,
    /// `Some(true)`: accounts with a case manager; `Some(false)`: without.
    pub assigned: Option<bool>,
    /// Members of this group.
    pub group: Option<String>,
    /// Accounts whose case manager is the account with this email.
    pub case_manager: Option<String>,
}

/// One group an account belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOf {
    pub name: String,
    /// May manage this group's users.
    pub user_manager: bool,
}

/// The account that oversees a listed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseManager {
    pub user_name: String,
    /// `None` if that account is gone from the store.
    pub email: Option<String>,
}

/// One listed account.
#[derive(Debug, Clone)]
pub struct Listed {
    pub account: Account,
    pub sign_in: SignIn,
    /// In name order.
    pub groups: Vec<GroupOf>,
    pub case_manager: Option<CaseManager>,
    /// When the person activated (set a password on the activation page).
    pub activated_at: Option<String>,
    /// The state of the account's invitation (SPEC §10: queued, sent,
    /// reminded, activated, expired or failed); `None` when the store
    /// holds no invitation or mail for it.
    pub invitation: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("group `{name}` does not exist in the store{}", hint(suggestion))]
    UnknownGroup {
        name: String,
        suggestion: Option<String>,
    },
    #[error(
        "no account in the store has the email `{email}`, so none has it as case manager{}",
        hint(suggestion)
    )]
    UnknownCaseManager {
        email: String,
        suggestion: Option<String>,
    },
    #[error(
        "--status {status}: the store {url} does not say whether an account has activated \
         (SCIM publishes no credential state); list by activation on the roster store that \
         `roster serve` publishes (sqlite: or postgres://)"
    )]
    StatusUnknown { status: &'static str, url: String },
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_deref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Invited => "invited",
            Status::Activated => "activated",
            Status::Deactivated => "deactivated",
        }
    }

    fn admits(self, a: &Account, sign_in: SignIn) -> bool {
        match self {
            Status::Active => a.active,
            Status::Deactivated => !a.active,
            Status::Invited => a.active && sign_in == SignIn::Invited,
            Status::Activated => a.active && sign_in == SignIn::Activated,
        }
    }
}

/// How the person of `a` signs in; `known`: whether the store keeps
/// credential states at all.
fn sign_in_of(a: &Account, known: bool) -> SignIn {
    match a.credential {
        _ if !known => SignIn::Unknown,
        CredentialState::Invited => SignIn::Invited,
        CredentialState::PasswordSet => SignIn::Activated,
        CredentialState::None => SignIn::Sso,
    }
}

/// The accounts of `store` that pass `filter`, in user-name order; `ttl`:
/// how long an invitation's link works (for its state).
pub fn list(
    store: &dyn Store,
    filter: &Filter,
    ttl: Duration,
) -> Result<Vec<Listed>, AccountsError> {
    // A SCIM provider's users carry no credential state: every account
    // reads as having none, which is not "signed in by SSO".
    let known = !crate::store::scim::is_scim(store.url());
    if let Some(s @ (Status::Invited | Status::Activated)) = filter.status
        && !known
    {
        return Err(AccountsError::StatusUnknown {
            status: s.as_str(),
            url: crate::store::display_url(store.url()),
        });
    }
    let mut r = store.reader()?;
    let groups = r.groups(None)?;
    let group = match &filter.group {
        Some(name) => Some(find_group(name, groups.iter().map(|g| g.name.as_str()))?),
        None => None,
    };
    let accounts = r.all_accounts()?;
    let mut activated = r.activation_times()?;
    let now = jiff::Timestamp::now();
    // A SCIM provider keeps no invitations.
    let mails = if known { r.mail_states()? } else { Vec::new() };
    let mut invitations: HashMap<String, &'static str> = mails
        .iter()
        .map(|m| {
            (
                m.user_name.to_lowercase(),
                super::invitations::invitation_state(m, now, ttl),
            )
        })
        .collect();
    let names: Vec<String> = groups.into_iter().map(|g| g.name).collect();
    let mut groups_of: HashMap<String, Vec<GroupOf>> = HashMap::new();
    for m in r.memberships(&names)? {
        groups_of
            .entry(m.user_name.to_lowercase())
            .or_default()
            .push(GroupOf {
                name: m.group,
                user_manager: m.user_manager,
            });
    }
    // The emails of the accounts that oversee others, by lower-cased user name.
    let overseeing: HashSet<String> = accounts
        .iter()
        .filter_map(|a| a.case_manager.as_ref().map(|c| c.to_lowercase()))
        .collect();
    let email_of: HashMap<String, String> = accounts
        .iter()
        .map(|a| (a.user_name.to_lowercase(), a))
        .filter(|(key, _)| overseeing.contains(key))
        .map(|(key, a)| (key, a.profile.email.clone()))
        .collect();
    let managers = match &filter.case_manager {
        Some(email) => Some(case_managers(email, &accounts)?),
        None => None,
    };
    let mut out = Vec::new();
    for a in accounts {
        let key = a.user_name.to_lowercase();
        let sign_in = sign_in_of(&a, known);
        let mut groups = groups_of.remove(&key).unwrap_or_default();
        groups.sort_by(|x, y| x.name.cmp(&y.name));
        let keep = filter.status.is_none_or(|s| s.admits(&a, sign_in))
            && filter
                .assigned
                .is_none_or(|want| a.case_manager.is_some() == want)
            && group
                .as_deref()
                .is_none_or(|g| groups.iter().any(|x| x.name == g))
            && managers.as_ref().is_none_or(|m| {
                a.case_manager
                    .as_ref()
                    .is_some_and(|cm| m.contains(&cm.to_lowercase()))
            });
        if !keep {
            continue;
        }
        let case_manager = a.case_manager.as_ref().map(|cm| CaseManager {
            user_name: cm.clone(),
            email: email_of.get(&cm.to_lowercase()).cloned(),
        });
        out.push(Listed {
            account: a,
            sign_in,
            groups,
            case_manager,
            activated_at: activated.remove(&key),
            invitation: invitations.remove(&key),
        });
    }
    Ok(out)
}

/// The store's group that `name` names: exactly, else the one group equal
/// to it without case and surrounding blanks.
fn find_group<'a>(
    name: &str,
    names: impl Iterator<Item = &'a str> + Clone,
) -> Result<String, AccountsError> {
    if let Some(n) = names.clone().find(|n| *n == name) {
        return Ok(n.to_string());
    }
    let folded = name.trim().to_lowercase();
    let loose: Vec<&str> = names
        .clone()
        .filter(|n| n.trim().to_lowercase() == folded)
        .collect();
    if let [one] = loose.as_slice() {
        return Ok(one.to_string());
    }
    Err(AccountsError::UnknownGroup {
        name: name.to_string(),
        suggestion: did_you_mean(name, names).map(str::to_string),
    })
}

/// The lower-cased user names of the accounts whose email is `email`
/// (emails compare case-insensitively).
fn case_managers(email: &str, accounts: &[Account]) -> Result<HashSet<String>, AccountsError> {
    let want = email.trim().to_lowercase();
    let found: HashSet<String> = accounts
        .iter()
        .filter(|a| a.profile.email.trim().to_lowercase() == want)
        .map(|a| a.user_name.to_lowercase())
        .collect();
    if !found.is_empty() {
        return Ok(found);
    }
    // Suggest among the accounts that oversee someone first: those are the
    // emails this filter is for.
    let overseeing: HashSet<String> = accounts
        .iter()
        .filter_map(|a| a.case_manager.as_ref().map(|c| c.to_lowercase()))
        .collect();
    let (managers, others): (Vec<&Account>, Vec<&Account>) = accounts
        .iter()
        .partition(|a| overseeing.contains(&a.user_name.to_lowercase()));
    let emails = |list: &[&Account]| -> BTreeMap<String, ()> {
        list.iter()
            .map(|a| (a.profile.email.to_lowercase(), ()))
            .collect()
    };
    let (managers, others) = (emails(&managers), emails(&others));
    let suggestion = did_you_mean(&want, managers.keys().map(String::as_str))
        .or_else(|| did_you_mean(&want, others.keys().map(String::as_str)))
        .map(str::to_string);
    Err(AccountsError::UnknownCaseManager {
        email: email.to_string(),
        suggestion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GroupType;
    use crate::domain::Profile;
    use crate::store::NewCredential;
    use crate::store::memory::MemoryStore;

    const TTL: Duration = Duration::from_secs(14 * 86_400);

    /// A staff member overseeing two students: one invited and in a group,
    /// one signed in by SSO; a deactivated account with a password.
    fn store() -> MemoryStore {
        let s = MemoryStore::new();
        let mut w = s.begin("t", "2026-01-01T00:00:00Z").unwrap();
        w.create_group("North Team", GroupType::Organization, None)
            .unwrap();
        w.create_account(
            "BMitchell",
            &Profile::named("brandon@example.edu", "Brandon", "Mitchell"),
            NewCredential::Password {
                hash: "x".into(),
                password: "y".into(),
            },
        )
        .unwrap();
        w.create_account(
            "NHoliday",
            &Profile::named("noelle@example.edu", "Noelle", "Holiday"),
            NewCredential::Invite {
                token: "t".into(),
                token_digest: "d".into(),
            },
        )
        .unwrap();
        w.create_account(
            "SSmith",
            &Profile::named("sam@example.edu", "Sam", "Smith"),
            NewCredential::Sso,
        )
        .unwrap();
        w.create_account(
            "OGone",
            &Profile::named("old@example.edu", "Old", "Gone"),
            NewCredential::Password {
                hash: "x".into(),
                password: "y".into(),
            },
        )
        .unwrap();
        w.deactivate_account("OGone").unwrap();
        w.add_membership("NHoliday", "North Team", false).unwrap();
        w.add_membership("BMitchell", "North Team", true).unwrap();
        w.set_case_manager("NHoliday", Some("BMitchell")).unwrap();
        w.set_case_manager("SSmith", Some("BMitchell")).unwrap();
        w.commit().unwrap();
        s
    }

    fn names(s: &MemoryStore, f: Filter) -> Vec<String> {
        list(s, &f, TTL)
            .unwrap()
            .into_iter()
            .map(|l| l.account.user_name)
            .collect()
    }

    #[test]
    fn each_status_lists_its_accounts() {
        let s = store();
        let status = |st| {
            names(
                &s,
                Filter {
                    status: Some(st),
                    ..Filter::default()
                },
            )
        };
        assert_eq!(status(Status::Active), ["BMitchell", "NHoliday", "SSmith"]);
        assert_eq!(status(Status::Invited), ["NHoliday"]);
        assert_eq!(status(Status::Activated), ["BMitchell"]);
        assert_eq!(status(Status::Deactivated), ["OGone"]);
    }

    #[test]
    fn filters_combine() {
        let s = store();
        let f = Filter {
            status: Some(Status::Active),
            assigned: Some(true),
            group: Some("north team".into()),
            case_manager: Some("Brandon@Example.edu".into()),
        };
        assert_eq!(names(&s, f), ["NHoliday"]);
        let unassigned = Filter {
            assigned: Some(false),
            ..Filter::default()
        };
        assert_eq!(names(&s, unassigned), ["BMitchell", "OGone"]);
    }

    #[test]
    fn listed_accounts_carry_groups_and_case_manager() {
        let s = store();
        let all = list(&s, &Filter::default(), TTL).unwrap();
        let b = &all[0];
        assert_eq!(
            b.groups,
            [GroupOf {
                name: "North Team".into(),
                user_manager: true
            }]
        );
        let n = all
            .iter()
            .find(|l| l.account.user_name == "NHoliday")
            .unwrap();
        assert_eq!(
            n.case_manager,
            Some(CaseManager {
                user_name: "BMitchell".into(),
                email: Some("brandon@example.edu".into())
            })
        );
        assert_eq!(n.sign_in, SignIn::Invited);
        let sam = all
            .iter()
            .find(|l| l.account.user_name == "SSmith")
            .unwrap();
        assert_eq!(sam.sign_in, SignIn::Sso);
    }

    #[test]
    fn unknown_names_are_errors_with_a_suggestion() {
        let s = store();
        let e = list(
            &s,
            &Filter {
                group: Some("Nort Team".into()),
                ..Filter::default()
            },
            TTL,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "group `Nort Team` does not exist in the store; did you mean `North Team`?"
        );
        let e = list(
            &s,
            &Filter {
                case_manager: Some("brandon@example.com".into()),
                ..Filter::default()
            },
            TTL,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no account in the store has the email `brandon@example.com`, so none has it as case manager; did you mean `brandon@example.edu`?"
        );
    }
}
