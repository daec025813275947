//! `roster accounts` on stores seeded through `roster apply`: a SQLite
//! file, a PostgreSQL database the tests start, and the SCIM client store
//! speaking to `roster serve`.

use super::serve::{ok_in, run_in, start};
use super::store::{Backend, seeded_with};
use super::*;

/// A case-management organisation: a supervisor who manages North Team's
/// users and oversees two caseworkers (one invited, one signed in by SSO),
/// a partner with no case manager whose name a spreadsheet would run, and
/// a deactivated account.
const SEED: &str = r#"version: 1
policy:
  roles: [public-viewer, individual, caseworker, supervisor]
  default_roles: [public-viewer]
  entitlements:
    products: [webcenter, hrcenter]
    dashboards: [caseload, outcomes]
  required_fields: []
groups:
  - name: North Team
    members:
      - email: brandon.mitchell@example.edu
        user_manager: true
      - noelle.holiday@example.edu
      - sam.smith@example.edu
  - name: South Team
    members:
      - pat.lee@example.edu
      - old.gone@example.edu
      - noelle.holiday@example.edu
partners:
  - email: brandon.mitchell@example.edu
    first_name: Brandon
    last_name: Mitchell
    birth_date: 1980-02-03
    phone: "217-555-0101"
    roles: [public-viewer, supervisor]
    entitlements:
      dashboards: [caseload, outcomes]
    sign_in: password
  - email: noelle.holiday@example.edu
    first_name: Noelle
    last_name: Holiday
    birth_date: 1990-04-05
    phone: "217-555-0102"
    roles: [caseworker]
    entitlements:
      products: [webcenter]
    case_manager: brandon.mitchell@example.edu
  - email: sam.smith@example.edu
    first_name: Sam
    last_name: Smith
    sign_in: sso
    case_manager: brandon.mitchell@example.edu
  - email: pat.lee@example.edu
    first_name: Pat
    last_name: '=HYPERLINK("http://evil.example", "Lee")'
    account: PLee
  - email: old.gone@example.edu
    first_name: Old
    last_name: Gone
    active: false
"#;

/// A store of `backend` seeded with [`SEED`] through `roster apply`.
fn seeded(backend: Backend) -> (Roster, String) {
    seeded_with(backend, SEED)
}

fn accounts(r: &Roster, db: &str, args: &[&str]) -> Output {
    let mut all = vec!["accounts", "--store", db];
    all.extend_from_slice(args);
    run_in(r.path(), &all)
}

fn accounts_ok(r: &Roster, db: &str, args: &[&str]) -> String {
    let out = accounts(r, db, args);
    assert_eq!(out.code, 0, "{args:?}\n{}\n{}", out.stdout, out.stderr);
    out.stdout
}

fn listed_json(r: &Roster, db: &str, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--format", "json"]);
    let text = accounts_ok(r, db, &all);
    serde_json::from_str::<Value>(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        .as_array()
        .unwrap()
        .clone()
}

/// The user names that these filters list.
fn names(r: &Roster, db: &str, args: &[&str]) -> Vec<String> {
    listed_json(r, db, args)
        .iter()
        .map(|a| a["user_name"].as_str().unwrap().to_string())
        .collect()
}

fn every_field_of_every_account_is_listed(b: Backend) {
    let (r, db) = seeded(b);
    let all = listed_json(&r, &db, &[]);
    let by = |u: &str| {
        all.iter()
            .find(|a| a["user_name"] == u)
            .unwrap_or_else(|| panic!("{u} not listed: {all:#?}"))
            .clone()
    };
    assert_eq!(
        by("NHoliday"),
        serde_json::json!({
            "user_name": "NHoliday",
            "first_name": "Noelle",
            "last_name": "Holiday",
            "email": "noelle.holiday@example.edu",
            "status": "active",
            "sign_in": "invited",
            "invitation": "queued",
            "roles": ["caseworker"],
            "groups": [
                {"name": "North Team", "user_manager": false},
                {"name": "South Team", "user_manager": false},
            ],
            "case_manager": {"user_name": "BMitchell", "email": "brandon.mitchell@example.edu"},
            "entitlements": [{"kind": "products", "value": "webcenter"}],
        })
    );
    let brandon = by("BMitchell");
    assert_eq!(brandon["sign_in"], "activated");
    assert_eq!(
        brandon["roles"],
        serde_json::json!(["public-viewer", "supervisor"])
    );
    assert_eq!(
        brandon["groups"],
        serde_json::json!([{"name": "North Team", "user_manager": true}])
    );
    assert_eq!(brandon["case_manager"], Value::Null);
    assert_eq!(
        brandon["entitlements"],
        serde_json::json!([
            {"kind": "dashboards", "value": "caseload"},
            {"kind": "dashboards", "value": "outcomes"},
        ])
    );
    assert_eq!(by("SSmith")["sign_in"], "sso");
    assert_eq!(by("SSmith")["roles"], serde_json::json!(["public-viewer"]));
    assert_eq!(by("OGone")["status"], "deactivated");
    // No invitation or mail: the field is there, null.
    assert_eq!(by("SSmith")["invitation"], Value::Null);
    assert_eq!(by("OGone")["invitation"], Value::Null);
    let gone = accounts_ok(&r, &db, &["--status", "deactivated"]);
    assert!(!gone.contains("INVITATION"), "{gone}");
    let invited = accounts_ok(&r, &db, &["--status", "invited"]);
    assert!(
        invited.lines().next().unwrap().contains("INVITATION"),
        "{invited}"
    );
    // Personal data only with --show-pii.
    assert!(brandon.get("phone").is_none() && brandon.get("birth_date").is_none());
    let pii = listed_json(&r, &db, &["--show-pii"]);
    let b = pii.iter().find(|a| a["user_name"] == "BMitchell").unwrap();
    assert_eq!(
        (&b["birth_date"], &b["phone"]),
        (
            &serde_json::json!("1980-02-03"),
            &serde_json::json!("2175550101")
        )
    );
}

fn filters_narrow_the_list_and_combine(b: Backend) {
    let (r, db) = seeded(b);
    let n = |args: &[&str]| names(&r, &db, args);
    assert_eq!(n(&[]), ["BMitchell", "NHoliday", "OGone", "PLee", "SSmith"]);
    assert_eq!(
        n(&["--status", "active"]),
        ["BMitchell", "NHoliday", "PLee", "SSmith"]
    );
    // Never activated: invited, not SSO.
    assert_eq!(n(&["--status", "invited"]), ["NHoliday", "PLee"]);
    assert_eq!(n(&["--status", "activated"]), ["BMitchell"]);
    assert_eq!(n(&["--status", "deactivated"]), ["OGone"]);
    assert_eq!(n(&["--assigned"]), ["NHoliday", "SSmith"]);
    assert_eq!(n(&["--unassigned"]), ["BMitchell", "OGone", "PLee"]);
    assert_eq!(n(&["--group", "South Team"]), ["NHoliday", "OGone", "PLee"]);
    assert_eq!(
        n(&["--case-manager", "Brandon.Mitchell@example.edu"]),
        ["NHoliday", "SSmith"]
    );
    // AND: each filter takes away.
    assert_eq!(
        n(&[
            "--group",
            "South Team",
            "--status",
            "active",
            "--unassigned"
        ]),
        ["PLee"]
    );
    assert_eq!(
        n(&[
            "--case-manager",
            "brandon.mitchell@example.edu",
            "--group",
            "South Team"
        ]),
        ["NHoliday"]
    );
    assert_eq!(
        n(&[
            "--case-manager",
            "brandon.mitchell@example.edu",
            "--status",
            "invited",
            "--group",
            "North Team"
        ]),
        ["NHoliday"]
    );
    assert!(
        n(&[
            "--case-manager",
            "brandon.mitchell@example.edu",
            "--unassigned"
        ])
        .is_empty()
    );
    let none = accounts_ok(&r, &db, &["--status", "deactivated", "--assigned"]);
    assert_eq!(none, "No accounts match.\n");
}

#[test]
fn the_table_is_aligned_and_leaves_out_personal_data() {
    let (r, db) = seeded(Backend::Sqlite);
    let table = accounts_ok(&r, &db, &[]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("USER NAME  NAME"),
        "header: {}",
        lines[0]
    );
    // Every column starts where its header does.
    for col in [
        "EMAIL",
        "STATUS",
        "SIGN IN",
        "ROLES",
        "GROUPS",
        "CASE MANAGER",
        "ENTITLEMENTS",
    ] {
        let at = lines[0]
            .find(col)
            .unwrap_or_else(|| panic!("no {col}: {table}"));
        for row in &lines[1..6] {
            let before = row.chars().nth(at - 1);
            assert_eq!(before, Some(' '), "{col} not aligned in:\n{table}");
        }
    }
    let brandon = lines.iter().find(|l| l.starts_with("BMitchell")).unwrap();
    assert!(brandon.contains("North Team*"), "{brandon}");
    assert!(brandon.contains("public-viewer, supervisor"), "{brandon}");
    assert!(
        brandon.contains("dashboards:caseload, dashboards:outcomes"),
        "{brandon}"
    );
    let noelle = lines.iter().find(|l| l.starts_with("NHoliday")).unwrap();
    assert!(noelle.contains("North Team, South Team"), "{noelle}");
    assert!(noelle.contains(" BMitchell "), "{noelle}");
    assert_eq!(
        *lines.last().unwrap(),
        "5 accounts (4 active, of which 2 never activated; 1 deactivated); * user manager of the group."
    );
    for pii in [
        "1980-02-03",
        "2175550101",
        "1990-04-05",
        "BIRTH DATE",
        "PHONE",
    ] {
        assert!(
            !table.contains(pii),
            "{pii} shown without --show-pii:\n{table}"
        );
    }
    let shown = accounts_ok(&r, &db, &["--show-pii"]);
    for pii in ["1980-02-03", "2175550101", "BIRTH DATE", "PHONE"] {
        assert!(
            shown.contains(pii),
            "{pii} missing with --show-pii:\n{shown}"
        );
    }
}

#[test]
fn csv_is_quoted_and_opens_as_text_in_a_spreadsheet() {
    let (r, db) = seeded(Backend::Sqlite);
    let text = accounts_ok(&r, &db, &["--format", "csv"]);
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "user_name",
            "first_name",
            "last_name",
            "email",
            "status",
            "sign_in",
            "invitation",
            "roles",
            "groups",
            "user_manager_of",
            "case_manager",
            "case_manager_email",
            "entitlements"
        ]
    );
    let rows: Vec<Vec<String>> = rd
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 5);
    let pat = rows.iter().find(|r| r[0] == "PLee").unwrap();
    // The formula is kept as text: quoted (it holds quotes and a comma)
    // and prefixed so spreadsheets do not run it.
    assert_eq!(pat[2], "'=HYPERLINK(\"http://evil.example\", \"Lee\")");
    assert!(
        text.contains("\"'=HYPERLINK(\"\"http://evil.example\"\", \"\"Lee\"\")\""),
        "{text}"
    );
    let noelle = rows.iter().find(|r| r[0] == "NHoliday").unwrap();
    assert_eq!(
        noelle[4..],
        [
            "active",
            "invited",
            "queued",
            "caseworker",
            "North Team; South Team",
            "",
            "BMitchell",
            "brandon.mitchell@example.edu",
            "products:webcenter"
        ]
    );
    let brandon = rows.iter().find(|r| r[0] == "BMitchell").unwrap();
    assert_eq!(brandon[9], "North Team");
    assert!(!text.contains("2175550101") && !text.contains("1980-02-03"));
    let pii = accounts_ok(&r, &db, &["--format", "csv", "--show-pii"]);
    assert!(
        pii.starts_with("user_name,first_name,last_name,email,birth_date,phone,status,"),
        "{pii}"
    );
    assert!(pii.contains("1980-02-03,2175550101,"), "{pii}");
}

#[test]
fn control_characters_from_the_store_are_escaped() {
    let (r, db) = seeded(Backend::Sqlite);
    let conn = rusqlite::Connection::open(r.path().join("store.db")).unwrap();
    conn.execute(
        "UPDATE accounts SET first_name = 'Pat\x1b[2J' WHERE user_name = 'PLee'",
        [],
    )
    .unwrap();
    drop(conn);
    for format in ["table", "csv"] {
        let out = accounts_ok(&r, &db, &["--format", format]);
        assert!(!out.contains('\x1b'), "{format}: raw escape in {out:?}");
        assert!(out.contains("Pat\\u{1b}[2J"), "{format}: {out}");
    }
    let json = accounts_ok(&r, &db, &["--format", "json"]);
    assert!(
        !json.contains('\x1b') && json.contains("Pat\\u001b[2J"),
        "{json}"
    );
}

#[test]
fn bad_filters_are_clear_errors() {
    let (r, db) = seeded(Backend::Sqlite);
    let err = |args: &[&str]| {
        let out = accounts(&r, &db, args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stdout);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        out.stderr
    };
    assert_eq!(
        err(&["--group", "Nort Team"]),
        "error: group `Nort Team` does not exist in the store; did you mean `North Team`?\n"
    );
    assert_eq!(
        err(&["--group", "Nowhere"]),
        "error: group `Nowhere` does not exist in the store\n"
    );
    assert_eq!(
        err(&["--case-manager", "brandon.mitchell@example.com"]),
        "error: no account in the store has the email `brandon.mitchell@example.com`, so none has it as case manager; did you mean `brandon.mitchell@example.edu`?\n"
    );
    // A hostile name comes back escaped.
    assert_eq!(
        err(&["--group", "x\x1b[31m"]),
        "error: group `x\\u{1b}[31m` does not exist in the store\n"
    );
    let both = err(&["--assigned", "--unassigned"]);
    assert!(
        both.contains("the argument '--assigned' cannot be used with '--unassigned'"),
        "{both}"
    );
    let status = err(&["--status", "pending"]);
    assert!(
        status.contains("invalid value 'pending' for '--status <STATUS>'")
            && status.contains("[possible values: active, invited, activated, deactivated]"),
        "{status}"
    );
    let format = err(&["--format", "xml"]);
    assert!(
        format.contains("[possible values: table, json, csv]"),
        "{format}"
    );
}

#[test]
fn a_store_not_created_yet_lists_nothing() {
    let r = roster();
    assert_eq!(
        accounts_ok(&r, "sqlite:none.db", &[]),
        "No accounts match.\n"
    );
    assert!(
        !r.path().join("none.db").exists(),
        "listing created the store"
    );
    assert_eq!(
        accounts_ok(&r, "sqlite:none.db", &["--format", "json"]),
        "[]\n"
    );
}

#[test]
fn sqlite_and_postgres_list_the_same() {
    if super::pg::skipped() {
        return;
    }
    let (r, db) = seeded(Backend::Sqlite);
    let (p, pg) = seeded(Backend::Postgres);
    for args in [
        &[][..],
        &["--show-pii"],
        &["--status", "invited"],
        &["--case-manager", "brandon.mitchell@example.edu"],
    ] {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--format", "json"]);
        assert_eq!(
            accounts_ok(&r, &db, &a),
            accounts_ok(&p, &pg, &a),
            "{args:?}"
        );
    }
    assert_eq!(accounts_ok(&r, &db, &[]), accounts_ok(&p, &pg, &[]));
}

/// Through SCIM: the SCIM client store reads `roster serve` over the same
/// SQLite store and lists what the store itself lists, as far as SCIM
/// carries it; activation it cannot tell, and says so.
#[test]
fn the_scim_client_store_lists_what_serve_publishes() {
    let (r, db) = seeded(Backend::Sqlite);
    let token = ok_in(
        r.path(),
        &["token", "create", "--name", "ci", "--store", &db],
    )
    .stdout
    .trim()
    .to_string();
    let server = start(r.path(), &db);
    // The server says where it publishes SCIM: http://127.0.0.1:PORT/scim/v2.
    let url = format!("scim+{}", server.base);
    let scim = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["accounts", "--store", &url])
            .args(args)
            .current_dir(r.path())
            .env("ROSTER_SCIM_TOKEN", &token)
            .env("NO_COLOR", "1")
            .env_remove("ROSTER_FORMAT")
            .env_remove("ROSTER_SHOW_PII")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let pick = |v: &Value| {
        (
            v["user_name"].clone(),
            v["email"].clone(),
            v["status"].clone(),
            v["groups"].clone(),
        )
    };
    for args in [
        &[][..],
        &["--group", "South Team"],
        &["--status", "deactivated"],
    ] {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--format", "json"]);
        let (code, text, err) = scim(&a);
        assert_eq!(code, 0, "{args:?}: {err}");
        let got: Vec<Value> = serde_json::from_str(&text).unwrap();
        let want = listed_json(&r, &db, args);
        assert_eq!(
            got.iter().map(pick).collect::<Vec<_>>(),
            want.iter().map(pick).collect::<Vec<_>>(),
            "{args:?}"
        );
        assert!(got.iter().all(|a| a["sign_in"].is_null()), "{text}");
    }
    let (code, out, err) = scim(&["--status", "invited"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        format!(
            "error: --status invited: the store {url} does not say whether an account has activated (SCIM publishes no credential state); list by activation on the roster store that `roster serve` publishes (sqlite: or postgres://)\n"
        )
    );
    drop(server);
}

on_every_store!(
    every_field_of_every_account_is_listed,
    filters_narrow_the_list_and_combine,
);
