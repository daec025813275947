//! The checks of SPEC §9: roles and entitlements against their catalogs,
//! case managers, renames (`previously`).

use super::Index;
use super::finding::{Code, Finding, did_you_mean};
use crate::roster::model::EntitlementCatalog;
use crate::roster::normalize;
use crate::roster::yaml::Pos;
use crate::roster::{Roster, Section};
use std::collections::{HashMap, HashSet};

pub fn check(roster: &Roster, index: &Index, out: &mut Vec<Finding>) {
    let p = &roster.policy;
    let catalog: HashSet<&str> = p.roles.iter().map(|r| r.trim()).collect();
    let shown_roles = p.roles.join(", ");
    let unknown_role = |what: String, role: &str, file: &str, pos: Pos| {
        let f = Finding::error(
            Code::InvalidValue,
            file,
            pos,
            format!("{what} must be one of: {shown_roles}; found \"{role}\""),
        );
        match did_you_mean(role, p.roles.iter().map(String::as_str)) {
            Some(m) => f.help(format!("did you mean `{m}`?")),
            None => f.help("use a role of `policy.roles`, or add this one there"),
        }
    };

    if let Some(pf) = roster.policy_at {
        let written = roster.files[pf]
            .tree
            .as_ref()
            .and_then(|t| t.at(["policy", "default_roles"]))
            .is_some();
        let missing: Vec<&str> = p
            .default_roles
            .iter()
            .map(String::as_str)
            .filter(|r| !catalog.contains(r.trim()))
            .collect();
        if !written && !missing.is_empty() {
            let (file, pos) = roster.key_pos(pf, &["policy"], "roles");
            out.push(
                Finding::error(
                    Code::InvalidValue,
                    file,
                    pos,
                    format!(
                        "`policy.roles` leaves out `{}`, the default of `default_roles`",
                        missing.join("`, `")
                    ),
                )
                .help("set `default_roles:` to the roles of the catalog a partner gets when it names none")
                .in_file(pf),
            );
        }
        for (i, r) in p.default_roles.iter().enumerate().filter(|_| written) {
            if !catalog.contains(r.trim()) {
                let (file, pos) =
                    value_pos(roster, pf, &["policy", "default_roles", &i.to_string()]);
                out.push(
                    unknown_role("each item of `default_roles`".into(), r, file, pos).in_file(pf),
                );
            }
        }
        // Only as written: the default names a role a custom catalog may
        // leave out, and then no role of it manages users.
        let written = roster.files[pf]
            .tree
            .as_ref()
            .and_then(|t| t.at(["policy", "user_manager_roles"]))
            .is_some();
        for (i, r) in p.user_manager_roles.iter().enumerate().filter(|_| written) {
            if !catalog.contains(r.trim()) {
                let (file, pos) = value_pos(
                    roster,
                    pf,
                    &["policy", "user_manager_roles", &i.to_string()],
                );
                out.push(
                    unknown_role("each item of `user_manager_roles`".into(), r, file, pos)
                        .in_file(pf),
                );
            }
        }
    }

    let coverage = p
        .entitlements
        .values()
        .any(|c| matches!(c, EntitlementCatalog::Groups(_)));
    let groups: HashMap<String, &str> = roster
        .groups
        .iter()
        .filter(|_| coverage)
        .map(|g| (normalize::name_key(&g.item.name), g.item.name.as_str()))
        .collect();
    let mut kinds: Vec<&str> = p.entitlements.keys().map(String::as_str).collect();
    kinds.sort_unstable();

    for (i, e) in roster.partners.iter().enumerate() {
        let partner = &e.item;
        let at = e.at;
        let here = |path: &[&str]| roster.pos(Section::Partners, at, path);
        let email = &index.emails[i];

        if let Some(r) = &partner.role {
            if partner.roles.is_some() {
                let (file, pos) = key_of(roster, at, &[], "roles");
                out.push(
                    Finding::error(
                        Code::RoleAndRoles,
                        file,
                        pos,
                        format!("partner `{email}` has both `role` and `roles`"),
                    )
                    .help("write one: `roles: [...]` lists every role, `role:` names a single one")
                    .in_file(at.file),
                );
            } else if !catalog.contains(r.trim()) {
                let (file, pos) = here(&["role"]);
                out.push(unknown_role("`role`".into(), r, file, pos).in_file(at.file));
            }
        }
        for (j, r) in partner.roles.iter().flatten().enumerate() {
            if !catalog.contains(r.trim()) {
                let (file, pos) = here(&["roles", &j.to_string()]);
                out.push(
                    unknown_role("each item of `roles`".into(), r, file, pos).in_file(at.file),
                );
            }
        }

        for (kind, values) in &partner.entitlements {
            let Some(allowed) = p.entitlements.get(kind) else {
                let (file, pos) = key_of(roster, at, &["entitlements"], kind);
                let known = if kinds.is_empty() {
                    "the policy declares none".to_string()
                } else {
                    format!("kinds: {}", kinds.join(", "))
                };
                let f = Finding::error(
                    Code::UnknownEntitlementKind,
                    file,
                    pos,
                    format!("entitlement kind `{kind}` is not in `policy.entitlements` ({known})"),
                )
                .span_len(kind.len());
                out.push(
                    match did_you_mean(kind, kinds.iter().copied()) {
                        Some(m) => f.help(format!("did you mean `{m}`?")),
                        None => f.help(format!("declare it: `policy.entitlements.{kind}: [...]`")),
                    }
                    .in_file(at.file),
                );
                continue;
            };
            for (j, v) in values.iter().enumerate() {
                let known = match allowed {
                    EntitlementCatalog::Groups(_) => groups.contains_key(&normalize::name_key(v)),
                    EntitlementCatalog::Values(vs) => vs.iter().any(|x| x.trim() == v.trim()),
                };
                if known {
                    continue;
                }
                // Only for a value that is wrong: a suggestion costs a
                // distance to every group or value of the catalog.
                let suggest = match allowed {
                    EntitlementCatalog::Groups(_) => did_you_mean(v, groups.values().copied()),
                    EntitlementCatalog::Values(vs) => {
                        did_you_mean(v, vs.iter().map(String::as_str))
                    }
                };
                let (file, pos) = here(&["entitlements", kind, &j.to_string()]);
                let message = match allowed {
                    EntitlementCatalog::Groups(_) => format!(
                        "`{v}` is not a group of this roster, so it cannot be a value of entitlement `{kind}`"
                    ),
                    EntitlementCatalog::Values(vs) => format!(
                        "`{v}` is not a value of entitlement `{kind}` (values: {})",
                        vs.join(", ")
                    ),
                };
                let f = Finding::error(Code::UnknownEntitlementValue, file, pos, message);
                out.push(
                    match suggest {
                        Some(m) => f.help(format!("did you mean `{m}`?")),
                        None => f.help(format!(
                            "use a value of `policy.entitlements.{kind}`, or add this one there"
                        )),
                    }
                    .in_file(at.file),
                );
            }
        }

        if let Some(cm) = &partner.case_manager {
            let key = normalize::email_key(cm);
            // Looked up only for a finding: most case managers are fine.
            let (file, pos) = match index.by_email.get(key.as_ref()) {
                Some(&m) if index.first(i) != m && roster.partners[m].item.active => continue,
                _ => here(&["case_manager"]),
            };
            let finding = match index.by_email.get(key.as_ref()) {
                None => {
                    let f = Finding::error(
                        Code::UnknownCaseManager,
                        file,
                        pos,
                        format!("case manager `{key}` of `{email}` is not among the partners"),
                    );
                    Some(
                        match did_you_mean(&key, index.by_email.keys().map(|k| k.as_ref())) {
                            Some(m) => f.help(format!("did you mean `{m}`?")),
                            None => f.help(
                                "a case manager is a partner: add them under `partners:`, or fix the email",
                            ),
                        },
                    )
                }
                Some(&m) if index.first(i) == m => Some(
                    Finding::error(
                        Code::OwnCaseManager,
                        file,
                        pos,
                        format!("`{email}` is named as their own case manager"),
                    )
                    .help("name another active partner, or remove `case_manager`"),
                ),
                Some(&m) if !roster.partners[m].item.active => Some(
                    Finding::error(
                        Code::InactiveCaseManager,
                        file,
                        pos,
                        format!(
                            "case manager `{key}` of `{email}` is marked `active: false`"
                        ),
                    )
                    .help("a case manager must be an active partner: name another one, or make them active"),
                ),
                Some(_) => None,
            };
            if let Some(f) = finding {
                out.push(f.span_len(cm.len()).in_file(at.file));
            }
        }
    }
    renames(roster, index, out);
}

/// `previously` names the account's former user name: it needs the new
/// one (`account`), differs from it, and no two partners claim one name.
/// User names compare case-insensitively, as the stores keep them.
fn renames(roster: &Roster, index: &Index, out: &mut Vec<Finding>) {
    if roster.partners.iter().all(|e| e.item.previously.is_none()) {
        return; // most rosters: no user-name index to build
    }
    let accounts: HashMap<String, usize> = roster
        .partners
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((e.item.account.as_deref()?.trim().to_lowercase(), i)))
        .collect();
    let mut claimed: HashMap<String, usize> = HashMap::new();
    for (i, e) in roster.partners.iter().enumerate() {
        let Some(old) = e.item.previously.as_deref() else {
            continue;
        };
        let email = &index.emails[i];
        let key = old.trim().to_lowercase();
        let (file, pos) = roster.pos(Section::Partners, e.at, &["previously"]);
        let err = |code, msg: String| {
            Finding::error(code, file, pos, msg)
                .span_len(old.len())
                .in_file(e.at.file)
        };
        let Some(new) = e.item.account.as_deref() else {
            out.push(
                err(
                    Code::PreviouslyWithoutAccount,
                    format!("partner `{email}` has `previously: {old}` but no `account`"),
                )
                .help("a rename needs both names: add `account:` with the new user name"),
            );
            continue;
        };
        if new.trim().to_lowercase() == key {
            out.push(
                err(
                    Code::RenameToSameName,
                    format!("partner `{email}` has `previously` equal to `account` (`{new}`)"),
                )
                .help("`previously` is the old user name and `account` the new one; remove `previously` if there is no rename"),
            );
            continue;
        }
        if let Some(&first) = claimed.get(&key) {
            let (ffile, fpos) = roster.pos(
                Section::Partners,
                roster.partners[first].at,
                &["previously"],
            );
            out.push(
                err(
                    Code::DuplicatePreviously,
                    format!(
                        "`{old}` is the `previously` of two partners, `{}` and `{email}`",
                        index.emails[first]
                    ),
                )
                .help(format!(
                    "first claimed at {ffile}:{}; one account can be renamed once",
                    fpos.line
                )),
            );
            continue;
        }
        claimed.insert(key.clone(), i);
        if let Some(&other) = accounts.get(&key) {
            out.push(
                err(
                    Code::DuplicatePreviously,
                    format!(
                        "`{old}` is the `previously` of `{email}` but the `account` of `{}`",
                        index.emails[other]
                    ),
                )
                .help("a renamed account gives up its old name: fix one of the two"),
            );
        }
    }
}

/// The position of a value in the policy file, falling back to the policy.
fn value_pos<'a>(roster: &'a Roster, file: usize, path: &[&str]) -> (&'a str, Pos) {
    let f = &roster.files[file];
    let pos = f
        .tree
        .as_ref()
        .and_then(|t| t.at(path.iter().copied()).or_else(|| t.at(["policy"])))
        .map_or(Pos::default(), |n| n.pos);
    (&f.name, pos)
}

/// The position of a key inside a partner.
fn key_of<'a>(
    roster: &'a Roster,
    at: crate::roster::Origin,
    path: &[&str],
    key: &str,
) -> (&'a str, Pos) {
    let idx = at.index.to_string();
    let mut full = vec!["partners", idx.as_str()];
    full.extend_from_slice(path);
    roster.key_pos(at.file, &full, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::finding::Severity;
    use crate::check::rules::tests::roster_of;

    /// Code, line, column, message and help of each finding, in file order.
    type Found = (&'static str, u32, u32, String, Option<String>);

    fn found(text: &str) -> Vec<Found> {
        let roster = roster_of(&[("r.yaml", text)]);
        let index = Index::new(&roster);
        let mut out = Vec::new();
        check(&roster, &index, &mut out);
        assert!(
            out.iter()
                .all(|f| f.severity == Severity::Error && f.file == "r.yaml")
        );
        let mut got: Vec<Found> = out
            .into_iter()
            .map(|f| (f.code.as_str(), f.line, f.column, f.message, f.help))
            .collect();
        got.sort_by_key(|g| (g.1, g.2));
        got
    }

    /// Lines 1-27: a catalog policy, two groups, three partners; the third
    /// (line 24) is inactive. `{ann}` is Ann's extra lines, from line 19.
    fn roster(ann: &str) -> String {
        format!(
            "\
version: 1
policy:
  required_fields: []
  roles: [public-viewer, individual, caseworker, supervisor]
  default_roles: [caseworker]
  entitlements:
    products: [webcenter, hrcenter, job-board]
    coverage: groups
groups:
  - name: North Team
    members: [ann@example.org, bob@example.org]
  - name: South Team
    members: [cat@example.org]
partners:
  - email: ann@example.org
    first_name: Ann
    last_name: Lee
    account: ALee
{ann}  - email: bob@example.org
    first_name: Bob
    last_name: Ray
    account: BRay
  - email: cat@example.org
    first_name: Cat
    last_name: Cole
    active: false
"
        )
    }

    fn one(code: &'static str, line: u32, column: u32, message: &str, help: &str) -> Vec<Found> {
        vec![(code, line, column, message.into(), Some(help.into()))]
    }

    #[test]
    fn a_roster_using_every_catalog_is_clean() {
        let ann = "    roles: [caseworker, supervisor]\n    entitlements:\n      products: [webcenter]\n      coverage: [north team, South Team]\n    case_manager: BOB@example.org\n    previously: ALee2\n    sign_in: sso\n";
        assert_eq!(found(&roster(ann)), vec![]);
        // Without a catalog, the two roles of old still hold.
        assert_eq!(
            found(
                "version: 1\npartners:\n  - email: a@example.org\n    first_name: A\n    last_name: B\n    role: individual\n"
            ),
            vec![]
        );
    }

    #[test]
    fn each_bad_field_gives_its_exact_finding() {
        let cases: Vec<(&str, String, Vec<Found>)> = vec![
            (
                "unknown role",
                roster("    role: casework\n"),
                one(
                    "invalid-value",
                    19,
                    11,
                    "`role` must be one of: public-viewer, individual, caseworker, supervisor; found \"casework\"",
                    "did you mean `caseworker`?",
                ),
            ),
            (
                "unknown role in a list",
                roster("    roles: [supervisor, admin]\n"),
                one(
                    "invalid-value",
                    19,
                    25,
                    "each item of `roles` must be one of: public-viewer, individual, caseworker, supervisor; found \"admin\"",
                    "use a role of `policy.roles`, or add this one there",
                ),
            ),
            (
                "role and roles",
                roster("    role: caseworker\n    roles: [supervisor]\n"),
                one(
                    "role-and-roles",
                    20,
                    5,
                    "partner `ann@example.org` has both `role` and `roles`",
                    "write one: `roles: [...]` lists every role, `role:` names a single one",
                ),
            ),
            (
                "unknown default role",
                roster("").replace("default_roles: [caseworker]", "default_roles: [supervisr]"),
                one(
                    "invalid-value",
                    5,
                    19,
                    "each item of `default_roles` must be one of: public-viewer, individual, caseworker, supervisor; found \"supervisr\"",
                    "did you mean `supervisor`?",
                ),
            ),
            (
                "a catalog without the default's default role",
                roster("").replace("  default_roles: [caseworker]\n", "").replace("[public-viewer, individual, caseworker, supervisor]", "[caseworker]"),
                one(
                    "invalid-value",
                    4,
                    3,
                    "`policy.roles` leaves out `public-viewer`, the default of `default_roles`",
                    "set `default_roles:` to the roles of the catalog a partner gets when it names none",
                ),
            ),
            (
                "unknown entitlement kind",
                roster("    entitlements:\n      product: [webcenter]\n"),
                one(
                    "unknown-entitlement-kind",
                    20,
                    7,
                    "entitlement kind `product` is not in `policy.entitlements` (kinds: coverage, products)",
                    "did you mean `products`?",
                ),
            ),
            (
                "entitlement kind with no catalog at all",
                roster("    entitlements:\n      dashboards: [caseload]\n")
                    .replace("  entitlements:\n    products: [webcenter, hrcenter, job-board]\n    coverage: groups\n", ""),
                one(
                    "unknown-entitlement-kind",
                    17,
                    7,
                    "entitlement kind `dashboards` is not in `policy.entitlements` (the policy declares none)",
                    "declare it: `policy.entitlements.dashboards: [...]`",
                ),
            ),
            (
                "unknown entitlement value",
                roster("    entitlements:\n      products: [webcentre]\n"),
                one(
                    "unknown-entitlement-value",
                    20,
                    18,
                    "`webcentre` is not a value of entitlement `products` (values: webcenter, hrcenter, job-board)",
                    "did you mean `webcenter`?",
                ),
            ),
            (
                "coverage of a group the roster lacks",
                roster("    entitlements:\n      coverage: [Nort Team, East]\n"),
                vec![
                    (
                        "unknown-entitlement-value",
                        20,
                        18,
                        "`Nort Team` is not a group of this roster, so it cannot be a value of entitlement `coverage`".into(),
                        Some("did you mean `North Team`?".into()),
                    ),
                    (
                        "unknown-entitlement-value",
                        20,
                        29,
                        "`East` is not a group of this roster, so it cannot be a value of entitlement `coverage`".into(),
                        Some("use a value of `policy.entitlements.coverage`, or add this one there".into()),
                    ),
                ],
            ),
            (
                "case manager not a partner",
                roster("    case_manager: bob@exmple.org\n"),
                one(
                    "unknown-case-manager",
                    19,
                    19,
                    "case manager `bob@exmple.org` of `ann@example.org` is not among the partners",
                    "did you mean `bob@example.org`?",
                ),
            ),
            (
                "case manager inactive",
                roster("    case_manager: cat@example.org\n"),
                one(
                    "inactive-case-manager",
                    19,
                    19,
                    "case manager `cat@example.org` of `ann@example.org` is marked `active: false`",
                    "a case manager must be an active partner: name another one, or make them active",
                ),
            ),
            (
                "own case manager",
                roster("    case_manager: Ann@Example.org\n"),
                one(
                    "own-case-manager",
                    19,
                    19,
                    "`ann@example.org` is named as their own case manager",
                    "name another active partner, or remove `case_manager`",
                ),
            ),
            (
                "rename onto the same name",
                roster("    previously: alee\n"),
                one(
                    "rename-to-same-name",
                    19,
                    17,
                    "partner `ann@example.org` has `previously` equal to `account` (`ALee`)",
                    "`previously` is the old user name and `account` the new one; remove `previously` if there is no rename",
                ),
            ),
            (
                "rename without account",
                roster("").replace("    account: BRay\n", "    previously: BRay2\n"),
                one(
                    "previously-without-account",
                    22,
                    17,
                    "partner `bob@example.org` has `previously: BRay2` but no `account`",
                    "a rename needs both names: add `account:` with the new user name",
                ),
            ),
            (
                "one old name claimed twice",
                roster("    previously: X1\n").replace("    account: BRay\n", "    account: BRay\n    previously: x1\n"),
                one(
                    "duplicate-previously",
                    24,
                    17,
                    "`x1` is the `previously` of two partners, `ann@example.org` and `bob@example.org`",
                    "first claimed at r.yaml:19; one account can be renamed once",
                ),
            ),
            (
                "an old name that another partner keeps",
                roster("    previously: BRay\n"),
                one(
                    "duplicate-previously",
                    19,
                    17,
                    "`BRay` is the `previously` of `ann@example.org` but the `account` of `bob@example.org`",
                    "a renamed account gives up its old name: fix one of the two",
                ),
            ),
        ];
        let mut failures = Vec::new();
        for (name, text, want) in cases {
            let got = found(&text);
            if got != want {
                failures.push(format!("{name}:\n  want {want:?}\n  got  {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
