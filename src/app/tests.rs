//! The app layer over real SQLite files in a temporary directory.

use super::apply::{self, Applied, ApplyError, Onboarding, Options};
use super::export;
use super::plan::{self, PlanError, Planned};
use crate::domain::Profile;
use crate::plan::{Action, Plan, seal};
use crate::roster::emit::{self, EmitOptions};
use crate::store::{self, NewCredential, Store};
use std::path::PathBuf;

const NOW: &str = "2026-01-01T00:00:00Z";

const ROSTER: &str = r#"version: 1
groups:
  - name: Lakeland
    type: organization
    lwia: 23
    members:
      - email: ana@example.org
        user_manager: true
      - ben@example.org
partners:
  - email: ana@example.org
    first_name: Ana
    last_name: Ruiz
    birth_date: 1980-01-02
    phone: "217-555-0100"
    zip: "62701"
  - email: ben@example.org
    first_name: Ben
    last_name: Cole
    birth_date: 1975-06-07
    phone: "217-555-0111"
    zip: "62702"
"#;

/// A directory holding `roster.yaml` and the store `s.db` (not created
/// until something writes to it).
struct Fixture {
    dir: tempfile::TempDir,
    store: Box<dyn Store>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("roster.yaml"), ROSTER).unwrap();
        let url = format!("sqlite:{}", dir.path().join("s.db").display());
        let store = store::open(&url, store::Options::default()).unwrap();
        Fixture { dir, store }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("s.db")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    fn plan_of(&self, file: &str) -> Result<Planned, PlanError> {
        plan::plan(self.store.as_ref(), &[PathBuf::from(file)], self.dir.path())
    }

    fn plan(&self) -> Planned {
        self.plan_of("roster.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn apply(&self, plan: &Plan) -> Result<Applied, ApplyError> {
        let opts = Options {
            allow_mass_removal: false,
            onboarding: Onboarding::Invite,
            credentials_file: None,
            actor: "tester",
            now: NOW,
            progress: None,
            replan: None,
            accept_changes: false,
        };
        apply::apply(plan, self.store.as_ref(), &opts)
    }
}

fn count(plan: &Plan, f: impl Fn(&Action) -> bool) -> usize {
    plan.actions.iter().filter(|a| f(a)).count()
}

/// Planning reads and creates nothing; applying lands every action;
/// planning again finds nothing left to do.
#[test]
fn a_plan_applied_leaves_nothing_to_plan() {
    let f = Fixture::new();
    let first = f.plan().plan;
    assert!(!f.db().exists(), "planning created the store");
    assert_eq!(first.store.revision, 0);
    assert_eq!(
        count(&first, |a| matches!(a, Action::CreateGroup { .. })),
        1
    );
    assert_eq!(
        count(&first, |a| matches!(a, Action::CreateAccount { .. })),
        2
    );
    assert_eq!(
        count(&first, |a| matches!(a, Action::AddMembership { .. })),
        2
    );
    let done = f.apply(&first).unwrap();
    assert_eq!(done.actions, first.actions.len());
    assert!(done.revision > 0);
    assert!(done.replanned.is_none());
    let again = f.plan().plan;
    assert_eq!(again.summary.changes(), 0, "{:?}", again.actions);
    assert_eq!(again.store.revision, done.revision);
    // The same plan a second time is stale: the store moved on.
    assert!(matches!(
        f.apply(&first),
        Err(ApplyError::Store(store::StoreError::Stale))
    ));
}

/// A roster that does not parse comes back with its findings, and the
/// store is neither read into a plan nor created.
#[test]
fn a_roster_with_errors_comes_back_with_its_findings() {
    let f = Fixture::new();
    f.write("bad.yaml", "version: 1\ngroups:\n  - name: [unclosed\n");
    match f.plan_of("bad.yaml") {
        Err(PlanError::Roster(checked)) => {
            assert!(checked.has_errors());
            assert!(checked.findings.iter().all(|x| x.file == "bad.yaml"));
        }
        Err(e) => panic!("not the roster's error: {e}"),
        Ok(_) => panic!("a broken roster was planned"),
    }
    assert!(!f.db().exists());
}

/// A store that cannot be read is an error value naming the store, not a
/// message printed somewhere.
#[test]
fn a_store_that_cannot_be_read_is_an_error_value() {
    let f = Fixture::new();
    std::fs::write(
        f.db(),
        "plain text, long enough to stand in for a header ".repeat(4),
    )
    .unwrap();
    match f.plan_of("roster.yaml") {
        Err(PlanError::Store(e)) => {
            assert!(e.to_string().contains("s.db"), "{e}");
        }
        Err(e) => panic!("not the store's error: {e}"),
        Ok(_) => panic!("planned against a file that is not a store"),
    }
}

/// Exporting what was applied gives a roster that plans no changes, with
/// every account pinned and personal data kept.
#[test]
fn an_export_of_the_store_plans_no_changes() {
    let f = Fixture::new();
    f.apply(&f.plan().plan).unwrap();
    let exported = export::export(f.store.as_ref()).unwrap();
    assert!(exported.shared_emails.is_empty());
    let file = &exported.file;
    let emails: Vec<&str> = file.partners.iter().map(|p| p.email.as_str()).collect();
    assert_eq!(emails, ["ana@example.org", "ben@example.org"]);
    assert!(file.partners.iter().all(|p| p.account.is_some()));
    assert_eq!(file.partners[0].birth_date.as_deref(), Some("1980-01-02"));
    assert_eq!(file.groups.len(), 1);
    assert_eq!(file.groups[0].members.len(), 2);
    f.write(
        "exported.yaml",
        &emit::roster_file(file, &EmitOptions { show_pii: true }),
    );
    let again = f.plan_of("exported.yaml").unwrap().plan;
    assert_eq!(again.summary.changes(), 0, "{:?}", again.actions);
    assert_eq!(again.summary.unresolved, 0);
}

/// Two accounts with one email cannot both be a roster partner: the
/// export names them.
#[test]
fn an_export_names_accounts_that_share_an_email() {
    let f = Fixture::new();
    let profile = Profile {
        email: "same@example.org".into(),
        first_name: "Sam".into(),
        last_name: "Lee".into(),
        birth_date: None,
        phone: None,
        extension: None,
        zip: None,
    };
    let mut s = f.store.begin("tester", NOW).unwrap();
    for name in ["SLee", "SLee2"] {
        let credential = NewCredential::Invite {
            token: "t".into(),
            token_digest: crate::secrets::sha256(name.as_bytes()),
        };
        s.create_account(name, &profile, credential).unwrap();
    }
    s.commit().unwrap();
    let exported = export::export(f.store.as_ref()).unwrap();
    assert_eq!(
        exported.shared_emails,
        [(
            "SLee".to_string(),
            "SLee2".to_string(),
            "same@example.org".to_string()
        )]
    );
}

/// The two sides of a diff hide birth dates and phones unless asked, and
/// still show which side differs.
#[test]
fn a_diff_masks_personal_data_but_shows_what_differs() {
    let f = Fixture::new();
    f.apply(&f.plan().plan).unwrap();
    f.write(
        "changed.yaml",
        &ROSTER.replace("217-555-0100", "217-555-0199"),
    );
    let planned = f.plan_of("changed.yaml").unwrap();
    let ana = |file: &crate::roster::model::RosterFile| {
        file.partners
            .iter()
            .find(|p| p.email == "ana@example.org")
            .cloned()
            .unwrap()
    };
    let (have, want) = export::diff(&planned, false);
    assert_eq!(ana(&have).phone.as_deref(), Some("(hidden: store)"));
    assert_eq!(ana(&want).phone.as_deref(), Some("(hidden: roster)"));
    assert_eq!(ana(&have).birth_date.as_deref(), Some("(hidden)"));
    let (have, want) = export::diff(&planned, true);
    assert_ne!(ana(&have).phone, ana(&want).phone);
    assert!(ana(&want).phone.unwrap().contains("0199"));
    assert_eq!(ana(&have).birth_date.as_deref(), Some("1980-01-02"));
}

/// A saved plan applies only as sealed, to its own store, in a format
/// this roster reads.
#[test]
fn saved_plans_are_checked_against_the_store_that_sealed_them() {
    let f = Fixture::new();
    let store = f.store.as_ref();
    let key = store.plan_key(true).unwrap().unwrap();
    let mut plan = f.plan().plan;
    seal::seal(&mut plan, &key);
    let text = serde_json::to_string_pretty(&plan).unwrap();
    assert!(seal::is_exactly(&plan, &text));
    apply::check_saved(&plan, true, store).unwrap();
    // A field added to the file.
    assert!(matches!(
        apply::check_saved(&plan, false, store),
        Err(ApplyError::Altered(seal::Altered::Additions))
    ));
    let mut edited = plan.clone();
    edited.removal_limit += 100;
    assert!(matches!(
        apply::check_saved(&edited, true, store),
        Err(ApplyError::Altered(_))
    ));
    let mut unsealed = plan.clone();
    unsealed.seal = None;
    assert!(matches!(
        apply::check_saved(&unsealed, true, store),
        Err(ApplyError::Altered(seal::Altered::Unsealed))
    ));
    let other = Fixture::new();
    assert!(matches!(
        apply::check_saved(&plan, true, other.store.as_ref()),
        Err(ApplyError::WrongStore { .. })
    ));
    let mut future = plan.clone();
    future.format_version += 1;
    assert!(matches!(
        apply::check_saved(&future, true, store),
        Err(ApplyError::FormatVersion(_))
    ));
    // What passed applies.
    f.apply(&plan).unwrap();
}
