//! `roster invitations send` and `roster reset-password` against a real
//! SMTP relay: aiosmtpd from PyPI, run by tests/fixtures/smtp_relay.py on
//! 127.0.0.1, which writes every message it accepts, parsed by Python's
//! `email` package, as JSON. Stores on SQLite and PostgreSQL.
//! `ROSTER_TEST_TOOLS=skip` skips the tests that need the relay.

use super::store::Backend;
use super::*;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const FROM: &str = "Roster <noreply@example.org>";
const LINK: &str = "https://portal.example/activate?token={token}";

/// The Python that has aiosmtpd: `ROSTER_PY_BIN`'s or `.ci/run`'s venv, or
/// the tests' own venv, installed once.
fn python() -> PathBuf {
    static PY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let has = |p: &Path| {
            p.is_file()
                && Command::new(p)
                    .args(["-c", "import aiosmtpd"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        };
        let found = std::env::var_os("ROSTER_PY_BIN")
            .map(|d| PathBuf::from(d).join("python"))
            .into_iter()
            .chain([repo("target/ci-venv/bin/python")])
            .find(|p| has(p));
        if let Some(p) = found {
            return p;
        }
        let venv = super::peers::install(
            super::peers::AIOSMTPD,
            "Install aiosmtpd yourself into ROSTER_PY_BIN's Python.",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        venv.join("bin/python")
    })
    .clone()
}

/// A running relay; stopped when dropped.
struct Relay {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Relay {
    fn start(args: &[&str]) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(python())
            .arg(repo("tests/fixtures/smtp_relay.py"))
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the relay");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the relay did not start: {line:?}"));
        Relay { child, port, dir }
    }

    fn tls(args: &[&str]) -> Relay {
        let crt = repo("tests/fixtures/tls/server.crt");
        let key = repo("tests/fixtures/tls/server.key");
        let mut all = vec!["--tls", crt.to_str().unwrap(), key.to_str().unwrap()];
        all.extend_from_slice(args);
        Relay::start(&all)
    }

    fn url(&self) -> String {
        format!("smtp://localhost:{}", self.port)
    }

    /// The messages received, in order.
    fn messages(&self) -> Vec<Value> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store with `n` invited accounts P0…, applied from a roster.
struct Env {
    dir: tempfile::TempDir,
    url: String,
    backend: Backend,
}

fn env(b: Backend, n: usize) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = match b {
        Backend::Sqlite => "sqlite:store.db".to_string(),
        Backend::Postgres => super::pg::database().0,
    };
    let mut y = String::from("version: 1\ngroups:\n  - name: Team\n    members:\n");
    for i in 0..n {
        y.push_str(&format!("      - p{i}@example.org\n"));
    }
    y.push_str("partners:\n");
    for i in 0..n {
        y.push_str(&format!(
            "  - email: p{i}@example.org\n    first_name: Pat\n    last_name: Num{i}\n    \
             birth_date: 1990-01-01\n    phone: \"217-555-{i:04}\"\n    zip: \"62701\"\n    account: P{i}\n"
        ));
    }
    std::fs::write(dir.path().join("roster.yaml"), y).unwrap();
    let e = Env {
        dir,
        url,
        backend: b,
    };
    e.ok(&["apply", "--yes", "--store", &e.url, "roster.yaml"]);
    e
}

impl Env {
    fn command(&self, args: &[&str], vars: &[(&str, &str)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ROSTER_FORMAT")
            .env_remove("ROSTER_STORE")
            .env_remove("ROSTER_SMTP_PASSWORD")
            .env("NO_COLOR", "1")
            .env("ROSTER_ACTOR", "test-admin")
            .stdin(Stdio::null());
        for (k, v) in vars {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let out = self.command(args, vars).output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args, &[]);
        assert_eq!(out.code, 0, "{args:?}\n{}\n{}", out.stdout, out.stderr);
        out
    }

    /// `invitations send` through `relay` (STARTTLS, trusting the test CA).
    fn send_args(&self, relay: &Relay, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "invitations",
            "send",
            "--store",
            &self.url,
            "--smtp",
            &relay.url(),
            "--from",
            FROM,
            "--link",
            LINK,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push("--smtp-ca".into());
        a.push(repo("tests/fixtures/tls/server.crt").display().to_string());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    fn send(&self, relay: &Relay, extra: &[&str]) -> Output {
        let a = self.send_args(relay, extra);
        self.run(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    }

    /// The first column of `sql`'s rows, as text.
    fn sql(&self, sql: &str) -> Vec<String> {
        match self.backend {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(self.dir.path().join("store.db")).unwrap();
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
            Backend::Postgres => {
                let mut c = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
                c.simple_query(sql)
                    .unwrap()
                    .into_iter()
                    .filter_map(|m| match m {
                        ::postgres::SimpleQueryMessage::Row(r) => {
                            Some(r.get(0).unwrap_or_default().to_string())
                        }
                        _ => None,
                    })
                    .collect()
            }
        }
    }

    fn batch(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(self.dir.path().join("store.db"))
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Backend::Postgres => ::postgres::Client::connect(&self.url, ::postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }

    /// The account's activation digest.
    fn digest(&self, user: &str) -> String {
        self.sql(&format!(
            "SELECT activation_digest FROM accounts WHERE user_name = '{user}'"
        ))
        .remove(0)
    }
}

/// The token in a message's text part.
fn token(m: &Value) -> String {
    let text = m["text"].as_str().unwrap();
    let at = text.find("token=").expect("a link with a token") + 6;
    text[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect()
}

fn sha(token: &str) -> String {
    let mut h = String::from("sha256:");
    for b in <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()) {
        h.push_str(&format!("{b:02x}"));
    }
    h
}

/// The user name a message went to (its To: is `Pat NumN <pN@…>`).
fn user_of(m: &Value) -> String {
    let to = m["rcpt_tos"][0].as_str().unwrap();
    format!("P{}", &to[1..to.find('@').unwrap()])
}

fn delivers_each_invitation_once_with_both_parts(b: Backend) {
    if super::peers::tools_skipped() {
        return;
    }
    let e = env(b, 3);
    let relay = Relay::tls(&[]);
    let out = e.send(&relay, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Sent 3 messages"), "{}", out.stdout);
    let got = relay.messages();
    assert_eq!(got.len(), 3);
    for m in &got {
        let user = user_of(m);
        let n = &user[1..];
        assert_eq!(m["from"], FROM);
        assert_eq!(m["to"], format!("Pat Num{n} <p{n}@example.org>"));
        assert_eq!(m["subject"], "Activate your Roster account");
        assert_eq!(m["content_type"], "multipart/alternative");
        assert_eq!(m["tls"], true, "STARTTLS was offered and taken");
        let html = m["html"].as_str().unwrap();
        assert!(html.contains("Activate your account"), "{html}");
        let t = token(m);
        assert_eq!(t.len(), 64);
        assert!(html.contains(&t), "{html}");
        // The link's token is the one whose digest the account keeps.
        assert_eq!(sha(&t), e.digest(&user));
    }
    // Sent, and the raw tokens erased from the store.
    assert_eq!(
        e.sql("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL AND token IS NULL"),
        ["3"]
    );
    // Sent once: a second run has nothing to send.
    let again = e.send(&relay, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("Sent 0 messages"), "{}", again.stdout);
    assert_eq!(relay.messages().len(), 3);
    let list = e.ok(&["invitations", "--store", &e.url, "--format", "json"]);
    let v: Value = serde_json::from_str(&list.stdout).unwrap();
    assert!(
        v.as_array().unwrap().iter().all(|i| i["state"] == "sent"),
        "{v:#}"
    );
    // A token older than the TTL has expired.
    e.batch("UPDATE accounts SET token_issued_at = '2000-01-01T00:00:00Z' WHERE user_name = 'P0'");
    let list = e.ok(&["invitations", "--store", &e.url]).stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with("P0 ") && l.contains("expired")),
        "{list}"
    );
}

fn two_runs_at_once_never_send_twice(b: Backend) {
    if super::peers::tools_skipped() {
        return;
    }
    let e = env(b, 40);
    let relay = Relay::tls(&[]);
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let a = e.send_args(&relay, &[]);
            e.command(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut sent = 0;
    for r in runs {
        let out = r.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let n: usize = text
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap();
        sent += n;
    }
    let got = relay.messages();
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for m in &got {
        *per.entry(user_of(m)).or_default() += 1;
    }
    assert_eq!(got.len(), 40, "{per:?}");
    assert_eq!(per.len(), 40);
    assert_eq!(sent, 40);
}

fn temporary_and_permanent_failures(b: Backend) {
    if super::peers::tools_skipped() {
        return;
    }
    let e = env(b, 3);
    // Relay down: connection refused, everything stays queued.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = e.run(
        &[
            "invitations",
            "send",
            "--store",
            &e.url,
            "--smtp",
            &format!("smtp://127.0.0.1:{port}"),
            "--from",
            FROM,
            "--link",
            LINK,
        ],
        &[],
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains("could not be reached"),
        "{}",
        out.stderr
    );
    assert_eq!(
        e.sql("SELECT attempts FROM outbox ORDER BY id"),
        ["1", "0", "0"]
    );
    assert_eq!(
        e.sql("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND token IS NOT NULL"),
        ["3"]
    );
    // The first waits for its next try; the others go now: 421 and 550.
    let relay = Relay::tls(&[
        "--reply",
        "p1@example.org=421",
        "--reply",
        "p2@example.org=550",
    ]);
    let out = e.send(&relay, &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("deferred p1@example.org"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("failed p2@example.org"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("refused for good"), "{}", out.stderr);
    assert!(relay.messages().is_empty());
    assert_eq!(
        e.sql("SELECT recipient FROM outbox WHERE failed_at IS NOT NULL"),
        ["p2@example.org"]
    );
    assert_eq!(
        e.sql(
            "SELECT attempts FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL ORDER BY id"
        ),
        ["1", "1"]
    );
    // Due again once its next try comes.
    e.batch("UPDATE outbox SET next_try_at = '2000-01-01T00:00:00Z'");
    let relay = Relay::tls(&[]);
    let out = e.send(&relay, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let got: Vec<String> = relay.messages().iter().map(user_of).collect();
    assert_eq!(got, ["P0", "P1"]);
    let list = e.ok(&["invitations", "--store", &e.url]).stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with("P2 ") && l.contains("failed")),
        "{list}"
    );
}

fn reminders_get_a_fresh_token_after_the_interval(b: Backend) {
    if super::peers::tools_skipped() {
        return;
    }
    let e = env(b, 2);
    let relay = Relay::tls(&[]);
    assert_eq!(e.send(&relay, &[]).code, 0);
    let first = e.digest("P0");
    // Not sooner than --remind-after.
    let out = e.send(&relay, &["--remind-after", "1h"]);
    assert!(out.stdout.contains("Sent 0"), "{}", out.stdout);
    std::thread::sleep(Duration::from_millis(2100));
    e.batch("UPDATE accounts SET active = false WHERE user_name = 'P1'");
    let out = e.send(&relay, &["--remind-after", "1s", "--max-reminders", "1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("1 reminder queued"), "{}", out.stdout);
    let got = relay.messages();
    assert_eq!(got.len(), 3);
    let r = &got[2];
    assert_eq!(user_of(r), "P0", "a deactivated account is never reminded");
    assert!(
        r["subject"].as_str().unwrap().starts_with("Reminder"),
        "{r}"
    );
    // A fresh token: its digest replaced the old one.
    assert_eq!(sha(&token(r)), e.digest("P0"));
    assert_ne!(e.digest("P0"), first);
    assert_ne!(token(r), token(&got[0]));
    // At most --max-reminders.
    std::thread::sleep(Duration::from_millis(2100));
    let out = e.send(&relay, &["--remind-after", "1s", "--max-reminders", "1"]);
    assert!(out.stdout.contains("Sent 0"), "{}", out.stdout);
    let log = e.ok(&["log", "--store", &e.url]).stdout;
    assert!(log.contains("queue_reminder"), "{log}");
    assert!(!log.contains(&token(r)), "{log}");
    e.ok(&["log", "--store", &e.url, "--verify"]);
    let list = e.ok(&["invitations", "--store", &e.url]).stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with("P0 ") && l.contains("reminded")),
        "{list}"
    );
}

fn deactivated_and_activated_accounts_are_never_mailed(b: Backend) {
    if super::peers::tools_skipped() {
        return;
    }
    let e = env(b, 3);
    e.batch(
        "UPDATE accounts SET active = false WHERE user_name = 'P0'; \
         UPDATE accounts SET credential = 'password_set', activated_at = '2026-01-01T00:00:00Z', \
         activation_digest = NULL WHERE user_name = 'P1'",
    );
    let relay = Relay::tls(&[]);
    let out = e.send(&relay, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got: Vec<String> = relay.messages().iter().map(user_of).collect();
    assert_eq!(got, ["P2"]);
    // Their queued rows are dropped, not sent.
    assert_eq!(e.sql("SELECT count(*) FROM outbox"), ["1"]);
}

fn reset_password_queues_and_sends(b: Backend) {
    if super::peers::tools_skipped() {
        return;
    }
    let e = env(b, 2);
    let relay = Relay::tls(&[]);
    assert_eq!(e.send(&relay, &[]).code, 0);
    // An invited account gets reminders, not resets.
    let out = e.run(&["reset-password", "P0", "--store", &e.url], &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("has not activated yet"),
        "{}",
        out.stderr
    );
    let out = e.run(&["reset-password", "Nobody", "--store", &e.url], &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`Nobody` does not exist"),
        "{}",
        out.stderr
    );
    e.batch(
        "UPDATE accounts SET credential = 'password_set', activated_at = '2026-01-01T00:00:00Z', \
         activation_digest = NULL WHERE user_name = 'P0'",
    );
    let out = e.ok(&["reset-password", "P0", "--store", &e.url]);
    assert!(
        out.stdout.contains("Queued 1 password reset"),
        "{}",
        out.stdout
    );
    assert_eq!(
        e.sql("SELECT count(*) FROM accounts WHERE reset_requested_at IS NOT NULL"),
        ["1"]
    );
    let out = e.send(&relay, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = relay.messages();
    assert_eq!(got.len(), 3);
    let m = &got[2];
    assert_eq!(user_of(m), "P0");
    assert!(m["subject"].as_str().unwrap().contains("password"), "{m}");
    assert_eq!(sha(&token(m)), e.digest("P0"));
    let log = e.ok(&["log", "--store", &e.url]).stdout;
    assert!(log.contains("queue_reset"), "{log}");
    assert!(!log.contains(&token(m)), "{log}");
}

/// `roster accounts` shows the state of each account's invitation, by the
/// rules `roster invitations` uses (SPEC §10).
fn accounts_show_each_invitation_state(b: Backend) {
    if super::peers::tools_skipped() {
        return;
    }
    let e = env(b, 5);
    let states = || -> BTreeMap<String, Value> {
        let out = e
            .ok(&["accounts", "--store", &e.url, "--format", "json"])
            .stdout;
        serde_json::from_str::<Vec<Value>>(&out)
            .unwrap()
            .into_iter()
            .map(|a| {
                (
                    a["user_name"].as_str().unwrap().to_string(),
                    a["invitation"].clone(),
                )
            })
            .collect()
    };
    let all = |s: &str| (0..5).map(|i| (format!("P{i}"), Value::from(s))).collect();
    assert_eq!(states(), all("queued"), "after apply");
    let relay = Relay::tls(&["--reply", "p4@example.org=550"]);
    let out = e.send(&relay, &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let mut want: BTreeMap<String, Value> = all("sent");
    want.insert("P4".into(), "failed".into());
    assert_eq!(states(), want, "after a send with one 550");
    // P1 sets a password (as the activation page does); P0, P2 and P3 are
    // reminded; P2's link then outlives the TTL.
    e.batch(
        "UPDATE accounts SET credential = 'password_set', activated_at = '2026-01-01T00:00:00Z', \
         activation_digest = NULL WHERE user_name = 'P1'",
    );
    std::thread::sleep(Duration::from_millis(2100));
    let out = e.send(&relay, &["--remind-after", "1s", "--max-reminders", "1"]);
    assert!(out.stdout.contains("reminders queued"), "{}", out.stdout);
    e.batch("UPDATE accounts SET token_issued_at = '2000-01-01T00:00:00Z' WHERE user_name = 'P2'");
    let want: BTreeMap<String, Value> = [
        ("P0", "reminded"),
        ("P1", "activated"),
        ("P2", "expired"),
        ("P3", "reminded"),
        ("P4", "failed"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::from(v)))
    .collect();
    assert_eq!(states(), want);
    // The same states as `roster invitations` gives.
    let list = e.ok(&["invitations", "--store", &e.url]).stdout;
    for (user, state) in &want {
        if user != "P1" {
            assert!(
                list.lines()
                    .any(|l| l.starts_with(&format!("{user} "))
                        && l.contains(state.as_str().unwrap())),
                "{user} {state}: {list}"
            );
        }
    }
    // The table and the CSV show the column; --status narrows as before.
    let table = e
        .ok(&["accounts", "--store", &e.url, "--status", "activated"])
        .stdout;
    assert!(
        table.lines().next().unwrap().contains("INVITATION"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("P1 ") && l.contains("activated")),
        "{table}"
    );
    let csv = e
        .ok(&[
            "accounts", "--store", &e.url, "--status", "invited", "--format", "csv",
        ])
        .stdout;
    assert!(
        csv.lines().next().unwrap().contains(",invitation,"),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("P2,") && l.contains(",expired,")),
        "{csv}"
    );
    // A password reset queued for the activated account leaves its
    // invitation activated.
    e.ok(&["reset-password", "P1", "--store", &e.url]);
    assert_eq!(states()["P1"], "activated");
    // A shorter TTL expires the others too.
    let out = e
        .ok(&[
            "accounts",
            "--store",
            &e.url,
            "--format",
            "json",
            "--invite-ttl",
            "0s",
        ])
        .stdout;
    assert!(
        out.contains("\"expired\"") && !out.contains("\"reminded\""),
        "{out}"
    );
}

on_every_store!(
    accounts_show_each_invitation_state,
    delivers_each_invitation_once_with_both_parts,
    two_runs_at_once_never_send_twice,
    temporary_and_permanent_failures,
    reminders_get_a_fresh_token_after_the_interval,
    deactivated_and_activated_accounts_are_never_mailed,
    reset_password_queues_and_sends,
);

/// A kill -9 in the middle of a run: nothing is lost, and at most the
/// message in flight arrives twice.
#[test]
fn a_kill_mid_run_loses_nothing() {
    if super::peers::tools_skipped() {
        return;
    }
    let e = env(Backend::Sqlite, 8);
    let stalling = Relay::tls(&["--stall-after", "3"]);
    let a = e.send_args(&stalling, &["--lease", "2s"]);
    let mut child = e
        .command(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while stalling.messages().len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let first: Vec<String> = stalling.messages().iter().map(user_of).collect();
    drop(stalling);
    // The claim of the killed run runs out; the next run sends the rest.
    std::thread::sleep(Duration::from_millis(2100));
    let relay = Relay::tls(&[]);
    let out = e.send(&relay, &["--lease", "2s"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for u in first
        .into_iter()
        .chain(relay.messages().iter().map(user_of))
    {
        *per.entry(u).or_default() += 1;
    }
    assert_eq!(per.len(), 8, "{per:?}");
    assert!(per.values().filter(|&&n| n > 1).count() <= 1, "{per:?}");
    assert!(per.values().all(|&n| n <= 2), "{per:?}");
}

/// The relay's password comes from ROSTER_SMTP_PASSWORD only and is never
/// printed; one in the URL is refused.
#[test]
fn the_smtp_password_is_never_printed() {
    if super::peers::tools_skipped() {
        return;
    }
    let e = env(Backend::Sqlite, 2);
    let secret = "s3cret-Relay-Pw";
    let relay = Relay::tls(&["--auth", &format!("mailer:{secret}")]);
    let url = format!("smtp://mailer@localhost:{}", relay.port);
    let ca = repo("tests/fixtures/tls/server.crt").display().to_string();
    let args = |url: &str| {
        vec![
            "invitations".to_string(),
            "send".into(),
            "--store".into(),
            e.url.clone(),
            "--smtp".into(),
            url.to_string(),
            "--from".into(),
            FROM.into(),
            "--link".into(),
            LINK.into(),
            "--smtp-ca".into(),
            ca.clone(),
        ]
    };
    let run = |url: &str, pw: Option<&str>| {
        let a = args(url);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = match pw {
            Some(p) => e.run(&a, &[("ROSTER_SMTP_PASSWORD", p)]),
            None => e.run(&a, &[]),
        };
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{}\n{}",
            out.stdout,
            out.stderr
        );
        out
    };
    // A wrong password: the relay refuses, nothing is sent, nothing shown.
    let out = run(&url, Some("wrong-pw-9"));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(!out.stderr.contains("wrong-pw-9"), "{}", out.stderr);
    let out = run(&url, None);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("ROSTER_SMTP_PASSWORD"),
        "{}",
        out.stderr
    );
    let out = run(
        &format!("smtp://mailer:{secret}@localhost:{}", relay.port),
        None,
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("password in the URL is refused"),
        "{}",
        out.stderr
    );
    assert!(relay.messages().is_empty());
    // Refused credentials are the run's: the message waits, not failed.
    assert_eq!(
        e.sql("SELECT count(*) FROM outbox WHERE failed_at IS NULL AND sent_at IS NULL"),
        ["2"]
    );
    e.batch("UPDATE outbox SET next_try_at = NULL");
    let out = run(&url, Some(secret));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let got = relay.messages();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|m| m["auth"].is_array() || m["auth"] == true)
    );
}

/// `smtps://`: TLS from the first byte, verified against --smtp-ca; a
/// relay whose certificate is not trusted gets nothing.
#[test]
fn implicit_tls_is_verified() {
    if super::peers::tools_skipped() {
        return;
    }
    let e = env(Backend::Sqlite, 1);
    let relay = Relay::tls(&["--implicit-tls"]);
    let smtps = format!("smtps://localhost:{}", relay.port);
    let base = [
        "invitations",
        "send",
        "--store",
        &e.url,
        "--smtp",
        &smtps,
        "--from",
        FROM,
        "--link",
        LINK,
    ];
    let out = e.run(&base, &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(relay.messages().is_empty());
    assert_eq!(
        e.sql("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND token IS NOT NULL"),
        ["1"]
    );
    e.batch("UPDATE outbox SET next_try_at = NULL");
    let ca = repo("tests/fixtures/tls/server.crt").display().to_string();
    let mut a = base.to_vec();
    a.extend(["--smtp-ca", &ca]);
    let out = e.run(&a, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let got = relay.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["tls"], true);
}

/// `--dry-run` renders without sending or changing the store; the files
/// it writes hold tokens and are 0600. Templates from a folder; a bad one
/// is named with its line.
#[test]
fn dry_runs_and_templates() {
    let e = env(Backend::Sqlite, 2);
    let before = e.sql("SELECT count(*) FROM outbox WHERE sent_at IS NULL");
    let dir = e.dir.path().join("tpl");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("settings.yaml"),
        "organization: Acme <Works>\ncolor: \"#aa0000\"\ncontact: help@acme.example\n",
    )
    .unwrap();
    let base = [
        "invitations",
        "send",
        "--store",
        &e.url,
        "--from",
        FROM,
        "--link",
        LINK,
        "--dry-run",
        "--templates",
        "tpl",
    ];
    let out = e.run(&base, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Subject: Activate your Acme <Works> account")
    );
    assert!(out.stdout.contains("Acme &lt;Works&gt;"), "{}", out.stdout);
    assert!(out.stdout.contains("2 messages rendered"), "{}", out.stdout);
    let mut a = base.to_vec();
    a.extend(["--out", "mails"]);
    e.ok(&a);
    let files: Vec<_> = std::fs::read_dir(e.dir.path().join("mails"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2);
    #[cfg(unix)]
    for f in &files {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    assert_eq!(
        e.sql("SELECT count(*) FROM outbox WHERE sent_at IS NULL"),
        before
    );
    std::fs::write(dir.join("invitation.html.j2"), "<p>\n{% if %}\n").unwrap();
    let out = e.run(&base, &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("invitation.html.j2:2"),
        "{}",
        out.stderr
    );
    let out = e.run(
        &[
            "invitations",
            "send",
            "--store",
            &e.url,
            "--from",
            FROM,
            "--link",
            "https://portal.example/activate",
            "--dry-run",
        ],
        &[],
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("has no {token}"), "{}", out.stderr);
}
