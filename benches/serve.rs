//! `roster serve` over SQLite and over PostgreSQL under a bounded loopback
//! load, next to the Python `scim2-server` under the same load, in one run:
//! creates/s, filtered reads/s and pages of 1,000/s.
//!
//! `cargo bench --bench serve` (or `scripts/bench-serve.sh`). Needs
//! `scim2-server` on PATH or in `$ROSTER_PY_BIN` for the comparison, and
//! PostgreSQL's `initdb` and `postgres` (on PATH, through `pg_config
//! --bindir` or under /usr/lib/postgresql/*/bin) for the PostgreSQL figure;
//! what is missing is said and left out.
//!
//! Next to creates/s: the server's CPU time (user and system, all its
//! threads) per create, which other work on the machine moves less.
//!
//! For profiling one server at length: `ROSTER_BENCH_ONLY=sqlite`
//! (or `postgres`, `python`) measures that one alone, and
//! `ROSTER_BENCH_USERS=N` creates N users instead of 2,000;
//! `ROSTER_BENCH_READS=0` leaves the reads and pages out (creates only).

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests in flight at once.
const CONCURRENCY: usize = 16;
/// Users created (and then in the store for the reads), unless
/// `ROSTER_BENCH_USERS` says otherwise.
const USERS: usize = 2_000;

fn users() -> usize {
    std::env::var("ROSTER_BENCH_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(USERS)
}

/// Whether this server is measured (`ROSTER_BENCH_ONLY` names one).
fn measured(name: &str) -> bool {
    std::env::var("ROSTER_BENCH_ONLY").map_or(true, |only| only == name)
}
const READS: usize = 2_000;
const PAGES: usize = 20;

/// Whether the reads and pages are measured (`ROSTER_BENCH_READS=0`: not).
fn reads() -> bool {
    std::env::var("ROSTER_BENCH_READS").map_or(true, |n| n != "0")
}

struct Server {
    child: Child,
    base: String,
    token: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn roster_server(store: &str) -> Server {
    let roster = env!("CARGO_BIN_EXE_roster");
    let dir = tempfile::tempdir().expect("temp dir");
    let token = Command::new(roster)
        .args(["token", "create", "--name", "bench", "--store", store])
        .current_dir(dir.path())
        .output()
        .expect("roster token create");
    assert!(
        token.status.success(),
        "roster token create: {}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let mut child = Command::new(roster)
        .args(["serve", "--listen", "127.0.0.1:0", "--store", store])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roster serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    std::thread::spawn(move || for _ in lines {});
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address")
        .to_string();
    Server {
        child,
        base,
        token: Some(token),
        _dir: Some(dir),
    }
}

fn find_tool(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("ROSTER_PY_BIN")
        .into_iter()
        .chain(std::env::var_os("PATH"))
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn python_server() -> Option<Server> {
    let exe = find_tool("scim2-server")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new(exe)
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let base = format!("http://127.0.0.1:{port}/v2");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Server {
        child,
        base,
        token: None,
        _dir: None,
    })
}

/// Run `n` requests, `CONCURRENCY` at a time; returns requests per second.
async fn load<F>(n: usize, make: F) -> f64
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (make, next) = (make.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = make(i).send().await.expect("request");
                let status = r.status();
                let body = r.bytes().await.expect("body");
                assert!(
                    status.is_success(),
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn user(i: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("user{i:06}"),
        "name": {"givenName": format!("Given{i}"), "familyName": format!("Family{i}")},
        "emails": [{"value": format!("user{i:06}@example.org"), "type": "work"}],
        "active": true,
    })
}

fn url(base: &str, query: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(&format!("{base}/Users"), query).expect("URL")
}

struct Figures {
    creates: f64,
    /// The server's CPU time per create, in microseconds.
    cpu_per_create: Option<f64>,
    reads: f64,
    pages: f64,
}

async fn measure(s: &Server) -> Figures {
    let client = reqwest::Client::new();
    let req = {
        let token = s.token.clone();
        move |r: reqwest::RequestBuilder| match &token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    };
    let (c, base, rq) = (client.clone(), s.base.clone(), req.clone());
    let users = users();
    let pid = s.child.id();
    let cpu_before = cpu_seconds(pid);
    let creates = load(users, move |i| {
        rq(c.post(format!("{base}/Users")))
            .header("content-type", "application/scim+json")
            .body(user(i).to_string())
    })
    .await;
    let cpu_per_create = cpu_before
        .zip(cpu_seconds(pid))
        .map(|(a, b)| (b - a) * 1e6 / users as f64);
    if !reads() {
        return Figures {
            creates,
            cpu_per_create,
            reads: f64::NAN,
            pages: f64::NAN,
        };
    }
    let (c, base, rq) = (client.clone(), s.base.clone(), req.clone());
    let reads = load(READS, move |i| {
        let n = (i * 7919) % users;
        let filter = format!("emails.value eq \"user{n:06}@example.org\"");
        rq(c.get(url(&base, &[("filter", &filter)])))
    })
    .await;
    let (c, base, rq) = (client.clone(), s.base.clone(), req.clone());
    let pages = load(PAGES, move |i| {
        let start = 1 + (i % 2) * users.min(2000) / 2;
        let start = start.to_string();
        rq(c.get(url(
            &base,
            &[
                ("startIndex", &start),
                ("count", "1000"),
                ("sortBy", "userName"),
            ],
        )))
    })
    .await;
    Figures {
        creates,
        cpu_per_create,
        reads,
        pages,
    }
}

/// CPU time (user and system) process `pid` has used so far, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses): state is field 3, utime 14.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

/// Clock ticks per second of /proc's CPU times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A throwaway PostgreSQL cluster on 127.0.0.1 (password login, as a
/// deployment has; commits not waiting for the disk, as SQLite's
/// `synchronous=NORMAL` does not): stopped and removed when dropped.
struct Postgres {
    child: Child,
    dir: std::path::PathBuf,
    url: String,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap_or_default();
        if let Some(pid) = pid.lines().next() {
            let _ = Command::new("kill").args(["-INT", pid]).status();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pg_bindir() -> Option<std::path::PathBuf> {
    let has = |d: &std::path::Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|d| has(d))
    {
        return Some(d);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has(&d) {
            return Some(d);
        }
    }
    let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d)| has(d))
        .collect();
    found.sort();
    found.pop().map(|(_, d)| d)
}

fn postgres_server() -> Result<Postgres, String> {
    const PASSWORD: &str = "bench-pw";
    let bin = pg_bindir().ok_or("no initdb/postgres found")?;
    let dir = tempfile::Builder::new()
        .prefix("roster-bench-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    std::fs::write(dir.join("pw"), PASSWORD).map_err(|e| e.to_string())?;
    // initdb refuses root: as root, the cluster runs as the postgres user.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
    }
    let program = |name: &str| {
        let mut c = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(name));
            c
        } else {
            Command::new(bin.join(name))
        };
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let data = dir.join("data");
    let ok = program("initdb")
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .arg(format!("--pwfile={}", dir.join("pw").display()))
        .status()
        .map_err(|e| e.to_string())?;
    if !ok.success() {
        return Err("initdb failed".into());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = program("postgres")
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args(["-c", "synchronous_commit=off"])
        .spawn()
        .map_err(|e| e.to_string())?;
    let server = Postgres {
        child,
        dir,
        url: format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"),
    };
    for _ in 0..300 {
        if postgres::Client::connect(&server.url, postgres::NoTls).is_ok() {
            return Ok(server);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("PostgreSQL did not start within 30 s".into())
}

fn row(name: &str, f: &Figures) {
    let cpu = f
        .cpu_per_create
        .map_or(String::new(), |us| format!("   {us:.0} µs CPU/create"));
    if f.reads.is_nan() {
        // Creates only (`ROSTER_BENCH_READS=0`).
        println!("{name:<24} {:>8.0} creates/s{cpu}", f.creates);
        return;
    }
    println!(
        "{name:<24} {:>8.0} creates/s {:>8.0} filtered reads/s {:>6.1} pages/s{cpu}",
        f.creates, f.reads, f.pages
    );
}

fn ratio(name: &str, a: &Figures, b: &Figures) {
    if a.reads.is_nan() || b.reads.is_nan() {
        println!("{name:<40} creates {:.1}x", a.creates / b.creates);
        return;
    }
    println!(
        "{name:<40} creates {:.1}x, filtered reads {:.1}x, pages {:.1}x",
        a.creates / b.creates,
        a.reads / b.reads,
        a.pages / b.pages
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "bounded load: {CONCURRENCY} in flight, loopback; {users} creates, {READS} filtered reads \
         (emails.value eq) against {users} users, {PAGES} pages of 1,000",
        users = users()
    );
    println!("load average: {}", load_average());
    let sqlite = measured("sqlite").then(|| {
        let roster = roster_server("sqlite:bench.db");
        rt.block_on(measure(&roster))
    });
    if let Some(f) = &sqlite {
        row("roster serve (SQLite)", f);
    }
    let pg = match measured("postgres").then(postgres_server) {
        None => None,
        Some(Ok(cluster)) => {
            let roster = roster_server(&cluster.url);
            let f = rt.block_on(measure(&roster));
            row("roster serve (PostgreSQL)", &f);
            Some(f)
        }
        Some(Err(e)) => {
            println!("roster serve (PostgreSQL): not measured: {e}");
            None
        }
    };
    let py = match measured("python").then(python_server) {
        None => None,
        Some(None) => {
            println!("scim2-server not found (PATH or ROSTER_PY_BIN): no comparison");
            None
        }
        Some(Some(py)) => Some(rt.block_on(measure(&py))),
    };
    if let Some(p) = &py {
        row("scim2-server (Python)", p);
    }
    if let (Some(pg), Some(sqlite)) = (&pg, &sqlite) {
        ratio("ratio PostgreSQL/SQLite:", pg, sqlite);
    }
    if let Some(p) = &py {
        if let Some(sqlite) = &sqlite {
            ratio("ratio roster (SQLite)/scim2-server:", sqlite, p);
        }
        if let Some(pg) = &pg {
            ratio("ratio roster (PostgreSQL)/scim2-server:", pg, p);
        }
    }
    println!("load average: {}", load_average());
}

/// The machine's load average (1, 5, 15 minutes): other work moves the
/// figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
