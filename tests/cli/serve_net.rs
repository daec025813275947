//! `roster serve` on a real network: header, body and idle timeouts, the
//! connection limit, shutdown with stalled clients, authentication before
//! the store, TLS and the request log. The real binary on 127.0.0.1.

use super::store::Backend;
use super::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXT: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:User";

/// A store seeded with the shipped live example and an admin token `ci`.
struct Seeded {
    r: Roster,
    db: String,
    admin: String,
}

fn seeded(backend: Backend) -> Seeded {
    let text = std::fs::read_to_string(repo("examples/worknet-live/roster.yaml")).unwrap();
    let r = roster().file("live.yaml", text);
    let (db, admin) = super::serve::seed(&r, backend, "live.yaml");
    Seeded { r, db, admin }
}

/// A running `roster serve` whose stderr is kept; killed when dropped.
struct Served {
    child: Child,
    /// `http(s)://127.0.0.1:PORT/scim/v2`
    base: String,
    /// `127.0.0.1:PORT`
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Send SIGTERM and wait (at most `limit`) for the exit.
    fn terminate(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (None, started.elapsed())
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// `roster serve` on the store of `s`, its stderr piped.
fn spawn(s: &Seeded, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", &s.db])
        .args(extra)
        .current_dir(s.r.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start roster serve")
}

fn serve(s: &Seeded, extra: &[&str]) -> Served {
    let mut child = spawn(s, extra);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no address in: {first}"))
        .to_string();
    let addr = base
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    Served {
        child,
        base,
        addr,
        log,
    }
}

/// Read from `stream` until the peer closes it (or `limit` passes): what
/// arrived and how long the close took.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration, bool) {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (lossy(&got), started.elapsed(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            // Reset by the server: closed as well.
            Err(_) => return (lossy(&got), started.elapsed(), true),
        }
    }
    (lossy(&got), started.elapsed(), false)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn connect(addr: &str) -> TcpStream {
    TcpStream::connect(addr).expect("connect")
}

/// A request over a blocking client with a timeout; `None` when no answer
/// came in time.
fn get(url: &str, auth: Option<&str>, timeout: Duration) -> Option<(u16, Value)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = client.get(url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.ok()?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Some((status, body))
    })
}

#[test]
fn slow_and_idle_clients_are_cut_off_at_their_timeouts() {
    let s = seeded(Backend::Sqlite);
    let server = serve(&s, &["--header-timeout", "1", "--body-timeout", "1"]);

    // Slowloris: half a header line, then nothing.
    let mut slow = connect(&server.addr);
    slow.write_all(b"GET /scim/v2/Users HTTP/1.1\r\nHost: loc")
        .unwrap();
    let (_, took, closed) = read_until_closed(&mut slow, Duration::from_secs(10));
    assert!(
        closed,
        "a client idle mid-header is still connected after 10 s"
    );
    assert!(took < Duration::from_secs(4), "closed only after {took:?}");

    // Idle keep-alive: one request answered, then the connection goes quiet.
    let mut idle = connect(&server.addr);
    idle.write_all(b"GET /scim/v2/ServiceProviderConfig HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (answer, took, closed) = read_until_closed(&mut idle, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        closed,
        "an idle keep-alive connection is still open after 10 s"
    );
    assert!(took < Duration::from_secs(4), "closed only after {took:?}");

    // A body that stops arriving.
    let mut body = connect(&server.addr);
    body.write_all(
        format!(
            "POST /scim/v2/Users HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n{{\"userName\"",
            s.admin
        )
        .as_bytes(),
    )
    .unwrap();
    let (answer, took, _) = read_until_closed(&mut body, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        took < Duration::from_secs(4),
        "answered only after {took:?}"
    );

    // The server still serves others.
    let ok = get(
        &format!("{}/Users?count=1", server.base),
        Some(&format!("Bearer {}", s.admin)),
        Duration::from_secs(10),
    );
    assert_eq!(ok.map(|r| r.0), Some(200));
}

#[test]
fn sigterm_exits_within_seconds_despite_stalled_clients_and_waiting_writes() {
    let s = seeded(Backend::Sqlite);
    let mut server = serve(&s, &["--lock-timeout", "60", "--shutdown-timeout", "2"]);
    // Clients idle mid-header.
    let stalled: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut c = connect(&server.addr);
            c.write_all(b"GET /scim/v2/Users HTTP/1.1\r\nHo").unwrap();
            c
        })
        .collect();
    // A write that waits for the store's lock, held by someone else.
    let holder = rusqlite::Connection::open(s.r.path().join("store.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let url = format!("{}/Groups", server.base);
    let token = s.admin.clone();
    let waiting = std::thread::spawn(move || {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::Client::new()
                .post(&url)
                .bearer_auth(token)
                .header("content-type", "application/scim+json")
                .body(json!({"displayName": "Waiting Group"}).to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok()
        })
    });
    std::thread::sleep(Duration::from_millis(800));
    let (code, took) = server.terminate(Duration::from_secs(20));
    assert!(
        code.is_some(),
        "roster serve still runs {took:?} after SIGTERM"
    );
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert_eq!(code, Some(0), "{}", server.log());
    // The waiting write was dropped, not committed.
    let answer = waiting.join().unwrap();
    assert!(answer.is_none(), "the waiting write got {answer:?}");
    holder.execute_batch("ROLLBACK").unwrap();
    let groups: i64 = holder
        .query_row(
            "SELECT count(*) FROM groups WHERE name = 'Waiting Group'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(groups, 0);
    drop(stalled);
}

#[test]
fn the_connection_limit_holds() {
    let s = seeded(Backend::Sqlite);
    let server = serve(&s, &["--max-connections", "2", "--header-timeout", "60"]);
    let request = format!(
        "GET /scim/v2/ServiceProviderConfig HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    // Two clients that connect and say nothing take both slots.
    let first = connect(&server.addr);
    let second = connect(&server.addr);
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect(&server.addr);
    third.write_all(request.as_bytes()).unwrap();
    let (answer, _, _) = read_until_closed(&mut third, Duration::from_secs(2));
    assert_eq!(
        answer, "",
        "a third connection was served past the limit of 2"
    );
    // One slot frees: the waiting connection is served.
    drop(first);
    let (answer, took, closed) = read_until_closed(&mut third, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed && took < Duration::from_secs(5), "{took:?}");
    drop(second);
}

/// Whoever reads the server's stderr may go away (`roster serve 2>&1 |
/// head`): the request log lines that can no longer be written are lost,
/// and the requests are still answered.
#[test]
fn requests_are_answered_after_stderr_is_closed() {
    let s = seeded(Backend::Sqlite);
    let mut child = spawn(&s, &[]);
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone: the pipe is closed.
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in: {first}"))
        .to_string();
    let bearer = format!("Bearer {}", s.admin);
    let answers: Vec<_> = (0..3)
        .map(|_| {
            get(
                &format!("{base}/Users?count=1"),
                Some(&bearer),
                Duration::from_secs(10),
            )
            .map(|r| r.0)
        })
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answers, [Some(200); 3]);
}

#[test]
fn bearer_is_case_insensitive() {
    let s = seeded(Backend::Sqlite);
    let server = serve(&s, &[]);
    let url = format!("{}/Users?count=1", server.base);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {}", s.admin);
        let r = get(&url, Some(&auth), Duration::from_secs(10)).unwrap();
        assert_eq!(r.0, 200, "{scheme}: {}", r.1);
    }
    for auth in [
        format!("Basic {}", s.admin),
        format!("Bearer{}", s.admin),
        "Bearer ".to_string(),
        format!("Bearer {}x", s.admin),
    ] {
        let r = get(&url, Some(&auth), Duration::from_secs(10)).unwrap();
        assert_eq!(r.0, 401, "{auth}: {}", r.1);
    }
}

/// The database of a test URL, and a URL of the cluster's `postgres`
/// database to administer it from.
fn pg_admin(db: &str) -> (String, String) {
    let (server, name) = db.rsplit_once('/').unwrap();
    (name.to_string(), format!("{server}/postgres"))
}

fn roster_sessions(admin: &mut ::postgres::Client, name: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'roster'",
            &[&name],
        )
        .unwrap()
        .get(0)
}

/// The live example on a fresh PostgreSQL database served with `extra`; the
/// database's name and a connection to the cluster to watch it from. `None`
/// when the PostgreSQL tests are skipped.
fn served_on_postgres(extra: &[&str]) -> Option<(Seeded, Served, String, ::postgres::Client)> {
    if super::pg::skipped() {
        return None;
    }
    let s = seeded(Backend::Postgres);
    let server = serve(&s, extra);
    let (name, admin_url) = pg_admin(&s.db);
    let admin = ::postgres::Client::connect(&admin_url, ::postgres::NoTls).unwrap();
    Some((s, server, name, admin))
}

#[test]
fn requests_are_authenticated_before_the_store_and_share_a_bounded_pool() {
    let Some((s, server, name, mut admin)) = served_on_postgres(&["--store-connections", "3"])
    else {
        return;
    };
    let url = format!("{}/Users?count=1", server.base);
    let bearer = format!("Bearer {}", s.admin);
    assert_eq!(
        get(&url, Some(&bearer), Duration::from_secs(10)).unwrap().0,
        200
    );

    // No new connection to the store can be made from here on.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
        ))
        .unwrap();
    for auth in [
        None,
        Some("Basic dXNlcjpwYXNz".to_string()),
        Some("Bearer".to_string()),
        Some("Bearer not-a-token".to_string()),
    ] {
        for _ in 0..20 {
            let r = get(&url, auth.as_deref(), Duration::from_secs(10)).unwrap();
            assert_eq!(r.0, 401, "{auth:?}: {}", r.1);
        }
    }
    // Tokens are looked up, and requests served, on the connection kept.
    for _ in 0..20 {
        let r = get(&url, Some(&bearer), Duration::from_secs(10)).unwrap();
        assert_eq!(r.0, 200, "{}", r.1);
        let unknown = format!("Bearer rst_{}", "0".repeat(64));
        assert_eq!(
            get(&url, Some(&unknown), Duration::from_secs(10))
                .unwrap()
                .0,
            401
        );
    }
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        ))
        .unwrap();

    // 48 clients at once: never more than 3 store connections for
    // requests, and the one kept for writes.
    let seen = Arc::new(Mutex::new(0i64));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (seen, done, name) = (Arc::clone(&seen), Arc::clone(&done), name.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let n = roster_sessions(&mut admin, &name);
                let mut s = seen.lock().unwrap();
                *s = (*s).max(n);
                drop(s);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let clients: Vec<_> = (0..48)
        .map(|_| {
            let (url, bearer) = (url.clone(), bearer.clone());
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| get(&url, Some(&bearer), Duration::from_secs(30)).map(|r| r.0))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for c in clients {
        for status in c.join().unwrap() {
            assert!(
                matches!(status, Some(200) | Some(503)),
                "a request got {status:?}"
            );
        }
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.join().unwrap();
    let most = *seen.lock().unwrap();
    assert!((1..=4).contains(&most), "{most} store connections at once");
}

/// The server keeps its requests' connections and the one its writes use,
/// nothing beside them: the connection that created or migrated the store
/// before the server listened is closed, not left idle for the server's life.
#[test]
fn no_store_connection_is_kept_beside_the_servers_pool() {
    let Some((s, server, name, mut admin)) = served_on_postgres(&["--store-connections", "1"])
    else {
        return;
    };
    let bearer = format!("Bearer {}", s.admin);
    let read = get(
        &format!("{}/Users?count=1", server.base),
        Some(&bearer),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(read.0, 200, "{}", read.1);
    let created = super::serve::http(
        "POST",
        &format!("{}/Users", server.base),
        Some(&s.admin),
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
            "userName": "KeptApart",
            "name": {"givenName": "Kept", "familyName": "Apart"},
            "emails": [{"value": "kept.apart@example.org", "type": "work", "primary": true}],
            EXT: {"birthDate": "1990-05-01", "postalCode": "62701"},
        })),
        &[],
    );
    assert_eq!(created.status, 201, "{}", created.body);
    // At most one connection for requests, and the writer's two (its
    // session and the snapshot it checks under the write lock); one closed
    // a moment ago may still be going away.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut open = roster_sessions(&mut admin, &name);
    while open > 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        open = roster_sessions(&mut admin, &name);
    }
    assert!(
        (1..=3).contains(&open),
        "{open} store connections open; the server's are 1 for requests and 2 for writes"
    );
}

#[test]
fn a_kept_store_connection_the_database_dropped_is_replaced_at_the_next_request() {
    let Some((s, server, name, mut admin)) = served_on_postgres(&["--store-connections", "1"])
    else {
        return;
    };
    let url = format!("{}/Users?count=1", server.base);
    let bearer = format!("Bearer {}", s.admin);
    let unknown = format!("Bearer rst_{}", "0".repeat(64));
    for auth in [&bearer, &unknown] {
        assert!(get(&url, Some(&bearer), Duration::from_secs(10)).is_some());
        // The server's kept connections end under it, between requests.
        let ended: i64 = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND application_name = 'roster') t",
                &[&name],
            )
            .unwrap()
            .get(0);
        assert!(ended >= 1, "no store connection to end");
        // The next request is answered on a new one, as if nothing happened.
        let want = if auth == &bearer { 200 } else { 401 };
        let r = get(&url, Some(auth), Duration::from_secs(10)).unwrap();
        assert_eq!(r.0, want, "{}", r.1);
        let r = get(&url, Some(&bearer), Duration::from_secs(10)).unwrap();
        assert_eq!(r.0, 200, "{}", r.1);
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost and its key
/// (`tests/fixtures/tls/NAME.crt` and `.key`, P-256, valid until 2126),
/// copied into `dir`. Test-only keys: nothing else trusts them.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let copy = |ext: &str| {
        let to = dir.join(format!("{name}.{ext}"));
        std::fs::copy(repo(&format!("tests/fixtures/tls/{name}.{ext}")), &to).unwrap();
        to
    };
    (copy("crt"), copy("key"))
}

#[test]
fn tls_serves_https_and_says_https_in_locations() {
    let s = seeded(Backend::Sqlite);
    let (cert, key) = certificate(s.r.path(), "server");
    let server = serve(
        &s,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(&cert).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, location, body, member_ref) = rt.block_on(async {
        let r = client
            .post(format!("{}/Users", server.base))
            .bearer_auth(&s.admin)
            .header("content-type", "application/scim+json")
            .body(
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
                    "userName": "tls.user",
                    "name": {"givenName": "Tess", "familyName": "Layer"},
                    "emails": [{"value": "tess@example.org", "primary": true}],
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = r.json().await.unwrap();
        let groups: Value = client
            .get(format!("{}/Groups?count=1&filter=members pr", server.base))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let member_ref = groups["Resources"][0]["members"][0]["$ref"].clone();
        (status, location, body, member_ref)
    });
    assert_eq!(status, 201, "{body}");
    let prefix = format!("{}/Users/", server.base);
    assert!(
        location.as_deref().is_some_and(|l| l.starts_with(&prefix)),
        "{location:?}"
    );
    assert!(
        body["meta"]["location"]
            .as_str()
            .is_some_and(|l| l.starts_with(&prefix)),
        "{body}"
    );
    assert!(
        member_ref.as_str().is_some_and(|l| l.starts_with(&prefix)),
        "{member_ref}"
    );
    // Plain HTTP on the TLS port gets nothing served.
    let plain = get(
        &format!("http://{}/scim/v2/ServiceProviderConfig", server.addr),
        None,
        Duration::from_secs(5),
    );
    assert!(plain.is_none(), "{plain:?}");
}

#[test]
fn bad_tls_files_are_named() {
    let s = seeded(Backend::Sqlite);
    let (cert, key) = certificate(s.r.path(), "server");
    let (_, other_key) = certificate(s.r.path(), "other");
    std::fs::write(s.r.path().join("junk.pem"), "not a certificate\n").unwrap();
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["--tls-cert", "missing.crt", "--tls-key", "server.key"],
            &["missing.crt"],
        ),
        (
            &["--tls-cert", "junk.pem", "--tls-key", "server.key"],
            &["junk.pem", "certificate"],
        ),
        (
            &["--tls-cert", "server.crt", "--tls-key", "junk.pem"],
            &["junk.pem", "private key"],
        ),
        (
            &["--tls-cert", "server.crt", "--tls-key", "other.key"],
            &["server.crt", "other.key"],
        ),
    ];
    assert!(cert.exists() && key.exists() && other_key.exists());
    for (args, named) in cases {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--store", &s.db];
        all.extend_from_slice(args);
        let out = super::serve::run_in(s.r.path(), &all);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        for n in named {
            assert!(out.stderr.contains(n), "{args:?}: {}", out.stderr);
        }
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    // A certificate without its key.
    let out = super::serve::run_in(
        s.r.path(),
        &["serve", "--store", &s.db, "--tls-cert", "server.crt"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("--tls-key"), "{}", out.stderr);
}

#[test]
fn forwarded_proto_counts_only_behind_a_trusted_proxy() {
    let s = seeded(Backend::Sqlite);
    for (flags, expect) in [(&[][..], "http://"), (&["--trust-proxy"][..], "https://")] {
        let server = serve(&s, flags);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let body: Value = rt.block_on(async {
            reqwest::Client::new()
                .get(format!("{}/ServiceProviderConfig", server.base))
                .header("x-forwarded-proto", "https")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        let location = body["meta"]["location"].as_str().unwrap_or_default();
        assert!(location.starts_with(expect), "{flags:?}: {location}");
    }
}

#[test]
fn the_request_log_names_requests_but_no_secret_or_personal_data() {
    let s = seeded(Backend::Sqlite);
    let mut server = serve(&s, &[]);
    let bearer = format!("Bearer {}", s.admin);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = rt.block_on(async {
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{}/Users", server.base))
            .header("authorization", &bearer)
            .header("content-type", "application/scim+json")
            .body(
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
                    "userName": "log.person",
                    "name": {"givenName": "Lorna", "familyName": "Quayle"},
                    "emails": [{"value": "lorna.quayle@example.org", "primary": true}],
                    "phoneNumbers": [{"value": "217-555-0177", "type": "work"}],
                    EXT: {"birthDate": "1971-08-23"},
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        let id = body["id"].as_str().unwrap_or_default().to_string();
        let get = client
            .get(format!("{}/Users/{id}", server.base))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let filtered = client
            .get(format!(
                "{}/Users?filter=userName%20eq%20%22zq-distinctive-7731%22&count=5",
                server.base
            ))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        // What a client puts in a path or a query's names is not logged
        // either.
        for stray in [
            "/Users/lorna.quayle@example.org",
            "/Users?zq-distinctive-key=1",
        ] {
            let status = client
                .get(format!("{}{stray}", server.base))
                .header("authorization", &bearer)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert!(status == 404 || status == 200, "{stray}: {status}");
        }
        let anonymous = client
            .get(format!("{}/Groups", server.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let wrong = client
            .get(format!("{}/Groups", server.base))
            .header("authorization", format!("Bearer rst_{}", "ab".repeat(32)))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (status, get, filtered, anonymous, wrong)
    });
    assert_eq!(created, (201, 200, 200, 401, 401));
    let (code, _) = server.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    let has = |parts: &[&str]| lines.iter().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(
        has(&["POST", "path=/scim/v2/Users", "status=201", "token=ci"]),
        "{log}"
    );
    assert!(
        has(&["GET", "/scim/v2/Users/", "status=200", "token=ci"]),
        "{log}"
    );
    assert!(
        has(&[
            "GET",
            "path=/scim/v2/Users",
            "query=filter,count",
            "status=200"
        ]),
        "{log}"
    );
    assert!(has(&["GET", "path=/scim/v2/Groups", "status=401"]), "{log}");
    assert!(has(&["GET", "path=/scim/v2/Users/*", "token=ci"]), "{log}");
    assert!(
        has(&["GET", "path=/scim/v2/Users", "query=*", "token=ci"]),
        "{log}"
    );
    for secret in [
        s.admin.as_str(),
        &s.admin[4..],
        &"ab".repeat(32),
        "zq-distinctive",
        "1971-08-23",
        "217-555-0177",
        "lorna",
        "Quayle",
        "zq-distinctive-key",
    ] {
        assert!(!log.contains(secret), "the log shows `{secret}`:\n{log}");
    }
}

#[test]
fn postgres_statements_of_the_server_are_capped() {
    if super::pg::skipped() {
        return;
    }
    let s = seeded(Backend::Postgres);
    let server = serve(&s, &["--statement-timeout", "1"]);
    let url = format!("{}/Users?count=1", server.base);
    let bearer = format!("Bearer {}", s.admin);
    assert_eq!(
        get(&url, Some(&bearer), Duration::from_secs(10)).unwrap().0,
        200
    );
    // Someone holds the accounts table: a listing waits for it, at most the
    // statement timeout.
    let mut holder = ::postgres::Client::connect(&s.db, ::postgres::NoTls).unwrap();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let started = Instant::now();
    let r = get(&url, Some(&bearer), Duration::from_secs(30));
    let took = started.elapsed();
    let status = r.as_ref().map(|r| r.0);
    // A listing's statements are cancelled as a filter that costs too much
    // is (400 `tooMany`); any other read gets a 5xx.
    assert!(
        matches!(status, Some(400 | 500..=599)),
        "{status:?} after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    tx.rollback().unwrap();
    // The connection that timed out serves the next request.
    assert_eq!(
        get(&url, Some(&bearer), Duration::from_secs(10)).unwrap().0,
        200
    );
    assert!(
        !server.log().contains(super::pg::PASSWORD),
        "{}",
        server.log()
    );
}

#[test]
fn a_client_that_reads_no_response_is_dropped_at_the_write_timeout() {
    let s = seeded(Backend::Sqlite);
    let server = serve(&s, &["--write-timeout", "1", "--header-timeout", "30"]);
    // Pipelined requests for responses far larger than the socket buffers,
    // and none of them read.
    let request = format!(
        "GET /scim/v2/Schemas HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    let sent = 4000;
    let mut client = connect(&server.addr);
    let mut writer = client.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        for _ in 0..sent {
            if writer.write_all(request.as_bytes()).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(4));
    // Now read: the server has given up on this client.
    let (got, _, closed) = read_until_closed(&mut client, Duration::from_secs(20));
    let answered = got.matches("HTTP/1.1 200").count();
    assert!(
        closed,
        "the connection is still open; {answered} answers read"
    );
    assert!(
        answered < sent,
        "all {answered} responses were kept waiting for the client"
    );
    feeder.join().unwrap();
    // Others are served.
    let ok = get(
        &format!("{}/ServiceProviderConfig", server.base),
        None,
        Duration::from_secs(10),
    );
    assert_eq!(ok.map(|r| r.0), Some(200));
}

/// Over PostgreSQL too, SIGTERM ends the server cleanly once it has kept
/// store connections (the reads' and the writes'): exit status 0, no panic
/// closing them.
#[test]
fn sigterm_over_postgres_exits_cleanly_with_kept_connections() {
    if super::pg::skipped() {
        return;
    }
    let s = seeded(Backend::Postgres);
    let mut server = serve(&s, &[]);
    let bearer = format!("Bearer {}", s.admin);
    let url = format!("{}/Users?count=1", server.base);
    assert_eq!(
        get(&url, Some(&bearer), Duration::from_secs(10)).unwrap().0,
        200
    );
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Term.Ok",
        "name": {"givenName": "Term", "familyName": "Ok"},
        "emails": [{"value": "term.ok@example.org", "type": "work"}],
    });
    let created = super::serve::http(
        "POST",
        &format!("{}/Users", server.base),
        Some(&s.admin),
        Some(&user),
        &[],
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let (code, took) = server.terminate(Duration::from_secs(20));
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(code, Some(0), "{log}");
}
