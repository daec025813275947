//! The examples of the seed systems (`examples/staffing`,
//! `examples/career-services`, `examples/case-management`), walked through
//! as their READMEs do: the live store seeded, the roster planned (every
//! action asserted), applied, exported, and planned again with no changes;
//! on SQLite, on PostgreSQL, and through `roster serve` as a SCIM store.

use super::serve::{self, Server};
use super::store::Backend;
use super::*;
use std::collections::BTreeMap;
use std::process::Stdio;

/// One example: its folder, what the walk-through plans, what it expects.
struct Example {
    /// Under `examples/`.
    name: &'static str,
    /// What `plan` and `apply` are given, relative to the folder.
    roster: &'static str,
    /// Every action of the first plan, as [`describe`] writes them, sorted.
    actions: &'static [&'static str],
    /// The summary's non-zero counts.
    summary: &'static [(&'static str, u64)],
}

const STAFFING: Example = Example {
    name: "staffing",
    roster: "roster.yaml",
    actions: &[
        "create_account OHaddad roles=payroll sign_in=password",
        "create_account TNguyen roles=web-user sign_in=invite",
        "rename_account MSantos MAlvarez",
        "update_profile MAlvarez last_name",
        "grant_role GKim account-manager",
        "grant_entitlement GKim products:hrcenter",
        "grant_entitlement OHaddad products:hrcenter",
        "grant_entitlement TNguyen products:job-board",
        "add_membership OHaddad Summit Staffing - Springfield Branch",
        "add_membership TNguyen Summit Staffing - Peoria Branch",
        "remove_membership DPrice Summit Staffing - Peoria Branch",
        "revoke_entitlement LOrtega products:hrcenter",
        "deactivate_account DPrice",
    ],
    summary: &[
        ("create_accounts", 2),
        ("new_account_roles", 2),
        ("rename_accounts", 1),
        ("update_profiles", 1),
        ("grant_roles", 1),
        ("grant_entitlements", 3),
        ("add_memberships", 2),
        ("remove_memberships", 1),
        ("revoke_entitlements", 1),
        ("deactivate_accounts", 1),
    ],
};

const CAREER_SERVICES: Example = Example {
    name: "career-services",
    roster: "roster",
    actions: &[
        "create_group Spring 2027 Intake",
        "create_account KLindqvist roles=student sign_in=-",
        "create_account LRamirez roles=student sign_in=-",
        "create_account ZAdeyemi roles=student sign_in=-",
        "add_membership KLindqvist Spring 2027 Intake",
        "add_membership LRamirez Spring 2027 Intake",
        "add_membership ZAdeyemi Spring 2027 Intake",
        "set_case_manager ECole BMitchell",
        "set_case_manager MFischer NHoliday",
        "set_case_manager LOrtiz -",
        "remove_membership LOrtiz Class of 2027",
        "deactivate_account LOrtiz",
    ],
    summary: &[
        ("create_groups", 1),
        ("create_accounts", 3),
        ("new_account_roles", 3),
        ("add_memberships", 3),
        ("set_case_managers", 3),
        ("remove_memberships", 1),
        ("deactivate_accounts", 1),
    ],
};

const CASE_MANAGEMENT: Example = Example {
    name: "case-management",
    roster: "roster.yaml",
    actions: &[
        "create_account DWu roles=intake,user sign_in=sso",
        "create_account FAziz roles=caseworker,user sign_in=sso",
        "create_account KBrown roles=caseworker,user sign_in=sso",
        "grant_entitlement DWu dashboards:intake-queue",
        "grant_entitlement FAziz dashboards:caseload",
        "grant_entitlement JOkoro dashboards:outcomes",
        "grant_entitlement KBrown dashboards:caseload",
        "grant_entitlement RDelgado coverage:South Team",
        "add_membership DWu Intake Unit",
        "add_membership FAziz North Team",
        "add_membership KBrown South Team",
        "set_case_manager FAziz RDelgado",
        "set_case_manager HPark RDelgado",
        "set_case_manager KBrown RDelgado",
        "remove_membership VHale South Team",
        "deactivate_account VHale",
    ],
    summary: &[
        ("create_accounts", 3),
        ("new_account_roles", 6),
        ("grant_entitlements", 5),
        ("add_memberships", 3),
        ("set_case_managers", 3),
        ("remove_memberships", 1),
        ("deactivate_accounts", 1),
    ],
};

/// An action in one line: op, account, and what the op is about.
fn describe(a: &Value) -> String {
    let s = |k: &str| a[k].as_str().unwrap_or("-").to_string();
    let list = |k: &str| {
        let mut v: Vec<&str> = a[k]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        v.sort_unstable();
        v.join(",")
    };
    let op = s("op");
    let about = match op.as_str() {
        "create_group" => return format!("{op} {}", s("group")),
        "create_account" => format!("roles={} sign_in={}", list("roles"), s("sign_in")),
        "rename_account" => s("new_name"),
        "update_profile" => {
            let mut fields: Vec<String> = a["fields"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .or_else(|| {
                    a["fields"].as_array().map(|l| {
                        l.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                })
                .unwrap_or_default();
            fields.sort();
            fields.join(",")
        }
        "grant_role" | "revoke_role" => s("role"),
        "grant_entitlement" | "revoke_entitlement" => format!("{}:{}", s("kind"), s("value")),
        "set_case_manager" => s("case_manager"),
        "add_membership" | "remove_membership" | "grant_user_manager" | "revoke_user_manager" => {
            s("group")
        }
        _ => String::new(),
    };
    format!("{op} {} {about}", s("account"))
        .trim_end()
        .to_string()
}

/// The actions of a plan as [`describe`] writes them, sorted.
fn actions(plan: &Value) -> Vec<String> {
    let mut v: Vec<String> = plan["actions"]
        .as_array()
        .unwrap_or_else(|| panic!("no actions: {plan}"))
        .iter()
        .map(describe)
        .collect();
    v.sort();
    v
}

/// The example's folder copied into a temporary directory, and a store.
struct Walk {
    r: Roster,
    /// The store to plan against: a SQL URL or `scim+http://…`.
    store: String,
    /// The SQL store underneath (the same as `store` without a server).
    db: String,
    /// The token `roster` uses as a SCIM client of the server.
    token: Option<String>,
    _server: Option<Server>,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

impl Walk {
    /// The example with its live store seeded from `live.yaml` (as its
    /// README does); with `through_serve`, a `roster serve` over that
    /// SQLite store, with the roster's catalogs (`--roster`), and the
    /// walk's store its SCIM URL.
    fn new(e: &Example, backend: Backend, through_serve: bool) -> Walk {
        let r = roster();
        copy_dir(&repo(&format!("examples/{}", e.name)), r.path());
        let db = serve::store_url(backend);
        let mut w = Walk {
            r,
            store: db.clone(),
            db,
            token: None,
            _server: None,
        };
        w.ok(&["apply", "--yes", "--store", &w.db.clone(), "live.yaml"]);
        if through_serve {
            let token = w
                .ok(&["token", "create", "--name", "ci", "--store", &w.db.clone()])
                .stdout
                .trim()
                .to_string();
            let server = serve::start_with(w.r.path(), &w.db, &["--roster", e.roster]);
            w.store = format!("scim+{}", server.base);
            w.token = Some(token);
            w._server = Some(server);
        }
        w
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
        c.args(args)
            .current_dir(self.r.path())
            .env_remove("ROSTER_STORE")
            .env_remove("ROSTER_FORMAT")
            .env_remove("ROSTER_SHOW_PII")
            .env("NO_COLOR", "1")
            .env("ROSTER_ACTOR", "test-admin")
            .stdin(Stdio::null());
        if let Some(t) = &self.token {
            c.env("ROSTER_SCIM_TOKEN", t);
        }
        Roster::output(args, c.output().expect("run roster"))
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.code, 0, "{args:?}\n{}\n{}", out.stdout, out.stderr);
        out
    }

    /// `plan --format json --detailed-exitcode` of `target`: (exit code, plan).
    fn plan(&self, target: &str) -> (i32, Value) {
        let out = self.run(&[
            "plan",
            "--store",
            &self.store,
            target,
            "--format",
            "json",
            "--detailed-exitcode",
        ]);
        let plan = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
        (out.code, plan)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.r.path().join(name), text).unwrap();
    }

    /// Career services' intake CSV imported, as the walk-through does,
    /// into `roster/intake.yaml`: the roster text.
    fn import_intake(&self) -> String {
        let group = "Spring 2027 Intake";
        let imported = self.ok(&["import", "csv", "intake.csv", "--group", group]);
        self.write("roster/intake.yaml", &imported.stdout);
        imported.stdout
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.r.path().join(name)).unwrap()
    }
}

/// The README's walk-through of `e`: plan (every action and count), apply,
/// plan again (no changes), export, plan the export (no changes).
fn walk_through(e: &Example, w: &Walk) {
    let (code, plan) = w.plan(e.roster);
    assert_eq!(code, 2, "changes to make: {plan}");
    assert_eq!(plan["summary"]["unresolved"], 0, "{plan}");
    let want: Vec<String> = {
        let mut v: Vec<String> = e.actions.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(actions(&plan), want, "{}", e.name);
    let counts: BTreeMap<&str, u64> = plan["summary"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_u64()?)))
        .filter(|(_, v)| *v > 0)
        .collect();
    assert_eq!(
        counts,
        e.summary.iter().copied().collect::<BTreeMap<_, _>>(),
        "{}",
        e.name
    );
    // Apply order (SPEC §9): each op's rank never goes down.
    let order = [
        "create_group",
        "create_account",
        "rename_account",
        "reactivate_account",
        "update_profile",
        "grant_role",
        "grant_entitlement",
        "add_membership",
        "grant_user_manager",
        "set_case_manager",
        "revoke_user_manager",
        "remove_membership",
        "revoke_entitlement",
        "revoke_role",
        "deactivate_account",
    ];
    let ranks: Vec<usize> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let op = a["op"].as_str().unwrap();
            order.iter().position(|o| *o == op).unwrap()
        })
        .collect();
    assert!(ranks.is_sorted(), "{}: ops out of apply order", e.name);

    let mut apply = vec!["apply", "--yes", "--store", &w.store, e.roster];
    if e.name == "staffing" {
        apply.extend(["--credentials-file", "credentials.csv"]);
    }
    w.ok(&apply);
    let (code, again) = w.plan(e.roster);
    assert_eq!(
        code, 0,
        "{}: the applied roster plans changes: {again}",
        e.name
    );
    assert_eq!(actions(&again), Vec::<String>::new());

    w.ok(&["export", "--store", &w.store, "-o", "export.yaml"]);
    let (code, exported) = w.plan("export.yaml");
    assert_eq!(
        code,
        0,
        "{}: the export plans changes: {exported}\n{}",
        e.name,
        w.read("export.yaml")
    );
}

/// Staffing: the agency's roles and products, a rename, and the password
/// made by hand for the one partner who signs in with one.
fn staffing(backend: Backend, through_serve: bool) {
    let w = Walk::new(&STAFFING, backend, through_serve);
    // A password made by hand needs a file to go to; without one, nothing
    // is written.
    let refused = w.run(&["apply", "--yes", "--store", &w.store, "roster.yaml"]);
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("needs --credentials-file FILE: the only place passwords are written"),
        "{}",
        refused.stderr
    );
    walk_through(&STAFFING, &w);
    let creds = w.read("credentials.csv");
    let lines: Vec<&str> = creds.lines().collect();
    assert_eq!(lines.len(), 2, "one password, for OHaddad only:\n{creds}");
    assert!(
        lines[1].starts_with("OHaddad,omar.haddad@summitstaffing.example.com,"),
        "{creds}"
    );
    let export = w.read("export.yaml");
    for want in [
        "account: MAlvarez\n",
        "last_name: Alvarez\n",
        "roles: [account-manager, recruiter]\n",
    ] {
        assert!(export.contains(want), "{want:?} not in\n{export}");
    }
    assert!(!export.contains("MSantos"), "{export}");
}

/// Career services: the intake CSV imported into the roster, as the
/// walk-through does, then the students' case managers.
fn career_services(backend: Backend, through_serve: bool) {
    let w = Walk::new(&CAREER_SERVICES, backend, through_serve);
    let imported = w.import_intake();
    // Students carry what the template gave and nothing more: the
    // roster's default role (`student`) applies to them.
    assert!(!imported.contains("role"), "{imported}");
    w.ok(&["check", "roster"]);
    walk_through(&CAREER_SERVICES, &w);
    // The platform's user list: the intake waits for case managers, and
    // each staff member's case load.
    let listed = |filter: &[&str]| -> Vec<String> {
        let mut args = vec!["accounts", "--store", &w.store, "--format", "json"];
        args.extend(filter);
        let out = w.ok(&args);
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout));
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["user_name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        listed(&["--unassigned", "--group", "Spring 2027 Intake"]),
        ["KLindqvist", "LRamirez", "ZAdeyemi"]
    );
    assert_eq!(
        listed(&["--case-manager", "brandon.mitchell@lakeview.example.edu"]),
        ["ABrooks", "ECole"]
    );
    assert_eq!(
        listed(&["--case-manager", "noelle.holiday@lakeview.example.edu"]),
        ["MFischer"]
    );
    let export = w.read("export.yaml");
    for want in [
        "  - email: ethan.cole@students.lakeview.example.edu\n    first_name: Ethan\n    last_name: Cole\n    role: student\n    case_manager: brandon.mitchell@lakeview.example.edu\n",
        "  - email: mia.fischer@students.lakeview.example.edu\n    first_name: Mia\n    last_name: Fischer\n    role: student\n    case_manager: noelle.holiday@lakeview.example.edu\n",
    ] {
        assert!(export.contains(want), "{want:?} not in\n{export}");
    }
}

/// Case management: SSO accounts without invitations, coverage of another
/// team, and the licence limit.
fn case_management(backend: Backend, through_serve: bool) {
    let w = Walk::new(&CASE_MANAGEMENT, backend, through_serve);
    let (_, plan) = w.plan(CASE_MANAGEMENT.roster);
    assert_eq!(
        plan["seats"],
        serde_json::json!({"used": 8, "max": 8, "free": 0}),
        "{plan}"
    );
    walk_through(&CASE_MANAGEMENT, &w);
    // The export says how accounts sign in only where the store says it: a
    // SCIM provider publishes no credential state, so none is `sign_in: sso`
    // there (the invited PNovak would read as one).
    let export = w.read("export.yaml");
    let sso = export.matches("sign_in: sso\n").count();
    if through_serve {
        assert!(!export.contains("sign_in"), "{export}");
    } else {
        assert_eq!(sso, 8, "all but the invited PNovak:\n{export}");
        assert!(!export.contains("sign_in: invite"), "{export}");
    }
    // SSO: no invitation waits for the new hires. A SCIM client cannot list
    // the provider's invitations: they are read from the store underneath.
    let invitations = w.ok(&["invitations", "--store", &w.db, "--format", "json"]);
    for name in ["DWu", "FAziz", "KBrown"] {
        assert!(
            !invitations.stdout.contains(name),
            "{name} was invited:\n{}",
            invitations.stdout
        );
    }
    assert!(
        invitations.stdout.contains("PNovak"),
        "{}",
        invitations.stdout
    );
}

/// The README's edit: the licence shrinks to 7 seats; a ninth hire would
/// need 9. Either way the plan is refused with the seats it would use.
fn case_management_seats(backend: Backend) {
    let w = Walk::new(&CASE_MANAGEMENT, backend, false);
    let text = w.read("roster.yaml");
    let edited = text.replace("max_active_accounts: 8", "max_active_accounts: 7");
    assert_ne!(edited, text);
    w.write("roster.yaml", &edited);
    let (code, plan) = w.plan("roster.yaml");
    assert_eq!(code, 1, "{plan}");
    assert_eq!(
        plan["seats"],
        serde_json::json!({"used": 8, "max": 7, "free": 0}),
        "{plan}"
    );
    let violations: Vec<(&str, &str)> = plan["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no violations: {plan}"))
        .iter()
        .map(|v| (v["code"].as_str().unwrap(), v["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        violations,
        [(
            "seats-exceeded",
            "this plan leaves 8 active accounts in the store, more than max_active_accounts allows (7)"
        )]
    );
    let human = w.run(&["plan", "--store", &w.store, "roster.yaml"]);
    assert_eq!(human.code, 1);
    assert!(
        human.stdout.contains(
            "this plan leaves 8 active accounts in the store, more than max_active_accounts allows (7)"
        ),
        "{}",
        human.stdout
    );
    let refused = w.run(&["apply", "--yes", "--store", &w.store, "roster.yaml"]);
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    // Nothing was written: the original roster still plans every change.
    w.write("roster.yaml", &text);
    let (code, plan) = w.plan("roster.yaml");
    assert_eq!(
        (code, actions(&plan).len()),
        (2, CASE_MANAGEMENT.actions.len())
    );
}

fn staffing_walk_through(b: Backend) {
    staffing(b, false)
}

fn career_services_walk_through(b: Backend) {
    career_services(b, false)
}

fn case_management_walk_through(b: Backend) {
    case_management(b, false)
}

fn case_management_over_the_licence(b: Backend) {
    case_management_seats(b)
}

on_every_store!(
    staffing_walk_through,
    career_services_walk_through,
    case_management_walk_through,
    case_management_over_the_licence,
);

/// The same walk-throughs with `roster` as a SCIM client of `roster serve`
/// over SQLite: plan, apply, export and plan again all through the server.
mod through_serve {
    use super::*;

    #[test]
    fn staffing() {
        super::staffing(Backend::Sqlite, true)
    }

    #[test]
    fn career_services() {
        super::career_services(Backend::Sqlite, true)
    }

    #[test]
    fn case_management() {
        super::case_management(Backend::Sqlite, true)
    }

    /// A plan through the server is the plan of the store underneath.
    #[test]
    fn plans_equal_the_store_underneath() {
        for e in [&STAFFING, &CAREER_SERVICES, &CASE_MANAGEMENT] {
            let w = Walk::new(e, Backend::Sqlite, true);
            if e.name == "career-services" {
                w.import_intake();
            }
            let (_, served) = w.plan(e.roster);
            let direct = w.ok(&["plan", "--store", &w.db, e.roster, "--format", "json"]);
            let direct: Value = serde_json::from_str(&direct.stdout).unwrap();
            for key in ["resolutions", "actions", "summary"] {
                assert_eq!(served[key], direct[key], "{}: {key} differ", e.name);
            }
        }
    }
}

/// In front of `roster serve` at `upstream` (host:port): passes requests
/// through, but before the first `PATCH` of a Group has `change` make its
/// own write, as someone else working on the provider at that moment.
fn change_before_first_group_patch(
    upstream: String,
    change: impl FnOnce() + Send + 'static,
) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut change = Some(change);
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            // One whole request: head and Content-Length body.
            let mut req = Vec::new();
            let mut chunk = [0u8; 8192];
            let complete = loop {
                let Ok(n) = c.read(&mut chunk) else {
                    break false;
                };
                if n == 0 {
                    break false;
                }
                req.extend_from_slice(&chunk[..n]);
                if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&req[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break true;
                    }
                }
            };
            if !complete {
                continue;
            }
            let text = String::from_utf8_lossy(&req).into_owned();
            let first_line = text.lines().next().unwrap_or_default();
            if first_line.starts_with("PATCH ")
                && first_line.contains("/Groups/")
                && let Some(f) = change.take()
            {
                f();
            }
            // Sent on as HTTP/1.0, so the server closes after its answer.
            let req = text.replacen(" HTTP/1.1\r\n", " HTTP/1.0\r\n", 1);
            let Ok(mut up) = std::net::TcpStream::connect(&upstream) else {
                continue;
            };
            let _ = up.write_all(req.as_bytes());
            let mut resp = Vec::new();
            let _ = up.read_to_end(&mut resp);
            let _ = c.write_all(&resp);
        }
    });
    port
}

/// Someone else changes LOrtiz at the provider while an apply runs, after
/// roster read the account and wrote its case manager, before the
/// membership and deactivation writes: the deactivation is refused (412),
/// not written over the other change, and the next plan still shows it.
#[test]
fn a_change_by_someone_else_mid_apply_is_not_overwritten() {
    let w = Walk::new(&CAREER_SERVICES, Backend::Sqlite, true);
    w.import_intake();
    let base = w._server.as_ref().unwrap().base.clone();
    let token = w.token.clone().unwrap();
    let found = serve::http(
        "GET",
        &format!("{base}/Users?filter=userName%20eq%20%22LOrtiz%22"),
        Some(&token),
        None,
        &[],
    );
    let id = found.body["Resources"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no LOrtiz: {}", found.body))
        .to_string();
    let user = format!("{base}/Users/{id}");
    let (u, t) = (user.clone(), token.clone());
    let upstream = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let port = change_before_first_group_patch(upstream, move || {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "name.givenName", "value": "Lucía"}],
        });
        let r = serve::http("PATCH", &u, Some(&t), Some(&body), &[]);
        assert_eq!(r.status, 200, "{}", r.body);
    });
    let through = format!("scim+http://127.0.0.1:{port}/scim/v2");
    let out = w.run(&[
        "apply",
        "--yes",
        "--store",
        &through,
        CAREER_SERVICES.roster,
    ]);
    assert_ne!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let failed: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("  - "))
        .collect();
    assert_eq!(failed.len(), 1, "{}", out.stderr);
    assert!(
        failed[0].contains("deactivate_account LOrtiz") && failed[0].contains("HTTP 412"),
        "{}",
        out.stderr
    );
    // The other change stands, and LOrtiz is still active.
    let now = serve::http("GET", &user, Some(&token), None, &[]).body;
    assert_eq!(now["name"]["givenName"], "Lucía", "{now}");
    assert_eq!(now["active"], true, "{now}");
    let (_, plan) = w.plan(CAREER_SERVICES.roster);
    let left: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["op"].as_str())
        .collect();
    assert_eq!(left, ["deactivate_account"], "{plan}");
}
