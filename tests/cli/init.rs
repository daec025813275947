//! `roster init`: a roster repository made from a real store (SQLite and
//! PostgreSQL) or from nothing, that checks clean and plans no changes
//! against the store it came from.

use super::store::Backend;
use super::*;
use std::os::unix::fs::PermissionsExt;

/// A temporary directory and a fresh store of `b` (not created yet).
fn fresh(b: Backend) -> (Roster, String) {
    let r = roster();
    let url = match b {
        // Absolute: the tests run roster from inside the new repository too.
        Backend::Sqlite => format!("sqlite:{}", r.path().join("store.db").display()),
        Backend::Postgres => super::pg::database().0,
    };
    (r, url)
}

/// Two organizations and a project; partners in one group, in several and
/// in none; a user manager, an inactive partner, an SSO account, a partner
/// with two roles, and older accounts without a phone or a ZIP.
const STORE: &str = "\
version: 1
policy:
  required_fields: [birth_date]
  roles: [public-viewer, individual, caseworker]
groups:
  - name: Sangamon County Workforce Agency
    lwia: 20
    members:
      - email: ashley@example.com
        user_manager: true
      - jose@example.org
  - name: Lakeland Career Services
    members: [priya@example.net, ashley@example.com]
  - name: Apprenticeship Illinois - ABC Location
    type: project
    members: [dee@example.org]
partners:
  - email: ashley@example.com
    first_name: Ashley
    last_name: Wrigley
    birth_date: 1985-04-17
    phone: \"217-555-0143\"
    zip: \"62701\"
  - email: jose@example.org
    first_name: José
    last_name: Núñez-O'Neil
    birth_date: 1979-02-28
    roles: [public-viewer, caseworker]
  - email: priya@example.net
    first_name: Priya
    last_name: Raman
    birth_date: 1968-06-05
    phone: \"618-555-0199\"
    sign_in: sso
  - email: dee@example.org
    first_name: Dee
    last_name: Dunn
    birth_date: 1973-01-02
    zip: \"62568\"
  - email: eve@example.org
    first_name: Eve
    last_name: Gone
    birth_date: 1960-01-02
    active: false
";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `plan --detailed-exitcode` of `dir`'s roster against `url`: no changes.
fn plans_no_changes(r: &Roster, dir: &str, url: &str) {
    let out = r.go(&[
        "plan",
        "--store",
        url,
        &format!("{dir}/roster"),
        "--detailed-exitcode",
    ]);
    assert_eq!(out.code, 0, "{dir}\n{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("No changes"), "{dir}\n{}", out.stdout);
}

fn init_of_a_store_plans_no_changes(b: Backend) {
    let (r, db) = fresh(b);
    let r = r.file("seed.yaml", STORE);
    // `apply --detailed-exitcode`: 2 when it changed something, then 0.
    let apply = [
        "apply",
        "--yes",
        "--detailed-exitcode",
        "--store",
        &db,
        "seed.yaml",
    ];
    let out = r.go(&apply);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Applied "), "{}", out.stdout);
    let out = r.go(&apply);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let out = r.go_ok(&["init", "repo", "--store", &db]);
    assert!(
        out.stdout.contains("3 groups and 5 partners"),
        "{}",
        out.stdout
    );
    let root = r.path().join("repo");
    assert_eq!(
        files(&root),
        [
            ".github/workflows/roster.yml",
            ".gitlab-ci.yml",
            ".pre-commit-config.yaml",
            "CODEOWNERS",
            "roster/organizations/lakeland-career-services/roster.yaml",
            "roster/organizations/sangamon-county-workforce-agency/roster.yaml",
            "roster/partners.yaml",
            "roster/policy.yaml",
            "roster/projects/apprenticeship-illinois-abc-location/roster.yaml",
            "schemas/roster.schema.json",
        ]
    );
    // Personal data only in files no one else can read.
    for f in [
        "roster/organizations/lakeland-career-services/roster.yaml",
        "roster/organizations/sangamon-county-workforce-agency/roster.yaml",
        "roster/projects/apprenticeship-illinois-abc-location/roster.yaml",
        "roster/partners.yaml",
    ] {
        assert_eq!(mode(&root.join(f)), 0o600, "{f}");
    }
    for f in ["roster/policy.yaml", "CODEOWNERS", ".gitlab-ci.yml"] {
        assert_eq!(mode(&root.join(f)), 0o644, "{f}");
    }
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap();
    // Ashley is in two groups: in the shared file; José in one: with it.
    assert!(read("roster/partners.yaml").contains("ashley@example.com"));
    let sangamon = read("roster/organizations/sangamon-county-workforce-agency/roster.yaml");
    assert!(sangamon.contains("email: jose@example.org"), "{sangamon}");
    assert!(sangamon.contains("birth_date: 1979-02-28"), "{sangamon}");
    // The policy fits the data: not every active account has a phone or ZIP.
    let policy = read("roster/policy.yaml");
    assert!(
        policy.contains("required_fields: [birth_date]\n"),
        "{policy}"
    );
    assert!(
        policy.contains(
            "    - files: organizations/lakeland-career-services/*.yaml\n      groups: Lakeland Career Services\n"
        ),
        "{policy}"
    );
    // One owner placeholder per folder, after the catch-all line.
    let owners = read("CODEOWNERS");
    let rules: Vec<Vec<&str>> = owners
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rules,
        [
            vec!["*", "@CHANGE-ME/roster-admins"],
            vec![
                "/roster/projects/apprenticeship-illinois-abc-location/",
                "@CHANGE-ME/apprenticeship-illinois-abc-location"
            ],
            vec![
                "/roster/organizations/lakeland-career-services/",
                "@CHANGE-ME/lakeland-career-services"
            ],
            vec![
                "/roster/organizations/sangamon-county-workforce-agency/",
                "@CHANGE-ME/sangamon-county-workforce-agency"
            ],
        ]
    );
    // The editors' schema line of every roster file leads to the schema.
    for f in files(&root.join("roster")) {
        let path = root.join("roster").join(&f);
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        let rel = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{f}: {first}"));
        let schema = path.parent().unwrap().join(rel);
        assert!(schema.is_file(), "{f}: {rel}");
    }
    assert_eq!(
        read("schemas/roster.schema.json"),
        std::fs::read_to_string(repo("schemas/roster.schema.json")).unwrap()
    );
    let check = r.go(&["check", "repo/roster"]);
    assert_eq!(check.code, 0, "{}\n{}", check.stdout, check.stderr);
    plans_no_changes(&r, "repo", &db);
    // From inside the repository, as the next step printed says.
    let inside = r.go_in("repo", &["plan", "--store", &db, "--detailed-exitcode"]);
    assert_eq!(inside.code, 0, "{}\n{}", inside.stdout, inside.stderr);

    // The restrictions mean something: a group declared in another
    // organization's folder is refused.
    let lakeland = read("roster/organizations/lakeland-career-services/roster.yaml");
    let moved = format!(
        "{}\n{}",
        lakeland.replace("groups:\n", "groups:\n  - name: Apprenticeship Illinois - ABC Location\n    type: project\n    members: [dee@example.org]\n"),
        ""
    );
    std::fs::write(
        root.join("roster/organizations/lakeland-career-services/roster.yaml"),
        moved,
    )
    .unwrap();
    std::fs::remove_file(
        root.join("roster/projects/apprenticeship-illinois-abc-location/roster.yaml"),
    )
    .unwrap();
    let dee = "version: 1\npartners:\n  - email: dee@example.org\n    first_name: Dee\n    last_name: Dunn\n    birth_date: 1973-01-02\n    zip: \"62568\"\n    account: DDunn\n";
    std::fs::write(root.join("roster/dee.yaml"), dee).unwrap();
    let check = r.go(&["check", "repo/roster"]);
    assert_eq!(check.code, 1, "{}\n{}", check.stdout, check.stderr);
    assert!(
        check.stdout.contains("restricted-group"),
        "{}",
        check.stdout
    );

    // One file for everything.
    r.go_ok(&["init", "flat", "--store", &db, "--split-by", "none"]);
    assert_eq!(
        files(&r.path().join("flat"))
            .into_iter()
            .filter(|f| f.starts_with("roster/"))
            .collect::<Vec<_>>(),
        ["roster/policy.yaml", "roster/roster.yaml"]
    );
    assert_eq!(mode(&r.path().join("flat/roster/roster.yaml")), 0o600);
    assert!(
        !std::fs::read_to_string(r.path().join("flat/roster/policy.yaml"))
            .unwrap()
            .contains("restrictions:\n")
    );
    plans_no_changes(&r, "flat", &db);
}

fn init_from_nothing_plans_no_changes(b: Backend) {
    let (r, db) = fresh(b);
    // Without a store: an empty roster and the default policy.
    r.go_ok(&["init", "empty"]);
    assert_eq!(
        files(&r.path().join("empty"))
            .into_iter()
            .filter(|f| f.starts_with("roster/"))
            .collect::<Vec<_>>(),
        ["roster/policy.yaml"]
    );
    let check = r.go(&["check", "empty/roster"]);
    assert_eq!(check.code, 0, "{}\n{}", check.stdout, check.stderr);
    plans_no_changes(&r, "empty", &db);
    // An empty store gives the same, and is not created by reading it.
    r.go_ok(&["init", "from-empty", "--store", &db]);
    if b == Backend::Sqlite {
        assert!(!r.path().join("store.db").exists());
    }
    plans_no_changes(&r, "from-empty", &db);
    r.go_ok(&["init", "flat", "--store", &db, "--split-by", "none"]);
    plans_no_changes(&r, "flat", &db);
    assert_eq!(
        std::fs::read_to_string(r.path().join("empty/roster/policy.yaml")).unwrap(),
        std::fs::read_to_string(r.path().join("from-empty/roster/policy.yaml")).unwrap()
    );
}

on_every_store!(
    init_of_a_store_plans_no_changes,
    init_from_nothing_plans_no_changes
);

#[test]
fn init_refuses_a_directory_that_is_not_empty() {
    let r = roster().file("repo/notes.txt", "mine");
    let out = r.go(&["init", "repo"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: repo is not empty; choose a new or empty directory, or pass --force"),
        "{}",
        out.stderr
    );
    assert_eq!(files(&r.path().join("repo")), ["notes.txt"]);
    // A file is not a directory.
    let out = r.go(&["init", "repo/notes.txt"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("repo/notes.txt is a file, not a directory"),
        "{}",
        out.stderr
    );
    // A hidden file counts too (a fresh clone holds .git).
    let r = roster().file("repo/.git/HEAD", "ref: refs/heads/main\n");
    let out = r.go(&["init", "repo"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    // --force writes beside what is there.
    let out = r.go(&["init", "repo", "--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(r.path().join("repo/.git/HEAD").is_file());
    assert!(r.path().join("repo/roster/policy.yaml").is_file());
}

/// `--force` replaces a file of the same name; a symlink planted there is
/// replaced, never written through.
#[test]
fn init_force_never_writes_through_a_symlink() {
    let r = roster().file("elsewhere/CODEOWNERS", "precious\n");
    std::fs::create_dir_all(r.path().join("repo")).unwrap();
    std::os::unix::fs::symlink(
        r.path().join("elsewhere/CODEOWNERS"),
        r.path().join("repo/CODEOWNERS"),
    )
    .unwrap();
    let out = r.go(&["init", "repo", "--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(r.path().join("elsewhere/CODEOWNERS")).unwrap(),
        "precious\n"
    );
    let meta = std::fs::symlink_metadata(r.path().join("repo/CODEOWNERS")).unwrap();
    assert!(meta.file_type().is_file());
}

/// The next step printed works as printed: a relative SQLite path is
/// given from inside the new repository.
#[test]
fn init_says_how_to_plan_from_inside() {
    let r = roster().file("seed.yaml", STORE);
    r.go_ok(&["apply", "--yes", "--store", "sqlite:s.db", "seed.yaml"]);
    let out = r.go_ok(&["init", "repo", "--store", "sqlite:s.db"]);
    let store = format!("sqlite:{}", r.path().join("s.db").display());
    assert!(
        out.stdout.contains(&format!(
            "cd repo && git init && roster plan --store {store} "
        )),
        "{}",
        out.stdout
    );
    let plan = r.go_in("repo", &["plan", "--store", &store, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
}

#[test]
fn init_of_a_store_that_cannot_be_read_says_so() {
    let r = roster().file(
        "bad.db",
        "not a database, just text that is long enough to look like one to nobody\n",
    );
    let out = r.go(&["init", "repo", "--store", "sqlite:bad.db"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(!r.path().join("repo/roster").exists());
}

impl Roster {
    /// roster with `args` in this directory.
    fn go(&self, args: &[&str]) -> Output {
        self.go_in(".", args)
    }

    /// roster with `args`, succeeding.
    fn go_ok(&self, args: &[&str]) -> Output {
        let out = self.go(args);
        assert_eq!(out.code, 0, "{args:?}\n{}\n{}", out.stdout, out.stderr);
        out
    }

    /// roster with `args` in `dir` (relative to this directory); never
    /// shows the store's password.
    fn go_in(&self, dir: &str, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(args)
            .current_dir(self.path().join(dir))
            .env_remove("ROSTER_FORMAT")
            .env_remove("ROSTER_SHOW_PII")
            .env_remove("PGPASSWORD")
            .env("ROSTER_ACTOR", "test-admin")
            .env_remove("ROSTER_STORE")
            .env("NO_COLOR", "1")
            .output()
            .expect("run roster");
        let out = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !out.stdout.contains(super::pg::PASSWORD) && !out.stderr.contains(super::pg::PASSWORD),
            "{args:?} shows the store's password\n{}\n{}",
            out.stdout,
            out.stderr
        );
        out
    }
}
