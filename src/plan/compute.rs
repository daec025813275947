//! Planning: gather what the roster needs from the store ([`gather`], the
//! only I/O), then decide ([`compute`], pure).

use super::{Action, Note, PersonalData, Plan, Resolution, StoreRef, Summary};
use crate::domain::{Account, Membership, NameDob, Profile};
use crate::finding::code::Code;
use crate::plan::{FORMAT_VERSION, Outcome};
use crate::resolve::{self, Live, Resolved};
use crate::roster::model::{Group, Partner, Policy, UnmanagedGroups};
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
        .filter_map(|p| p.account.as_deref().map(|a| a.trim().to_string()))
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
        role: p.role,
    }
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
    check("role", p.role != have.role);
    fields
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
                actions.push(Action::CreateAccount {
                    account: account.clone(),
                    partner: email.clone(),
                    profile: profile_of(p),
                });
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
                let acct = &live.accounts[r.account.unwrap_or_default()];
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
    let summary = summarize(&actions, &resolutions);
    let removal_limit = d.policy.max_removals.limit(managed_count).unwrap_or(0);
    if summary.removals() > removal_limit {
        warnings.push(
            Note::new(
                Code::MassRemoval,
                format!(
                    "this plan removes {} memberships and grants, more than max_removals allows ({removal_limit} of {managed_count})",
                    summary.removals()
                ),
            )
            .with_help("apply refuses it unless --allow-mass-removal is given; check that no roster file is missing"),
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
        personal_data: PersonalData::Included,
        digest: None,
        seal: None,
    };
    plan.digest = Some(super::seal::digest(&plan));
    plan
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
