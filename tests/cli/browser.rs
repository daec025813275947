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

/// A W3C WebDriver session on `chromedriver` driving a headless chromium,
/// spoken to over plain HTTP/1.1 with JSON bodies (the protocol is a handful
/// of requests; no client crate needed). The driver is stopped when dropped.
pub struct WebDriver {
    driver: std::process::Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl WebDriver {
    /// Start `chromedriver` and a browser session whose window is
    /// `width`×`height`.
    pub fn start(width: u32, height: u32) -> WebDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver().display()));
        let profile = tempfile::tempdir().expect("browser profile dir");
        let mut wd = WebDriver {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let started = Instant::now();
        while wd.call("GET", "/status", None).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut args: Vec<String> = HEADLESS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", wd._profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // A window may not be narrower than the desktop's minimum: the
            // page is laid out at exactly `width` as on a phone.
            "goog:chromeOptions": {
                "binary": chromium().display().to_string(),
                "args": args,
                "mobileEmulation": {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}},
            },
        }}});
        let v = wd.ok("POST", "/session", Some(&caps));
        wd.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        wd
    }

    /// One request to the driver: the answer's `value`, or the error text.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        use std::io::Read;
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        // The driver may keep the connection open: read the head, then
        // exactly the body it announces.
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let end = loop {
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("not HTTP: {}", String::from_utf8_lossy(&raw)));
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let lower = head.to_ascii_lowercase();
        let length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let mut rest = raw[end + 4..].to_vec();
        let complete = |rest: &[u8]| match length {
            Some(n) => rest.len() >= n,
            None => rest.ends_with(b"0\r\n\r\n"),
        };
        while !complete(&rest) {
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&buf[..n]);
        }
        let payload = match length {
            Some(n) => rest[..n.min(rest.len())].to_vec(),
            None => unchunk(&rest),
        };
        let payload = String::from_utf8_lossy(&payload);
        let v: serde_json::Value =
            serde_json::from_str(&payload).map_err(|e| format!("{e}: {payload}"))?;
        let status_ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
        if status_ok {
            Ok(v["value"].clone())
        } else {
            Err(format!("{method} {path}: {head}\n{v}"))
        }
    }

    fn ok(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> serde_json::Value {
        self.call(method, path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Open `url` and wait for it to load.
    pub fn open(&self, url: &str) {
        self.ok(
            "POST",
            &self.at("/url"),
            Some(&serde_json::json!({"url": url})),
        );
    }

    /// The element `css` selects (panics if none).
    pub fn find(&self, css: &str) -> String {
        let v = self.ok(
            "POST",
            &self.at("/element"),
            Some(&serde_json::json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// Type `text` into the element `css` selects, as a person would.
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.ok(
            "POST",
            &self.at(&format!("/element/{e}/value")),
            Some(&serde_json::json!({"text": text})),
        );
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.ok(
            "POST",
            &self.at(&format!("/element/{e}/click")),
            Some(&serde_json::json!({})),
        );
    }

    pub fn title(&self) -> String {
        self.ok("GET", &self.at("/title"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's source as the browser holds it now.
    pub fn source(&self) -> String {
        self.ok("GET", &self.at("/source"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Run `script` in the page (WebDriver's own script, which the page's
    /// Content-Security-Policy does not govern) and return its value.
    pub fn eval(&self, script: &str) -> serde_json::Value {
        self.ok(
            "POST",
            &self.at("/execute/sync"),
            Some(&serde_json::json!({"script": script, "args": []})),
        )
    }

    /// Wait until the page's title is `title` (panics after 30 s).
    pub fn wait_for_title(&self, title: &str) {
        let started = Instant::now();
        loop {
            let now = self.title();
            if now == title {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the page's title stayed `{now}`, not `{title}`:\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the page shows `text` (panics after 30 s).
    pub fn wait_for_text(&self, text: &str) {
        let started = Instant::now();
        loop {
            let now = self.source();
            if now.contains(text) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the page never showed `{text}`:\n{now}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A screenshot of the window kept as `target/test-artifacts/NAME.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.ok("GET", &self.at("/screenshot"), None);
        let bytes = data_encoding::BASE64
            .decode(b64.as_str().unwrap_or_default().as_bytes())
            .expect("a base64 screenshot");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        let png = artifacts().join(format!("{name}.png"));
        std::fs::write(&png, bytes).expect("write the screenshot");
        png
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A chunked HTTP body, joined.
fn unchunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..line]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let after = &rest[line + 2..];
        if n == 0 || after.len() < n {
            break;
        }
        out.extend_from_slice(&after[..n]);
        rest = after[n..].strip_prefix(b"\r\n").unwrap_or(&after[n..]);
    }
    out
}
