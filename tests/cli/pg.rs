//! A throwaway PostgreSQL cluster for the store tests: started once per test
//! binary on 127.0.0.1 and a free port, one fresh database per test, gone
//! when the test binary exits.
//!
//! The binaries are found on PATH, through `pg_config --bindir`, or under
//! /usr/lib/postgresql/*/bin; without them (or with
//! `ROSTER_TEST_POSTGRES=wheel`) the tests install the PostgreSQL 16
//! binaries of the PyPI `pgserver` wheel into `target/test-venv`
//! (tests/cli/peers.rs). `initdb` refuses to run as root, so as root the
//! cluster runs as the `postgres` user. `ROSTER_TEST_POSTGRES=skip` skips
//! the PostgreSQL variants of the store tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The superuser's password, in every URL the tests pass: distinctive, so a
/// test can tell that roster never shows it.
pub const PASSWORD: &str = "pw-Kq7xZr2Vn9";

struct Cluster {
    port: u16,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

pub fn skipped() -> bool {
    let skip = std::env::var("ROSTER_TEST_POSTGRES").is_ok_and(|v| v == "skip");
    if skip {
        super::peers::say_skipped("ROSTER_TEST_POSTGRES=skip");
    }
    skip
}

/// A new, empty database: (URL with the password, URL as roster shows it).
pub fn database() -> (String, String) {
    let port = match CLUSTER.get_or_init(start) {
        Ok(c) => c.port,
        Err(e) => panic!("{e}"),
    };
    let name = format!("store_{}", DATABASES.fetch_add(1, Ordering::SeqCst));
    admin(port)
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    (
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/{name}"),
        format!("postgres://postgres@127.0.0.1:{port}/{name}"),
    )
}

fn admin(port: u16) -> postgres::Client {
    postgres::Client::connect(
        &format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"),
        postgres::NoTls,
    )
    .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"))
}

fn has(d: &Path) -> bool {
    d.join("initdb").is_file() && d.join("postgres").is_file()
}

/// The system's PostgreSQL binaries, else those of the `pgserver` wheel.
fn bindir() -> Result<PathBuf, String> {
    if std::env::var("ROSTER_TEST_POSTGRES").is_ok_and(|v| v == "wheel") {
        return wheel();
    }
    system().map_or_else(wheel, Ok)
}

/// The binaries of the `pgserver` wheel, installed into `target/test-venv`:
/// `<site-packages>/pgserver/pginstall/bin`, beside the libraries in
/// `<site-packages>/pgserver.libs` they load.
fn wheel() -> Result<PathBuf, String> {
    let venv = super::peers::install(
        super::peers::PGSERVER,
        "Install PostgreSQL (apt-get install postgresql) so initdb and postgres are found, or \
         set ROSTER_TEST_POSTGRES=skip to skip these tests.",
    )?;
    std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("site-packages/pgserver/pginstall/bin"))
        .find(|d| has(d))
        .ok_or_else(|| {
            format!(
                "{} installed without initdb and postgres under {}/lib/*/site-packages/pgserver; \
                 install PostgreSQL (apt-get install postgresql) or set ROSTER_TEST_POSTGRES=skip",
                super::peers::PGSERVER.join(" "),
                venv.display()
            )
        })
}

fn system() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH")
        && let Some(d) = std::env::split_paths(&path).find(|d| has(d))
    {
        return Some(d);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has(&d) {
            return Some(d);
        }
    }
    // Debian installs each major version beside the others: take the newest.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Whether the postgres user can run the binaries in `bin` (it cannot
/// when they sit under a directory only root may enter).
fn runs_as_postgres(bin: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("postgres"))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Copies the wheel's binaries (`…/pgserver/pginstall`, and the libraries
/// in `…/pgserver.libs` they load by relative path) into the cluster's
/// directory, which is handed to the postgres user; returns the copy's bin.
fn copy_wheel(bin: &Path, dir: &Path) -> Result<PathBuf, String> {
    let Some(site) = bin
        .ancestors()
        .nth(3)
        .filter(|_| bin.ends_with("pgserver/pginstall/bin"))
    else {
        return Err(format!(
            "the postgres user cannot run {}: make it readable to that user, or set \
             ROSTER_TEST_POSTGRES=skip",
            bin.join("postgres").display()
        ));
    };
    let to = dir.join("pg");
    std::fs::create_dir_all(to.join("pgserver")).map_err(|e| format!("{}: {e}", to.display()))?;
    for (from, into) in [
        (site.join("pgserver/pginstall"), to.join("pgserver")),
        (site.join("pgserver.libs"), to.clone()),
    ] {
        let copied = Command::new("cp").arg("-a").arg(&from).arg(&into).status();
        if !copied.is_ok_and(|s| s.success()) {
            return Err(format!(
                "cannot copy {} to {}",
                from.display(),
                into.display()
            ));
        }
    }
    Ok(to.join("pgserver/pginstall/bin"))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn start() -> Result<Cluster, String> {
    let mut bin = bindir()?;
    let dir = tempfile::Builder::new()
        .prefix("roster-pg-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    let root = is_root();
    std::fs::write(dir.join("pw"), PASSWORD).map_err(|e| format!("password file: {e}"))?;
    if root && !runs_as_postgres(&bin) {
        bin = copy_wheel(&bin, &dir)?;
    }
    if root {
        let chown = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&dir)
            .status();
        if !chown.is_ok_and(|s| s.success()) {
            return Err(format!(
                "cannot hand {} to the postgres user (initdb refuses root)",
                dir.display()
            ));
        }
    }
    // As root, run the server's programs as the postgres user.
    let program = |name: &str| -> Command {
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(name));
            c
        } else {
            Command::new(bin.join(name))
        }
    };
    let data = dir.join("data");
    let out = program("initdb")
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
        .args(["--locale=C", "--no-sync"])
        .arg(format!("--pwfile={}", dir.join("pw").display()))
        .output()
        .map_err(|e| format!("run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port()?;
    let mut server = program("postgres");
    server
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=200"]);
    // The server lives as long as this test binary: a watchdog shell stops
    // it (and removes the cluster) once the binary's process is gone.
    let watchdog = r#"
        "$@" >"$DIR/log" 2>&1 &
        server=$!
        while kill -0 "$TESTS" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
        kill -INT "$(head -n 1 "$DIR/data/postmaster.pid" 2>/dev/null)" 2>/dev/null
        wait "$server"
        rm -rf "$DIR"
    "#;
    let mut child = Command::new("sh")
        .args(["-c", watchdog, "sh"])
        .arg(server.get_program())
        .args(server.get_args())
        .env("DIR", &dir)
        .env("TESTS", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start postgres: {e}"))?;
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/postgres");
    let started = Instant::now();
    loop {
        if postgres::Client::connect(&url, postgres::NoTls).is_ok() {
            return Ok(Cluster { port });
        }
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited || started.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("the test PostgreSQL server did not start:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
