//! The activation page of `roster serve` (`GET`/`POST /activate`): a real
//! server on 127.0.0.1 over a SQLite file and a PostgreSQL database, spoken
//! to over plain HTTP as a browser would, with the account invited by
//! `roster apply` and its token set through SQL.

use super::serve::ok_in;
use super::store::Backend;
use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

/// An invited partner (the roster's default onboarding) and another one.
pub const ROSTER: &str = "version: 1\ngroups:\n  - name: ABC\n    members:\n      - mandy@example.com\n      - bo@example.com\npartners:\n  - email: mandy@example.com\n    first_name: Mandy\n    last_name: McCray\n    birth_date: 1972-09-01\n    phone: \"217-852-9634\"\n    zip: \"62568\"\n    sign_in: invite\n  - email: bo@example.com\n    first_name: Bo\n    last_name: Diaz\n    birth_date: 1980-01-02\n    phone: \"217-852-9635\"\n    zip: \"62568\"\n";

/// A password that passes the page's rule.
pub const GOOD: &str = "correct horse 7 battery";

/// A running `roster serve` whose log (stderr) is kept.
pub struct Server {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it holds `needle`: a thread reads the server's stderr,
    /// and a request's log line may come after its answer. Panics with the
    /// log after 10 seconds without it.
    pub fn log_with(&self, needle: &str) -> String {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                std::time::Instant::now() < until,
                "no `{needle}` in the log:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

pub fn start(dir: &Path, store: &str, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", store])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start roster serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let log = Arc::new(Mutex::new(format!("{first}\n")));
    let kept = Arc::clone(&log);
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let mut k = kept.lock().unwrap();
            k.push_str(&l);
            k.push('\n');
        }
    });
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in: {first}"))
        .trim_end_matches("/scim/v2")
        .to_string();
    Server { child, base, log }
}

/// A connection to a test's store, to look inside and to set tokens.
pub enum Sql {
    Sqlite(rusqlite::Connection),
    Postgres(::postgres::Client),
}

impl Sql {
    pub fn open(dir: &Path, url: &str) -> Sql {
        match url.strip_prefix("sqlite:") {
            Some(file) => Sql::Sqlite(rusqlite::Connection::open(dir.join(file)).unwrap()),
            None => Sql::Postgres(::postgres::Client::connect(url, ::postgres::NoTls).unwrap()),
        }
    }

    pub fn batch(&mut self, sql: &str) {
        match self {
            Sql::Sqlite(c) => c.execute_batch(sql).unwrap(),
            Sql::Postgres(c) => c.batch_execute(sql).unwrap(),
        }
    }

    /// The columns of the first row, as text (NULL as `None`).
    pub fn row(&mut self, sql: &str) -> Vec<Option<String>> {
        match self {
            Sql::Sqlite(c) => {
                let mut q = c.prepare(sql).unwrap();
                let n = q.column_count();
                q.query_row([], |r| {
                    Ok((0..n)
                        .map(|i| match r.get_ref(i).unwrap() {
                            rusqlite::types::ValueRef::Null => None,
                            rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                            v => Some(v.as_str().unwrap().to_string()),
                        })
                        .collect())
                })
                .unwrap()
            }
            Sql::Postgres(c) => c
                .simple_query(sql)
                .unwrap()
                .into_iter()
                .find_map(|m| match m {
                    ::postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .expect("a row"),
        }
    }
}

/// A fresh token for the account with this email, as `roster apply` or a
/// reminder would issue it (`issued`: when, RFC 3339); returns the token.
pub fn set_token(sql: &mut Sql, email: &str, issued: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = data_encoding::HEXLOWER.encode(&bytes);
    let digest = format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()))
    );
    sql.batch(&format!(
        "UPDATE accounts SET activation_digest = '{digest}', token_issued_at = '{issued}' \
         WHERE email_key = '{email}'"
    ));
    token
}

/// Now, minus `secs` seconds, as the store writes times.
pub fn ago(secs: i64) -> String {
    let now = jiff::Timestamp::now().as_second() - secs;
    jiff::Timestamp::from_second(now).unwrap().to_string()
}

pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request as a browser sends it; `form` is sent form-urlencoded.
pub fn request(
    method: &str,
    url: &str,
    form: Option<&[(&str, &str)]>,
    headers: &[(&str, &str)],
    raw: Option<Vec<u8>>,
) -> Page {
    request_from(None, method, url, form, headers, raw)
}

/// [`request`] from this local address (another loopback address is
/// another client).
pub fn request_from(
    from: Option<std::net::IpAddr>,
    method: &str,
    url: &str,
    form: Option<&[(&str, &str)]>,
    headers: &[(&str, &str)],
    raw: Option<Vec<u8>>,
) -> Page {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .local_address(from)
            .build()
            .unwrap();
        let mut req = client.request(method.parse().unwrap(), url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(f) = form {
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(f.iter())
                .finish();
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        if let Some(b) = raw {
            req = req.body(b);
        }
        let r = req.send().await.expect("request");
        Page {
            status: r.status().as_u16(),
            headers: r
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: r.text().await.unwrap_or_default(),
        }
    })
}

/// A store of `backend` with the roster applied (accounts invited).
pub fn invited(r: &Roster, backend: Backend) -> String {
    let db = super::serve::store_url(backend);
    ok_in(r.path(), &["apply", "--yes", "--store", &db, "r.yaml"]);
    db
}

/// Everything a page for a person must carry.
fn assert_safe(p: &Page) {
    assert!(
        p.header("content-type")
            .is_some_and(|v| v.starts_with("text/html")),
        "{:?}",
        p.headers
    );
    assert_eq!(p.header("cache-control"), Some("no-store"));
    assert_eq!(p.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(p.header("x-frame-options"), Some("DENY"));
    let csp = p.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!p.body.contains("<script"), "{}", p.body);
    assert!(p.body.contains("<html lang=\"en\">"), "{}", p.body);
}

fn post(base: &str, fields: &[(&str, &str)]) -> Page {
    request("POST", &format!("{base}/activate"), Some(fields), &[], None)
}

fn account_row(sql: &mut Sql, email: &str) -> Vec<Option<String>> {
    sql.row(&format!(
        "SELECT activated_at, credential, activation_digest, token_issued_at, password_hash, \
         (SELECT COUNT(*) FROM outbox o WHERE o.account_id = a.id AND o.sent_at IS NULL) \
         FROM accounts a WHERE email_key = '{email}'"
    ))
}

/// The whole story: the form, its errors, success, the store afterwards,
/// the link dead after, and a log that holds neither token nor password.
fn a_mailed_link_sets_a_password_once(backend: Backend) {
    let r = roster().file("r.yaml", ROSTER);
    let db = invited(&r, backend);
    let mut sql = Sql::open(r.path(), &db);
    let token = set_token(&mut sql, "mandy@example.com", &ago(60));
    let user = sql.row("SELECT user_name FROM accounts WHERE email_key = 'mandy@example.com'")[0]
        .clone()
        .unwrap();
    let server = start(r.path(), &db, &[]);
    let link = format!("{}/activate?token={token}", server.base);

    let page = request("GET", &link, None, &[], None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_safe(&page);
    for shown in [
        "Hello Mandy.",
        &user,
        "autocomplete=\"new-password\"",
        "<label for=\"password\">",
        "<label for=\"confirm\">",
        "at least 12 characters",
        &format!("value=\"{token}\""),
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    // No personal data beyond the names.
    for hidden in ["1972", "217-852", "62568", "mandy@example.com"] {
        assert!(!page.body.contains(hidden), "{hidden}: {}", page.body);
    }

    // The two fields differ: the form again, the token kept, no password.
    let p = post(
        &server.base,
        &[
            ("token", &token),
            ("password", GOOD),
            ("confirm", "correct horse 7 batterY"),
        ],
    );
    assert_eq!(p.status, 422, "{}", p.body);
    assert_safe(&p);
    assert!(p.body.contains("The two passwords differ"), "{}", p.body);
    assert!(p.body.contains(&format!("value=\"{token}\"")), "{}", p.body);
    assert!(!p.body.contains(GOOD), "{}", p.body);
    // Too short, one kind of character, the user name in it.
    for (weak, says) in [
        ("Short7x", "at least 12"),
        ("abcdefghijklmnopq", "one kind of character"),
        (&format!("{user}-2026-{user}") as &str, "user name"),
    ] {
        let p = post(
            &server.base,
            &[("token", &token), ("password", weak), ("confirm", weak)],
        );
        assert_eq!(p.status, 422, "{weak}: {}", p.body);
        assert!(p.body.contains(says), "{weak}: {}", p.body);
    }
    let before = account_row(&mut sql, "mandy@example.com");
    assert_eq!(before[0], None, "not activated by a refused form");
    assert_eq!(before[1].as_deref(), Some("invited"));

    let p = post(
        &server.base,
        &[("token", &token), ("password", GOOD), ("confirm", GOOD)],
    );
    assert_eq!(p.status, 200, "{}", p.body);
    assert_safe(&p);
    assert!(p.body.contains("Your password is set"), "{}", p.body);

    let after = account_row(&mut sql, "mandy@example.com");
    let activated = after[0].clone().expect("activated_at set");
    assert!(activated.parse::<jiff::Timestamp>().is_ok(), "{activated}");
    assert_eq!(after[1].as_deref(), Some("password_set"));
    assert_eq!((after[2].as_deref(), after[3].as_deref()), (None, None));
    assert!(verify(GOOD, after[4].as_deref().unwrap()));
    assert_eq!(
        after[5].as_deref(),
        Some("0"),
        "the unsent invitation is gone"
    );
    let audit = sql
        .row("SELECT op, subject, actor, COALESCE(after, '') FROM audit ORDER BY seq DESC LIMIT 1");
    assert_eq!(audit[0].as_deref(), Some("activate_account"));
    assert_eq!(audit[1].as_deref(), Some(user.as_str()));
    assert_eq!(audit[2].as_deref(), Some("activation-page"));

    // The link works once.
    let again = request("GET", &link, None, &[], None);
    assert_eq!(again.status, 410, "{}", again.body);
    assert!(
        again.body.contains("ask your administrator"),
        "{}",
        again.body
    );
    let p = post(
        &server.base,
        &[
            ("token", &token),
            ("password", "another Pass 99"),
            ("confirm", "another Pass 99"),
        ],
    );
    assert_eq!(p.status, 410, "{}", p.body);
    assert!(verify(
        GOOD,
        account_row(&mut sql, "mandy@example.com")[4]
            .as_deref()
            .unwrap()
    ));

    // `roster accounts --status activated` lists the account and when.
    let listed = ok_in(
        r.path(),
        &[
            "accounts",
            "--store",
            &db,
            "--status",
            "activated",
            "--format",
            "json",
        ],
    );
    assert!(listed.stdout.contains(&activated), "{}", listed.stdout);

    let log = server.log_with("/activate");
    for secret in [token.as_str(), GOOD, "batterY", "Short7x"] {
        assert!(!log.contains(secret), "the log shows `{secret}`:\n{log}");
    }
}

/// Whether `password` matches the Argon2id PHC string `phc`.
pub fn verify(password: &str, phc: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Expired, used, unknown and deactivated: one page, nothing changed.
fn dead_links_get_one_page(backend: Backend) {
    let r = roster().file("r.yaml", ROSTER);
    let db = invited(&r, backend);
    let mut sql = Sql::open(r.path(), &db);
    let expired = set_token(&mut sql, "mandy@example.com", &ago(15 * 86_400));
    let bo = set_token(&mut sql, "bo@example.com", &ago(60));
    sql.batch("UPDATE accounts SET active = FALSE WHERE email_key = 'bo@example.com'");
    let server = start(r.path(), &db, &[]);
    let unknown = "ab".repeat(32);
    let pages: Vec<Page> = [
        expired.as_str(),
        bo.as_str(),
        unknown.as_str(),
        "not-a-token",
    ]
    .iter()
    .map(|t| {
        request(
            "GET",
            &format!("{}/activate?token={t}", server.base),
            None,
            &[],
            None,
        )
    })
    .collect();
    for p in &pages {
        assert_eq!(p.status, 410, "{}", p.body);
        assert_safe(p);
        assert_eq!(p.body, pages[0].body, "one page for every dead link");
    }
    assert!(
        pages[0]
            .body
            .contains("expired, has been used already, or is not valid")
    );
    assert!(
        pages[0]
            .body
            .contains("ask your administrator for a new invitation or a password reset")
    );
    let missing = request("GET", &format!("{}/activate", server.base), None, &[], None);
    assert_eq!((missing.status, &missing.body), (410, &pages[0].body));
    for t in [&expired, &bo] {
        let p = post(
            &server.base,
            &[("token", t), ("password", GOOD), ("confirm", GOOD)],
        );
        assert_eq!(p.status, 410, "{}", p.body);
    }
    for email in ["mandy@example.com", "bo@example.com"] {
        let row = account_row(&mut sql, email);
        assert_eq!(
            (row[0].as_deref(), row[1].as_deref()),
            (None, Some("invited")),
            "{email}"
        );
    }
    drop(server);

    // The lifetime is the server's: a token of two hours works with the
    // default 14 days, not with --invite-ttl 1h.
    let two_hours = set_token(&mut sql, "mandy@example.com", &ago(7_200));
    let link = |s: &Server| format!("{}/activate?token={two_hours}", s.base);
    let short = start(r.path(), &db, &["--invite-ttl", "1h"]);
    assert_eq!(request("GET", &link(&short), None, &[], None).status, 410);
    drop(short);
    let long = start(r.path(), &db, &[]);
    assert_eq!(request("GET", &link(&long), None, &[], None).status, 200);
    // A token issued from a reminder counts from then (no token_issued_at).
    sql.batch(&format!(
        "UPDATE accounts SET token_issued_at = NULL, reminded_at = '{}', invited_at = '{}' \
         WHERE email_key = 'mandy@example.com'",
        ago(3_600),
        ago(30 * 86_400)
    ));
    assert_eq!(request("GET", &link(&long), None, &[], None).status, 200);
}

/// Forms from other sites, oversized or of another type are refused, and
/// change nothing.
fn hostile_posts_are_refused(backend: Backend) {
    let r = roster().file("r.yaml", ROSTER);
    let db = invited(&r, backend);
    let mut sql = Sql::open(r.path(), &db);
    let token = set_token(&mut sql, "mandy@example.com", &ago(60));
    let server = start(r.path(), &db, &[]);
    let url = format!("{}/activate", server.base);
    let fields: &[(&str, &str)] = &[("token", &token), ("password", GOOD), ("confirm", GOOD)];
    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site"), ("origin", "null")][..],
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "same-origin"),
        ][..],
    ] {
        let p = request("POST", &url, Some(fields), headers, None);
        assert_eq!(p.status, 403, "{headers:?}: {}", p.body);
        assert_safe(&p);
    }
    let host = server.base.trim_start_matches("http://").to_string();
    let same = format!("http://{host}");
    // Too large: past the page's limit, and past the server's.
    let padded = format!(
        "token={token}&password=x&confirm=x&pad={}",
        "a".repeat(20 * 1024)
    );
    let p = request(
        "POST",
        &url,
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(padded.into_bytes()),
    );
    assert_eq!(p.status, 413, "{}", p.body);
    let p = request(
        "POST",
        &url,
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(vec![b'a'; 3 << 20]),
    );
    assert_eq!(p.status, 413);
    let json = format!(r#"{{"token":"{token}","password":"{GOOD}","confirm":"{GOOD}"}}"#);
    let p = request(
        "POST",
        &url,
        None,
        &[("content-type", "application/json")],
        Some(json.into_bytes()),
    );
    assert_eq!(p.status, 415, "{}", p.body);
    let row = account_row(&mut sql, "mandy@example.com");
    assert_eq!(
        row[1].as_deref(),
        Some("invited"),
        "nothing refused changed the account"
    );
    // The same site may post.
    let p = request(
        "POST",
        &url,
        Some(fields),
        &[("origin", &same), ("sec-fetch-site", "same-origin")],
        None,
    );
    assert_eq!(p.status, 200, "{}", p.body);
    let log = server.log();
    assert!(!log.contains(&token), "{log}");
}

/// A password reset through the same page: the first activation time
/// stays, the audit row says it was a reset, and the old password is gone.
fn a_reset_keeps_the_first_activation(backend: Backend) {
    let r = roster().file("r.yaml", ROSTER);
    let db = invited(&r, backend);
    let mut sql = Sql::open(r.path(), &db);
    let first = "2026-01-05T09:00:00Z";
    sql.batch(&format!(
        "UPDATE accounts SET credential = 'password_set', activated_at = '{first}', \
         password_hash = 'old', reset_requested_at = '{}' WHERE email_key = 'mandy@example.com'",
        ago(120)
    ));
    let token = set_token(&mut sql, "mandy@example.com", &ago(60));
    let server = start(r.path(), &db, &[]);
    let page = request(
        "GET",
        &format!("{}/activate?token={token}", server.base),
        None,
        &[],
        None,
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let p = post(
        &server.base,
        &[("token", &token), ("password", GOOD), ("confirm", GOOD)],
    );
    assert_eq!(p.status, 200, "{}", p.body);
    let row = account_row(&mut sql, "mandy@example.com");
    assert_eq!(row[0].as_deref(), Some(first));
    assert!(verify(GOOD, row[4].as_deref().unwrap()));
    let reset =
        sql.row("SELECT reset_requested_at FROM accounts WHERE email_key = 'mandy@example.com'");
    assert_eq!(reset[0], None);
    let audit = sql.row("SELECT op FROM audit ORDER BY seq DESC LIMIT 1");
    assert_eq!(audit[0].as_deref(), Some("reset_password"));
}

/// A page for an error on the server's side: it says what to do, and
/// holds no token, password or SQL.
fn assert_says_and_hides(p: &Page, says: &[&str], token: &str) {
    assert_safe(p);
    for s in says {
        assert!(p.body.contains(s), "{s}: {}", p.body);
    }
    for hidden in [
        token,
        GOOD,
        "no_activation",
        "UPDATE",
        "SELECT",
        "accounts",
        "statement",
        "sqlite",
        "postgres",
    ] {
        assert!(!p.body.contains(hidden), "{hidden}: {}", p.body);
    }
}

/// The store refuses the write (a trigger stands in for a failing disk or
/// database): a 500 page that says to try again later, the account
/// untouched, and the same link works once the store does.
fn a_store_failure_is_a_500_page_and_changes_nothing(backend: Backend) {
    let r = roster().file("r.yaml", ROSTER);
    let db = invited(&r, backend);
    let mut sql = Sql::open(r.path(), &db);
    let token = set_token(&mut sql, "mandy@example.com", &ago(60));
    let before = account_row(&mut sql, "mandy@example.com");
    sql.batch(match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER no_activation BEFORE UPDATE ON accounts \
             BEGIN SELECT RAISE(ABORT, 'no_activation: UPDATE accounts refused'); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION no_activation() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'no_activation: UPDATE accounts refused'; END $$; \
             CREATE TRIGGER no_activation BEFORE UPDATE ON accounts \
             FOR EACH ROW EXECUTE FUNCTION no_activation();"
        }
    });
    let server = start(r.path(), &db, &[]);
    let form = [
        ("token", token.as_str()),
        ("password", GOOD),
        ("confirm", GOOD),
    ];
    let p = post(&server.base, &form);
    assert_eq!(p.status, 500, "{}", p.body);
    assert_says_and_hides(
        &p,
        &[
            "Your password was not set",
            "Try again in a few minutes",
            "tell your administrator",
        ],
        &token,
    );
    assert_eq!(account_row(&mut sql, "mandy@example.com"), before);
    let log = server.log_with("activation: the write failed");
    assert!(!log.contains(&token) && !log.contains(GOOD), "{log}");
    // The store works again: the same link sets the password.
    sql.batch(match backend {
        Backend::Sqlite => "DROP TRIGGER no_activation",
        Backend::Postgres => "DROP TRIGGER no_activation ON accounts",
    });
    let p = post(&server.base, &form);
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(account_row(&mut sql, "mandy@example.com")[0].is_some());
}

on_every_store!(
    a_store_failure_is_a_500_page_and_changes_nothing,
    a_reset_keeps_the_first_activation,
    a_mailed_link_sets_a_password_once,
    dead_links_get_one_page,
    hostile_posts_are_refused,
    a_person_activates_in_a_browser,
);

#[test]
fn the_page_can_be_turned_off() {
    let r = roster().file("r.yaml", ROSTER);
    let db = invited(&r, Backend::Sqlite);
    let mut sql = Sql::open(r.path(), &db);
    let token = set_token(&mut sql, "mandy@example.com", &ago(60));
    let server = start(r.path(), &db, &["--activation-page", "off"]);
    let p = request(
        "GET",
        &format!("{}/activate?token={token}", server.base),
        None,
        &[],
        None,
    );
    assert_eq!(p.status, 404, "{}", p.body);
    let p = post(
        &server.base,
        &[("token", &token), ("password", GOOD), ("confirm", GOOD)],
    );
    assert_eq!(p.status, 404, "{}", p.body);
    let out = super::serve::run_in(r.path(), &["serve", "--store", &db, "--invite-ttl", "2w"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("is not a lifetime"), "{}", out.stderr);
}

/// A client trying tokens gets 429 once its minute's budget of refused
/// tokens is spent, even for a good link; another client is not held up.
#[test]
fn guessing_tokens_is_cut_short() {
    let r = roster().file("r.yaml", ROSTER);
    let db = invited(&r, Backend::Sqlite);
    let mut sql = Sql::open(r.path(), &db);
    let token = set_token(&mut sql, "mandy@example.com", &ago(60));
    let server = start(r.path(), &db, &[]);
    let mut statuses = Vec::new();
    for n in 0..70u32 {
        let guess = format!("{n:064x}");
        let p = request(
            "GET",
            &format!("{}/activate?token={guess}", server.base),
            None,
            &[],
            None,
        );
        statuses.push(p.status);
        if p.status == 429 {
            assert_eq!(p.header("retry-after"), Some("60"));
            assert_safe(&p);
        }
    }
    assert!(statuses[..60].iter().all(|s| *s == 410), "{statuses:?}");
    assert!(statuses[60..].iter().all(|s| *s == 429), "{statuses:?}");
    let link = format!("{}/activate?token={token}", server.base);
    assert_eq!(request("GET", &link, None, &[], None).status, 429);
    let other = Some(std::net::IpAddr::from([127, 0, 0, 2]));
    let p = request_from(other, "GET", &link, None, &[], None);
    assert_eq!(p.status, 200, "{}", p.body);
}

/// The page in a real browser, from the mailed link to an account that
/// signs in: chromium at a phone's width types the password twice and
/// submits; screenshots of the form and of the answer are kept in
/// `target/test-artifacts/activation-*.png`.
fn a_person_activates_in_a_browser(backend: Backend) {
    if super::browser::skipped() {
        return;
    }
    let r = roster().file("r.yaml", ROSTER);
    let db = invited(&r, backend);
    let mut sql = Sql::open(r.path(), &db);
    let token = set_token(&mut sql, "mandy@example.com", &ago(60));
    let server = start(r.path(), &db, &[]);
    // The link as `roster invitations send --link '…/activate?token={token}'` makes it.
    let link = format!("{}/activate?token={token}", server.base);
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };

    let browser = super::browser::WebDriver::start(320, 720);
    browser.open(&link);
    browser.wait_for_title("Set your password");
    // Nothing sticks out at 320 px: no sideways scrolling.
    let wide = browser.eval("return document.documentElement.scrollWidth");
    let view = browser.eval("return window.innerWidth");
    assert_eq!(view, serde_json::json!(320));
    assert!(
        wide.as_u64().unwrap() <= 320,
        "{wide} px wide in a {view} px window"
    );
    // Labels name the fields for screen readers.
    let labelled = browser.eval(
        "return ['password','confirm'].every(id => document.getElementById(id).labels.length === 1)",
    );
    assert_eq!(labelled, serde_json::json!(true));
    // A mismatch first: the page says so and keeps the person on the form.
    browser.type_into("#password", GOOD);
    browser.type_into("#confirm", "correct horse 7 batteries");
    browser.click("button[type=submit]");
    browser.wait_for_text("The two passwords differ");
    assert_eq!(browser.title(), "Set your password");
    browser.screenshot(&format!("activation-{name}-errors"));

    browser.type_into("#password", GOOD);
    browser.type_into("#confirm", GOOD);
    browser.screenshot(&format!("activation-{name}-form"));
    browser.click("button[type=submit]");
    browser.wait_for_title("Your password is set");
    let done = browser.source();
    let png = browser.screenshot(&format!("activation-{name}-done"));
    assert!(png.is_file());
    let user = sql.row("SELECT user_name FROM accounts WHERE email_key = 'mandy@example.com'")[0]
        .clone()
        .unwrap();
    assert!(done.contains(&user), "{done}");

    let row = account_row(&mut sql, "mandy@example.com");
    assert!(row[0].is_some(), "activated_at set");
    assert_eq!(row[1].as_deref(), Some("password_set"));
    assert_eq!(row[2], None, "the digest is cleared");
    // The account signs in with the password typed, and no other.
    let hash = row[4].clone().unwrap();
    assert!(verify(GOOD, &hash));
    assert!(!verify("correct horse 7 batteries", &hash));
    // Back on the link: it is dead.
    browser.open(&link);
    browser.wait_for_title("This link no longer works");
    let log = server.log();
    assert!(!log.contains(&token) && !log.contains(GOOD), "{log}");
}

/// Every store connection of the server in use: the page is a 503 that
/// says to wait and try again (Retry-After), not a hang; a look-up the
/// database cancels (statement timeout) is a 500. PostgreSQL: a lock held
/// on the accounts table keeps the server's one connection waiting.
#[test]
fn no_free_store_connection_is_a_503_page() {
    if super::pg::skipped() {
        return;
    }
    let r = roster().file("r.yaml", ROSTER);
    let db = invited(&r, Backend::Postgres);
    let mut sql = Sql::open(r.path(), &db);
    let token = set_token(&mut sql, "mandy@example.com", &ago(60));
    let link = |base: &str| format!("{base}/activate?token={token}");
    let mut holder = ::postgres::Client::connect(&db, ::postgres::NoTls).unwrap();

    let server = start(
        r.path(),
        &db,
        &["--store-connections", "1", "--statement-timeout", "60"],
    );
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    // The first look-up takes the one connection and waits on the lock.
    let first = {
        let url = link(&server.base);
        std::thread::spawn(move || request("GET", &url, None, &[], None))
    };
    std::thread::sleep(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    let p = request("GET", &link(&server.base), None, &[], None);
    let took = started.elapsed();
    assert_eq!(p.status, 503, "{}", p.body);
    assert!(took < std::time::Duration::from_secs(15), "after {took:?}");
    assert_eq!(p.header("retry-after"), Some("5"));
    assert_says_and_hides(
        &p,
        &["The server is busy", "Wait a moment, then try again"],
        &token,
    );
    tx.rollback().unwrap();
    let p = first.join().unwrap();
    assert_eq!(p.status, 200, "the waiting look-up is answered: {}", p.body);
    drop(server);

    // The database cancels a look-up that waits too long: a 500 page.
    let server = start(r.path(), &db, &["--statement-timeout", "1"]);
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let p = request("GET", &link(&server.base), None, &[], None);
    tx.rollback().unwrap();
    assert_eq!(p.status, 500, "{}", p.body);
    assert_says_and_hides(
        &p,
        &["Try again in a few minutes", "tell your administrator"],
        &token,
    );
    let log = server.log_with("activation: the store failed");
    assert!(!log.contains(&token), "{log}");
    assert!(!log.contains(super::pg::PASSWORD), "{log}");
    // And the next look-up works.
    let p = request("GET", &link(&server.base), None, &[], None);
    assert_eq!(p.status, 200, "{}", p.body);
}
