//! `plan`, `apply`, `export`, `diff`, `log` and `invitations` against a real
//! store: each story runs on a SQLite file in a temporary directory and on a
//! fresh database of a PostgreSQL cluster the tests start (see `pg.rs`).

use super::*;
use std::collections::BTreeMap;

/// A directory holding a store of `backend` seeded with `yaml` (as
/// `seed.yaml`) through `roster apply`, and the store's URL.
pub fn seeded_with(backend: Backend, yaml: &str) -> (Roster, String) {
    let r = roster().file("seed.yaml", yaml);
    let db = super::serve::store_url(backend);
    super::serve::ok_in(
        r.path(),
        &[
            "apply",
            "--yes",
            "--store",
            &db,
            "--credentials-file",
            "creds.csv",
            "seed.yaml",
        ],
    );
    (r, db)
}

/// Where a test's store lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn roster(self) -> Roster {
        let mut r = roster();
        r.db = r.store(self, "store");
        r
    }
}

/// A store: the URL to pass and the URL as roster shows it (no password).
pub struct Db {
    backend: Backend,
    url: String,
    shown: String,
}

impl Db {
    pub fn sqlite(name: &str) -> Db {
        let url = format!("sqlite:{name}.db");
        Db {
            backend: Backend::Sqlite,
            shown: url.clone(),
            url,
        }
    }
}

/// A connection to a test's store, to look inside and to tamper.
enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(::postgres::Client),
}

impl Conn {
    fn batch(&mut self, sql: &str) {
        match self {
            Conn::Sqlite(c) => c.execute_batch(sql).unwrap(),
            Conn::Postgres(c) => c.batch_execute(sql).unwrap(),
        }
    }

    /// The first column of each row, as text (NULL as "").
    fn column(&mut self, sql: &str) -> Vec<String> {
        match self {
            Conn::Sqlite(c) => {
                let mut q = c.prepare(sql).unwrap();
                q.query_map([], |r| {
                    Ok(match r.get_ref(0)? {
                        rusqlite::types::ValueRef::Null => String::new(),
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        v => v.as_str().unwrap().to_string(),
                    })
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
            Conn::Postgres(c) => c
                .simple_query(sql)
                .unwrap()
                .into_iter()
                .filter_map(|m| match m {
                    ::postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).unwrap_or_default().to_string())
                    }
                    _ => None,
                })
                .collect(),
        }
    }
}

impl Roster {
    fn copy(self, example: &str, to: &str) -> Self {
        let text = std::fs::read_to_string(repo(example)).unwrap();
        self.file(to, text)
    }

    /// A new store of this backend (`name` names the SQLite file).
    fn store(&self, backend: Backend, name: &str) -> Db {
        match backend {
            Backend::Sqlite => Db::sqlite(name),
            Backend::Postgres => {
                let (url, shown) = super::pg::database();
                Db {
                    backend,
                    url,
                    shown,
                }
            }
        }
    }

    /// The store URL to pass.
    fn db(&self) -> &str {
        &self.db.url
    }

    /// The store URL as roster prints and records it.
    fn shown(&self) -> &str {
        &self.db.shown
    }

    fn backend(&self) -> Backend {
        self.db.backend
    }

    fn conn(&self) -> Conn {
        match self.db.backend {
            Backend::Sqlite => {
                Conn::Sqlite(rusqlite::Connection::open(self.path().join("store.db")).unwrap())
            }
            Backend::Postgres => Conn::Postgres(
                ::postgres::Client::connect(&self.db.url, ::postgres::NoTls).unwrap(),
            ),
        }
    }

    /// Whether the store has been created (planning never creates it).
    fn store_exists(&self) -> bool {
        match self.db.backend {
            Backend::Sqlite => self.path().join("store.db").exists(),
            Backend::Postgres => {
                self.conn()
                    .column("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
                    != ["0"]
            }
        }
    }

    /// Run with these arguments (replacing earlier ones).
    fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_env(args, &[])
    }

    /// roster in this directory, with `env` over a clean environment.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ROSTER_FORMAT")
            .env_remove("ROSTER_STORE")
            .env_remove("ROSTER_SHOW_PII")
            .env_remove("PGPASSWORD")
            .env("NO_COLOR", "1")
            .env("ROSTER_ACTOR", "test-admin")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn cmd_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = self.command(args, env).output().expect("run roster");
        Self::output(args, out)
    }

    /// A finished run, checked to show no password.
    pub(super) fn output(args: &[&str], out: std::process::Output) -> Output {
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

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args);
        assert_eq!(out.code, 0, "{args:?}\n{}\n{}", out.stdout, out.stderr);
        out
    }

    /// `plan --detailed-exitcode` of `roster` shows no changes (`what`
    /// says which in a failure).
    fn plans_no_changes(&self, roster: &str, what: &str) {
        let args = ["plan", "--store", self.db(), roster, "--detailed-exitcode"];
        let out = self.cmd(&args);
        assert_eq!(out.code, 0, "{what}\n{}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("No changes"), "{what} {}", out.stdout);
    }

    fn plan_json(&self, roster: &str) -> (i32, Value) {
        let out = self.cmd(&["plan", "--store", self.db(), roster, "--format", "json"]);
        let v = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
        (out.code, v)
    }

    fn revision(&self) -> i64 {
        self.text("SELECT value FROM meta WHERE key = 'revision'")
            .parse()
            .unwrap()
    }

    fn sql(&self, sql: &str) {
        self.conn().batch(sql);
    }

    /// The one value this query returns, as text.
    fn text(&self, sql: &str) -> String {
        let mut col = self.conn().column(sql);
        assert_eq!(col.len(), 1, "{sql}: {col:?}");
        col.remove(0)
    }

    /// Make the store claim a schema version from the future.
    fn set_schema_version(&self, version: u32) {
        match self.db.backend {
            Backend::Sqlite => self.sql(&format!("PRAGMA user_version = {version}")),
            Backend::Postgres => self.sql(&format!(
                "UPDATE meta SET value = {version} WHERE key = 'schema_version'"
            )),
        }
    }

    /// The key that seals this store's plans, read as anyone who can open
    /// the store can.
    fn plan_key(&self) -> Vec<u8> {
        match self.conn() {
            Conn::Sqlite(c) => c
                .query_row("SELECT key FROM plan_keys WHERE id = 1", [], |r| r.get(0))
                .unwrap(),
            Conn::Postgres(mut c) => c
                .query_one("SELECT key FROM plan_keys WHERE id = 1", &[])
                .unwrap()
                .get(0),
        }
    }

    /// A plan edited by someone who holds the store's key, sealed again.
    fn reseal(&self, plan: Value) -> Value {
        let mut p: roster::plan::Plan = serde_json::from_value(plan).unwrap();
        roster::plan::seal::seal(&mut p, &self.plan_key());
        serde_json::to_value(p).unwrap()
    }

    /// Hold the store's write lock as another apply would, until the
    /// returned function is called.
    fn hold_write_lock(&self) -> Box<dyn FnOnce() + Send> {
        let mut conn = self.conn();
        match &mut conn {
            Conn::Sqlite(_) => conn.batch("BEGIN IMMEDIATE"),
            Conn::Postgres(_) => conn.batch(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({})",
                roster::store::sql::postgres::LOCK_KEY
            )),
        }
        Box::new(move || conn.batch("COMMIT"))
    }
}

/// The shipped example and the store it is planned against in the README.
fn worknet(b: Backend) -> Roster {
    let r = b
        .roster()
        .copy("examples/worknet-live/roster.yaml", "live.yaml")
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    r.ok(&["apply", "--yes", "--store", r.db(), "live.yaml"]);
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

fn shipped_example_shows_every_rung_of_the_ladder(b: Backend) {
    let r = worknet(b);
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
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "roster.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("5 unresolved partner(s)"),
        "{}",
        out.stderr
    );
}

fn apply_then_apply_again_changes_nothing(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    // The example's extra partners resolve cleanly on an empty store.
    let out = r.cmd(&["plan", "--store", r.db(), "--detailed-exitcode"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(!r.store_exists(), "plan must not create the store");
    let (_, plan) = r.plan_json("roster.yaml");
    let actions = plan["actions"].as_array().unwrap().len();
    let applied = r.ok(&["apply", "--yes", "--store", r.db()]);
    let msg = format!(
        "Applied {actions} actions to {}; it is now at revision {actions}.",
        r.shown()
    );
    assert!(applied.stdout.contains(&msg), "{}", applied.stdout);
    let rev = r.revision();
    let again = r.ok(&["apply", "--yes", "--store", r.db()]);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    assert_eq!(r.revision(), rev);
    assert_eq!(
        r.cmd(&["plan", "--store", r.db(), "--detailed-exitcode"])
            .code,
        0
    );
}

fn printed_plans_hide_personal_data_and_saved_plans_keep_it(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    for format in ["human", "json", "markdown"] {
        let out = r.ok(&["plan", "--store", r.db(), "--format", format]);
        for secret in ["1972-09-01", "2178529634", "217-852-9634"] {
            assert!(!out.stdout.contains(secret), "{format} shows {secret}");
        }
    }
    let shown = r.ok(&["plan", "--store", r.db(), "--format", "json", "--show-pii"]);
    assert!(shown.stdout.contains("1972-09-01") && shown.stdout.contains("2178529634"));
    r.ok(&["plan", "--store", r.db(), "-o", "plan.json"]);
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
    // A printed plan is not sealed (and lacks the personal data new
    // accounts need): only saved plans are applied.
    let printed = r.ok(&["plan", "--store", r.db(), "--format", "json"]);
    let r = r.file("printed.json", &printed.stdout);
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "printed.json"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("error: plan was altered after it was made\nhelp: it carries no seal"),
        "{}",
        out.stderr
    );
    // Resealed by someone who can open the store, it still lacks them.
    let v: Value = serde_json::from_str(&printed.stdout).unwrap();
    let v = r.reseal(v).to_string();
    let r = r.file("printed.json", v);
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "printed.json"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("printed without personal data"),
        "{}",
        out.stderr
    );
    // The saved one can.
    r.ok(&["apply", "--yes", "--store", r.db(), "plan.json"]);
    let birth = r.text("SELECT birth_date FROM accounts WHERE user_name = 'MMcCray'");
    assert_eq!(birth, "1972-09-01");
}

fn stale_plans_are_refused(b: Backend) {
    let r = worknet(b).file(
        "small.yaml",
        "version: 1\ngroups:\n  - name: New Group\n    members: []\n",
    );
    r.ok(&["plan", "--store", r.db(), "small.yaml", "-o", "plan.json"]);
    let rev = r.revision();
    // Someone else applies first.
    let r = r.file("other.yaml", "version: 1\ngroups:\n  - name: Other Group\n");
    r.ok(&["apply", "--yes", "--store", r.db(), "other.yaml"]);
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "plan.json"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("stale plan: the store changed since this plan was made; run plan again"),
        "{}",
        out.stderr
    );
    assert_eq!(r.revision(), rev + 1);
}

fn plans_for_another_store_and_broken_plan_files_are_refused(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    r.ok(&["plan", "--store", r.db(), "-o", "plan.json"]);
    let other = r.store(b, "other");
    let out = r.cmd(&["apply", "--yes", "--store", &other.url, "plan.json"]);
    assert_eq!(out.code, 1);
    let wrong = format!("made for store {}, not {}", r.shown(), other.shown);
    assert!(out.stderr.contains(&wrong), "{}", out.stderr);
    let r = r.file("bad.json", "{\"format_version\": 1,\n \"store\": 3}");
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "bad.json"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("bad.json:2:"), "{}", out.stderr);
    assert!(out.stderr.contains("not a roster plan"), "{}", out.stderr);
    // Hand-edited text is printed safely (by someone who can seal it).
    let saved = std::fs::read_to_string(r.path().join("plan.json")).unwrap();
    let mut edited: Value = serde_json::from_str(&saved).unwrap();
    edited["roster_digest"] = "sha256:ééééééééééééééé".into();
    edited["actions"] = serde_json::json!([]);
    let edited = r.reseal(edited).to_string();
    let r = r.file("edited.json", edited);
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "edited.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
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
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "v2.json"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("unsupported plan format_version 2"),
        "{}",
        out.stderr
    );
    assert_eq!(r.revision(), 0, "nothing applied");
}

fn removals_beyond_max_removals_need_a_flag(b: Backend) {
    let members = "      - a@example.com\n      - b@example.com\n      - c@example.com\n      - d@example.com\n";
    let people: String = ["a", "b", "c", "d"]
        .iter()
        .map(|p| format!("  - email: {p}@example.com\n    first_name: {p}\n    last_name: Person\n    birth_date: 1990-01-01\n    phone: \"217-555-0100\"\n    zip: \"62701\"\n"))
        .collect();
    let full =
        format!("version: 1\ngroups:\n  - name: G\n    members:\n{members}partners:\n{people}");
    let empty = format!("version: 1\ngroups:\n  - name: G\n    members: []\npartners:\n{people}");
    let r = b.roster().file("full.yaml", full).file("empty.yaml", empty);
    r.ok(&["apply", "--yes", "--store", r.db(), "full.yaml"]);
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
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "empty.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("removes 4 memberships, more than max_removals allows (1)"),
        "{}",
        out.stderr
    );
    assert_eq!(r.revision(), rev);
    r.ok(&[
        "apply",
        "--yes",
        "--store",
        r.db(),
        "empty.yaml",
        "--allow-mass-removal",
    ]);
    assert_eq!(r.revision(), rev + 4);
}

fn an_apply_that_fails_half_way_changes_nothing(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    r.ok(&[
        "apply",
        "--yes",
        "--store",
        r.db(),
        "--onboarding",
        "invite",
    ]);
    let r = r.file(
        "more.yaml",
        "version: 1\ngroups:\n  - name: Brand New\n    members: [mandy.mccray@example.com]\npartners:\n  - email: mandy.mccray@example.com\n    first_name: Mandy\n    last_name: McCray\n    account: MMcCray\n    birth_date: 1972-09-01\n    phone: \"217-852-9634\"\n    zip: \"62568\"\n",
    );
    r.ok(&["plan", "--store", r.db(), "more.yaml", "-o", "plan.json"]);
    let mut plan: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("plan.json")).unwrap())
            .unwrap();
    // The last action names an account that does not exist (sealed with
    // the store's key, as only someone who can open the store can).
    plan["actions"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "op": "add_membership", "account": "Nobody", "group": "Brand New", "user_manager": false
        }));
    let plan = r.reseal(plan);
    let r = r.file("plan.json", serde_json::to_string(&plan).unwrap());
    let rev = r.revision();
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "plan.json"]);
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
    r.ok(&["log", "--store", r.db(), "--verify"]);
}

fn password_onboarding_writes_passwords_only_to_the_credentials_file(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    let out = r.cmd(&[
        "apply",
        "--yes",
        "--store",
        r.db(),
        "--onboarding",
        "password",
    ]);
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
        r.db(),
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
    // The files of a SQLite store (PostgreSQL's are the server's business).
    let (db, wal) = match r.backend() {
        Backend::Sqlite => (
            std::fs::read(r.path().join("store.db")).unwrap(),
            std::fs::read(r.path().join("store.db-wal")).unwrap_or_default(),
        ),
        Backend::Postgres => Default::default(),
    };
    let log = r.ok(&["log", "--store", r.db(), "--format", "json"]).stdout;
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
    let hash = r.text("SELECT password_hash FROM accounts WHERE user_name = 'MMcCray'");
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
        r.db(),
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

fn the_audit_chain_detects_tampering(b: Backend) {
    let r = worknet(b);
    let ok = r.ok(&["log", "--store", r.db(), "--verify"]);
    assert!(
        ok.stdout.contains("intact (22 rows, revision 22)"),
        "{}",
        ok.stdout
    );
    let log: Value =
        serde_json::from_str(&r.ok(&["log", "--store", r.db(), "--format", "json"]).stdout)
            .unwrap();
    assert_eq!(log[0]["actor"], "test-admin");
    assert!(
        !log.to_string().contains("1972-09-01"),
        "birth dates are masked in the log"
    );
    r.sql("UPDATE audit SET actor = 'mallory' WHERE seq = 5");
    let out = r.cmd(&["log", "--store", r.db(), "--verify"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("audit row 5: its content does not match its hash"),
        "{}",
        out.stderr
    );
    r.sql("UPDATE audit SET actor = 'test-admin' WHERE seq = 5");
    r.ok(&["log", "--store", r.db(), "--verify"]);
    r.sql("DELETE FROM audit WHERE seq = 7");
    let out = r.cmd(&["log", "--store", r.db(), "--verify"]);
    assert!(
        out.stderr
            .contains("audit row 8: does not follow the row before it"),
        "{}",
        out.stderr
    );
    r.sql("DELETE FROM audit WHERE seq >= 7");
    let out = r.cmd(&["log", "--store", r.db(), "--verify"]);
    assert!(
        out.stderr
            .contains("ends at revision 6 but the store is at revision 22"),
        "{}",
        out.stderr
    );
}

fn log_since_filters_and_bad_times_are_errors(b: Backend) {
    let r = worknet(b);
    let all = r.ok(&["log", "--store", r.db()]).stdout.lines().count();
    assert_eq!(all, 22);
    assert_eq!(
        r.ok(&["log", "--store", r.db(), "--since", "1h"])
            .stdout
            .lines()
            .count(),
        22
    );
    let future = r.ok(&["log", "--store", r.db(), "--since", "2999-01-01"]);
    assert!(future.stdout.contains("no rows in that time"));
    let out = r.cmd(&["log", "--store", r.db(), "--since", "last tuesday"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("is not a date"), "{}", out.stderr);
}

fn invitations_list_pending_and_due_ones(b: Backend) {
    let r = worknet(b);
    let out = r.ok(&["invitations", "--store", r.db()]);
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
        r.db(),
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
    let all = "FROM outbox o JOIN accounts a ON a.id = o.account_id";
    assert_eq!(r.text(&format!("SELECT count(*) {all}")), "9");
    let mut c = r.conn();
    let tokens = c.column(&format!(
        "SELECT o.token {all} WHERE a.active ORDER BY o.id"
    ));
    let digests = c.column(&format!(
        "SELECT a.activation_digest {all} WHERE a.active ORDER BY o.id"
    ));
    assert_eq!(tokens.len(), 9);
    for (token, digest) in tokens.iter().zip(digests) {
        let mut h = String::from("sha256:");
        for b in <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()) {
            h.push_str(&format!("{b:02x}"));
        }
        assert_eq!(h, digest);
    }
    let bad = r.cmd(&["invitations", "--store", r.db(), "--older-than", "soon"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("not an age"), "{}", bad.stderr);
}

fn a_second_apply_waits_for_the_lock_or_fails_cleanly(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    r.ok(&["apply", "--yes", "--store", r.db(), "roster.yaml"]);
    let r = r.file("g.yaml", "version: 1\ngroups:\n  - name: Extra\n");
    let release = r.hold_write_lock();
    let rev = r.revision();
    let out = r.cmd_env(
        &["apply", "--yes", "--store", r.db(), "g.yaml"],
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
        release();
    });
    r.ok(&["apply", "--yes", "--store", r.db(), "g.yaml"]);
    release.join().unwrap();
    assert_eq!(r.revision(), rev + 1);
}

/// A store that cannot be reached fails every verb that opens one the same
/// way: exit 1, nothing on stdout, and the error said once, on one line of
/// stderr, without the password.
#[test]
fn every_verb_says_a_store_error_once() {
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    let url = "postgres://roster:s3cret@127.0.0.1:1/roster";
    let verbs: &[&[&str]] = &[
        &["plan", "roster.yaml"],
        &["apply", "--yes", "roster.yaml"],
        &["diff", "roster.yaml"],
        &["export"],
        &["log"],
        &["accounts"],
        &["invitations"],
        &["reset-password", "JJones"],
        &["report", "--html", "--out", "report.html"],
        &["token", "list"],
        &["token", "create", "--name", "ci"],
        &["token", "revoke", "ci"],
        &["serve", "--listen", "127.0.0.1:0"],
        &["init", "new-repo"],
    ];
    for verb in verbs {
        let mut args = verb.to_vec();
        args.extend(["--store", url]);
        let out = r.cmd(&args);
        let said = "error: store postgres://roster@127.0.0.1:1/roster: cannot connect";
        assert_eq!(out.code, 1, "{verb:?}: {}", out.stderr);
        assert_eq!(out.stdout, "", "{verb:?}");
        assert!(
            out.stderr.starts_with(said) && out.stderr.lines().count() == 1,
            "{verb:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("s3cret"), "{verb:?}: {}", out.stderr);
    }
    assert!(!r.path().join("report.html").exists());
    assert!(!r.path().join("new-repo").exists());
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
            "postgres://roster:s3cret@127.0.0.1:1/roster",
            "store postgres://roster@127.0.0.1:1/roster: cannot connect",
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
        &["apply", "--yes", "--store", r.db()],
        &[("ROSTER_LOCK_TIMEOUT", "NaN")],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("is not a number of seconds"),
        "{}",
        out.stderr
    );
    // Not on a terminal and no --yes: nothing is applied.
    let out = r.cmd(&["apply", "--store", r.db()]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("pass --yes"), "{}", out.stderr);
    assert!(!r.path().join("store.db").exists());
    // A roster with errors is not planned.
    let r = r.file("bad.yaml", "version: 1\npartners:\n  - email: nope\n");
    let out = r.cmd(&["plan", "--store", r.db(), "bad.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("cannot plan: the roster has"),
        "{}",
        out.stderr
    );
}

fn inactive_partners_orphans_and_profiles(b: Backend) {
    let people = |phone: &str, bo: &str| {
        format!(
            "partners:\n  - email: a@example.com\n    first_name: Ann\n    last_name: Lee\n    birth_date: 1990-01-01\n    phone: \"{phone}\"\n    zip: \"62701\"\n  - email: b@example.com\n    first_name: Bo\n    last_name: Lee\n    birth_date: 1991-01-01\n    phone: \"217-555-0101\"\n    zip: \"62701\"\n{bo}"
        )
    };
    let start = format!(
        "version: 1\ngroups:\n  - name: G\n    members: [a@example.com, b@example.com]\n  - name: H\n    members: [b@example.com]\n{}",
        people("217-555-0100", "")
    );
    let r = b.roster().file("start.yaml", start);
    r.ok(&["apply", "--yes", "--store", r.db(), "start.yaml"]);
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
    r.ok(&["apply", "--yes", "--store", r.db(), "off.yaml"]);
    let (_, plan) = r.plan_json("start.yaml");
    assert_eq!(ops(&plan), ["reactivate_account BLee"]);
    assert_eq!(plan["resolutions"][1]["via"], "inactive_email");
}

fn unmanaged_groups_are_warned_about_or_emptied(b: Backend) {
    let r = b.roster().file(
        "a.yaml",
        "version: 1\ngroups:\n  - name: Old\n    members: [a@example.com]\npartners:\n  - email: a@example.com\n    first_name: Ann\n    last_name: Lee\n    birth_date: 1990-01-01\n    phone: \"217-555-0100\"\n    zip: \"62701\"\n",
    );
    r.ok(&["apply", "--yes", "--store", r.db(), "a.yaml"]);
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

fn markdown_plans_fold_groups(b: Backend) {
    let r = worknet(b);
    let out = r.cmd(&["plan", "--store", r.db(), "--format", "markdown"]);
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

fn export_then_plan_shows_no_changes(b: Backend) {
    for n in [1, 17, 120] {
        let r = b.roster().file("gen.yaml", generated(n));
        let copy = r.store(b, "copy");
        r.ok(&["apply", "--yes", "--store", r.db(), "gen.yaml"]);
        r.ok(&["export", "--store", r.db(), "-o", "export.yaml"]);
        r.plans_no_changes("export.yaml", &format!("n={n}"));
        // The export is a roster: applied to an empty store it gives the same store back.
        let first = std::fs::read_to_string(r.path().join("export.yaml")).unwrap();
        r.ok(&["apply", "--yes", "--store", &copy.url, "export.yaml"]);
        r.ok(&["export", "--store", &copy.url, "-o", "again.yaml"]);
        assert_eq!(
            std::fs::read_to_string(r.path().join("again.yaml")).unwrap(),
            first,
            "n={n}"
        );
    }
}

/// A store whose older accounts lack a phone, a ZIP or a birth date (made
/// under a policy that did not require them) exports to a roster that
/// `check` and `plan` accept as it is: the export carries a policy that fits.
fn export_of_older_accounts_checks_and_plans_clean(b: Backend) {
    let old = "\
version: 1
policy:
  required_fields: []
groups:
  - name: Old Agency
    members: [ann@example.org, bob@example.org, cat@example.org, dee@mail_host.example.org]
partners:
  - email: ann@example.org
    first_name: Ann
    last_name: Lee
    birth_date: 1970-01-02
    phone: \"217-555-0101\"
    zip: \"62568\"
  - email: bob@example.org
    first_name: Bob
    last_name: Ray
    birth_date: 1971-01-02
    zip: \"62568\"
  - email: cat@example.org
    first_name: Cat
    last_name: Cole
    birth_date: 1972-01-02
    phone: \"217-555-0103\"
  - email: dee@mail_host.example.org
    first_name: Dee
    last_name: Dunn
    birth_date: 1973-01-02
    phone: \"217-555-0104\"
    zip: \"62568\"
  - email: eve@example.org
    first_name: Eve
    last_name: Gone
    active: false
";
    let r = b.roster().file("old.yaml", old);
    r.ok(&["apply", "--yes", "--store", r.db(), "old.yaml"]);
    r.ok(&["export", "--store", r.db(), "-o", "export.yaml"]);
    let text = std::fs::read_to_string(r.path().join("export.yaml")).unwrap();
    // Every active account has a birth date; not all a phone or a ZIP.
    assert!(
        text.contains("policy:\n  required_fields: [birth_date]\n"),
        "{text}"
    );
    let check = r.cmd(&["check", "export.yaml"]);
    assert_eq!(check.code, 0, "{}\n{}", check.stdout, check.stderr);
    // The address a mail host would refuse is kept, with a warning.
    let all = format!("{}{}", check.stdout, check.stderr);
    assert!(all.contains("undeliverable-email"), "{all}");
    assert!(!all.contains("missing-required-field"), "{all}");
    r.plans_no_changes("export.yaml", "");
}

fn export_on_stdout_leaves_out_personal_data(b: Backend) {
    let r = worknet(b);
    let out = r.ok(&["export", "--store", r.db()]);
    assert!(out.stdout.contains("account: MMcCray"));
    assert!(out.stdout.contains("active: false"));
    assert!(!out.stdout.contains("1972-09-01") && !out.stdout.contains("2178529634"));
    assert!(out.stderr.contains("left out"), "{}", out.stderr);
    let all = r.ok(&["export", "--store", r.db(), "--show-pii"]);
    assert!(all.stdout.contains("1972-09-01"));
}

fn diff_shows_live_against_desired_with_personal_data_masked(b: Backend) {
    let r = worknet(b);
    let out = r.ok(&["diff", "--store", r.db(), "roster.yaml"]);
    assert!(
        out.stdout
            .starts_with(&format!("--- store {}\n+++ roster\n", r.shown())),
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

fn plan_schema_is_checked_in_current_and_plans_follow_it(b: Backend) {
    let r = worknet(b);
    let out = r.ok(&["schema", "plan"]);
    let committed = std::fs::read_to_string(repo("schemas/plan.schema.json")).unwrap();
    assert!(
        out.stdout == committed,
        "schemas/plan.schema.json is out of date: run `cargo run -- schema plan > schemas/plan.schema.json`"
    );
    let schema: Value = serde_json::from_str(&committed).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let (_, printed) = r.plan_json("roster.yaml");
    r.cmd(&["plan", "--store", r.db(), "roster.yaml", "-o", "saved.json"]);
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
    assert_eq!(printed["store"]["url"], r.shown());
    // `via` is always present: null for new accounts.
    let jose = printed["resolutions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["partner"] == "jose.nunez@example.org")
        .unwrap();
    assert_eq!(jose.get("via"), Some(&Value::Null));
}

fn files_that_cannot_be_written_and_newer_stores_are_named(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    let out = r.cmd(&["plan", "--store", r.db(), "-o", "missing/plan.json"]);
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
        r.db(),
        "--onboarding",
        "password",
        "--credentials-file",
        "missing/creds.csv",
    ]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("missing/creds.csv:"), "{}", out.stderr);
    // `plan -o` made the store, to keep the key that seals plans.
    assert_eq!(r.revision(), 0, "nothing applied");
    r.ok(&["apply", "--yes", "--store", r.db()]);
    let out = r.cmd(&["export", "--store", r.db(), "-o", "missing/export.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("missing/export.yaml: cannot write"),
        "{}",
        out.stderr
    );
    r.set_schema_version(99);
    for args in [
        &["plan", "--store", r.db()][..],
        &["apply", "--yes", "--store", r.db(), "roster.yaml"][..],
        &["log", "--store", r.db()][..],
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
    let r = worknet(Backend::Sqlite);
    // Let SQLite fold the WAL into the file, so the file alone is the store.
    r.sql("PRAGMA wal_checkpoint(TRUNCATE)");
    let before = std::fs::read(r.path().join("store.db")).unwrap();
    for args in [
        &["plan", "--store", r.db(), "roster.yaml"][..],
        &["diff", "--store", r.db(), "roster.yaml"][..],
        &["export", "--store", r.db()][..],
        &["log", "--store", r.db(), "--verify"][..],
        &["invitations", "--store", r.db()][..],
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

fn apply_asks_on_a_terminal_and_only_yes_goes_on(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    let out = on_terminal(&r, &format!("apply --store {}", r.db()), "y\n");
    assert!(
        out.contains("Apply this plan? Only 'yes' is accepted: Apply cancelled; nothing changed."),
        "{out}"
    );
    assert!(!r.store_exists());
    let out = on_terminal(&r, &format!("apply --store {}", r.db()), "yes\n");
    assert!(
        out.contains(&format!("Applied 26 actions to {}", r.shown())),
        "{out}"
    );
}

/// Many admins (or `roster serve` replicas) at once: one apply at a time,
/// and the audit chain stays whole.
fn concurrent_applies_take_turns(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    r.ok(&["apply", "--yes", "--store", r.db(), "roster.yaml"]);
    let rev = r.revision();
    let r = (0..4).fold(r, |r, i| {
        r.file(
            &format!("g{i}.yaml"),
            format!("version: 1\ngroups:\n  - name: Extra {i}\n"),
        )
    });
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|i| {
                let r = &r;
                // A plan made before another apply landed is stale: plan again.
                s.spawn(move || {
                    let args = ["apply", "--yes", "--store", r.db(), &format!("g{i}.yaml")];
                    loop {
                        let out = r.cmd_env(&args, &[("ROSTER_LOCK_TIMEOUT", "60")]);
                        if !out.stderr.contains("stale plan") {
                            return out;
                        }
                    }
                })
            })
            .collect();
        for run in runs {
            let out = run.join().unwrap();
            assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        }
    });
    assert_eq!(r.revision(), rev + 4);
    let verified = r.ok(&["log", "--store", r.db(), "--verify"]);
    assert!(
        verified
            .stdout
            .contains(&format!("intact ({} rows, revision {})", rev + 4, rev + 4)),
        "{}",
        verified.stdout
    );
}

#[test]
fn postgres_databases_that_cannot_be_used_are_named() {
    if super::pg::skipped() {
        return;
    }
    let r = Backend::Postgres
        .roster()
        .copy("examples/worknet/roster.yaml", "roster.yaml");
    // Another program's tables are left alone.
    r.sql("CREATE TABLE t (x int)");
    for args in [
        &["plan", "--store", r.db()][..],
        &["apply", "--yes", "--store", r.db()][..],
    ] {
        let out = r.cmd(args);
        assert_eq!(out.code, 1, "{args:?}");
        assert!(
            out.stderr.contains(&format!(
                "store {}: this database holds tables that are not a roster store",
                r.shown()
            )),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(
        r.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "1"
    );
    r.sql("DROP TABLE t");
    // Nothing the server says about a connection shows the password.
    let wrong = r.db().replace(super::pg::PASSWORD, "Wrong-Pass-123");
    let out = r.cmd(&["plan", "--store", &wrong]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains(&format!("store {}: cannot connect", r.shown()))
            && out.stderr.contains("password authentication failed"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Wrong-Pass-123"), "{}", out.stderr);
    let (base, _) = r.db().rsplit_once('/').unwrap();
    let out = r.cmd(&["plan", "--store", &format!("{base}/no_such_db")]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("does not exist") && out.stderr.contains("createdb"),
        "{}",
        out.stderr
    );
    let out = r.cmd(&["plan", "--store", "postgres://h:port/db"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("not a PostgreSQL URL"),
        "{}",
        out.stderr
    );
    // postgresql:// works too, and the password may come from PGPASSWORD.
    let bare = r.shown().replacen("postgres://", "postgresql://", 1);
    let out = r.cmd_env(
        &["apply", "--yes", "--store", &bare],
        &[("PGPASSWORD", super::pg::PASSWORD)],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("to {bare}; it is now at revision 26")),
        "{}",
        out.stdout
    );
    assert_eq!(
        r.cmd(&["plan", "--store", r.db(), "--detailed-exitcode"])
            .code,
        0
    );
}

/// One tampering of a saved plan's JSON.
type Edit<'a> = Box<dyn FnOnce(&mut Value) + 'a>;

/// A plan with its JSON edited by `edit`, saved as `name`.
fn tampered(r: &Roster, saved: &Value, name: &str, edit: impl FnOnce(&mut Value)) {
    let mut v = saved.clone();
    edit(&mut v);
    std::fs::write(
        r.path().join(name),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
}

/// SPEC §11: whoever can write the plan file between `plan -o` and `apply`
/// cannot make apply do anything the plan did not say.
fn saved_plans_are_sealed(b: Backend) {
    let r = worknet(b);
    // A plan with no changes: the store as the live roster left it.
    r.ok(&["plan", "--store", r.db(), "live.yaml", "-o", "plan.json"]);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("plan.json")).unwrap())
            .unwrap();
    assert_eq!(saved["actions"], serde_json::json!([]));
    let seal = saved["seal"].as_str().unwrap();
    assert!(
        seal.starts_with("hmac-sha256:") && seal.len() == 12 + 64,
        "{seal}"
    );
    // The digest `plan` prints (human and Markdown) is the saved plan's.
    let digest = saved["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:") && digest.len() == 71);
    let human = r.ok(&["plan", "--store", r.db(), "live.yaml"]).stdout;
    assert!(human.contains(&format!("Plan {digest}\n")), "{human}");
    let md = r.ok(&[
        "plan",
        "--store",
        r.db(),
        "live.yaml",
        "--format",
        "markdown",
    ]);
    assert!(
        md.stdout.contains(&format!("Plan `{digest}`")),
        "{}",
        md.stdout
    );
    let (_, printed) = r.plan_json("live.yaml");
    assert_eq!(printed["digest"], digest.as_str());
    assert!(printed.get("seal").is_none(), "printed plans carry no seal");

    // A plan sealed by another store, of the same roster.
    let other = b
        .roster()
        .copy("examples/worknet-live/roster.yaml", "live.yaml");
    other.ok(&["apply", "--yes", "--store", other.db(), "live.yaml"]);
    other.ok(&[
        "plan",
        "--store",
        other.db(),
        "live.yaml",
        "-o",
        "plan.json",
    ]);
    let foreign: Value =
        serde_json::from_str(&std::fs::read_to_string(other.path().join("plan.json")).unwrap())
            .unwrap();
    assert_ne!(foreign["seal"], saved["seal"], "each store has its own key");

    let member = saved["resolutions"][0]["account"]
        .as_str()
        .unwrap()
        .to_string();
    let group = "Apprenticeship Illinois - ABC Location";
    let rev = r.revision();
    let cases: Vec<(&str, Edit)> = vec![
        (
            "removal_limit",
            Box::new(|v| v["removal_limit"] = 100_000.into()),
        ),
        (
            "added actions",
            Box::new(|v| {
                v["removal_limit"] = 100_000.into();
                v["actions"] = serde_json::json!([
                    {"op": "grant_user_manager", "account": member, "group": group},
                    {"op": "remove_membership", "account": "JJones", "group": group},
                    {"op": "deactivate_account", "account": "TBecker"},
                ]);
                v["summary"]["remove_memberships"] = 1.into();
            }),
        ),
        (
            "revision",
            Box::new(|v| v["store"]["revision"] = (rev + 1).into()),
        ),
        (
            "account name",
            Box::new(|v| v["resolutions"][0]["account"] = "Someone".into()),
        ),
        (
            "digest",
            Box::new(|v| v["digest"] = format!("sha256:{}", "0".repeat(64)).into()),
        ),
        (
            "seal of another store",
            Box::new(|v| v["seal"] = foreign["seal"].clone()),
        ),
        (
            "no seal",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("seal");
            }),
        ),
        (
            "malformed seal",
            Box::new(|v| v["seal"] = "hmac-sha256:00".into()),
        ),
        (
            "an added field",
            Box::new(|v| v["allow_mass_removal"] = true.into()),
        ),
        (
            "an added field in an action",
            Box::new(|v| v["resolutions"][0]["note"] = "approved".into()),
        ),
    ];
    for (what, edit) in cases {
        tampered(&r, &saved, "t.json", edit);
        let out = r.cmd(&["apply", "--yes", "--store", r.db(), "t.json"]);
        assert_eq!(out.code, 1, "{what}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr
                .starts_with("error: plan was altered after it was made\nhelp: "),
            "{what}: {}",
            out.stderr
        );
        assert!(
            out.stdout.is_empty(),
            "{what}: nothing is shown: {}",
            out.stdout
        );
        assert_eq!(r.revision(), rev, "{what}: nothing written");
    }
    // The store's key only opens to whoever can open the store: a store
    // swapped for another under the same path does not take its plans.
    if b == Backend::Sqlite {
        std::fs::copy(r.path().join("plan.json"), other.path().join("mine.json")).unwrap();
        let out = other.cmd(&["apply", "--yes", "--store", other.db(), "mine.json"]);
        assert_eq!(out.code, 1);
        assert!(
            out.stderr.contains("plan was altered after it was made"),
            "{}",
            out.stderr
        );
    }
    // The plan as written applies; its digest is printed again by apply.
    let out = r.ok(&["apply", "--yes", "--store", r.db(), "plan.json"]);
    assert!(
        out.stdout.contains(&format!("Plan {digest}\n")),
        "{}",
        out.stdout
    );
    // A plan with changes, untouched, applies.
    let r = r.file(
        "small.yaml",
        "version: 1\ngroups:\n  - name: Sealed Group\n    members: []\n",
    );
    r.ok(&["plan", "--store", r.db(), "small.yaml", "-o", "small.json"]);
    let out = r.ok(&["apply", "--yes", "--store", r.db(), "small.json"]);
    assert!(out.stdout.contains("Applied 1 action"), "{}", out.stdout);
    assert_eq!(r.revision(), rev + 1);
}

#[test]
fn scim_stores_seal_plans_only_with_a_key() {
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    let url = "scim+http://127.0.0.1:1/scim/v2";
    let out = r.cmd_env(&["plan", "--store", url, "-o", "plan.json"], &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "error: cannot seal the plan: a SCIM store cannot keep the key that seals saved plans: set ROSTER_PLAN_KEY"
        ),
        "{}",
        out.stderr
    );
    assert!(!r.path().join("plan.json").exists());
    let out = r.cmd_env(
        &["plan", "--store", url, "-o", "plan.json"],
        &[("ROSTER_PLAN_KEY", "short")],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("ROSTER_PLAN_KEY must hold at least 32 characters"),
        "{}",
        out.stderr
    );
    // Applying a saved plan to a SCIM store needs the key too.
    let r = r.file(
        "plan.json",
        format!(
            "{{\"format_version\": 1, \"store\": {{\"url\": \"{url}\", \"revision\": 0}}, \"roster_digest\": \"sha256:00\", \"summary\": {{\"create_groups\": 0, \"create_accounts\": 0, \"reactivate_accounts\": 0, \"update_profiles\": 0, \"add_memberships\": 0, \"grant_user_manager\": 0, \"revoke_user_manager\": 0, \"remove_memberships\": 0, \"deactivate_accounts\": 0, \"unresolved\": 0}}, \"resolutions\": [], \"actions\": [], \"warnings\": [], \"violations\": [], \"removal_limit\": 0, \"personal_data\": \"included\", \"seal\": \"hmac-sha256:{}\"}}",
            "0".repeat(64)
        ),
    );
    let out = r.cmd_env(
        &["apply", "--yes", "--store", url, "plan.json"],
        &[("ROSTER_PLAN_KEY", &"k".repeat(40))],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("error: plan was altered after it was made"),
        "{}",
        out.stderr
    );
}

/// Disjoint rosters, one per team, each a group and a partner.
fn team(i: usize) -> String {
    format!(
        "version: 1\ngroups:\n  - name: Team {i}\n    members: [p{i}@example.org]\npartners:\n  - email: p{i}@example.org\n    first_name: Pat\n    last_name: Team{i}\n    birth_date: 1990-01-0{}\n    phone: \"217-555-01{i:02}\"\n    zip: \"62701\"\n",
        i % 9 + 1
    )
}

/// Eight `apply --yes` of disjoint rosters at once, the first of them
/// creating the store: every one lands (a loser of the race plans again
/// under the lock), and the store holds all eight.
fn eight_concurrent_first_applies_all_land(b: Backend) {
    for round in 0..3 {
        let r = (0..8).fold(b.roster(), |r, i| r.file(&format!("t{i}.yaml"), team(i)));
        std::thread::scope(|s| {
            let runs: Vec<_> = (0..8)
                .map(|i| {
                    let r = &r;
                    s.spawn(move || {
                        r.cmd_env(
                            &["apply", "--yes", "--store", r.db(), &format!("t{i}.yaml")],
                            &[("ROSTER_LOCK_TIMEOUT", "60")],
                        )
                    })
                })
                .collect();
            let mut replanned = 0;
            for run in runs {
                let out = run.join().unwrap();
                assert_eq!(out.code, 0, "round {round}: {}{}", out.stdout, out.stderr);
                replanned += out.stderr.contains("planned again") as usize;
            }
            // Those that planned before another landed lost the race and
            // planned again.
            assert!(replanned > 0, "round {round}: no apply lost the race");
        });
        let export = r.ok(&["export", "--store", r.db()]).stdout;
        for i in 0..8 {
            assert!(
                export.contains(&format!("name: Team {i}\n"))
                    && export.contains(&format!("p{i}@example.org")),
                "round {round}: team {i} missing:\n{export}"
            );
        }
        assert_eq!(
            r.revision(),
            8 * 3,
            "a group, an account, a membership each"
        );
        r.ok(&["log", "--store", r.db(), "--verify"]);
        if b == Backend::Sqlite {
            // No loser left anything beside the store.
            let names: Vec<String> = std::fs::read_dir(r.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("store") || n.starts_with('.'))
                .collect();
            assert!(names.iter().all(|n| n.starts_with("store.db")), "{names:?}");
        }
    }
}

/// Applies while the SCIM writes stream.
const APPLIES: usize = 5;

/// `roster apply --yes FILE` that loses the race for certain: this test
/// holds the store's write lock while the apply plans (its plan on stdout
/// says it has), then writes and lets go, so the apply finds the store
/// moved on once it holds the lock.
fn apply_as_a_write_lands(r: &Roster, file: &str) -> Output {
    use roster::domain::Profile;
    use roster::store::{self, NewCredential, Options};
    use std::io::{BufRead, Read};
    let url = match r.backend() {
        Backend::Sqlite => format!("sqlite:{}", r.path().join("store.db").display()),
        Backend::Postgres => r.db().to_string(),
    };
    let handle = store::open(&url, Options::default()).unwrap();
    let mut held = handle.begin("idp", &store::now()).unwrap();
    let args = ["apply", "--yes", "--store", r.db(), file];
    let mut child = r
        .command(&args, &[("ROSTER_LOCK_TIMEOUT", "60")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run roster");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut shown = String::new();
    // The plan's last line: planning is over, the lock is next.
    while !shown.lines().any(|l| l.starts_with("Plan: ")) {
        if stdout.read_line(&mut shown).unwrap() == 0 {
            break;
        }
    }
    let profile = Profile {
        email: "held@example.net".into(),
        first_name: "Held".into(),
        last_name: "Lock".into(),
        birth_date: None,
        phone: None,
        extension: None,
        zip: None,
    };
    let invite = NewCredential::Invite {
        token: "held-token".into(),
        token_digest: roster::secrets::sha256(b"held-token"),
    };
    held.create_account("held", &profile, invite).unwrap();
    held.commit().unwrap();
    stdout.read_to_string(&mut shown).unwrap();
    let mut out = child.wait_with_output().unwrap();
    out.stdout = shown.into_bytes();
    Roster::output(&args, out)
}

/// `roster apply` while an identity provider keeps writing through
/// `roster serve`: the apply plans again under the lock and lands.
fn apply_lands_while_serve_takes_writes(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet-live/roster.yaml", "live.yaml");
    r.ok(&["apply", "--yes", "--store", r.db(), "live.yaml"]);
    let admin = r
        .ok(&["token", "create", "--name", "idp", "--store", r.db()])
        .stdout
        .trim()
        .to_string();
    let server = super::serve::start(r.path(), r.db());
    let r = r.file("race.yaml", team(APPLIES));
    let out = apply_as_a_write_lands(&r, "race.yaml");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // The race this is about: a write landed between the apply's planning
    // and its lock. It planned again and landed all the same.
    assert!(
        out.stderr.contains("planned again under the store's lock"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("Applied 3 actions"), "{}", out.stdout);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let writes = std::sync::atomic::AtomicUsize::new(0);
    let r = (0..APPLIES).fold(r, |r, i| r.file(&format!("t{i}.yaml"), team(i)));
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("Idp{n}"),
                    "name": {"givenName": "Id", "familyName": format!("P{n}")},
                    "emails": [{"value": format!("idp{n}@example.net"), "primary": true}],
                });
                let resp = super::serve::http(
                    "POST",
                    &format!("{}/Users", server.base),
                    Some(&admin),
                    Some(&body),
                    &[],
                );
                assert_eq!(resp.status, 201, "{}", resp.body);
                writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                n += 1;
            }
        });
        // Let the stream start, then apply in the middle of it.
        while writes.load(std::sync::atomic::Ordering::Relaxed) < 3 {
            if writer.is_finished() {
                writer.join().unwrap();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let before = writes.load(std::sync::atomic::Ordering::Relaxed);
        let outs: Vec<Output> = (0..APPLIES)
            .map(|i| {
                r.cmd_env(
                    &["apply", "--yes", "--store", r.db(), &format!("t{i}.yaml")],
                    &[("ROSTER_LOCK_TIMEOUT", "60")],
                )
            })
            .collect();
        let during = writes.load(std::sync::atomic::Ordering::Relaxed) - before;
        // Stop the stream before any assertion, or a failure would wait for ever.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        for (i, out) in outs.iter().enumerate() {
            assert_eq!(out.code, 0, "apply {i}: {}{}", out.stdout, out.stderr);
            assert!(out.stdout.contains("Applied 3 actions"), "{}", out.stdout);
        }
        assert!(during > 0, "no SCIM write landed while the applies ran");
    });
    let n = writes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n >= 5, "only {n} SCIM writes");
    let export = r.ok(&["export", "--store", r.db()]).stdout;
    for i in (0..APPLIES).chain([APPLIES]) {
        assert!(export.contains(&format!("name: Team {i}\n")), "team {i}");
    }
    assert!(
        export.contains("held@example.net"),
        "the write the apply lost to"
    );
    assert!(export.contains(&format!("idp{}@example.net", n - 1)));
    r.ok(&["log", "--store", r.db(), "--verify"]);
}

/// The savepoints `roster serve` commits queued writes with: a write rolled
/// back to its savepoint leaves nothing behind (rows, audit rows, revision,
/// ids the session remembered), the writes around it land, and the audit
/// chain of the commit verifies.
fn savepoints_undo_one_write_and_keep_its_neighbours(b: Backend) {
    use roster::domain::{GroupType, Profile};
    use roster::store::{self, NewCredential, Options, StoreError};
    let r = b.roster();
    let url = match b {
        Backend::Sqlite => format!("sqlite:{}", r.path().join("store.db").display()),
        Backend::Postgres => r.db().to_string(),
    };
    let handle = store::open(&url, Options::default()).unwrap();
    let profile = |n: &str| Profile {
        email: format!("{n}@example.org"),
        first_name: n.to_string(),
        last_name: "Tester".to_string(),
        birth_date: None,
        phone: None,
        extension: None,
        zip: None,
    };
    let invite = |n: &str| NewCredential::Invite {
        token: format!("token-{n}"),
        token_digest: roster::secrets::sha256(n.as_bytes()),
    };
    let mut s = handle.begin("test", &store::now()).unwrap();
    let start = s.revision().unwrap();
    s.savepoint().unwrap();
    s.create_account("ann", &profile("ann"), invite("ann"))
        .unwrap();
    s.release_savepoint().unwrap();
    let one = s.revision().unwrap() - start;
    assert!(one > 0);

    // Refused by the store: the neighbour before it stays.
    s.savepoint().unwrap();
    let taken = s.create_account("ANN", &profile("ann2"), invite("ann2"));
    assert!(matches!(taken, Err(StoreError::Taken(_))), "{taken:?}");
    s.rollback_to_savepoint().unwrap();

    // Refused half way: what it did first goes too.
    s.savepoint().unwrap();
    s.create_group("g1", GroupType::Organization, None).unwrap();
    s.create_account("bob", &profile("bob"), invite("bob"))
        .unwrap();
    assert!(s.add_membership("bob", "no-such-group", false).is_err());
    s.rollback_to_savepoint().unwrap();
    // The session forgot the group it made, as the store did.
    s.savepoint().unwrap();
    let gone = s.add_membership("ann", "g1", false);
    assert!(matches!(gone, Err(StoreError::Invalid(_))), "{gone:?}");
    s.rollback_to_savepoint().unwrap();
    // …and the account.
    s.savepoint().unwrap();
    let gone = s.deactivate_account("bob");
    assert!(matches!(gone, Err(StoreError::Invalid(_))), "{gone:?}");
    s.rollback_to_savepoint().unwrap();

    s.savepoint().unwrap();
    s.create_account("cy", &profile("cy"), invite("cy"))
        .unwrap();
    s.release_savepoint().unwrap();
    assert_eq!(s.revision().unwrap(), start + 2 * one);
    assert_eq!(s.commit().unwrap(), start + 2 * one);

    r.ok(&["log", "--store", r.db(), "--verify"]);
    let log: Value =
        serde_json::from_str(&r.ok(&["log", "--store", r.db(), "--format", "json"]).stdout)
            .unwrap();
    let subjects: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains(&"ann") && subjects.contains(&"cy"),
        "{subjects:?}"
    );
    assert!(
        !subjects
            .iter()
            .any(|s| s.contains("bob") || s.contains("g1") || *s == "ANN"),
        "{subjects:?}"
    );
    let export = r.ok(&["export", "--store", r.db()]).stdout;
    assert!(export.contains("ann@example.org") && export.contains("cy@example.org"));
    assert!(!export.contains("bob") && !export.contains("g1") && !export.contains("ann2"));
    // Nothing was left open: the next write takes the lock at once.
    let mut next = handle.begin("test", &store::now()).unwrap();
    next.create_group("g2", GroupType::Project, None).unwrap();
    assert_eq!(next.commit().unwrap(), start + 2 * one + 1);
    r.ok(&["log", "--store", r.db(), "--verify"]);
}

/// An apply killed while it created the store left a file without tables
/// (0 bytes, or SQLite's first page): that is a store not created yet.
#[test]
fn a_table_less_file_left_by_a_crash_is_a_new_store() {
    for leftover in ["empty", "header"] {
        let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
        let path = r.path().join("store.db");
        match leftover {
            "empty" => std::fs::write(&path, b"").unwrap(),
            _ => {
                let c = rusqlite::Connection::open(&path).unwrap();
                let mode: String = c
                    .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(mode, "wal");
                drop(c);
                assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
            }
        }
        let db = "sqlite:store.db";
        let plan = r.ok(&["plan", "--store", db, "--format", "json"]).stdout;
        let plan: Value = serde_json::from_str(&plan).unwrap();
        assert_eq!(plan["store"]["revision"], 0, "{leftover}");
        assert_eq!(plan["summary"]["create_accounts"], 10, "{leftover}");
        let export = r.ok(&["export", "--store", db]).stdout;
        assert!(!export.contains("email:"), "{leftover}: {export}");
        r.ok(&["log", "--store", db, "--verify"]);
        r.ok(&["invitations", "--store", db]);
        let out = r.ok(&["apply", "--yes", "--store", db]);
        assert!(out.stdout.contains("Applied 26 actions"), "{}", out.stdout);
        assert_eq!(
            r.cmd(&["plan", "--store", db, "--detailed-exitcode"]).code,
            0,
            "{leftover}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{leftover}");
        }
    }
}

/// What a kill -9 of `token create` left while it created a new SQLite
/// store (tests/fixtures/hot_journal): the 4,096-byte first page and a hot
/// rollback journal. Every verb rolls the journal back and reads a new store.
#[test]
fn a_hot_journal_left_by_a_kill_is_rolled_back() {
    let fixture = repo("tests/fixtures/hot_journal");
    let fresh = || {
        let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
        for f in ["store.db", "store.db-journal"] {
            std::fs::copy(fixture.join(f), r.path().join(f)).unwrap();
        }
        r
    };
    let db = "sqlite:store.db";
    for verb in [
        &["plan", "--store", db][..],
        &["export", "--store", db],
        &["log", "--store", db, "--verify"],
        &["invitations", "--store", db],
        &["token", "list", "--store", db],
        &["apply", "--yes", "--store", db],
        &["token", "create", "--name", "ci", "--store", db],
    ] {
        let r = fresh();
        r.ok(verb);
        assert!(!r.path().join("store.db-journal").exists(), "{verb:?}");
        let plan = r.ok(&["plan", "--store", db, "--format", "json"]).stdout;
        let plan: Value = serde_json::from_str(&plan).unwrap();
        let applied = verb[0] == "apply";
        assert_eq!(
            plan["summary"]["create_accounts"],
            if applied { 0 } else { 10 },
            "{verb:?}"
        );
    }
}

/// kill -9 at random moments of `token create` on a new SQLite store: every
/// verb still reads what is left, and the next apply lands.
#[test]
fn a_kill_while_a_store_is_created_leaves_a_usable_store() {
    let bin = env!("CARGO_BIN_EXE_roster");
    let db = "sqlite:t.db";
    for i in 0..16u64 {
        let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
        let mut child = Command::new(bin)
            .args(["token", "create", "--store", db, "--name", "a"])
            .current_dir(r.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(i * 3 % 40));
        let _ = child.kill();
        let _ = child.wait();
        r.ok(&["token", "list", "--store", db]);
        r.ok(&["plan", "--store", db]);
        r.ok(&["export", "--store", db]);
        r.ok(&["log", "--store", db, "--verify"]);
        r.ok(&["apply", "--yes", "--store", db]);
        r.ok(&["token", "list", "--store", db]);
    }
    // What a killed roster left while it made a store under a temporary
    // name goes once it is a minute old; a store being made now stays.
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    let r = r
        .file(".t.db.new-old.db", "x")
        .file(".t.db.new-young.db", "x");
    let aged = Command::new("touch")
        .args(["-d", "2 minutes ago", ".t.db.new-old.db"])
        .current_dir(r.path())
        .status()
        .unwrap();
    assert!(aged.success());
    r.ok(&["apply", "--yes", "--store", db]);
    assert!(!r.path().join(".t.db.new-old.db").exists());
    assert!(r.path().join(".t.db.new-young.db").exists());
}

/// The store's files hold password hashes, activation tokens and personal
/// data: owner only, whatever the umask, whichever verb made the store.
#[cfg(unix)]
#[test]
fn sqlite_store_files_are_private() {
    for make in [
        "apply --yes --store sqlite:store.db",
        "token create --name ci --store sqlite:store.db",
        "plan --store sqlite:store.db -o plan.json",
        // `serve` below makes the store on a new path.
        "",
    ] {
        store_files_are_private_when_made_by(make);
    }
}

#[cfg(unix)]
fn store_files_are_private_when_made_by(make: &str) {
    use std::os::unix::fs::PermissionsExt;
    let r = roster().copy("examples/worknet/roster.yaml", "roster.yaml");
    let mode = |f: &str| {
        std::fs::metadata(r.path().join(f))
            .map(|m| m.permissions().mode() & 0o777)
            .map_err(|e| format!("{f}: {e}"))
    };
    // Run under umask 022, so files made with the umask's mode would show.
    let sh = |cmd: &str| {
        Command::new("sh")
            .args(["-c", &format!("umask 022; {cmd}")])
            .current_dir(r.path())
            .env("NO_COLOR", "1")
            .env_remove("ROSTER_STORE")
            .output()
            .unwrap()
    };
    let bin = env!("CARGO_BIN_EXE_roster");
    if !make.is_empty() {
        let out = sh(&format!("{bin} {make}"));
        assert!(
            out.status.success(),
            "{make}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(mode("store.db"), Ok(0o600), "{make}");
    } else {
        assert!(mode("store.db").is_err());
    }
    // A process that keeps the store open (as `roster serve` does once a
    // request has read it), so the -wal and -shm files exist to be looked at.
    let server = Command::new("sh")
        .args([
            "-c",
            &format!("umask 022; exec {bin} serve --listen 127.0.0.1:0 --store sqlite:store.db"),
        ])
        .current_dir(r.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Kill(server);
    let mut line = String::new();
    use std::io::BufRead as _;
    std::io::BufReader::new(server.0.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in: {line}"));
    // A token is looked up in the store: the server opens it and keeps it.
    let unknown = format!("rst_{}", "0".repeat(64));
    let read = super::serve::http("GET", &format!("{base}/Users"), Some(&unknown), None, &[]);
    assert_eq!(read.status, 401, "{}", read.body);
    // An apply while the server holds the store open.
    std::fs::write(
        r.path().join("more.yaml"),
        "version: 1\ngroups:\n  - name: More\n",
    )
    .unwrap();
    let out = sh(&format!(
        "{bin} apply --yes --store sqlite:store.db more.yaml"
    ));
    assert!(
        out.status.success(),
        "{make}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["store.db", "store.db-wal", "store.db-shm"] {
        assert_eq!(mode(f), Ok(0o600), "{make}: {f} ({line})");
    }
    drop(server);
}

/// A partner declared `active: false` who shares name and birth date with
/// an active partner: the second apply of the same roster changes nothing.
fn applying_twice_keeps_an_inactive_look_alike_settled(b: Backend) {
    let person = |email: &str, extra: &str| {
        format!(
            "  - email: {email}\n    first_name: Chris\n    last_name: Twin\n    birth_date: 1980-02-02\n    phone: \"217-555-0100\"\n    zip: \"62701\"\n{extra}"
        )
    };
    let start = format!(
        "version: 1\ngroups:\n  - name: G\n    members: [a@example.org, b@example.org]\npartners:\n{}{}",
        person("a@example.org", ""),
        person("b@example.org", "")
    );
    let off = format!(
        "version: 1\ngroups:\n  - name: G\n    members: [a@example.org]\npartners:\n{}{}policy:\n  max_removals: 5\n",
        person("a@example.org", ""),
        person("b@example.org", "    active: false\n")
    );
    let r = b.roster().file("start.yaml", start).file("off.yaml", off);
    r.ok(&["apply", "--yes", "--store", r.db(), "start.yaml"]);
    let first = r.ok(&["apply", "--yes", "--store", r.db(), "off.yaml"]);
    assert!(
        first.stdout.contains("Applied 2 actions"),
        "{}",
        first.stdout
    );
    let rev = r.revision();
    let again = r.ok(&["apply", "--yes", "--store", r.db(), "off.yaml"]);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    assert_eq!(r.revision(), rev);
    let (code, plan) = r.plan_json("off.yaml");
    assert_eq!(code, 0);
    assert_eq!(plan["resolutions"][1]["outcome"], "matched");
    assert_eq!(plan["resolutions"][1]["via"], "inactive_email");
}

/// On a terminal, a plan that changed while its reader was deciding is
/// shown again and asked again; nothing lands on the first 'yes'.
fn an_interactive_apply_whose_plan_changed_asks_again(b: Backend) {
    use std::io::{Read as _, Write as _};
    let r = b
        .roster()
        .file(
            "mine.yaml",
            "version: 1\ngroups:\n  - name: Shared\n  - name: Mine\n",
        )
        .file("other.yaml", "version: 1\ngroups:\n  - name: Shared\n");
    let cmd = format!(
        "{} apply --store {} mine.yaml",
        env!("CARGO_BIN_EXE_roster"),
        r.db()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(r.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_for = |prompts: usize| {
        let start = std::time::Instant::now();
        while seen
            .lock()
            .unwrap()
            .matches("Only 'yes' is accepted")
            .count()
            < prompts
        {
            assert!(
                start.elapsed().as_secs() < 30,
                "no prompt: {}",
                seen.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for(1);
    assert!(seen.lock().unwrap().contains("2 groups to create"));
    // Someone else creates one of the groups meanwhile.
    r.ok(&["apply", "--yes", "--store", r.db(), "other.yaml"]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"yes\n").unwrap();
    wait_for(2);
    assert_eq!(r.revision(), 1, "the first 'yes' applied nothing");
    stdin.write_all(b"yes\n").unwrap();
    drop(stdin);
    child.wait().unwrap();
    reader.join().unwrap();
    let out = seen.lock().unwrap().clone();
    assert!(
        out.contains("the store changed since this plan was shown"),
        "{out}"
    );
    assert!(out.contains("1 group to create"), "{out}");
    assert!(out.contains("Applied 1 action to"), "{out}");
    assert_eq!(r.revision(), 2);
}

/// The caller's path, not the artifact's content, says whether `apply` reads
/// a saved plan or a roster: a roster put where the plan was is refused.
fn a_roster_in_place_of_the_saved_plan_is_refused(b: Backend) {
    let r = b
        .roster()
        .copy("examples/worknet-live/roster.yaml", "live/roster.yaml");
    r.ok(&["apply", "--yes", "--store", r.db(), "live"]);
    let rev = r.revision();
    let hostile = "version: 1\ngroups:\n  - name: Legacy Pilot Group\n    members: []\npartners: []\npolicy:\n  max_removals: \"100%\"\n  deactivate_orphans: true\n";
    let refused = |r: &Roster, target: &str, why: &str| {
        let out = r.cmd(&["apply", "--yes", "--store", r.db(), target]);
        assert_eq!(out.code, 1, "{target}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(why), "{target}: {}", out.stderr);
        assert_eq!(r.revision(), rev, "{target} changed the store");
    };
    // A directory named plan.json holding a roster.
    r.ok(&["plan", "--store", r.db(), "live", "-o", "plan.json"]);
    std::fs::remove_file(r.path().join("plan.json")).unwrap();
    let r = r.file("plan.json/evil.yaml", hostile);
    refused(&r, "plan.json", "cannot read the plan");
    refused(&r, "plan.json/", "cannot read the plan");
    // A symlink named plan.json to a directory holding a roster.
    std::fs::remove_dir_all(r.path().join("plan.json")).unwrap();
    let r = r.file("evil/evil.yaml", hostile);
    std::os::unix::fs::symlink(r.path().join("evil"), r.path().join("plan.json")).unwrap();
    refused(&r, "plan.json", "cannot read the plan");
    // YAML written over a plan saved under another name.
    r.ok(&["plan", "--store", r.db(), "live", "-o", "plan.out"]);
    let r = r.file("plan.out", hostile);
    refused(&r, "plan.out", "not a roster plan");
    // A roster that is not JSON in a .json file.
    let r = r.file("roster.json", hostile);
    refused(&r, "roster.json", "not a roster plan");
    // Rosters named as rosters still apply: a directory and a .yaml file.
    let r = r.file("more/more.yaml", "version: 1\ngroups:\n  - name: More\n");
    r.ok(&["apply", "--yes", "--store", r.db(), "more"]);
    assert_eq!(r.revision(), rev + 1);
    let r = r.file(
        "more.yml",
        "version: 1\ngroups:\n  - name: More\n  - name: Yet More\n",
    );
    r.ok(&["apply", "--yes", "--store", r.db(), "more.yml"]);
    assert_eq!(r.revision(), rev + 2);
    r.ok(&["apply", "--yes", "--store", r.db(), "live/roster.yaml"]);
}

on_every_store!(
    section_9_plans_apply_export_and_log_every_new_op,
    section_9_bad_input_is_refused_with_its_reason,
    sign_in_per_partner_wins_over_onboarding,
    an_account_looked_up_twice_keeps_its_grants,
    diff_shows_a_pending_rename_and_no_false_membership_change,
    shipped_example_shows_every_rung_of_the_ladder,
    apply_then_apply_again_changes_nothing,
    printed_plans_hide_personal_data_and_saved_plans_keep_it,
    stale_plans_are_refused,
    plans_for_another_store_and_broken_plan_files_are_refused,
    removals_beyond_max_removals_need_a_flag,
    an_apply_that_fails_half_way_changes_nothing,
    password_onboarding_writes_passwords_only_to_the_credentials_file,
    the_audit_chain_detects_tampering,
    log_since_filters_and_bad_times_are_errors,
    invitations_list_pending_and_due_ones,
    a_second_apply_waits_for_the_lock_or_fails_cleanly,
    concurrent_applies_take_turns,
    inactive_partners_orphans_and_profiles,
    unmanaged_groups_are_warned_about_or_emptied,
    markdown_plans_fold_groups,
    export_then_plan_shows_no_changes,
    export_of_older_accounts_checks_and_plans_clean,
    export_on_stdout_leaves_out_personal_data,
    diff_shows_live_against_desired_with_personal_data_masked,
    plan_schema_is_checked_in_current_and_plans_follow_it,
    files_that_cannot_be_written_and_newer_stores_are_named,
    apply_asks_on_a_terminal_and_only_yes_goes_on,
    saved_plans_are_sealed,
    eight_concurrent_first_applies_all_land,
    apply_lands_while_serve_takes_writes,
    savepoints_undo_one_write_and_keep_its_neighbours,
    applying_twice_keeps_an_inactive_look_alike_settled,
    an_interactive_apply_whose_plan_changed_asks_again,
    a_roster_in_place_of_the_saved_plan_is_refused,
);

/// A roster of SPEC §9 (role catalog, default roles, entitlements, a case
/// manager, single sign-on, a licence); `noelle` is the rest of her entry.
fn section_9_roster(noelle: &str, more: &str) -> String {
    format!(
        "version: 1
policy:
  required_fields: []
  roles: [public-viewer, individual, caseworker, supervisor]
  default_roles: [caseworker]
  entitlements:
    products: [webcenter, hrcenter]
    coverage: groups
  max_active_accounts: 3
  max_removals: 5
groups:
  - name: North Team
    members: [noelle.holiday@example.edu, brandon.mitchell@example.edu, zed@example.edu]
partners:
  - email: noelle.holiday@example.edu
    first_name: Noelle
    last_name: Holiday
    birth_date: 1980-01-01
    roles: [caseworker, supervisor]
    entitlements:
      products: [webcenter]
      coverage: [North Team]
    case_manager: brandon.mitchell@example.edu
    sign_in: sso
{noelle}  - email: brandon.mitchell@example.edu
    first_name: Brandon
    last_name: Mitchell
    birth_date: 1975-05-05
  - email: zed@example.edu
    first_name: Zed
    last_name: Quinn
    birth_date: 1999-09-09
    role: individual
    case_manager: brandon.mitchell@example.edu
{more}"
    )
}

fn section_9_plans_apply_export_and_log_every_new_op(b: Backend) {
    let r = b.roster().file(
        "roster.yaml",
        section_9_roster("    account: NHoliday\n", ""),
    );
    let (code, plan) = r.plan_json("roster.yaml");
    assert_eq!(code, 0, "{plan:#}");
    assert_eq!(
        ops(&plan),
        [
            "create_group North Team",
            "create_account BMitchell",
            "create_account NHoliday",
            "create_account ZQuinn",
            "grant_entitlement NHoliday",
            "grant_entitlement NHoliday",
            "add_membership BMitchell North Team",
            "add_membership NHoliday North Team",
            "add_membership ZQuinn North Team",
            "set_case_manager NHoliday",
            "set_case_manager ZQuinn",
        ]
    );
    assert_eq!(
        plan["actions"][2]["roles"],
        serde_json::json!(["caseworker", "supervisor"])
    );
    assert_eq!(plan["actions"][2]["sign_in"], "sso");
    assert_eq!(
        plan["actions"][1]["roles"],
        serde_json::json!(["caseworker"])
    );
    assert_eq!(
        plan["seats"],
        serde_json::json!({"used": 3, "max": 3, "free": 0})
    );
    let human = r.ok(&["plan", "--store", r.db(), "roster.yaml"]).stdout;
    assert!(human.contains("+ NHoliday: products webcenter"), "{human}");
    assert!(
        human.contains("~ ZQuinn: case manager BMitchell"),
        "{human}"
    );
    assert!(human.contains("Seats: 3 of 3 used, 0 free."), "{human}");
    r.ok(&["apply", "--yes", "--store", r.db(), "roster.yaml"]);
    let (_, again) = r.plan_json("roster.yaml");
    assert_eq!(ops(&again), Vec::<String>::new(), "{again:#}");
    // `diff` reads roles, entitlements and case managers on both sides.
    let diff = r.ok(&["diff", "--store", r.db(), "roster.yaml"]);
    assert_eq!(diff.stdout, "", "{}", diff.stdout);
    // Single sign-on: no invitation for Noelle.
    let invited = r.ok(&["invitations", "--store", r.db()]).stdout;
    assert!(
        !invited.contains("NHoliday") && invited.contains("ZQuinn"),
        "{invited}"
    );

    // Export writes roles, entitlements, case managers and sign-in; the
    // export plans with no changes.
    r.ok(&["export", "--store", r.db(), "-o", "export.yaml"]);
    let exported = std::fs::read_to_string(r.path().join("export.yaml")).unwrap();
    for line in [
        "    roles: [caseworker, supervisor]\n",
        "    case_manager: brandon.mitchell@example.edu\n",
        "    sign_in: sso\n",
        "    role: individual\n",
    ] {
        assert!(exported.contains(line), "{line:?} in\n{exported}");
    }
    let (code, from_export) = r.plan_json("export.yaml");
    assert_eq!((code, ops(&from_export)), (0, vec![]), "{from_export:#}");

    // Fewer grants and a rename (`previously`), then nothing left to do.
    let renamed = section_9_roster("    account: NHoliday3\n    previously: NHoliday\n", "")
        .replace("roles: [caseworker, supervisor]", "roles: [caseworker]")
        .replace("      products: [webcenter]\n", "")
        .replace(
            "    role: individual\n    case_manager: brandon.mitchell@example.edu\n",
            "    role: individual\n",
        );
    let r = r.file("renamed.yaml", renamed);
    let diff = r.ok(&["diff", "--store", r.db(), "renamed.yaml"]).stdout;
    assert!(
        diff.contains("-    roles: [caseworker, supervisor]\n+    role: caseworker\n"),
        "{diff}"
    );
    let (code, plan) = r.plan_json("renamed.yaml");
    assert_eq!(code, 0, "{plan:#}");
    assert_eq!(
        ops(&plan),
        [
            "rename_account NHoliday",
            "set_case_manager ZQuinn",
            "revoke_entitlement NHoliday3",
            "revoke_role NHoliday3",
        ]
    );
    assert_eq!(plan["actions"][0]["new_name"], "NHoliday3");
    assert_eq!(plan["actions"][1]["case_manager"], Value::Null);
    r.ok(&["apply", "--yes", "--store", r.db(), "renamed.yaml"]);
    let (_, again) = r.plan_json("renamed.yaml");
    assert_eq!(ops(&again), Vec::<String>::new(), "{again:#}");
    r.ok(&["log", "--store", r.db(), "--verify"]);
    let log = r.ok(&["log", "--store", r.db()]).stdout;
    for op in [
        "grant_entitlement",
        "set_case_manager",
        "rename_account",
        "revoke_entitlement",
        "revoke_role",
    ] {
        assert!(log.contains(op), "{op} in\n{log}");
    }
}

fn section_9_bad_input_is_refused_with_its_reason(b: Backend) {
    let r = b.roster().file(
        "roster.yaml",
        section_9_roster("    account: NHoliday\n", ""),
    );
    r.ok(&["apply", "--yes", "--store", r.db(), "roster.yaml"]);
    // A rename onto a name another account holds.
    let r = r.file(
        "taken.yaml",
        section_9_roster("    account: BMitchell\n    previously: NHoliday\n", ""),
    );
    let (code, plan) = r.plan_json("taken.yaml");
    assert_eq!(code, 1);
    let noelle = &plan["resolutions"][0];
    assert_eq!(noelle["outcome"], "conflict", "{plan:#}");
    assert_eq!(
        noelle["reason"],
        "`NHoliday` cannot be renamed to `BMitchell`: an account `BMitchell` already exists; pick another name, or remove `previously` if the rename is done"
    );
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "taken.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    // One partner more than the licence.
    let r = r.file(
        "seats.yaml",
        section_9_roster(
            "    account: NHoliday\n",
            "  - email: ann@example.edu\n    first_name: Ann\n    last_name: Lee\n",
        ),
    );
    let (code, plan) = r.plan_json("seats.yaml");
    assert_eq!(code, 1);
    assert_eq!(
        plan["violations"],
        serde_json::json!([{
            "code": "seats-exceeded",
            "message": "this plan leaves 4 active accounts in the store, more than max_active_accounts allows (3)",
            "help": "deactivate accounts (`active: false`), or raise `max_active_accounts` when the licence grows",
        }])
    );
    assert_eq!(
        plan["seats"],
        serde_json::json!({"used": 4, "max": 3, "free": 0})
    );
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "seats.yaml"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("policy violation"), "{}", out.stderr);
    assert_eq!(r.revision(), 11, "nothing was applied");
}

/// A store made before roles became a catalog (schema version 4): each
/// account's one role becomes its one role row, and the audit chain made
/// then still verifies.
#[test]
fn a_schema_4_store_migrates_its_roles_and_keeps_its_chain() {
    let r = roster();
    let path = r.path().join("store.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    for m in [
        include_str!("../../src/store/migrations/0001_init.sql"),
        include_str!("../../src/store/migrations/0002_tokens.sql"),
        include_str!("../../src/store/migrations/0003_ids_and_scopes.sql"),
        include_str!("../../src/store/migrations/0004_plan_key.sql"),
    ] {
        c.execute_batch(m).unwrap();
    }
    c.execute_batch(&format!("PRAGMA user_version = 4;{}", SCHEMA_4_ROWS))
        .unwrap();
    drop(c);
    let url = format!("sqlite:{}", path.display());
    schema_4_migrates(&r, &url);
}

/// [`a_schema_4_store_migrates_its_roles_and_keeps_its_chain`] on PostgreSQL.
#[test]
fn a_schema_4_postgres_store_migrates_its_roles_and_keeps_its_chain() {
    if crate::pg::skipped() {
        return;
    }
    let (url, _) = crate::pg::database();
    let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    for m in [
        include_str!("../../src/store/migrations/postgres/0001_init.sql"),
        include_str!("../../src/store/migrations/postgres/0002_tokens.sql"),
        include_str!("../../src/store/migrations/postgres/0003_ids_and_scopes.sql"),
        include_str!("../../src/store/migrations/postgres/0004_plan_key.sql"),
    ] {
        c.batch_execute(m).unwrap();
    }
    c.batch_execute(&format!(
        "INSERT INTO meta (key, value) VALUES ('schema_version', 4) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value;{}",
        SCHEMA_4_ROWS.replace("1, 'password_set'", "TRUE, 'password_set'")
    ))
    .unwrap();
    drop(c);
    schema_4_migrates(&roster(), &url);
}

/// One account with the role `individual` and its audit row, as a schema
/// 4 store holds them.
const SCHEMA_4_ROWS: &str = "
    UPDATE meta SET value = 1 WHERE key = 'revision';
    INSERT INTO accounts (user_name, user_key, email, email_key, first_name, last_name,
      first_key, last_key, birth_date, role, active, credential, created_at, updated_at)
    VALUES ('ALee', 'alee', 'ann@example.org', 'ann@example.org', 'Ann', 'Lee', 'ann', 'lee',
      '1990-01-01', 'individual', 1, 'password_set', '2025-01-01T00:00:00Z',
      '2025-01-01T00:00:00Z');";

fn schema_4_migrates(r: &Roster, url: &str) {
    let at = "2025-01-01T00:00:00Z";
    let after = r#"{"email":"ann@example.org","role":"individual"}"#;
    let hash = roster::store::audit::row_hash(
        roster::store::audit::GENESIS,
        1,
        at,
        "admin",
        "create_account",
        "ALee",
        None,
        Some(after),
    );
    let audit = format!(
        "INSERT INTO audit (seq, revision, at, actor, op, subject, before, after, hash)
         VALUES (1, 1, '{at}', 'admin', 'create_account', 'ALee', NULL, '{after}', '{hash}')"
    );
    if url.starts_with("sqlite:") {
        rusqlite::Connection::open(r.path().join("store.db"))
            .unwrap()
            .execute_batch(&audit)
            .unwrap();
    } else {
        ::postgres::Client::connect(url, ::postgres::NoTls)
            .unwrap()
            .batch_execute(&audit)
            .unwrap();
    }
    let store = roster::store::open(url, roster::store::Options::default()).unwrap();
    // Reading an old store asks for a migration; a write session makes it.
    assert!(store.reader().is_err());
    let mut w = store.begin("admin", "2026-01-01T00:00:00Z").unwrap();
    w.grant_role("alee", "caseworker").unwrap();
    assert_eq!(w.commit().unwrap(), 2);
    let mut reader = store.reader().unwrap();
    let ann = reader.accounts_by_user_name(&["ALee".into()]).unwrap();
    assert_eq!(ann[0].roles, ["caseworker", "individual"]);
    let log = reader.audit(None).unwrap();
    roster::store::audit::verify(&log, 2).unwrap();
    r.ok(&["log", "--store", url, "--verify"]);
}

fn sign_in_per_partner_wins_over_onboarding(b: Backend) {
    let person = |email: &str, first: &str, sign_in: &str| {
        format!(
            "  - email: {email}\n    first_name: {first}\n    last_name: Lee\n    birth_date: 1990-01-01\n{sign_in}"
        )
    };
    let roster = format!(
        "version: 1\npolicy:\n  required_fields: []\ngroups:\n  - name: G\n    members: [ann@example.org, bo@example.org, cy@example.org]\npartners:\n{}{}{}",
        person("ann@example.org", "Ann", "    sign_in: password\n"),
        person("bo@example.org", "Bo", "    sign_in: sso\n"),
        person("cy@example.org", "Cy", ""),
    );
    let r = b.roster().file("roster.yaml", roster);
    // A password for Ann needs somewhere to write it, even when apply invites.
    let out = r.cmd(&["apply", "--yes", "--store", r.db(), "roster.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("--credentials-file"), "{}", out.stderr);
    r.ok(&[
        "apply",
        "--yes",
        "--store",
        r.db(),
        "roster.yaml",
        "--credentials-file",
        "creds.csv",
    ]);
    let creds = std::fs::read_to_string(r.path().join("creds.csv")).unwrap();
    let accounts: Vec<&str> = creds
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(accounts, ["ALee"], "{creds}");
    // Cy follows --onboarding (invite); Bo signs in through the provider.
    let invited = r.ok(&["invitations", "--store", r.db()]).stdout;
    assert!(invited.contains("CLee"), "{invited}");
    assert!(
        !invited.contains("BLee") && !invited.contains("ALee"),
        "{invited}"
    );
    let (_, again) = r.plan_json("roster.yaml");
    assert_eq!(ops(&again), Vec::<String>::new());
}

/// Under `user_names: email`, `account: <email>` names the same account the
/// email finds: looked up once, it keeps its roles, and nothing is re-granted.
fn an_account_looked_up_twice_keeps_its_grants(b: Backend) {
    let roster = |account: &str| {
        format!(
            "version: 1
policy:
  required_fields: []
  roles: [public-viewer, caseworker]
  entitlements:
    products: [webcenter]
  user_names: email
partners:
  - email: ann.lee@example.edu
    first_name: Ann
    last_name: Lee
    roles: [caseworker]
    entitlements:
      products: [webcenter]
{account}"
        )
    };
    let r = b.roster().file("roster.yaml", roster(""));
    r.ok(&["apply", "--yes", "--store", r.db(), "roster.yaml"]);
    let r = r.file("pinned.yaml", roster("    account: ann.lee@example.edu\n"));
    let (code, plan) = r.plan_json("pinned.yaml");
    assert_eq!((code, ops(&plan)), (0, vec![]), "{plan:#}");
    let rev = r.revision();
    let out = r.ok(&["apply", "--yes", "--store", r.db(), "pinned.yaml"]);
    assert_eq!(r.revision(), rev, "{}", out.stdout);
    let (_, again) = r.plan_json("pinned.yaml");
    assert_eq!(ops(&again), Vec::<String>::new(), "{again:#}");
}

/// While a rename is pending, `diff` shows the store under the old name and
/// the roster under the new one, and the memberships the same on both sides.
fn diff_shows_a_pending_rename_and_no_false_membership_change(b: Backend) {
    let roster = |account: &str| {
        format!(
            "version: 1
policy:
  required_fields: []
groups:
  - name: G
    members: [ann.bee@example.edu]
partners:
  - email: ann.bee@example.edu
    first_name: Ann
    last_name: Bee
{account}"
        )
    };
    let r = b
        .roster()
        .file("roster.yaml", roster("    account: ABee\n"));
    r.ok(&["apply", "--yes", "--store", r.db(), "roster.yaml"]);
    let r = r.file(
        "renamed.yaml",
        roster("    account: ABee2\n    previously: ABee\n"),
    );
    let diff = r.ok(&["diff", "--store", r.db(), "renamed.yaml"]).stdout;
    let changed: Vec<&str> = diff
        .lines()
        .skip(2)
        .filter(|l| l.starts_with('+') || l.starts_with('-'))
        .collect();
    assert_eq!(
        changed,
        ["-    account: ABee", "+    account: ABee2"],
        "{diff}"
    );
}
