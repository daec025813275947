//! `roster serve` and `roster token`: the real server on 127.0.0.1, spoken
//! to over HTTP, over a SQLite file and over a PostgreSQL database.

use super::store::Backend;
use super::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

const EXT: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:User";
const EXT_GROUP: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A running `roster serve`, stopped when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .current_dir(dir)
        .env_remove("ROSTER_STORE")
        .env("NO_COLOR", "1")
        .env("ROSTER_ACTOR", "test-admin")
        .stdin(Stdio::null())
        .output()
        .expect("run roster");
    let out = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !out.stdout.contains(super::pg::PASSWORD) && !out.stderr.contains(super::pg::PASSWORD),
        "{args:?} shows the store's password\n{}\n{}",
        out.stdout,
        out.stderr
    );
    out
}

pub fn ok_in(dir: &Path, args: &[&str]) -> Output {
    let out = run_in(dir, args);
    assert_eq!(out.code, 0, "{args:?}\n{}\n{}", out.stdout, out.stderr);
    out
}

/// A new store of `backend` for a test: `sqlite:store.db` in the test's
/// directory, or a fresh PostgreSQL database (the URL carries its password).
pub fn store_url(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => "sqlite:store.db".to_string(),
        Backend::Postgres => super::pg::database().0,
    }
}

/// The roster file `file` of `r` applied to a new store of `backend`, and
/// an admin token `ci` for it: (store URL, token).
pub fn seed(r: &Roster, backend: Backend, file: &str) -> (String, String) {
    let db = store_url(backend);
    ok_in(r.path(), &["apply", "--yes", "--store", &db, file]);
    let admin = ok_in(
        r.path(),
        &["token", "create", "--name", "ci", "--store", &db],
    )
    .stdout
    .trim()
    .to_string();
    (db, admin)
}

/// Start `roster serve` on a free port over `store` in `dir`.
pub fn start(dir: &Path, store: &str) -> Server {
    start_with(dir, store, &[])
}

/// [`start`], with more arguments for `roster serve`.
pub fn start_with(dir: &Path, store: &str, args: &[&str]) -> Server {
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
    assert!(
        !first.contains(super::pg::PASSWORD),
        "roster serve shows the store's password: {first}"
    );
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in: {first}"))
        .to_string();
    Server { child, base }
}

pub struct Resp {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Value,
}

/// One HTTP request; `headers` are extra (name, value) pairs.
pub fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Resp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = r.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {text}"))
        };
        Resp { status, etag, body }
    })
}

/// A store seeded with the shipped live example, an admin token and a
/// running server.
struct Fixture {
    r: Roster,
    backend: Backend,
    /// The store URL, with the password on PostgreSQL.
    db: String,
    admin: String,
    server: Server,
}

impl Fixture {
    fn new(backend: Backend) -> Self {
        let text = std::fs::read_to_string(repo("examples/worknet-live/roster.yaml")).unwrap();
        let r = roster().file("live.yaml", text);
        let (db, admin) = seed(&r, backend, "live.yaml");
        let server = start(r.path(), &db);
        Fixture {
            r,
            backend,
            db,
            admin,
            server,
        }
    }

    fn db(&self) -> &str {
        &self.db
    }

    /// Every row of the tokens table as text, and the digest kept for `name`.
    fn stored_tokens(&self, name: &str) -> (Vec<String>, String) {
        let rows = "SELECT name || ' ' || digest || ' ' || coalesce(scope, '') || ' ' || created_at FROM tokens";
        let digest = "SELECT digest FROM tokens WHERE name = $1";
        match self.backend {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(self.r.path().join("store.db")).unwrap();
                let mut q = c.prepare(rows).unwrap();
                let all = q
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let d = c
                    .query_row(&digest.replace('$', "?"), [name], |r| r.get(0))
                    .unwrap();
                (all, d)
            }
            Backend::Postgres => {
                let mut c = ::postgres::Client::connect(&self.db, ::postgres::NoTls).unwrap();
                let all = c
                    .query(rows, &[])
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let d = c.query_one(digest, &[&name]).unwrap().get(0);
                (all, d)
            }
        }
    }

    /// Run SQL on the store underneath, as someone with the file or the
    /// database would.
    fn sql(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(self.r.path().join("store.db"))
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Backend::Postgres => ::postgres::Client::connect(&self.db, ::postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }

    /// A new token scoped to `groups`.
    fn scoped(&self, name: &str, groups: &[&str]) -> String {
        let mut args = vec!["token", "create", "--name", name, "--store", self.db()];
        let scopes: Vec<String> = groups.iter().map(|g| format!("group:{g}")).collect();
        for g in &scopes {
            args.extend(["--scope", g.as_str()]);
        }
        ok_in(self.r.path(), &args).stdout.trim().to_string()
    }

    /// The id of the one resource a filter finds, with the admin token.
    fn id_of(&self, kind: &str, filter: &str) -> String {
        let r = self.get(&format!("/{kind}?filter={}", encode(filter)));
        assert_eq!(r.body["totalResults"], 1, "{filter}: {}", r.body);
        r.body["Resources"][0]["id"].as_str().unwrap().to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    fn get(&self, path: &str) -> Resp {
        http("GET", &self.url(path), Some(&self.admin), None, &[])
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> Resp {
        http(method, &self.url(path), Some(&self.admin), Some(body), &[])
    }

    /// userNames of a filtered listing.
    fn names(&self, filter: &str) -> Vec<String> {
        let q = format!(
            "/Users?count=1000&sortBy=userName&filter={}",
            encode(filter)
        );
        let r = self.get(&q);
        assert_eq!(r.status, 200, "{filter}: {}", r.body);
        r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_string())
            .collect()
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn user(name: &str, first: &str, last: &str, email: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
        "userName": name,
        "name": {"givenName": first, "familyName": last},
        "emails": [{"value": email, "type": "work", "primary": true}],
        EXT: {"birthDate": "1990-05-01", "postalCode": "62701"},
    })
}

fn tokens_are_shown_once_kept_as_digests_and_required(b: Backend) {
    let f = Fixture::new(b);
    let list = ok_in(f.r.path(), &["token", "list", "--store", f.db()]).stdout;
    assert!(list.starts_with("ci\tadmin\t"), "{list}");
    assert!(
        !list.contains(&f.admin),
        "token list must not show the token"
    );
    let (rows, digest) = f.stored_tokens("ci");
    assert_eq!(digest, roster::secrets::sha256(f.admin.as_bytes()));
    assert!(
        rows.len() == 1 && !rows[0].contains(&f.admin),
        "the token itself is stored: {rows:?}"
    );
    if f.backend == Backend::Sqlite {
        let file = std::fs::read(f.r.path().join("store.db")).unwrap();
        assert!(
            !String::from_utf8_lossy(&file).contains(&f.admin),
            "the token itself is in the store's file"
        );
    }

    let none = http("GET", &f.url("/Users"), None, None, &[]);
    assert_eq!(none.status, 401);
    assert_eq!(
        none.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(none.body["status"], "401");
    assert_eq!(
        http("GET", &f.url("/Users"), Some("rst_nope"), None, &[]).status,
        401
    );

    let all = f.get("/Users");
    assert_eq!(all.status, 200);
    assert_eq!(all.body["totalResults"], 11);

    // Revoked tokens stop working at once.
    ok_in(f.r.path(), &["token", "revoke", "ci", "--store", f.db()]);
    assert_eq!(f.get("/Users").status, 401);
    let again = run_in(f.r.path(), &["token", "revoke", "ci", "--store", f.db()]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("no live token named `ci`"),
        "{}",
        again.stderr
    );
    let dup = run_in(
        f.r.path(),
        &["token", "create", "--name", "ci", "--store", f.db()],
    );
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);
    let bad = run_in(
        f.r.path(),
        &[
            "token",
            "create",
            "--name",
            "x",
            "--scope",
            "Nope",
            "--store",
            f.db(),
        ],
    );
    assert!(
        bad.code == 1 && bad.stderr.contains("group:NAME"),
        "{}",
        bad.stderr
    );
    let missing = run_in(
        f.r.path(),
        &[
            "token",
            "create",
            "--name",
            "x",
            "--scope",
            "group:Nope",
            "--store",
            f.db(),
        ],
    );
    assert!(
        missing.code == 1 && missing.stderr.contains("`Nope` does not exist"),
        "{}",
        missing.stderr
    );
}

fn group_scoped_tokens_manage_only_their_groups_memberships(b: Backend) {
    let f = Fixture::new(b);
    let legacy = "Legacy Pilot Group";
    let scoped = ok_in(
        f.r.path(),
        &[
            "token",
            "create",
            "--name",
            "legacy-um",
            "--scope",
            &format!("group:{legacy}"),
            "--store",
            f.db(),
        ],
    )
    .stdout
    .trim()
    .to_string();
    let as_um = |m: &str, p: &str, b: Option<&Value>| http(m, &f.url(p), Some(&scoped), b, &[]);

    let groups = as_um("GET", "/Groups", None);
    assert_eq!(groups.body["totalResults"], 1);
    assert_eq!(groups.body["Resources"][0]["displayName"], legacy);
    let gid = groups.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let users = as_um("GET", "/Users", None);
    let names: Vec<&str> = users.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["JJones"], "only the group's members are visible");

    // Someone outside the group, found with the admin token.
    let other = f.get(&format!(
        "/Users?filter={}",
        encode("userName eq \"MMcCray\"")
    ));
    let other_id = other.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        as_um("GET", &format!("/Users/{other_id}"), None).status,
        404
    );

    // Someone outside its groups cannot be pulled in (and then read).
    let add = json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": other_id}]}]});
    let r = as_um("PATCH", &format!("/Groups/{gid}"), Some(&add));
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        f.get(&format!("/Groups/{gid}")).body["members"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let rename = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Mine now"}]});
    assert_eq!(
        as_um("PATCH", &format!("/Groups/{gid}"), Some(&rename)).status,
        403
    );
    assert_eq!(
        as_um("POST", "/Users", Some(&user("zed", "Z", "Ed", "z@x.org"))).status,
        403
    );
    assert_eq!(as_um("DELETE", &format!("/Groups/{gid}"), None).status, 403);
    let abc = f.get(&format!(
        "/Groups?filter={}",
        encode("displayName sw \"Apprenticeship\"")
    ));
    let abc_id = abc.body["Resources"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        as_um("PATCH", &format!("/Groups/{abc_id}"), Some(&add)).status,
        404
    );

    // What it may do is audited under the token's name.
    let jjones = groups.body["Resources"][0]["members"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let remove = json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": format!("members[value eq \"{jjones}\"]")}]});
    let r = as_um("PATCH", &format!("/Groups/{gid}"), Some(&remove));
    assert_eq!(r.status, 200, "{}", r.body);
    let log = ok_in(f.r.path(), &["log", "--store", f.db(), "--format", "json"]).stdout;
    let rows: Vec<Value> = serde_json::from_str(&log).unwrap();
    let last = rows.last().unwrap();
    assert_eq!(last["op"], "remove_membership");
    assert_eq!(last["actor"], "token:legacy-um");
    assert_eq!(last["subject"], format!("JJones in {legacy}"));
}

fn users_filter_sort_page_and_project(b: Backend) {
    let f = Fixture::new(b);
    let created = f.send(
        "POST",
        "/Users",
        &user("AOBrien", "Ann", "O\"Brien", "ann.obrien@example.org"),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.etag.is_some());
    let dup = f.send(
        "POST",
        "/Users",
        &user("aobrien", "A", "B", "other@example.org"),
    );
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["scimType"], "uniqueness");

    assert_eq!(f.names("userName eq \"aobrien\""), ["AOBrien"]);
    assert_eq!(f.names("name.familyName eq \"O\\\"Brien\""), ["AOBrien"]);
    assert_eq!(
        f.names(
            "emails[type eq \"work\" and value ew \"@example.org\"] and name.givenName sw \"a\""
        ),
        ["AOBrien"]
    );
    assert_eq!(
        f.names(&format!("{EXT}:postalCode eq \"62701\"")),
        ["AOBrien"]
    );
    // An injection attempt is a value, not filter syntax.
    assert!(
        f.names("userName eq \"x\\\" or userName pr or \\\"\"")
            .is_empty()
    );
    let inactive = f.names("active eq false");
    assert!(!inactive.is_empty() && !inactive.contains(&"AOBrien".to_string()));
    let all = f.names("userName pr");
    let not_a = f.names("not (userName sw \"a\")");
    assert_eq!(all.len(), 12);
    assert!(not_a.iter().all(|n| !n.to_lowercase().starts_with('a')));
    assert_eq!(
        not_a.len()
            + all
                .iter()
                .filter(|n| n.to_lowercase().starts_with('a'))
                .count(),
        12
    );

    let bad = f.get(&format!("/Users?filter={}", encode("userName eq")));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["scimType"], "invalidFilter");
    let unknown = f.get(&format!("/Users?filter={}", encode("shoeSize gt 3")));
    assert_eq!(unknown.body["scimType"], "invalidFilter");
    // The store answers for what it translates: attributes it does not
    // know, values of the wrong type, on either resource.
    for (path, filter, names) in [
        (
            "/Users",
            "active eq \"yes\"",
            "'active' is a boolean attribute",
        ),
        (
            "/Users",
            "groups.type eq \"x\"",
            "unknown attribute 'groups.type'",
        ),
        (
            "/Groups",
            "members[nickName pr]",
            "unknown attribute 'members.nickName'",
        ),
        (
            "/Groups",
            &format!("{EXT_GROUP}:lwia co \"1\""),
            "is an integer attribute",
        ),
    ] {
        let r = f.get(&format!("{path}?filter={}", encode(filter)));
        assert_eq!(r.status, 400, "{filter}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidFilter", "{filter}");
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(names), "{filter}: {detail}");
    }
    for sort in ["shoeSize", "groups", "groups.display", "emails["] {
        let r = f.get(&format!("/Users?sortBy={}", encode(sort)));
        assert_eq!(r.status, 400, "{sort}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue", "{sort}");
    }

    // Sorting and paging.
    let desc = f.get("/Users?sortBy=userName&sortOrder=descending&count=3&startIndex=2");
    assert_eq!(desc.body["totalResults"], 12);
    assert_eq!(desc.body["itemsPerPage"], 3);
    assert_eq!(desc.body["startIndex"], 2);
    let mut sorted = all.clone();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.to_lowercase()));
    let page: Vec<&str> = desc.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(
        page,
        sorted[1..4].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(f.get("/Users?count=0").body["Resources"], json!([]));
    // A listed user's groups come in name order, byte by byte, as a user
    // read alone has them: joined here in the other order.
    let ann = created.body["id"].as_str().unwrap();
    let desks = ["Zulu \"Desk\" \\ ü", "Alpha Desk", "Mike Desk"];
    for name in desks {
        let g = f.send(
            "POST",
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": name, "members": [{"value": ann}]}),
        );
        assert_eq!(g.status, 201, "{}", g.body);
    }
    let listed = f.get("/Users?count=100");
    let mut several = 0;
    for u in listed.body["Resources"].as_array().unwrap() {
        let names: Vec<&str> = u["groups"]
            .as_array()
            .map(|g| g.iter().map(|g| g["display"].as_str().unwrap()).collect())
            .unwrap_or_default();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "{u}");
        several += usize::from(names.len() > 1);
        let alone = f.get(&format!("/Users/{}", u["id"].as_str().unwrap()));
        assert_eq!(alone.body["groups"], u["groups"], "{u}");
        assert_eq!(alone.body["roles"], u["roles"], "{u}");
        assert_eq!(alone.body["entitlements"], u["entitlements"], "{u}");
    }
    assert!(several > 0, "no user in two groups: {}", listed.body);
    // A larger page reads them another way, to the same answer.
    let large = f.get("/Users?count=1000");
    assert_eq!(large.body["Resources"], listed.body["Resources"]);
    let ann_listed = f.get(&format!(
        "/Users?filter={}",
        encode("userName eq \"AOBrien\"")
    ));
    let displays: Vec<&str> = ann_listed.body["Resources"][0]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    assert_eq!(displays, [desks[1], desks[2], desks[0]]);
    // The total is read with the page; a page past the end still has it,
    // and a filter that matches nothing has none.
    let past = f.get("/Users?sortBy=userName&count=3&startIndex=40");
    assert_eq!(past.status, 200, "{}", past.body);
    assert_eq!(past.body["totalResults"], 12, "{}", past.body);
    assert_eq!(past.body["Resources"], json!([]));
    let last = f.get("/Users?sortBy=userName&count=5&startIndex=11");
    assert_eq!(last.body["totalResults"], 12, "{}", last.body);
    assert_eq!(last.body["Resources"].as_array().map(Vec::len), Some(2));
    let none = f.get(&format!(
        "/Users?filter={}&count=5",
        encode("userName eq \"nobody-at-all\"")
    ));
    assert_eq!(none.body["totalResults"], 0, "{}", none.body);
    assert_eq!(none.body["Resources"], json!([]));
    let groups = f.get("/Groups?count=1&startIndex=1");
    let group_total = groups.body["totalResults"].as_u64().unwrap_or(0);
    assert!(group_total > 1, "{}", groups.body);
    assert_eq!(groups.body["Resources"].as_array().map(Vec::len), Some(1));
    let beyond = f.get(&format!("/Groups?count=1&startIndex={}", group_total + 5));
    assert_eq!(beyond.body["totalResults"], group_total, "{}", beyond.body);
    assert_eq!(beyond.body["Resources"], json!([]));

    // attributes / excludedAttributes.
    let id = created.body["id"].as_str().unwrap();
    let only = f.get(&format!("/Users/{id}?attributes=userName,name.familyName"));
    let keys: std::collections::BTreeSet<&str> = only
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["id", "name", "schemas", "userName"].into());
    assert_eq!(only.body["name"], json!({"familyName": "O\"Brien"}));
    let except = f.get(&format!(
        "/Users/{id}?excludedAttributes=emails,{EXT}:birthDate"
    ));
    assert!(except.body.get("emails").is_none());
    assert_eq!(except.body[EXT], json!({"postalCode": "62701"}));
}

fn etags_guard_changes_and_patch_put_delete_are_audited(b: Backend) {
    let f = Fixture::new(b);
    let created = f.send(
        "POST",
        "/Users",
        &user("TTest", "Tess", "Test", "tess@example.org"),
    );
    let id = created.body["id"].as_str().unwrap().to_string();
    let etag = created.etag.clone().unwrap();
    let path = format!("/Users/{id}");
    let cond = http(
        "GET",
        &f.url(&path),
        Some(&f.admin),
        None,
        &[("if-none-match", &etag)],
    );
    assert_eq!(cond.status, 304);

    let deactivate = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let r = http(
        "PATCH",
        &f.url(&path),
        Some(&f.admin),
        Some(&deactivate),
        &[("if-match", &etag)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert_ne!(r.etag.as_deref(), Some(etag.as_str()));
    // The old ETag is stale now.
    let stale = http(
        "PATCH",
        &f.url(&path),
        Some(&f.admin),
        Some(&deactivate),
        &[("if-match", &etag)],
    );
    assert_eq!(stale.status, 412);

    let mut put = user("TTest", "Tess", "Tested", "tess@example.org");
    put["active"] = json!(true);
    let r = f.send("PUT", &path, &put);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"]["familyName"], "Tested");
    assert_eq!(r.body["active"], true);

    assert_eq!(
        http("DELETE", &f.url(&path), Some(&f.admin), None, &[]).status,
        204
    );
    assert_eq!(f.get(&path).status, 404);

    let log = ok_in(f.r.path(), &["log", "--store", f.db(), "--format", "json"]).stdout;
    let rows: Vec<Value> = serde_json::from_str(&log).unwrap();
    let ops: Vec<&str> = rows
        .iter()
        .rev()
        .take(5)
        .map(|r| r["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "delete_account",
            "reactivate_account",
            "update_profile",
            "deactivate_account",
            "create_account"
        ]
    );
    assert!(rows.iter().rev().take(5).all(|r| r["actor"] == "token:ci"));
    assert!(
        !log.contains("1990-05-01"),
        "birth dates are masked in the log"
    );
    ok_in(f.r.path(), &["log", "--store", f.db(), "--verify"]);
}

fn groups_members_and_bulk_with_references(b: Backend) {
    let f = Fixture::new(b);
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user("BBulk", "Bea", "Bulk", "bea@example.org")},
            {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Bulk Agency",
                "members": [{"value": "bulkId:u1"}]}},
            {"method": "PATCH", "path": "/Groups/bulkId:g1", "data": {"schemas": [PATCH], "Operations": [
                {"op": "add", "path": "urn:roster:params:scim:schemas:extension:roster:2.0:Group:userManagers", "value": [{"value": "bulkId:u1"}]}]}},
            {"method": "POST", "path": "/Groups", "data": {"displayName": "Broken", "members": [{"value": "bulkId:nope"}]}},
        ]
    });
    let r = f.send("POST", "/Bulk", &bulk);
    assert_eq!(r.status, 200, "{}", r.body);
    let statuses: Vec<&str> = r.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "201", "200", "409"]);
    let user_loc = r.body["Operations"][0]["location"].as_str().unwrap();
    let uid = user_loc.rsplit('/').next().unwrap().to_string();
    let loc = r.body["Operations"][1]["location"].as_str().unwrap();
    let g = http("GET", loc, Some(&f.admin), None, &[]);
    assert_eq!(g.body["members"][0]["value"], uid.as_str());
    assert_eq!(g.body["members"][0]["$ref"], user_loc);
    assert_eq!(
        g.body["urn:roster:params:scim:schemas:extension:roster:2.0:Group"]["userManagers"][0]["value"],
        uid.as_str()
    );
    let gpath = format!("/Groups/{}", g.body["id"].as_str().unwrap());

    // The roster sees what was made through the service.
    let export = ok_in(f.r.path(), &["export", "--store", f.db()]).stdout;
    assert!(
        export.contains("Bulk Agency") && export.contains("user_manager: true"),
        "{export}"
    );

    let unknown = json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "999999"}]}]});
    let r = f.send("PATCH", &gpath, &unknown);
    assert_eq!(r.status, 400);
    assert!(r.body["detail"].as_str().unwrap().contains("999999"));
    let remove = json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]});
    let r = f.send("PATCH", &gpath, &remove);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["members"], json!([]));
    let none = json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "members[value eq \"123\"]"}]});
    assert_eq!(f.send("PATCH", &gpath, &none).body["scimType"], "noTarget");
    assert_eq!(
        f.send("PATCH", &gpath, &json!({"Operations": []})).body["scimType"],
        "invalidSyntax"
    );
}

/// A tool from the Python SCIM peers (PyPI): found on PATH, in
/// `$ROSTER_PY_BIN` or `target/ci-venv`, or installed into
/// `target/test-venv` (tests/cli/peers.rs); `None` when skipped.
fn python_tool(name: &str) -> Option<PathBuf> {
    super::peers::scim_tool(name)
}

/// The known departures, each a deliberate choice documented in the README.
const TESTER_KNOWN: &[&str] = &[
    // Adding to a multi-valued attribute appends (RFC 7644 §3.5.2.1); the
    // tester expects the patched value alone after an earlier add.
    "PATCH modify() returned unexpected value for 'urn:roster:params:scim:schemas:extension:roster:2.0:Group:userManagers'",
    "PATCH modify() returned unexpected value for 'roles'",
    // A group always has a type, so its extension never disappears.
    "PATCH modify() did not remove attribute 'urn:roster:params:scim:schemas:extension:roster:2.0:Group'",
    // The tester fills roster's extension with random text; writes are
    // checked as roster files are (a real date, a ZIP, 1-6 digits).
    "birthDate is not a date",
    "birthDate has a month",
    "birthDate is not a real calendar date",
    "birthDate has a year before",
    "postalCode must be 5 digits",
    "phoneExtension must be 1 to 6 digits",
    // It grants userManagers to random users, inactive or of any role; a
    // grant obeys the policy as a plan's does.
    "may manage a group's users",
    // Entitlements are `KIND:VALUE` of a catalog (SPEC §9), not random text.
    "is not KIND:VALUE",
    // A manager is a User of the store, not a random id.
    "enterprise:2.0:User:manager: no User has id",
];

#[test]
fn third_party_scim_testers_pass_against_serve() {
    let (Some(scim2), Some(sanity)) = (python_tool("scim2"), python_tool("scim-sanity")) else {
        return;
    };
    let f = Fixture::new(Backend::Sqlite);
    let out = Command::new(scim2)
        .args(["--url", &f.server.base, "test"])
        .env(
            "SCIM_CLI_HEADERS",
            format!("Authorization: Bearer {}", f.admin),
        )
        .output()
        .expect("run scim2 test");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let passed = text.lines().filter(|l| l.starts_with("SUCCESS")).count();
    let lines: Vec<&str> = text.lines().collect();
    let errors: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("ERROR"))
        .map(|(i, l)| format!("{l} {}", lines.get(i + 1).unwrap_or(&"").trim()))
        .collect();
    let unexpected: Vec<&String> = errors
        .iter()
        .filter(|e| !TESTER_KNOWN.iter().any(|k| e.contains(k)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "scim2-tester errors:\n{unexpected:#?}\n{text}"
    );
    // About 60 pass: the checks whose random users roster refuses (above)
    // fail, and how many depends on the random values drawn.
    assert!(
        passed >= 50,
        "scim2-tester: only {passed} checks passed\n{text}"
    );

    let out = Command::new(sanity)
        .args([
            "probe",
            &f.server.base,
            "--token",
            &f.admin,
            "--i-accept-side-effects",
        ])
        .output()
        .expect("run scim-sanity");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fails: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("[FAIL]") || l.contains("[ERROR]"))
        .collect();
    // roster keeps referential integrity: a member must be a user of the store.
    assert_eq!(fails, ["  [FAIL] PATCH /Groups/{id} add member"], "{text}");
    assert!(text.contains("27 passed"), "{text}");
}

/// Replicas: two servers over one store, both taking writes, alternately
/// and at the same time. The store's write lock keeps one audit chain and
/// one revision sequence.
fn two_servers_share_one_store(b: Backend) {
    let f = Fixture::new(b);
    let other = start(f.r.path(), f.db());
    let servers = [f.server.base.clone(), other.base.clone()];
    let post = |i: usize, name: &str| {
        let url = format!("{}/Users", servers[i % 2]);
        let body = user(name, "Rep", name, &format!("{name}@example.org"));
        let r = http("POST", &url, Some(&f.admin), Some(&body), &[]);
        assert_eq!(r.status, 201, "{name} through server {}: {}", i % 2, r.body);
        r.body["id"].as_str().unwrap().to_string()
    };

    // Alternately: each sees what the other wrote at once.
    for i in 0..4 {
        let name = format!("Rep{i}");
        let id = post(i, &name);
        let seen = http(
            "GET",
            &format!("{}/Users/{id}", servers[(i + 1) % 2]),
            Some(&f.admin),
            None,
            &[],
        );
        assert_eq!(seen.status, 200, "{}", seen.body);
        assert_eq!(seen.body["userName"], name.as_str());
    }
    // At the same time, through both.
    std::thread::scope(|s| {
        for t in 0..4 {
            let post = &post;
            s.spawn(move || {
                for k in 0..3 {
                    post(t, &format!("Conc{t}x{k}"));
                }
            });
        }
    });
    // Behind one host name the replicas give the same ETags: one's guards a
    // change through the other.
    let host = servers[0].split('/').nth(2).unwrap().to_string();
    let on = |i: usize, method: &str, path: &str, body: Option<&Value>, etag: Option<&str>| {
        let mut headers = vec![("host", host.as_str())];
        headers.extend(etag.map(|e| ("if-match", e)));
        http(
            method,
            &format!("{}{path}", servers[i]),
            Some(&f.admin),
            body,
            &headers,
        )
    };
    let first = on(0, "GET", "/Groups?count=1", None, None);
    let gpath = format!(
        "/Groups/{}",
        first.body["Resources"][0]["id"].as_str().unwrap()
    );
    let etag = on(0, "GET", &gpath, None, None).etag.unwrap();
    assert_eq!(
        on(1, "GET", &gpath, None, None).etag.as_deref(),
        Some(etag.as_str())
    );
    let add = json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "externalId", "value": "g-ext"}]});
    let r = on(1, "PATCH", &gpath, Some(&add), Some(&etag));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(on(0, "PATCH", &gpath, Some(&add), Some(&etag)).status, 412);

    // A name taken through one server is a conflict through the other.
    let dup = http(
        "POST",
        &format!("{}/Users", servers[1]),
        Some(&f.admin),
        Some(&user("rep0", "R", "P", "rep0@example.org")),
        &[],
    );
    assert_eq!(dup.status, 409, "{}", dup.body);

    let filter = encode("userName sw \"Rep\" or userName sw \"Conc\"");
    for base in &servers {
        let list = http(
            "GET",
            &format!("{base}/Users?count=100&filter={filter}"),
            Some(&f.admin),
            None,
            &[],
        );
        assert_eq!(list.body["totalResults"], 16, "{base}: {}", list.body);
    }

    let log = ok_in(f.r.path(), &["log", "--store", f.db(), "--format", "json"]).stdout;
    let rows: Vec<Value> = serde_json::from_str(&log).unwrap();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["seq"], i + 1, "{row}");
        assert_eq!(row["revision"], i + 1, "one revision per change: {row}");
    }
    let created = rows
        .iter()
        .filter(|r| r["op"] == "create_account" && r["actor"] == "token:ci")
        .count();
    assert_eq!(created, 16);
    assert_eq!(rows.last().unwrap()["op"], "set_group_scim_field");
    ok_in(f.r.path(), &["log", "--store", f.db(), "--verify"]);
    // The roster side (export) sees the writes of both.
    let export = ok_in(f.r.path(), &["export", "--store", f.db()]).stdout;
    assert!(
        export.contains("Conc3x2") && export.contains("Rep3"),
        "{export}"
    );
}

/// `roster` as a SCIM client of `roster serve`, with the admin token.
fn through_serve(f: &Fixture, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .current_dir(f.r.path())
        .env_remove("ROSTER_STORE")
        .env("NO_COLOR", "1")
        .env("ROSTER_SCIM_TOKEN", &f.admin)
        .stdin(Stdio::null())
        .output()
        .expect("run roster");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn plan_through_serve_is_the_plan_of_the_store_underneath(backend: Backend) {
    let f = Fixture::new(backend);
    let text = std::fs::read_to_string(repo("examples/worknet/roster.yaml")).unwrap();
    std::fs::write(f.r.path().join("roster.yaml"), text).unwrap();
    let scim = format!("scim+{}", f.server.base);
    let plan = |store: &str| -> Value {
        let out = through_serve(
            &f,
            &["plan", "--store", store, "roster.yaml", "--format", "json"],
        );
        assert_eq!(
            out.code, 1,
            "unresolved partners: exit 1
{}",
            out.stderr
        );
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr))
    };
    let direct = plan(f.db());
    let served = plan(&scim);
    for key in ["resolutions", "actions", "summary"] {
        assert_eq!(served[key], direct[key], "{key} differ");
    }
    assert!(!direct["actions"].as_array().unwrap().is_empty());

    // Settle the partners that need a person's word, then apply through
    // the service: the store underneath then has nothing left to do.
    let settled = roster_settled(&f);
    // The policy lets only files named roster.yaml declare these groups.
    std::fs::create_dir(f.r.path().join("settled")).unwrap();
    std::fs::write(f.r.path().join("settled/roster.yaml"), settled).unwrap();
    let applied = through_serve(
        &f,
        &["apply", "--yes", "--store", &scim, "settled/roster.yaml"],
    );
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    let again = through_serve(
        &f,
        &[
            "plan",
            "--store",
            f.db(),
            "settled/roster.yaml",
            "--format",
            "json",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    let log = ok_in(f.r.path(), &["log", "--store", f.db(), "--format", "json"]).stdout;
    let rows: Vec<Value> = serde_json::from_str(&log).unwrap();
    assert_eq!(rows.last().unwrap()["actor"], "token:ci");
    ok_in(f.r.path(), &["log", "--store", f.db(), "--verify"]);
}

/// A roster of SPEC §9: a role catalog with a default, entitlement catalogs
/// (values, and group coverage), case managers, an SSO account; `step` 1
/// changes grants and a case manager of accounts step 0 made (more than
/// the default `max_removals` lets go, so it allows them all).
pub fn spec9_roster(step: u8) -> String {
    let (noelle_roles, noelle_products, zoe_manager) = match step {
        0 => (
            "[caseworker, supervisor]",
            "[webcenter, hrcenter]",
            "brandon.mitchell@example.edu",
        ),
        _ => ("[caseworker]", "[job-board]", "noelle.holiday@example.edu"),
    };
    format!(
        r#"version: 1
policy:
  required_fields: []
  # Step 1 swaps grants wholesale; the removal guard is tested elsewhere.
  max_removals: 100%
  roles: [public-viewer, individual, caseworker, supervisor]
  default_roles: [public-viewer]
  entitlements:
    products: [webcenter, hrcenter, job-board]
    dashboards: [caseload, outcomes]
    coverage: groups
groups:
  - name: North Team
    type: organization
    members:
      - email: brandon.mitchell@example.edu
        user_manager: true
      - noelle.holiday@example.edu
      - zoe.quinn@example.edu
  - name: South Team
    type: organization
    members:
      - noelle.holiday@example.edu
partners:
  - email: brandon.mitchell@example.edu
    first_name: Brandon
    birth_date: 1970-01-02
    last_name: Mitchell
    roles: [public-viewer, supervisor]
    entitlements:
      dashboards: [caseload, outcomes]
  - email: noelle.holiday@example.edu
    first_name: Noelle
    birth_date: 1980-03-04
    last_name: Holiday
    roles: {noelle_roles}
    entitlements:
      products: {noelle_products}
      coverage: [North Team, South Team]
    case_manager: brandon.mitchell@example.edu
  - email: zoe.quinn@example.edu
    first_name: Zoe
    birth_date: 1999-09-09
    last_name: Quinn
    sign_in: sso
    case_manager: {zoe_manager}
"#
    )
}

/// The plan through `roster serve` is the plan of the store underneath for
/// a roster of SPEC §9 too (roles, entitlements, case managers, SSO), and
/// applying through the service leaves both with nothing to do.
fn spec9_plan_through_serve_is_the_plan_of_the_store_underneath(backend: Backend) {
    let f = Fixture::new(backend);
    std::fs::create_dir(f.r.path().join("s9")).unwrap();
    let file = f.r.path().join("s9/roster.yaml");
    let plan = |store: &str, code: i32| -> Value {
        let out = through_serve(
            &f,
            &[
                "plan",
                "--store",
                store,
                "s9/roster.yaml",
                "--format",
                "json",
                "--detailed-exitcode",
            ],
        );
        assert_eq!(out.code, code, "{store}\n{}\n{}", out.stdout, out.stderr);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr))
    };
    let ops = |plan: &Value| -> Vec<String> {
        plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["op"].as_str().unwrap().to_string())
            .collect()
    };
    for step in [0, 1] {
        std::fs::write(&file, spec9_roster(step)).unwrap();
        // `--roster` is read at start: a server for each step.
        let server = start_with(f.r.path(), f.db(), &["--roster", file.to_str().unwrap()]);
        let scim = format!("scim+{}", server.base);
        let direct = plan(f.db(), 2);
        let served = plan(&scim, 2);
        for key in ["resolutions", "actions", "summary"] {
            assert_eq!(served[key], direct[key], "step {step}: {key} differ");
        }
        let seen = ops(&direct);
        let want: &[&str] = if step == 0 {
            &["create_account", "grant_entitlement", "set_case_manager"]
        } else {
            &[
                "revoke_role",
                "grant_entitlement",
                "revoke_entitlement",
                "set_case_manager",
            ]
        };
        for op in want {
            assert!(
                seen.iter().any(|o| o == op),
                "step {step}: {op} in {seen:?}"
            );
        }
        let applied = through_serve(&f, &["apply", "--yes", "--store", &scim, "s9/roster.yaml"]);
        assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
        let after_direct = plan(f.db(), 0);
        let after_served = plan(&scim, 0);
        assert_eq!(after_direct["actions"], json!([]), "{after_direct}");
        assert_eq!(after_served["actions"], json!([]), "{after_served}");
    }
    // The SSO account was created active, with no password and no invitation.
    let zoe = f
        .get(&format!(
            "/Users/{}",
            f.id_of("Users", "emails.value eq \"zoe.quinn@example.edu\"")
        ))
        .body;
    assert_eq!(zoe["active"], true, "{zoe}");
    assert_eq!(zoe["roles"], json!([{"value": "public-viewer"}]), "{zoe}");
    assert_eq!(
        zoe[ENTERPRISE]["manager"]["displayName"], "NHoliday",
        "{zoe}"
    );
    let export = ok_in(f.r.path(), &["export", "--store", f.db()]).stdout;
    assert!(export.contains("zoe.quinn@example.edu"), "{export}");
    ok_in(f.r.path(), &["log", "--store", f.db(), "--verify"]);
}

/// With `--roster`, writes take roles and entitlements from that roster's
/// catalogs alone: a value outside a kind's list, a coverage naming no
/// group, and a role the store holds but the catalog lacks are each a 400
/// naming the attribute and listing what may be used; a User created
/// naming no role gets `default_roles`.
fn writes_take_grants_from_the_roster_catalogs(b: Backend) {
    let f = Fixture::new(b);
    let text = spec9_roster(0).replace(
        "default_roles: [public-viewer]",
        "default_roles: [caseworker, public-viewer]",
    );
    std::fs::write(f.r.path().join("s9.yaml"), text).unwrap();
    let server = start_with(f.r.path(), f.db(), &["--roster", "s9.yaml"]);
    let send = |m: &str, p: &str, b: &Value| {
        http(
            m,
            &format!("{}{p}", server.base),
            Some(&f.admin),
            Some(b),
            &[],
        )
    };
    let aw = f.id_of("Users", "userName eq \"AWrigley\"");
    // Held by an account of the store, but not in the roster's catalog.
    f.sql(&format!(
        "INSERT INTO account_roles (account_id, role) VALUES ({aw}, 'legacy-admin');"
    ));
    let r = send(
        "POST",
        "/Users",
        &user("NewPerson", "New", "Person", "new.person@example.org"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["roles"],
        json!([{"value": "caseworker"}, {"value": "public-viewer"}])
    );
    let path = format!("/Users/{}", r.body["id"].as_str().unwrap());
    let cases = [
        (
            json!({"op": "add", "path": "entitlements", "value": [{"value": "products:nope"}]}),
            "entitlements: `products:nope`: `nope` is not in the products catalog: use webcenter, hrcenter, job-board",
        ),
        (
            json!({"op": "add", "path": "entitlements", "value": [{"value": "coverage:Nowhere Team"}]}),
            "entitlements: `coverage:Nowhere Team`: coverage takes group names, and no group is named `Nowhere Team`",
        ),
        (
            json!({"op": "add", "path": "entitlements", "value": [{"value": "badges:gold"}]}),
            "entitlements: `badges:gold`: `badges` is not an entitlement kind: use coverage, dashboards, products",
        ),
        (
            json!({"op": "add", "path": "roles", "value": [{"value": "legacy-admin"}]}),
            "roles: `legacy-admin` is not a role of the catalog: use public-viewer, individual, caseworker, supervisor",
        ),
    ];
    for (op, want) in &cases {
        let r = send("PATCH", &path, &ops(vec![op.clone()]));
        assert_eq!(r.status, 400, "{op}: {}", r.body);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(want), "{op}: {detail}");
    }
    // Within the catalogs: a listed value, and coverage of a store group.
    let r = send(
        "PATCH",
        &path,
        &ops(vec![json!({"op": "add", "path": "entitlements", "value": [
            {"value": "products:hrcenter"},
            {"value": "coverage:Sangamon County Workforce Agency"}]})]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["entitlements"].as_array().unwrap().len(), 2);
}

/// The shipped roster with every unresolved partner settled: pinned to the
/// account the plan names, or without the conflicting claim.
fn roster_settled(f: &Fixture) -> String {
    let out = through_serve(
        f,
        &["plan", "--store", f.db(), "roster.yaml", "--format", "json"],
    );
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut text = std::fs::read_to_string(f.r.path().join("roster.yaml")).unwrap();
    for r in plan["resolutions"].as_array().unwrap() {
        let outcome = r["outcome"].as_str().unwrap_or_default();
        if !["needs_confirmation", "ambiguous", "conflict"].contains(&outcome) {
            continue;
        }
        let email = r["partner"].as_str().unwrap();
        let account = r["candidates"][0].as_str().unwrap();
        if outcome == "conflict" {
            // The roster pins a name the store lacks: pin the candidate.
            let pinned = r["reason"].as_str().unwrap().split('`').nth(1).unwrap();
            text = text.replace(
                &format!("account: {pinned}"),
                &format!("account: {account}"),
            );
        } else {
            let line = format!("  - email: {email}\n");
            assert!(text.contains(&line), "{email}");
            text = text.replacen(&line, &format!("{line}    account: {account}\n"), 1);
        }
    }
    text
}

/// A 404's body with the id taken out: "unknown" and "not yours" must not
/// be told apart by it.
fn not_found_shape(r: &Resp, id: &str) -> Value {
    assert_eq!(r.status, 404, "{}", r.body);
    let mut b = r.body.clone();
    b["detail"] = json!(b["detail"].as_str().unwrap().replace(id, "ID"));
    b
}

fn add_members(ids: &[&str]) -> Value {
    let value: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": value}]})
}

const GROUP_EXT: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:Group";

fn grant(id: &str) -> Value {
    json!({"schemas": [PATCH], "Operations": [
        {"op": "add", "path": format!("{GROUP_EXT}:userManagers"), "value": [{"value": id}]}]})
}

/// A scoped token sees and changes only people already in its groups:
/// through PATCH, PUT and Bulk alike, an account outside them answers as an
/// id that does not exist, and a member's other groups stay hidden.
fn scoped_tokens_reach_only_people_already_in_their_groups(b: Backend) {
    let f = Fixture::new(b);
    let legacy = "Legacy Pilot Group";
    let token = f.scoped("legacy-um", &[legacy]);
    let as_um = |m: &str, p: &str, b: Option<&Value>| http(m, &f.url(p), Some(&token), b, &[]);
    let gid = f.id_of("Groups", &format!("displayName eq \"{legacy}\""));
    let gpath = format!("/Groups/{gid}");
    let outsider = f.id_of("Users", "userName eq \"DWhitfield\"");
    let jjones = f.id_of("Users", "userName eq \"JJones\"");
    let unknown = "999999";

    // Reading: someone outside answers exactly as an unknown id.
    let foreign = as_um("GET", &format!("/Users/{outsider}"), None);
    let missing = as_um("GET", &format!("/Users/{unknown}"), None);
    assert_eq!(
        not_found_shape(&foreign, &outsider),
        not_found_shape(&missing, unknown)
    );
    let found = as_um(
        "GET",
        &format!("/Users?filter={}", encode("userName eq \"DWhitfield\"")),
        None,
    );
    assert_eq!(found.body["totalResults"], 0, "{}", found.body);

    // Writing: PATCH, PUT and Bulk cannot pull the outsider in.
    let patched = as_um("PATCH", &gpath, Some(&add_members(&[&outsider])));
    let patched_unknown = as_um("PATCH", &gpath, Some(&add_members(&[unknown])));
    assert_eq!(
        not_found_shape(&patched, &outsider),
        not_found_shape(&patched_unknown, unknown)
    );
    assert_eq!(
        not_found_shape(&patched, &outsider),
        not_found_shape(&missing, unknown)
    );
    let mut whole = f.get(&gpath).body;
    whole["members"] = json!([{"value": jjones}, {"value": outsider}]);
    assert_eq!(as_um("PUT", &gpath, Some(&whole)).status, 404);
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "PATCH", "path": gpath, "data": add_members(&[&outsider])}]
    });
    let r = as_um("POST", "/Bulk", Some(&bulk));
    assert_eq!(r.body["Operations"][0]["status"], "404", "{}", r.body);
    let members = f.get(&gpath).body["members"].clone();
    assert_eq!(
        members,
        json!([{"value": jjones, "type": "User",
        "$ref": f.url(&format!("/Users/{jjones}"))}])
    );
    assert_eq!(
        as_um("GET", &format!("/Users/{outsider}"), None).status,
        404,
        "the outsider stays out of reach"
    );

    // A member's other groups are not the token's to see.
    let sangamon = f.id_of(
        "Groups",
        "displayName eq \"Sangamon County Workforce Agency\"",
    );
    let r = f.send(
        "PATCH",
        &format!("/Groups/{sangamon}"),
        &add_members(&[&jjones]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        f.get(&format!("/Users/{jjones}")).body["groups"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let one = as_um("GET", &format!("/Users/{jjones}"), None);
    let seen: Vec<&str> = one.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    assert_eq!(seen, [legacy]);
    let listed = as_um("GET", "/Users", None);
    assert_eq!(listed.body["totalResults"], 1);
    assert_eq!(listed.body["Resources"][0]["groups"], one.body["groups"]);
    let searched = as_um(
        "POST",
        "/Users/.search",
        Some(&json!({"filter": "userName eq \"JJones\""})),
    );
    assert_eq!(searched.body["Resources"][0]["groups"], one.body["groups"]);
    // Nor can a filter tell which of its people are in other groups.
    for (filter, total) in [
        ("groups.display eq \"Sangamon County Workforce Agency\"", 0),
        ("groups[display co \"Sangamon\"]", 0),
        (&format!("groups eq \"{sangamon}\""), 0),
        (
            &format!("groups.value eq \"{sangamon}\" or userName eq \"nobody\""),
            0,
        ),
        ("not (groups.display sw \"Sangamon\")", 1),
        ("groups.display eq \"Legacy Pilot Group\"", 1),
        ("groups pr", 1),
    ] {
        let r = as_um("GET", &format!("/Users?filter={}", encode(filter)), None);
        assert_eq!(r.body["totalResults"], total, "{filter}: {}", r.body);
    }
    assert_eq!(
        f.get(&format!(
            "/Users?filter={}",
            encode(
                "groups.display eq \"Sangamon County Workforce Agency\" and userName eq \"JJones\""
            )
        ))
        .body["totalResults"],
        1,
        "the admin token sees every group"
    );

    // Nor deactivate them or change their role, even its own members.
    for (path, value) in [
        ("active", json!(false)),
        ("roles", json!([{"value": "individual"}])),
    ] {
        let op = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": path, "value": value}]});
        let r = as_um("PATCH", &format!("/Users/{jjones}"), Some(&op));
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    let me = f.get(&format!("/Users/{jjones}")).body;
    assert_eq!(me["active"], true);
    assert_eq!(me["roles"][0]["value"], "public-viewer");

    // A token over two groups may move people between them.
    let both = f.scoped("two-um", &[legacy, "Sangamon County Workforce Agency"]);
    let mccray = f.id_of("Users", "userName eq \"MMcCray\"");
    let r = http(
        "PATCH",
        &f.url(&gpath),
        Some(&both),
        Some(&add_members(&[&mccray])),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Grants made through the server obey the policy as a plan's do: only an
/// active account with an allowed role (default: public-viewer) may manage
/// a group's users, whoever asks.
fn user_manager_grants_obey_the_policy(b: Backend) {
    let f = Fixture::new(b);
    let legacy = "Legacy Pilot Group";
    let gid = f.id_of("Groups", &format!("displayName eq \"{legacy}\""));
    let gpath = format!("/Groups/{gid}");
    let inactive = f.id_of("Users", "userName eq \"PRaman\"");
    let mut u = user("IVidual", "Ivy", "Vidual", "ivy@example.org");
    u["roles"] = json!([{"value": "individual"}]);
    let created = f.send("POST", "/Users", &u);
    assert_eq!(created.status, 201, "{}", created.body);
    let individual = created.body["id"].as_str().unwrap().to_string();
    let r = f.send("PATCH", &gpath, &add_members(&[&inactive, &individual]));
    assert_eq!(r.status, 200, "{}", r.body);

    let token = f.scoped("legacy-um", &[legacy]);
    for caller in [&token, &f.admin] {
        let r = http(
            "PATCH",
            &f.url(&gpath),
            Some(caller),
            Some(&grant(&inactive)),
            &[],
        );
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("userManagers") && detail.contains("inactive"),
            "{detail}"
        );
        let r = http(
            "PATCH",
            &f.url(&gpath),
            Some(caller),
            Some(&grant(&individual)),
            &[],
        );
        assert_eq!(r.status, 400, "{}", r.body);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("individual") && detail.contains("public-viewer"),
            "{detail}"
        );
        // A new member with the grant at once is refused the same way.
        let mut whole = f.get(&gpath).body;
        whole[GROUP_EXT]["userManagers"] = json!([{"value": individual}]);
        assert_eq!(
            http("PUT", &f.url(&gpath), Some(caller), Some(&whole), &[]).status,
            400
        );
    }
    assert!(f.get(&gpath).body[GROUP_EXT].get("userManagers").is_none());
    // An active public-viewer may be granted.
    let jjones = f.id_of("Users", "userName eq \"JJones\"");
    let r = http(
        "PATCH",
        &f.url(&gpath),
        Some(&token),
        Some(&grant(&jjones)),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body[GROUP_EXT]["userManagers"][0]["value"],
        jjones.as_str()
    );

    // A server given the roster's policy follows it.
    std::fs::write(
        f.r.path().join("policy.yaml"),
        "version: 1\npolicy:\n  user_manager_roles: [individual]\n",
    )
    .unwrap();
    let server = start_with(f.r.path(), f.db(), &["--roster", "policy.yaml"]);
    let url = format!("{}{gpath}", server.base);
    let r = http("PATCH", &url, Some(&token), Some(&grant(&individual)), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let mccray = f.id_of("Users", "userName eq \"MMcCray\"");
    let r = http(
        "PATCH",
        &url,
        Some(&f.admin),
        Some(&add_members(&[&mccray])),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http("PATCH", &url, Some(&f.admin), Some(&grant(&mccray)), &[]);
    assert_eq!(
        r.status, 400,
        "public-viewer is not allowed by this policy: {}",
        r.body
    );
    std::fs::write(
        f.r.path().join("bad.yaml"),
        "version: 1\npolicy:\n  user_manager_roles: [boss]\n",
    )
    .unwrap();
    let refused = run_in(
        f.r.path(),
        &["serve", "--store", f.db(), "--roster", "bad.yaml"],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("bad.yaml") && refused.stderr.contains("--roster"),
        "{}",
        refused.stderr
    );
}

/// A scope is bound to the group's id: a renamed group keeps its token, a
/// deleted one takes it along, and a new group under the old name does not
/// inherit it.
fn scopes_follow_the_group_not_its_name(b: Backend) {
    let f = Fixture::new(b);
    let jjones = f.id_of("Users", "userName eq \"JJones\"");
    let made = f.send(
        "POST",
        "/Groups",
        &json!({"displayName": "Pilot", "members": [{"value": jjones}]}),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let gpath = format!("/Groups/{}", made.body["id"].as_str().unwrap());
    let token = f.scoped("pilot-um", &["Pilot"]);
    let as_um = |m: &str, p: &str| http(m, &f.url(p), Some(&token), None, &[]);

    let rename = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Pilot Two"}]});
    assert_eq!(f.send("PATCH", &gpath, &rename).status, 200);
    let seen = as_um("GET", "/Groups");
    assert_eq!(seen.body["totalResults"], 1, "{}", seen.body);
    assert_eq!(seen.body["Resources"][0]["displayName"], "Pilot Two");
    let list = ok_in(f.r.path(), &["token", "list", "--store", f.db()]).stdout;
    assert!(list.contains("pilot-um\tgroup:Pilot Two\t"), "{list}");

    // Deleted, then made again under the same name: not the token's.
    assert_eq!(
        http("DELETE", &f.url(&gpath), Some(&f.admin), None, &[]).status,
        204
    );
    let again = f.send(
        "POST",
        "/Groups",
        &json!({"displayName": "Pilot Two", "members": [{"value": jjones}]}),
    );
    assert_eq!(again.status, 201, "{}", again.body);
    let new_path = format!("/Groups/{}", again.body["id"].as_str().unwrap());
    assert_ne!(new_path, gpath);
    for path in [
        "/Groups",
        "/Users",
        new_path.as_str(),
        &format!("/Users/{jjones}"),
    ] {
        let r = as_um("GET", path);
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    let r = http(
        "PATCH",
        &f.url(&new_path),
        Some(&token),
        Some(&add_members(&[&jjones])),
        &[],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let list = ok_in(f.r.path(), &["token", "list", "--store", f.db()]).stdout;
    assert!(list.contains("pilot-um\tunusable"), "{list}");
}

/// Ids are never handed out twice: a SCIM client's stale id names nobody
/// rather than the next person created.
fn ids_are_never_reused(b: Backend) {
    let f = Fixture::new(b);
    for (kind, first, second) in [
        (
            "Users",
            user("Gone", "Gail", "One", "gail@example.org"),
            user("Next", "Ned", "Ext", "ned@example.org"),
        ),
        (
            "Groups",
            json!({"displayName": "Gone Group"}),
            json!({"displayName": "Next Group"}),
        ),
    ] {
        let a = f.send("POST", &format!("/{kind}"), &first);
        assert_eq!(a.status, 201, "{}", a.body);
        let old: i64 = a.body["id"].as_str().unwrap().parse().unwrap();
        let del = http(
            "DELETE",
            &f.url(&format!("/{kind}/{old}")),
            Some(&f.admin),
            None,
            &[],
        );
        assert_eq!(del.status, 204);
        let b = f.send("POST", &format!("/{kind}"), &second);
        assert_eq!(b.status, 201, "{}", b.body);
        let new: i64 = b.body["id"].as_str().unwrap().parse().unwrap();
        assert!(new > old, "{kind}: id {old} was handed out again ({new})");
        assert_eq!(f.get(&format!("/{kind}/{old}")).status, 404);
    }
}

/// The answer to a User's POST is the User as the store holds it: the
/// same body and ETag as a read of it afterwards, for every attribute a
/// create may set (the email read as roster files read it).
fn a_created_user_answers_as_it_is_then_read(b: Backend) {
    let f = Fixture::new(b);
    let mut body = user("Full.Form", "Fay", "Form", " Fay.Form@Example.org");
    body["externalId"] = json!("hr-0042");
    body["displayName"] = json!("Fay F.");
    body["active"] = json!(false);
    body["phoneNumbers"] = json!([{"value": "+1 217 555 0100", "type": "work"}]);
    body[EXT]["phoneExtension"] = json!("42");
    for (body, email) in [
        (body, "fay.form@example.org"),
        (
            user("Plain", "Pat", "Lane", "pat@example.org"),
            "pat@example.org",
        ),
    ] {
        let created = f.send("POST", "/Users", &body);
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["emails"][0]["value"], email);
        let id = created.body["id"].as_str().unwrap();
        let read = f.get(&format!("/Users/{id}"));
        assert_eq!(read.status, 200, "{}", read.body);
        assert_eq!(created.body, read.body);
        assert!(created.etag.is_some());
        assert_eq!(created.etag, read.etag);
    }
}

/// A new User's email another User holds, in any case, is refused with the
/// same answer whether the store checks it in its insert or the server
/// looks it up; the email is looked for before the name; nothing of a
/// refused create lands, and the next create goes on.
fn an_email_another_user_holds_is_refused_in_any_case(b: Backend) {
    let f = Fixture::new(b);
    let id = f.id_of("Users", "userName eq \"JJones\"");
    let held = f.get(&format!("/Users/{id}")).body["emails"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = "emails: another User holds this email address; emails are unique, in any case";
    for (name, email, answer) in [
        ("Dup.Mail", held.to_uppercase(), detail),
        ("JJONES", held.clone(), detail),
        (
            "jjones",
            "free.mail@example.org".to_string(),
            "already exists",
        ),
    ] {
        let r = f.send("POST", "/Users", &user(name, "Dup", "Mail", &email));
        assert_eq!(r.status, 409, "{name} {email}: {}", r.body);
        assert_eq!(r.body["scimType"], "uniqueness", "{}", r.body);
        let said = r.body["detail"].as_str().unwrap();
        assert!(said == answer || said.contains(answer), "{name}: {said}");
    }
    assert!(f.names("userName eq \"Dup.Mail\"").is_empty());
    assert!(
        f.names("emails.value eq \"free.mail@example.org\"")
            .is_empty()
    );
    let r = f.send(
        "POST",
        "/Users",
        &user("Free.Mail", "Free", "Mail", "Free.Mail@Example.org"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let again = f.send(
        "POST",
        "/Users",
        &user("Free.Twin", "Free", "Twin", "free.mail@example.org"),
    );
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.body["detail"], detail);
    assert_eq!(
        f.names("emails.value eq \"free.mail@example.org\""),
        ["Free.Mail"]
    );
    ok_in(f.r.path(), &["log", "--store", f.db(), "--verify"]);
}

/// An admin token the server let in before is refused at once once
/// revoked, whatever the request: a create (checked by the write's
/// transaction), a create whose body is refused before it reaches the
/// store, a read; nothing of the refused create lands. Another admin token
/// goes on working.
fn a_revoked_admin_token_is_refused_at_once_after_use(b: Backend) {
    let f = Fixture::new(b);
    let other = ok_in(
        f.r.path(),
        &["token", "create", "--name", "other", "--store", f.db()],
    )
    .stdout
    .trim()
    .to_string();
    for i in 0..3 {
        let name = format!("Before.{i}");
        let r = f.send(
            "POST",
            "/Users",
            &user(&name, "Be", "Fore", &format!("{name}@example.org")),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(f.get("/Users?count=1").status, 200);
    }
    ok_in(f.r.path(), &["token", "revoke", "ci", "--store", f.db()]);
    // First after the revoke, while the server still knows the token: a
    // Bulk whose create is refused lets none of its later writes in.
    let bulk = f.send(
        "POST",
        "/Bulk",
        &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "u",
                 "data": user("Bulk.After", "Bu", "Lk", "bulk.after@example.org")},
                {"method": "POST", "path": "/Groups", "bulkId": "g",
                 "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                          "displayName": "Late Bulk"}},
            ]
        }),
    );
    let statuses: Vec<String> = bulk.body["Operations"]
        .as_array()
        .map(|ops| ops.iter().map(|o| o["status"].to_string()).collect())
        .unwrap_or_default();
    assert!(
        bulk.status == 401 || (!statuses.is_empty() && statuses.iter().all(|s| s.contains("401"))),
        "{} {}",
        bulk.status,
        bulk.body
    );
    let groups = http(
        "GET",
        &f.url("/Groups?filter=displayName%20eq%20%22Late%20Bulk%22"),
        Some(&other),
        None,
        &[],
    );
    assert_eq!(groups.body["totalResults"], 0, "{}", groups.body);
    let late = f.send(
        "POST",
        "/Users",
        &user("After", "Af", "Ter", "after@example.org"),
    );
    assert_eq!(late.status, 401, "{}", late.body);
    assert_eq!(late.body["detail"], "unknown or revoked token");
    let bad = f.send("POST", "/Users", &json!({"userName": 5}));
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert_eq!(f.get("/Users?count=1").status, 401);
    let group = f.send(
        "POST",
        "/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Late"}),
    );
    assert_eq!(group.status, 401, "{}", group.body);
    let listed = http(
        "GET",
        &f.url("/Users?filter=userName%20sw%20%22after%22"),
        Some(&other),
        None,
        &[],
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["totalResults"], 0, "{}", listed.body);
    let made = http(
        "POST",
        &f.url("/Users"),
        Some(&other),
        Some(&user("After", "Af", "Ter", "after@example.org")),
        &[],
    );
    assert_eq!(made.status, 201, "{}", made.body);
}

/// A stored scope that cannot be read grants nothing: it is never taken
/// for an admin token's (no scope).
fn unreadable_scopes_fail_closed(b: Backend) {
    let f = Fixture::new(b);
    let token = f.scoped("legacy-um", &["Legacy Pilot Group"]);
    assert_eq!(
        http("GET", &f.url("/Users"), Some(&token), None, &[]).body["totalResults"],
        1
    );
    for stored in [
        "'{not json'",
        "'\"Legacy Pilot Group\"'",
        "'[\"Legacy Pilot Group\"]'",
        "'[999999]'",
        "'{}'",
        "''",
    ] {
        f.sql(&format!(
            "UPDATE tokens SET scope = {stored} WHERE name = 'legacy-um'"
        ));
        for (method, path) in [("GET", "/Users"), ("GET", "/Groups"), ("POST", "/Users")] {
            let body = (method == "POST").then(|| user("Zed", "Zed", "Ed", "zed@example.org"));
            let r = http(method, &f.url(path), Some(&token), body.as_ref(), &[]);
            assert_eq!(r.status, 403, "scope {stored}: {method} {path}: {}", r.body);
        }
        let list = ok_in(f.r.path(), &["token", "list", "--store", f.db()]).stdout;
        assert!(list.contains("legacy-um\tunusable"), "{list}");
    }
    // The admin token still works, and the store took no write.
    assert_eq!(f.get("/Users").body["totalResults"], 11);
}

/// NUL (which PostgreSQL cannot hold) in a filter or a write is a 400
/// `invalidValue` on every store, and the server goes on answering.
fn nul_in_filters_and_writes_is_refused(b: Backend) {
    let f = Fixture::new(b);
    for filter in [
        "userName co \"\\u0000\"",
        "externalId le \"\\u0000\"",
        "emails[value eq \"a\\u0000b\"]",
    ] {
        let r = f.get(&format!("/Users?filter={}", encode(filter)));
        assert_eq!(r.status, 400, "{filter}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue", "{filter}");
        assert!(
            r.body["detail"].as_str().unwrap().contains("NUL"),
            "{}",
            r.body
        );
    }
    let searched = f.send(
        "POST",
        "/Groups/.search",
        &json!({"filter": "displayName sw \"\\u0000\""}),
    );
    assert_eq!(searched.status, 400);

    let jjones = f.id_of("Users", "userName eq \"JJones\"");
    let upath = format!("/Users/{jjones}");
    let mut u = user("Nul", "Nu", "L", "nul@example.org");
    u["externalId"] = json!("a\u{0}b");
    let patch = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "externalId", "value": "a\u{0}b"}]});
    let mut whole = f.get(&upath).body;
    whole["displayName"] = json!("x\u{0}");
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "PATCH", "path": upath, "data": patch}]
    });
    for (method, path, body) in [
        ("POST", "/Users", &u),
        ("PATCH", upath.as_str(), &patch),
        ("PUT", upath.as_str(), &whole),
        ("POST", "/Groups", &json!({"displayName": "N\u{0}"})),
    ] {
        let r = f.send(method, path, body);
        assert_eq!(r.status, 400, "{method} {path}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue");
    }
    let r = f.send("POST", "/Bulk", &bulk);
    assert_eq!(r.body["Operations"][0]["status"], "400", "{}", r.body);
    // Later writes are answered.
    let ok = f.send(
        "POST",
        "/Users",
        &user("After", "Af", "Ter", "after@example.org"),
    );
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert!(f.get(&upath).body.get("externalId").is_none());
}

/// Writes are checked as roster files are: real dates, emails, phones,
/// ZIPs, no control characters; the 400 names the attribute and never
/// repeats a birth date or phone number.
fn writes_are_checked_like_roster_files(b: Backend) {
    let f = Fixture::new(b);
    let cases: Vec<(&str, Value, &str)> = {
        let base = user("Val", "Val", "Id", "val@example.org");
        let with = |f: &dyn Fn(&mut Value)| {
            let mut u = base.clone();
            f(&mut u);
            u
        };
        vec![
            (
                "birth date",
                with(&|u| u[EXT]["birthDate"] = json!("1990-02-30")),
                "birthDate",
            ),
            (
                "date shape",
                with(&|u| u[EXT]["birthDate"] = json!("05/01/1990")),
                "birthDate",
            ),
            (
                "email",
                with(&|u| u["emails"][0]["value"] = json!("val at example")),
                "emails",
            ),
            (
                "phone",
                with(&|u| u["phoneNumbers"] = json!([{"value": "555-0100", "type": "work"}])),
                "phoneNumbers",
            ),
            (
                "zip",
                with(&|u| u[EXT]["postalCode"] = json!("6270")),
                "postalCode",
            ),
            (
                "extension",
                with(&|u| u[EXT]["phoneExtension"] = json!("12a")),
                "phoneExtension",
            ),
            (
                "control",
                with(&|u| u["name"]["givenName"] = json!("Va\u{7}l")),
                "name.givenName",
            ),
            (
                "escape",
                with(&|u| u["displayName"] = json!("\u{1b}[31mred")),
                "displayName",
            ),
        ]
    };
    for (what, body, attr) in &cases {
        let r = f.send("POST", "/Users", body);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue", "{what}");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(attr), "{what}: {detail}");
        for pii in ["1990-02-30", "05/01/1990", "555-0100"] {
            assert!(!detail.contains(pii), "{what}: {detail}");
        }
    }
    assert_eq!(
        f.get("/Users?filter=userName%20eq%20%22Val%22").body["totalResults"],
        0
    );

    // PATCH and PUT alike; a valid value still goes through.
    let jjones = f.id_of("Users", "userName eq \"JJones\"");
    let upath = format!("/Users/{jjones}");
    let set = |path: &str, value: Value| json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": path, "value": value}]});
    let r = f.send(
        "PATCH",
        &upath,
        &set(&format!("{EXT}:birthDate"), json!("1966-13-10")),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("birthDate"));
    let mut whole = f.get(&upath).body;
    whole["emails"] = json!([{"value": "nobody", "type": "work"}]);
    let r = f.send("PUT", &upath, &whole);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("emails"));
    let r = f.send(
        "PATCH",
        &upath,
        &set(&format!("{EXT}:birthDate"), json!("1966-10-11")),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = f.send("POST", "/Groups", &json!({"displayName": "Tab\there"}));
    assert_eq!(r.status, 400, "{}", r.body);
}

/// A user write never leaves a user-manager grant the policy forbids:
/// deactivating a grant holder revokes the grants in the same write
/// (audited), while a new role the policy does not allow is refused, naming
/// the groups, through PATCH, PUT and Bulk alike.
fn user_writes_keep_grants_within_the_policy(b: Backend) {
    let f = Fixture::new(b);
    let managers = |group: &str| -> Vec<String> {
        let id = f.id_of("Groups", &format!("displayName eq \"{group}\""));
        let g = f.get(&format!("/Groups/{id}")).body;
        g[GROUP_EXT]["userManagers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["value"].as_str().unwrap().to_string())
            .collect()
    };
    let sangamon = "Sangamon County Workforce Agency";
    let abc = "Apprenticeship Illinois - ABC Location";
    let aw = f.id_of("Users", "userName eq \"AWrigley\"");
    let mm = f.id_of("Users", "userName eq \"MMcCray\"");
    assert_eq!(managers(sangamon), [aw.as_str()]);
    let op = |path: &str, value: Value| json!({"op": "replace", "path": path, "value": value});
    let patch = |ops: Vec<Value>| json!({"schemas": [PATCH], "Operations": ops});

    // A role the policy does not allow, while holding a grant: refused.
    let r = f.send(
        "PATCH",
        &format!("/Users/{aw}"),
        &patch(vec![op("roles", json!([{"value": "individual"}]))]),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["scimType"], "invalidValue");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains(sangamon) && detail.contains("public-viewer"),
        "{detail}"
    );
    let mut whole = f.get(&format!("/Users/{mm}")).body;
    whole["roles"] = json!([{"value": "individual"}]);
    let r = f.send("PUT", &format!("/Users/{mm}"), &whole);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains(abc),
        "{}",
        r.body
    );
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "PATCH", "path": format!("/Users/{aw}"),
            "data": patch(vec![op("roles", json!([{"value": "individual"}]))])}],
    });
    let r = f.send("POST", "/Bulk", &bulk);
    assert_eq!(r.body["Operations"][0]["status"], "400", "{}", r.body);
    assert_eq!(
        f.get(&format!("/Users/{aw}")).body["roles"][0]["value"],
        "public-viewer"
    );
    assert_eq!(managers(sangamon), [aw.as_str()]);

    // Deactivating (with a new role, or by PUT) revokes the grants and
    // keeps the membership.
    let r = f.send(
        "PATCH",
        &format!("/Users/{aw}"),
        &patch(vec![
            op("roles", json!([{"value": "individual"}])),
            op("active", json!(false)),
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert!(managers(sangamon).is_empty());
    let members = |group: &str| {
        let id = f.id_of("Groups", &format!("displayName eq \"{group}\""));
        f.get(&format!("/Groups/{id}")).body["members"].to_string()
    };
    assert!(members(sangamon).contains(&format!("\"{aw}\"")));
    let mut whole = f.get(&format!("/Users/{mm}")).body;
    whole["active"] = json!(false);
    let r = f.send("PUT", &format!("/Users/{mm}"), &whole);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(managers(abc).is_empty());
    let log = ok_in(f.r.path(), &["log", "--store", f.db()]).stdout;
    assert!(log.contains("revoke_user_manager"), "{log}");
    // The roster side agrees: no inactive account manages a group.
    let export = ok_in(f.r.path(), &["export", "--store", f.db()]).stdout;
    assert!(!export.contains("user_manager: true"), "{export}");
}

/// User attributes of the wrong type or shape are refused with a 400
/// naming the attribute, never dropped; emails are lower-cased and unique
/// in any case; text has a length limit.
fn user_attributes_of_the_wrong_shape_are_refused(b: Backend) {
    let f = Fixture::new(b);
    let jj = f.id_of("Users", "userName eq \"JJones\"");
    let upath = format!("/Users/{jj}");
    let before = f.get(&upath).body;
    let set = |path: &str, value: Value| json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": path, "value": value}]});
    let bad_emails = [
        json!("x"),
        json!(42),
        json!({"a": 1}),
        json!(["x"]),
        json!(true),
        json!([{"value": "a@example.org"}, {"value": "b@example.org"}]),
        json!([{"value": "a@example.org", "type": "home"}]),
        json!([{"value": 5}]),
    ];
    for v in &bad_emails {
        let r = f.send("PATCH", &upath, &set("emails", v.clone()));
        assert_eq!(r.status, 400, "emails {v}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue", "{v}");
        assert!(
            r.body["detail"].as_str().unwrap().contains("emails"),
            "{}",
            r.body
        );
    }
    for v in [json!("x"), json!(42), json!(["x"])] {
        let r = f.send("PATCH", &upath, &set("phoneNumbers", v.clone()));
        assert_eq!(r.status, 400, "phoneNumbers {v}: {}", r.body);
        assert!(
            r.body["detail"].as_str().unwrap().contains("phoneNumbers"),
            "{}",
            r.body
        );
    }
    let after = f.get(&upath).body;
    assert_eq!(after["emails"], before["emails"]);
    assert_eq!(after["phoneNumbers"], before["phoneNumbers"]);

    let base = user("Shape", "Sha", "Pe", "shape@example.org");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut u = base.clone();
        f(&mut u);
        u
    };
    let long = "x".repeat(300);
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&|u| u["roles"] = json!([{"value": "superadmin"}])),
            "superadmin",
        ),
        (with(&|u| u["roles"] = json!("x")), "roles"),
        (with(&|u| u["roles"] = json!([{"value": 1}])), "roles"),
        (
            with(&|u| u[EXT]["birthDate"] = json!(19700101)),
            "birthDate",
        ),
        (with(&|u| u["name"] = json!("Bob")), "name"),
        (
            with(&|u| u["name"]["givenName"] = json!(5)),
            "name.givenName",
        ),
        (with(&|u| u["userName"] = json!(long)), "userName"),
        (
            with(&|u| u["name"]["familyName"] = json!(long)),
            "name.familyName",
        ),
    ];
    for (body, attr) in &cases {
        let r = f.send("POST", "/Users", body);
        assert_eq!(r.status, 400, "{attr}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue", "{attr}");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(attr), "{attr}: {detail}");
        assert!(!detail.contains("19700101"), "{detail}");
    }
    let r = f.send("POST", "/Users", &cases[0].0);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("public-viewer") && detail.contains("individual"),
        "{detail}"
    );
    assert_eq!(f.names("userName sw \"Shape\"").len(), 0);

    // Emails: lower-cased, unique in any case, on POST, PUT and PATCH.
    let taken = user("JJones2", "Jamie", "Jones", "Jamie.Jones@Example.com");
    let r = f.send("POST", "/Users", &taken);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["scimType"], "uniqueness");
    let mm = f.id_of("Users", "userName eq \"MMcCray\"");
    let r = f.send(
        "PATCH",
        &format!("/Users/{mm}"),
        &set(
            "emails",
            json!([{"value": "JAMIE.JONES@example.com", "type": "work"}]),
        ),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let mut whole = f.get(&format!("/Users/{mm}")).body;
    whole["emails"] = json!([{"value": "jamie.jones@example.com"}]);
    assert_eq!(f.send("PUT", &format!("/Users/{mm}"), &whole).status, 409);
    let r = f.send(
        "POST",
        "/Users",
        &user("NPerson", "New", "Person", "New.Person@Example.org"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["emails"][0]["value"], "new.person@example.org");
    // Its own email, in another case, is no conflict.
    let r = f.send(
        "PATCH",
        &upath,
        &set(
            "emails",
            json!([{"value": "JAMIE.JONES@EXAMPLE.COM", "type": "work"}]),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["emails"][0]["value"], "jamie.jones@example.com");
}

/// Stores of schema version 2 kept scopes as group names: migrating turns
/// them into the groups' ids, and a name whose group is gone into a scope
/// that grants nothing.
fn scopes_stored_as_names_become_ids(b: Backend) {
    let f = Fixture::new(b);
    let legacy = "Legacy Pilot Group";
    let token = f.scoped("legacy-um", &[legacy]);
    let gone = f.scoped("gone-um", &[legacy]);
    let gid = f.id_of("Groups", &format!("displayName eq \"{legacy}\""));
    let version = match b {
        Backend::Sqlite => "PRAGMA user_version = 2".to_string(),
        Backend::Postgres => "UPDATE meta SET value = 2 WHERE key = 'schema_version'".to_string(),
    };
    f.sql(&format!(
        "UPDATE tokens SET scope = '[\"{legacy}\"]' WHERE name = 'legacy-um';
         UPDATE tokens SET scope = '[\"{legacy}\", \"Long Gone\"]' WHERE name = 'gone-um';
         {version};"
    ));
    // A server started on the old schema migrates it first.
    let server = start(f.r.path(), f.db());
    let (rows, _) = f.stored_tokens("legacy-um");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("legacy-um ") && r.contains(&format!(" [{gid}] "))),
        "{rows:?}"
    );
    let seen = http(
        "GET",
        &format!("{}/Groups", server.base),
        Some(&token),
        None,
        &[],
    );
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.body["Resources"][0]["displayName"], legacy);
    assert_eq!(seen.body["totalResults"], 1);
    let refused = http(
        "GET",
        &format!("{}/Groups", server.base),
        Some(&gone),
        None,
        &[],
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    let list = ok_in(f.r.path(), &["token", "list", "--store", f.db()]).stdout;
    assert!(
        list.contains(&format!("legacy-um\tgroup:{legacy}\t")),
        "{list}"
    );
    assert!(list.contains("gone-um\tunusable"), "{list}");
}

/// PATCH names only attributes roster keeps and lets clients change:
/// unknown paths are `invalidPath`, read-only ones `mutability`, each echoed
/// as a short excerpt, and nothing changes; directly and in Bulk.
fn patch_refuses_unknown_and_read_only_paths(b: Backend) {
    let f = Fixture::new(b);
    let uid = f.id_of("Users", "userName eq \"AWrigley\"");
    let gid = f.id_of("Groups", "displayName eq \"Legacy Pilot Group\"");
    let long = "a".repeat(200_000);
    let group_ext = "urn:roster:params:scim:schemas:extension:roster:2.0:Group";
    let cases: Vec<(String, &str, String, &str)> = vec![
        (
            format!("/Users/{uid}"),
            "replace",
            "bogus".into(),
            "invalidPath",
        ),
        (
            format!("/Users/{uid}"),
            "add",
            "name.bogus".into(),
            "invalidPath",
        ),
        (
            format!("/Users/{uid}"),
            "replace",
            long.clone(),
            "invalidPath",
        ),
        (
            format!("/Users/{uid}"),
            "replace",
            format!("{EXT}:bogus"),
            "invalidPath",
        ),
        (
            format!("/Users/{uid}"),
            "replace",
            format!("{group_ext}:lwia"),
            "invalidPath",
        ),
        (
            format!("/Users/{uid}"),
            "remove",
            "emails[type eq \"work\"].bogus".into(),
            "invalidPath",
        ),
        (
            format!("/Users/{uid}"),
            "replace",
            "id".into(),
            "mutability",
        ),
        (
            format!("/Users/{uid}"),
            "replace",
            "meta.created".into(),
            "mutability",
        ),
        (
            format!("/Users/{uid}"),
            "add",
            "groups".into(),
            "mutability",
        ),
        (
            format!("/Users/{uid}"),
            "remove",
            "groups".into(),
            "mutability",
        ),
        (
            format!("/Groups/{gid}"),
            "replace",
            "bogus".into(),
            "invalidPath",
        ),
        (
            format!("/Groups/{gid}"),
            "replace",
            "userName".into(),
            "invalidPath",
        ),
        (
            format!("/Groups/{gid}"),
            "replace",
            "members.bogus".into(),
            "invalidPath",
        ),
        (
            format!("/Groups/{gid}"),
            "replace",
            long.clone(),
            "invalidPath",
        ),
        (
            format!("/Groups/{gid}"),
            "replace",
            format!("{group_ext}:bogus"),
            "invalidPath",
        ),
        (
            format!("/Groups/{gid}"),
            "replace",
            "id".into(),
            "mutability",
        ),
        (
            format!("/Groups/{gid}"),
            "replace",
            "meta.lastModified".into(),
            "mutability",
        ),
    ];
    for (at, op, path, want) in &cases {
        let before = f.get(at).body;
        let body =
            json!({"schemas": [PATCH], "Operations": [{"op": op, "path": path, "value": "x"}]});
        let r = f.send("PATCH", at, &body);
        let shown = &path[..path.len().min(60)];
        assert_eq!(r.status, 400, "{op} {shown}: {}", r.body);
        assert_eq!(r.body["scimType"], *want, "{op} {shown}: {}", r.body);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.len() < 400, "{op} {shown}: {} bytes", detail.len());
        assert_eq!(f.get(at).body, before, "{op} {shown} changed the resource");

        let bulk = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [{"method": "PATCH", "path": at, "data": body}],
        });
        let r = f.send("POST", "/Bulk", &bulk);
        assert_eq!(r.status, 200, "{}", r.body);
        let o = &r.body["Operations"][0];
        assert_eq!(o["status"], "400", "bulk {op} {shown}: {o}");
        assert_eq!(o["response"]["scimType"], *want, "bulk {op} {shown}: {o}");
        assert_eq!(
            f.get(at).body,
            before,
            "bulk {op} {shown} changed the resource"
        );
    }
    // Without a path, the keys of the value are the paths.
    let r = f.send(
        "PATCH",
        &format!("/Users/{uid}"),
        &json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"bogus": 1}}]}),
    );
    assert_eq!(
        (r.status, r.body["scimType"].as_str()),
        (400, Some("invalidPath")),
        "{}",
        r.body
    );
    // Known, writable paths still work, in any case.
    let r = f.send(
        "PATCH",
        &format!("/Users/{uid}"),
        &json!({"schemas": [PATCH], "Operations": [
            {"op": "replace", "path": "NAME.givenName", "value": "Ann"},
            {"op": "replace", "path": format!("{EXT}:postalCode"), "value": "62702"},
            {"op": "replace", "path": "externalId", "value": "ext-1"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"]["givenName"], "Ann");
    // An op other than add, replace or remove is a syntax error.
    for op in ["move", "copy", "", "Replace2"] {
        let r = f.send(
            "PATCH",
            &format!("/Users/{uid}"),
            &json!({"schemas": [PATCH], "Operations": [{"op": op, "path": "active", "value": false}]}),
        );
        assert_eq!(
            (r.status, r.body["scimType"].as_str()),
            (400, Some("invalidSyntax")),
            "{op}: {}",
            r.body
        );
    }
    let r = f.send(
        "PATCH",
        &format!("/Users/{uid}"),
        &json!({"schemas": [PATCH], "Operations": [{"op": "REPLACE", "path": "active", "value": true}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Group and token names come from the store: `token list` and `token
/// create` show their control, escape and bidi characters as `\u{..}`, and
/// a token name may not hold one.
fn token_output_neutralizes_names(b: Backend) {
    let f = Fixture::new(b);
    let bidi = "Bidi \u{202e} gnp.exe";
    let esc = "Esc \u{1b}[31m red\r over";
    f.sql(&format!(
        "UPDATE groups SET name = '{bidi}' WHERE name = 'Legacy Pilot Group';
         UPDATE groups SET name = '{esc}' WHERE name = 'Sangamon County Workforce Agency'"
    ));
    let raw = |text: &str| text.contains(['\u{202e}', '\u{1b}', '\r']);
    let scopes = [format!("group:{bidi}"), format!("group:{esc}")];
    let created = ok_in(
        f.r.path(),
        &[
            "token",
            "create",
            "--name",
            "odd-groups",
            "--store",
            f.db(),
            "--scope",
            &scopes[0],
            "--scope",
            &scopes[1],
        ],
    );
    for shown in [r"\u{202e}", r"\u{1b}", r"\u{d}"] {
        assert!(
            created.stderr.contains(shown),
            "{shown}: {}",
            created.stderr
        );
    }
    assert!(!raw(&created.stderr), "{:?}", created.stderr);
    let list = ok_in(f.r.path(), &["token", "list", "--store", f.db()]).stdout;
    assert!(
        list.contains(r"Bidi \u{202e} gnp.exe") && list.contains(r"Esc \u{1b}[31m red\u{d} over"),
        "{list}"
    );
    assert!(!raw(&list), "{list:?}");

    let missing = run_in(
        f.r.path(),
        &[
            "token",
            "create",
            "--name",
            "t",
            "--store",
            f.db(),
            "--scope",
            "group:nonexist\u{1b}[31m",
        ],
    );
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains(r"nonexist\u{1b}[31m"),
        "{}",
        missing.stderr
    );
    assert!(!raw(&missing.stderr), "{:?}", missing.stderr);

    for name in ["evil\u{202e}gnp.exe", "bell\u{7}", "line\u{2028}sep"] {
        let r = run_in(
            f.r.path(),
            &["token", "create", "--name", name, "--store", f.db()],
        );
        assert_eq!(r.code, 1, "{name:?}: {}", r.stdout);
        assert!(r.stderr.contains("bidi"), "{}", r.stderr);
        assert!(
            !raw(&r.stderr) && !r.stderr.contains('\u{2028}'),
            "{:?}",
            r.stderr
        );
    }
    let list = ok_in(f.r.path(), &["token", "list", "--store", f.db()]).stdout;
    assert!(!list.contains("evil") && !list.contains("bell"), "{list}");
}

/// Writes arriving together (creates share a commit, each in a savepoint):
/// a create the store refuses (a user name or an email another create of
/// the same moment took) answers 409 alone and leaves its neighbours, each
/// landed create is recorded with its own token as the actor, changes of
/// one group arriving together all land, and the audit chain verifies.
fn writes_arriving_together_land_or_fail_one_by_one(b: Backend) {
    let f = Fixture::new(b);
    let other = ok_in(
        f.r.path(),
        &["token", "create", "--name", "ci2", "--store", f.db()],
    )
    .stdout
    .trim()
    .to_string();
    // (token name, body): 8 creates that cannot clash, 8 pairs on one user
    // name (emails differ), 8 pairs on one email (in another case).
    let mut creates: Vec<(&str, Value)> = Vec::new();
    for i in 0..8 {
        creates.push((
            "ci",
            user(
                &format!("batch.free{i}"),
                "Free",
                "One",
                &format!("free{i}@batch.example"),
            ),
        ));
    }
    for i in 0..8 {
        for (who, n) in [("ci", "a"), ("ci2", "b")] {
            creates.push((
                who,
                user(
                    &format!("batch.name{i}"),
                    "Name",
                    "Twin",
                    &format!("name{i}{n}@batch.example"),
                ),
            ));
        }
    }
    for i in 0..8 {
        for (who, n, email) in [
            ("ci2", "x", format!("mail{i}@batch.example")),
            ("ci", "y", format!("MAIL{i}@Batch.example")),
        ] {
            creates.push((
                who,
                user(&format!("batch.mail{i}{n}"), "Mail", "Twin", &email),
            ));
        }
    }
    let sent: Vec<(&str, Value)> = creates
        .iter()
        .map(|(who, body)| {
            let token = if *who == "ci" {
                f.admin.as_str()
            } else {
                other.as_str()
            };
            (token, body.clone())
        })
        .collect();
    let answers = create_together(&f.url("/Users"), &sent);
    let status = |name: &str| -> Vec<u16> {
        answers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, r)| r.status)
            .collect()
    };
    created_or_taken(&answers);
    for i in 0..8 {
        assert_eq!(status(&format!("batch.free{i}")), [201], "free {i}");
        let mut twins = status(&format!("batch.name{i}"));
        twins.sort();
        assert_eq!(twins, [201, 409], "name {i}");
        let mut twins = [
            status(&format!("batch.mail{i}x")),
            status(&format!("batch.mail{i}y")),
        ]
        .concat();
        twins.sort();
        assert_eq!(twins, [201, 409], "mail {i}");
    }
    // What answered 201 is in the store, once; nothing refused is.
    let landed: Vec<&String> = answers
        .iter()
        .filter(|(_, r)| r.status == 201)
        .map(|(n, _)| n)
        .collect();
    let mut listed = f.names("userName sw \"batch.\"");
    listed.sort();
    let mut want: Vec<String> = landed.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    for (n, r) in answers.iter().filter(|(_, r)| r.status == 201) {
        let id = r.body["id"].as_str().unwrap();
        let got = f.get(&format!("/Users/{id}"));
        assert_eq!(got.status, 200, "{n}");
        assert_eq!(got.body["userName"], *n);
    }
    // Each landed create is its own token's, in the audit log.
    let log: Value = serde_json::from_str(
        &ok_in(f.r.path(), &["log", "--store", f.db(), "--format", "json"]).stdout,
    )
    .unwrap();
    for (who, body) in &creates {
        let name = body["userName"].as_str().unwrap();
        let email = body["emails"][0]["value"].as_str().unwrap();
        let rows: Vec<&Value> = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["op"] == "create_account" && e["subject"] == name)
            .collect();
        let mine = answers
            .iter()
            .any(|(n, r)| n == name && r.status == 201 && r.body["emails"][0]["value"] == email);
        if mine {
            assert_eq!(rows.len(), 1, "{name}: {rows:?}");
            assert_eq!(rows[0]["actor"], format!("token:{who}"), "{name}");
        }
    }
    assert_eq!(
        log.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["op"] == "create_account"
                && e["subject"].as_str().unwrap().starts_with("batch."))
            .count(),
        landed.len()
    );

    // Changes of one group arriving together: none is lost.
    let group = f.send(
        "POST",
        "/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Batch crew"}),
    );
    assert_eq!(group.status, 201, "{}", group.body);
    let gid = group.body["id"].as_str().unwrap().to_string();
    let ids: Vec<String> = answers
        .iter()
        .filter(|(_, r)| r.status == 201)
        .map(|(_, r)| r.body["id"].as_str().unwrap().to_string())
        .collect();
    let start = std::sync::Barrier::new(ids.len());
    std::thread::scope(|s| {
        for id in &ids {
            let (start, url, admin) = (&start, f.url(&format!("/Groups/{gid}")), &f.admin);
            s.spawn(move || {
                start.wait();
                let r = http("PATCH", &url, Some(admin), Some(&add_members(&[id])), &[]);
                assert_eq!(r.status, 200, "{}", r.body);
            });
        }
    });
    let members = f.get(&format!("/Groups/{gid}")).body["members"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(members, ids.len());
    ok_in(f.r.path(), &["log", "--store", f.db(), "--verify"]);
}

/// Creates of one token arriving together (the writer commits them
/// together, each in a savepoint): of two with one email (in another case)
/// or one user name, one answers 201 and the other 409 `uniqueness`; the
/// creates around them land; nothing refused is stored; the audit chain
/// verifies.
fn creates_of_one_token_arriving_together_refuse_only_the_clash(b: Backend) {
    let f = Fixture::new(b);
    let mut creates: Vec<Value> = Vec::new();
    for i in 0..6 {
        creates.push(user(
            &format!("one.free{i}"),
            "Free",
            "One",
            &format!("free{i}@one.example"),
        ));
        creates.push(user(
            &format!("one.mail{i}a"),
            "Mail",
            "Twin",
            &format!("mail{i}@one.example"),
        ));
        creates.push(user(
            &format!("one.mail{i}b"),
            "Mail",
            "Twin",
            &format!("Mail{i}@ONE.example"),
        ));
        creates.push(user(
            &format!("one.name{i}"),
            "Name",
            "Twin",
            &format!("name{i}a@one.example"),
        ));
        creates.push(user(
            &format!("One.Name{i}"),
            "Name",
            "Twin",
            &format!("name{i}b@one.example"),
        ));
    }
    let creates: Vec<(&str, Value)> = creates.into_iter().map(|b| (f.admin.as_str(), b)).collect();
    let answers = create_together(&f.url("/Users"), &creates);
    let status = |name: &str| -> u16 {
        answers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.status)
            .unwrap()
    };
    created_or_taken(&answers);
    for i in 0..6 {
        assert_eq!(status(&format!("one.free{i}")), 201, "free {i}");
        let mut mail = [
            status(&format!("one.mail{i}a")),
            status(&format!("one.mail{i}b")),
        ];
        mail.sort();
        assert_eq!(mail, [201, 409], "mail {i}");
        let mut name = [
            status(&format!("one.name{i}")),
            status(&format!("One.Name{i}")),
        ];
        name.sort();
        assert_eq!(name, [201, 409], "name {i}");
    }
    let mut landed: Vec<String> = answers
        .iter()
        .filter(|(_, r)| r.status == 201)
        .map(|(n, _)| n.clone())
        .collect();
    landed.sort();
    let mut listed = f.names("userName sw \"one.\"");
    listed.sort();
    assert_eq!(listed, landed);
    for (n, r) in answers.iter().filter(|(_, r)| r.status == 201) {
        let id = r.body["id"].as_str().unwrap();
        let got = f.get(&format!("/Users/{id}"));
        assert_eq!((got.status, &got.body["userName"]), (200, &json!(n)));
        assert_eq!(got.body["emails"], r.body["emails"], "{n}");
    }
    ok_in(f.r.path(), &["log", "--store", f.db(), "--verify"]);
}

/// Creates arriving together whose name or email an account in the store
/// already holds (the store refuses them as their rows are written, which
/// over PostgreSQL is one statement for the whole batch): each answers 409
/// `uniqueness` alone, its neighbours land with the ids and bodies a read
/// gives, and the audit chain verifies. Again after the refused ones.
fn creates_arriving_together_refuse_names_and_emails_the_store_holds(b: Backend) {
    let f = Fixture::new(b);
    for i in 0..4 {
        let r = f.send(
            "POST",
            "/Users",
            &user(
                &format!("held.name{i}"),
                "Held",
                "Name",
                &format!("held{i}@held.example"),
            ),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    for round in 0..2 {
        let mut creates: Vec<Value> = Vec::new();
        for i in 0..4 {
            let free = format!("r{round}.free{i}");
            creates.push(user(&free, "Free", "One", &format!("{free}@held.example")));
            creates.push(user(
                &format!("Held.Name{i}"),
                "Name",
                "Twin",
                &format!("r{round}.name{i}@held.example"),
            ));
            creates.push(user(
                &format!("r{round}.mail{i}"),
                "Mail",
                "Twin",
                &format!("HELD{i}@Held.example"),
            ));
        }
        let creates: Vec<(&str, Value)> =
            creates.into_iter().map(|b| (f.admin.as_str(), b)).collect();
        let answers = create_together(&f.url("/Users"), &creates);
        created_or_taken(&answers);
        for (n, r) in &answers {
            let want = if n.contains(".free") { 201 } else { 409 };
            assert_eq!(r.status, want, "{n}: {}", r.body);
        }
        for (n, r) in answers.iter().filter(|(_, r)| r.status == 201) {
            let id = r.body["id"].as_str().unwrap();
            let got = f.get(&format!("/Users/{id}"));
            assert_eq!((got.status, &got.body["userName"]), (200, &json!(n)));
            assert_eq!(got.body["emails"], r.body["emails"], "{n}");
            assert_eq!(got.body["meta"], r.body["meta"], "{n}");
        }
        let mut listed = f.names(&format!("userName sw \"r{round}.\""));
        listed.sort();
        let want: Vec<String> = (0..4).map(|i| format!("r{round}.free{i}")).collect();
        assert_eq!(listed, want);
        assert_eq!(f.names("userName sw \"held.\"").len(), 4);
    }
    ok_in(f.r.path(), &["log", "--store", f.db(), "--verify"]);
}

/// Creates arriving together take ids above every account's, whichever
/// server wrote the last one (a listing in id order is the order accounts
/// were committed in); and once the admin token is revoked, the next
/// creates arriving together are all refused at once (401), none landing.
fn batches_take_ids_in_commit_order_and_stop_at_a_revoke(b: Backend) {
    let f = Fixture::new(b);
    let other = ok_in(
        f.r.path(),
        &["token", "create", "--name", "other", "--store", f.db()],
    )
    .stdout
    .trim()
    .to_string();
    let second = start(f.r.path(), f.db());
    let round = |token: &str, r: &str| -> Vec<(String, Resp)> {
        let creates: Vec<(&str, Value)> = (0..6)
            .map(|i| {
                let n = format!("b{r}.user{i}");
                (token, user(&n, "Bat", "Ch", &format!("{n}@example.org")))
            })
            .collect();
        create_together(&f.url("/Users"), &creates)
    };
    let ids = |answers: &[(String, Resp)]| -> Vec<i64> {
        answers
            .iter()
            .map(|(n, r)| {
                assert_eq!(r.status, 201, "{n}: {}", r.body);
                r.body["id"].as_str().unwrap().parse().unwrap()
            })
            .collect()
    };
    let mut last = 0;
    for r in 0..6 {
        let got = ids(&round(&f.admin, &r.to_string()));
        let first = *got.iter().min().unwrap();
        assert!(first > last, "round {r}: id {first} after {last}");
        last = *got.iter().max().unwrap();
        // One through the other server in between.
        let n = format!("between{r}");
        let body = user(&n, "Be", "Tween", &format!("{n}@example.org"));
        let between = http(
            "POST",
            &format!("{}/Users", second.base),
            Some(&f.admin),
            Some(&body),
            &[],
        );
        assert_eq!(between.status, 201, "{}", between.body);
        let id: i64 = between.body["id"].as_str().unwrap().parse().unwrap();
        assert!(id > last, "{n}: id {id} after {last}");
        last = id;
    }
    // Revoked right after creates arriving together: the next ones are
    // refused, whether their batch looks the token up or its insert checks it.
    for k in 0..4 {
        let name = format!("batch{k}");
        let token = ok_in(
            f.r.path(),
            &["token", "create", "--name", &name, "--store", f.db()],
        )
        .stdout
        .trim()
        .to_string();
        for r in 0..2 {
            ids(&round(&token, &format!("t{k}r{r}")));
        }
        ok_in(f.r.path(), &["token", "revoke", &name, "--store", f.db()]);
        let refused = format!("t{k}late");
        for (n, r) in round(&token, &refused) {
            assert_eq!(r.status, 401, "{n}: {}", r.body);
            assert_eq!(r.body["detail"], "unknown or revoked token", "{n}");
        }
        let landed = http(
            "GET",
            &f.url(&format!("/Users?filter=userName%20sw%20%22b{refused}.%22")),
            Some(&other),
            None,
            &[],
        );
        assert_eq!(landed.body["totalResults"], 0, "{}", landed.body);
    }
    ok_in(f.r.path(), &["log", "--store", f.db(), "--verify"]);
}

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A PATCH body of these operations.
fn ops(list: Vec<Value>) -> Value {
    json!({"schemas": [PATCH], "Operations": list})
}

/// SPEC §9 through SCIM: several core `roles`, `entitlements` as
/// `KIND:VALUE` of type `KIND`, and the enterprise `manager` (the id, with
/// `displayName` and `$ref`) are read, written by POST, PATCH, PUT and Bulk,
/// filtered on, published under /Schemas and /ResourceTypes, and audited.
/// A server without a roster takes the default roles plus the roles and
/// entitlement kinds the store already holds; anything else is a 400
/// naming the attribute.
fn roles_entitlements_and_managers_through_scim(b: Backend) {
    let f = Fixture::new(b);
    // Published: the enterprise extension, with `manager`.
    let types = f.get("/ResourceTypes/User").body;
    assert!(
        types["schemaExtensions"].to_string().contains(ENTERPRISE),
        "{types}"
    );
    let schema = f.get(&format!("/Schemas/{ENTERPRISE}"));
    assert_eq!(schema.status, 200, "{}", schema.body);
    assert_eq!(schema.body["attributes"][0]["name"], "manager");
    let core = f
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .body;
    assert!(core.to_string().contains("\"entitlements\""), "{core}");

    let mm = f.id_of("Users", "userName eq \"MMcCray\"");
    let aw = f.id_of("Users", "userName eq \"AWrigley\"");
    // A role and an entitlement kind the store already holds are in the
    // catalog of a server without a roster.
    f.sql(&format!(
        "INSERT INTO account_roles (account_id, role) VALUES ({aw}, 'caseworker');
         INSERT INTO account_entitlements (account_id, kind, value) VALUES ({aw}, 'products', 'webcenter');"
    ));

    // POST: several roles, entitlements, a manager by id.
    let mut body = user(
        "NHoliday",
        "Noelle",
        "Holiday",
        "noelle.holiday@example.org",
    );
    body["roles"] = json!([{"value": "caseworker"}, {"value": "public-viewer"}]);
    body["entitlements"] = json!([{"value": "products:job-board", "type": "products"}]);
    body[ENTERPRISE] = json!({"manager": {"value": mm}});
    let r = f.send("POST", "/Users", &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let nh = r.body["id"].as_str().unwrap().to_string();
    let read = f.get(&format!("/Users/{nh}")).body;
    assert_eq!(
        read["roles"],
        json!([{"value": "caseworker"}, {"value": "public-viewer"}])
    );
    assert_eq!(
        read["entitlements"],
        json!([{"value": "products:job-board", "type": "products"}])
    );
    let manager = &read[ENTERPRISE]["manager"];
    assert_eq!(manager["value"], mm.as_str(), "{read}");
    assert_eq!(manager["displayName"], "MMcCray");
    assert!(
        manager["$ref"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Users/{mm}")),
        "{manager}"
    );
    assert!(read["schemas"].to_string().contains(ENTERPRISE), "{read}");
    // A User created naming no role holds the default one.
    let r = f.send(
        "POST",
        "/Users",
        &user("NoRole", "No", "Role", "no.role@example.org"),
    );
    assert_eq!(
        r.body["roles"],
        json!([{"value": "public-viewer"}]),
        "{}",
        r.body
    );

    // Filters on each.
    assert_eq!(
        f.names("roles.value eq \"caseworker\""),
        ["AWrigley", "NHoliday"]
    );
    assert_eq!(
        f.names("roles eq \"CASEWORKER\" and roles eq \"public-viewer\""),
        ["AWrigley", "NHoliday"]
    );
    assert_eq!(
        f.names("roles eq \"caseworker\" and not (entitlements.value eq \"products:webcenter\")"),
        ["NHoliday"]
    );
    assert_eq!(
        f.names("entitlements.value eq \"products:job-board\""),
        ["NHoliday"]
    );
    assert_eq!(
        f.names("entitlements.type eq \"products\""),
        ["AWrigley", "NHoliday"]
    );
    assert_eq!(
        f.names(&format!("{ENTERPRISE}:manager.value eq \"{mm}\"")),
        ["NHoliday"]
    );
    assert_eq!(
        f.names(&format!("{ENTERPRISE}:manager.displayName eq \"mmccray\"")),
        ["NHoliday"]
    );
    assert_eq!(f.names(&format!("{ENTERPRISE}:manager pr")), ["NHoliday"]);

    // PATCH: add and remove roles and entitlements, replace the manager.
    let path = format!("/Users/{nh}");
    let r = f.send(
        "PATCH",
        &path,
        &ops(vec![
            json!({"op": "add", "path": "roles", "value": [{"value": "individual"}]}),
            json!({"op": "remove", "path": "roles[value eq \"caseworker\"]"}),
            json!({"op": "add", "path": "entitlements", "value": [{"value": "products:webcenter"}]}),
            json!({"op": "remove", "path": "entitlements[value eq \"products:job-board\"]"}),
            json!({"op": "replace", "path": format!("{ENTERPRISE}:manager"), "value": {"value": aw}}),
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["roles"],
        json!([{"value": "individual"}, {"value": "public-viewer"}])
    );
    assert_eq!(
        r.body["entitlements"],
        json!([{"value": "products:webcenter", "type": "products"}])
    );
    assert_eq!(r.body[ENTERPRISE]["manager"]["displayName"], "AWrigley");
    // A stale displayName is not what counts: the id is.
    let r = f.send(
        "PATCH",
        &path,
        &ops(vec![
            json!({"op": "replace", "path": format!("{ENTERPRISE}:manager"),
                         "value": {"value": mm, "displayName": "AWrigley"}}),
        ]),
    );
    assert_eq!(
        r.body[ENTERPRISE]["manager"]["displayName"], "MMcCray",
        "{}",
        r.body
    );
    // PUT without the extension clears the manager.
    let mut whole = f.get(&path).body;
    whole.as_object_mut().unwrap().remove(ENTERPRISE);
    let r = f.send("PUT", &path, &whole);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get(ENTERPRISE).is_none(), "{}", r.body);

    // Bulk: a manager created in the same request, by bulkId.
    let mut boss = user(
        "BMitchell",
        "Brandon",
        "Mitchell",
        "brandon.mitchell@example.org",
    );
    boss["roles"] = json!([{"value": "caseworker"}]);
    let mut report = user("SStudent", "Sam", "Student", "sam.student@example.org");
    report[ENTERPRISE] = json!({"manager": {"value": "bulkId:boss"}});
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "boss", "data": boss},
            {"method": "POST", "path": "/Users", "bulkId": "report", "data": report},
            {"method": "PATCH", "path": format!("/Users/{nh}"),
             "data": ops(vec![json!({"op": "add", "path": "roles", "value": [{"value": "nobody-role"}]})])},
        ],
    });
    let r = f.send("POST", "/Bulk", &bulk);
    let results = r.body["Operations"].as_array().unwrap().clone();
    assert_eq!(results[0]["status"], "201", "{}", r.body);
    assert_eq!(results[1]["status"], "201", "{}", r.body);
    assert_eq!(results[2]["status"], "400", "{}", r.body);
    assert!(
        results[2]["response"]["detail"]
            .as_str()
            .unwrap()
            .contains("nobody-role"),
        "{}",
        r.body
    );
    let ss = f.id_of("Users", "userName eq \"SStudent\"");
    let read = f.get(&format!("/Users/{ss}")).body;
    assert_eq!(
        read[ENTERPRISE]["manager"]["displayName"], "BMitchell",
        "{read}"
    );

    // Hostile input: each a 400 naming the attribute, and nothing changes.
    let before = f.get(&path).body;
    let manager_path = format!("{ENTERPRISE}:manager");
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"op": "add", "path": "roles", "value": [{"value": "superadmin"}]}),
            "roles: `superadmin` is not a role of the catalog: use public-viewer, individual",
        ),
        (
            json!({"op": "add", "path": "entitlements", "value": [{"value": "dashboards:caseload"}]}),
            "entitlements: `dashboards:caseload`: `dashboards` is not an entitlement kind: the server knows none; give it a roster whose policy lists `entitlements` (roster serve --roster)",
        ),
        (
            json!({"op": "add", "path": "entitlements", "value": [{"value": "webcenter"}]}),
            "entitlements value `webcenter` is not KIND:VALUE; write the catalog and the grant, e.g. products:webcenter",
        ),
        (
            json!({"op": "add", "path": "entitlements", "value": [{"value": "products:x", "type": "coverage"}]}),
            "entitlements.type `coverage` differs from the kind `products`",
        ),
        (
            json!({"op": "replace", "path": manager_path, "value": {"value": nh}}),
            "manager: a User cannot be its own manager; give another User's id",
        ),
        (
            json!({"op": "replace", "path": manager_path, "value": {"value": "999999"}}),
            "manager: no User has id `999999`; give the id of an existing User",
        ),
        (
            json!({"op": "replace", "path": manager_path, "value": {"value": "MMcCray"}}),
            "manager: no User has id `MMcCray`",
        ),
        (
            json!({"op": "replace", "path": manager_path, "value": "MMcCray"}),
            "manager must be an object",
        ),
    ];
    for (op, want) in &cases {
        let r = f.send("PATCH", &path, &ops(vec![op.clone()]));
        assert_eq!(r.status, 400, "{op}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue", "{op}");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(want), "{op}: {detail}");
    }
    let mut whole = f.get(&path).body;
    whole[ENTERPRISE] = json!({"manager": {"value": nh}});
    let r = f.send("PUT", &path, &whole);
    assert_eq!(r.status, 400, "{}", r.body);
    let mut fresh = user("Hostile", "Hos", "Tile", "hostile@example.org");
    fresh[ENTERPRISE] = json!({"manager": {"value": "999999"}});
    let r = f.send("POST", "/Users", &fresh);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains("manager"),
        "{}",
        r.body
    );
    assert!(f.names("userName eq \"Hostile\"").is_empty());
    let mut after = f.get(&path).body;
    let mut before = before;
    after.as_object_mut().unwrap().remove("meta");
    before.as_object_mut().unwrap().remove("meta");
    assert_eq!(after, before);

    // A scoped token does not see a manager outside its groups.
    let legacy = "Legacy Pilot Group";
    let jj = f.id_of("Users", "userName eq \"JJones\"");
    let dw = f.id_of("Users", "userName eq \"DWhitfield\"");
    let r = f.send(
        "PATCH",
        &format!("/Users/{jj}"),
        &ops(vec![
            json!({"op": "replace", "path": manager_path, "value": {"value": dw}}),
        ]),
    );
    assert_eq!(
        r.body[ENTERPRISE]["manager"]["displayName"], "DWhitfield",
        "{}",
        r.body
    );
    let token = f.scoped("legacy-cm", &[legacy]);
    let seen = http(
        "GET",
        &f.url(&format!("/Users/{jj}")),
        Some(&token),
        None,
        &[],
    );
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert!(seen.body.get(ENTERPRISE).is_none(), "{}", seen.body);
    assert!(
        !seen.body.to_string().contains("DWhitfield"),
        "{}",
        seen.body
    );

    // Audited as the plan's ops are, and the chain verifies.
    let log = ok_in(f.r.path(), &["log", "--store", f.db(), "--format", "json"]).stdout;
    let rows: Vec<Value> = serde_json::from_str(&log).unwrap();
    let ops_seen: Vec<&str> = rows.iter().filter_map(|r| r["op"].as_str()).collect();
    for op in [
        "grant_role",
        "revoke_role",
        "grant_entitlement",
        "revoke_entitlement",
        "set_case_manager",
    ] {
        assert!(ops_seen.contains(&op), "{op}: {ops_seen:?}");
    }
    ok_in(f.r.path(), &["log", "--store", f.db(), "--verify"]);
}

/// `signIn: "sso"` in roster's User extension creates the account active
/// with no password and no invitation, as `sign_in: sso` in a roster does;
/// `invite` or no `signIn` invites as before; anything else is refused.
fn sso_users_are_created_without_an_invitation(b: Backend) {
    let f = Fixture::new(b);
    let mut sso = user("Sso.Hire", "Sam", "Hire", "sam.hire@example.org");
    sso[EXT]["signIn"] = json!("sso");
    let mut invited = user("Inv.Hire", "Ivy", "Hire", "ivy.hire@example.org");
    invited[EXT]["signIn"] = json!("invite");
    let plain = user("Plain.Hire", "Pia", "Hire", "pia.hire@example.org");
    for body in [&sso, &invited, &plain] {
        let r = f.send("POST", "/Users", body);
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(r.body.get(EXT).is_none_or(|e| e.get("signIn").is_none()));
    }
    for (value, password) in [
        (json!("password"), None),
        (json!("SSO"), None),
        (json!(""), None),
        (json!(true), None),
        (json!(["sso"]), None),
        (json!("sso"), Some("Correct-Horse-9")),
    ] {
        let mut body = user("Bad.Hire", "Bo", "Hire", "bo.hire@example.org");
        body[EXT]["signIn"] = value.clone();
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        let r = f.send("POST", "/Users", &body);
        assert_eq!(r.status, 400, "{value}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue", "{value}");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("{EXT}:signIn")), "{detail}");
        assert!(!detail.contains("Correct-Horse-9"), "{detail}");
    }
    assert!(f.names("userName eq \"Bad.Hire\"").is_empty());
    let out = ok_in(
        f.r.path(),
        &["invitations", "--store", f.db(), "--format", "json"],
    );
    assert!(!out.stdout.contains("Sso.Hire"), "{}", out.stdout);
    assert!(out.stdout.contains("Inv.Hire"), "{}", out.stdout);
    assert!(out.stdout.contains("Plain.Hire"), "{}", out.stdout);
    let out = ok_in(
        f.r.path(),
        &["accounts", "--store", f.db(), "--format", "json"],
    );
    let listed: Value = serde_json::from_str(&out.stdout).unwrap();
    let sign_in = |name: &str| {
        let a = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["user_name"] == name)
            .unwrap_or_else(|| panic!("{name}: {listed}"));
        (a["sign_in"].clone(), a["status"].clone())
    };
    assert_eq!(sign_in("Sso.Hire"), (json!("sso"), json!("active")));
    assert_eq!(sign_in("Inv.Hire"), (json!("invited"), json!("active")));
    assert_eq!(sign_in("Plain.Hire"), (json!("invited"), json!("active")));
}

on_every_store!(
    sso_users_are_created_without_an_invitation,
    roles_entitlements_and_managers_through_scim,
    writes_take_grants_from_the_roster_catalogs,
    spec9_plan_through_serve_is_the_plan_of_the_store_underneath,
    token_output_neutralizes_names,
    patch_refuses_unknown_and_read_only_paths,
    scopes_stored_as_names_become_ids,
    scoped_tokens_reach_only_people_already_in_their_groups,
    user_manager_grants_obey_the_policy,
    scopes_follow_the_group_not_its_name,
    ids_are_never_reused,
    a_created_user_answers_as_it_is_then_read,
    an_email_another_user_holds_is_refused_in_any_case,
    a_revoked_admin_token_is_refused_at_once_after_use,
    unreadable_scopes_fail_closed,
    nul_in_filters_and_writes_is_refused,
    writes_are_checked_like_roster_files,
    user_writes_keep_grants_within_the_policy,
    user_attributes_of_the_wrong_shape_are_refused,
    plan_through_serve_is_the_plan_of_the_store_underneath,
    tokens_are_shown_once_kept_as_digests_and_required,
    group_scoped_tokens_manage_only_their_groups_memberships,
    users_filter_sort_page_and_project,
    etags_guard_changes_and_patch_put_delete_are_audited,
    groups_members_and_bulk_with_references,
    two_servers_share_one_store,
    writes_arriving_together_land_or_fail_one_by_one,
    creates_of_one_token_arriving_together_refuse_only_the_clash,
    creates_arriving_together_refuse_names_and_emails_the_store_holds,
    batches_take_ids_in_commit_order_and_stop_at_a_revoke,
    a_rename_applies_through_the_scim_client,
);

/// What a listing returns, in order: userNames or displayNames.
fn listed(f: &Fixture, query: &str) -> Vec<String> {
    let r = f.get(query);
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.get("userName")
                .or_else(|| v.get("displayName"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Every attribute a filter or sortBy can name, on both stores: the same
/// answers in the same order.
#[test]
fn every_filter_and_sort_answers_alike_on_both_stores() {
    if super::pg::skipped() {
        return;
    }
    const GEXT: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:Group";
    let users = [
        "id eq \"1\"",
        "externalId pr",
        "externalId co \"X_\"",
        "meta.created gt \"2000-01-01T00:00:00Z\"",
        "meta.lastModified ge \"2000\"",
        "userName co \"a\"",
        "userName ew \"S\"",
        "displayName pr",
        "displayName eq \"the rep\"",
        "name.givenName sw \"j\"",
        "name.familyName gt \"m\"",
        "active eq true",
        "active ne false",
        "not (active eq true) or userName lt \"m\"",
        "emails pr",
        "emails.value co \"@\"",
        "emails.type eq \"work\"",
        "emails.primary eq true",
        "emails[primary eq true and value ew \".org\"]",
        "phoneNumbers pr",
        "phoneNumbers.type eq \"work\"",
        "roles eq \"individual\"",
        "groups pr",
        "groups eq \"1\"",
        "groups.display sw \"a\"",
        "groups[display co \"group\"]",
        "userName eq null",
        "displayName ne null",
    ];
    let users = users.iter().map(|f| f.to_string()).chain(
        [
            "birthDate gt \"1980\"",
            "postalCode pr",
            "phoneExtension pr",
        ]
        .iter()
        .map(|f| format!("{EXT}:{f}")),
    );
    let groups = [
        "id eq \"2\"",
        "displayName sw \"A\"",
        "displayName co \"_\"",
        "members pr",
        "members.display co \"j\"",
        "members[type eq \"User\"]",
        "externalId eq \"x\"",
        "meta.lastModified gt \"2000\"",
    ]
    .iter()
    .map(|f| f.to_string())
    .chain(
        [
            "type eq \"project\"",
            "lwia gt 5",
            "lwia ge 1.5",
            "lwia pr",
            "userManagers pr",
            "userManagers.display sw \"J\"",
            "userManagers[value eq \"1\"]",
        ]
        .iter()
        .map(|f| format!("{GEXT}:{f}")),
    );
    let mut queries: Vec<String> = users
        .map(|f| format!("/Users?count=100&filter={}", encode(&f)))
        .chain(groups.map(|f| format!("/Groups?count=100&filter={}", encode(&f))))
        .collect();
    for (kind, sort) in [
        ("Users", "userName"),
        ("Users", "name.familyName"),
        ("Groups", "meta.created"),
        ("Users", "active"),
        ("Users", "emails.value"),
        ("Users", "displayName"),
        ("Users", "externalId"),
        ("Users", &format!("{EXT}:birthDate")),
        ("Groups", "displayName"),
        ("Groups", &format!("{GEXT}:lwia")),
    ] {
        for order in ["ascending", "descending"] {
            queries.push(format!(
                "/{kind}?count=7&startIndex=2&sortBy={}&sortOrder={order}",
                encode(sort)
            ));
        }
    }

    let answers = |b: Backend| {
        let f = Fixture::new(b);
        let mut u = user("XRep", "Xa", "Rep", "x.rep@example.org");
        u["externalId"] = json!("X_1%");
        u["displayName"] = json!("The Rep");
        assert_eq!(f.send("POST", "/Users", &u).status, 201);
        queries
            .iter()
            .map(|q| (q.clone(), listed(&f, q)))
            .collect::<Vec<_>>()
    };
    let sqlite = answers(Backend::Sqlite);
    let postgres = answers(Backend::Postgres);
    assert!(
        sqlite.iter().filter(|(_, a)| !a.is_empty()).count() > queries.len() / 2,
        "most queries should match something: {sqlite:#?}"
    );
    for (s, p) in sqlite.iter().zip(&postgres) {
        assert_eq!(s, p, "SQLite and PostgreSQL answer differently");
    }
}

/// The SCIM client store renames (`previously`) with a PATCH of
/// `userName`; the next plan through the service has nothing left to do.
fn a_rename_applies_through_the_scim_client(backend: Backend) {
    let f = Fixture::new(backend);
    let roster = |account: &str| {
        format!(
            "version: 1
policy:
  required_fields: []
groups:
  - name: Renamers
    members: [ann.bee@example.edu]
partners:
  - email: ann.bee@example.edu
    first_name: Ann
    last_name: Bee
{account}"
        )
    };
    let scim = format!("scim+{}", f.server.base);
    let write = |name: &str, text: String| std::fs::write(f.r.path().join(name), text).unwrap();
    let ops = |file: &str| -> Vec<String> {
        let out = through_serve(&f, &["plan", "--store", &scim, file, "--format", "json"]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        let plan: Value = serde_json::from_str(&out.stdout).unwrap();
        plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{} {}",
                    a["op"].as_str().unwrap(),
                    a["account"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    write("first.yaml", roster("    account: ABee\n"));
    let out = through_serve(&f, &["apply", "--yes", "--store", &scim, "first.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    write(
        "renamed.yaml",
        roster("    account: ABee2\n    previously: ABee\n"),
    );
    assert_eq!(ops("renamed.yaml"), ["rename_account ABee"]);
    let out = through_serve(&f, &["apply", "--yes", "--store", &scim, "renamed.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(ops("renamed.yaml"), Vec::<String>::new());
    // The store underneath holds the new name, in the group.
    let export = ok_in(f.r.path(), &["export", "--store", f.db()]).stdout;
    assert!(export.contains("account: ABee2"), "{export}");
    let log = ok_in(f.r.path(), &["log", "--store", f.db()]).stdout;
    assert!(log.contains("rename_account"), "{log}");
}

/// POST each `(token, body)` to `url` at once (one thread each, released
/// together); each answer with the User's name.
fn create_together(url: &str, creates: &[(&str, Value)]) -> Vec<(String, Resp)> {
    let start = std::sync::Barrier::new(creates.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = creates
            .iter()
            .map(|(token, body)| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let r = http("POST", url, Some(token), Some(body), &[]);
                    (body["userName"].as_str().unwrap().to_string(), r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every answer is 201, or 409 `uniqueness`.
fn created_or_taken(answers: &[(String, Resp)]) {
    for (n, r) in answers {
        assert!(
            matches!(r.status, 201 | 409),
            "{n}: {} {}",
            r.status,
            r.body
        );
        if r.status == 409 {
            assert_eq!(r.body["scimType"], "uniqueness", "{n}: {}", r.body);
        }
    }
}
