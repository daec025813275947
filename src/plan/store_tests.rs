//! Planning end to end over a store held in memory: what [`gather`] reads
//! and [`compute`] decides from it, without files or servers.

use super::compute::{Desired, compute, gather, profile_of};
use super::{Action, Differs, Outcome, Plan, Via};
use crate::domain::{Account, Entitlement, GroupType, Membership, NameDob};
use crate::roster::model::{Group, Partner, Policy};
use crate::store::memory::MemoryStore;
use crate::store::{AuditEntry, Invitation, NewCredential, Reader, Session, Store, StoreError};
use std::cell::RefCell;
use std::rc::Rc;

const NOW: &str = "2026-03-01T10:00:00Z";

fn partner(json: serde_json::Value) -> Partner {
    serde_json::from_value(json).expect("a partner")
}

fn person(email: &str, first: &str, last: &str, dob: &str) -> Partner {
    partner(serde_json::json!({
        "email": email, "first_name": first, "last_name": last, "birth_date": dob,
    }))
}

fn group(name: &str, members: &[(&str, bool)]) -> Group {
    let members: Vec<_> = members
        .iter()
        .map(|(e, um)| serde_json::json!({"email": e, "user_manager": um}))
        .collect();
    serde_json::from_value(serde_json::json!({"name": name, "members": members})).expect("a group")
}

fn policy(json: serde_json::Value) -> Policy {
    serde_json::from_value(json).expect("a policy")
}

fn write(store: &MemoryStore, f: impl FnOnce(&mut dyn Session)) {
    let mut s = store.begin("admin", NOW).expect("begin");
    f(&mut *s);
    s.commit().expect("commit");
}

/// An account made from a partner, as a roster apply would make it.
fn account(s: &mut dyn Session, user_name: &str, p: &Partner, active: bool) {
    let credential = NewCredential::Password {
        hash: "$argon2id$stored".into(),
        password: "unused".into(),
    };
    let roles = super::compute::roles_of(p, &Policy::default());
    s.create_account_with_roles(user_name, &profile_of(p), &roles, credential)
        .expect("create account");
    if !active {
        s.deactivate_account(user_name).expect("deactivate");
    }
}

fn plan(store: &MemoryStore, partners: &[Partner], groups: &[Group], policy: &Policy) -> Plan {
    let d = Desired {
        groups: groups.iter().collect(),
        partners: partners.iter().collect(),
        policy,
        digest: "sha256:0".into(),
    };
    let mut reader = store.reader().expect("reader");
    let live = gather(&mut *reader, &d).expect("gather");
    compute(&d, &live, Vec::new(), Vec::new())
}

/// Run a plan's actions through a session, as `roster apply` does.
fn apply(store: &MemoryStore, plan: &Plan) {
    write(store, |s| {
        for a in &plan.actions {
            let done = match a {
                Action::CreateGroup { group, kind, lwia } => s.create_group(group, *kind, *lwia),
                Action::CreateAccount {
                    account,
                    profile,
                    roles,
                    ..
                } => s.create_account_with_roles(
                    account,
                    profile,
                    roles,
                    NewCredential::Invite {
                        token: format!("token-{account}"),
                        token_digest: format!("digest-{account}"),
                    },
                ),
                Action::ReactivateAccount { account, .. } => s.reactivate_account(account),
                Action::UpdateProfile {
                    account,
                    fields,
                    profile,
                    ..
                } => s.update_profile(account, profile, fields),
                Action::AddMembership {
                    account,
                    group,
                    user_manager,
                } => s.add_membership(account, group, *user_manager),
                Action::GrantUserManager { account, group } => {
                    s.set_user_manager(account, group, true)
                }
                Action::RevokeUserManager { account, group } => {
                    s.set_user_manager(account, group, false)
                }
                Action::RemoveMembership { account, group } => s.remove_membership(account, group),
                Action::DeactivateAccount { account, .. } => s.deactivate_account(account),
                Action::RenameAccount {
                    account, new_name, ..
                } => s.rename_account(account, new_name),
                Action::GrantRole { account, role } => s.grant_role(account, role),
                Action::RevokeRole { account, role } => s.revoke_role(account, role),
                Action::GrantEntitlement {
                    account,
                    kind,
                    value,
                } => s.grant_entitlement(account, &Entitlement::new(kind, value)),
                Action::RevokeEntitlement {
                    account,
                    kind,
                    value,
                } => s.revoke_entitlement(account, &Entitlement::new(kind, value)),
                Action::SetCaseManager {
                    account,
                    case_manager,
                } => s.set_case_manager(account, case_manager.as_deref()),
            };
            done.unwrap_or_else(|e| panic!("{a:?}: {e}"));
        }
    });
}

/// (partner, outcome, via, account, candidates, differs) of each resolution.
type Row = (
    String,
    Outcome,
    Option<Via>,
    Option<String>,
    Vec<String>,
    Vec<Differs>,
);

fn rows(p: &Plan) -> Vec<Row> {
    let mut rows: Vec<Row> = p
        .resolutions
        .iter()
        .map(|r| {
            (
                r.partner.clone(),
                r.outcome,
                r.via,
                r.account.clone(),
                r.candidates.clone(),
                r.differs.clone(),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// The removal caps a plan reached: (collection, removed, of, limit).
fn removal_caps(p: &Plan) -> Vec<(&str, u64, u64, u64)> {
    p.removal_caps
        .iter()
        .map(|c| (c.collection.as_str(), c.removed, c.of, c.limit))
        .collect()
}

/// The messages of a plan's `mass-removal` warnings.
fn mass_removals(p: &Plan) -> Vec<&str> {
    p.warnings
        .iter()
        .filter(|n| n.code == "mass-removal")
        .map(|n| n.message.as_str())
        .collect()
}

fn row(
    partner: &str,
    outcome: Outcome,
    via: Option<Via>,
    account: Option<&str>,
    candidates: &[&str],
    differs: &[Differs],
) -> Row {
    (
        partner.into(),
        outcome,
        via,
        account.map(str::to_string),
        candidates.iter().map(|c| c.to_string()).collect(),
        differs.to_vec(),
    )
}

#[test]
fn every_rung_of_the_ladder_is_reached_through_the_store() {
    let store = MemoryStore::new();
    let ann = person("ann@example.org", "Ann", "Lee", "1990-01-01");
    let bob = person("bob@example.org", "Bob", "Ray", "1985-02-02");
    let cat = person("cat@example.org", "Cat", "Fox", "1970-03-03");
    let dan_then = person("dan.old@example.org", "Dan", "Ox", "1960-04-04");
    let eve = person("eve@example.org", "Eve", "Lee", "1999-05-05");
    let fay = person("fay@example.org", "Fay", "Mo", "1975-06-06");
    write(&store, |s| {
        account(s, "ALee", &ann, true);
        account(
            s,
            "ALee2",
            &person("a2@example.org", "Al", "Lee", "2000-01-01"),
            true,
        );
        account(s, "BRay", &bob, false);
        account(s, "CFox", &cat, true);
        account(s, "CFox2", &cat, true);
        account(s, "DOx", &dan_then, true);
        account(s, "ELee", &eve, false);
        account(s, "FMo", &fay, false);
    });
    let mut pinned_ann = ann.clone();
    pinned_ann.account = Some("alee".into());
    pinned_ann.email = "ann.lee@example.org".into();
    let mut eve_typo = eve.clone();
    eve_typo.account = Some("EveL".into());
    let mut fay_gone = fay.clone();
    fay_gone.active = false;
    let partners = [
        pinned_ann,
        bob,
        cat,
        person("dan@example.org", "Dan", "Ox", "1960-04-04"),
        eve_typo,
        fay_gone,
        person("al@example.org", "Al", "Lee", "1991-07-07"),
        person("zoe@example.org", "Zoë", "Ng", "1992-08-08"),
    ];
    let p = plan(&store, &partners, &[], &policy(serde_json::json!({})));
    let (c, r) = (Outcome::Create, Outcome::Reactivate);
    assert_eq!(
        rows(&p),
        [
            // The store's user names are taken: the next free suffix.
            row("al@example.org", c, None, Some("ALee3"), &[], &[]),
            // `account:` settles it, whatever the email says.
            row(
                "ann.lee@example.org",
                Outcome::Matched,
                Some(Via::Pinned),
                Some("ALee"),
                &[],
                &[]
            ),
            // An inactive account with the email and the same person: back.
            row(
                "bob@example.org",
                r,
                Some(Via::InactiveEmail),
                Some("BRay"),
                &[],
                &[]
            ),
            // Two active accounts share the email: a person must decide.
            row(
                "cat@example.org",
                Outcome::Ambiguous,
                Some(Via::Email),
                None,
                &["CFox", "CFox2"],
                &[]
            ),
            // Found by name and birth date only: the email differs.
            row(
                "dan@example.org",
                Outcome::NeedsConfirmation,
                Some(Via::NameDob),
                None,
                &["DOx"],
                &[Differs::Email]
            ),
            // `account:` names no account, but the person has one.
            row(
                "eve@example.org",
                Outcome::Conflict,
                Some(Via::InactiveEmail),
                None,
                &["ELee"],
                &[]
            ),
            // Declared inactive, and inactive: nothing to do.
            row(
                "fay@example.org",
                Outcome::Matched,
                Some(Via::InactiveEmail),
                Some("FMo"),
                &[],
                &[]
            ),
            row("zoe@example.org", c, None, Some("ZNg"), &[], &[]),
        ]
    );
    let ops: Vec<(&str, Option<&str>)> = p.actions.iter().map(|a| (a.op(), a.account())).collect();
    assert_eq!(
        ops,
        [
            ("create_account", Some("ALee3")),
            ("create_account", Some("ZNg")),
            ("reactivate_account", Some("BRay")),
        ]
    );
    assert_eq!(p.summary.unresolved, 3);
    assert_eq!(p.store.revision, 11);
}

#[test]
fn a_plan_applied_leaves_nothing_to_plan() {
    let store = MemoryStore::new();
    let ann = person("ann@example.org", "Ann", "Lee", "1990-01-01");
    let bob = person("bob@example.org", "Bob", "Ray", "1985-02-02");
    let cat = person("cat@example.org", "Cat", "Fox", "1970-03-03");
    // Bob is in the store already, inactive, with another phone.
    write(&store, |s| {
        let mut old = bob.clone();
        old.phone = Some("2175550100".into());
        account(s, "BRay", &old, false);
        s.create_group("Old", GroupType::Organization, None)
            .expect("group");
        s.add_membership("BRay", "Old", true).expect("member");
    });
    let mut bob_now = bob.clone();
    bob_now.phone = Some("2175550199".into());
    let partners = [ann, bob_now, cat];
    let groups = [
        group(
            "G",
            &[("ann@example.org", true), ("bob@example.org", false)],
        ),
        group("H", &[("cat@example.org", false)]),
    ];
    let pol = policy(serde_json::json!({
        "manage_profiles": true, "unmanaged_groups": "remove", "max_removals": 5,
    }));
    let first = plan(&store, &partners, &groups, &pol);
    let ops: Vec<&str> = first.actions.iter().map(|a| a.op()).collect();
    assert_eq!(
        ops,
        [
            "create_group",
            "create_group",
            "create_account",
            "create_account",
            "reactivate_account",
            "update_profile",
            "add_membership",
            "add_membership",
            "add_membership",
            "remove_membership",
        ]
    );
    apply(&store, &first);
    let again = plan(&store, &partners, &groups, &pol);
    assert_eq!(again.actions, [], "{:#?}", again.actions);
    assert!(
        again
            .resolutions
            .iter()
            .all(|r| r.outcome == Outcome::Matched),
        "{:?}",
        again.resolutions
    );
    assert_eq!(again.store.revision, first.store.revision + 10);
    // The store's audit chain holds every change, one revision each.
    let mut r = store.reader().expect("reader");
    let log = r.audit(None).expect("audit");
    assert_eq!(
        crate::store::audit::verify(&log, again.store.revision),
        Ok(())
    );
    // Each created account was invited once.
    let sent: Vec<String> = store.outbox().into_iter().map(|m| m.recipient).collect();
    assert_eq!(sent, ["ann@example.org", "cat@example.org"]);
}

#[test]
fn orphans_are_deactivated_unless_a_group_outside_the_roster_keeps_them() {
    let store = MemoryStore::new();
    let ann = person("ann@example.org", "Ann", "Lee", "1990-01-01");
    let old = person("old@example.org", "Old", "Timer", "1950-01-01");
    let kept = person("kept@example.org", "Kept", "Else", "1951-01-01");
    write(&store, |s| {
        for (name, p) in [("ALee", &ann), ("OTimer", &old), ("KElse", &kept)] {
            account(s, name, p, true);
        }
        for g in ["G", "Other"] {
            s.create_group(g, GroupType::Organization, None)
                .expect("group");
        }
        for (who, g) in [
            ("ALee", "G"),
            ("OTimer", "G"),
            ("KElse", "G"),
            ("KElse", "Other"),
        ] {
            s.add_membership(who, g, false).expect("member");
        }
    });
    let groups = [group("G", &[("ann@example.org", false)])];
    let pol = policy(serde_json::json!({"deactivate_orphans": true, "max_removals": 5}));
    let p = plan(&store, &[ann], &groups, &pol);
    let ops: Vec<(&str, Option<&str>)> = p.actions.iter().map(|a| (a.op(), a.account())).collect();
    assert_eq!(
        ops,
        [
            ("remove_membership", Some("KElse")),
            ("remove_membership", Some("OTimer")),
            ("deactivate_account", Some("OTimer")),
        ]
    );
}

/// A reader that notes each look-up (method, number of keys) on its way to
/// the store.
struct Noting {
    inner: Box<dyn Reader>,
    asked: Rc<RefCell<Vec<(&'static str, usize)>>>,
}

impl Noting {
    fn note(&self, what: &'static str, keys: usize) {
        self.asked.borrow_mut().push((what, keys));
    }
}

impl Reader for Noting {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn active_accounts(&mut self) -> Result<u64, StoreError> {
        self.inner.active_accounts()
    }
    fn revision(&mut self) -> Result<i64, StoreError> {
        self.inner.revision()
    }
    fn accounts_by_user_name(&mut self, names: &[String]) -> Result<Vec<Account>, StoreError> {
        self.note("accounts_by_user_name", names.len());
        self.inner.accounts_by_user_name(names)
    }
    fn accounts_by_email(&mut self, emails: &[String]) -> Result<Vec<Account>, StoreError> {
        self.note("accounts_by_email", emails.len());
        self.inner.accounts_by_email(emails)
    }
    fn accounts_by_name_dob(&mut self, keys: &[NameDob]) -> Result<Vec<Account>, StoreError> {
        self.note("accounts_by_name_dob", keys.len());
        self.inner.accounts_by_name_dob(keys)
    }
    fn user_names_like(&mut self, bases: &[String]) -> Result<Vec<String>, StoreError> {
        self.note("user_names_like", bases.len());
        self.inner.user_names_like(bases)
    }
    fn groups(
        &mut self,
        names: Option<&[String]>,
    ) -> Result<Vec<crate::domain::Group>, StoreError> {
        match names {
            Some(n) => self.note("groups", n.len()),
            None => self.note("all groups", 0),
        }
        self.inner.groups(names)
    }
    fn memberships(&mut self, groups: &[String]) -> Result<Vec<Membership>, StoreError> {
        self.note("memberships", groups.len());
        self.inner.memberships(groups)
    }
    fn all_accounts(&mut self) -> Result<Vec<Account>, StoreError> {
        self.note("all_accounts", 0);
        self.inner.all_accounts()
    }
    fn in_other_groups(
        &mut self,
        user_names: &[String],
        groups: &[String],
    ) -> Result<Vec<String>, StoreError> {
        self.note("in_other_groups", user_names.len());
        self.inner.in_other_groups(user_names, groups)
    }
    fn audit(&mut self, since: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        self.note("audit", 0);
        self.inner.audit(since)
    }
    fn invitations(&mut self) -> Result<Vec<Invitation>, StoreError> {
        self.note("invitations", 0);
        self.inner.invitations()
    }
}

#[test]
fn planning_asks_the_store_for_the_rosters_keys_only() {
    // A store much larger than the roster.
    let store = MemoryStore::new();
    write(&store, |s| {
        for g in 0..20 {
            s.create_group(&format!("group{g}"), GroupType::Organization, None)
                .expect("group");
        }
        for n in 0..300 {
            let p = person(
                &format!("p{n}@example.org"),
                "Pat",
                &format!("Num{n}"),
                "1980-01-01",
            );
            account(s, &format!("PNum{n}"), &p, true);
            s.add_membership(&format!("PNum{n}"), &format!("group{}", n % 20), false)
                .expect("member");
        }
    });
    let known = person("p7@example.org", "Pat", "Num7", "1980-01-01");
    let new = person("new@example.org", "Nia", "New", "1990-01-01");
    let partners = [known, new];
    let groups = [group(
        "group7",
        &[("p7@example.org", false), ("new@example.org", false)],
    )];
    let asked = |pol: serde_json::Value| {
        let noted = Rc::new(RefCell::new(Vec::new()));
        let mut reader = Noting {
            inner: store.reader().expect("reader"),
            asked: noted.clone(),
        };
        let pol = policy(pol);
        let d = Desired {
            groups: groups.iter().collect(),
            partners: partners.iter().collect(),
            policy: &pol,
            digest: "sha256:0".into(),
        };
        let live = gather(&mut reader, &d).expect("gather");
        let p = compute(&d, &live, Vec::new(), Vec::new());
        let asked = noted.borrow().clone();
        (asked, p)
    };
    let (seen, p) = asked(serde_json::json!({}));
    assert_eq!(
        seen,
        [
            ("accounts_by_user_name", 0),
            ("accounts_by_email", 2),
            // Only the new partner is not settled by an active email.
            ("accounts_by_name_dob", 1),
            ("groups", 1),
            ("memberships", 1),
            // group7's other members, by name.
            ("accounts_by_user_name", 14),
            ("user_names_like", 1),
        ]
    );
    let ops: Vec<(&str, Option<&str>)> = p.actions.iter().map(|a| (a.op(), a.account())).collect();
    assert_eq!(
        ops[..2],
        [
            ("create_account", Some("NNew")),
            ("add_membership", Some("NNew"))
        ]
    );
    // 14 other members leave group7; no other group is touched.
    assert_eq!(p.summary.removals(), 14);
    // Orphans are looked for among those members only; every group is
    // read only when the policy looks at groups outside the roster.
    let (seen, _) =
        asked(serde_json::json!({"deactivate_orphans": true, "unmanaged_groups": "warn"}));
    assert!(seen.contains(&("in_other_groups", 14)), "{seen:?}");
    assert!(seen.contains(&("all groups", 0)), "{seen:?}");
    assert!(!seen.iter().any(|(m, _)| *m == "all_accounts"), "{seen:?}");
}

/// A roster of SPEC §9: role catalog and defaults, entitlements, a case
/// manager, single sign-on, a rename and a licence.
fn section_9() -> (Vec<Partner>, Vec<Group>, Policy) {
    let noelle = partner(serde_json::json!({
        "email": "noelle.holiday@example.edu", "first_name": "Noelle", "last_name": "Holiday",
        "birth_date": "1980-01-01", "roles": ["supervisor", "caseworker"],
        "entitlements": {"products": ["webcenter"], "coverage": ["North Team"]},
        "case_manager": "Brandon.Mitchell@example.edu",
        "account": "NHoliday", "previously": "NHoliday2",
    }));
    let brandon = person(
        "brandon.mitchell@example.edu",
        "Brandon",
        "Mitchell",
        "1975-05-05",
    );
    let zed = partner(serde_json::json!({
        "email": "zed@example.edu", "first_name": "Zed", "last_name": "Quinn",
        "birth_date": "1999-09-09", "role": "individual", "sign_in": "sso",
        "case_manager": "brandon.mitchell@example.edu",
    }));
    let members = [
        ("noelle.holiday@example.edu", false),
        ("brandon.mitchell@example.edu", true),
        ("zed@example.edu", false),
    ];
    let pol = policy(serde_json::json!({
        "roles": ["public-viewer", "individual", "caseworker", "supervisor"],
        "default_roles": ["caseworker"],
        "entitlements": {"products": ["webcenter", "hrcenter"], "coverage": "groups"},
        "max_active_accounts": 10,
        "max_removals": 1,
    }));
    (
        vec![noelle, brandon, zed],
        vec![group("North Team", &members)],
        pol,
    )
}

#[test]
fn section_9_plans_applied_leave_nothing_to_plan() {
    let store = MemoryStore::new();
    let (mut partners, groups, mut pol) = section_9();
    write(&store, |s| {
        let mut old = partners[0].clone();
        old.roles = None;
        account(s, "NHoliday2", &old, true);
        account(s, "BMitchell", &partners[1], true);
    });
    let first = plan(&store, &partners, &groups, &pol);
    let brief: Vec<String> = first
        .actions
        .iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .filter(|a| !a.contains("\"profile\""))
        .collect();
    assert_eq!(
        brief,
        [
            r#"{"op":"create_group","group":"North Team","type":"organization"}"#,
            r#"{"op":"rename_account","account":"NHoliday2","partner":"noelle.holiday@example.edu","new_name":"NHoliday"}"#,
            r#"{"op":"grant_role","account":"BMitchell","role":"caseworker"}"#,
            r#"{"op":"grant_role","account":"NHoliday","role":"caseworker"}"#,
            r#"{"op":"grant_role","account":"NHoliday","role":"supervisor"}"#,
            r#"{"op":"grant_entitlement","account":"NHoliday","kind":"coverage","value":"North Team"}"#,
            r#"{"op":"grant_entitlement","account":"NHoliday","kind":"products","value":"webcenter"}"#,
            r#"{"op":"add_membership","account":"BMitchell","group":"North Team","user_manager":true}"#,
            r#"{"op":"add_membership","account":"NHoliday","group":"North Team","user_manager":false}"#,
            r#"{"op":"add_membership","account":"ZQuinn","group":"North Team","user_manager":false}"#,
            r#"{"op":"set_case_manager","account":"NHoliday","case_manager":"BMitchell"}"#,
            r#"{"op":"set_case_manager","account":"ZQuinn","case_manager":"BMitchell"}"#,
            r#"{"op":"revoke_role","account":"BMitchell","role":"public-viewer"}"#,
            r#"{"op":"revoke_role","account":"NHoliday","role":"public-viewer"}"#,
        ]
    );
    let create = first
        .actions
        .iter()
        .find(|a| a.op() == "create_account")
        .unwrap();
    assert!(
        matches!(create, Action::CreateAccount { account, roles, sign_in: Some(crate::domain::SignIn::Sso), .. }
        if account == "ZQuinn" && roles == &["individual"])
    );
    assert_eq!(first.summary.rename_accounts, 1);
    assert_eq!(first.summary.grant_roles, 3);
    assert_eq!(first.summary.revoke_roles, 2);
    assert_eq!(first.summary.grant_entitlements, 2);
    assert_eq!(first.summary.set_case_managers, 2);
    let seats = first.seats.clone().unwrap();
    assert_eq!((seats.used, seats.max, seats.free), (3, 10, 7));
    // A role put in place of another is still one taken away.
    let caps = removal_caps(&first);
    assert_eq!(caps, [("roles", 2, 2, 1)]);
    assert!(first.violations.is_empty(), "{:?}", first.violations);
    apply(&store, &first);
    let again = plan(&store, &partners, &groups, &pol);
    assert_eq!(again.actions, [], "{:#?}", again.actions);
    let noelle = &store
        .reader()
        .unwrap()
        .accounts_by_user_name(&["nholiday".into()])
        .unwrap()[0];
    assert_eq!(noelle.roles, ["caseworker", "supervisor"]);
    assert_eq!(noelle.case_manager.as_deref(), Some("BMitchell"));

    // Noelle loses a role, a product and her case manager: each capped.
    partners[0].roles = Some(vec!["caseworker".into()]);
    partners[0].entitlements.remove("products");
    partners[0].case_manager = None;
    partners[2].case_manager = None;
    let fewer = plan(&store, &partners, &groups, &pol);
    let caps = removal_caps(&fewer);
    assert_eq!(
        caps,
        [
            ("roles", 1, 4, 1),
            ("entitlements", 1, 2, 1),
            ("case_assignments", 2, 2, 1)
        ]
    );
    let warned = mass_removals(&fewer);
    assert_eq!(
        warned,
        ["this plan removes 2 case assignments, more than max_removals allows (1 of 2)"]
    );
    apply(&store, &fewer);
    assert_eq!(plan(&store, &partners, &groups, &pol).actions, []);

    // Two seats: three active accounts are a violation.
    pol.max_active_accounts = Some(2);
    let over = plan(&store, &partners, &groups, &pol);
    let v: Vec<(&str, &str)> = over
        .violations
        .iter()
        .map(|n| (n.code.as_str(), n.message.as_str()))
        .collect();
    assert_eq!(
        v,
        [(
            "seats-exceeded",
            "this plan leaves 3 active accounts in the store, more than max_active_accounts allows (2)"
        )]
    );
    assert_eq!(over.seats.as_ref().map(|s| s.free), Some(0));
}

#[test]
fn a_rename_onto_a_taken_name_is_a_conflict_and_a_done_one_matches() {
    let store = MemoryStore::new();
    let (mut partners, groups, pol) = section_9();
    write(&store, |s| {
        account(s, "NHoliday2", &partners[0], true);
        account(
            s,
            "NHoliday",
            &person("other@example.edu", "Nora", "Holiday", "1970-01-01"),
            true,
        );
    });
    let p = plan(&store, &partners, &groups, &pol);
    let noelle = p
        .resolutions
        .iter()
        .find(|r| r.partner == "noelle.holiday@example.edu")
        .unwrap();
    assert_eq!(noelle.outcome, Outcome::Conflict);
    assert_eq!(noelle.candidates, ["NHoliday", "NHoliday2"]);
    assert_eq!(
        noelle.reason.as_deref(),
        Some(
            "`NHoliday2` cannot be renamed to `NHoliday`: an account `NHoliday` already exists; pick another name, or remove `previously` if the rename is done"
        )
    );
    assert!(p.actions.iter().all(|a| a.op() != "rename_account"));
    // Once renamed (only `account` exists), the partner simply matches it.
    partners[0].previously = Some("NHoliday3".into());
    partners[0].email = "other@example.edu".into();
    let p = plan(&store, &partners, &groups, &pol);
    let r = p
        .resolutions
        .iter()
        .find(|r| r.partner == "other@example.edu")
        .unwrap();
    assert_eq!(
        (r.outcome, r.account.as_deref()),
        (Outcome::Matched, Some("NHoliday"))
    );
}

#[test]
fn an_unresolved_case_manager_leaves_assignments_as_they_are() {
    let store = MemoryStore::new();
    let (mut partners, groups, pol) = section_9();
    partners[0].previously = None;
    apply(&store, &plan(&store, &partners, &groups, &pol));
    // Brandon's surname differs from his account's: he needs confirming,
    // and whom he manages is not decided meanwhile (never cleared).
    partners[1].last_name = "Mitchel".into();
    let p = plan(&store, &partners, &groups, &pol);
    assert_eq!(p.summary.unresolved, 1);
    assert!(
        p.actions.iter().all(|a| a.op() != "set_case_manager"),
        "{:#?}",
        p.actions
    );
}

#[test]
fn user_names_email_names_new_accounts_by_their_email_unless_taken() {
    let store = MemoryStore::new();
    write(&store, |s| {
        account(
            s,
            "zed@example.edu",
            &person("z.other@example.edu", "Zoe", "Other", "1960-06-06"),
            true,
        );
    });
    let ann = person("Ann.Lee@Example.edu", "Ann", "Lee", "1990-01-01");
    let zed = person("zed@example.edu", "Zed", "Quinn", "1999-09-09");
    let groups = [group(
        "G",
        &[("ann.lee@example.edu", false), ("zed@example.edu", false)],
    )];
    let pol = policy(serde_json::json!({"user_names": "email"}));
    let p = plan(&store, &[ann, zed], &groups, &pol);
    let ann = p
        .resolutions
        .iter()
        .find(|r| r.partner == "ann.lee@example.edu")
        .unwrap();
    assert_eq!(
        (ann.outcome, ann.account.as_deref()),
        (Outcome::Create, Some("ann.lee@example.edu"))
    );
    let zed = p
        .resolutions
        .iter()
        .find(|r| r.partner == "zed@example.edu")
        .unwrap();
    assert_eq!(zed.outcome, Outcome::Conflict);
    assert_eq!(zed.candidates, ["zed@example.edu"]);
    assert_eq!(
        zed.reason.as_deref(),
        Some(
            "the user name `zed@example.edu` (policy user_names: email) is taken by another account; add `account: <user name>` to name the new account"
        )
    );
}

#[test]
fn a_user_name_asked_twice_is_looked_up_once_and_keeps_its_grants() {
    let store = MemoryStore::new();
    let pol = policy(serde_json::json!({
        "roles": ["public-viewer", "caseworker"],
        "entitlements": {"products": ["webcenter"]},
        "user_names": "email",
    }));
    let ann = partner(serde_json::json!({
        "email": "ann.lee@example.edu", "first_name": "Ann", "last_name": "Lee",
        "birth_date": "1980-01-01", "roles": ["caseworker"],
        "entitlements": {"products": ["webcenter"]},
    }));
    let first = plan(&store, std::slice::from_ref(&ann), &[], &pol);
    apply(&store, &first);
    // `account` equal to the email the policy names the account by.
    let mut pinned = ann.clone();
    pinned.account = Some("Ann.Lee@example.edu".into());
    let noted = Rc::new(RefCell::new(Vec::new()));
    let mut reader = Noting {
        inner: store.reader().expect("reader"),
        asked: noted.clone(),
    };
    let d = Desired {
        groups: Vec::new(),
        partners: vec![&pinned],
        policy: &pol,
        digest: "sha256:0".into(),
    };
    let live = gather(&mut reader, &d).expect("gather");
    let p = compute(&d, &live, Vec::new(), Vec::new());
    assert_eq!(noted.borrow()[0], ("accounts_by_user_name", 1));
    assert_eq!(live.accounts.len(), 1);
    assert_eq!(live.accounts[0].roles, ["caseworker"]);
    assert_eq!(p.actions, [], "{:#?}", p.actions);
}

#[test]
fn max_removals_caps_user_manager_grants_apart_and_counts_every_revoke() {
    let store = MemoryStore::new();
    let people: Vec<Partner> = ["ann", "bob", "cy", "dee"]
        .iter()
        .map(|n| person(&format!("{n}@example.org"), n, "Person", "1990-01-01"))
        .collect();
    write(&store, |s| {
        s.create_group("G", GroupType::Organization, None)
            .expect("group");
        for (p, n) in people.iter().zip(["ann", "bob", "cy", "dee"]) {
            account(s, n, p, true);
            s.add_membership(n, "G", n == "ann").expect("member");
        }
    });
    let pol = policy(serde_json::json!({"max_removals": "50%"}));
    // Ann stays in G but no longer manages it; every role is swapped.
    let members: Vec<(&str, bool)> = people.iter().map(|p| (p.email.as_str(), false)).collect();
    let mut swapped = people.clone();
    for p in &mut swapped {
        p.role = Some("individual".into());
    }
    let p = plan(&store, &swapped, &[group("G", &members)], &pol);
    let caps = removal_caps(&p);
    assert_eq!(caps, [("user_manager_grants", 1, 1, 0), ("roles", 4, 4, 2)]);
    // No membership is removed: that cap is not reached.
    assert_eq!((p.summary.removals(), p.removal_limit), (0, 2));
    let warned = mass_removals(&p);
    assert_eq!(
        warned,
        [
            "this plan removes 1 user-manager grant, more than max_removals allows (0 of 1)",
            "this plan removes 4 roles, more than max_removals allows (2 of 4)",
        ]
    );
}

#[test]
fn summary_counts_what_new_accounts_are_given() {
    let store = MemoryStore::new();
    let (mut partners, groups, pol) = section_9();
    // Noelle is new here: her two roles come with create_account, her two
    // entitlements are grant_entitlement actions of their own.
    partners[0].account = None;
    partners[0].previously = None;
    let p = plan(&store, &partners, &groups, &pol);
    let created: Vec<(&str, &[String])> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateAccount { account, roles, .. } => Some((account.as_str(), &roles[..])),
            _ => None,
        })
        .collect();
    let roles_given: usize = created.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(created.len(), 3, "{created:?}");
    assert_eq!(roles_given, 4, "{created:?}");
    let s = &p.summary;
    assert_eq!(
        (s.create_accounts, s.new_account_roles, s.grant_roles),
        (3, 4, 0)
    );
    assert_eq!(s.grant_entitlements, 2);
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["summary"]["new_account_roles"], 4);
    let line = super::render::summary_line(&p);
    assert!(
        line.starts_with(
            "Plan: 1 group to create, 3 accounts to create (with 4 roles), 2 entitlements to grant,"
        ),
        "{line}"
    );
    let md = super::render::markdown(&p.clone().into_display(false));
    assert!(md.contains("3 accounts to create (with 4 roles)"), "{md}");

    // A roster without a catalog of its own: a new account's role is part
    // of the account, as before catalogs; the summary is what it was.
    let legacy = Policy::default();
    let mut zed = partners[2].clone();
    zed.sign_in = None;
    let solo = group("North Team", &[("zed@example.edu", true)]);
    let p = plan(&MemoryStore::new(), &[zed], &[solo], &legacy);
    assert_eq!(
        (p.summary.create_accounts, p.summary.new_account_roles),
        (1, 0)
    );
    let json = serde_json::to_value(&p).unwrap();
    assert!(json["summary"].get("new_account_roles").is_none(), "{json}");
    assert!(
        !super::render::summary_line(&p).contains("(with"),
        "{}",
        super::render::summary_line(&p)
    );
}
