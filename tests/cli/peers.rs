//! The PyPI programs the tests run against: the SCIM peers (a third-party
//! server and testers) and, where the system has no PostgreSQL, the
//! PostgreSQL binaries the `pgserver` wheel ships.
//!
//! A program is taken from `ROSTER_PY_BIN`, `PATH` or `target/ci-venv/bin`
//! (where `.ci/run` installs them); failing that, the tests install the
//! pinned packages into `target/test-venv` themselves, once per machine: an
//! exclusive lock on `target/test-venv.lock` keeps parallel tests and test
//! binaries from installing at the same time, and a marker written only
//! after pip succeeded tells a finished install from one cut short.
//! `ROSTER_TEST_SCIM=skip` skips the tests that need the SCIM peers;
//! `ROSTER_TEST_TOOLS=skip` those that run the CI kit's tools or the mail
//! relay, also from PyPI.

use super::repo;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The SCIM peers, in versions that work together (scim2-models 0.12,
/// pydantic 2); `.ci/run` installs the same.
pub const SCIM_PEERS: &[&str] = &[
    "scim2-server==0.8.3",
    "scim2-tester==0.5.2",
    "scim2-cli==0.6.0",
    "scim2-client==0.13.2",
    "scim-sanity==0.7.4",
];

/// The SMTP relay the mail tests deliver to (tests/fixtures/smtp_relay.py).
pub const AIOSMTPD: &[&str] = &["aiosmtpd==1.4.6"];

/// PostgreSQL 16 binaries in a wheel (manylinux x86_64 and aarch64, macOS).
pub const PGSERVER: &[&str] = &["pgserver==0.1.4"];

/// Tells the person running the tests that one was skipped, past the
/// test harness's output capture.
pub fn say_skipped(why: &str) {
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let line = format!("{test}: skipped ({why})");
    if SAID
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(line.clone())
    {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// Whether `ROSTER_TEST_SCIM=skip` asks to skip the SCIM peer tests (and
/// says so).
pub fn scim_skipped() -> bool {
    let skip = std::env::var("ROSTER_TEST_SCIM").is_ok_and(|v| v == "skip");
    if skip {
        say_skipped("ROSTER_TEST_SCIM=skip");
    }
    skip
}

/// Whether `ROSTER_TEST_TOOLS=skip` asks to skip the tests that run the
/// other PyPI tools: the CI kit's (actionlint, pre-commit) and the mail
/// relay (aiosmtpd). Says so.
pub fn tools_skipped() -> bool {
    let skip = std::env::var("ROSTER_TEST_TOOLS").is_ok_and(|v| v == "skip");
    if skip {
        say_skipped("ROSTER_TEST_TOOLS=skip");
    }
    skip
}

/// A program of the SCIM peers (`scim2-server`, `scim2`, `scim-sanity`):
/// found, or installed into `target/test-venv`; `None` when skipped.
pub fn scim_tool(name: &str) -> Option<PathBuf> {
    if scim_skipped() {
        return None;
    }
    if name == "scim2-server"
        && let Some(p) = std::env::var_os("ROSTER_SCIM2_SERVER").filter(|p| !p.is_empty())
    {
        return Some(PathBuf::from(p));
    }
    let found = std::env::var_os("ROSTER_PY_BIN")
        .into_iter()
        .chain(std::env::var_os("PATH"))
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([repo(".venv/bin"), repo("target/ci-venv/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_some() {
        return found;
    }
    // Installed once per test binary; a failure is not retried by each test.
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let venv = VENV.get_or_init(|| {
        install(
            SCIM_PEERS,
            "Install them yourself and put them on PATH (or set ROSTER_PY_BIN), or set \
             ROSTER_TEST_SCIM=skip to skip these tests.",
        )
    });
    let exe = match venv {
        Ok(venv) => venv.join("bin").join(name),
        Err(e) => panic!("{e}"),
    };
    assert!(
        exe.is_file(),
        "{} is missing after installing {}",
        exe.display(),
        SCIM_PEERS.join(" ")
    );
    Some(exe)
}

/// The directory the tests install PyPI packages into.
pub fn venv() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-venv")
}

/// Installs `packages` into `target/test-venv` unless an earlier install
/// of exactly these finished; returns the venv's directory, or what failed
/// (pip's output) and `instead`, what else to do.
pub fn install(packages: &[&str], instead: &str) -> Result<PathBuf, String> {
    let venv = venv();
    let wanted = packages.join(" ");
    let marker = venv.join(format!(
        "installed-{}",
        packages[0].split("==").next().unwrap_or("packages")
    ));
    let done = || std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted);
    if done() {
        return Ok(venv);
    }
    let fail = |what: &str| {
        format!(
            "{what}\n\nThe tests install {wanted} into {} with python3 -m venv and pip (network \
             access to PyPI needed once). {instead}",
            venv.display()
        )
    };
    std::fs::create_dir_all(venv.parent().unwrap())
        .map_err(|e| fail(&format!("cannot create {}: {e}", venv.display())))?;
    let lock_path = venv.with_extension("lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| fail(&format!("cannot open {}: {e}", lock_path.display())))?;
    // Held until `lock` is dropped: other threads and test binaries wait.
    lock.lock()
        .map_err(|e| fail(&format!("cannot lock {}: {e}", lock_path.display())))?;
    if done() {
        return Ok(venv);
    }
    let started = Instant::now();
    let _ = writeln!(
        std::io::stderr(),
        "installing {wanted} into {} (once)...",
        venv.display()
    );
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd
            .output()
            .map_err(|e| fail(&format!("{what}: cannot run {:?}: {e}", cmd.get_program())))?;
        if out.status.success() {
            return Ok(());
        }
        Err(fail(&format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    };
    let pip = venv.join("bin/pip");
    if !pip.is_file() {
        // No venv yet, or one whose creation was cut short.
        run(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
            "python3 -m venv",
        )?;
    }
    run(
        Command::new(&pip)
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages),
        "pip install",
    )?;
    let partial = marker.with_extension("partial");
    std::fs::write(&partial, &wanted)
        .and_then(|()| std::fs::rename(&partial, &marker))
        .map_err(|e| fail(&format!("cannot write {}: {e}", marker.display())))?;
    let _ = writeln!(
        std::io::stderr(),
        "installed {wanted} in {:.0?}",
        started.elapsed()
    );
    Ok(venv)
}
