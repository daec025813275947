//! Planning: gather what the roster needs from the store ([`gather`], the
//! only I/O), then decide ([`compute`], pure).

use super::{Action, Note, PersonalData, Plan, RemovalCap, Resolution, Seats, StoreRef, Summary};
use crate::domain::{Account, Entitlement, Membership, NameDob, Profile, SignIn};
use crate::finding::code::Code;
use crate::plan::{FORMAT_VERSION, Outcome};
use crate::resolve::{self, Live, Resolved};
use crate::roster::model::{Group, Partner, Policy, UnmanagedGroups, UserNames};
use crate::roster::normalize::{self, email_key};
use crate::store::{self, Reader, StoreError};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The desired state, as plain references into a merged roster.
pub struct Desired<'a> {
    pub groups: Vec<&'a Group>,
    pub partners: Vec<&'a Partner>,
    pub policy: &'a Policy,
    /// `sha256:…` of the roster files.
    pub digest: String,
}

/// What the store holds that matters to this roster.
#[derive(Default)]
pub struct LiveState {
    pub url: String,
    pub revision: i64,
    /// Candidate accounts first, then the other members of managed groups;
    /// one per user name.
    pub accounts: Vec<Account>,
    /// Lower-cased user name → position in `accounts`.
    pub index: HashMap<String, usize>,
    /// Each partner's place on the ladder (indexes into `accounts`), in roster order.
    pub resolved: Vec<Resolved>,
    /// Groups of the roster that exist, and every group when the policy
    /// looks at unmanaged ones.
    pub groups: Vec<store::Group>,
    /// Memberships of those groups.
    pub memberships: Vec<Membership>,
    /// User names in the store that new accounts' names could collide with.
    pub taken: Vec<String>,
    /// Lower-cased user names that also belong to a group the roster does not manage.
    pub in_other_groups: HashSet<String>,
    /// What the store cannot keep of this roster, as warnings for the plan.
    pub notes: Vec<Note>,
    /// Active accounts in the whole store, read when the policy limits
    /// them (`max_active_accounts`).
    pub active_accounts: Option<u64>,
    /// Accounts the plan renames (SPEC §9 `previously`): position in
    /// `accounts` (which holds them under their new names) and old name.
    pub renamed: Vec<(usize, String)>,
}

impl LiveState {
    fn add(&mut self, list: Vec<Account>) {
        for a in list {
            let key = a.user_name.to_lowercase();
            if !self.index.contains_key(&key) {
                self.index.insert(key, self.accounts.len());
                self.accounts.push(a);
            }
        }
    }

    /// Hold the accounts to be renamed under their new names, so every
    /// action after the rename names them so; the old name still finds
    /// them (memberships read from the store carry it).
    fn rename(&mut self) {
        for r in &self.resolved {
            if let (Some(i), Some(new)) = (r.account, &r.rename) {
                let old = std::mem::replace(&mut self.accounts[i].user_name, new.clone());
                self.index.insert(new.to_lowercase(), i);
                self.renamed.push((i, old));
            }
        }
    }

    fn position(&self, user_name: &str) -> Option<usize> {
        self.index.get(user_name.to_lowercase().as_str()).copied()
    }
}

/// Read what planning needs: look-ups by the roster's keys, so the cost
/// follows the roster, not the store.
pub fn gather(reader: &mut dyn Reader, d: &Desired) -> Result<LiveState, StoreError> {
    let mut live = LiveState {
        url: reader.url().to_string(),
        revision: reader.revision()?,
        ..Default::default()
    };
    let pinned: Vec<String> = d
        .partners
        .iter()
        .flat_map(|p| {
            // Under `user_names: email` a new account takes its email as
            // its name: whether that is free is asked too.
            let email = (d.policy.user_names == UserNames::Email).then_some(p.email.as_str());
            [p.account.as_deref(), p.previously.as_deref(), email]
        })
        .flatten()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    // One look-up per name: an `account` may equal the email or another
    // partner's `previously`, and a name asked twice is read twice.
    let mut asked = HashSet::new();
    let pinned: Vec<String> = pinned
        .into_iter()
        .filter(|a| asked.insert(a.to_lowercase()))
        .collect();
    reader.expect_lookups(pinned.len(), d.partners.len());
    live.notes = limit_notes(&reader.limits(), d);
    live.add(reader.accounts_by_user_name(&pinned)?);
    let emails: Vec<String> = d
        .partners
        .iter()
        .map(|p| normalize::email(&p.email))
        .collect();
    live.add(reader.accounts_by_email(&emails)?);
    // Name + birth date only matters when neither `account:` nor an active
    // account with the email settled it.
    let active_emails: HashSet<String> = live
        .accounts
        .iter()
        .filter(|a| a.active)
        .map(|a| email_key(&a.profile.email).into_owned())
        .collect();
    let keys: Vec<NameDob> = d
        .partners
        .iter()
        .zip(&emails)
        .filter(|(p, e)| {
            let pinned_ok = p
                .account
                .as_deref()
                .is_some_and(|a| live.position(a.trim()).is_some());
            !pinned_ok && !active_emails.contains(e.as_str())
        })
        .filter_map(|(p, _)| {
            p.birth_date
                .as_deref()
                .map(|dob| NameDob::new(&p.first_name, &p.last_name, dob))
        })
        .collect();
    live.add(reader.accounts_by_name_dob(&keys)?);
    // Every candidate is in: the ladder can run. Accounts added below only
    // extend the list, so its indexes stay valid.
    live.resolved = resolve::resolve(&d.partners, &Live::new(&live.accounts));
    live.rename();

    let managed: Vec<String> = d.groups.iter().map(|g| g.name.clone()).collect();
    live.groups = if d.policy.unmanaged_groups == UnmanagedGroups::Ignore {
        reader.groups(Some(&managed))?
    } else {
        reader.groups(None)?
    };
    let mut with_members = managed.clone();
    if d.policy.unmanaged_groups == UnmanagedGroups::Remove {
        let mine: HashSet<&str> = managed.iter().map(String::as_str).collect();
        with_members.extend(
            live.groups
                .iter()
                .filter(|g| !mine.contains(g.name.as_str()))
                .map(|g| g.name.clone()),
        );
    }
    live.memberships = reader.memberships(&with_members)?;
    let members: Vec<String> = live
        .memberships
        .iter()
        .map(|m| m.user_name.to_lowercase())
        .filter(|u| !live.index.contains_key(u))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let more = reader.accounts_by_user_name(&members)?;
    live.add(more);

    // Names new accounts would take.
    let bases: Vec<String> = d
        .partners
        .iter()
        .zip(&live.resolved)
        .filter(|(_, r)| r.outcome == Outcome::Create && r.new_user_name.is_none())
        .map(|(p, _)| resolve::user_name_base(&p.first_name, &p.last_name))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    live.taken = reader.user_names_like(&bases)?;
    if d.policy.max_active_accounts.is_some() {
        live.active_accounts = Some(reader.active_accounts()?);
    }

    if d.policy.deactivate_orphans {
        // Only members no partner resolves to can be left in no group.
        let claimed: HashSet<usize> = live.resolved.iter().filter_map(|r| r.account).collect();
        let users: Vec<String> = live
            .memberships
            .iter()
            .filter_map(|m| live.position(&m.user_name))
            .filter(|i| !claimed.contains(i))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|i| live.accounts[i].user_name.clone())
            .collect();
        live.in_other_groups = reader
            .in_other_groups(&users, &with_members)?
            .into_iter()
            .map(|u| u.to_lowercase())
            .collect();
    }
    Ok(live)
}

/// Warnings for what the roster says and the store cannot keep.
fn limit_notes(limits: &store::Limits, d: &Desired) -> Vec<Note> {
    let mut notes = Vec::new();
    let extras = |p: &&Partner| {
        [&p.birth_date, &p.zip, &p.extension]
            .iter()
            .any(|v| v.as_deref().is_some_and(|s| !s.trim().is_empty()))
    };
    if let Some(why) = &limits.profile_extras
        && d.partners.iter().any(extras)
    {
        notes.push(Note::new(Code::StoreCannotKeep, why.clone()).with_help(
            "add roster's extension schemas (schemas/scim/roster-extensions.json) to the provider's User resource type",
        ));
    }
    let group_extras = d.groups.iter().any(|g| {
        g.lwia.is_some()
            || g.kind != crate::roster::model::GroupType::Organization
            || g.members.iter().any(|m| m.user_manager())
    });
    if let Some(why) = &limits.group_extras
        && group_extras
    {
        notes.push(Note::new(Code::StoreCannotKeep, why.clone()).with_help(
            "add roster's extension schemas (schemas/scim/roster-extensions.json) to the provider's Group resource type",
        ));
    }
    notes
}

/// The profile an account should have, from a partner.
pub fn profile_of(p: &Partner) -> Profile {
    let opt = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Profile {
        email: normalize::email(&p.email),
        first_name: normalize::display_name(&p.first_name),
        last_name: normalize::display_name(&p.last_name),
        birth_date: opt(&p.birth_date),
        phone: p
            .phone
            .as_deref()
            .map(|s| normalize::phone(s).unwrap_or_else(|| normalize::phone_digits(s)))
            .filter(|s| !s.is_empty()),
        extension: opt(&p.extension),
        zip: opt(&p.zip),
    }
}

/// The roles a partner's account should hold, sorted, each once: those it
/// names, else the policy's default roles.
pub fn roles_of(p: &Partner, policy: &Policy) -> Vec<String> {
    p.access(policy).roles.into_iter().collect()
}

/// The entitlements a partner's account should hold, sorted, each once.
pub fn entitlements_of(p: &Partner, policy: &Policy) -> Vec<Entitlement> {
    p.access(policy)
        .entitlements
        .into_iter()
        .map(|(kind, value)| Entitlement { kind, value })
        .collect()
}

/// The email of the partner who oversees this one, if any.
pub fn case_manager_of(p: &Partner) -> Option<String> {
    p.case_manager.as_deref().map(normalize::email)
}

/// How a new account of this partner signs in; `None`: as apply says.
pub fn sign_in_of(p: &Partner) -> Option<SignIn> {
    p.sign_in
}

/// What `want` adds to `have` and what it takes away (both sorted).
fn changes<'a, T: Ord>(have: &'a [T], want: &'a [T]) -> (Vec<&'a T>, Vec<&'a T>) {
    let add = want
        .iter()
        .filter(|w| have.binary_search(w).is_err())
        .collect();
    let remove = have
        .iter()
        .filter(|h| want.binary_search(h).is_err())
        .collect();
    (add, remove)
}

/// The grant and revoke actions that give `account` these roles and
/// entitlements, from `held` (an existing account's) or from none.
fn grant_actions(
    actions: &mut Vec<Action>,
    account: &str,
    held: Option<&Account>,
    roles: &[String],
    entitlements: &[Entitlement],
) {
    let (have_roles, have_ents) = held.map_or((&[][..], &[][..]), |a| {
        (a.roles.as_slice(), a.entitlements.as_slice())
    });
    let (grant, revoke) = changes(have_roles, roles);
    for r in grant {
        actions.push(Action::GrantRole {
            account: account.to_string(),
            role: r.clone(),
        });
    }
    for r in revoke {
        actions.push(Action::RevokeRole {
            account: account.to_string(),
            role: r.clone(),
        });
    }
    let (grant, revoke) = changes(have_ents, entitlements);
    for e in grant {
        actions.push(Action::GrantEntitlement {
            account: account.to_string(),
            kind: e.kind.clone(),
            value: e.value.clone(),
        });
    }
    for e in revoke {
        actions.push(Action::RevokeEntitlement {
            account: account.to_string(),
            kind: e.kind.clone(),
            value: e.value.clone(),
        });
    }
}

/// The roles and entitlements partner `p`'s account should hold, as
/// [`roles_of`] and [`entitlements_of`] give them (sorted, each once), but
/// borrowed from the roster: `want_roles` and `want_ents` are refilled.
fn wanted<'a>(
    p: &'a Partner,
    policy: &'a Policy,
    want_roles: &mut Vec<&'a str>,
    want_ents: &mut Vec<(&'a str, &'a str)>,
) {
    want_roles.clear();
    want_ents.clear();
    match p.named_roles() {
        Some(named) => want_roles.extend(named.into_iter().map(str::trim)),
        None => want_roles.extend(policy.default_roles.iter().map(|r| r.trim())),
    }
    want_roles.sort_unstable();
    want_roles.dedup();
    for (kind, values) in &p.entitlements {
        want_ents.extend(values.iter().map(|v| (kind.trim(), v.trim())));
    }
    want_ents.sort_unstable();
    want_ents.dedup();
}

/// [`grant_actions`] for an existing account, from borrowed wants: only
/// the actions allocate.
fn grant_actions_to(
    actions: &mut Vec<Action>,
    held: &Account,
    roles: &[&str],
    entitlements: &[(&str, &str)],
) {
    let account = &held.user_name;
    let has_role = |r: &str| held.roles.binary_search_by(|h| h.as_str().cmp(r)).is_ok();
    for r in roles.iter().filter(|r| !has_role(r)) {
        actions.push(Action::GrantRole {
            account: account.clone(),
            role: (*r).to_string(),
        });
    }
    for r in held
        .roles
        .iter()
        .filter(|h| roles.binary_search(&h.as_str()).is_err())
    {
        actions.push(Action::RevokeRole {
            account: account.clone(),
            role: r.clone(),
        });
    }
    let has = |k: &str, v: &str| {
        held.entitlements
            .binary_search_by(|e| (e.kind.as_str(), e.value.as_str()).cmp(&(k, v)))
            .is_ok()
    };
    for (k, v) in entitlements.iter().filter(|(k, v)| !has(k, v)) {
        actions.push(Action::GrantEntitlement {
            account: account.clone(),
            kind: (*k).to_string(),
            value: (*v).to_string(),
        });
    }
    for e in held.entitlements.iter().filter(|e| {
        entitlements
            .binary_search(&(e.kind.as_str(), e.value.as_str()))
            .is_err()
    }) {
        actions.push(Action::RevokeEntitlement {
            account: account.clone(),
            kind: e.kind.clone(),
            value: e.value.clone(),
        });
    }
}

/// Entries of each collection besides memberships that the roster's
/// accounts hold in the store (the base of each `max_removals` cap).
#[derive(Default)]
struct Held {
    roles: u64,
    entitlements: u64,
    case_assignments: u64,
    /// User-manager grants in the groups the roster manages.
    user_manager_grants: u64,
    /// Active accounts the plan looks at.
    active: u64,
}

/// Fields the roster sets that the account holds differently. Fields the
/// roster leaves out are not managed. Compared without building the profile:
/// most partners have no drift.
fn drift(p: &Partner, have: &Profile) -> Vec<String> {
    let mut fields = Vec::new();
    let mut check = |name: &str, differ: bool| {
        if differ {
            fields.push(name.to_string());
        }
    };
    // Trimmed with inner whitespace collapsed, as `display_name` keeps names.
    let same_display = |a: &str, b: &str| a.split_whitespace().eq(b.split_whitespace());
    check("email", email_key(&p.email) != email_key(&have.email));
    check("first_name", !same_display(&p.first_name, &have.first_name));
    check("last_name", !same_display(&p.last_name, &have.last_name));
    check(
        "birth_date",
        set(&p.birth_date).is_some_and(|d| Some(d) != have.birth_date.as_deref()),
    );
    check(
        "phone",
        p.phone.as_deref().is_some_and(|ph| {
            let digits = normalize::phone(ph).unwrap_or_else(|| normalize::phone_digits(ph));
            !digits.is_empty() && Some(digits.as_str()) != have.phone.as_deref()
        }),
    );
    check(
        "extension",
        set(&p.extension).is_some_and(|e| Some(e) != have.extension.as_deref()),
    );
    check(
        "zip",
        set(&p.zip).is_some_and(|z| Some(z) != have.zip.as_deref()),
    );
    fields
}

/// `user_names: email`: a new account's user name is its email, unless
/// another account holds that name.
fn email_user_names(d: &Desired, live: &LiveState, resolved: &mut [Resolved]) {
    for (p, r) in d.partners.iter().zip(resolved.iter_mut()) {
        if r.outcome != Outcome::Create || r.new_user_name.is_some() {
            continue;
        }
        let email = normalize::email(&p.email);
        if let Some(i) = live.position(&email) {
            r.outcome = Outcome::Conflict;
            r.candidates = vec![i];
            r.reason = Some(format!(
                "the user name `{email}` (policy user_names: email) is taken by another account; add `account: <user name>` to name the new account"
            ));
        } else {
            r.new_user_name = Some(email);
        }
    }
}

/// An optional roster field, trimmed; empty counts as absent.
fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Who a member is: an account in the store, or one this plan creates.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Target {
    Existing(usize),
    /// Index of the partner whose account is created.
    New(usize),
}

/// Decide the plan. Pure: the same inputs give the same plan.
pub fn compute(
    d: &Desired,
    live: &LiveState,
    violations: Vec<Note>,
    mut warnings: Vec<Note>,
) -> Plan {
    warnings.extend(live.notes.iter().cloned());
    let mut resolved = live.resolved.clone();
    if d.policy.user_names == UserNames::Email {
        email_user_names(d, live, &mut resolved);
    }
    resolve::assign_user_names(&d.partners, &mut resolved, &live.taken);
    let name_of = |t: Target| -> &str {
        match t {
            Target::Existing(i) => &live.accounts[i].user_name,
            Target::New(k) => resolved[k].new_user_name.as_deref().unwrap_or_default(),
        }
    };

    let mut actions = Vec::new();
    // The account of each partner that has (or will have) one, by email.
    let mut account_of: HashMap<std::borrow::Cow<str>, Target> =
        HashMap::with_capacity(d.partners.len());
    // Accounts that unresolved partners might be: nothing else touches them.
    let mut protected: HashSet<usize> = HashSet::new();
    // Accounts some partner resolved to.
    let mut claimed: HashSet<usize> = HashSet::new();
    let mut resolutions = Vec::with_capacity(d.partners.len());
    let mut held = Held {
        active: live.accounts.iter().filter(|a| a.active).count() as u64,
        ..Held::default()
    };
    // What a matched partner's account should hold, borrowed from the
    // roster (buffers reused from one partner to the next).
    let (mut want_roles, mut want_ents) = (Vec::new(), Vec::new());
    for (k, (p, r)) in d.partners.iter().zip(&resolved).enumerate() {
        let email = normalize::email(&p.email);
        if r.outcome.is_unresolved() {
            protected.extend(r.candidates.iter().copied());
        }
        let target = match (r.outcome, r.account) {
            (Outcome::Create, _) => Some(Target::New(k)),
            (Outcome::Matched | Outcome::Reactivate, Some(i)) => Some(Target::Existing(i)),
            _ => None,
        };
        if let Some(t) = target {
            account_of.insert(email_key(&p.email), t);
            if let Target::Existing(i) = t {
                claimed.insert(i);
            }
        }
        match r.outcome {
            Outcome::Create => {
                let account = name_of(Target::New(k)).to_string();
                let roles = roles_of(p, d.policy);
                actions.push(Action::CreateAccount {
                    account: account.clone(),
                    partner: email.clone(),
                    profile: profile_of(p),
                    sign_in: sign_in_of(p),
                    roles: roles.clone(),
                });
                // Its roles come with it: only entitlements are granted.
                let held = Account {
                    roles,
                    ..Account::new(
                        &account,
                        profile_of(p),
                        crate::domain::CredentialState::None,
                    )
                };
                grant_actions(
                    &mut actions,
                    &account,
                    Some(&held),
                    &held.roles,
                    &entitlements_of(p, d.policy),
                );
                // An account the roster wants deactivated is created as it is
                // (migrations, restoring an export), then deactivated.
                if !p.active {
                    actions.push(Action::DeactivateAccount {
                        account,
                        partner: Some(email.clone()),
                    });
                }
            }
            Outcome::Matched | Outcome::Reactivate => {
                let i = r.account.unwrap_or_default();
                let acct = &live.accounts[i];
                if let Some((_, old)) = live.renamed.iter().find(|(j, _)| *j == i) {
                    actions.push(Action::RenameAccount {
                        account: old.clone(),
                        partner: email.clone(),
                        new_name: acct.user_name.clone(),
                    });
                }
                held.roles += acct.roles.len() as u64;
                held.entitlements += acct.entitlements.len() as u64;
                wanted(p, d.policy, &mut want_roles, &mut want_ents);
                grant_actions_to(&mut actions, acct, &want_roles, &want_ents);
                if r.outcome == Outcome::Reactivate {
                    actions.push(Action::ReactivateAccount {
                        account: acct.user_name.clone(),
                        partner: email.clone(),
                    });
                }
                if !p.active && acct.active {
                    actions.push(Action::DeactivateAccount {
                        account: acct.user_name.clone(),
                        partner: Some(email.clone()),
                    });
                }
                let fields = drift(p, &acct.profile);
                if !fields.is_empty() {
                    if d.policy.manage_profiles {
                        actions.push(Action::UpdateProfile {
                            account: acct.user_name.clone(),
                            partner: email.clone(),
                            fields,
                            profile: profile_of(p),
                        });
                    } else {
                        warnings.push(
                            Note::new(
                                Code::ProfileDrift,
                                format!(
                                    "account {} of partner {email} differs from the roster in: {}",
                                    acct.user_name,
                                    fields.join(", ")
                                ),
                            )
                            .with_help("set `manage_profiles: true` in the policy to push roster values to accounts"),
                        );
                    }
                }
            }
            _ => {}
        }
        resolutions.push(Resolution {
            partner: email,
            outcome: r.outcome,
            account: target.map(|t| name_of(t).to_string()),
            via: r.via,
            candidates: r
                .candidates
                .iter()
                .map(|&i| live.accounts[i].user_name.clone())
                .collect(),
            differs: r.differs.clone(),
            reason: r.reason.clone().or_else(|| hint(r, &live.accounts)),
        });
    }
    resolutions.sort_by_key(|r| !r.outcome.is_unresolved());

    // Case managers: the accounts of other partners, known only now.
    let mut case_removals = 0u64;
    for p in &d.partners {
        let Some(&t) = account_of.get(email_key(&p.email).as_ref()) else {
            continue;
        };
        let want = match p.case_manager.as_deref() {
            None => None,
            Some(cm) => match account_of.get(email_key(cm).as_ref()) {
                Some(&m) => Some(name_of(m)),
                // The manager's own partner is unresolved (the plan says
                // so): nothing about this assignment is decided yet.
                None => continue,
            },
        };
        let have = match t {
            Target::Existing(i) => live.accounts[i].case_manager.as_deref(),
            Target::New(_) => None,
        };
        if have.is_some() {
            held.case_assignments += 1;
        }
        // User names compare case-insensitively; most are ASCII.
        let same = match (want, have) {
            (None, None) => true,
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase(),
            _ => false,
        };
        if !same {
            // Another case manager in place of one is no loss.
            if have.is_some() && want.is_none() {
                case_removals += 1;
            }
            actions.push(Action::SetCaseManager {
                account: name_of(t).to_string(),
                case_manager: want.map(str::to_string),
            });
        }
    }

    // Groups.
    let store_groups: HashMap<&str, &store::Group> =
        live.groups.iter().map(|g| (g.name.as_str(), g)).collect();
    let managed: HashSet<&str> = d.groups.iter().map(|g| g.name.as_str()).collect();
    for g in &d.groups {
        match store_groups.get(g.name.as_str()) {
            None => actions.push(Action::CreateGroup {
                group: g.name.clone(),
                kind: g.kind,
                lwia: g.lwia,
            }),
            Some(s) if s.kind != g.kind || s.lwia != g.lwia => warnings.push(Note::new(
                Code::GroupDrift,
                format!(
                    "group {} has a different type or LWIA in the store; roster does not change groups",
                    g.name
                ),
            )),
            Some(_) => {}
        }
    }

    // Memberships in the store, by group.
    let mut live_members: HashMap<&str, Vec<(usize, bool)>> = HashMap::new();
    // Memberships spell user names as the accounts do: look them up as they are.
    let exact: HashMap<&str, usize> = live
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.user_name.as_str(), i))
        .collect();
    for m in &live.memberships {
        let found = exact.get(m.user_name.as_str()).copied();
        if let Some(i) = found.or_else(|| live.position(&m.user_name)) {
            live_members
                .entry(m.group.as_str())
                .or_default()
                .push((i, m.user_manager));
        }
    }
    let mut still_member: HashSet<usize> = HashSet::new();
    let mut lost_member: BTreeSet<usize> = BTreeSet::new();
    let mut managed_count = 0u64;
    for g in &d.groups {
        let have: HashMap<usize, bool> = live_members
            .get(g.name.as_str())
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default();
        managed_count += have.len() as u64;
        held.user_manager_grants += have.values().filter(|um| **um).count() as u64;
        let mut want: HashMap<Target, bool> = HashMap::with_capacity(g.members.len());
        for m in &g.members {
            if let Some(t) = account_of.get(email_key(m.email()).as_ref()) {
                want.insert(*t, m.user_manager());
            }
        }
        for (t, um) in &want {
            let existing = match t {
                Target::Existing(i) => {
                    still_member.insert(*i);
                    have.get(i).copied()
                }
                Target::New(_) => None,
            };
            let account = || name_of(*t).to_string();
            let group = || g.name.clone();
            match existing {
                None => actions.push(Action::AddMembership {
                    account: account(),
                    group: group(),
                    user_manager: *um,
                }),
                Some(true) if !um => actions.push(Action::RevokeUserManager {
                    account: account(),
                    group: group(),
                }),
                Some(false) if *um => actions.push(Action::GrantUserManager {
                    account: account(),
                    group: group(),
                }),
                Some(_) => {}
            }
        }
        for i in have.keys() {
            if want.contains_key(&Target::Existing(*i)) {
                continue;
            }
            if protected.contains(i) {
                still_member.insert(*i);
                continue;
            }
            lost_member.insert(*i);
            actions.push(Action::RemoveMembership {
                account: live.accounts[*i].user_name.clone(),
                group: g.name.clone(),
            });
        }
    }

    // Groups in the store that no roster file declares.
    for g in live
        .groups
        .iter()
        .filter(|g| !managed.contains(g.name.as_str()))
    {
        match d.policy.unmanaged_groups {
            UnmanagedGroups::Ignore => {}
            UnmanagedGroups::Warn => warnings.push(
                Note::new(
                    Code::UnmanagedGroup,
                    format!("group {} is in the store but in no roster file", g.name),
                )
                .with_help(
                    "declare it in a roster file, or set `unmanaged_groups: remove` to empty it",
                ),
            ),
            UnmanagedGroups::Remove => {
                for (i, _) in live_members.get(g.name.as_str()).into_iter().flatten() {
                    if protected.contains(i) {
                        continue;
                    }
                    managed_count += 1;
                    lost_member.insert(*i);
                    actions.push(Action::RemoveMembership {
                        account: live.accounts[*i].user_name.clone(),
                        group: g.name.clone(),
                    });
                }
            }
        }
    }

    if d.policy.deactivate_orphans {
        for i in lost_member {
            let a = &live.accounts[i];
            if a.active
                && !still_member.contains(&i)
                && !claimed.contains(&i)
                && !protected.contains(&i)
                && !live.in_other_groups.contains(&a.user_name.to_lowercase())
            {
                actions.push(Action::DeactivateAccount {
                    account: a.user_name.clone(),
                    partner: None,
                });
            }
        }
    }

    // Deterministic order: by op, group, then user name case-insensitively.
    actions.sort_by(|a, b| {
        (a.rank(), a.group())
            .cmp(&(b.rank(), b.group()))
            .then_with(|| folded(a.account()).cmp(folded(b.account())))
    });
    let mut summary = summarize(&actions, &resolutions);
    summary.new_account_roles = new_account_roles(d.policy, &actions);
    let removal_limit = d.policy.max_removals.limit(managed_count).unwrap_or(0);
    // Accounts deactivated because the roster no longer names them; a
    // partner's `active: false` says so outright.
    let deactivations = actions
        .iter()
        .filter(|a| matches!(a, Action::DeactivateAccount { partner: None, .. }))
        .count() as u64;
    // Each collection is capped on its own, and every entry taken away
    // counts, even one put in place of another.
    let removal_caps: Vec<RemovalCap> = [
        (
            "user_manager_grants",
            summary.revoke_user_manager,
            held.user_manager_grants,
        ),
        ("roles", summary.revoke_roles, held.roles),
        (
            "entitlements",
            summary.revoke_entitlements,
            held.entitlements,
        ),
        ("case_assignments", case_removals, held.case_assignments),
        ("deactivations", deactivations, held.active),
    ]
    .into_iter()
    .filter(|(_, removed, _)| *removed > 0)
    .map(|(collection, removed, of)| RemovalCap {
        collection: collection.to_string(),
        removed,
        of,
        limit: d.policy.max_removals.limit(of).unwrap_or(0),
    })
    .collect();
    for c in removal_caps.iter().filter(|c| c.exceeded()) {
        warnings.push(
            Note::new(
                Code::MassRemoval,
                format!(
                    "this plan removes {}, more than max_removals allows ({} of {})",
                    c.removed_text(),
                    c.limit,
                    c.of
                ),
            )
            .with_help("apply refuses it unless --allow-mass-removal is given; check that no roster file is missing"),
        );
    }
    if summary.removals() > removal_limit {
        warnings.push(
            Note::new(
                Code::MassRemoval,
                format!(
                    "this plan removes {} memberships, more than max_removals allows ({removal_limit} of {managed_count})",
                    summary.removals()
                ),
            )
            .with_help("apply refuses it unless --allow-mass-removal is given; check that no roster file is missing"),
        );
    }
    let mut violations = violations;
    let seats = seats(d, live, &actions);
    if let Some(s) = seats.as_ref().filter(|s| s.used > s.max) {
        violations.push(
            Note::new(
                Code::SeatsExceeded,
                format!(
                    "this plan leaves {} active accounts in the store, more than max_active_accounts allows ({})",
                    s.used, s.max
                ),
            )
            .with_help("deactivate accounts (`active: false`), or raise `max_active_accounts` when the licence grows"),
        );
    }
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        store: StoreRef {
            url: live.url.clone(),
            revision: live.revision,
        },
        roster_digest: d.digest.clone(),
        summary,
        resolutions,
        actions,
        warnings,
        violations,
        removal_limit,
        removal_caps,
        seats,
        personal_data: PersonalData::Included,
        digest: None,
        seal: None,
    };
    plan.digest = Some(super::seal::digest(&plan));
    plan
}

/// The roles new accounts start with, counted when the roster has a role
/// catalog of its own (SPEC §9). Without one (or with just the two roles
/// every roster had before catalogs), a new account's role is part of the
/// account, as it always was, and the summary stays as it was.
fn new_account_roles(policy: &Policy, actions: &[Action]) -> u64 {
    if policy.roles == Policy::default().roles {
        return 0;
    }
    actions
        .iter()
        .map(|a| match a {
            Action::CreateAccount { roles, .. } => roles.len() as u64,
            _ => 0,
        })
        .sum()
}

/// Licence seats after the plan: the store's active accounts, plus those
/// it creates or reactivates, less those it deactivates.
fn seats(d: &Desired, live: &LiveState, actions: &[Action]) -> Option<Seats> {
    let max = d.policy.max_active_accounts?;
    let mut used = live.active_accounts.unwrap_or(0) as i64;
    for a in actions {
        match a {
            Action::CreateAccount { .. } | Action::ReactivateAccount { .. } => used += 1,
            Action::DeactivateAccount { .. } => used -= 1,
            _ => {}
        }
    }
    let used = used.max(0) as u64;
    Some(Seats {
        used,
        max,
        free: max.saturating_sub(used),
    })
}

/// A user name's characters, case-folded, for ordering without allocating.
fn folded(s: Option<&str>) -> impl Iterator<Item = char> + '_ {
    s.unwrap_or_default().chars().flat_map(char::to_lowercase)
}

/// What an administrator does next about an unresolved partner.
fn hint(r: &Resolved, accounts: &[Account]) -> Option<String> {
    let names: Vec<&str> = r
        .candidates
        .iter()
        .map(|&i| accounts[i].user_name.as_str())
        .collect();
    match r.outcome {
        Outcome::NeedsConfirmation => Some(format!(
            "if this is the correct account, add `account: {}` to the partner",
            names.first().copied().unwrap_or_default()
        )),
        Outcome::Ambiguous => Some(format!(
            "several accounts fit ({}); add `account: <user name>` to the partner to pick one",
            names.join(", ")
        )),
        _ => None,
    }
}

pub fn summarize(actions: &[Action], resolutions: &[Resolution]) -> Summary {
    let mut s = Summary::default();
    for a in actions {
        let n = match a {
            Action::CreateGroup { .. } => &mut s.create_groups,
            Action::CreateAccount { .. } => &mut s.create_accounts,
            Action::ReactivateAccount { .. } => &mut s.reactivate_accounts,
            Action::UpdateProfile { .. } => &mut s.update_profiles,
            Action::RenameAccount { .. } => &mut s.rename_accounts,
            Action::GrantRole { .. } => &mut s.grant_roles,
            Action::RevokeRole { .. } => &mut s.revoke_roles,
            Action::GrantEntitlement { .. } => &mut s.grant_entitlements,
            Action::RevokeEntitlement { .. } => &mut s.revoke_entitlements,
            Action::SetCaseManager { .. } => &mut s.set_case_managers,
            Action::AddMembership { .. } => &mut s.add_memberships,
            Action::GrantUserManager { .. } => &mut s.grant_user_manager,
            Action::RevokeUserManager { .. } => &mut s.revoke_user_manager,
            Action::RemoveMembership { .. } => &mut s.remove_memberships,
            Action::DeactivateAccount { .. } => &mut s.deactivate_accounts,
        };
        *n += 1;
    }
    s.unresolved = resolutions
        .iter()
        .filter(|r| r.outcome.is_unresolved())
        .count() as u64;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::model::MaxRemovals;
    use crate::store::CredentialState;

    fn partner(email: &str, phone: &str, active: bool) -> Partner {
        serde_json::from_value(serde_json::json!({
            "email": email,
            "first_name": "Ann",
            "last_name": email.split('@').next().unwrap(),
            "phone": phone,
            "active": active,
        }))
        .unwrap()
    }

    #[test]
    fn borrowed_wants_give_the_same_actions_as_owned_ones() {
        let policy = Policy {
            default_roles: vec![" caseworker".into()],
            ..Policy::default()
        };
        let partners = [
            serde_json::json!({"roles": ["b ", "a", "b"], "entitlements": {"p ": ["x", " y", "x"], "d": ["z"]}}),
            serde_json::json!({"role": "a"}),
            serde_json::json!({}),
            serde_json::json!({"roles": [], "entitlements": {"p": []}}),
        ];
        let held = [
            (vec![], vec![]),
            (vec!["a", "c"], vec![("d", "z"), ("p", "w"), ("p", "x")]),
            (vec!["caseworker"], vec![("p", "y")]),
        ];
        for extra in &partners {
            let mut json =
                serde_json::json!({"email": "a@example.org", "first_name": "A", "last_name": "B"});
            for (k, v) in extra.as_object().unwrap() {
                json[k] = v.clone();
            }
            let p: Partner = serde_json::from_value(json).unwrap();
            for (roles, ents) in &held {
                let mut acct = Account::new("AB", profile_of(&p), CredentialState::None);
                acct.roles = roles.iter().map(|r| r.to_string()).collect();
                acct.entitlements = ents.iter().map(|(k, v)| Entitlement::new(k, v)).collect();
                let mut owned = Vec::new();
                grant_actions(
                    &mut owned,
                    "AB",
                    Some(&acct),
                    &roles_of(&p, &policy),
                    &entitlements_of(&p, &policy),
                );
                let (mut r, mut e) = (Vec::new(), Vec::new());
                wanted(&p, &policy, &mut r, &mut e);
                let mut borrowed = Vec::new();
                grant_actions_to(&mut borrowed, &acct, &r, &e);
                assert_eq!(borrowed, owned, "{extra} against {roles:?} {ents:?}");
            }
        }
    }

    fn group(name: &str, members: &[(&str, bool)]) -> Group {
        let members: Vec<_> = members
            .iter()
            .map(|(e, um)| serde_json::json!({"email": e, "user_manager": um}))
            .collect();
        serde_json::from_value(serde_json::json!({"name": name, "members": members})).unwrap()
    }

    fn account(p: &Partner, user_name: &str, active: bool) -> Account {
        let mut a = Account::new(user_name, profile_of(p), CredentialState::Invited);
        a.active = active;
        a.roles = roles_of(p, &Policy::default());
        a
    }

    fn resolved(outcome: Outcome, account: Option<usize>) -> Resolved {
        Resolved {
            outcome,
            via: None,
            account,
            new_user_name: None,
            candidates: Vec::new(),
            differs: Vec::new(),
            reason: None,
            rename: None,
        }
    }

    fn live(
        accounts: Vec<Account>,
        resolved: Vec<Resolved>,
        groups: &[&str],
        members: &[(&str, &str, bool)],
    ) -> LiveState {
        let mut l = LiveState {
            url: "sqlite:test.db".into(),
            revision: 7,
            resolved,
            groups: groups
                .iter()
                .map(|g| store::Group {
                    name: g.to_string(),
                    kind: Default::default(),
                    lwia: None,
                    active: true,
                })
                .collect(),
            memberships: members
                .iter()
                .map(|(g, u, um)| Membership {
                    group: g.to_string(),
                    user_name: u.to_string(),
                    user_manager: *um,
                })
                .collect(),
            ..Default::default()
        };
        l.add(accounts);
        l
    }

    fn plan(partners: &[Partner], groups: &[Group], policy: &Policy, live: &LiveState) -> Plan {
        let d = Desired {
            groups: groups.iter().collect(),
            partners: partners.iter().collect(),
            policy,
            digest: "sha256:0".into(),
        };
        compute(&d, live, Vec::new(), Vec::new())
    }

    /// One line per action: what, where, who.
    fn brief(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| {
                let what = match a {
                    Action::CreateGroup { .. } => "create-group".to_string(),
                    Action::CreateAccount { .. } => "create".to_string(),
                    Action::ReactivateAccount { .. } => "reactivate".to_string(),
                    Action::UpdateProfile { fields, .. } => format!("update[{}]", fields.join(",")),
                    Action::AddMembership { user_manager, .. } => format!("add(um={user_manager})"),
                    Action::GrantUserManager { .. } => "grant".to_string(),
                    Action::RevokeUserManager { .. } => "revoke".to_string(),
                    Action::RemoveMembership { .. } => "remove".to_string(),
                    Action::RenameAccount { new_name, .. } => format!("rename({new_name})"),
                    Action::GrantRole { role, .. } => format!("grant-role({role})"),
                    Action::RevokeRole { role, .. } => format!("revoke-role({role})"),
                    Action::GrantEntitlement { kind, value, .. } => {
                        format!("grant-entitlement({kind}:{value})")
                    }
                    Action::RevokeEntitlement { kind, value, .. } => {
                        format!("revoke-entitlement({kind}:{value})")
                    }
                    Action::SetCaseManager { case_manager, .. } => {
                        format!("case-manager({})", case_manager.as_deref().unwrap_or("-"))
                    }
                    Action::DeactivateAccount { partner, .. } => {
                        format!(
                            "deactivate({})",
                            if partner.is_some() {
                                "partner"
                            } else {
                                "orphan"
                            }
                        )
                    }
                };
                format!(
                    "{what} {} {}",
                    a.group().unwrap_or("-"),
                    a.account().unwrap_or("-")
                )
            })
            .collect()
    }

    fn codes(p: &Plan) -> Vec<&str> {
        p.warnings.iter().map(|n| n.code.as_str()).collect()
    }

    fn policy(json: serde_json::Value) -> Policy {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_store_that_matches_the_roster_plans_nothing() {
        let ann = partner("ann@example.org", "2178529634", true);
        let bob = partner("bob@example.org", "2178529635", true);
        let groups = [group(
            "G",
            &[("ann@example.org", true), ("bob@example.org", false)],
        )];
        let l = live(
            vec![account(&ann, "ann", true), account(&bob, "bob", true)],
            vec![
                resolved(Outcome::Matched, Some(0)),
                resolved(Outcome::Matched, Some(1)),
            ],
            &["G"],
            &[("G", "ann", true), ("G", "bob", false)],
        );
        let pol = policy(
            serde_json::json!({"deactivate_orphans": true, "manage_profiles": true, "unmanaged_groups": "remove"}),
        );
        let p = plan(&[ann, bob], &groups, &pol, &l);
        assert_eq!(brief(&p), Vec::<String>::new());
        assert_eq!(codes(&p), Vec::<&str>::new());
        assert_eq!((p.store.revision, p.summary.removals()), (7, 0));
        assert!(p.digest.is_some());
    }

    #[test]
    fn each_situation_gives_its_action_additions_before_removals() {
        let ann = partner("ann@example.org", "2178529634", true);
        let bob = partner("bob@example.org", "2178529635", true);
        let new = partner("new@example.org", "2178529636", true);
        let gone = partner("gone@example.org", "2178529637", false);
        let cat = partner("cat@example.org", "2178529638", true);
        let groups = [
            group(
                "G",
                &[
                    ("ann@example.org", false),
                    ("bob@example.org", true),
                    ("new@example.org", false),
                ],
            ),
            group("N", &[("ann@example.org", true)]),
        ];
        let l = live(
            vec![
                account(&ann, "ann", true),
                account(&bob, "bob", false),
                account(&gone, "gone", true),
                account(&cat, "cat", true),
            ],
            vec![
                resolved(Outcome::Matched, Some(0)),
                resolved(Outcome::Reactivate, Some(1)),
                resolved(Outcome::Create, None),
                resolved(Outcome::Matched, Some(2)),
            ],
            &["G"],
            &[("G", "ann", true), ("G", "bob", false), ("G", "cat", false)],
        );
        let partners = [ann, bob, new, gone];
        let p = plan(
            &partners,
            &groups,
            &policy(serde_json::json!({"deactivate_orphans": true})),
            &l,
        );
        assert_eq!(
            brief(&p),
            [
                "create-group N -",
                "create - Anew",
                "reactivate - bob",
                "add(um=false) G Anew",
                "add(um=true) N ann",
                "grant G bob",
                "revoke G ann",
                "remove G cat",
                "deactivate(orphan) - cat",
                "deactivate(partner) - gone",
            ]
        );
        // Without `deactivate_orphans`, the orphan keeps its account.
        let p = plan(&partners, &groups, &policy(serde_json::json!({})), &l);
        assert!(!brief(&p).contains(&"deactivate(orphan) - cat".to_string()));
        // An orphan still in a group the roster does not manage keeps it too.
        let mut l2 = live(
            l.accounts.clone(),
            l.resolved.clone(),
            &["G"],
            &[("G", "ann", true), ("G", "bob", false), ("G", "cat", false)],
        );
        l2.in_other_groups.insert("cat".into());
        let p = plan(
            &partners,
            &groups,
            &policy(serde_json::json!({"deactivate_orphans": true})),
            &l2,
        );
        assert!(brief(&p).contains(&"remove G cat".to_string()));
        assert!(!brief(&p).contains(&"deactivate(orphan) - cat".to_string()));
    }

    #[test]
    fn profiles_are_updated_only_when_the_policy_manages_them() {
        let ann = partner("ann@example.org", "2178529634", true);
        let mut stored = account(&ann, "ann", true);
        stored.profile.phone = Some("2170000000".into());
        let groups = [group("G", &[("ann@example.org", false)])];
        let l = live(
            vec![stored],
            vec![resolved(Outcome::Matched, Some(0))],
            &["G"],
            &[("G", "ann", false)],
        );
        let p = plan(
            std::slice::from_ref(&ann),
            &groups,
            &policy(serde_json::json!({"manage_profiles": true})),
            &l,
        );
        assert_eq!(brief(&p), ["update[phone] - ann"]);
        assert_eq!(codes(&p), Vec::<&str>::new());
        let p = plan(&[ann], &groups, &policy(serde_json::json!({})), &l);
        assert_eq!(brief(&p), Vec::<String>::new());
        assert_eq!(codes(&p), ["profile-drift"]);
        // The drift warning names the field, not the values.
        assert!(
            p.warnings[0].message.contains("phone"),
            "{}",
            p.warnings[0].message
        );
        assert!(
            !p.warnings[0].message.contains("2170000000"),
            "{}",
            p.warnings[0].message
        );
    }

    #[test]
    fn unmanaged_groups_are_ignored_warned_or_emptied() {
        let ann = partner("ann@example.org", "2178529634", true);
        let groups = [group("G", &[("ann@example.org", false)])];
        let l = live(
            vec![account(&ann, "ann", true)],
            vec![resolved(Outcome::Matched, Some(0))],
            &["G", "H"],
            &[("G", "ann", false), ("H", "ann", true)],
        );
        for (mode, actions, warnings) in [
            ("ignore", vec![], vec![]),
            ("warn", vec![], vec!["unmanaged-group"]),
            ("remove", vec!["remove H ann"], vec![]),
        ] {
            let p = plan(
                std::slice::from_ref(&ann),
                &groups,
                &policy(serde_json::json!({"unmanaged_groups": mode, "max_removals": 5})),
                &l,
            );
            assert_eq!(brief(&p), actions, "{mode}");
            assert_eq!(codes(&p), warnings, "{mode}");
        }
    }

    #[test]
    fn the_removal_limit_comes_from_max_removals() {
        // Four memberships in the store; the roster keeps one.
        let ann = partner("ann@example.org", "2178529634", true);
        let groups = [group("G", &[("ann@example.org", false)])];
        let others: Vec<Partner> = ["b", "c", "d"]
            .iter()
            .map(|n| partner(&format!("{n}@example.org"), "2178529639", true))
            .collect();
        let mut accounts = vec![account(&ann, "ann", true)];
        accounts.extend(
            others
                .iter()
                .zip(["b", "c", "d"])
                .map(|(p, n)| account(p, n, true)),
        );
        let l = live(
            accounts,
            vec![resolved(Outcome::Matched, Some(0))],
            &["G"],
            &[
                ("G", "ann", false),
                ("G", "b", false),
                ("G", "c", false),
                ("G", "d", false),
            ],
        );
        for (max, limit, warned) in [
            (serde_json::json!(3), 3, false),
            (serde_json::json!(2), 2, true),
            (serde_json::json!(0), 0, true),
            (serde_json::json!("100%"), 4, false),
            (serde_json::json!("75%"), 3, false),
            (serde_json::json!("50%"), 2, true),
            (serde_json::json!("33%"), 1, true),
        ] {
            let pol = policy(serde_json::json!({"max_removals": max}));
            let p = plan(std::slice::from_ref(&ann), &groups, &pol, &l);
            assert_eq!(p.summary.removals(), 3, "{max}");
            assert_eq!(p.removal_limit, limit, "{max}");
            assert_eq!(codes(&p).contains(&"mass-removal"), warned, "{max}");
        }
        assert_eq!(MaxRemovals::Percent("25%".into()).limit(10), Some(2));
        assert_eq!(MaxRemovals::Percent("x%".into()).limit(10), None);
    }

    #[test]
    fn unresolved_partners_protect_their_candidates() {
        // A partner the ladder could not decide: its candidate keeps its membership.
        let ann = partner("ann@example.org", "2178529634", true);
        let groups = [group("G", &[])];
        let mut r = resolved(Outcome::NeedsConfirmation, None);
        r.candidates = vec![0];
        let l = live(
            vec![account(&ann, "ann2", true)],
            vec![r],
            &["G"],
            &[("G", "ann2", false)],
        );
        let p = plan(
            &[ann],
            &groups,
            &policy(serde_json::json!({"deactivate_orphans": true})),
            &l,
        );
        assert_eq!(brief(&p), Vec::<String>::new());
        assert_eq!(p.resolutions[0].candidates, ["ann2"]);
    }
}
