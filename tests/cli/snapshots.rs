//! Snapshots of what users read: the human and Markdown plan of the shipped
//! example, and the findings of a few bad rosters. The reviewed snapshots
//! live in tests/snapshots/; a change in wording, order or layout fails here
//! until the new snapshot is reviewed (`cargo insta review`) and committed.
//!
//! Nothing is redacted: the store is a SQLite file named relative to the
//! roster's directory, so the store URL, its revision and both digests are
//! the same on every run.

use super::{Output, Roster, repo, roster};
use std::process::Command;

/// Assert `$value` against the snapshot `$name` in tests/snapshots/.
macro_rules! snapshot {
    ($name:expr, $value:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../snapshots");
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!($name, $value));
    }};
}

fn run(r: &Roster, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .current_dir(r.path())
        .env_remove("ROSTER_FORMAT")
        .env_remove("ROSTER_COLOR")
        .env("NO_COLOR", "1")
        .output()
        .expect("run roster");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The README's quick start: the live example applied to a new store, then
/// the example roster planned against it.
fn worknet() -> Roster {
    let read = |p: &str| std::fs::read_to_string(repo(p)).unwrap();
    let r = roster()
        .file("live.yaml", read("examples/worknet-live/roster.yaml"))
        .file("roster.yaml", read("examples/worknet/roster.yaml"));
    let out = run(
        &r,
        &["apply", "--yes", "--store", "sqlite:store.db", "live.yaml"],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    r
}

fn plan(r: &Roster, format: &str) -> String {
    let out = run(
        r,
        &[
            "plan",
            "--store",
            "sqlite:store.db",
            "roster.yaml",
            "--format",
            format,
        ],
    );
    assert_eq!(
        out.code, 1,
        "unresolved partners make plan exit 1\n{}",
        out.stderr
    );
    out.stdout
}

#[test]
fn worknet_plan_human() {
    let r = worknet();
    snapshot!("worknet_plan_human", plan(&r, "human"));
}

#[test]
fn worknet_plan_markdown() {
    let r = worknet();
    snapshot!("worknet_plan_markdown", plan(&r, "markdown"));
}

/// Schema errors: a typo and a wrong type. The date that does not exist is
/// not reported: value checks wait until the file matches the schema.
const SCHEMA: &str = "\
version: 1
groups:
  - name: ABC
    lwia: twenty
    members:
      - mandy@example.com
partners:
  - email: mandy@example.com
    first_name: Mandy
    last_name: McCray
    birth_date: 1972-02-30
    phone: \"217-852-9634\"
    zip: \"62568\"
    emial: mandy@example.net
";

/// Bad values, references and duplicates, and both warnings of `check`.
const VALUES: &str = "\
version: 1
groups:
  - name: ABC
    members:
      - mandy@example.com
      - mandy@example.com
      - ghost@example.com
      - mandy.mccray@example.net
  - name: ABC
partners:
  - email: mandy@example.com
    first_name: Mandy
    last_name: McCray
    birth_date: 1972-09-01
    phone: \"852-9634\"
    zip: \"6256\"
    extension: \"12a\"
  - email: MANDY@example.com
    first_name: Mandy
    last_name: McCray
    birth_date: 1972-09-01
    phone: \"217-852-9634\"
    zip: \"62568\"
  - email: mandy.mccray@example.net
    first_name: Mandy
    last_name: McCray
    birth_date: 1972-09-01
    phone: \"217-852-9637\"
    zip: \"62568\"
  - email: lonely.example.com
    first_name: Lonely
    last_name: Partner
    birth_date: 1980-01-01
    phone: \"217-852-9635\"
    zip: \"62568\"
";

/// A roster that parses but breaks its policy.
const POLICY: &str = "\
version: 1
groups:
  - name: ABC
    members:
      - email: mandy@example.com
        user_manager: true
partners:
  - email: mandy@example.com
    first_name: Mandy
    last_name: McCray
    role: individual
    birth_date: 1972-09-01
    phone: \"217-852-9634\"
  - email: temp@mailinator.com
    first_name: Temp
    last_name: Orary
    birth_date: 1990-05-05
    phone: \"217-852-9636\"
    zip: \"62568\"
policy:
  min_user_managers: 2
  email_domains:
    deny: [mailinator.com]
  restrictions:
    - files: \"other.yaml\"
      groups: \"ABC\"
";

fn check(content: &str, format: &str) -> String {
    let r = roster().file("r.yaml", content);
    let out = run(&r, &["check", "r.yaml", "--format", format]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    // Human findings go to stdout or stderr; keep both, labelled.
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        out.code, out.stdout, out.stderr
    )
}

#[test]
fn findings_of_schema_errors() {
    snapshot!("findings_schema_human", check(SCHEMA, "human"));
    snapshot!("findings_schema_json", check(SCHEMA, "json"));
}

#[test]
fn findings_of_bad_values_and_references() {
    snapshot!("findings_values_human", check(VALUES, "human"));
    snapshot!("findings_values_json", check(VALUES, "json"));
}

#[test]
fn findings_of_policy_violations() {
    snapshot!("findings_policy_human", check(POLICY, "human"));
    snapshot!("findings_policy_json", check(POLICY, "json"));
}
