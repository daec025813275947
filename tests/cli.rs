//! The `roster` binary, run as users run it: files in a temporary
//! directory, arguments, exit code and output.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Each story, once on SQLite and once on PostgreSQL; the module using it
/// has `Backend` (`store::Backend`) in scope.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Sqlite)
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if crate::pg::skipped() {
                    return;
                }
                super::$name(super::Backend::Postgres)
            })*
        }
    };
}

#[path = "cli/accounts.rs"]
mod accounts;
#[path = "cli/activate.rs"]
mod activate;
#[path = "cli/browser.rs"]
mod browser;
#[path = "cli/cikit.rs"]
mod cikit;
#[path = "cli/conformance.rs"]
mod conformance;
#[path = "cli/examples.rs"]
mod examples;
#[path = "cli/faults.rs"]
mod faults;
#[path = "../benches/fuzz.rs"]
mod fuzz;
#[path = "cli/hostile.rs"]
mod hostile;
#[path = "cli/import.rs"]
mod import;
#[path = "cli/init.rs"]
mod init;
#[path = "cli/mail.rs"]
mod mail;
#[path = "cli/peers.rs"]
mod peers;
#[path = "cli/pg.rs"]
mod pg;
#[path = "cli/report.rs"]
mod report;
#[path = "cli/scim.rs"]
mod scim;
#[path = "cli/seats_and_summary.rs"]
mod seats_and_summary;
#[path = "cli/serve.rs"]
mod serve;
#[path = "cli/serve_limits.rs"]
mod serve_limits;
#[path = "cli/serve_net.rs"]
mod serve_net;
#[path = "cli/serve_password.rs"]
mod serve_password;
#[path = "cli/snapshots.rs"]
mod snapshots;
#[path = "cli/store.rs"]
mod store;

/// A finding as (code, file, line, column, message).
type Found = (String, String, u64, u64, String);

struct Roster {
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// The store the store tests use.
    db: store::Db,
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn roster() -> Roster {
    Roster {
        dir: tempfile::tempdir().expect("temp dir"),
        args: Vec::new(),
        db: store::Db::sqlite("store"),
    }
}

impl Roster {
    fn file(self, name: &str, content: impl AsRef<[u8]>) -> Self {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(&self.args)
            .current_dir(self.dir.path())
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

    /// `check --format json`: exit code and findings as (code, file, line, column, message).
    fn findings(self) -> (i32, Vec<Found>) {
        let out = self.args(&["--format", "json"]).run();
        let list: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
        let items = list
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_string(),
                    f["file"].as_str().unwrap().to_string(),
                    f["line"].as_u64().unwrap(),
                    f["column"].as_u64().unwrap(),
                    f["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (out.code, items)
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A valid partner block in YAML, for building cases.
const MANDY: &str = "  - email: mandy@example.com\n    first_name: Mandy\n    last_name: McCray\n    birth_date: 1972-09-01\n    phone: \"217-852-9634\"\n    zip: \"62568\"\n";
const GROUP: &str = "groups:\n  - name: ABC\n    members:\n      - mandy@example.com\n";

fn with_partner(extra: &str) -> String {
    format!("version: 1\n{GROUP}partners:\n{MANDY}{extra}")
}

type Case = (
    &'static str,
    String,
    &'static [(&'static str, u64, u64, &'static str)],
);

/// Bad input in one file `r.yaml`: each gives exactly these findings and exit 1.
fn one_file_cases() -> Vec<Case> {
    vec![
        ("tab indentation", "version: 1\ngroups:\n\t- name: A\n".into(),
         &[("tab-indent", 3, 1, "tab character in indentation")]),
        ("unknown top-level key", format!("version: 1\n{GROUP}partner:\n{MANDY}"),
         &[("unknown-field", 6, 1, "unknown field `partner` in the top level of a roster file (version, groups, partners, policy)")]),
        ("unknown partner key", with_partner("    emial: x@example.com\n"),
         &[("unknown-field", 13, 5, "unknown field `emial` in a partner")]),
        ("misspelt member key", "version: 1\ngroups:\n  - name: A\n    members:\n      - emial: mandy@example.com\n".into(),
         &[("unknown-field", 5, 9, "unknown field `emial` in a member entry")]),
        ("lwia of the wrong type", "version: 1\ngroups:\n  - name: A\n    lwia: twenty\n".into(),
         &[("wrong-type", 4, 11, "`lwia` must be a whole number, found \"twenty\"")]),
        ("user_manager: maybe", "version: 1\ngroups:\n  - name: A\n    members:\n      - email: a@example.com\n        user_manager: maybe\n".into(),
         &[("wrong-type", 6, 23, "`user_manager` must be true or false, found \"maybe\"")]),
        ("user_manager: yes is not a boolean", "version: 1\ngroups:\n  - name: A\n    members:\n      - email: a@example.com\n        user_manager: yes\n".into(),
         &[("wrong-type", 6, 23, "`user_manager` must be true or false, found \"yes\"")]),
        ("30 February", with_partner("").replace("1972-09-01", "1972-02-30"),
         &[("invalid-date", 10, 17, "`birth_date` is not a real calendar date")]),
        ("month 13", with_partner("").replace("1972-09-01", "1972-13-01"),
         &[("invalid-date", 10, 17, "`birth_date` has a month outside 01-12")]),
        ("US-style date", with_partner("").replace("1972-09-01", "\"09/01/1972\""),
         &[("invalid-date", 10, 17, "`birth_date` is not a date in the form YYYY-MM-DD")]),
        ("empty file", "".into(), &[("empty-file", 1, 1, "file is empty")]),
        ("comments only", "# nothing yet\n\n# still nothing\n".into(), &[("empty-file", 1, 1, "file is empty")]),
        ("missing version", format!("{GROUP}partners:\n{MANDY}"), &[("missing-version", 1, 1, "missing `version: 1`")]),
        ("version 2", format!("version: 2\n{GROUP}partners:\n{MANDY}"), &[("unsupported-version", 1, 10, "unsupported roster version, found 2")]),
        ("unclosed quote", "version: 1\ngroups:\n  - name: \"ABC\n".into(), &[("yaml-syntax", 3, 11, "YAML syntax error: unclosed quote")]),
        ("bad indentation", "version: 1\ngroups:\n  - name: a\n   members: []\n".into(),
         &[("yaml-syntax", 4, 4, "YAML syntax error: while parsing a block collection, did not find expected '-' indicator")]),
        ("duplicate key", "version: 1\nversion: 1\n".into(), &[("yaml-syntax", 2, 1, "YAML syntax error: duplicate key `version` in one mapping")]),
        ("two documents", "version: 1\n---\nversion: 1\n".into(),
         &[("yaml-syntax", 2, 1, "YAML syntax error: the file holds more than one YAML document (`---`); put one roster in each file")]),
        ("a list at the top", "- a\n- b\n".into(), &[("wrong-type", 1, 1, "a roster file must be a mapping, found a list")]),
        ("custom tag", "version: 1\ngroups: !include other.yaml\n".into(),
         &[("yaml-syntax", 2, 18, "YAML syntax error: YAML tags (`!…`) are not supported in roster files")]),
        ("invalid email", with_partner("").replace("email: mandy@example.com", "email: mandy.example.com"),
         &[("unknown-member", 5, 9, "group `ABC` lists `mandy@example.com`, who is not among the partners"),
           ("invalid-email", 7, 12, "`mandy.example.com` is not a valid email address"),
           ("partner-in-no-group", 7, 12, "partner `mandy.example.com` is in no group")]),
        ("short phone", with_partner("").replace("217-852-9634", "852-9634"),
         &[("invalid-phone", 11, 12, "`phone` must have 10 digits; this one has 7")]),
        ("unquoted phone", with_partner("").replace("\"217-852-9634\"", "2178529634"),
         &[("wrong-type", 11, 12, "`phone` must be a string, found an integer")]),
        ("bad ZIP", with_partner("").replace("\"62568\"", "\"6256\""), &[("invalid-zip", 12, 10, "`zip` must be 5 digits or ZIP+4 (12345-6789)")]),
        ("bad extension", with_partner("    extension: \"12a\"\n"), &[("invalid-extension", 13, 16, "`extension` must be 1 to 6 digits")]),
        ("empty first name", with_partner("").replace("first_name: Mandy", "first_name: \"\""),
         &[("empty-value", 8, 17, "`first_name` must not be empty")]),
        ("blank account", with_partner("    account: \"  \"\n"),
         &[("empty-value", 13, 14, "`account` must not be empty")]),
        ("missing last name", with_partner("").replace("    last_name: McCray\n", ""),
         &[("missing-field", 7, 5, "a partner is missing `last_name`")]),
        ("unknown role", with_partner("    role: admin\n"),
         &[("invalid-value", 13, 11, "`role` must be one of: public-viewer, individual; found \"admin\"")]),
        ("unknown role of a catalog", with_partner("    role: casework\npolicy:\n  roles: [public-viewer, caseworker]\n"),
         &[("invalid-value", 13, 11, "`role` must be one of: public-viewer, caseworker; found \"casework\"")]),
        ("sign_in misspelt", with_partner("    sign_in: SSO\n"),
         &[("invalid-value", 13, 14, "`sign_in` must be one of: invite, password, sso; found \"SSO\"")]),
        ("case manager not a partner", with_partner("    case_manager: boss@example.com\n"),
         &[("unknown-case-manager", 13, 19, "case manager `boss@example.com` of `mandy@example.com` is not among the partners")]),
        ("own case manager", with_partner("    case_manager: Mandy@example.com\n"),
         &[("own-case-manager", 13, 19, "`mandy@example.com` is named as their own case manager")]),
        ("user_names misspelt", with_partner("policy:\n  user_names: emails\n"),
         &[("invalid-value", 14, 15, "`user_names` must be one of: initials, email; found \"emails\"")]),
        ("no licence seats", with_partner("policy:\n  max_active_accounts: 0\n"),
         &[("invalid-value", 14, 24, "`max_active_accounts` is out of range (limit 1), found 0")]),
        ("seats not a number", with_partner("policy:\n  max_active_accounts: lots\n"),
         &[("wrong-type", 14, 24, "`max_active_accounts` must be a whole number, found \"lots\"")]),
        ("coverage of something other than groups", with_partner("policy:\n  entitlements:\n    coverage: group\n"),
         &[("invalid-value", 15, 15, "`coverage` must be one of: groups; found \"group\"")]),
        ("unknown group type", "version: 1\ngroups:\n  - name: A\n    type: projct\n".into(),
         &[("invalid-value", 4, 11, "`type` must be one of: organization, project; found \"projct\"")]),
        ("members not a list", "version: 1\ngroups:\n  - name: A\n    members: mandy@example.com\n".into(),
         &[("wrong-type", 4, 14, "`members` must be a list, found \"mandy@example.com\"")]),
        ("member as a number", "version: 1\ngroups:\n  - name: A\n    members:\n      - 42\n".into(),
         &[("wrong-type", 5, 9, "each item of `members` must be a string or a mapping, found 42")]),
        ("duplicate email, other case", with_partner(&MANDY.replace("mandy@", "Mandy@")),
         &[("duplicate-email", 13, 12, "partner `mandy@example.com` is defined twice (emails compare case-insensitively)")]),
        ("unknown member", format!("version: 1\ngroups:\n  - name: ABC\n    members:\n      - mandy@example.com\n      - mandi@example.com\npartners:\n{MANDY}"),
         &[("unknown-member", 6, 9, "group `ABC` lists `mandi@example.com`, who is not among the partners")]),
        ("member listed twice", format!("version: 1\ngroups:\n  - name: ABC\n    members:\n      - mandy@example.com\n      - MANDY@example.com\npartners:\n{MANDY}"),
         &[("duplicate-member", 6, 9, "`mandy@example.com` is listed twice in group `ABC`")]),
        ("inactive user manager", format!("version: 1\ngroups:\n  - name: ABC\n    members:\n      - email: mandy@example.com\n        user_manager: true\npartners:\n{MANDY}    active: false\n"),
         &[("inactive-user-manager", 5, 9, "`mandy@example.com` is a user manager of `ABC` but is marked `active: false`")]),
        ("duplicate group", format!("version: 1\ngroups:\n  - name: ABC\n    members: [mandy@example.com]\n  - name: \" abc \"\npartners:\n{MANDY}"),
         &[("duplicate-group", 5, 11, "group `abc` is declared twice")]),
        ("unknown policy key", with_partner("policy:\n  max_removal: 10\n"),
         &[("unknown-field", 14, 3, "unknown field `max_removal` in the policy")]),
        ("max_removals over 100%", with_partner("policy:\n  max_removals: \"200%\"\n"),
         &[("invalid-policy", 14, 3, "`max_removals` must be a count or a percentage from 0% to 100%, found \"200%\"")]),
        ("max_removals not a number", with_partner("policy:\n  max_removals: lots\n"),
         &[("invalid-value", 14, 17, "`max_removals` has the wrong form, found \"lots\"")]),
        ("invalid restriction regex", with_partner("policy:\n  restrictions:\n    - files: \"*.yaml\"\n      groups: \"ABC (\"\n"),
         &[("invalid-regex", 16, 7, "`groups` is not a valid regular expression: error: unclosed group")]),
        ("too few user managers", with_partner("policy:\n  min_user_managers: 1\n"),
         &[("too-few-user-managers", 3, 11, "group `ABC` has 0 user manager(s); the policy requires at least 1")]),
        ("required field missing", with_partner("").replace("    zip: \"62568\"\n", ""),
         &[("missing-required-field", 7, 5, "partner `mandy@example.com` has no `zip`, which the policy requires")]),
        ("denied email domain", with_partner("policy:\n  email_domains:\n    deny: [example.com]\n"),
         &[("email-domain-denied", 7, 12, "`mandy@example.com` uses domain `example.com`, which the policy denies (example.com)")]),
        ("domain not allowed", with_partner("policy:\n  email_domains:\n    allow: [example.org]\n"),
         &[("email-domain-not-allowed", 7, 12, "`mandy@example.com` uses domain `example.com`, which is not in `email_domains.allow`")]),
        ("user manager with the wrong role", format!("version: 1\ngroups:\n  - name: ABC\n    members:\n      - email: mandy@example.com\n        user_manager: true\npartners:\n{MANDY}    role: individual\n"),
         &[("user-manager-role", 5, 9, "`mandy@example.com` has role `individual`, which may not manage users (allowed: public-viewer)")]),
        ("user_manager_roles outside the catalog", with_partner("policy:\n  roles: [public-viewer, supervisor]\n  user_manager_roles: [supervsor]\n"),
         &[("invalid-value", 15, 24, "each item of `user_manager_roles` must be one of: public-viewer, supervisor; found \"supervsor\"")]),
        ("user manager without a catalog's manager role", format!("version: 1\ngroups:\n  - name: ABC\n    members:\n      - email: mandy@example.com\n        user_manager: true\npartners:\n{MANDY}    roles: [caseworker]\npolicy:\n  roles: [caseworker, supervisor]\n  default_roles: [caseworker]\n  user_manager_roles: [supervisor]\n"),
         &[("user-manager-role", 5, 9, "`mandy@example.com` has role `caseworker`, which may not manage users (allowed: supervisor)")]),
        ("restriction violated", with_partner("policy:\n  restrictions:\n    - files: \"agencies/*.yaml\"\n      groups: \"ABC\"\n"),
         &[("restricted-group", 3, 11, "group `ABC` may not be declared in `r.yaml`")]),
    ]
}

#[test]
fn bad_input_gives_exact_findings() {
    let mut failures = Vec::new();
    for (name, yaml, expected) in one_file_cases() {
        let (code, found) = roster()
            .file("r.yaml", &yaml)
            .args(&["check", "r.yaml"])
            .findings();
        let found: Vec<(&str, u64, u64, &str)> = found
            .iter()
            .map(|(c, f, l, col, m)| {
                assert_eq!(f, "r.yaml");
                (c.as_str(), *l, *col, m.as_str())
            })
            .collect();
        let wants_error = expected
            .iter()
            .any(|(c, ..)| !matches!(*c, "same-name-and-birth-date" | "partner-in-no-group"));
        if found != expected || code != i32::from(wants_error) {
            failures.push(format!(
                "{name}: exit {code}\n  expected {expected:?}\n  found    {found:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        one_file_cases().len(),
        failures.join("\n")
    );
    assert!(one_file_cases().len() >= 30);
}

#[test]
fn bytes_that_are_not_text() {
    let (code, f) = roster()
        .file("r.yaml", b"version: 1\ngroups:\n  - name: \xff\xfe\n")
        .args(&["check", "r.yaml"])
        .findings();
    assert_eq!(
        (code, f[0].0.as_str(), f[0].2, f[0].3, f[0].4.as_str()),
        (1, "not-utf8", 3, 11, "file is not valid UTF-8 text")
    );
    let (code, f) = roster()
        .file("r.yaml", b"version: 1\n\0\n")
        .args(&["check", "r.yaml"])
        .findings();
    assert_eq!(
        (code, f[0].0.as_str(), f[0].2, f[0].4.as_str()),
        (
            1,
            "nul-byte",
            2,
            "file contains a NUL byte; it is not a text file"
        )
    );
}

#[test]
fn alias_bomb_is_refused_quickly() {
    let mut yaml = String::from(
        "version: 1\na0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    let (code, f) = roster()
        .file("bomb.yaml", yaml)
        .args(&["check", "bomb.yaml"])
        .findings();
    assert_eq!(code, 1);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].0.as_str(), f[0].4.as_str()),
        (
            "yaml-too-complex",
            "YAML refused: anchors and aliases expand to more than 10000 values"
        )
    );
}

#[test]
fn deep_nesting_is_refused() {
    let yaml = format!(
        "version: 1\ngroups: {}{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    let (code, f) = roster()
        .file("r.yaml", yaml)
        .args(&["check", "r.yaml"])
        .findings();
    assert_eq!(
        (code, f[0].0.as_str(), f[0].4.as_str()),
        (
            1,
            "yaml-too-complex",
            "YAML refused: values are nested more than 64 levels deep"
        )
    );
}

#[test]
fn oversized_file_is_refused_before_reading() {
    let r = roster().file("huge.yaml", "version: 1\n");
    // A sparse file: the size is what counts, and nothing is read.
    std::fs::OpenOptions::new()
        .write(true)
        .open(r.path().join("huge.yaml"))
        .unwrap()
        .set_len(64 * 1024 * 1024 + 1)
        .unwrap();
    let (code, f) = r.args(&["check", "huge.yaml"]).findings();
    assert_eq!(code, 1);
    assert_eq!(
        (f[0].0.as_str(), f[0].4.as_str()),
        (
            "file-too-large",
            "file is 67108865 bytes; roster files may be at most 67108864 bytes (64 MiB)"
        )
    );
}

#[test]
fn paths_that_hold_no_roster() {
    let (code, f) = roster()
        .file("dir/readme.txt", "hi")
        .args(&["check", "dir"])
        .findings();
    assert_eq!(
        (code, f[0].0.as_str(), f[0].4.as_str()),
        (
            1,
            "no-roster-files",
            "directory `dir` holds no .yaml or .yml files"
        )
    );
    let (code, f) = roster().args(&["check", "missing.yaml"]).findings();
    assert_eq!(
        (code, f[0].0.as_str(), f[0].4.as_str()),
        (
            1,
            "not-found",
            "cannot read `missing.yaml`: no such file or directory"
        )
    );
    let (code, f) = roster().args(&["check"]).findings();
    assert_eq!((code, f[0].0.as_str()), (1, "no-roster"));
}

/// A role of a custom catalog named in `user_manager_roles` manages users,
/// held among several roles.
#[test]
fn a_catalog_role_may_manage_users() {
    let yaml = format!(
        "version: 1\ngroups:\n  - name: ABC\n    members:\n      - email: mandy@example.com\n        user_manager: true\npartners:\n{MANDY}    roles: [caseworker, supervisor]\npolicy:\n  roles: [caseworker, supervisor]\n  default_roles: [caseworker]\n  user_manager_roles: [supervisor]\n"
    );
    let (code, f) = roster()
        .file("roster.yaml", yaml)
        .args(&["check"])
        .findings();
    assert_eq!((code, f), (0, vec![]));
}

#[test]
fn warnings_alone_pass() {
    let yaml = with_partner(&MANDY.replace("mandy@", "other@"));
    let (code, f) = roster()
        .file("roster.yaml", yaml)
        .args(&["check"])
        .findings();
    assert_eq!(code, 0);
    let codes: Vec<&str> = f.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(codes, ["same-name-and-birth-date", "partner-in-no-group"]);
}

#[test]
fn directory_merges_files_and_finds_cross_file_errors() {
    let (code, f) = roster()
        .file("roster/a.yaml", format!("version: 1\n{GROUP}"))
        .file(
            "roster/b/people.yml",
            format!("version: 1\npartners:\n{MANDY}"),
        )
        .file(
            "roster/c.yaml",
            format!(
                "version: 1\npartners:\n{}",
                MANDY.replace("mandy@", "MANDY@")
            ),
        )
        .file("roster/d.yaml", "version: 1\npolicy: {}\n")
        .file(
            "roster/e.yaml",
            "version: 1\npolicy:\n  min_user_managers: 0\n",
        )
        .file("roster/.hidden/x.yaml", "not: valid: yaml: [")
        .args(&["check"])
        .findings();
    assert_eq!(code, 1);
    let got: Vec<(&str, &str, u64)> = f
        .iter()
        .map(|x| (x.0.as_str(), x.1.as_str(), x.2))
        .collect();
    assert_eq!(
        got,
        [
            ("duplicate-email", "roster/c.yaml", 3),
            ("duplicate-policy", "roster/e.yaml", 2),
        ]
    );
    assert_eq!(
        f[1].4,
        "a second `policy:` block; the policy is already set in roster/d.yaml"
    );
}

#[test]
fn shipped_examples_are_clean() {
    for ex in ["examples/worknet", "examples/worknet-split"] {
        let out = roster().args(&["check", repo(ex).to_str().unwrap()]).run();
        assert_eq!(out.code, 0, "{ex}: {}", out.stdout);
        assert!(out.stdout.starts_with("ok: "), "{}", out.stdout);
    }
}

#[test]
fn restrictions_keep_organizations_in_their_files() {
    let r = roster();
    let src = repo("examples/worknet-split");
    for entry in [
        "policy.yaml",
        "agencies/sangamon/roster.yaml",
        "agencies/lakeland/roster.yaml",
        "projects/apprenticeship.yaml",
    ] {
        let to = r.path().join("split").join(entry);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(entry), to).unwrap();
    }
    // Lakeland's file tries to declare a Sangamon group.
    let r = r.file("split/agencies/lakeland/extra.yaml", "version: 1\ngroups:\n  - name: Sangamon County Youth Office\n    members:\n      - email: priya.raman@example.net\n        user_manager: true\n");
    let out = r.args(&["check", "split"]).run();
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("error[restricted-group]: group `Sangamon County Youth Office` may not be declared in `agencies/lakeland/extra.yaml`"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("help: declare it in a file matching agencies/sangamon/*.yaml"),
        "{}",
        out.stdout
    );
}

#[test]
fn human_output_has_snippets_and_masks_personal_data() {
    let yaml = with_partner("").replace("1972-09-01", "1972-02-30");
    let r = roster().file("r.yaml", &yaml);
    let out = r.args(&["check", "r.yaml"]).run();
    assert_eq!(out.code, 1);
    let expected = "\
error[invalid-date]: `birth_date` is not a real calendar date
  --> r.yaml:10:17
   |
10 |     birth_date: ****-**-**
   |                 ^^^^^^^^^^
   |
   = help: write the date as YYYY-MM-DD, e.g. 1972-09-01

failed: 1 error, 0 warnings
";
    assert_eq!(out.stdout, expected);
    assert!(!out.stdout.contains("1972-02-30"));
    let shown = roster()
        .file("r.yaml", &yaml)
        .args(&["check", "r.yaml", "--show-pii"])
        .run();
    assert!(
        shown.stdout.contains("10 |     birth_date: 1972-02-30"),
        "{}",
        shown.stdout
    );
}

#[test]
fn non_ascii_personal_values_are_masked_not_a_panic() {
    for (from, to, shown) in [
        ("\"217-852-9634\"", "\"ééééé\"", "phone: \"*****\""),
        ("1972-09-01", "1985-04-ẞ17", "birth_date: ****-**-***"),
        ("1972-09-01", "１９７２-09-01", "birth_date: ****-**-**"),
        (
            "1972-09-01",
            "\"1972-09-01é\"",
            "birth_date: \"****-**-***\"",
        ),
        (
            "\"217-852-9634\"",
            "📞📞📞📞📞📞📞📞📞📞",
            "phone: 📞📞📞📞📞📞📞📞📞📞",
        ),
        (
            "\"217-852-9634\"",
            "\"٢١٧-٨٥٢-٩٦٣٤\"",
            "phone: \"***-***-****\"",
        ),
        ("\"217-852-9634\"", "'ß'", "phone: '*'"),
        (
            "\"217-852-9634\"\n",
            "\"217-852-9634\"\n    extension: \"ééé\"\n",
            "extension: \"***\"",
        ),
    ] {
        let yaml = with_partner("").replacen(from, to, 1);
        let out = roster()
            .file("r.yaml", &yaml)
            .args(&["check", "r.yaml"])
            .run();
        assert_eq!(out.code, 1, "{to}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains(shown), "{to}: {}", out.stdout);
        assert!(out.stdout.contains('^'), "{to}: {}", out.stdout);
        let raw = to.trim().trim_matches(['"', '\'']);
        if raw.chars().any(char::is_alphanumeric) {
            assert!(!out.stdout.contains(raw), "{to}: {}", out.stdout);
        }
        let out = roster()
            .file("r.yaml", &yaml)
            .args(&["check", "r.yaml", "--show-pii"])
            .run();
        assert_eq!(out.code, 1, "{to}: {}{}", out.stdout, out.stderr);
    }
}

#[test]
fn help_never_shows_a_secret_from_the_environment() {
    const SECRET: &str = "s3cret";
    let top = roster().args(&["--help"]).run();
    // Every verb `roster --help` lists, and the verbs under each.
    let verbs = |help: &str| -> Vec<String> {
        help.split("Commands:")
            .nth(1)
            .unwrap_or_default()
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|v| *v != "help")
            .map(str::to_string)
            .collect()
    };
    let mut paths: Vec<Vec<String>> = vec![vec![]];
    for v in verbs(&top.stdout) {
        let help = roster().args(&[&v, "--help"]).run().stdout;
        for sub in verbs(&help) {
            paths.push(vec![v.clone(), sub]);
        }
        paths.push(vec![v]);
    }
    assert!(paths.len() > 12, "{paths:?}");
    let mut shown = 0;
    for path in &paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(&args)
            .env("ROSTER_STORE", format!("postgres://u:{SECRET}@h/db"))
            .env("ROSTER_ACTOR", format!("actor-{SECRET}"))
            .env("ROSTER_LISTEN", format!("{SECRET}:8080"))
            .env("ROSTER_SCIM_TOKEN", SECRET)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!text.contains(SECRET), "{args:?}:\n{text}");
        shown += usize::from(text.contains("[env: ROSTER_STORE"));
    }
    // The variables are still named where `--store` is.
    assert!(shown >= 8, "{shown}");
}

#[test]
fn github_annotations() {
    let out = roster()
        .file("r.yaml", "version: 1\ngroups:\n  - name: A\n    lwia: x\n")
        .args(&["check", "r.yaml", "--format", "github"])
        .run();
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "::error file=r.yaml,line=4,col=11,title=wrong-type::`lwia` must be a whole number, found \"x\" [wrong-type]\n"
    );
}

#[test]
fn schema_is_checked_in_and_current() {
    let out = roster().args(&["schema", "roster"]).run();
    assert_eq!(out.code, 0);
    let committed = std::fs::read_to_string(repo("schemas/roster.schema.json")).unwrap();
    assert!(
        out.stdout == committed,
        "schemas/roster.schema.json is out of date: run `cargo run -- schema roster > schemas/roster.schema.json`"
    );
    let schema: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(schema["properties"]["version"]["const"], 1);
    assert_eq!(schema["$defs"]["Partner"]["additionalProperties"], false);
}

#[test]
fn usage_errors_exit_1_not_2() {
    let out = roster().args(&["check", "--format", "xml"]).run();
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("invalid value 'xml'"), "{}", out.stderr);
}

/// A short run of every fuzz target (`cargo bench --bench fuzz` runs a
/// million inputs per target): no input may panic.
#[test]
fn fuzz_smoke() {
    fuzz::smoke(3_000);
}
