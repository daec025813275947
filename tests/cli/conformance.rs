//! One story of store behaviour, written once over `&dyn Store` and run on
//! every store roster keeps itself: in memory, a SQLite file in a temporary
//! directory and a fresh database of the PostgreSQL cluster the tests start
//! (`pg.rs`). Where stores legitimately differ, [`Kind`] says so and the
//! story asserts each side; nothing is skipped silently.

use roster::domain::{Entitlement, GroupType, Profile};
use roster::store::directory::{GroupRef, Scope};
use roster::store::memory::MemoryStore;
use roster::store::{
    self, Account, CredentialState, NameDob, NewCredential, Options, Reader, Session, Store,
    StoreError, audit,
};
use std::time::{Duration, Instant};

/// How long a second writer waits for the first.
const LOCK_TIMEOUT: Duration = Duration::from_millis(1500);

const ACTOR: &str = "admin@example.org";
const NOW: &str = "2026-03-01T10:00:00Z";
const LATER: &str = "2026-03-02T09:30:00Z";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Sqlite,
    Postgres,
}

impl Kind {
    /// Whether a session goes on after the store refused one of its writes.
    /// A failed statement aborts a PostgreSQL transaction: everything after
    /// it fails and nothing of the session lands (savepoints are how a
    /// session goes on there).
    fn continues_after_refusal(self) -> bool {
        self != Kind::Postgres
    }

    /// Whether `roster serve` can read the store ([`Store::served`]): the
    /// in-memory store is library-only.
    fn served(self) -> bool {
        self != Kind::Memory
    }
}

/// A store under test.
struct Subject {
    kind: Kind,
    store: Box<dyn Store>,
    /// Whether anything of the store exists where it is kept (the file, the
    /// tables); `None` for the in-memory store, which lives only in its
    /// handle.
    exists: Option<Box<dyn Fn() -> bool>>,
    _dir: Option<tempfile::TempDir>,
}

fn options() -> Options {
    Options {
        lock_timeout: LOCK_TIMEOUT,
        ..Options::default()
    }
}

impl Subject {
    fn memory() -> Subject {
        Subject {
            kind: Kind::Memory,
            store: Box::new(MemoryStore::with_options(&options())),
            exists: None,
            _dir: None,
        }
    }

    fn sqlite() -> Subject {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.db");
        let url = format!("sqlite:{}", path.display());
        Subject {
            kind: Kind::Sqlite,
            store: store::open(&url, options()).expect("open sqlite store"),
            exists: Some(Box::new(move || path.exists())),
            _dir: Some(dir),
        }
    }

    fn postgres() -> Subject {
        let (url, _) = crate::pg::database();
        let probe = url.clone();
        let exists = move || {
            let mut c = ::postgres::Client::connect(&probe, ::postgres::NoTls).expect("connect");
            let tables: i64 = c
                .query_one(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
                    &[],
                )
                .expect("count tables")
                .get(0);
            tables > 0
        };
        Subject {
            kind: Kind::Postgres,
            store: store::open(&url, options()).expect("open postgres store"),
            exists: Some(Box::new(exists)),
            _dir: None,
        }
    }

    fn begin(&self) -> Box<dyn Session> {
        self.begin_at(NOW)
    }

    fn begin_at(&self, now: &str) -> Box<dyn Session> {
        self.store
            .begin(ACTOR, now)
            .unwrap_or_else(|e| panic!("{:?}: begin: {e}", self.kind))
    }

    fn read(&self) -> Box<dyn Reader> {
        self.store
            .reader()
            .unwrap_or_else(|e| panic!("{:?}: reader: {e}", self.kind))
    }

    fn revision(&self) -> i64 {
        self.read().revision().unwrap()
    }

    /// The account with this user name, as a new reader sees it.
    fn account(&self, user_name: &str) -> Option<Account> {
        let found = self
            .read()
            .accounts_by_user_name(&[user_name.to_string()])
            .unwrap();
        assert!(found.len() <= 1, "{:?}: {found:?}", self.kind);
        found.into_iter().next()
    }

    /// The whole audit log, checked against the store's revision.
    fn verified_audit(&self) -> Vec<store::AuditEntry> {
        let mut r = self.read();
        let rows = r.audit(None).unwrap();
        let revision = r.revision().unwrap();
        if let Err(e) = audit::verify(&rows, revision) {
            panic!("{:?}: the audit chain does not verify: {e}", self.kind);
        }
        rows
    }
}

/// Each story on every store.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test]
            fn $name() {
                super::$name(&super::Subject::memory())
            })*
        }
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&super::Subject::sqlite())
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if crate::pg::skipped() {
                    return;
                }
                super::$name(&super::Subject::postgres())
            })*
        }
    };
}

conformance!(
    an_empty_store_reads_at_revision_0_and_creates_nothing,
    accounts_groups_and_memberships_are_kept_as_written,
    refused_writes_change_nothing,
    look_ups_follow_the_keys_of_the_ladder,
    a_session_lands_whole_at_commit_or_not_at_all,
    every_change_bumps_the_revision_and_extends_the_audit_chain,
    names_already_taken_are_refused,
    a_second_writer_waits_then_gives_up,
    savepoints_undo_rows_audit_and_revision,
    a_released_savepoint_stays_when_the_next_is_rolled_back,
    a_create_refused_at_its_release_leaves_none_of_its_rows,
    a_session_refuses_an_email_another_account_holds,
    the_plan_key_is_made_once_and_kept,
    accounts_and_groups_can_be_renamed_and_deleted,
    tokens_are_kept_as_digests_and_revoked,
    invited_accounts_are_listed_until_deactivated,
    roles_entitlements_and_case_managers_are_kept_and_audited,
    grants_and_case_managers_refuse_what_is_already_so,
);

fn profile(email: &str, first: &str, last: &str) -> Profile {
    Profile {
        email: email.into(),
        first_name: first.into(),
        last_name: last.into(),
        birth_date: Some("1990-04-01".into()),
        phone: Some("2175550100".into()),
        extension: Some("12".into()),
        zip: Some("62701".into()),
    }
}

fn invite(n: u32) -> NewCredential {
    NewCredential::Invite {
        token: format!("activation-token-{n}"),
        token_digest: roster::secrets::sha256(format!("activation-token-{n}").as_bytes()),
    }
}

fn password() -> NewCredential {
    NewCredential::Password {
        hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        password: "correct horse battery staple".into(),
    }
}

fn names(accounts: &[Account]) -> Vec<&str> {
    accounts.iter().map(|a| a.user_name.as_str()).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// (group, user name, user manager) of each membership, in the store's order.
fn members(s: &Subject, groups: &[&str]) -> Vec<(String, String, bool)> {
    s.read()
        .memberships(&strings(groups))
        .unwrap()
        .into_iter()
        .map(|m| (m.group, m.user_name, m.user_manager))
        .collect()
}

fn member(g: &str, u: &str, um: bool) -> (String, String, bool) {
    (g.into(), u.into(), um)
}

/// Ann (invited) and Bob (password) in groups G (Ann a user manager) and H.
fn seed(s: &Subject) {
    let mut w = s.begin();
    w.create_group("G", GroupType::Project, Some(7)).unwrap();
    w.create_group("H", GroupType::Organization, None).unwrap();
    let viewer = strings(&["public-viewer"]);
    w.create_account_with_roles(
        "Ann",
        &profile("ann@example.org", "Ann", "Lee"),
        &viewer,
        invite(1),
    )
    .unwrap();
    w.create_account("bob", &profile("bob@example.org", "Bob", "Ray"), password())
        .unwrap();
    w.add_membership("Ann", "G", true).unwrap();
    w.add_membership("bob", "G", false).unwrap();
    w.add_membership("bob", "H", false).unwrap();
    assert_eq!(w.commit().unwrap(), 7, "{:?}", s.kind);
}

fn an_empty_store_reads_at_revision_0_and_creates_nothing(s: &Subject) {
    let mut r = s.read();
    assert_eq!(r.revision().unwrap(), 0);
    let some = strings(&["ann"]);
    assert!(r.accounts_by_user_name(&some).unwrap().is_empty());
    assert!(
        r.accounts_by_email(&strings(&["ann@example.org"]))
            .unwrap()
            .is_empty()
    );
    assert!(
        r.accounts_by_name_dob(&[NameDob::new("Ann", "Lee", "1990-04-01")])
            .unwrap()
            .is_empty()
    );
    assert!(r.user_names_like(&some).unwrap().is_empty());
    assert!(r.groups(None).unwrap().is_empty());
    assert!(r.groups(Some(&strings(&["G"]))).unwrap().is_empty());
    assert!(r.memberships(&strings(&["G"])).unwrap().is_empty());
    assert!(r.all_accounts().unwrap().is_empty());
    assert!(r.in_other_groups(&some, &[]).unwrap().is_empty());
    assert!(r.audit(None).unwrap().is_empty());
    assert!(r.invitations().unwrap().is_empty());
    drop(r);
    assert_eq!(s.store.plan_key(false).unwrap(), None);
    if let Some(exists) = &s.exists {
        assert!(!exists(), "{:?}: reading created the store", s.kind);
        // The probe sees a store once one is written.
        let mut w = s.begin();
        w.create_group("G", GroupType::Organization, None).unwrap();
        w.commit().unwrap();
        assert!(exists(), "{:?}: a committed store is not there", s.kind);
    }
}

fn accounts_groups_and_memberships_are_kept_as_written(s: &Subject) {
    seed(s);
    let ann = s.account("ann").expect("Ann, looked up without case");
    assert_eq!(ann.user_name, "Ann");
    assert_eq!(ann.profile, profile("ann@example.org", "Ann", "Lee"));
    assert!(ann.active);
    assert_eq!(ann.credential, CredentialState::Invited);
    let bob = s.account("BOB").expect("bob");
    assert_eq!(bob.credential, CredentialState::PasswordSet);

    let mut r = s.read();
    let groups = r.groups(None).unwrap();
    let shown: Vec<_> = groups
        .iter()
        .map(|g| (g.name.as_str(), g.kind, g.lwia, g.active))
        .collect();
    assert_eq!(
        shown,
        [
            ("G", GroupType::Project, Some(7), true),
            ("H", GroupType::Organization, None, true)
        ]
    );
    // Asked by name: in the order asked, unknown names left out, exact case.
    let asked: Vec<_> = r
        .groups(Some(&strings(&["H", "nope", "g", "G"])))
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(asked, ["H", "G"]);
    drop(r);
    assert_eq!(
        members(s, &["H", "G"]),
        [
            member("H", "bob", false),
            member("G", "Ann", true),
            member("G", "bob", false)
        ]
    );

    // A second session changes what the first made.
    let mut w = s.begin_at(LATER);
    w.deactivate_account("bob").unwrap();
    let mut changed = profile("ann.lee@example.org", "Anne", "Lee-Smith");
    changed.phone = Some("2175550199".into());
    changed.zip = None;
    w.update_profile("ANN", &changed, &strings(&["phone", "zip"]))
        .unwrap();
    w.set_user_manager("Ann", "G", false).unwrap();
    w.set_user_manager("bob", "H", true).unwrap();
    w.remove_membership("bob", "G").unwrap();
    assert_eq!(w.revision().unwrap(), 12);
    assert_eq!(w.commit().unwrap(), 12);

    let ann = s.account("ann").unwrap();
    // Only the fields named change.
    let mut want = profile("ann@example.org", "Ann", "Lee");
    want.phone = Some("2175550199".into());
    want.zip = None;
    assert_eq!(ann.profile, want);
    assert!(!s.account("bob").unwrap().active);
    assert_eq!(
        members(s, &["G", "H"]),
        [member("G", "Ann", false), member("H", "bob", true)]
    );

    let mut w = s.begin();
    w.reactivate_account("bob").unwrap();
    w.commit().unwrap();
    assert!(s.account("bob").unwrap().active);
    assert_eq!(s.revision(), 13);
}

fn refused_writes_change_nothing(s: &Subject) {
    seed(s);
    let before = s.verified_audit();
    let mut w = s.begin();
    let invalid: Vec<(&str, Result<(), StoreError>)> = vec![
        ("reactivate an active account", w.reactivate_account("ann")),
        (
            "deactivate a missing account",
            w.deactivate_account("nobody"),
        ),
        (
            "update an unknown field",
            w.update_profile(
                "Ann",
                &profile("a@example.org", "A", "L"),
                &strings(&["shoe"]),
            ),
        ),
        (
            "join a missing group",
            w.add_membership("Ann", "nope", false),
        ),
        (
            "join as a missing account",
            w.add_membership("nobody", "G", false),
        ),
        ("grant a grant held", w.set_user_manager("Ann", "G", true)),
        (
            "revoke a grant not held",
            w.set_user_manager("bob", "G", false),
        ),
        (
            "grant outside the group",
            w.set_user_manager("Ann", "H", true),
        ),
        ("leave a group not joined", w.remove_membership("Ann", "H")),
    ];
    for (what, got) in invalid {
        assert!(
            matches!(got, Err(StoreError::Invalid(_))),
            "{:?}: {what}: {got:?}",
            s.kind
        );
    }
    assert_eq!(w.revision().unwrap(), 7);
    // Nothing refused was recorded; the session still writes and commits.
    w.deactivate_account("Ann").unwrap();
    assert_eq!(w.commit().unwrap(), 8);
    let after = s.verified_audit();
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after.last().unwrap().op, "deactivate_account");
    // A deactivated account's second deactivation is refused too.
    let mut w = s.begin();
    let again = w.deactivate_account("ann");
    assert!(
        matches!(&again, Err(StoreError::Invalid(m)) if m.contains("already inactive")),
        "{again:?}"
    );
}

fn look_ups_follow_the_keys_of_the_ladder(s: &Subject) {
    let mut w = s.begin();
    for g in ["Z", "A", "M"] {
        w.create_group(g, GroupType::Organization, None).unwrap();
    }
    let mut jo = profile("Jo.Jones@Example.org", "José", "Jones");
    jo.birth_date = Some("1980-01-02".into());
    w.create_account("JJones", &jo, password()).unwrap();
    let mut twin = profile("other@example.org", "JOSÉ", "  jones ");
    twin.birth_date = Some("1980-01-02".into());
    w.create_account("jjones2", &twin, password()).unwrap();
    for (i, name) in ["JJones10", "jjonesx", "jjone", "aaron", "Zed"]
        .iter()
        .enumerate()
    {
        let p = profile(&format!("{name}@example.org"), "X", name);
        w.create_account(name, &p, invite(i as u32)).unwrap();
    }
    w.add_membership("JJones", "A", false).unwrap();
    w.add_membership("JJones", "Z", false).unwrap();
    w.add_membership("jjones2", "A", false).unwrap();
    w.add_membership("aaron", "M", true).unwrap();
    w.commit().unwrap();

    let mut r = s.read();
    // User names without case, in the order asked, unknown ones left out.
    let got = r
        .accounts_by_user_name(&strings(&["zed", "nobody", "JJONES"]))
        .unwrap();
    assert_eq!(names(&got), ["Zed", "JJones"]);
    // Emails by their lower-cased key.
    let got = r
        .accounts_by_email(&strings(&["jo.jones@example.org", "other@example.org"]))
        .unwrap();
    assert_eq!(names(&got), ["JJones", "jjones2"]);
    assert!(
        r.accounts_by_email(&strings(&["Jo.Jones@Example.org"]))
            .unwrap()
            .is_empty()
    );
    // Name + birth date after normalization (spaces, case; accents kept).
    let got = r
        .accounts_by_name_dob(&[NameDob::new(" JOSÉ ", "JONES", "1980-01-02")])
        .unwrap();
    assert_eq!(names(&got), ["JJones", "jjones2"]);
    for other in [
        NameDob::new("Jose", "Jones", "1980-01-02"),
        NameDob::new("José", "Jones", "1980-01-03"),
    ] {
        assert!(r.accounts_by_name_dob(&[other]).unwrap().is_empty());
    }
    // Names a new account could collide with: the base and the base +
    // digits, lower-cased, per base in name order.
    assert_eq!(
        r.user_names_like(&strings(&["JJones", "Aaron", "Q"]))
            .unwrap(),
        ["jjones", "jjones10", "jjones2", "aaron"]
    );
    // Every group by name; every account by lower-cased user name.
    let all: Vec<String> = r
        .groups(None)
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(all, ["A", "M", "Z"]);
    assert_eq!(
        names(&r.all_accounts().unwrap()),
        [
            "aaron", "jjone", "JJones", "JJones10", "jjones2", "jjonesx", "Zed"
        ]
    );
    // Accounts also in a group outside the ones named, as they were asked.
    assert_eq!(
        r.in_other_groups(
            &strings(&["jjones", "JJONES2", "aaron", "zed"]),
            &strings(&["A"])
        )
        .unwrap(),
        ["jjones", "aaron"]
    );
    assert!(
        r.in_other_groups(&strings(&["JJones"]), &strings(&["A", "Z"]))
            .unwrap()
            .is_empty()
    );
}

fn a_session_lands_whole_at_commit_or_not_at_all(s: &Subject) {
    seed(s);
    let audit_before = s.verified_audit();
    // Dropped without commit: nothing lands, and the lock is free again.
    let mut w = s.begin();
    w.create_account(
        "carl",
        &profile("carl@example.org", "Carl", "Fox"),
        invite(3),
    )
    .unwrap();
    w.remove_membership("Ann", "G").unwrap();
    w.deactivate_account("bob").unwrap();
    assert_eq!(w.revision().unwrap(), 10);
    drop(w);
    assert_eq!(s.revision(), 7);
    assert_eq!(s.account("carl"), None);
    assert!(s.account("bob").unwrap().active);
    assert_eq!(members(s, &["G"]).len(), 2);
    assert_eq!(s.verified_audit().len(), audit_before.len());
    assert_eq!(s.read().invitations().unwrap().len(), 1);

    // Open: invisible to readers; a reader keeps its snapshot after the commit.
    let mut w = s.begin();
    w.create_account(
        "carl",
        &profile("carl@example.org", "Carl", "Fox"),
        invite(3),
    )
    .unwrap();
    let mut early = s.read();
    assert_eq!(early.revision().unwrap(), 7);
    assert!(
        early
            .accounts_by_user_name(&strings(&["carl"]))
            .unwrap()
            .is_empty()
    );
    assert_eq!(w.commit().unwrap(), 8);
    assert_eq!(early.revision().unwrap(), 7);
    assert!(
        early
            .all_accounts()
            .unwrap()
            .iter()
            .all(|a| a.user_name != "carl")
    );
    assert_eq!(s.revision(), 8);
    assert!(s.account("carl").is_some());
}

fn every_change_bumps_the_revision_and_extends_the_audit_chain(s: &Subject) {
    seed(s);
    let mut w = s.begin_at(LATER);
    w.update_profile(
        "bob",
        &profile("bob@example.org", "Rob", "Ray"),
        &strings(&["first_name"]),
    )
    .unwrap();
    w.deactivate_account("Ann").unwrap();
    w.commit().unwrap();

    let rows = s.verified_audit();
    let seen: Vec<(i64, i64, &str, &str, &str, &str)> = rows
        .iter()
        .map(|e| {
            (
                e.seq,
                e.revision,
                e.at.as_str(),
                e.actor.as_str(),
                e.op.as_str(),
                e.subject.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, 1, NOW, ACTOR, "create_group", "G"),
            (2, 2, NOW, ACTOR, "create_group", "H"),
            (3, 3, NOW, ACTOR, "create_account", "Ann"),
            (4, 4, NOW, ACTOR, "create_account", "bob"),
            (5, 5, NOW, ACTOR, "add_membership", "Ann in G"),
            (6, 6, NOW, ACTOR, "add_membership", "bob in G"),
            (7, 7, NOW, ACTOR, "add_membership", "bob in H"),
            (8, 8, LATER, ACTOR, "update_profile", "bob"),
            (9, 9, LATER, ACTOR, "deactivate_account", "Ann"),
        ]
    );
    // Every store writes the same values, so one chain reads alike anywhere;
    // personal data shows as present, never as its value.
    let raw = |i: usize| (rows[i].raw.0.as_deref(), rows[i].raw.1.as_deref());
    assert_eq!(raw(0), (None, Some(r#"{"lwia":7,"type":"project"}"#)));
    assert_eq!(
        raw(2),
        (
            None,
            Some(
                r#"{"birth_date":"***","credential":"invited","email":"ann@example.org","extension":"***","first_name":"Ann","last_name":"Lee","phone":"***","roles":["public-viewer"],"zip":"62701"}"#
            )
        )
    );
    assert_eq!(raw(4), (None, Some(r#"{"user_manager":true}"#)));
    let (before, after) = raw(7);
    assert!(
        before.unwrap().contains(r#""first_name":"Bob""#),
        "{before:?}"
    );
    assert!(
        after.unwrap().contains(r#""first_name":"Rob""#),
        "{after:?}"
    );
    assert_eq!(
        raw(8),
        (Some(r#"{"active":true}"#), Some(r#"{"active":false}"#))
    );
    for e in &rows {
        let text = format!("{:?}", e.raw);
        for secret in ["1990-04-01", "2175550100", "activation-token", "argon2id"] {
            assert!(
                !text.contains(secret),
                "{:?}: row {} shows {secret}",
                s.kind,
                e.seq
            );
        }
    }
    // The parsed values are the stored text's.
    assert_eq!(
        rows[4].after,
        Some(serde_json::json!({"user_manager": true}))
    );
    // Rows since a time; each still names the hash of the row before it.
    let since = s.read().audit(Some(LATER)).unwrap();
    assert_eq!(since.iter().map(|e| e.seq).collect::<Vec<_>>(), [8, 9]);
    assert_eq!(since[0].prev_hash, rows[6].hash);
    assert_eq!(rows[0].prev_hash, audit::GENESIS);
    // A later session continues the chain from the last row.
    let mut w = s.begin();
    w.reactivate_account("ann").unwrap();
    assert_eq!(w.commit().unwrap(), 10);
    let rows = s.verified_audit();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9].prev_hash, rows[8].hash);
}

/// A write the store refuses as taken; the session is then dropped.
fn assert_taken(
    s: &Subject,
    what: &str,
    write: impl FnOnce(&mut dyn Session) -> Result<(), StoreError>,
) {
    let revision = s.revision();
    let mut w = s.begin();
    // A session may queue what it writes and check it when the queue is
    // written: the refusal comes at the latest with the commit.
    let got = match write(&mut *w) {
        Ok(()) => w.commit().map(|_| ()),
        Err(e) => {
            drop(w);
            Err(e)
        }
    };
    assert!(
        matches!(got, Err(StoreError::Taken(_))),
        "{:?}: {what}: {got:?}",
        s.kind
    );
    assert_eq!(s.revision(), revision, "{:?}: {what}", s.kind);
}

fn names_already_taken_are_refused(s: &Subject) {
    seed(s);
    assert_taken(s, "a user name in other case", |w| {
        w.create_account("ANN", &profile("x@example.org", "X", "Y"), password())
    });
    assert_taken(s, "a rename onto another account", |w| {
        w.rename_account("bob", "ann")
    });
    assert_taken(s, "a group renamed onto another", |w| {
        w.update_group("H", "G", GroupType::Organization, None)
    });
    assert_taken(s, "a membership held", |w| {
        w.add_membership("bob", "H", true)
    });
    assert_taken(s, "a token name", |w| {
        w.create_token("ci", "digest-1", None)?;
        w.create_token("ci", "digest-2", None)
    });
    // A group made twice is refused (the SQL stores say so in SQL's words).
    let mut w = s.begin();
    let twice = w.create_group("G", GroupType::Organization, None);
    assert!(twice.is_err(), "{:?}", s.kind);
    drop(w);
    assert_eq!(s.read().groups(None).unwrap().len(), 2);
    // Renaming an account or group to its own name is no collision.
    let mut w = s.begin();
    w.rename_account("ann", "ANN").unwrap();
    w.update_group("G", "G", GroupType::Organization, Some(3))
        .unwrap();
    w.commit().unwrap();
    assert_eq!(s.account("ann").unwrap().user_name, "ANN");

    // After a refusal the session goes on, or (PostgreSQL) fails as a whole.
    let mut w = s.begin();
    w.create_group("K", GroupType::Organization, None).unwrap();
    let taken = w.rename_account("bob", "ann");
    assert!(matches!(taken, Err(StoreError::Taken(_))), "{taken:?}");
    let next = w.create_group("L", GroupType::Organization, None);
    if s.kind.continues_after_refusal() {
        next.unwrap();
        assert_eq!(w.commit().unwrap(), 11);
        let got: Vec<String> = s
            .read()
            .groups(None)
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(got, ["G", "H", "K", "L"]);
    } else {
        assert!(
            next.is_err(),
            "{:?}: a write after a refusal went through",
            s.kind
        );
        assert!(
            w.commit().is_err(),
            "{:?}: an aborted session committed",
            s.kind
        );
        assert_eq!(s.revision(), 9);
        assert_eq!(s.read().groups(None).unwrap().len(), 2);
    }
}

fn a_second_writer_waits_then_gives_up(s: &Subject) {
    let store = &*s.store;
    // The first writer commits while the second waits: the second goes on
    // from what the first wrote.
    std::thread::scope(|scope| {
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let first = scope.spawn(move || {
            let mut w = store.begin(ACTOR, NOW).unwrap();
            w.create_group("first", GroupType::Organization, None)
                .unwrap();
            locked_tx.send(Instant::now()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            w.commit().unwrap()
        });
        let locked_at = locked_rx.recv().unwrap();
        let mut w = store.begin(ACTOR, NOW).unwrap();
        let held = locked_at.elapsed();
        assert!(
            held >= Duration::from_millis(300),
            "{:?}: a second writer began {held:?} after the first took the lock",
            s.kind
        );
        assert_eq!(first.join().unwrap(), 1);
        assert_eq!(w.revision().unwrap(), 1, "{:?}", s.kind);
        w.create_group("second", GroupType::Organization, None)
            .unwrap();
        assert_eq!(w.commit().unwrap(), 2);
    });
    // A first writer that keeps the lock: the second gives up after the
    // lock timeout, saying so.
    std::thread::scope(|scope| {
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let first = scope.spawn(move || {
            let mut w = store.begin(ACTOR, NOW).unwrap();
            w.create_group("third", GroupType::Organization, None)
                .unwrap();
            locked_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            // Dropped: nothing lands.
        });
        locked_rx.recv().unwrap();
        let started = Instant::now();
        let got = store.begin(ACTOR, NOW).map(|_| ());
        let waited = started.elapsed();
        done_tx.send(()).unwrap();
        first.join().unwrap();
        match got {
            Err(e @ StoreError::Locked { .. }) => {
                assert!(e.to_string().contains("locked by another apply"), "{e}");
            }
            other => panic!("{:?}: a second writer got {other:?}", s.kind),
        }
        assert!(
            waited >= LOCK_TIMEOUT - Duration::from_millis(100),
            "{:?}: gave up after {waited:?}",
            s.kind
        );
    });
    // The lock is free again, and the abandoned session left nothing.
    let mut w = s.begin();
    assert_eq!(w.revision().unwrap(), 2);
    drop(w);
    assert_eq!(
        s.read().groups(Some(&strings(&["third"]))).unwrap().len(),
        0
    );
}

fn savepoints_undo_rows_audit_and_revision(s: &Subject) {
    seed(s);
    let mut w = s.begin();
    w.create_account(
        "carl",
        &profile("carl@example.org", "Carl", "Fox"),
        invite(3),
    )
    .unwrap();
    w.savepoint().unwrap();
    w.create_account("dan", &profile("dan@example.org", "Dan", "Ox"), password())
        .unwrap();
    w.add_membership("dan", "G", true).unwrap();
    w.remove_membership("Ann", "G").unwrap();
    assert_eq!(w.revision().unwrap(), 11);
    w.rollback_to_savepoint().unwrap();
    assert_eq!(w.revision().unwrap(), 8);
    // A refused write inside a savepoint, undone: the session goes on (what
    // `roster serve` does with a queue of writes committed together).
    w.savepoint().unwrap();
    // Refused at once, or when the savepoint's queued rows are written.
    let taken = w
        .create_account("bob", &profile("x@example.org", "X", "Y"), password())
        .and_then(|()| w.release_savepoint());
    assert!(matches!(taken, Err(StoreError::Taken(_))), "{taken:?}");
    w.rollback_to_savepoint().unwrap();
    w.savepoint().unwrap();
    w.create_group("K", GroupType::Organization, None).unwrap();
    w.release_savepoint().unwrap();
    assert_eq!(w.commit().unwrap(), 9);

    assert!(s.account("carl").is_some());
    assert_eq!(s.account("dan"), None);
    assert_eq!(
        members(s, &["G"]),
        [member("G", "Ann", true), member("G", "bob", false)]
    );
    let rows = s.verified_audit();
    let ops: Vec<&str> = rows[7..].iter().map(|e| e.op.as_str()).collect();
    assert_eq!(ops, ["create_account", "create_group"]);
    // Without a savepoint there is nothing to return to.
    let mut w = s.begin();
    assert!(matches!(
        w.rollback_to_savepoint(),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(w.release_savepoint(), Err(StoreError::Invalid(_))));
}

/// What `roster serve` does with creates committed together: each in a
/// savepoint, released or rolled back, the next one set at once.
fn a_released_savepoint_stays_when_the_next_is_rolled_back(s: &Subject) {
    seed(s);
    let mut w = s.begin();
    w.savepoint().unwrap();
    w.create_account("eve", &profile("eve@example.org", "Eve", "Moe"), invite(5))
        .unwrap();
    w.add_membership("eve", "G", false).unwrap();
    w.release_savepoint().unwrap();
    // A released savepoint is gone: nothing to return to.
    assert!(matches!(
        w.rollback_to_savepoint(),
        Err(StoreError::Invalid(_))
    ));
    w.savepoint().unwrap();
    w.create_account("fay", &profile("fay@example.org", "Fay", "Ng"), invite(6))
        .unwrap();
    w.rollback_to_savepoint().unwrap();
    w.savepoint().unwrap();
    let taken = w
        .create_account("EVE", &profile("eve2@example.org", "Eve", "Two"), invite(7))
        .and_then(|()| w.release_savepoint());
    assert!(matches!(taken, Err(StoreError::Taken(_))), "{taken:?}");
    w.rollback_to_savepoint().unwrap();
    assert_eq!(w.commit().unwrap(), 9);

    assert!(s.account("eve").is_some());
    assert_eq!(s.account("fay"), None);
    assert_eq!(
        members(s, &["G"]),
        [
            member("G", "Ann", true),
            member("G", "bob", false),
            member("G", "eve", false)
        ]
    );
    let invited: Vec<String> = s
        .read()
        .invitations()
        .unwrap()
        .into_iter()
        .map(|i| i.user_name)
        .collect();
    assert_eq!(invited, ["Ann", "eve"]);
    let rows = s.verified_audit();
    let ops: Vec<&str> = rows[7..].iter().map(|e| e.op.as_str()).collect();
    assert_eq!(ops, ["create_account", "add_membership"]);
}

/// A create whose name the store already holds, refused when its
/// savepoint's rows are written: none of its rows lands (its account, its
/// roles, its invitation, its audit row), and the create after it in the
/// same session does, in an audit chain that verifies.
fn a_create_refused_at_its_release_leaves_none_of_its_rows(s: &Subject) {
    seed(s);
    let mut w = s.begin();
    w.savepoint().unwrap();
    let taken = w
        .create_account_with_roles(
            "BOB",
            &profile("bob2@example.org", "Bob", "Two"),
            &strings(&["editor"]),
            invite(8),
        )
        .and_then(|()| w.release_savepoint());
    assert!(matches!(taken, Err(StoreError::Taken(_))), "{taken:?}");
    w.rollback_to_savepoint().unwrap();
    assert_eq!(w.revision().unwrap(), 7);
    w.savepoint().unwrap();
    w.create_account_with_roles(
        "gus",
        &profile("gus@example.org", "Gus", "Ito"),
        &strings(&["editor"]),
        invite(9),
    )
    .unwrap();
    w.release_savepoint().unwrap();
    assert_eq!(w.commit().unwrap(), 8);

    let bob = s.account("bob").expect("bob");
    assert_eq!(bob.profile.email, "bob@example.org");
    assert!(bob.roles.is_empty(), "{:?}", bob.roles);
    assert_eq!(s.account("gus").expect("gus").roles, ["editor"]);
    let invited: Vec<String> = s
        .read()
        .invitations()
        .unwrap()
        .into_iter()
        .map(|i| i.user_name)
        .collect();
    assert_eq!(invited, ["Ann", "gus"]);
    let rows = s.verified_audit();
    let subjects: Vec<&str> = rows[7..].iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["gus"]);
}

/// A session told to refuse taken emails refuses a new account whose email
/// another account holds, in any case, committed or written earlier in the
/// same session, before its name; a refused create leaves none of its
/// rows. The in-memory store leaves the check to its caller.
fn a_session_refuses_an_email_another_account_holds(s: &Subject) {
    seed(s);
    let mut w = s.begin();
    if !w.refuse_taken_emails() {
        assert_eq!(s.kind, Kind::Memory, "the SQL stores check emails");
        return;
    }
    let email = StoreError::email_taken().to_string();
    fn try_create(w: &mut Box<dyn Session>, name: &str, mail: &str) -> Result<(), String> {
        w.savepoint().unwrap();
        let r = w
            .create_account(name, &profile(mail, "Cy", "Dee"), invite(20))
            .and_then(|()| w.release_savepoint());
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                w.rollback_to_savepoint().unwrap();
                Err(e.to_string())
            }
        }
    }
    assert_eq!(
        try_create(&mut w, "cy", "ANN@Example.org"),
        Err(email.clone())
    );
    assert_eq!(
        try_create(&mut w, "BOB", "Bob@example.org"),
        Err(email.clone())
    );
    let name = try_create(&mut w, "BOB", "bob.two@example.org").unwrap_err();
    assert!(name.contains("already exists"), "{name}");
    try_create(&mut w, "dee", "dee@example.org").unwrap();
    assert_eq!(try_create(&mut w, "eve", "DEE@example.org"), Err(email));
    // No email is no email taken.
    try_create(&mut w, "fay", "").unwrap();
    try_create(&mut w, "gil", "").unwrap();
    assert_eq!(w.commit().unwrap(), 10);
    for gone in ["cy", "eve"] {
        assert!(s.account(gone).is_none(), "{gone}");
    }
    assert_eq!(s.account("bob").unwrap().profile.email, "bob@example.org");
    assert_eq!(s.account("dee").unwrap().profile.email, "dee@example.org");
    let rows = s.verified_audit();
    let subjects: Vec<&str> = rows[7..].iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["dee", "fay", "gil"]);
    let invited = s.read().invitations().unwrap().len();
    assert_eq!(invited, 4, "Ann, dee, fay and gil");
}

fn the_plan_key_is_made_once_and_kept(s: &Subject) {
    assert_eq!(s.store.plan_key(false).unwrap(), None);
    let key = s.store.plan_key(true).unwrap().expect("a key");
    assert_eq!(key.len(), 32);
    assert!(key.iter().any(|&b| b != 0), "{key:?}");
    assert_eq!(s.store.plan_key(false).unwrap().as_ref(), Some(&key));
    assert_eq!(s.store.plan_key(true).unwrap().as_ref(), Some(&key));
    // Making the key is not a change of the roster: no revision, no audit row.
    assert_eq!(s.revision(), 0);
    assert!(s.verified_audit().is_empty());
    seed(s);
    assert_eq!(s.store.plan_key(true).unwrap(), Some(key));
    // Another store gets another key.
    let other = match s.kind {
        Kind::Memory => Subject::memory(),
        Kind::Sqlite => Subject::sqlite(),
        Kind::Postgres => Subject::postgres(),
    };
    assert_ne!(
        other.store.plan_key(true).unwrap(),
        s.store.plan_key(false).unwrap()
    );
}

fn accounts_and_groups_can_be_renamed_and_deleted(s: &Subject) {
    seed(s);
    let mut w = s.begin();
    w.rename_account("ann", "ALee").unwrap();
    w.update_group("G", "Staff", GroupType::Organization, Some(12))
        .unwrap();
    w.commit().unwrap();
    assert_eq!(s.account("ann"), None);
    let alee = s.account("alee").unwrap();
    assert_eq!(alee.profile.email, "ann@example.org");
    let mut r = s.read();
    assert_eq!(r.user_names_like(&strings(&["ALee"])).unwrap(), ["alee"]);
    let g = r.groups(Some(&strings(&["Staff", "G"]))).unwrap();
    assert_eq!(
        g.iter()
            .map(|g| (g.name.as_str(), g.kind, g.lwia))
            .collect::<Vec<_>>(),
        [("Staff", GroupType::Organization, Some(12))]
    );
    drop(r);
    // Memberships follow both renames.
    assert_eq!(
        members(s, &["Staff"]),
        [member("Staff", "ALee", true), member("Staff", "bob", false)]
    );
    let rows = s.verified_audit();
    let tail: Vec<_> = rows[7..]
        .iter()
        .map(|e| {
            (
                e.op.as_str(),
                e.subject.as_str(),
                e.raw.0.as_deref(),
                e.raw.1.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        tail,
        [
            (
                "rename_account",
                "ann",
                Some(r#"{"user_name":"ann"}"#),
                Some(r#"{"user_name":"ALee"}"#)
            ),
            (
                "update_group",
                "G",
                Some(r#"{"lwia":7,"name":"G","type":"project"}"#),
                Some(r#"{"lwia":12,"name":"Staff","type":"organization"}"#)
            ),
        ]
    );

    let mut w = s.begin();
    w.delete_account("ALEE").unwrap();
    w.delete_group("H").unwrap();
    w.commit().unwrap();
    let mut r = s.read();
    assert_eq!(names(&r.all_accounts().unwrap()), ["bob"]);
    assert!(
        r.invitations().unwrap().is_empty(),
        "a deleted account's invitation stays"
    );
    let g: Vec<String> = r
        .groups(None)
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(g, ["Staff"]);
    assert!(r.memberships(&strings(&["H"])).unwrap().is_empty());
    assert_eq!(
        r.memberships(&strings(&["Staff"])).unwrap().len(),
        1,
        "the deleted account's membership stays"
    );
    drop(r);
    let ops: Vec<_> = s.verified_audit()[9..]
        .iter()
        .map(|e| (e.op.clone(), e.subject.clone(), e.raw.clone()))
        .collect();
    assert_eq!(
        ops,
        [
            ("delete_account".into(), "ALEE".into(), (None, None)),
            ("delete_group".into(), "H".into(), (None, None)),
        ]
    );
    // The names are free again; the new account is a new one.
    let mut w = s.begin();
    w.create_group("H", GroupType::Organization, None).unwrap();
    w.create_account("alee", &profile("new@example.org", "A", "Lee"), password())
        .unwrap();
    for missing in [w.delete_account("nobody"), w.delete_group("nope")] {
        assert!(
            matches!(missing, Err(StoreError::Invalid(_))),
            "{missing:?}"
        );
    }
    w.commit().unwrap();
    assert!(members(s, &["H"]).is_empty());
    assert_eq!(s.account("alee").unwrap().profile.email, "new@example.org");
}

fn tokens_are_kept_as_digests_and_revoked(s: &Subject) {
    seed(s);
    let mut w = s.begin();
    w.create_token("admin", "digest-admin", None).unwrap();
    w.create_token("g-only", "digest-g", Some(&strings(&["G"])))
        .unwrap();
    let unknown = w.create_token("bad", "digest-bad", Some(&strings(&["nope"])));
    assert!(
        matches!(unknown, Err(StoreError::Invalid(_))),
        "{unknown:?}"
    );
    w.revoke_token("admin").unwrap();
    let again = w.revoke_token("admin");
    assert!(matches!(again, Err(StoreError::Invalid(_))), "{again:?}");
    assert_eq!(w.commit().unwrap(), 10);
    let rows = s.verified_audit();
    let tail: Vec<_> = rows[7..]
        .iter()
        .map(|e| (e.op.as_str(), e.subject.as_str(), e.raw.1.clone()))
        .collect();
    assert_eq!(
        tail[0],
        (
            "create_token",
            "admin",
            Some(r#"{"group_ids":null,"scope":null}"#.into())
        )
    );
    assert_eq!(tail[1].0, "create_token");
    let after: serde_json::Value = serde_json::from_str(tail[1].2.as_deref().unwrap()).unwrap();
    assert_eq!(after["scope"], serde_json::json!(["G"]));
    assert_eq!(after["group_ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(tail[2], ("revoke_token", "admin", None));
    for e in &rows {
        assert!(
            !format!("{:?}", e.raw).contains("digest-"),
            "row {} shows a digest",
            e.seq
        );
    }

    // roster serve reads them back (the in-memory store is not served).
    let served = s.store.served();
    if !s.kind.served() {
        assert!(
            matches!(served, Err(StoreError::Invalid(_))),
            "{:?}",
            s.kind
        );
        return;
    }
    let mut d = served.unwrap_or_else(|e| panic!("{:?}: served: {e}", s.kind));
    assert!(
        d.token("digest-admin").unwrap().is_none(),
        "a revoked token is live"
    );
    let g = d.token("digest-g").unwrap().expect("the scoped token");
    match g.scope {
        Scope::Groups(refs) => assert_eq!(
            refs.iter()
                .map(|r: &GroupRef| r.name.as_str())
                .collect::<Vec<_>>(),
            ["G"]
        ),
        other => panic!("{other:?}"),
    }
}

fn invited_accounts_are_listed_until_deactivated(s: &Subject) {
    seed(s);
    let mut w = s.begin_at(LATER);
    w.create_account(
        "carl",
        &profile("carl@example.org", "Carl", "Fox"),
        invite(3),
    )
    .unwrap();
    w.create_account("Abe", &profile("abe@example.org", "Abe", "Fox"), invite(4))
        .unwrap();
    w.commit().unwrap();
    let listed = |s: &Subject| -> Vec<(String, String, String)> {
        s.read()
            .invitations()
            .unwrap()
            .into_iter()
            .map(|i| {
                assert_eq!(i.reminded_at, None);
                (i.user_name, i.email, i.invited_at)
            })
            .collect()
    };
    let row = |u: &str, e: &str, at: &str| (u.to_string(), e.to_string(), at.to_string());
    // By invitation time, then user name; password accounts are not invited.
    assert_eq!(
        listed(s),
        [
            row("Ann", "ann@example.org", NOW),
            row("Abe", "abe@example.org", LATER),
            row("carl", "carl@example.org", LATER),
        ]
    );
    let mut w = s.begin();
    w.deactivate_account("carl").unwrap();
    w.commit().unwrap();
    assert_eq!(listed(s).len(), 2);
    // Reactivated, the account is listed again: it has still not activated.
    let mut w = s.begin();
    w.reactivate_account("carl").unwrap();
    w.commit().unwrap();
    assert_eq!(listed(s).len(), 3);
}

fn ent(kind: &str, value: &str) -> Entitlement {
    Entitlement::new(kind, value)
}

fn roles_entitlements_and_case_managers_are_kept_and_audited(s: &Subject) {
    seed(s);
    let mut w = s.begin();
    w.grant_role("bob", "supervisor").unwrap();
    w.grant_role("BOB", "caseworker").unwrap();
    w.grant_entitlement("bob", &ent("products", "webcenter"))
        .unwrap();
    w.grant_entitlement("bob", &ent("coverage", "North Team"))
        .unwrap();
    w.set_case_manager("bob", Some("Ann")).unwrap();
    // A new account: its roles, entitlements and manager land with it.
    w.create_account_with_roles(
        "cy",
        &profile("cy@example.org", "Cy", "Young"),
        &strings(&["caseworker", "caseworker"]),
        NewCredential::Sso,
    )
    .unwrap();
    w.grant_entitlement("cy", &ent("dashboards", "caseload"))
        .unwrap();
    w.set_case_manager("cy", Some("bob")).unwrap();
    assert_eq!(w.commit().unwrap(), 15, "{:?}", s.kind);

    let bob = s.account("bob").unwrap();
    assert_eq!(bob.roles, ["caseworker", "supervisor"]);
    assert_eq!(
        bob.entitlements,
        [ent("coverage", "North Team"), ent("products", "webcenter")]
    );
    assert_eq!(bob.case_manager.as_deref(), Some("Ann"));
    let cy = s.account("cy").unwrap();
    assert_eq!(cy.roles, ["caseworker"]);
    assert_eq!(cy.entitlements, [ent("dashboards", "caseload")]);
    assert_eq!(cy.case_manager.as_deref(), Some("bob"));
    // Single sign-on: active at once, no credential, no invitation.
    assert!(cy.active);
    assert_eq!(cy.credential, CredentialState::None);
    let mut r = s.read();
    let invited: Vec<String> = r
        .invitations()
        .unwrap()
        .into_iter()
        .map(|i| i.user_name)
        .collect();
    assert_eq!(invited, ["Ann"]);
    // Every read returns them: by email, by name + birth date, all.
    let by_email = r.accounts_by_email(&strings(&["bob@example.org"])).unwrap();
    assert_eq!(by_email, std::slice::from_ref(&bob));
    // An account two keys find holds its grants on each copy.
    let twice = r
        .accounts_by_email(&strings(&[
            "bob@example.org",
            "cy@example.org",
            "bob@example.org",
        ]))
        .unwrap();
    assert_eq!(twice, [bob.clone(), cy.clone(), bob.clone()]);
    let all = r.all_accounts().unwrap();
    assert_eq!(names(&all), ["Ann", "bob", "cy"]);
    assert_eq!(all[0].roles, ["public-viewer"]);
    assert_eq!(all[1], bob);
    assert_eq!(r.active_accounts().unwrap(), 3);
    drop(r);

    let mut w = s.begin_at(LATER);
    w.revoke_role("bob", "supervisor").unwrap();
    w.revoke_entitlement("bob", &ent("products", "webcenter"))
        .unwrap();
    w.set_case_manager("bob", None).unwrap();
    w.set_case_manager("cy", Some("ann")).unwrap();
    // A rename keeps what the account holds and whom it manages.
    w.rename_account("Ann", "Anne").unwrap();
    w.deactivate_account("bob").unwrap();
    w.commit().unwrap();
    let bob = s.account("bob").unwrap();
    assert_eq!(bob.roles, ["caseworker"]);
    assert_eq!(bob.entitlements, [ent("coverage", "North Team")]);
    assert_eq!(bob.case_manager, None);
    assert_eq!(
        s.account("cy").unwrap().case_manager.as_deref(),
        Some("Anne")
    );
    assert_eq!(s.account("anne").unwrap().roles, ["public-viewer"]);
    assert_eq!(s.read().active_accounts().unwrap(), 2);

    // Each change is one audit row, as `roster log` shows it.
    let rows = s.verified_audit();
    let ops: Vec<(&str, &str)> = rows[7..]
        .iter()
        .map(|e| (e.op.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            ("grant_role", "bob"),
            ("grant_role", "BOB"),
            ("grant_entitlement", "bob"),
            ("grant_entitlement", "bob"),
            ("set_case_manager", "bob"),
            ("create_account", "cy"),
            ("grant_entitlement", "cy"),
            ("set_case_manager", "cy"),
            ("revoke_role", "bob"),
            ("revoke_entitlement", "bob"),
            ("set_case_manager", "bob"),
            ("set_case_manager", "cy"),
            ("rename_account", "Ann"),
            ("deactivate_account", "bob"),
        ]
    );
    let raw = |i: usize| (rows[i].raw.0.as_deref(), rows[i].raw.1.as_deref());
    assert_eq!(raw(7), (None, Some(r#"{"role":"supervisor"}"#)));
    assert_eq!(
        raw(9),
        (None, Some(r#"{"kind":"products","value":"webcenter"}"#))
    );
    assert_eq!(
        raw(11),
        (
            Some(r#"{"case_manager":null}"#),
            Some(r#"{"case_manager":"Ann"}"#)
        )
    );
    assert!(raw(12).1.unwrap().contains(r#""roles":["caseworker"]"#));
    assert!(raw(12).1.unwrap().contains(r#""credential":"none""#));
    assert_eq!(raw(15), (Some(r#"{"role":"supervisor"}"#), None));

    // Deleting a case manager leaves the accounts it managed without one.
    let mut w = s.begin_at(LATER);
    w.delete_account("anne").unwrap();
    w.commit().unwrap();
    assert_eq!(s.account("cy").unwrap().case_manager, None);
    s.verified_audit();
}

/// One write in a session of its own, refused: what it said.
fn refused(
    s: &Subject,
    write: impl FnOnce(&mut dyn Session) -> Result<(), StoreError>,
) -> StoreError {
    let mut w = s.begin();
    let e = write(w.as_mut()).expect_err("refused");
    drop(w);
    e
}

fn grants_and_case_managers_refuse_what_is_already_so(s: &Subject) {
    seed(s);
    let mut w = s.begin();
    w.grant_role("bob", "caseworker").unwrap();
    w.grant_entitlement("bob", &ent("products", "webcenter"))
        .unwrap();
    w.set_case_manager("bob", Some("Ann")).unwrap();
    w.commit().unwrap();
    let before = s.verified_audit();
    let taken = |e: StoreError| match e {
        StoreError::Taken(m) => m,
        other => panic!("{:?}: not Taken: {other:?}", s.kind),
    };
    let invalid = |e: StoreError| match e {
        StoreError::Invalid(m) => m,
        other => panic!("{:?}: not Invalid: {other:?}", s.kind),
    };
    assert_eq!(
        taken(refused(s, |w| w.grant_role("bob", "caseworker"))),
        "account `bob` already has role `caseworker`"
    );
    assert_eq!(
        invalid(refused(s, |w| w.revoke_role("bob", "individual"))),
        "account `bob` does not have role `individual`"
    );
    assert_eq!(
        taken(refused(s, |w| w
            .grant_entitlement("bob", &ent("products", "webcenter")))),
        "account `bob` already has entitlement `products: webcenter`"
    );
    assert_eq!(
        invalid(refused(s, |w| w
            .revoke_entitlement("bob", &ent("products", "hrcenter")))),
        "account `bob` does not have entitlement `products: hrcenter`"
    );
    assert_eq!(
        invalid(refused(s, |w| w.set_case_manager("bob", Some("BOB")))),
        "account `bob` cannot be its own case manager"
    );
    assert_eq!(
        invalid(refused(s, |w| w.set_case_manager("bob", Some("ann")))),
        "account `bob`'s case manager is already `ann`"
    );
    assert_eq!(
        invalid(refused(s, |w| w.set_case_manager("Ann", None))),
        "account `Ann` has no case manager to clear"
    );
    assert_eq!(
        invalid(refused(s, |w| w.set_case_manager("bob", Some("nobody")))),
        "account `nobody` does not exist in the store"
    );
    assert_eq!(
        invalid(refused(s, |w| w.grant_role("nobody", "caseworker"))),
        "account `nobody` does not exist in the store"
    );
    // A new account's grants are checked in the session too.
    let e = refused(s, |w| {
        w.create_account(
            "cy",
            &profile("cy@example.org", "Cy", "Young"),
            NewCredential::Sso,
        )?;
        w.grant_role("cy", "caseworker")?;
        w.grant_role("CY", "caseworker")
    });
    assert_eq!(taken(e), "account `CY` already has role `caseworker`");
    // Nothing of any of it landed.
    assert_eq!(s.verified_audit().len(), before.len());
    assert!(s.account("cy").is_none());
}

/// A kept PostgreSQL connection remembers that it found the schema
/// current; a newer roster's migration (made under the same write lock)
/// is still seen by its next session, which refuses the store.
#[test]
fn a_schema_migrated_meanwhile_is_seen_by_a_kept_postgres_connection() {
    if crate::pg::skipped() {
        return;
    }
    let (url, _) = crate::pg::database();
    let store = store::open(&url, options()).expect("open postgres store");
    for _ in 0..2 {
        let w = store.begin(ACTOR, NOW).expect("begin");
        w.commit().expect("commit");
    }
    let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    c.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'schema_version'",
        &[],
    )
    .expect("bump the schema version");
    let refused = match store.begin(ACTOR, NOW) {
        Ok(_) => panic!("a session began on a store of a newer schema"),
        Err(e) => e.to_string(),
    };
    assert!(refused.contains("newer than this roster"), "{refused}");
}

/// A large session on PostgreSQL writes its queued accounts on a thread of
/// its own while it goes on: an account created again under a name written
/// that way is refused by name, and nothing of the session lands.
#[test]
fn a_name_taken_behind_a_large_postgres_session_is_refused_and_nothing_lands() {
    if crate::pg::skipped() {
        return;
    }
    let (url, _) = crate::pg::database();
    let store = store::open(&url, options()).expect("open postgres store");
    // The schema, made by a first session.
    store
        .begin(ACTOR, NOW)
        .expect("begin")
        .commit()
        .expect("commit");
    let mut w = store.begin(ACTOR, NOW).expect("begin");
    for i in 0..3000 {
        let p = profile(&format!("p{i}@example.org"), "Pat", "Person");
        w.create_account(&format!("p{i}"), &p, NewCredential::Sso)
            .expect("create");
    }
    let again = profile("again@example.org", "Pat", "Again");
    let refused = match w.create_account("P1", &again, NewCredential::Sso) {
        Err(e) => {
            drop(w);
            e
        }
        Ok(()) => w.commit().expect_err("a name taken was committed"),
    };
    assert!(matches!(refused, StoreError::Taken(_)), "{refused}");
    assert!(refused.to_string().contains("P1"), "{refused}");
    let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM audit), \
             (SELECT value FROM meta WHERE key = 'revision')",
            &[],
        )
        .expect("counts");
    let landed: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(landed, (0, 0, 0));
}

/// A large session on PostgreSQL refuses by name a new account whose name
/// an account it never looked up already holds, found as its rows are
/// written on a thread of their own; nothing of the session lands.
#[test]
fn a_name_held_before_a_large_postgres_session_is_refused_and_nothing_lands() {
    if crate::pg::skipped() {
        return;
    }
    let (url, _) = crate::pg::database();
    let store = store::open(&url, options()).expect("open postgres store");
    let mut w = store.begin(ACTOR, NOW).expect("begin");
    let held = profile("held@example.org", "Pat", "Held");
    w.create_account("P7", &held, NewCredential::Sso)
        .expect("create");
    w.commit().expect("commit");
    let mut w = store.begin(ACTOR, NOW).expect("begin");
    let mut refused = None;
    for i in 0..3000 {
        let p = profile(&format!("p{i}@example.org"), "Pat", "Person");
        if let Err(e) = w.create_account(&format!("p{i}"), &p, NewCredential::Sso) {
            refused = Some(e);
            break;
        }
    }
    let refused = match refused {
        Some(e) => {
            drop(w);
            e
        }
        None => w.commit().expect_err("a name taken was committed"),
    };
    assert!(matches!(refused, StoreError::Taken(_)), "{refused}");
    assert!(refused.to_string().contains("p7"), "{refused}");
    let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM audit), \
             (SELECT value FROM meta WHERE key = 'revision')",
            &[],
        )
        .expect("counts");
    let landed: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(landed, (1, 1, 1));
}
