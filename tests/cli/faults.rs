//! Faults that must never cost data: `kill -9` in the middle of large
//! applies and of a serving `roster serve`, and saved plans racing for one
//! revision. Each story runs on SQLite and on PostgreSQL.

use super::serve::{http, ok_in, run_in, seed, start, store_url};
use super::store::Backend;
use super::*;
use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The store's revision, as `log --verify` reports it once the audit chain
/// has been checked (it fails when the chain is broken).
fn verified_revision(r: &Roster, db: &str) -> i64 {
    let out = ok_in(r.path(), &["log", "--verify", "--store", db]);
    let text = out.stdout;
    let at = text
        .rfind("revision ")
        .unwrap_or_else(|| panic!("no revision in: {text}"));
    text[at + "revision ".len()..]
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or_else(|_| panic!("no revision in: {text}"))
}

/// `n` partners spread over four groups; `turn` moves every partner to
/// another group, so one apply adds and removes `n` memberships.
fn big_roster(n: usize, turn: usize) -> String {
    let mut groups = vec![String::new(); 4];
    let mut partners = String::new();
    for i in 0..n {
        groups[(i + turn) % 4].push_str(&format!("      - p{i}@example.org\n"));
        let last: String = i
            .to_string()
            .bytes()
            .map(|d| (b'a' + d - b'0') as char)
            .collect();
        partners.push_str(&format!(
            "  - email: p{i}@example.org\n    first_name: Pat\n    last_name: Person{last}\n    \
             birth_date: 19{:02}-0{}-1{}\n    phone: \"217555{:04}\"\n    zip: \"62701\"\n",
            50 + i % 40,
            1 + i % 9,
            i % 10,
            i % 10_000
        ));
    }
    let mut text = String::from("version: 1\ngroups:\n");
    for (g, members) in groups.iter().enumerate() {
        text.push_str(&format!(
            "  - name: Fault Group {g}\n    members:\n{members}"
        ));
    }
    text.push_str("partners:\n");
    text.push_str(&partners);
    text
}

/// The foreign keys of a PostgreSQL database's tables: table, name,
/// definition, and whether checked.
fn foreign_keys(c: &mut ::postgres::Client) -> Vec<(String, String, String, bool)> {
    c.query(
        "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid), convalidated \
         FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2",
        &[],
    )
    .expect("foreign keys")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// A first apply onto an empty PostgreSQL database fills the tables it
/// creates before their foreign keys are checked (once each, at commit):
/// what commits has every key the migrations declare, checked, and a row
/// that names no account, slipped in while the tables fill, lands nothing,
/// not even the tables.
#[test]
fn a_first_postgres_apply_commits_every_key_and_a_stray_row_lands_nothing() {
    if crate::pg::skipped() {
        return;
    }
    let r = roster().file("big.yaml", big_roster(300, 0));
    let declared = crate::pg::database().0;
    let mut d = ::postgres::Client::connect(&declared, ::postgres::NoTls).expect("connect");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("migrations")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for file in &files {
        d.batch_execute(&std::fs::read_to_string(file).expect("migration"))
            .expect("migration runs");
    }
    let keys = foreign_keys(&mut d);
    assert!(keys.len() >= 5, "{keys:?}");

    let db = crate::pg::database().0;
    ok_in(r.path(), &["apply", "--yes", "--store", &db, "big.yaml"]);
    let mut c = ::postgres::Client::connect(&db, ::postgres::NoTls).expect("connect");
    assert_eq!(foreign_keys(&mut c), keys);
    assert!(keys.iter().all(|k| k.3), "{keys:?}");
    let stray = c
        .execute(
            "INSERT INTO memberships (group_id, account_id, user_manager) \
             VALUES ((SELECT min(id) FROM groups), (SELECT max(id) FROM accounts) + 1, false)",
            &[],
        )
        .expect_err("a membership of no account");
    assert_eq!(
        stray.code(),
        Some(&::postgres::error::SqlState::FOREIGN_KEY_VIOLATION),
        "{stray}"
    );
    assert_eq!(verified_revision(&r, &db), 300 + 4 + 300);

    // A trigger, armed as soon as the apply creates `memberships`, points
    // some of its rows at no account.
    let db = crate::pg::database().0;
    let mut c = ::postgres::Client::connect(&db, ::postgres::NoTls).expect("connect");
    c.batch_execute(
        "CREATE FUNCTION stray() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.account_id % 7 = 0 THEN NEW.account_id := NEW.account_id + 1000000; END IF; \
         RETURN NEW; END $$; \
         CREATE FUNCTION arm() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF to_regclass('memberships') IS NOT NULL \
            AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'stray') THEN \
         CREATE TRIGGER stray BEFORE INSERT ON memberships FOR EACH ROW EXECUTE FUNCTION stray(); \
         END IF; END $$; \
         CREATE EVENT TRIGGER arm ON ddl_command_end EXECUTE FUNCTION arm()",
    )
    .expect("triggers");
    let out = run_in(r.path(), &["apply", "--yes", "--store", &db, "big.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("memberships_account_id_fkey"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let tables: Option<String> = c
        .query_one("SELECT to_regclass('accounts')::text", &[])
        .expect("tables")
        .get(0);
    assert_eq!(tables, None, "a first apply that failed left tables");
    c.batch_execute("DROP EVENT TRIGGER arm")
        .expect("drop trigger");
    ok_in(r.path(), &["apply", "--yes", "--store", &db, "big.yaml"]);
    assert_eq!(foreign_keys(&mut c), keys);
}

/// The live store as `export` shows it, personal data included.
fn exported(r: &Roster, db: &str) -> String {
    ok_in(r.path(), &["export", "--show-pii", "--store", db]).stdout
}

/// `kill -9` at spread-out moments of large applies: each time the store is
/// exactly as before or exactly as planned, the audit chain verifies, and
/// running the apply again converges.
fn kill_9_mid_apply_leaves_the_store_before_or_after(b: Backend) {
    const N: usize = 1000;
    let r = roster()
        .file("a.yaml", big_roster(N, 0))
        .file("b.yaml", big_roster(N, 1));
    let db = store_url(b);
    ok_in(r.path(), &["apply", "--yes", "--store", &db, "a.yaml"]);
    let apply = |file: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
        c.args([
            "apply",
            "--yes",
            "--allow-mass-removal",
            "--store",
            &db,
            file,
        ])
        .current_dir(r.path())
        .env_remove("ROSTER_STORE")
        .env("NO_COLOR", "1")
        .env("ROSTER_ACTOR", "test-admin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        c
    };
    // How long one whole apply takes here, to spread the kills over it.
    let t = Instant::now();
    assert!(apply("b.yaml").status().unwrap().success());
    let whole = t.elapsed();
    let (mut landed, mut kept) = (0, 0);
    let mut current = "b.yaml";
    for k in 0..6u32 {
        let next = if current == "a.yaml" {
            "b.yaml"
        } else {
            "a.yaml"
        };
        let before = exported(&r, &db);
        let rev = verified_revision(&r, &db);
        // Every action bumps the revision once.
        let planned = run_in(
            r.path(),
            &["plan", "--format", "json", "--store", &db, next],
        );
        let plan: Value = serde_json::from_str(&planned.stdout).unwrap();
        let actions = plan["actions"].as_array().unwrap().len() as i64;
        assert!(actions >= N as i64, "{actions} actions");
        let mut child = apply(next).spawn().unwrap();
        std::thread::sleep(whole * (k + 1) / 7);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let after_rev = verified_revision(&r, &db);
        if after_rev == rev {
            assert_eq!(exported(&r, &db), before, "kill {k}: a half-applied store");
            kept += 1;
        } else {
            assert_eq!(after_rev, rev + actions, "kill {k} ({status:?})");
            let plan = run_in(
                r.path(),
                &["plan", "--detailed-exitcode", "--store", &db, next],
            );
            assert_eq!(plan.code, 0, "kill {k}: landed half way\n{}", plan.stdout);
            landed += 1;
        }
        // Running it again converges, whatever the kill left.
        let again = run_in(
            r.path(),
            &[
                "apply",
                "--yes",
                "--allow-mass-removal",
                "--store",
                &db,
                next,
            ],
        );
        assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
        let plan = run_in(
            r.path(),
            &["plan", "--detailed-exitcode", "--store", &db, next],
        );
        assert_eq!(plan.code, 0, "{}", plan.stdout);
        current = next;
    }
    // Not every kill came too late: some landed mid-apply.
    assert!(kept > 0, "no kill interrupted an apply ({landed} landed)");
}

/// Every write `roster serve` acknowledged survives `kill -9` of the server.
fn acknowledged_scim_writes_survive_kill_9(b: Backend) {
    let r = roster().file("g.yaml", "version: 1\ngroups:\n  - name: Intake\n");
    let (db, token) = seed(&r, b, "g.yaml");
    let server = start(r.path(), &db);
    let base = server.base.clone();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let (base, token) = (base.clone(), token.clone());
        let acked = std::sync::Arc::clone(&acked);
        std::thread::spawn(move || {
            for i in 0.. {
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("kill{i}"),
                    "name": {"givenName": "Kim", "familyName": format!("Killed{i}")},
                    "emails": [{"value": format!("kill{i}@example.org"), "primary": true}],
                });
                let url = format!("{base}/Users");
                let sent =
                    std::panic::catch_unwind(|| http("POST", &url, Some(&token), Some(&body), &[]));
                match sent {
                    Ok(resp) if resp.status == 201 => acked
                        .lock()
                        .unwrap()
                        .push((resp.body["id"].as_str().unwrap().to_string(), i)),
                    // The server died under this request.
                    _ => return,
                }
            }
        })
    };
    // Kill it while writes stream in, once some were acknowledged.
    let t = Instant::now();
    while acked.lock().unwrap().len() < 10 && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(137));
    // Dropping the server kills it with SIGKILL.
    drop(server);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 10,
        "only {} writes before the kill",
        acked.len()
    );
    let server = start(r.path(), &db);
    for (id, i) in &acked {
        let got = http(
            "GET",
            &format!("{}/Users/{id}", server.base),
            Some(&token),
            None,
            &[],
        );
        assert_eq!(got.status, 200, "acknowledged user kill{i} ({id}) is lost");
        assert_eq!(got.body["userName"], format!("kill{i}"));
    }
    // The audit chain is whole after the kill.
    verified_revision(&r, &db);
}

/// Eight saved plans made at one revision, applied at once: exactly one
/// lands; the others are stale, and nothing is applied twice.
fn saved_plans_racing_for_one_revision_have_one_winner(b: Backend) {
    let mut r = roster().file("base.yaml", "version: 1\ngroups:\n  - name: Race Base\n");
    for i in 0..8 {
        r = r.file(
            &format!("r{i}.yaml"),
            format!("version: 1\ngroups:\n  - name: Race {i}\n"),
        );
    }
    let db = store_url(b);
    ok_in(r.path(), &["apply", "--yes", "--store", &db, "base.yaml"]);
    let rev = verified_revision(&r, &db);
    for i in 0..8 {
        let plan = format!("r{i}.json");
        ok_in(
            r.path(),
            &["plan", "--store", &db, &format!("r{i}.yaml"), "-o", &plan],
        );
    }
    let outs: Vec<Output> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..8)
            .map(|i| {
                let (r, db) = (&r, &db);
                s.spawn(move || {
                    run_in(
                        r.path(),
                        &[
                            "apply",
                            "--yes",
                            "--lock-timeout",
                            "60",
                            "--store",
                            db,
                            &format!("r{i}.json"),
                        ],
                    )
                })
            })
            .collect();
        runs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners = outs.iter().filter(|o| o.code == 0).count();
    assert_eq!(
        winners,
        1,
        "{:?}",
        outs.iter().map(|o| &o.stderr).collect::<Vec<_>>()
    );
    for o in outs.iter().filter(|o| o.code != 0) {
        assert!(o.stderr.contains("stale plan"), "{}", o.stderr);
    }
    assert_eq!(verified_revision(&r, &db), rev + 1);
}

on_every_store!(
    kill_9_mid_apply_leaves_the_store_before_or_after,
    acknowledged_scim_writes_survive_kill_9,
    saved_plans_racing_for_one_revision_have_one_winner,
);

/// A large apply on PostgreSQL writes its queued rows on a thread of its
/// own while it goes on: a row the database refuses there ends the apply
/// with the database's reason, and nothing of it lands; once the database
/// takes them, every row lands and the audit chain verifies.
#[test]
fn a_row_refused_behind_a_large_postgres_apply_lands_nothing() {
    if crate::pg::skipped() {
        return;
    }
    const N: usize = 3000;
    let r = roster()
        .file("small.yaml", big_roster(4, 0))
        .file("big.yaml", big_roster(N, 0));
    let db = crate::pg::database().0;
    ok_in(r.path(), &["apply", "--yes", "--store", &db, "small.yaml"]);
    let rev = verified_revision(&r, &db);
    let before = exported(&r, &db);
    // The audit row of the 100th action: written with the first rows an
    // apply this large queues, long before its end.
    let mut c = ::postgres::Client::connect(&db, ::postgres::NoTls).expect("connect");
    c.batch_execute(&format!(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.seq = {} THEN RAISE EXCEPTION 'audit row % refused here', NEW.seq; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse()",
        rev + 100
    ))
    .expect("trigger");
    let out = run_in(r.path(), &["apply", "--yes", "--store", &db, "big.yaml"]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr
            .contains(&format!("audit row {} refused here", rev + 100)),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(verified_revision(&r, &db), rev);
    assert_eq!(exported(&r, &db), before, "a half-applied store");

    c.batch_execute("DROP TRIGGER refuse ON audit")
        .expect("drop trigger");
    ok_in(r.path(), &["apply", "--yes", "--store", &db, "big.yaml"]);
    let planned = run_in(
        r.path(),
        &["plan", "--detailed-exitcode", "--store", &db, "big.yaml"],
    );
    assert_eq!(planned.code, 0, "{}", planned.stdout);
    let counts = c
        .query_one(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM memberships), \
             (SELECT count(*) FROM audit)",
            &[],
        )
        .expect("counts");
    let (accounts, memberships): (i64, i64) = (counts.get(0), counts.get(1));
    assert_eq!((accounts, memberships), (N as i64, N as i64));
    assert_eq!(counts.get::<_, i64>(2), verified_revision(&r, &db));
}
