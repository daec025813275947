//! A real headless browser for the tests of roster's web pages: Debian's
//! `chromium` (and `chromedriver`, for tests that fill in forms).
//!
//! The programs are taken from `ROSTER_CHROMIUM` / `ROSTER_CHROMEDRIVER`,
//! `PATH` or /usr/bin. Without them, as root on a system with `apt-get`,
//! the tests install the `chromium` and `chromium-driver` packages once
//! (an exclusive lock on `target/browser.lock` keeps test threads and test
//! binaries from installing at the same time); otherwise they fail saying
//! what to install. `ROSTER_TEST_BROWSER=skip` skips the browser tests.
//!
//! Screenshots are kept under `target/test-artifacts/` for people to look at.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether `ROSTER_TEST_BROWSER=skip` asks to skip the browser tests (and
/// says so).
pub fn skipped() -> bool {
    let skip = std::env::var("ROSTER_TEST_BROWSER").is_ok_and(|v| v == "skip");
    if skip {
        super::peers::say_skipped("ROSTER_TEST_BROWSER=skip");
    }
    skip
}

/// The browser: (chromium, chromedriver), found or installed once.
pub fn programs() -> &'static (PathBuf, PathBuf) {
    static PROGRAMS: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    match PROGRAMS.get_or_init(find_or_install) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

pub fn chromium() -> &'static Path {
    &programs().0
}

#[allow(dead_code)] // used by the tests that fill in forms
pub fn chromedriver() -> &'static Path {
    &programs().1
}

fn find(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push(PathBuf::from("/usr/bin"));
    dirs.push(PathBuf::from("/usr/lib/chromium"));
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

fn found() -> Option<(PathBuf, PathBuf)> {
    Some((
        find("ROSTER_CHROMIUM", &["chromium", "chromium-browser"])?,
        find("ROSTER_CHROMEDRIVER", &["chromedriver"])?,
    ))
}

fn find_or_install() -> Result<(PathBuf, PathBuf), String> {
    if let Some(p) = found() {
        return Ok(p);
    }
    let instead = "Install Debian's `chromium` and `chromium-driver` packages (or set \
                   ROSTER_CHROMIUM and ROSTER_CHROMEDRIVER), or set ROSTER_TEST_BROWSER=skip \
                   to skip the browser tests.";
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root || !Path::new("/usr/bin/apt-get").is_file() {
        return Err(format!("no chromium and chromedriver found. {instead}"));
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    let lock_path = target.join("browser.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if let Some(p) = found() {
        return Ok(p);
    }
    let _ = writeln!(
        std::io::stderr(),
        "installing Debian's chromium and chromium-driver (once)..."
    );
    let run = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}. {instead}"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "apt-get {} failed ({}):\n{}{}\n{instead}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    };
    let install = [
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "chromium",
        "chromium-driver",
    ];
    if run(&install).is_err() {
        run(&["update", "-qq"])?;
        run(&install)?;
    }
    found().ok_or_else(|| format!("apt-get installed chromium, yet it is not found. {instead}"))
}

/// The flags every headless start takes: no sandbox (tests may run as root),
/// no GPU, and no connections of the browser's own (this machine's network
/// is closed, and the tests must not depend on one).
pub const HEADLESS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
];

/// Where screenshots and pages are kept: `target/test-artifacts/`.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// Runs chromium headless on `url` with `extra` flags, in a fresh profile,
/// killed after 60 seconds.
fn run_chromium(url: &str, extra: &[String]) -> Output {
    let profile = tempfile::tempdir().expect("browser profile dir");
    let mut child = Command::new(chromium())
        .args(HEADLESS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium().display()));
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("chromium's output")
}

/// The page at `url` as the browser built it (`--dump-dom`): what a person
/// sees with JavaScript as the page has it.
pub fn dom(url: &str) -> String {
    let out = run_chromium(url, &["--dump-dom".to_string()]);
    assert!(
        out.status.success(),
        "chromium --dump-dom {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A screenshot of `url` (`width`×`height`) kept as
/// `target/test-artifacts/NAME.png`; returns its path. Panics unless the
/// browser wrote a PNG.
pub fn screenshot(url: &str, name: &str, width: u32, height: u32) -> PathBuf {
    let png = artifacts().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let out = run_chromium(
        url,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},{height}"),
        ],
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "chromium wrote no screenshot of {url} ({e}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{} is not a PNG of a page",
        png.display()
    );
    png
}

#[test]
fn the_browser_runs_a_page_served_on_loopback() {
    if skipped() {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let server = std::thread::spawn(move || {
        use std::io::Read;
        // The dump and the screenshot: two page loads (and maybe a favicon).
        for stream in listener.incoming().take(4) {
            let mut stream = stream.expect("accept");
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = "<!doctype html><title>t</title><p id=p>served</p>\
                        <script>document.getElementById('p').textContent += ' and scripted'</script>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dom = dom(&url);
    assert!(dom.contains("served and scripted"), "{dom}");
    let png = screenshot(&url, "browser-smoke", 400, 300);
    assert!(png.is_file());
    drop(server);
}
