//! The SCIM client store against a real provider: the Python `scim2-server`
//! (PyPI `scim2-server==0.8.3`) on 127.0.0.1, one per test, configured with
//! its default schemas plus roster's extensions.
//!
//! The server is found through `ROSTER_SCIM2_SERVER` or `PATH`, or the tests
//! install it into `target/test-venv` (tests/cli/peers.rs);
//! `ROSTER_TEST_SCIM=skip` skips them.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "t0ken-for-tests";
const EXT_USER: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:User";
const EXT_GROUP: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const INSTALL: &str = "pip install scim2-server==0.8.3 and put it on PATH or set ROSTER_SCIM2_SERVER (or set ROSTER_TEST_SCIM=skip to skip these tests)";

/// `scim2-server`: through `ROSTER_SCIM2_SERVER`, `PATH`, or installed into
/// `target/test-venv` (tests/cli/peers.rs); `None` when skipped.
fn executable() -> Option<PathBuf> {
    super::peers::scim_tool("scim2-server")
}

/// The package's own default schemas and resource types, read through the
/// interpreter the executable runs with.
fn defaults(exe: &Path) -> (Value, Value, Value) {
    let script = std::fs::read_to_string(exe).unwrap_or_default();
    let python = script
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| "python3".into());
    let out = Command::new(&python)
        .args([
            "-c",
            "import os, scim2_server; print(os.path.join(os.path.dirname(scim2_server.__file__), 'resources'))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}; install scim2-server: {INSTALL}"));
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let read = |f: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(f))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()));
        serde_json::from_str(&text).unwrap()
    };
    (
        read("default-schemas.json"),
        read("default-resource-types.json"),
        read("default-service-provider-config.json"),
    )
}

/// How to configure a test's provider.
#[derive(Clone, Copy)]
struct Setup {
    extensions: bool,
    /// The enterprise User extension on the User resource type (the
    /// package's default).
    enterprise: bool,
    max_results: Option<u64>,
    passwords: bool,
}

const ROSTER_READY: Setup = Setup {
    extensions: true,
    enterprise: true,
    max_results: None,
    passwords: true,
};

/// A running scim2-server, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(setup: Setup) -> Option<Server> {
    let exe = executable()?;
    let (mut schemas, mut types, mut config) = defaults(&exe);
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = Vec::new();
    if !setup.enterprise {
        for t in types.as_array_mut().unwrap() {
            if let Some(list) = t.get_mut("schemaExtensions").and_then(Value::as_array_mut) {
                list.retain(|e| e["schema"] != ENTERPRISE);
            }
        }
    }
    if setup.extensions || !setup.enterprise {
        let ours: Value = serde_json::from_str(
            &std::fs::read_to_string(repo("schemas/scim/roster-extensions.json")).unwrap(),
        )
        .unwrap();
        if setup.extensions {
            schemas
                .as_array_mut()
                .unwrap()
                .extend(ours.as_array().unwrap().iter().cloned());
        }
        // SPEC §9 rides on the package's defaults: core `roles` and
        // `entitlements`, and the enterprise extension's `manager`.
        let has = |id: &str, attr: &str| {
            schemas.as_array().unwrap().iter().any(|sc| {
                sc["id"] == id
                    && sc["attributes"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x["name"] == attr))
            })
        };
        for (id, attr) in [
            ("urn:ietf:params:scim:schemas:core:2.0:User", "roles"),
            ("urn:ietf:params:scim:schemas:core:2.0:User", "entitlements"),
            (ENTERPRISE, "manager"),
        ] {
            assert!(
                has(id, attr),
                "scim2-server's default schemas lack {id}:{attr}"
            );
        }
        for t in types.as_array_mut().unwrap() {
            let exts: Vec<&str> = match t["id"].as_str() {
                Some("User") => [(EXT_USER, setup.extensions), (ENTERPRISE, setup.enterprise)]
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(e, _)| *e)
                    .collect(),
                Some("Group") if setup.extensions => vec![EXT_GROUP],
                _ => continue,
            };
            if t.get("schemaExtensions").is_none() {
                t["schemaExtensions"] = serde_json::json!([]);
            }
            let list = t["schemaExtensions"].as_array_mut().unwrap();
            for ext in exts {
                if !list.iter().any(|e| e["schema"] == *ext) {
                    list.push(serde_json::json!({"schema": ext, "required": false}));
                }
            }
        }
        for (name, v) in [("schemas.json", &schemas), ("types.json", &types)] {
            std::fs::write(dir.path().join(name), v.to_string()).unwrap();
        }
        args.extend([
            "--schema".into(),
            dir.path().join("schemas.json").display().to_string(),
        ]);
        args.extend([
            "--resource-type".into(),
            dir.path().join("types.json").display().to_string(),
        ]);
    }
    if setup.max_results.is_some() || !setup.passwords {
        if let Some(n) = setup.max_results {
            config["filter"]["maxResults"] = n.into();
        }
        config["changePassword"]["supported"] = setup.passwords.into();
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        args.extend([
            "--service-provider-config".into(),
            dir.path().join("config.json").display().to_string(),
        ]);
    }
    for _ in 0..3 {
        let port = free_port();
        let mut child = Command::new(&exe)
            .args(&args)
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
            .args(["--bearer-token", TOKEN])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}; install it: {INSTALL}", exe.display()));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Server {
                    child,
                    port,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Lost the port to another process, or the server failed: say why if it said.
        let _ = child.kill();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.wait();
        if !err.contains("Address already in use") {
            panic!("scim2-server did not start: {err}");
        }
    }
    panic!("scim2-server did not start: no free port");
}

impl Server {
    fn url(&self) -> String {
        format!("scim+http://127.0.0.1:{}/v2", self.port)
    }

    /// One raw request (scim2-server speaks HTTP/1.0 and closes): status and JSON body.
    fn http(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        raw(self.port, method, path, body)
    }

    fn user(&self, user_name: &str) -> Value {
        let filter = format!("userName eq {}", Value::String(user_name.into()));
        let (status, v) = self.http("GET", &format!("/v2/Users?filter={}", pct(&filter)), None);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["totalResults"], 1, "{user_name}: {v}");
        v["Resources"][0].clone()
    }

    fn users(&self) -> u64 {
        let (_, v) = self.http("GET", "/v2/Users?count=0", None);
        v["totalResults"].as_u64().unwrap()
    }
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn raw(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

impl Roster {
    fn scim(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ROSTER_FORMAT")
            .env_remove("ROSTER_STORE")
            .env_remove("ROSTER_SHOW_PII")
            .env_remove("ROSTER_SCIM_LOOKUP")
            .env_remove("ROSTER_VERBOSE")
            .env("ROSTER_SCIM_TOKEN", TOKEN)
            // Saved plans of a SCIM store are sealed with this key.
            .env("ROSTER_PLAN_KEY", "scim-tests-plan-key-0123456789abcdef")
            .env("NO_COLOR", "1")
            .env("ROSTER_ACTOR", "test-admin")
            .stdin(Stdio::null());
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

    fn scim_ok(&self, args: &[&str]) -> Output {
        let out = self.scim(args, &[]);
        assert_eq!(out.code, 0, "{args:?}\n{}\n{}", out.stdout, out.stderr);
        out
    }

    /// `plan --detailed-exitcode` of `rosters` (none: the default) on the
    /// store at `url` shows no changes.
    fn scim_no_changes(&self, url: &str, rosters: &[&str]) {
        let mut args = vec!["plan", "--store", url, "--detailed-exitcode"];
        args.extend_from_slice(rosters);
        let out = self.scim(&args, &[]);
        assert_eq!(out.code, 0, "{rosters:?}: {}{}", out.stdout, out.stderr);
    }

    /// The plan of `roster` on the SQLite store `ref.db`: what a plan
    /// through SCIM must equal.
    fn reference_plan(&self, roster: &str) -> Value {
        let args = [
            "plan",
            "--store",
            "sqlite:ref.db",
            roster,
            "--format",
            "json",
        ];
        let out = self.scim(&args, &[]);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr))
    }

    fn scim_plan(&self, url: &str, roster: &str, env: &[(&str, &str)]) -> (i32, Value, u64) {
        let out = self.scim(
            &["plan", "-v", "--store", url, roster, "--format", "json"],
            env,
        );
        let v = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
        (out.code, v, requests(&out.stderr))
    }

    fn with(self, example: &str, to: &str) -> Self {
        let text = std::fs::read_to_string(repo(example)).unwrap();
        self.file(to, text)
    }
}

/// `store: N requests` from `--verbose`.
fn requests(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("store: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in: {stderr}"))
}

fn ops(plan: &Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            [&a["op"], &a["account"], &a["group"]]
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn resolutions(plan: &Value) -> Vec<(String, String, Value, Value, Value)> {
    plan["resolutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["partner"].as_str().unwrap().to_string(),
                x["outcome"].as_str().unwrap().to_string(),
                x["via"].clone(),
                x.get("account").cloned().unwrap_or(Value::Null),
                x.get("candidates").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

#[test]
fn the_ladder_through_scim_is_the_ladder_of_the_embedded_store() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    let r = roster()
        .with("examples/worknet-live/roster.yaml", "live.yaml")
        .with("examples/worknet/roster.yaml", "roster.yaml");
    r.scim_ok(&["apply", "--yes", "--store", &url, "live.yaml"]);
    // The same roster and store on SQLite, for the expected plan.
    r.scim_ok(&["apply", "--yes", "--store", "sqlite:ref.db", "live.yaml"]);
    let want = r.reference_plan("roster.yaml");
    for mode in ["auto", "filter", "list"] {
        let (code, plan, n) = r.scim_plan(&url, "roster.yaml", &[("ROSTER_SCIM_LOOKUP", mode)]);
        assert_eq!(code, 1, "unresolved partners make plan exit 1");
        assert_eq!(resolutions(&plan), resolutions(&want), "{mode}");
        assert_eq!(
            plan["resolutions"][0]["differs"],
            serde_json::json!(["last_name", "birth_date"])
        );
        assert_eq!(ops(&plan), ops(&want), "{mode}");
        assert_eq!(plan["summary"], want["summary"], "{mode}");
        assert_eq!(plan["store"]["revision"], 0);
        let codes: Vec<&str> = plan["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["profile-drift", "unmanaged-group"], "{mode}");
        assert!(n <= 12, "{mode}: {n} requests");
    }
    // What the provider does not keep is said so.
    for verb in ["log", "invitations"] {
        let out = r.scim(&[verb, "--store", &url], &[]);
        assert_eq!(out.code, 1);
        assert!(
            out.stderr
                .contains("not available on a SCIM store; the provider keeps its own log"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn apply_lands_and_a_second_plan_is_empty() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    let r = roster().with("examples/worknet/roster.yaml", "roster.yaml");
    let out = r.scim(&["plan", "--store", &url, "--detailed-exitcode"], &[]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let applied = r.scim_ok(&["apply", "--yes", "-v", "--store", &url]);
    assert!(applied.stdout.contains("Applied "), "{}", applied.stdout);
    r.scim_no_changes(&url, &[]);
    let again = r.scim_ok(&["apply", "--yes", "--store", &url]);
    assert!(!again.stdout.contains("Applied "), "{}", again.stdout);
    // What landed is what the roster says, extension included.
    let jordan = server.user("JJones");
    assert_eq!(jordan["name"]["familyName"], "Jones");
    assert_eq!(jordan["active"], true);
    assert_eq!(jordan["roles"][0]["value"], "individual");
    assert!(jordan[EXT_USER]["birthDate"].is_string());
    let (_, groups) = server.http("GET", "/v2/Groups", None);
    let lakeland = groups["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["displayName"] == "Lakeland Career Services")
        .unwrap()
        .clone();
    assert_eq!(lakeland[EXT_GROUP]["lwia"], 23);
    assert!(
        !lakeland[EXT_GROUP]["userManagers"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn deactivation_sets_active_false_and_keeps_the_user() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    let partner = |active: bool| {
        format!(
            "version: 1\ngroups:\n  - name: ABC\n    members:\n      - email: mandy@example.com\n        user_manager: true\n      - lee@example.com\npartners:\n{MANDY}  - email: lee@example.com\n    first_name: Lee\n    last_name: Park\n    birth_date: 1980-02-02\n    active: {active}\n{NO_REQUIRED}"
        )
    };
    let r = roster().file("roster.yaml", partner(true));
    r.scim_ok(&["apply", "--yes", "--store", &url]);
    assert_eq!(server.user("LPark")["active"], true);
    let r = r.file("roster.yaml", partner(false));
    let (_, plan, _) = r.scim_plan(&url, "roster.yaml", &[]);
    assert_eq!(ops(&plan), ["deactivate_account LPark"]);
    r.scim_ok(&["apply", "--yes", "--store", &url]);
    let lee = server.user("LPark");
    assert_eq!(lee["active"], false, "{lee}");
    r.scim_no_changes(&url, &[]);
    // Back again: reactivated, never recreated.
    let r = r.file("roster.yaml", partner(true));
    let (_, plan, _) = r.scim_plan(&url, "roster.yaml", &[]);
    assert_eq!(ops(&plan), ["reactivate_account LPark"]);
    r.scim_ok(&["apply", "--yes", "--store", &url]);
    assert_eq!(server.user("LPark")["active"], true);
    assert_eq!(server.users(), 2);
}

#[test]
fn quotes_and_backslashes_round_trip_and_cannot_break_a_filter() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    let yaml = r#"version: 1
groups:
  - name: 'Team "A" \ B'
    members:
      - ann@example.com
      - bo@example.com
partners:
  - email: ann@example.com
    first_name: Ann
    last_name: 'O"Brien\Jr'
    birth_date: 1990-05-01
    account: 'AO"Brien\x'
  - email: bo@example.com
    first_name: Bo
    last_name: Lind
    account: 'x" or userName pr or "'
policy:
  required_fields: []
"#;
    let r = roster().file("roster.yaml", yaml);
    r.scim_ok(&["apply", "--yes", "--store", &url]);
    let ann = server.user("AO\"Brien\\x");
    assert_eq!(ann["name"]["familyName"], "O\"Brien\\Jr");
    server.user("x\" or userName pr or \"");
    // Looked up by filters holding those values: found, exactly, nothing else.
    for mode in ["filter", "list"] {
        let (code, plan, _) = r.scim_plan(&url, "roster.yaml", &[("ROSTER_SCIM_LOOKUP", mode)]);
        assert_eq!(code, 0, "{plan}");
        assert_eq!(ops(&plan), Vec::<String>::new(), "{mode}");
        let outcomes: Vec<_> = resolutions(&plan).into_iter().map(|r| (r.1, r.2)).collect();
        assert_eq!(
            outcomes,
            [
                ("matched".to_string(), serde_json::json!("pinned")),
                ("matched".to_string(), serde_json::json!("pinned"))
            ]
        );
    }
    // A third person named like Ann is found by name and birth date.
    let r = r.file(
        "roster.yaml",
        yaml.replace("ann@example.com", "ann@new.example.com")
            .replace("    account: 'AO\"Brien\\x'\n", ""),
    );
    let (_, plan, _) = r.scim_plan(&url, "roster.yaml", &[("ROSTER_SCIM_LOOKUP", "filter")]);
    let ann = &plan["resolutions"][0];
    assert_eq!(ann["outcome"], "needs_confirmation", "{plan}");
    assert_eq!(ann["via"], "name_dob");
    assert_eq!(ann["candidates"], serde_json::json!(["AO\"Brien\\x"]));
}

/// A roster of `n` partners in `n / 30` groups, one manager each.
fn generated(n: usize) -> String {
    let mut y = String::from("version: 1\ngroups:\n");
    for g in 0..n.div_ceil(30) {
        y.push_str(&format!(
            "  - name: Agency {g:03}\n    lwia: {}\n    members:\n",
            g % 30
        ));
        for p in (g * 30)..((g + 1) * 30).min(n) {
            if p == g * 30 {
                y.push_str(&format!(
                    "      - email: p{p}@example.org\n        user_manager: true\n"
                ));
            } else {
                y.push_str(&format!("      - p{p}@example.org\n"));
            }
        }
    }
    y.push_str("partners:\n");
    for p in 0..n {
        y.push_str(&format!(
            "  - email: p{p}@example.org\n    first_name: Pat{}\n    last_name: Doe{}\n    birth_date: 19{:02}-0{}-1{}\n",
            p % 7,
            p / 7,
            50 + p % 40,
            1 + p % 9,
            p % 10
        ));
    }
    y.push_str(NO_REQUIRED);
    y
}

/// Test rosters leave out phones and ZIP codes.
const NO_REQUIRED: &str = "policy:\n  required_fields: []\n";

#[test]
fn look_ups_are_batched_not_one_per_person() {
    // Small pages, so listing 300 users takes 15 requests and a few
    // partners are cheaper to look up by filter.
    let Some(server) = start(Setup {
        max_results: Some(20),
        ..ROSTER_READY
    }) else {
        return;
    };
    let url = server.url();
    let r = roster().file("big.yaml", generated(300));
    let out = r.scim(&["apply", "--yes", "-v", "--store", &url, "big.yaml"], &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let apply_requests = requests(&out.stderr);
    assert_eq!(server.users(), 300);
    // 300 creates in one Bulk request, 10 groups and their memberships.
    assert!(apply_requests <= 40, "apply: {apply_requests}");
    // Planning 300 partners: one request per person per rung would be 900+.
    let (code, plan, n) = r.scim_plan(&url, "big.yaml", &[]);
    assert_eq!(code, 0, "{plan}");
    assert_eq!(plan["summary"]["create_accounts"], 0);
    assert!(ops(&plan).is_empty(), "{:?}", ops(&plan));
    assert!(n <= 25, "plan of 300 partners took {n} requests");
    // Three partners against 300 accounts: filters, not 15 pages.
    let three = "version: 1\ngroups:\n  - name: Agency 000\n    lwia: 0\n    members:\n      - email: p0@example.org\n        user_manager: true\n      - p1@example.org\n      - p2@example.org\npartners:\n";
    let mut y = three.to_string();
    y.push_str(generated(3).split("partners:\n").nth(1).unwrap());
    let r = r.file("three.yaml", y);
    let (_, plan, n) = r.scim_plan(&url, "three.yaml", &[]);
    let outcomes: Vec<String> = resolutions(&plan).into_iter().map(|r| r.1).collect();
    assert_eq!(outcomes, ["matched", "matched", "matched"]);
    // Agency 000 keeps its other 27 members only if the plan says remove them.
    assert_eq!(plan["summary"]["remove_memberships"], 27);
    assert!(n <= 10, "plan of 3 partners took {n} requests");
}

#[test]
fn a_wrong_or_missing_token_is_named_and_never_printed() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    let r = roster().with("examples/worknet/roster.yaml", "roster.yaml");
    let out = r.scim(
        &["plan", "--store", &url],
        &[("ROSTER_SCIM_TOKEN", "wrong-secret-value")],
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
    assert!(
        out.stderr.contains("check ROSTER_SCIM_TOKEN"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("wrong-secret-value") && !out.stdout.contains("wrong-secret-value")
    );
    let out = r.scim(
        &["apply", "--yes", "--store", &url],
        &[("ROSTER_SCIM_TOKEN", "")],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("set ROSTER_SCIM_TOKEN"),
        "{}",
        out.stderr
    );
    assert_eq!(server.users(), 0);
}

#[test]
fn a_provider_that_is_down_or_not_scim_is_named() {
    let port = free_port();
    let r = roster().with("examples/worknet/roster.yaml", "roster.yaml");
    let url = format!("scim+http://127.0.0.1:{port}/v2");
    let out = r.scim(&["plan", "--store", &url], &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains(&format!("cannot connect to http://127.0.0.1:{port}/v2")),
        "{}",
        out.stderr
    );
    // Something answers, but not SCIM.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let web = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            if read_request(&mut c).is_some() {
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\nConnection: close\r\n\r\n<html></html>");
            }
        }
    });
    let url = format!("scim+http://127.0.0.1:{web}/v2");
    let out = r.scim(&["plan", "--store", &url], &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("GET /ServiceProviderConfig: HTTP 200 with a body that is not JSON"),
        "{}",
        out.stderr
    );
    let out = r.scim(&["plan", "--store", "scim+https:///v2"], &[]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("HOST"), "{}", out.stderr);
}

#[test]
fn one_failure_does_not_stop_the_others_and_plan_shows_what_is_left() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    let r = roster().with("examples/worknet/roster.yaml", "roster.yaml");
    r.scim_ok(&["plan", "--store", &url, "-o", "plan.json"]);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("plan.json")).unwrap())
            .unwrap();
    let creates: Vec<String> = saved["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["op"] == "create_account")
        .map(|a| a["account"].as_str().unwrap().to_string())
        .collect();
    assert!(creates.len() >= 3, "{creates:?}");
    // Someone outside roster takes one of the names after the plan was made.
    let taken = creates[1].clone();
    let (status, _) = server.http(
        "POST",
        "/v2/Users",
        Some(&serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": taken,
            "emails": [{"value": "someone.else@example.net", "primary": true}],
        })),
    );
    assert_eq!(status, 201);
    let out = r.scim(&["apply", "--yes", "--store", &url, "plan.json"], &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "create_account {taken}: POST /Users (bulk): HTTP 409"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("run `roster plan` to see what is left"));
    // The others landed.
    assert_eq!(server.users() as usize, creates.len());
    for c in creates.iter().filter(|c| **c != taken) {
        server.user(c);
    }
    // What is left is that one person: a new name and their memberships.
    let (_, plan, _) = r.scim_plan(&url, "roster.yaml", &[]);
    let left = ops(&plan);
    assert!(!left.is_empty());
    let new_name = plan["actions"][0]["account"].as_str().unwrap().to_string();
    assert_eq!(left[0], format!("create_account {new_name}"));
    assert!(
        left.iter()
            .all(|o| o.split(' ').nth(1) == Some(new_name.as_str())),
        "{left:?}"
    );
    r.scim_ok(&["apply", "--yes", "--store", &url]);
    r.scim_no_changes(&url, &[]);
}

#[test]
fn a_provider_without_roster_extensions_is_warned_about() {
    let Some(server) = start(Setup {
        extensions: false,
        ..ROSTER_READY
    }) else {
        return;
    };
    let url = server.url();
    let r = roster().with("examples/worknet/roster.yaml", "roster.yaml");
    let (_, plan, _) = r.scim_plan(&url, "roster.yaml", &[]);
    let notes: Vec<&str> = plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "store-cannot-keep")
        .map(|w| w["message"].as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), 2, "{plan}");
    assert!(notes[0].contains("birth dates") && notes[0].contains("127.0.0.1"));
    assert!(notes[1].contains("user-manager grants"));
}

/// A provider in front of scim2-server that answers its first request with
/// 429 and `Retry-After: 1`, then passes requests through.
fn slow_down_once(upstream: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut first = true;
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let Some(req) = read_request(&mut c) else {
                continue;
            };
            if std::mem::take(&mut first) {
                let _ = c.write_all(
                    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let _ = up.write_all(&req);
            let mut resp = Vec::new();
            let _ = up.read_to_end(&mut resp);
            let _ = c.write_all(&resp);
        }
    });
    port
}

/// A whole HTTP request (headers and Content-Length body), sent on as HTTP/1.0.
fn read_request(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = c.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = c.read(&mut chunk).ok()?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
    }
}

#[test]
fn a_429_is_retried_after_the_time_it_asks_for() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let port = slow_down_once(server.port);
    let url = format!("scim+http://127.0.0.1:{port}/v2");
    let r = roster().with("examples/worknet/roster.yaml", "roster.yaml");
    let started = Instant::now();
    let out = r.scim(&["plan", "-v", "--store", &url, "--detailed-exitcode"], &[]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    // The refused request counts: it was sent.
    let (_, _, direct) = r.scim_plan(&server.url(), "roster.yaml", &[]);
    assert_eq!(requests(&out.stderr), direct + 1);
}

#[test]
fn profile_changes_are_patched_when_the_policy_manages_profiles() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    // The role put in place of another is one role removed, within
    // `max_removals: 1`.
    let person = |phone: &str, zip: &str, ext: &str, role: &str| {
        format!(
            "version: 1\ngroups:\n  - name: ABC\n    members:\n      - mandy@example.com\npartners:\n  - email: mandy@example.com\n    first_name: Mandy\n    last_name: McCray\n    birth_date: 1972-09-01\n    phone: \"{phone}\"\n    extension: \"{ext}\"\n    zip: \"{zip}\"\n    role: {role}\npolicy:\n  manage_profiles: true\n  max_removals: 1\n"
        )
    };
    let r = roster().file(
        "roster.yaml",
        person("217-852-9634", "62568", "12", "public-viewer"),
    );
    r.scim_ok(&["apply", "--yes", "--store", &url]);
    let r = r.file(
        "roster.yaml",
        person("217-555-0100", "62701-1234", "7", "individual"),
    );
    let (_, plan, _) = r.scim_plan(&url, "roster.yaml", &[]);
    assert_eq!(
        ops(&plan),
        [
            "update_profile MMcCray",
            "grant_role MMcCray",
            "revoke_role MMcCray"
        ]
    );
    r.scim_ok(&["apply", "--yes", "--store", &url]);
    let mandy = server.user("MMcCray");
    assert_eq!(mandy["phoneNumbers"][0]["value"], "2175550100", "{mandy}");
    assert_eq!(mandy[EXT_USER]["postalCode"], "62701-1234");
    assert_eq!(mandy[EXT_USER]["phoneExtension"], "7");
    assert_eq!(mandy[EXT_USER]["birthDate"], "1972-09-01");
    assert_eq!(mandy["roles"][0]["value"], "individual");
    r.scim_no_changes(&url, &[]);
}

#[test]
fn passwords_go_only_to_providers_that_take_them() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    // One person: Argon2id hashing is slow in debug builds.
    let r = roster().file(
        "roster.yaml",
        format!("version: 1\n{GROUP}partners:\n{MANDY}"),
    );
    let args = [
        "apply",
        "--yes",
        "--store",
        &url,
        "--onboarding",
        "password",
        "--credentials-file",
        "creds.csv",
    ];
    let out = r.scim_ok(&args);
    let creds = std::fs::read_to_string(r.path().join("creds.csv")).unwrap();
    let rows: Vec<&str> = creds.lines().skip(1).collect();
    assert_eq!(rows.len() as u64, server.users(), "{creds}");
    let password = rows[0].rsplit(',').next().unwrap();
    assert!(!out.stdout.contains(password) && !out.stderr.contains(password));
    // The provider keeps it, and never shows it.
    let user = server.user(rows[0].split(',').next().unwrap());
    assert!(user.get("password").is_none(), "{user}");

    let Some(server) = start(Setup {
        passwords: false,
        ..ROSTER_READY
    }) else {
        return;
    };
    let url = server.url();
    let mut args = args;
    args[3] = &url;
    args[7] = "creds2.csv";
    let out = r.scim(&args, &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("does not take passwords"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--onboarding invite"), "{}", out.stderr);
    assert_eq!(server.users(), 0);
    assert!(!r.path().join("creds2.csv").exists());
}

/// The roster of SPEC §9 (roles, entitlements, case managers, SSO)
/// reconciles against scim2-server as against the embedded store: the same
/// plans, applied as core `roles` and `entitlements` and the enterprise
/// `manager`, and then nothing left to do.
#[test]
fn spec9_rosters_reconcile_as_on_the_embedded_store() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    let r = roster();
    for step in [0, 1] {
        std::fs::write(
            r.path().join("roster.yaml"),
            super::serve::spec9_roster(step),
        )
        .unwrap();
        let want = r.reference_plan("roster.yaml");
        let (code, plan, _) = r.scim_plan(&url, "roster.yaml", &[]);
        assert_eq!(code, 0, "{plan}");
        assert_eq!(ops(&plan), ops(&want), "step {step}");
        assert_eq!(plan["actions"], want["actions"], "step {step}");
        assert_eq!(plan["summary"], want["summary"], "step {step}");
        r.scim_ok(&["apply", "--yes", "--store", "sqlite:ref.db", "roster.yaml"]);
        // Passwords for the new accounts, except the one signed in by SSO.
        r.scim_ok(&[
            "apply",
            "--yes",
            "--store",
            &url,
            "roster.yaml",
            "--onboarding",
            "password",
            "--credentials-file",
            &format!("creds{step}.csv"),
        ]);
        r.scim_no_changes(&url, &["roster.yaml"]);
    }
    let enterprise = ENTERPRISE;
    let brandon = server.user("BMitchell");
    let noelle = server.user("NHoliday");
    assert_eq!(
        noelle["roles"].as_array().unwrap().len(),
        1,
        "supervisor revoked: {noelle}"
    );
    assert_eq!(noelle["roles"][0]["value"], "caseworker");
    let mut ents: Vec<(String, String)> = noelle["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["value"].as_str().unwrap().to_string(),
                e["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ents.sort();
    assert_eq!(
        ents,
        [
            ("coverage:North Team".to_string(), "coverage".to_string()),
            ("coverage:South Team".into(), "coverage".into()),
            ("products:job-board".into(), "products".into()),
        ]
    );
    assert_eq!(
        noelle[enterprise]["manager"]["value"], brandon["id"],
        "{noelle}"
    );
    let zoe = server.user("ZQuinn");
    assert_eq!(zoe[enterprise]["manager"]["value"], noelle["id"], "{zoe}");
    // Signed in by the identity provider: created active, with no password.
    assert_eq!(zoe["active"], true);
    let creds = std::fs::read_to_string(r.path().join("creds0.csv")).unwrap();
    let users: Vec<&str> = creds
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(users, ["BMitchell", "NHoliday"], "{creds}");
}

/// An export from a SCIM provider says only what the provider publishes:
/// SCIM shows no credential state, so no partner is written `sign_in: sso`
/// (not even the one created so), and the export checks and plans with no
/// changes.
#[test]
fn an_export_leaves_sign_in_to_the_default_and_plans_clean() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    let r = roster();
    std::fs::write(r.path().join("roster.yaml"), super::serve::spec9_roster(0)).unwrap();
    r.scim_ok(&[
        "apply",
        "--yes",
        "--store",
        &url,
        "roster.yaml",
        "--onboarding",
        "password",
        "--credentials-file",
        "creds.csv",
    ]);
    r.scim_ok(&["export", "--store", &url, "-o", "export.yaml"]);
    let export = std::fs::read_to_string(r.path().join("export.yaml")).unwrap();
    assert!(export.contains("account: ZQuinn\n"), "{export}");
    assert!(!export.contains("sign_in"), "{export}");
    r.scim_ok(&["check", "export.yaml"]);
    r.scim_no_changes(&url, &["export.yaml"]);
}

/// Roles reach the provider with the account, and entitlements added
/// later are patched onto it.
#[test]
fn roles_are_kept_and_entitlements_patched_in() {
    let Some(server) = start(ROSTER_READY) else {
        return;
    };
    let url = server.url();
    let roster_with = |extra: &str| {
        format!(
            "version: 1\ngroups:\n  - name: ABC\n    members:\n      - lee@example.com\npartners:\n  - email: lee@example.com\n    first_name: Lee\n    last_name: Park\n    birth_date: 1980-02-02\n    roles: [caseworker]\n{extra}policy:\n  required_fields: []\n  roles: [public-viewer, individual, caseworker]\n  entitlements:\n    products: [webcenter]\n"
        )
    };
    let r = roster().file("roster.yaml", roster_with(""));
    r.scim_ok(&["apply", "--yes", "--store", &url]);
    let lee = server.user("LPark");
    assert_eq!(
        lee["roles"],
        serde_json::json!([{"value": "caseworker"}]),
        "{lee}"
    );
    let (_, plan, _) = r.scim_plan(&url, "roster.yaml", &[]);
    assert_eq!(ops(&plan), Vec::<String>::new());
    let r = r.file(
        "roster.yaml",
        roster_with("    entitlements:\n      products: [webcenter]\n"),
    );
    r.scim_ok(&["apply", "--yes", "--store", &url]);
    let lee = server.user("LPark");
    assert_eq!(
        lee["entitlements"],
        serde_json::json!([{"value": "products:webcenter", "type": "products"}]),
        "{lee}"
    );
    let (_, plan, _) = r.scim_plan(&url, "roster.yaml", &[]);
    assert_eq!(ops(&plan), Vec::<String>::new());
    assert_eq!(server.users(), 1);
}

/// A provider whose User resource type lacks the enterprise extension
/// cannot keep case managers: those actions fail, named, and the rest of
/// the apply lands.
#[test]
fn case_managers_need_the_enterprise_extension() {
    let Some(server) = start(Setup {
        enterprise: false,
        ..ROSTER_READY
    }) else {
        return;
    };
    let url = server.url();
    let r = roster().file("roster.yaml", super::serve::spec9_roster(0));
    let out = r.scim(&["apply", "--yes", "--store", &url], &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "set_case_manager NHoliday: the SCIM provider at http://127.0.0.1:{}/v2 does not offer the enterprise User extension ({ENTERPRISE})",
            server.port
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("2 actions failed"), "{}", out.stderr);
    assert_eq!(server.users(), 3);
    assert!(server.user("NHoliday").get(ENTERPRISE).is_none());
}
