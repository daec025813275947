//! `plan`, `apply`, `export`, `diff`, `log` and `invitations` against a real
//! SQLite file in a temporary directory.

use super::*;
use std::collections::BTreeMap;

const DB: &str = "sqlite:store.db";

impl Roster {
    fn copy(self, example: &str, to: &str) -> Self {
        let text = std::fs::read_to_string(repo(example)).unwrap();
        self.file(to, text)
    }

    /// Run with these arguments (replacing earlier ones).
    fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_env(args, &[])
    }

    fn cmd_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ROSTER_FORMAT")
            .env_remove("ROSTER_STORE")
            .env_remove("ROSTER_SHOW_PII")
            .env("NO_COLOR", "1")
            .env("ROSTER_ACTOR", "test-admin")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run roster");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args);
        assert_eq!(out.code, 0, "{args:?}\n{}\n{}", out.stdout, out.stderr);
        out
    }

    fn plan_json(&self, roster: &str) -> (i32, Value) {
        let out = self.cmd(&["plan", "--store", DB, roster, "--format", "json"]);
        let v = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
        (out.code, v)
    }

    fn revision(&self) -> i64 {
        let c = rusqlite::Connection::open(self.path().join("store.db")).unwrap();
        c.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
            r.get(0)
        })
        .unwrap()
    }

    fn sql(&self, sql: &str) {
        let c = rusqlite::Connection::open(self.path().join("store.db")).unwrap();
        c.execute_batch(sql).unwrap();
    }
}

/// The shipped example and the store it is planned against in the README.
fn worknet() -> Roster {
    let r = roster()
        .copy("examples/worknet-live/roster.yaml", "live.yaml")
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    r.ok(&["apply", "--yes", "--store", DB, "live.yaml"]);
    r
}

fn ops(plan: &Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut s = a["op"].as_str().unwrap().to_string();
            for k in ["account", "group"] {
                if let Some(v) = a[k].as_str() {
                    s.push(' ');
                    s.push_str(v);
                }
            }
            s
        })
        .collect()
}

#[test]
fn shipped_example_shows_every_rung_of_the_ladder() {
    let r = worknet();
    let (code, plan) = r.plan_json("roster.yaml");
    assert_eq!(code, 1, "unresolved partners make plan exit 1");
    let got: BTreeMap<String, (String, Value, Value, Value)> = plan["resolutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["partner"].as_str().unwrap().to_string(),
                (
                    x["outcome"].as_str().unwrap().to_string(),
                    x["via"].clone(),
                    x.get("account").cloned().unwrap_or(Value::Null),
                    x.get("candidates").cloned().unwrap_or(Value::Null),
                ),
            )
        })
        .collect();
    let want =
        |o: &str, via: Value, account: Value, cands: Value| (o.to_string(), via, account, cands);
    use serde_json::json;
    let expected: BTreeMap<String, _> = [
        (
            "mandy.mccray@example.com",
            want("matched", json!("pinned"), json!("MMcCray"), Value::Null),
        ),
        (
            "ashley.wrigley@example.com",
            want("matched", json!("email"), json!("AWrigley"), Value::Null),
        ),
        (
            "jordan.jones@example.org",
            want("create", Value::Null, json!("JJones2"), Value::Null),
        ),
        (
            "jose.nunez@example.org",
            want("create", Value::Null, json!("JNunezONeil"), Value::Null),
        ),
        (
            "priya.raman@example.net",
            want(
                "reactivate",
                json!("inactive_email"),
                json!("PRaman"),
                Value::Null,
            ),
        ),
        (
            "dana.whitfield@example.org",
            want(
                "needs_confirmation",
                json!("email"),
                Value::Null,
                json!(["DWhitfield"]),
            ),
        ),
        (
            "marcus.lee@example.org",
            want(
                "needs_confirmation",
                json!("name_dob"),
                Value::Null,
                json!(["MLee"]),
            ),
        ),
        (
            "rosa.delgado@example.org",
            want(
                "needs_confirmation",
                json!("inactive_name_dob"),
                Value::Null,
                json!(["RDelgado"]),
            ),
        ),
        (
            "sam.patel@example.org",
            want(
                "ambiguous",
                json!("name_dob"),
                Value::Null,
                json!(["SPatel", "SPatel2"]),
            ),
        ),
        (
            "tom.becker@example.org",
            want("conflict", json!("email"), Value::Null, json!(["TBecker"])),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, expected);
    // Unresolved first.
    let outcomes: Vec<&str> = plan["resolutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        &outcomes[..5],
        [
            "needs_confirmation",
            "needs_confirmation",
            "needs_confirmation",
            "ambiguous",
            "conflict"
        ]
    );
    let dana = &plan["resolutions"][0];
    assert_eq!(dana["differs"], json!(["last_name", "birth_date"]));
    assert_eq!(
        ops(&plan),
        [
            "create_group Lakeland Career Services",
            "create_account JJones2",
            "create_account JNunezONeil",
            "reactivate_account PRaman",
            "add_membership JJones2 Apprenticeship Illinois - ABC Location",
            "add_membership JJones2 Lakeland Career Services",
            "add_membership PRaman Lakeland Career Services",
            "add_membership JNunezONeil Sangamon County Workforce Agency",
            "remove_membership OStafford Sangamon County Workforce Agency",
        ]
    );
    assert_eq!(plan["summary"]["unresolved"], 5);
    assert_eq!(plan["summary"]["add_memberships"], 4);
    let codes: Vec<&str> = plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["profile-drift", "unmanaged-group"]);
    // Candidates of unresolved partners are never touched: DWhitfield, MLee… keep their groups.
    assert!(
        !ops(&plan)
            .iter()
            .any(|o| o.contains("DWhitfield") || o.contains("SPatel"))
    );
    // Unresolved plans are refused.
    let out = r.cmd(&["apply", "--yes", "--store", DB, "roster.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("5 unresolved partner(s)"),
        "{}",
        out.stderr
    );
}

#[test]
fn apply_then_apply_again_changes_nothing() {
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    // The example's extra partners resolve cleanly on an empty store.
    let out = r.cmd(&["plan", "--store", DB, "--detailed-exitcode"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        !r.path().join("store.db").exists(),
        "plan must not create the store"
    );
    let (_, plan) = r.plan_json("roster.yaml");
    let actions = plan["actions"].as_array().unwrap().len();
    let applied = r.ok(&["apply", "--yes", "--store", DB]);
    let msg =
        format!("Applied {actions} actions to sqlite:store.db; it is now at revision {actions}.");
    assert!(applied.stdout.contains(&msg), "{}", applied.stdout);
    let rev = r.revision();
    let again = r.ok(&["apply", "--yes", "--store", DB]);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    assert_eq!(r.revision(), rev);
    assert_eq!(
        r.cmd(&["plan", "--store", DB, "--detailed-exitcode"]).code,
        0
    );
}

#[test]
fn printed_plans_hide_personal_data_and_saved_plans_keep_it() {
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    for format in ["human", "json", "markdown"] {
        let out = r.ok(&["plan", "--store", DB, "--format", format]);
        for secret in ["1972-09-01", "2178529634", "217-852-9634"] {
            assert!(!out.stdout.contains(secret), "{format} shows {secret}");
        }
    }
    let shown = r.ok(&["plan", "--store", DB, "--format", "json", "--show-pii"]);
    assert!(shown.stdout.contains("1972-09-01") && shown.stdout.contains("2178529634"));
    r.ok(&["plan", "--store", DB, "-o", "plan.json"]);
    let saved = std::fs::read_to_string(r.path().join("plan.json")).unwrap();
    assert!(saved.contains("1972-09-01"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(r.path().join("plan.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A printed plan cannot create accounts: it lacks their personal data.
    let printed = r.ok(&["plan", "--store", DB, "--format", "json"]);
    let r = r.file("printed.json", printed.stdout);
    let out = r.cmd(&["apply", "--yes", "--store", DB, "printed.json"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("printed without personal data"),
        "{}",
        out.stderr
    );
    // The saved one can.
    r.ok(&["apply", "--yes", "--store", DB, "plan.json"]);
    let birth: String = rusqlite::Connection::open(r.path().join("store.db"))
        .unwrap()
        .query_row(
            "SELECT birth_date FROM accounts WHERE user_name = 'MMcCray'",
            [],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(birth, "1972-09-01");
}

#[test]
fn stale_plans_are_refused() {
    let r = worknet().file(
        "small.yaml",
        "version: 1\ngroups:\n  - name: New Group\n    members: []\n",
    );
    r.ok(&["plan", "--store", DB, "small.yaml", "-o", "plan.json"]);
    let rev = r.revision();
    // Someone else applies first.
    let r = r.file("other.yaml", "version: 1\ngroups:\n  - name: Other Group\n");
    r.ok(&["apply", "--yes", "--store", DB, "other.yaml"]);
    let out = r.cmd(&["apply", "--yes", "--store", DB, "plan.json"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("stale plan: the store changed since this plan was made; run plan again"),
        "{}",
        out.stderr
    );
    assert_eq!(r.revision(), rev + 1);
}

#[test]
fn plans_for_another_store_and_broken_plan_files_are_refused() {
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    r.ok(&["plan", "--store", DB, "-o", "plan.json"]);
    let out = r.cmd(&["apply", "--yes", "--store", "sqlite:other.db", "plan.json"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("made for store sqlite:store.db, not sqlite:other.db"),
        "{}",
        out.stderr
    );
    let r = r.file("bad.json", "{\"format_version\": 1,\n \"store\": 3}");
    let out = r.cmd(&["apply", "--yes", "--store", DB, "bad.json"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("bad.json:2:"), "{}", out.stderr);
    assert!(out.stderr.contains("not a roster plan"), "{}", out.stderr);
    // Hand-edited text is printed safely.
    let saved = std::fs::read_to_string(r.path().join("plan.json")).unwrap();
    let mut edited: Value = serde_json::from_str(&saved).unwrap();
    edited["roster_digest"] = "sha256:ééééééééééééééé".into();
    let r = r.file("edited.json", edited.to_string());
    let out = r.cmd(&[
        "apply",
        "--yes",
        "--store",
        "sqlite:other.db",
        "edited.json",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.contains("roster sha256:éééééééééééé"),
        "{}",
        out.stdout
    );
    // A plan from a future roster.
    let saved = std::fs::read_to_string(r.path().join("plan.json")).unwrap();
    let r = r.file(
        "v2.json",
        saved.replacen("\"format_version\": 1", "\"format_version\": 2", 1),
    );
    let out = r.cmd(&["apply", "--yes", "--store", DB, "v2.json"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("unsupported plan format_version 2"),
        "{}",
        out.stderr
    );
    assert!(!r.path().join("store.db").exists());
}

#[test]
fn removals_beyond_max_removals_need_a_flag() {
    let members = "      - a@example.com\n      - b@example.com\n      - c@example.com\n      - d@example.com\n";
    let people: String = ["a", "b", "c", "d"]
        .iter()
        .map(|p| format!("  - email: {p}@example.com\n    first_name: {p}\n    last_name: Person\n    birth_date: 1990-01-01\n    phone: \"217-555-0100\"\n    zip: \"62701\"\n"))
        .collect();
    let full =
        format!("version: 1\ngroups:\n  - name: G\n    members:\n{members}partners:\n{people}");
    let empty = format!("version: 1\ngroups:\n  - name: G\n    members: []\npartners:\n{people}");
    let r = roster().file("full.yaml", full).file("empty.yaml", empty);
    r.ok(&["apply", "--yes", "--store", DB, "full.yaml"]);
    let rev = r.revision();
    let (_, plan) = r.plan_json("empty.yaml");
    assert_eq!(plan["removal_limit"], 1, "25% of 4 memberships");
    let codes: Vec<&str> = plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"mass-removal"), "{codes:?}");
    let out = r.cmd(&["apply", "--yes", "--store", DB, "empty.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("removes 4 memberships and grants, more than max_removals allows (1)"),
        "{}",
        out.stderr
    );
    assert_eq!(r.revision(), rev);
    r.ok(&[
        "apply",
        "--yes",
        "--store",
        DB,
        "empty.yaml",
        "--allow-mass-removal",
    ]);
    assert_eq!(r.revision(), rev + 4);
}

#[test]
fn an_apply_that_fails_half_way_changes_nothing() {
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    r.ok(&["apply", "--yes", "--store", DB, "--onboarding", "invite"]);
    let r = r.file(
        "more.yaml",
        "version: 1\ngroups:\n  - name: Brand New\n    members: [mandy.mccray@example.com]\npartners:\n  - email: mandy.mccray@example.com\n    first_name: Mandy\n    last_name: McCray\n    account: MMcCray\n    birth_date: 1972-09-01\n    phone: \"217-852-9634\"\n    zip: \"62568\"\n",
    );
    r.ok(&["plan", "--store", DB, "more.yaml", "-o", "plan.json"]);
    let mut plan: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("plan.json")).unwrap())
            .unwrap();
    // The last action names an account that does not exist.
    plan["actions"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "op": "add_membership", "account": "Nobody", "group": "Brand New", "user_manager": false
        }));
    let r = r.file("plan.json", serde_json::to_string(&plan).unwrap());
    let rev = r.revision();
    let out = r.cmd(&["apply", "--yes", "--store", DB, "plan.json"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("account `Nobody` does not exist"),
        "{}",
        out.stderr
    );
    assert_eq!(r.revision(), rev);
    // The group created earlier in the same apply is not there either.
    let (_, again) = r.plan_json("more.yaml");
    assert_eq!(ops(&again)[0], "create_group Brand New");
    r.ok(&["log", "--store", DB, "--verify"]);
}

#[test]
fn password_onboarding_writes_passwords_only_to_the_credentials_file() {
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    let out = r.cmd(&["apply", "--yes", "--store", DB, "--onboarding", "password"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("needs --credentials-file"),
        "{}",
        out.stderr
    );
    let out = r.ok(&[
        "apply",
        "--yes",
        "--store",
        DB,
        "--onboarding",
        "password",
        "--credentials-file",
        "creds.csv",
    ]);
    let creds = std::fs::read_to_string(r.path().join("creds.csv")).unwrap();
    let lines: Vec<&str> = creds.lines().collect();
    assert_eq!(lines[0], "account,email,password");
    assert_eq!(lines.len(), 11, "{creds}");
    let passwords: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.rsplit(',').next().unwrap())
        .collect();
    let db = std::fs::read(r.path().join("store.db")).unwrap();
    let wal = std::fs::read(r.path().join("store.db-wal")).unwrap_or_default();
    let log = r.ok(&["log", "--store", DB, "--format", "json"]).stdout;
    for pw in &passwords {
        assert!(pw.len() >= 20);
        assert!(!out.stdout.contains(pw) && !out.stderr.contains(pw));
        assert!(!log.contains(pw));
        let needle = pw.as_bytes();
        assert!(
            !db.windows(needle.len()).any(|w| w == needle),
            "password in the database file"
        );
        assert!(
            !wal.windows(needle.len()).any(|w| w == needle),
            "password in the WAL"
        );
    }
    let hash: String = rusqlite::Connection::open(r.path().join("store.db"))
        .unwrap()
        .query_row(
            "SELECT password_hash FROM accounts WHERE user_name = 'MMcCray'",
            [],
            |x| x.get(0),
        )
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(r.path().join("creds.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwritten.
    let r = r.file("two.yaml", "version: 1\npartners:\n  - email: new@example.com\n    first_name: New\n    last_name: Person\n    birth_date: 2000-01-01\n    phone: \"217-555-0100\"\n    zip: \"62701\"\n");
    let out = r.cmd(&[
        "apply",
        "--yes",
        "--store",
        DB,
        "two.yaml",
        "--onboarding",
        "password",
        "--credentials-file",
        "creds.csv",
    ]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("creds.csv: already exists"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(r.path().join("creds.csv")).unwrap(),
        creds
    );
}

#[test]
fn the_audit_chain_detects_tampering() {
    let r = worknet();
    let ok = r.ok(&["log", "--store", DB, "--verify"]);
    assert!(
        ok.stdout.contains("intact (22 rows, revision 22)"),
        "{}",
        ok.stdout
    );
    let log: Value =
        serde_json::from_str(&r.ok(&["log", "--store", DB, "--format", "json"]).stdout).unwrap();
    assert_eq!(log[0]["actor"], "test-admin");
    assert!(
        !log.to_string().contains("1972-09-01"),
        "birth dates are masked in the log"
    );
    r.sql("UPDATE audit SET actor = 'mallory' WHERE seq = 5");
    let out = r.cmd(&["log", "--store", DB, "--verify"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("audit row 5: its content does not match its hash"),
        "{}",
        out.stderr
    );
    r.sql("UPDATE audit SET actor = 'test-admin' WHERE seq = 5");
    r.ok(&["log", "--store", DB, "--verify"]);
    r.sql("DELETE FROM audit WHERE seq = 7");
    let out = r.cmd(&["log", "--store", DB, "--verify"]);
    assert!(
        out.stderr
            .contains("audit row 8: does not follow the row before it"),
        "{}",
        out.stderr
    );
    r.sql("DELETE FROM audit WHERE seq >= 7");
    let out = r.cmd(&["log", "--store", DB, "--verify"]);
    assert!(
        out.stderr
            .contains("ends at revision 6 but the store is at revision 22"),
        "{}",
        out.stderr
    );
}

#[test]
fn log_since_filters_and_bad_times_are_errors() {
    let r = worknet();
    let all = r.ok(&["log", "--store", DB]).stdout.lines().count();
    assert_eq!(all, 22);
    assert_eq!(
        r.ok(&["log", "--store", DB, "--since", "1h"])
            .stdout
            .lines()
            .count(),
        22
    );
    let future = r.ok(&["log", "--store", DB, "--since", "2999-01-01"]);
    assert!(future.stdout.contains("no rows in that time"));
    let out = r.cmd(&["log", "--store", DB, "--since", "last tuesday"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("is not a date"), "{}", out.stderr);
}

#[test]
fn invitations_list_pending_and_due_ones() {
    let r = worknet();
    let out = r.ok(&["invitations", "--store", DB]);
    // Inactive accounts are not waiting for anything.
    assert!(
        out.stdout
            .contains("9 invitations pending, 0 due a reminder"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("PRaman"));
    let due = r.ok(&[
        "invitations",
        "--store",
        DB,
        "--older-than",
        "0s",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&due.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|i| i["reminder_due"] == true)
    );
    // Each queued invitation carries the token whose digest the account keeps;
    // deactivated accounts have none queued.
    let c = rusqlite::Connection::open(r.path().join("store.db")).unwrap();
    let mut q = c
        .prepare("SELECT o.token, a.activation_digest, a.active FROM outbox o JOIN accounts a ON a.id = o.account_id")
        .unwrap();
    let rows: Vec<(String, String, bool)> = q
        .query_map([], |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 9);
    for (token, digest, active) in rows {
        assert!(active);
        let mut h = String::from("sha256:");
        for b in <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()) {
            h.push_str(&format!("{b:02x}"));
        }
        assert_eq!(h, digest);
    }
    let bad = r.cmd(&["invitations", "--store", DB, "--older-than", "soon"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("not an age"), "{}", bad.stderr);
}

#[test]
fn a_second_apply_waits_for_the_lock_or_fails_cleanly() {
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    r.ok(&["apply", "--yes", "--store", DB, "roster.yaml"]);
    let r = r.file("g.yaml", "version: 1\ngroups:\n  - name: Extra\n");
    let conn = rusqlite::Connection::open(r.path().join("store.db")).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let rev = r.revision();
    let out = r.cmd_env(
        &["apply", "--yes", "--store", DB, "g.yaml"],
        &[("ROSTER_LOCK_TIMEOUT", "0.3")],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("is locked by another apply"),
        "{}",
        out.stderr
    );
    // Released while the next one waits: it goes through.
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        conn.execute_batch("COMMIT").unwrap();
    });
    r.ok(&["apply", "--yes", "--store", DB, "g.yaml"]);
    release.join().unwrap();
    assert_eq!(r.revision(), rev + 1);
}

#[test]
fn stores_that_cannot_be_used_are_named() {
    let r = roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml")
        .file("notes.txt", "this is not a database, just some text that is long enough to have a header of its own here");
    let cases: [(&str, &str); 5] = [
        ("sqlite:", "store sqlite:: give the store a file"),
        ("sqlite::memory:", "give the store a file"),
        (
            "postgres://localhost/roster",
            "unsupported store URL `postgres://localhost/roster`",
        ),
        (
            "sqlite:notes.txt",
            "store sqlite:notes.txt: this file is not a SQLite database",
        ),
        ("mysql:x", "unsupported store URL"),
    ];
    for (url, msg) in cases {
        let out = r.cmd(&["plan", "--store", url]);
        assert_eq!(out.code, 1, "{url}");
        assert!(out.stderr.contains(msg), "{url}: {}", out.stderr);
    }
    // Another program's SQLite file is left alone.
    let c = rusqlite::Connection::open(r.path().join("other.db")).unwrap();
    c.execute_batch("CREATE TABLE t (x)").unwrap();
    for verb in ["plan", "apply"] {
        let args: &[&str] = if verb == "apply" {
            &["apply", "--yes", "--store", "sqlite:other.db"]
        } else {
            &["plan", "--store", "sqlite:other.db"]
        };
        let out = r.cmd(args);
        assert_eq!(out.code, 1, "{verb}");
        assert!(
            out.stderr.contains("not a roster store"),
            "{verb}: {}",
            out.stderr
        );
    }
    let out = r.cmd(&["apply", "--yes", "--store", "sqlite:", "roster.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let out = r.cmd_env(
        &["apply", "--yes", "--store", DB],
        &[("ROSTER_LOCK_TIMEOUT", "NaN")],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("is not a number of seconds"),
        "{}",
        out.stderr
    );
    // Not on a terminal and no --yes: nothing is applied.
    let out = r.cmd(&["apply", "--store", DB]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("pass --yes"), "{}", out.stderr);
    assert!(!r.path().join("store.db").exists());
    // A roster with errors is not planned.
    let r = r.file("bad.yaml", "version: 1\npartners:\n  - email: nope\n");
    let out = r.cmd(&["plan", "--store", DB, "bad.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("cannot plan: the roster has"),
        "{}",
        out.stderr
    );
}

#[test]
fn inactive_partners_orphans_and_profiles() {
    let people = |phone: &str, bo: &str| {
        format!(
            "partners:\n  - email: a@example.com\n    first_name: Ann\n    last_name: Lee\n    birth_date: 1990-01-01\n    phone: \"{phone}\"\n    zip: \"62701\"\n  - email: b@example.com\n    first_name: Bo\n    last_name: Lee\n    birth_date: 1991-01-01\n    phone: \"217-555-0101\"\n    zip: \"62701\"\n{bo}"
        )
    };
    let start = format!(
        "version: 1\ngroups:\n  - name: G\n    members: [a@example.com, b@example.com]\n  - name: H\n    members: [b@example.com]\n{}",
        people("217-555-0100", "")
    );
    let r = roster().file("start.yaml", start);
    r.ok(&["apply", "--yes", "--store", DB, "start.yaml"]);
    // Ann leaves G, gets a new phone, and the policy pushes profiles and deactivates orphans.
    let next = format!(
        "version: 1\ngroups:\n  - name: G\n    members: [b@example.com]\n  - name: H\n    members: [b@example.com]\n{}policy:\n  deactivate_orphans: true\n  manage_profiles: true\n  max_removals: 5\n",
        people("217-555-0199", "")
    );
    let r = r.file("next.yaml", next);
    let (_, plan) = r.plan_json("next.yaml");
    assert_eq!(
        ops(&plan),
        ["update_profile ALee", "remove_membership ALee G"],
        "Ann is still a partner, so not an orphan"
    );
    assert_eq!(plan["actions"][0]["fields"], serde_json::json!(["phone"]));
    // Drop Ann from the roster: now she is an orphan.
    let gone = "version: 1\ngroups:\n  - name: G\n    members: [b@example.com]\npartners:\n  - email: b@example.com\n    first_name: Bo\n    last_name: Lee\n    birth_date: 1991-01-01\n    phone: \"217-555-0101\"\n    zip: \"62701\"\npolicy:\n  deactivate_orphans: true\n  max_removals: 5\n";
    let r = r.file("gone.yaml", gone);
    let (_, plan) = r.plan_json("gone.yaml");
    assert_eq!(
        ops(&plan),
        ["remove_membership ALee G", "deactivate_account ALee"]
    );
    // Bo is `active: false`: deactivated, and back again later.
    let off = format!(
        "version: 1\ngroups:\n  - name: G\n    members: [a@example.com, b@example.com]\n  - name: H\n    members: [b@example.com]\n{}",
        people("217-555-0100", "    active: false\n")
    );
    let r = r.file("off.yaml", off);
    let (_, plan) = r.plan_json("off.yaml");
    assert_eq!(ops(&plan), ["deactivate_account BLee"]);
    r.ok(&["apply", "--yes", "--store", DB, "off.yaml"]);
    let (_, plan) = r.plan_json("start.yaml");
    assert_eq!(ops(&plan), ["reactivate_account BLee"]);
    assert_eq!(plan["resolutions"][1]["via"], "inactive_email");
}

#[test]
fn unmanaged_groups_are_warned_about_or_emptied() {
    let r = roster().file(
        "a.yaml",
        "version: 1\ngroups:\n  - name: Old\n    members: [a@example.com]\npartners:\n  - email: a@example.com\n    first_name: Ann\n    last_name: Lee\n    birth_date: 1990-01-01\n    phone: \"217-555-0100\"\n    zip: \"62701\"\n",
    );
    r.ok(&["apply", "--yes", "--store", DB, "a.yaml"]);
    let base = "version: 1\ngroups:\n  - name: New\n    members: [a@example.com]\npartners:\n  - email: a@example.com\n    first_name: Ann\n    last_name: Lee\n    birth_date: 1990-01-01\n    phone: \"217-555-0100\"\n    zip: \"62701\"\n";
    let r = r
        .file("ignore.yaml", base)
        .file(
            "warn.yaml",
            format!("{base}policy:\n  unmanaged_groups: warn\n"),
        )
        .file(
            "remove.yaml",
            format!("{base}policy:\n  unmanaged_groups: remove\n  max_removals: 1\n"),
        );
    let (_, p) = r.plan_json("ignore.yaml");
    assert_eq!(ops(&p), ["create_group New", "add_membership ALee New"]);
    let (_, p) = r.plan_json("warn.yaml");
    assert_eq!(p["warnings"][0]["code"], "unmanaged-group");
    let (_, p) = r.plan_json("remove.yaml");
    assert_eq!(
        ops(&p),
        [
            "create_group New",
            "add_membership ALee New",
            "remove_membership ALee Old"
        ]
    );
}

#[test]
fn markdown_plans_fold_groups() {
    let r = worknet();
    let out = r.cmd(&["plan", "--store", DB, "--format", "markdown"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.starts_with("### roster plan"), "{}", out.stdout);
    assert!(
        out.stdout.contains("> [!WARNING]\n> 5 partners unresolved"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "<details><summary>Group Sangamon County Workforce Agency (+1 −1 ~0)</summary>"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("- OStafford"));
}

/// A deterministic store of `n` partners over a few groups, some inactive,
/// some user managers.
fn generated(n: usize) -> String {
    let mut groups = String::from("groups:\n");
    for g in 0..4 {
        groups.push_str(&format!(
            "  - name: Group {g}\n    type: {}\n    members:{}\n",
            if g % 2 == 0 {
                "organization"
            } else {
                "project"
            },
            if g >= n { " []" } else { "" }
        ));
        for i in (g..n).step_by(3) {
            if i % 5 == 0 && i % 7 != 3 && i % 11 != 1 {
                groups.push_str(&format!(
                    "      - email: p{i}@example.org\n        user_manager: true\n"
                ));
            } else {
                groups.push_str(&format!("      - p{i}@example.org\n"));
            }
        }
    }
    let mut partners = String::from("partners:\n");
    let first = ["Ann", "José", "Li", "Ola"];
    let last = ["Lee", "Núñez", "O'Neil", "Smith"];
    for i in 0..n {
        partners.push_str(&format!(
            "  - email: p{i}@example.org\n    first_name: {}\n    last_name: \"{}\"\n    birth_date: 19{:02}-0{}-1{}\n    phone: \"217-555-{:04}\"\n    zip: \"6{:04}\"\n{}{}",
            first[i % 4],
            last[(i / 4) % 4],
            50 + i % 50,
            1 + i % 9,
            i % 10,
            i,
            i,
            if i % 7 == 3 { "    active: false\n" } else { "" },
            if i % 11 == 1 { "    extension: \"42\"\n    role: individual\n" } else { "" },
        ));
    }
    format!("version: 1\n{groups}{partners}")
}

#[test]
fn export_then_plan_shows_no_changes() {
    for n in [1, 17, 120] {
        let r = roster().file("gen.yaml", generated(n));
        r.ok(&["apply", "--yes", "--store", DB, "gen.yaml"]);
        r.ok(&["export", "--store", DB, "-o", "export.yaml"]);
        let out = r.cmd(&["plan", "--store", DB, "export.yaml", "--detailed-exitcode"]);
        assert_eq!(out.code, 0, "n={n}\n{}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("No changes"), "{}", out.stdout);
        // The export is a roster: applied to an empty store it gives the same store back.
        let first = std::fs::read_to_string(r.path().join("export.yaml")).unwrap();
        r.ok(&["apply", "--yes", "--store", "sqlite:copy.db", "export.yaml"]);
        r.ok(&["export", "--store", "sqlite:copy.db", "-o", "again.yaml"]);
        assert_eq!(
            std::fs::read_to_string(r.path().join("again.yaml")).unwrap(),
            first,
            "n={n}"
        );
    }
}

#[test]
fn export_on_stdout_leaves_out_personal_data() {
    let r = worknet();
    let out = r.ok(&["export", "--store", DB]);
    assert!(out.stdout.contains("account: MMcCray"));
    assert!(out.stdout.contains("active: false"));
    assert!(!out.stdout.contains("1972-09-01") && !out.stdout.contains("2178529634"));
    assert!(out.stderr.contains("left out"), "{}", out.stderr);
    let all = r.ok(&["export", "--store", DB, "--show-pii"]);
    assert!(all.stdout.contains("1972-09-01"));
}

#[test]
fn diff_shows_live_against_desired_with_personal_data_masked() {
    let r = worknet();
    let out = r.ok(&["diff", "--store", DB, "roster.yaml"]);
    assert!(
        out.stdout
            .starts_with("--- store sqlite:store.db\n+++ roster\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("-      - olivia.stafford@example.com"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("+      - jose.nunez@example.org"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("1972-09-01") && !out.stdout.contains("2178529634"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("(hidden"), "{}", out.stdout);
}

#[test]
fn plan_schema_is_checked_in_current_and_plans_follow_it() {
    let r = worknet();
    let out = r.ok(&["schema", "plan"]);
    let committed = std::fs::read_to_string(repo("schemas/plan.schema.json")).unwrap();
    assert!(
        out.stdout == committed,
        "schemas/plan.schema.json is out of date: run `cargo run -- schema plan > schemas/plan.schema.json`"
    );
    let schema: Value = serde_json::from_str(&committed).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let (_, printed) = r.plan_json("roster.yaml");
    r.cmd(&["plan", "--store", DB, "roster.yaml", "-o", "saved.json"]);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("saved.json")).unwrap())
            .unwrap();
    for plan in [&printed, &saved] {
        let errors: Vec<String> = validator.iter_errors(plan).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
    // The fields SPEC §7 fixes.
    for key in [
        "format_version",
        "store",
        "roster_digest",
        "summary",
        "resolutions",
        "actions",
        "warnings",
        "violations",
    ] {
        assert!(printed.get(key).is_some(), "{key}");
    }
    assert_eq!(printed["format_version"], 1);
    assert!(
        printed["roster_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(printed["store"]["url"], DB);
    // `via` is always present: null for new accounts.
    let jose = printed["resolutions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["partner"] == "jose.nunez@example.org")
        .unwrap();
    assert_eq!(jose.get("via"), Some(&Value::Null));
}

#[test]
fn files_that_cannot_be_written_and_newer_stores_are_named() {
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    let out = r.cmd(&["plan", "--store", DB, "-o", "missing/plan.json"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("missing/plan.json: cannot write the plan"),
        "{}",
        out.stderr
    );
    let out = r.cmd(&[
        "apply",
        "--yes",
        "--store",
        DB,
        "--onboarding",
        "password",
        "--credentials-file",
        "missing/creds.csv",
    ]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("missing/creds.csv:"), "{}", out.stderr);
    assert!(!r.path().join("store.db").exists(), "nothing applied");
    r.ok(&["apply", "--yes", "--store", DB]);
    let out = r.cmd(&["export", "--store", DB, "-o", "missing/export.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("missing/export.yaml: cannot write"),
        "{}",
        out.stderr
    );
    r.sql("PRAGMA user_version = 99");
    for args in [
        &["plan", "--store", DB][..],
        &["apply", "--yes", "--store", DB, "roster.yaml"][..],
        &["log", "--store", DB][..],
    ] {
        let out = r.cmd(args);
        assert_eq!(out.code, 1, "{args:?}");
        assert!(
            out.stderr
                .contains("schema version 99, newer than this roster understands"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn planning_never_writes_to_the_store() {
    let r = worknet();
    // Let SQLite fold the WAL into the file, so the file alone is the store.
    r.sql("PRAGMA wal_checkpoint(TRUNCATE)");
    let before = std::fs::read(r.path().join("store.db")).unwrap();
    for args in [
        &["plan", "--store", DB, "roster.yaml"][..],
        &["diff", "--store", DB, "roster.yaml"][..],
        &["export", "--store", DB][..],
        &["log", "--store", DB, "--verify"][..],
        &["invitations", "--store", DB][..],
    ] {
        r.cmd(args);
    }
    assert!(
        std::fs::read(r.path().join("store.db")).unwrap() == before,
        "the store file changed"
    );
    let wal = std::fs::read(r.path().join("store.db-wal")).unwrap_or_default();
    assert!(wal.is_empty(), "readers wrote to the WAL");
}

/// Run roster on a pseudo-terminal (util-linux `script`), answering `answer`.
fn on_terminal(r: &Roster, args: &str, answer: &str) -> String {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_roster"));
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(r.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn apply_asks_on_a_terminal_and_only_yes_goes_on() {
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    let out = on_terminal(&r, "apply --store sqlite:store.db", "y\n");
    assert!(
        out.contains("Apply this plan? Only 'yes' is accepted: Apply cancelled; nothing changed."),
        "{out}"
    );
    assert!(!r.path().join("store.db").exists());
    let out = on_terminal(&r, "apply --store sqlite:store.db", "yes\n");
    assert!(
        out.contains("Applied 26 actions to sqlite:store.db"),
        "{out}"
    );
}
