//! The SCIM client store against hostile providers: a small HTTP server on
//! 127.0.0.1 that answers each request the hostile way under test, and the
//! real `roster plan --store scim+http://…`.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "t0ken-hostile-tests";

/// One request as the server saw it: the request line and the headers,
/// lower-cased.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    head: String,
}

/// What a test's provider writes back for one request.
type Answer = Box<dyn Fn(&Seen, &mut TcpStream) + Send + Sync>;

struct Provider {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Provider {
    fn start(answer: Answer) -> Provider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                let log = log.clone();
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let Some(head) = read_head(&mut c) else {
                        return;
                    };
                    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                    let s = Seen {
                        path,
                        head: head.to_lowercase(),
                    };
                    log.lock().unwrap().push(s.clone());
                    answer(&s, &mut c);
                });
            }
        });
        Provider { port, seen }
    }

    fn url(&self) -> String {
        format!("scim+http://127.0.0.1:{}/v2", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// The request line and headers (these tests send no bodies to read).
fn read_head(c: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if c.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn json(c: &mut TcpStream, status: &str, body: &Value) {
    let body = body.to_string();
    let _ = write!(
        c,
        "HTTP/1.1 {status}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// ServiceProviderConfig with pages of two.
fn config() -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "filter": {"supported": true, "maxResults": 2},
        "patch": {"supported": true},
        "bulk": {"supported": false},
        "etag": {"supported": false},
        "changePassword": {"supported": false},
    })
}

fn user(i: usize) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": format!("u{i}"),
        "userName": format!("user{i}"),
        "name": {"givenName": "User", "familyName": format!("N{i}")},
        "emails": [{"value": format!("user{i}@example.net"), "primary": true}],
        "active": true,
    })
}

fn list(total: u64, items: Vec<Value>) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "itemsPerPage": items.len(),
        "startIndex": 1,
        "Resources": items,
    })
}

fn start_index(path: &str) -> usize {
    path.split(['?', '&'])
        .find_map(|p| p.strip_prefix("startIndex="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// `roster plan --store URL roster.yaml`, killed if it runs past `limit`.
fn plan(url: &str, lookup: &str, limit: Duration) -> Output {
    let r = roster().file("roster.yaml", with_partner(""));
    let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["plan", "--store", url, "roster.yaml", "--format", "json"])
        .current_dir(r.path())
        .env_remove("ROSTER_FORMAT")
        .env_remove("ROSTER_STORE")
        .env("ROSTER_SCIM_LOOKUP", lookup)
        .env("ROSTER_SCIM_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "roster plan ran past {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_redirect_to_another_origin_is_not_followed_and_gets_no_token() {
    let elsewhere = Provider::start(Box::new(|_, c| json(c, "200 OK", &config())));
    let target = format!(
        "http://127.0.0.1:{}/v2/ServiceProviderConfig",
        elsewhere.port
    );
    let provider = Provider::start(Box::new(move |_, c| {
        let _ = write!(
            c,
            "HTTP/1.1 302 Found\r\nLocation: {target}?x=1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }));
    let out = plan(&provider.url(), "auto", Duration::from_secs(60));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "GET /ServiceProviderConfig: HTTP 302 redirects to http://127.0.0.1:{}, which roster does not follow",
            elsewhere.port
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("x=1"), "{}", out.stderr);
    // Nothing at all went to the other origin, let alone the token.
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    assert!(provider.seen()[0].head.contains(TOKEN));
}

#[test]
fn a_redirect_within_the_provider_is_followed_without_referer() {
    let provider = Provider::start(Box::new(|s, c| {
        if let Some(rest) = s.path.strip_prefix("/v2/") {
            let _ = write!(
                c,
                "HTTP/1.1 308 Permanent Redirect\r\nLocation: /real/v2/{rest}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        } else if s.path.starts_with("/real/v2/ServiceProviderConfig") {
            json(c, "200 OK", &config());
        } else if s.path.starts_with("/real/v2/ResourceTypes") {
            json(c, "404 Not Found", &serde_json::json!({}));
        } else {
            json(c, "200 OK", &list(0, vec![]));
        }
    }));
    let out = plan(&provider.url(), "auto", Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let seen = provider.seen();
    let followed: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.starts_with("/real/"))
        .collect();
    assert!(!followed.is_empty(), "{seen:?}");
    for s in &seen {
        assert!(!s.head.contains("\nreferer:"), "{}", s.head);
        assert!(s.head.contains(TOKEN), "{}", s.head);
    }
}

#[test]
fn an_endless_body_is_cut_off() {
    let sent = Arc::new(AtomicU64::new(0));
    let count = sent.clone();
    let provider = Provider::start(Box::new(move |_, c| {
        let _ = c.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        );
        let chunk = format!("{:x}\r\n{}\r\n", 1 << 20, " ".repeat(1 << 20));
        let _ = c.write_all(b"1\r\n{\r\n");
        // Up to 512 MiB: roster must stop reading long before.
        for _ in 0..512 {
            if c.write_all(chunk.as_bytes()).is_err() {
                return;
            }
            count.fetch_add(1 << 20, Ordering::Relaxed);
        }
        let _ = c.write_all(b"1\r\n}\r\n0\r\n\r\n");
    }));
    let out = plan(&provider.url(), "auto", Duration::from_secs(120));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(
            "GET /ServiceProviderConfig: the answer is longer than 32 MiB, more than roster reads from a provider"
        ),
        "{}",
        out.stderr
    );
    // Buffers in between hold a few MiB more than roster read.
    let mib = sent.load(Ordering::Relaxed) >> 20;
    assert!(mib < 64, "the provider sent {mib} MiB");
}

#[test]
fn a_huge_content_length_is_refused_before_reading() {
    let provider = Provider::start(Box::new(|_, c| {
        let _ = c.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nContent-Length: 1000000000000\r\nConnection: close\r\n\r\n{",
        );
        std::thread::sleep(Duration::from_secs(5));
    }));
    let started = Instant::now();
    let out = plan(&provider.url(), "auto", Duration::from_secs(60));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("the answer is longer than 32 MiB"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// A provider that says it holds `total` resources of each kind and holds
/// `real` users and no groups; `repeat` serves its first page at every
/// `startIndex`.
fn lying(total: u64, real: usize, repeat: bool) -> Provider {
    Provider::start(Box::new(move |s, c| {
        let path = s.path.as_str();
        if path.starts_with("/v2/ServiceProviderConfig") {
            json(c, "200 OK", &config());
        } else if path.starts_with("/v2/ResourceTypes") {
            json(c, "404 Not Found", &serde_json::json!({}));
        } else if path.starts_with("/v2/Users") {
            let from = if repeat { 0 } else { start_index(path) - 1 };
            let n = if path.contains("count=0") { 0 } else { 2 };
            let items = (from..real.min(from + n)).map(user).collect();
            json(c, "200 OK", &list(total, items));
        } else if path.starts_with("/v2/Groups") {
            let items = if repeat {
                vec![serde_json::json!({"id": "g1", "displayName": "Other", "members": []})]
            } else {
                vec![]
            };
            json(c, "200 OK", &list(total, items));
        } else {
            json(c, "404 Not Found", &serde_json::json!({}));
        }
    }))
}

#[test]
fn a_total_of_ten_to_the_eighteenth_is_not_trusted() {
    for lookup in ["list", "filter", "auto"] {
        let provider = lying(1_000_000_000_000_000_000, 5, false);
        let out = plan(&provider.url(), lookup, Duration::from_secs(60));
        // The plan is made: the provider's five users, and Mandy to create.
        assert_eq!(out.code, 0, "{lookup}: {}{}", out.stdout, out.stderr);
        let plan: Value = serde_json::from_str(&out.stdout).unwrap();
        assert!(
            plan["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["op"] == "create_account"),
            "{plan}"
        );
        // A window of pages past the end at most, not 10^18 of them.
        assert!(
            provider.seen().len() < 40,
            "{lookup}: {:?}",
            provider.seen()
        );
    }
}

#[test]
fn paging_that_never_ends_is_stopped() {
    for lookup in ["list", "filter"] {
        let provider = lying(1_000_000_000_000_000_000, 2, true);
        let url = provider.url();
        let out = plan(&url, lookup, Duration::from_secs(60));
        assert_eq!(out.code, 1, "{lookup}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(&format!("store {url}: GET /")),
            "{lookup}: {}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("holds only resources already sent on earlier pages"),
            "{lookup}: {}",
            out.stderr
        );
    }
}

/// Text a store holds reaches the terminal with its controls shown, never
/// acted on: a group named with an escape sequence and names holding CR,
/// BEL and a bidi override, in every human and Markdown output.
#[test]
fn names_from_a_store_are_printed_neutralized() {
    let yaml = format!("{}policy:\n  unmanaged_groups: remove\n", with_partner(""));
    let r = roster().file("r.yaml", &yaml);
    let store = "sqlite:store.db";
    let applied = run_in(r.path(), &["apply", "--yes", "--store", store, "r.yaml"]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    let db = rusqlite::Connection::open(r.path().join("store.db")).unwrap();
    db.execute_batch(
        "UPDATE groups SET name = char(27) || '[31mRed' || char(7) || char(8238);
         UPDATE accounts SET user_name = 'MMc' || char(13) || 'Cray' || char(27) || ']0;pwn' || char(7);
         UPDATE audit SET actor = 'ad' || char(27) || '[2Jmin', subject = 'x' || char(155) || 'y';",
    )
    .unwrap();
    drop(db);
    let outputs = [
        vec!["plan", "--store", store, "r.yaml"],
        vec!["plan", "--store", store, "r.yaml", "--format", "markdown"],
        vec!["diff", "--store", store, "r.yaml"],
        vec!["log", "--store", store],
        vec!["invitations", "--store", store],
        vec!["export", "--store", store],
    ];
    let mut seen = String::new();
    for args in outputs {
        let out = run_in(r.path(), &args);
        for (what, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let raw: Vec<char> = text
                .chars()
                .filter(|c| (c.is_control() && !matches!(c, '\n' | '\t')) || *c == '\u{202e}')
                .collect();
            assert!(raw.is_empty(), "{args:?} {what}: {raw:?} in\n{text}");
        }
        seen.push_str(&out.stdout);
    }
    for shown in [
        "Group \\u{1b}[31mRed\\u{7}\\u{202e}",
        "<summary>Group \\u{1b}[31mRed\\u{7}\\u{202e} (",
        "MMc\\u{d}Cray\\u{1b}]0;pwn\\u{7}",
        "ad\\u{1b}[2Jmin",
        "x\\u{9b}y",
    ] {
        assert!(seen.contains(shown), "{shown} not in\n{seen}");
    }
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .current_dir(dir)
        .env_remove("ROSTER_FORMAT")
        .env_remove("ROSTER_STORE")
        .env_remove("ROSTER_SHOW_PII")
        .env("ROSTER_ACTOR", "test-admin")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
