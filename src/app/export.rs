//! The store as a roster file: `export` (all of it) and `diff` (the part
//! a roster manages, beside the roster as the store would keep it).

use super::plan::Planned;
use crate::domain::{self, Account, CredentialState, Membership, SignIn};
use crate::plan::Outcome;
use crate::plan::compute::profile_of;
use crate::roster::model::{self, Member, MemberEntry, Partner, RosterFile};
use crate::roster::normalize;
use crate::store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};

/// The store (or part of it) as a roster file: every account pinned,
/// inactive ones `active: false`, groups and members sorted.
pub fn roster_of(
    accounts: &[Account],
    groups: &[domain::Group],
    memberships: &[Membership],
) -> RosterFile {
    let email_of: HashMap<String, &str> = accounts
        .iter()
        .map(|a| (a.user_name.to_lowercase(), a.profile.email.as_str()))
        .collect();
    let mut members: HashMap<&str, BTreeMap<String, bool>> = HashMap::new();
    for m in memberships {
        if let Some(e) = email_of.get(&m.user_name.to_lowercase()) {
            members
                .entry(m.group.as_str())
                .or_default()
                .insert(e.to_lowercase(), m.user_manager);
        }
    }
    let mut groups: Vec<model::Group> = groups
        .iter()
        .map(|g| model::Group {
            name: g.name.clone(),
            kind: g.kind,
            lwia: g.lwia,
            members: members
                .get(g.name.as_str())
                .map(|m| {
                    m.iter()
                        .map(|(email, um)| {
                            if *um {
                                Member::Entry(MemberEntry {
                                    email: email.clone(),
                                    user_manager: true,
                                })
                            } else {
                                Member::Email(email.clone())
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let mut partners: Vec<Partner> = accounts
        .iter()
        .map(|a| Partner {
            email: a.profile.email.to_lowercase(),
            first_name: a.profile.first_name.clone(),
            last_name: a.profile.last_name.clone(),
            birth_date: a.profile.birth_date.clone(),
            phone: a.profile.phone.clone(),
            extension: a.profile.extension.clone(),
            zip: a.profile.zip.clone(),
            // One role is written `role: X`, as rosters before catalogs did.
            role: match a.roles.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            },
            roles: (a.roles.len() != 1).then(|| a.roles.clone()),
            entitlements: entitlements_by_kind(&a.entitlements),
            case_manager: a
                .case_manager
                .as_ref()
                .and_then(|m| email_of.get(&m.to_lowercase()))
                .map(|e| e.to_lowercase()),
            sign_in: (a.credential == CredentialState::None).then_some(SignIn::Sso),
            account: Some(a.user_name.clone()),
            active: a.active,
            ..Partner::default()
        })
        .collect();
    partners.sort_by(|a, b| (&a.email, &a.account).cmp(&(&b.email, &b.account)));
    RosterFile {
        version: 1,
        groups,
        policy: fitting_policy(&partners, accounts),
        partners,
    }
}

/// Entitlements as a roster writes them: values by kind.
fn entitlements_by_kind(list: &[domain::Entitlement]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in list {
        out.entry(e.kind.clone()).or_default().push(e.value.clone());
    }
    out
}

/// A store may hold accounts made before a field was required (older
/// accounts without a phone, ZIP or birth date). An export must check and
/// plan clean as it is, so when some active account lacks a field that the
/// default policy requires, the export carries a policy that requires only
/// the fields every active account has. Otherwise it carries none, and the
/// defaults apply.
///
/// Likewise for roles and entitlements: the catalogs grow by what the
/// accounts hold.
fn fitting_policy(partners: &[Partner], accounts: &[Account]) -> Option<model::Policy> {
    let defaults = model::Policy::default();
    let fits: Vec<model::OptionalField> = defaults
        .required_fields
        .iter()
        .copied()
        .filter(|f| partners.iter().filter(|p| p.active).all(|p| f.is_set(p)))
        .collect();
    let mut roles = defaults.roles.clone();
    let mut entitlements: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in accounts {
        for r in &a.roles {
            if !roles.contains(r) {
                roles.push(r.clone());
            }
        }
        for e in &a.entitlements {
            entitlements
                .entry(e.kind.clone())
                .or_default()
                .push(e.value.clone());
        }
    }
    let entitlements: BTreeMap<String, model::EntitlementCatalog> = entitlements
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                model::EntitlementCatalog::Values(domain::sorted_unique(v)),
            )
        })
        .collect();
    let plain =
        fits == defaults.required_fields && roles == defaults.roles && entitlements.is_empty();
    (!plain).then_some(model::Policy {
        required_fields: fits,
        roles,
        entitlements,
        ..defaults
    })
}

/// The whole store as a roster file.
pub struct Exported {
    pub file: RosterFile,
    /// Accounts that share an email, as (one account, another, the email):
    /// a roster holds one partner per email, so someone has to settle them.
    pub shared_emails: Vec<(String, String, String)>,
}

/// Does the store at `url` publish accounts' credential state? SCIM reads
/// show none: every account there reads as if signed in by SSO.
fn credentials_published(url: &str) -> bool {
    !crate::store::scim::is_scim(url)
}

/// Leave `sign_in` to the roster's default where the store does not say
/// how an account signs in.
fn forget_sign_in(partners: &mut [Partner]) {
    for p in partners {
        p.sign_in = None;
    }
}

/// Every account, group and membership of `store` as a roster file.
pub fn export(store: &dyn Store) -> Result<Exported, StoreError> {
    let mut r = store.reader()?;
    let accounts = r.all_accounts()?;
    let groups = r.groups(None)?;
    let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    let memberships = r.memberships(&names)?;
    let mut file = roster_of(&accounts, &groups, &memberships);
    if !credentials_published(store.url()) {
        forget_sign_in(&mut file.partners);
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut shared_emails = Vec::new();
    for p in &file.partners {
        let account = p.account.as_deref().unwrap_or_default();
        if let Some(other) = seen.insert(p.email.as_str(), account) {
            shared_emails.push((other.to_string(), account.to_string(), p.email.clone()));
        }
    }
    Ok(Exported {
        file,
        shared_emails,
    })
}

/// The two sides of `roster diff`: the groups a roster manages and the
/// accounts it touches as the store holds them, and the roster normalized
/// the way the store keeps it, with the accounts the plan resolved.
/// Without `show_pii` birth dates, phones and extensions are masked, still
/// showing whether they differ.
pub fn diff(planned: &Planned, show_pii: bool) -> (RosterFile, RosterFile) {
    let account_of: HashMap<&str, &str> = planned
        .plan
        .resolutions
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::Matched | Outcome::Reactivate | Outcome::Create
            )
        })
        .filter_map(|r| r.account.as_deref().map(|a| (r.partner.as_str(), a)))
        .collect();
    // Desired: the roster, normalized the way the store keeps it, with the
    // accounts the plan resolved.
    let mut want = RosterFile {
        version: 1,
        groups: planned
            .checked
            .roster
            .groups
            .iter()
            .map(|g| g.item.clone())
            .collect(),
        partners: planned
            .checked
            .roster
            .partners
            .iter()
            .map(|e| {
                let p = &e.item;
                let prof = profile_of(p);
                let policy = &planned.checked.roster.policy;
                let roles = crate::plan::compute::roles_of(p, policy);
                Partner {
                    email: prof.email.clone(),
                    first_name: prof.first_name,
                    last_name: prof.last_name,
                    birth_date: prof.birth_date,
                    phone: prof.phone,
                    extension: prof.extension,
                    zip: prof.zip,
                    // As the store keeps them: the policy's defaults applied,
                    // sorted, one role written `role: X`.
                    role: match roles.as_slice() {
                        [one] => Some(one.clone()),
                        _ => None,
                    },
                    roles: (roles.len() != 1).then(|| roles.clone()),
                    entitlements: entitlements_by_kind(&crate::plan::compute::entitlements_of(
                        p, policy,
                    )),
                    case_manager: p.case_manager.as_deref().map(normalize::email),
                    sign_in: p.sign_in,
                    account: account_of.get(prof.email.as_str()).map(|a| a.to_string()),
                    active: p.active,
                    ..Partner::default()
                }
            })
            .collect(),
        policy: None,
    };
    for g in &mut want.groups {
        let mut m: BTreeMap<String, bool> = BTreeMap::new();
        for x in &g.members {
            m.insert(crate::roster::normalize::email(x.email()), x.user_manager());
        }
        g.members = m
            .into_iter()
            .map(|(email, um)| {
                if um {
                    Member::Entry(MemberEntry {
                        email,
                        user_manager: true,
                    })
                } else {
                    Member::Email(email)
                }
            })
            .collect();
    }
    want.groups.sort_by(|a, b| a.name.cmp(&b.name));
    want.partners
        .sort_by(|a, b| (&a.email, &a.account).cmp(&(&b.email, &b.account)));
    // Live: the groups the roster manages and the accounts it touches.
    let managed: std::collections::HashSet<&str> =
        want.groups.iter().map(|g| g.name.as_str()).collect();
    let groups: Vec<domain::Group> = planned
        .live
        .groups
        .iter()
        .filter(|g| managed.contains(g.name.as_str()))
        .cloned()
        .collect();
    let memberships: Vec<Membership> = planned
        .live
        .memberships
        .iter()
        .filter(|m| managed.contains(m.group.as_str()))
        .cloned()
        .collect();
    let touched: std::collections::HashSet<String> = memberships
        .iter()
        .map(|m| m.user_name.to_lowercase())
        .chain(account_of.values().map(|a| a.to_lowercase()))
        .collect();
    // The store still holds accounts a pending rename names anew under
    // their old names, as its memberships do.
    let old_name: HashMap<usize, &str> = planned
        .live
        .renamed
        .iter()
        .map(|(i, old)| (*i, old.as_str()))
        .collect();
    let accounts: Vec<Account> = planned
        .live
        .accounts
        .iter()
        .enumerate()
        .filter(|(i, a)| touched.contains(&a.user_name.to_lowercase()) || old_name.contains_key(i))
        .map(|(i, a)| {
            let mut a = a.clone();
            if let Some(old) = old_name.get(&i) {
                a.user_name = old.to_string();
            }
            a
        })
        .collect();
    let mut have = roster_of(&accounts, &groups, &memberships);
    // The policy an export carries so it checks clean is no difference.
    have.policy = None;
    if !credentials_published(&planned.live.url) {
        forget_sign_in(&mut have.partners);
        forget_sign_in(&mut want.partners);
    }
    if !show_pii {
        mask(&mut have.partners, &mut want.partners);
    }
    (have, want)
}

/// Replace personal data by a marker that still shows whether it changed.
fn mask(live: &mut [Partner], want: &mut [Partner]) {
    let by_email: HashMap<String, usize> = want
        .iter()
        .enumerate()
        .map(|(i, p)| (p.email.clone(), i))
        .collect();
    let hide = |a: &mut Option<String>, b: Option<&mut Option<String>>| match b {
        Some(b) => {
            let same = *a == *b;
            if a.is_some() {
                *a = Some(if same { "(hidden)" } else { "(hidden: store)" }.into());
            }
            if b.is_some() {
                *b = Some(if same { "(hidden)" } else { "(hidden: roster)" }.into());
            }
        }
        None => {
            if a.is_some() {
                *a = Some("(hidden)".into());
            }
        }
    };
    let mut done = vec![false; want.len()];
    for p in live.iter_mut() {
        let other = by_email.get(&p.email).copied();
        if let Some(i) = other {
            done[i] = true;
        }
        let w = other.map(|i| &mut want[i]);
        match w {
            Some(w) => {
                hide(&mut p.birth_date, Some(&mut w.birth_date));
                hide(&mut p.phone, Some(&mut w.phone));
                hide(&mut p.extension, Some(&mut w.extension));
            }
            None => {
                hide(&mut p.birth_date, None);
                hide(&mut p.phone, None);
                hide(&mut p.extension, None);
            }
        }
    }
    for (p, _) in want.iter_mut().zip(done).filter(|(_, d)| !d) {
        hide(&mut p.birth_date, None);
        hide(&mut p.phone, None);
        hide(&mut p.extension, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::model::OptionalField;

    fn full(email: &str) -> Partner {
        Partner {
            email: email.into(),
            first_name: "A".into(),
            last_name: "B".into(),
            birth_date: Some("1970-01-02".into()),
            phone: Some("2175550101".into()),
            zip: Some("62568".into()),
            ..Partner::default()
        }
    }

    #[test]
    fn the_policy_fits_the_active_accounts() {
        let mut ps = vec![full("a@example.org"), full("b@example.org")];
        assert_eq!(
            fitting_policy(&ps, &[]),
            None,
            "all fields: the defaults fit"
        );
        ps[1].phone = None;
        ps[1].active = false;
        assert_eq!(
            fitting_policy(&ps, &[]),
            None,
            "inactive accounts need nothing"
        );
        ps[1].active = true;
        let p = fitting_policy(&ps, &[]).expect("a policy that fits");
        assert_eq!(
            p.required_fields,
            [OptionalField::BirthDate, OptionalField::Zip]
        );
        assert_eq!(
            model::Policy {
                required_fields: model::Policy::default().required_fields,
                ..p
            },
            model::Policy::default(),
            "only required_fields differs from the defaults"
        );
    }
}
