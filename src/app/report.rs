//! `roster report --html`: what an auditor asks of a store, as one value —
//! groups with their members and user managers, accounts by status, user
//! managers per organization, the last audit rows with the hash chain's
//! verdict and, given a saved plan, what it would change. Personal data
//! (birth dates, phones, extensions) is masked here unless asked for, so
//! no rendering can show it by mistake.

use crate::app::accounts::{self, Listed, SignIn};
use crate::domain::GroupType;
use crate::plan::{Action, Plan};
use crate::store::{self, AuditEntry, Store, StoreError, audit};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// What to put in the report.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// How many of the latest audit rows to list.
    pub last: usize,
    pub show_pii: bool,
    /// A saved plan whose seal was checked against this store.
    pub plan: Option<&'a Plan>,
    /// When the report is made (RFC 3339), shown on the page.
    pub now: &'a str,
    /// How long an invitation's link works (expired after it).
    pub invite_ttl: std::time::Duration,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// The store URL as roster prints it (never with a password).
    pub store: String,
    pub revision: i64,
    pub generated_at: String,
    pub show_pii: bool,
    /// Whether the store says who activated (a SCIM provider does not).
    pub sign_in_known: bool,
    pub counts: Counts,
    pub groups: Vec<GroupView>,
    /// Accounts by status, in this order: active (activated or signed in by
    /// SSO), invited (the invitation live), never activated (invited, but
    /// the link expired or the mail failed), deactivated.
    pub statuses: Vec<StatusView>,
    pub organizations: Vec<OrganizationView>,
    pub audit: AuditView,
    pub plan: Option<PlanView>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub groups: usize,
    pub accounts: usize,
    /// Accounts that can sign in (including those still invited).
    pub active: usize,
    /// Active accounts whose person signed in or set a password.
    pub activated: usize,
    /// Active accounts signed in by the identity provider.
    pub sso: usize,
    /// Active accounts invited, their invitation live (queued, sent or
    /// reminded, its link not expired).
    pub invited: usize,
    /// Active accounts invited whose link expired or whose mail failed.
    pub never_activated: usize,
    pub deactivated: usize,
}

/// A planned change to a row of the report: `add`, `remove` or `change`,
/// with what it is, for the page to highlight.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub class: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub name: String,
    pub kind: &'static str,
    pub lwia: Option<u32>,
    pub members: Vec<MemberView>,
    pub user_managers: usize,
    /// The plan creates this group.
    pub mark: Option<Mark>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub user_name: String,
    pub name: String,
    pub email: String,
    pub user_manager: bool,
    pub active: bool,
    pub mark: Option<Mark>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// `active`, `invited`, `never-activated` or `deactivated`: the id of
    /// its section.
    pub key: &'static str,
    pub title: &'static str,
    /// Which accounts the section lists, said on the page; empty: none said.
    pub rule: &'static str,
    pub accounts: Vec<AccountView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub user_name: String,
    pub name: String,
    pub email: String,
    /// `***` unless personal data is shown; empty when the store has none.
    pub birth_date: String,
    pub phone: String,
    /// `invited`, `activated`, `sso`, or empty when the store does not say.
    pub sign_in: &'static str,
    /// The invitation's state (SPEC §10), empty when there is none.
    pub invitation: &'static str,
    /// When the invitation was sent (and last reminded), for invited accounts.
    pub invited_at: String,
    pub reminded_at: String,
    pub groups: Vec<String>,
    pub case_manager: String,
    pub mark: Option<Mark>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrganizationView {
    pub name: String,
    /// User names of the members who manage its users.
    pub user_managers: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditView {
    /// Whether the store keeps an audit log at all (a SCIM provider does not).
    pub kept: bool,
    pub total: usize,
    /// `true` when the whole chain verified.
    pub intact: bool,
    /// `verified: …` or `broken at seq N: …`.
    pub verdict: String,
    /// The last rows, newest last.
    pub rows: Vec<AuditRowView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRowView {
    pub seq: i64,
    pub revision: i64,
    pub at: String,
    pub actor: String,
    pub op: String,
    pub subject: String,
    pub before: String,
    pub after: String,
    /// This row is where the chain breaks.
    pub broken: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub revision: i64,
    /// The store moved on since the plan was made: it would be refused as stale.
    pub stale: bool,
    pub summary: String,
    pub digest: String,
    pub seal: String,
    pub changes: Vec<Mark>,
}

/// Build the report from `store`.
pub fn build(store: &dyn Store, opts: &Options) -> Result<AuditReport, StoreError> {
    let listed = accounts::list(store, &accounts::Filter::default(), opts.invite_ttl).map_err(
        |e| match e {
            accounts::AccountsError::Store(e) => e,
            other => StoreError::Invalid(other.to_string()),
        },
    )?;
    let scim = store::scim::is_scim(store.url());
    let mut r = store.reader()?;
    let revision = r.revision()?;
    let groups = r.groups(None)?;
    let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    let memberships = r.memberships(&names)?;
    let invitations = if scim { Vec::new() } else { r.invitations()? };
    let audit = if scim {
        AuditView {
            kept: false,
            total: 0,
            intact: false,
            verdict: "not kept: a SCIM provider publishes no audit log".into(),
            rows: Vec::new(),
        }
    } else {
        audit_view(r.audit(None)?, revision, opts.last)
    };
    drop(r);

    let marks = opts.plan.map(Marks::of).unwrap_or_default();
    let by_name: HashMap<String, &Listed> = listed
        .iter()
        .map(|l| (l.account.user_name.to_lowercase(), l))
        .collect();
    let person = |user_name: &str| -> (String, String, bool) {
        by_name
            .get(&user_name.to_lowercase())
            .map(|l| {
                let p = &l.account.profile;
                (
                    format!("{} {}", p.first_name, p.last_name),
                    p.email.clone(),
                    l.account.active,
                )
            })
            .or_else(|| marks.new_people.get(&user_name.to_lowercase()).cloned())
            .unwrap_or_default()
    };

    let mut members_of: BTreeMap<&str, Vec<MemberView>> = BTreeMap::new();
    for m in &memberships {
        let (name, email, active) = person(&m.user_name);
        members_of.entry(&m.group).or_default().push(MemberView {
            mark: marks.member(&m.group, &m.user_name),
            user_name: m.user_name.clone(),
            name,
            email,
            user_manager: m.user_manager,
            active,
        });
    }
    // The members a plan adds to `group`, marked.
    let added = |group: &str| -> Vec<MemberView> {
        marks
            .added_to(group)
            .map(|(user_name, manager)| {
                let (name, email, active) = person(user_name);
                MemberView {
                    user_name: user_name.to_string(),
                    name,
                    email,
                    user_manager: manager,
                    active,
                    mark: Some(Mark {
                        class: "add",
                        text: "to be added".into(),
                    }),
                }
            })
            .collect()
    };
    let mut group_views: Vec<GroupView> = groups
        .iter()
        .map(|g| {
            let mut members = members_of.remove(g.name.as_str()).unwrap_or_default();
            members.extend(added(&g.name));
            members.sort_by_key(|m| m.user_name.to_lowercase());
            GroupView {
                name: g.name.clone(),
                kind: g.kind.as_str(),
                lwia: g.lwia,
                user_managers: members.iter().filter(|m| m.user_manager).count(),
                members,
                mark: None,
            }
        })
        .collect();
    for (name, kind, lwia) in &marks.new_groups {
        let mut members = added(name);
        members.sort_by_key(|m| m.user_name.to_lowercase());
        group_views.push(GroupView {
            name: name.clone(),
            kind: kind.as_str(),
            lwia: *lwia,
            user_managers: members.iter().filter(|m| m.user_manager).count(),
            members,
            mark: Some(Mark {
                class: "add",
                text: "to be created".into(),
            }),
        });
    }
    group_views.sort_by(|a, b| a.name.cmp(&b.name));

    let organizations = group_views
        .iter()
        .filter(|g| g.kind == GroupType::Organization.as_str())
        .map(|g| OrganizationView {
            name: g.name.clone(),
            user_managers: g
                .members
                .iter()
                .filter(|m| m.user_manager)
                .map(|m| m.user_name.clone())
                .collect(),
        })
        .collect();

    let invited: HashMap<String, &store::Invitation> = invitations
        .iter()
        .map(|i| (i.user_name.to_lowercase(), i))
        .collect();
    let mut counts = Counts {
        groups: groups.len(),
        accounts: listed.len(),
        ..Counts::default()
    };
    // A SCIM provider keeps no credential state: its active accounts cannot
    // be told apart by activation.
    let mut statuses = [
        StatusView {
            key: "active",
            title: if scim {
                "Active (the store does not say who activated)"
            } else {
                "Active: activated or signed in by SSO"
            },
            rule: "",
            accounts: Vec::new(),
        },
        StatusView {
            key: "invited",
            title: "Invited",
            rule: "Active accounts whose invitation is live: queued, sent or reminded, \
                   and its link has not expired.",
            accounts: Vec::new(),
        },
        StatusView {
            key: "never-activated",
            title: "Never activated",
            rule: "Active accounts invited but never activated, whose link expired \
                   (older than the invitation TTL) or whose mail failed for good: \
                   they need a new invitation.",
            accounts: Vec::new(),
        },
        StatusView {
            key: "deactivated",
            title: "Deactivated",
            rule: "",
            accounts: Vec::new(),
        },
    ];
    for l in &listed {
        let a = &l.account;
        // Invited, and its link expired or its mail failed: it will not
        // be activated without a new invitation.
        let lapsed = matches!(l.invitation, Some("expired" | "failed"));
        let section = match (a.active, l.sign_in) {
            (false, _) => 3,
            (true, SignIn::Invited) if lapsed => 2,
            (true, SignIn::Invited) => 1,
            (true, _) => 0,
        };
        if a.active {
            counts.active += 1;
            match l.sign_in {
                SignIn::Invited if lapsed => counts.never_activated += 1,
                SignIn::Invited => counts.invited += 1,
                SignIn::Activated => counts.activated += 1,
                SignIn::Sso => counts.sso += 1,
                SignIn::Unknown => {}
            }
        } else {
            counts.deactivated += 1;
        }
        let pii = |v: &Option<String>| match v {
            Some(v) if opts.show_pii => v.clone(),
            Some(_) => "***".into(),
            None => String::new(),
        };
        let invitation = invited.get(&a.user_name.to_lowercase());
        statuses[section].accounts.push(AccountView {
            user_name: a.user_name.clone(),
            name: format!("{} {}", a.profile.first_name, a.profile.last_name),
            email: a.profile.email.clone(),
            birth_date: pii(&a.profile.birth_date),
            phone: pii(&a.profile.phone),
            sign_in: l.sign_in.as_str().unwrap_or(""),
            invitation: l.invitation.unwrap_or(""),
            invited_at: invitation.map(|i| i.invited_at.clone()).unwrap_or_default(),
            reminded_at: invitation
                .and_then(|i| i.reminded_at.clone())
                .unwrap_or_default(),
            groups: l.groups.iter().map(|g| g.name.clone()).collect(),
            case_manager: l
                .case_manager
                .as_ref()
                .map(|c| c.user_name.clone())
                .unwrap_or_default(),
            mark: marks.account(&a.user_name),
        });
    }

    let plan = opts.plan.map(|p| PlanView {
        revision: p.store.revision,
        stale: p.store.revision != revision,
        summary: crate::plan::render::summary_line(p),
        digest: p
            .digest
            .clone()
            .unwrap_or_else(|| crate::plan::seal::digest(p)),
        seal: p.seal.clone().unwrap_or_default(),
        changes: p.actions.iter().map(change).collect(),
    });

    Ok(AuditReport {
        store: store::display_url(store.url()),
        revision,
        generated_at: opts.now.to_string(),
        show_pii: opts.show_pii,
        sign_in_known: !scim,
        counts,
        groups: group_views,
        statuses: statuses.into(),
        organizations,
        audit,
        plan,
    })
}

/// The whole chain verified, and its last `last` rows.
fn audit_view(all: Vec<AuditEntry>, revision: i64, last: usize) -> AuditView {
    let total = all.len();
    let verdict = audit::verify(&all, revision);
    let broken_seq = match &verdict {
        Err(audit::Broken::Row { seq, .. }) => Some(*seq),
        _ => None,
    };
    let text = match &verdict {
        Ok(()) => format!(
            "verified: the hash chain of {} is intact up to revision {revision}",
            crate::report::plural(total, "row")
        ),
        Err(audit::Broken::Row { seq, reason }) => format!("broken at seq {seq}: {reason}"),
        Err(b @ audit::Broken::Truncated { .. }) => format!("broken: {b}"),
    };
    let value =
        |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    let rows = all[total.saturating_sub(last)..]
        .iter()
        .map(|e| AuditRowView {
            seq: e.seq,
            revision: e.revision,
            at: e.at.clone(),
            actor: e.actor.clone(),
            op: e.op.clone(),
            subject: e.subject.clone(),
            before: value(&e.before),
            after: value(&e.after),
            broken: broken_seq == Some(e.seq),
        })
        .collect();
    AuditView {
        kept: true,
        total,
        intact: verdict.is_ok(),
        verdict: text,
        rows,
    }
}

/// One action of a plan, as the page lists it.
fn change(a: &Action) -> Mark {
    let (sign, text) = crate::plan::render::line(a);
    let class = match sign {
        '+' => "add",
        '-' => "remove",
        _ => "change",
    };
    let text = match (a, a.group()) {
        (Action::CreateGroup { group, .. }, _) => format!("{group}: {text}"),
        (_, Some(g)) => format!("{g}: {sign} {text}"),
        _ => text,
    };
    Mark { class, text }
}

/// What a plan does to the rows of the report, by group and account.
#[derive(Default)]
struct Marks {
    /// (group, lower-cased user name) → mark of a membership that exists.
    members: HashMap<(String, String), Mark>,
    /// group → (user name, user manager) to be added.
    added: BTreeMap<String, Vec<(String, bool)>>,
    new_groups: Vec<(String, GroupType, Option<u32>)>,
    /// lower-cased user name → what happens to the account.
    accounts: HashMap<String, Vec<String>>,
    /// lower-cased user name → (name, email, active) of an account the plan creates.
    new_people: HashMap<String, (String, String, bool)>,
}

impl Marks {
    fn of(plan: &Plan) -> Marks {
        let mut m = Marks::default();
        let mut member = |g: &str, u: &str, class: &'static str, text: &str| {
            m.members.insert(
                (g.to_string(), u.to_lowercase()),
                Mark {
                    class,
                    text: text.into(),
                },
            );
        };
        for a in &plan.actions {
            match a {
                Action::RemoveMembership { account, group } => {
                    member(group, account, "remove", "to be removed")
                }
                Action::GrantUserManager { account, group } => {
                    member(group, account, "change", "to be made user manager")
                }
                Action::RevokeUserManager { account, group } => {
                    member(group, account, "change", "user manager to be taken back")
                }
                _ => {}
            }
        }
        for a in &plan.actions {
            match a {
                Action::CreateGroup { group, kind, lwia } => {
                    m.new_groups.push((group.clone(), *kind, *lwia))
                }
                Action::AddMembership {
                    account,
                    group,
                    user_manager,
                } => m
                    .added
                    .entry(group.clone())
                    .or_default()
                    .push((account.clone(), *user_manager)),
                Action::CreateAccount {
                    account, profile, ..
                } => {
                    m.new_people.insert(
                        account.to_lowercase(),
                        (
                            format!("{} {}", profile.first_name, profile.last_name),
                            profile.email.clone(),
                            true,
                        ),
                    );
                }
                Action::RemoveMembership { .. }
                | Action::GrantUserManager { .. }
                | Action::RevokeUserManager { .. } => {}
                other => {
                    if let Some(account) = other.account() {
                        let (_, text) = crate::plan::render::line(other);
                        let text = text
                            .strip_prefix(&format!("{account}: "))
                            .map(str::to_string)
                            .unwrap_or(text);
                        m.accounts
                            .entry(account.to_lowercase())
                            .or_default()
                            .push(text);
                    }
                }
            }
        }
        m
    }

    fn member(&self, group: &str, user_name: &str) -> Option<Mark> {
        self.members
            .get(&(group.to_string(), user_name.to_lowercase()))
            .cloned()
    }

    fn added_to(&self, group: &str) -> impl Iterator<Item = (&str, bool)> {
        self.added
            .get(group)
            .into_iter()
            .flatten()
            .map(|(u, m)| (u.as_str(), *m))
    }

    fn account(&self, user_name: &str) -> Option<Mark> {
        self.accounts
            .get(&user_name.to_lowercase())
            .map(|changes| Mark {
                class: "change",
                text: changes.join("; "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Profile;
    use crate::store::NewCredential;
    use crate::store::memory::MemoryStore;

    fn profile(email: &str, first: &str, last: &str, dob: Option<&str>) -> Profile {
        Profile {
            birth_date: dob.map(str::to_string),
            phone: dob.map(|_| "217-555-0199".to_string()),
            ..Profile::named(email, first, last)
        }
    }

    fn store() -> MemoryStore {
        let s = MemoryStore::new();
        let mut w = s.begin("t", "2026-01-01T00:00:00Z").unwrap();
        w.create_group("North", GroupType::Organization, None)
            .unwrap();
        w.create_group("Pilot", GroupType::Project, None).unwrap();
        w.create_account(
            "BMitchell",
            &profile("b@example.edu", "Brandon", "Mitchell", Some("1980-02-03")),
            NewCredential::Password {
                hash: "x".into(),
                password: "y".into(),
            },
        )
        .unwrap();
        w.create_account(
            "NHoliday",
            &profile("n@example.edu", "Noelle", "Holiday", None),
            NewCredential::Invite {
                token: "t".into(),
                token_digest: "d".into(),
            },
        )
        .unwrap();
        w.create_account(
            "OGone",
            &profile("o@example.edu", "Old", "Gone", None),
            NewCredential::Sso,
        )
        .unwrap();
        w.deactivate_account("OGone").unwrap();
        w.add_membership("BMitchell", "North", true).unwrap();
        w.add_membership("NHoliday", "North", false).unwrap();
        w.add_membership("NHoliday", "Pilot", true).unwrap();
        w.commit().unwrap();
        s
    }

    fn opts(plan: Option<&Plan>) -> Options<'_> {
        Options {
            last: 2,
            show_pii: false,
            plan,
            now: "2026-01-02T00:00:00Z",
            // The store's invitations are dated in the past: links that
            // do not expire keep them live whenever the tests run.
            invite_ttl: std::time::Duration::from_secs(100 * 365 * 86_400),
        }
    }

    #[test]
    fn accounts_fall_in_one_status_each_and_counts_agree() {
        let r = build(&store(), &opts(None)).unwrap();
        let keys: Vec<(&str, Vec<&str>)> = r
            .statuses
            .iter()
            .map(|s| {
                (
                    s.key,
                    s.accounts.iter().map(|a| a.user_name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("active", vec!["BMitchell"]),
                ("invited", vec!["NHoliday"]),
                ("never-activated", vec![]),
                ("deactivated", vec!["OGone"]),
            ]
        );
        assert_eq!(
            (r.counts.active, r.counts.invited, r.counts.activated),
            (2, 1, 1)
        );
        assert_eq!(r.counts.deactivated, 1);
        // Only organizations list their user managers.
        assert_eq!(r.organizations.len(), 1);
        assert_eq!(r.organizations[0].user_managers, ["BMitchell"]);
        assert_eq!(r.groups[1].user_managers, 1);
    }

    #[test]
    fn personal_data_is_masked_unless_asked_for() {
        let s = store();
        let masked = build(&s, &opts(None)).unwrap();
        let b = &masked.statuses[0].accounts[0];
        assert_eq!((b.birth_date.as_str(), b.phone.as_str()), ("***", "***"));
        let shown = build(
            &s,
            &Options {
                show_pii: true,
                ..opts(None)
            },
        )
        .unwrap();
        let b = &shown.statuses[0].accounts[0];
        assert_eq!(b.birth_date, "1980-02-03");
        // An account without a birth date shows nothing, not a mask.
        assert_eq!(masked.statuses[1].accounts[0].birth_date, "");
    }

    #[test]
    fn the_last_rows_are_listed_and_the_whole_chain_verified() {
        let r = build(&store(), &opts(None)).unwrap();
        assert!(r.audit.intact, "{}", r.audit.verdict);
        assert!(r.audit.verdict.starts_with("verified: "));
        assert_eq!(r.audit.rows.len(), 2);
        assert_eq!(r.audit.rows[1].seq as usize, r.audit.total);
    }

    #[test]
    fn a_plan_marks_the_rows_it_changes() {
        let s = store();
        let plan = Plan::for_tests(
            "memory:",
            1,
            vec![
                Action::CreateGroup {
                    group: "South".into(),
                    kind: GroupType::Organization,
                    lwia: None,
                },
                Action::CreateAccount {
                    account: "PLee".into(),
                    partner: "pat@example.edu".into(),
                    profile: profile("pat@example.edu", "Pat", "Lee", Some("1999-09-09")),
                    roles: Vec::new(),
                    sign_in: None,
                },
                Action::AddMembership {
                    account: "BMitchell".into(),
                    group: "South".into(),
                    user_manager: true,
                },
                Action::AddMembership {
                    account: "PLee".into(),
                    group: "South".into(),
                    user_manager: false,
                },
                Action::RemoveMembership {
                    account: "NHoliday".into(),
                    group: "North".into(),
                },
                Action::DeactivateAccount {
                    account: "NHoliday".into(),
                    partner: None,
                },
            ],
        );
        let r = build(&s, &opts(Some(&plan))).unwrap();
        let north = r.groups.iter().find(|g| g.name == "North").unwrap();
        let n = north
            .members
            .iter()
            .find(|m| m.user_name == "NHoliday")
            .unwrap();
        assert_eq!(n.mark.as_ref().unwrap().class, "remove");
        let south = r.groups.iter().find(|g| g.name == "South").unwrap();
        assert_eq!(south.mark.as_ref().unwrap().class, "add");
        assert_eq!(south.members[0].user_name, "BMitchell");
        // An account the plan creates is named from the plan.
        assert_eq!(
            (south.members[1].name.as_str(), south.user_managers),
            ("Pat Lee", 1)
        );
        assert_eq!(r.organizations.len(), 2);
        let noelle = &r.statuses[1].accounts[0];
        assert!(
            noelle.mark.as_ref().unwrap().text.contains("deactivate"),
            "{noelle:?}"
        );
        let p = r.plan.unwrap();
        assert_eq!(p.changes.len(), 6);
        assert_eq!(p.changes[4].class, "remove");
        // The plan's birth date is nowhere in the report.
        assert!(!format!("{p:?}").contains("1999-09-09"));
        assert!(p.digest.starts_with("sha256:"));
    }
}
