//! `roster serve` sets a User's password (`changePassword`): PUT and PATCH
//! `password`, hashed with Argon2id into the store, never answered, logged
//! or audited; refused when empty, taken out, or for an SSO account.

use super::activate::{self, Sql};
use super::serve::{self, http, seed};
use super::store::Backend;
use super::*;
use serde_json::json;

const EXT: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:User";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

const EMPTY: &str = "password: an empty password cannot be set; give the new password, \
     or leave out password to keep the current one";
const REMOVED: &str = "password: a password cannot be removed; replace it with a new one, \
     or set active to false so the User cannot sign in";

/// Every password a test sends: none may come back, in an answer, the
/// log or the audit rows.
const PASSWORDS: &[&str] = &[
    "First-Pass-0001",
    "Second-Pass-0002",
    "Third-Pass-0003",
    "Fourth-Pass-0004",
    "Fifth-Pass-0005",
    "Sixth-Pass-0006",
    "Sso-Pass-0007",
    "Scoped-Pass-0008",
    "Bulk-Pass-0009",
];

/// A served store seeded with the shipped live example; every answer kept.
struct Served {
    r: Roster,
    db: String,
    admin: String,
    server: activate::Server,
    answers: std::cell::RefCell<Vec<String>>,
}

impl Served {
    fn new(b: Backend) -> Self {
        let text = std::fs::read_to_string(repo("examples/worknet-live/roster.yaml")).unwrap();
        let r = roster().file("live.yaml", text);
        let (db, admin) = seed(&r, b, "live.yaml");
        let server = activate::start(r.path(), &db, &[]);
        Served {
            r,
            db,
            admin,
            server,
            answers: Default::default(),
        }
    }

    fn call(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> serve::Resp {
        let url = format!("{}/scim/v2{path}", self.server.base);
        let r = http(method, &url, Some(token), body, &[]);
        self.answers
            .borrow_mut()
            .push(format!("{} {:?} {}", r.status, r.etag, r.body));
        r
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> serve::Resp {
        self.call(method, path, &self.admin.clone(), Some(body))
    }

    fn get(&self, path: &str) -> serve::Resp {
        self.call("GET", path, &self.admin.clone(), None)
    }

    /// POST a User; its resource path.
    fn create(&self, name: &str, email: &str, extra: Value) -> String {
        let mut body = json!({
            "schemas": [USER, EXT],
            "userName": name,
            "name": {"givenName": "Pat", "familyName": name},
            "emails": [{"value": email, "type": "work"}],
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.send("POST", "/Users", &body);
        assert_eq!(r.status, 201, "{}", r.body);
        format!("/Users/{}", r.body["id"].as_str().unwrap())
    }

    /// The account's credential, password hash, activation digest and
    /// unsent mail, read in the store underneath.
    fn stored(&self, name: &str) -> (String, Option<String>, Option<String>, String) {
        let mut sql = Sql::open(self.r.path(), &self.db);
        let row = sql.row(&format!(
            "SELECT credential, password_hash, activation_digest, \
             (SELECT count(*) FROM outbox o WHERE o.account_id = a.id AND o.sent_at IS NULL) \
             FROM accounts a WHERE user_name = '{name}'"
        ));
        (
            row[0].clone().unwrap(),
            row[1].clone(),
            row[2].clone(),
            row[3].clone().unwrap(),
        )
    }

    /// The stored hash verifies `good` and none of `bad`.
    fn holds(&self, name: &str, good: &str, bad: &[&str]) {
        let (credential, hash, digest, unsent) = self.stored(name);
        assert_eq!(
            (credential.as_str(), digest, unsent.as_str()),
            ("password_set", None, "0")
        );
        let hash = hash.expect("a password hash");
        assert!(activate::verify(good, &hash), "{name}: not `{good}`");
        for b in bad {
            assert!(!activate::verify(b, &hash), "{name}: still `{b}`");
        }
    }

    fn audit(&self) -> Vec<Value> {
        let out = serve::ok_in(
            self.r.path(),
            &["log", "--store", &self.db, "--format", "json"],
        );
        for p in PASSWORDS {
            assert!(!out.stdout.contains(p), "the audit log holds `{p}`");
        }
        assert!(!out.stdout.contains("$argon2"), "{}", out.stdout);
        serde_json::from_value(serde_json::from_str(&out.stdout).unwrap()).unwrap()
    }

    /// No answer and no log line holds a password or a hash.
    fn nothing_shown(&self) {
        // The last request's log line: every earlier one is there too.
        self.get("/ResourceTypes");
        let log = self.server.log_with("/ResourceTypes");
        for text in self.answers.borrow().iter().chain([&log]) {
            for p in PASSWORDS {
                assert!(!text.contains(p), "`{p}` shown:\n{text}");
            }
            assert!(!text.contains("argon2"), "a hash shown:\n{text}");
            assert!(
                !text.to_lowercase().contains("\"password\""),
                "password returned:\n{text}"
            );
        }
    }
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

/// The ops of the set_password rows, as (subject, before, after).
fn set_password_rows(audit: &[Value]) -> Vec<(String, Value, Value)> {
    audit
        .iter()
        .filter(|e| e["op"] == "set_password")
        .map(|e| {
            (
                e["subject"].as_str().unwrap().to_string(),
                e["before"].clone(),
                e["after"].clone(),
            )
        })
        .collect()
}

/// A new password through PATCH (replace with a path, replace without
/// one, add) and PUT: the stored Argon2id hash verifies the new password
/// and no earlier one; a PUT without `password` keeps it; an invited
/// account's invitation stops; the ETag changes; one audit row each.
fn passwords_are_set_through_put_and_patch(b: Backend) {
    let f = Served::new(b);
    let config = f.get("/ServiceProviderConfig");
    assert_eq!(config.body["changePassword"]["supported"], true);

    let upath = f.create(
        "Pass.Word",
        "pass.word@example.org",
        json!({"password": PASSWORDS[0]}),
    );
    f.holds("Pass.Word", PASSWORDS[0], &[]);
    let before = f.get(&upath);
    // ETags cover the time of the last write, to the second.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let r = f.send(
        "PATCH",
        &upath,
        &patch(json!([{"op": "replace", "path": "password", "value": PASSWORDS[1]}])),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.etag, before.etag, "a new password is a new version");
    assert_eq!(f.get(&upath).etag, r.etag);
    f.holds("Pass.Word", PASSWORDS[1], &[PASSWORDS[0]]);

    // The If-Match of the version before the password changed is stale.
    let stale = http(
        "PATCH",
        &format!("{}/scim/v2{upath}", f.server.base),
        Some(&f.admin),
        Some(&patch(
            json!([{"op": "replace", "path": "password", "value": PASSWORDS[2]}]),
        )),
        &[("if-match", before.etag.as_deref().unwrap())],
    );
    assert_eq!(stale.status, 412, "{}", stale.body);
    f.holds("Pass.Word", PASSWORDS[1], &[PASSWORDS[2]]);

    let r = f.send(
        "PATCH",
        &upath,
        &patch(json!([{"op": "replace", "value": {"password": PASSWORDS[2]}}])),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    f.holds("Pass.Word", PASSWORDS[2], &[PASSWORDS[1], PASSWORDS[0]]);

    let r = f.send(
        "PATCH",
        &upath,
        &patch(json!([{"op": "add", "path": "password", "value": PASSWORDS[3]}])),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    f.holds("Pass.Word", PASSWORDS[3], &[PASSWORDS[2]]);

    // PUT with a password: set, with the other changes of the body.
    let mut whole = f.get(&upath).body;
    whole["name"]["givenName"] = json!("Patricia");
    whole["password"] = json!(PASSWORDS[4]);
    let r = f.send("PUT", &upath, &whole);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"]["givenName"], "Patricia");
    f.holds("Pass.Word", PASSWORDS[4], &[PASSWORDS[3]]);

    // PUT without a password (or with null): the password stays.
    let (_, hash, _, _) = f.stored("Pass.Word");
    let mut whole = f.get(&upath).body;
    whole["name"]["familyName"] = json!("Worden");
    let r = f.send("PUT", &upath, &whole);
    assert_eq!(r.status, 200, "{}", r.body);
    whole["password"] = Value::Null;
    whole["name"]["familyName"] = json!("Word");
    let r = f.send("PUT", &upath, &whole);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(f.stored("Pass.Word").1, hash);

    // An invited account: the password set, the invitation gone with its
    // token, so the link mailed stops working.
    let ipath = f.create("Inv.Ited", "inv.ited@example.org", json!({}));
    let (credential, hash, digest, unsent) = f.stored("Inv.Ited");
    assert_eq!(
        (credential.as_str(), hash, digest.is_some(), unsent.as_str()),
        ("invited", None, true, "1")
    );
    let r = f.send(
        "PATCH",
        &ipath,
        &patch(
            json!([{"op": "replace", "path": format!("{USER}:password"), "value": PASSWORDS[5]}]),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    f.holds("Inv.Ited", PASSWORDS[5], &[]);
    let out = serve::ok_in(
        f.r.path(),
        &["invitations", "--store", &f.db, "--format", "json"],
    );
    assert!(!out.stdout.contains("Inv.Ited"), "{}", out.stdout);

    // Through Bulk, as through PATCH.
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "PATCH", "path": upath, "data": patch(
            json!([{"op": "replace", "path": "password", "value": PASSWORDS[8]}]),
        )}],
    });
    let r = f.send("POST", "/Bulk", &bulk);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["Operations"][0]["status"], "200", "{}", r.body);
    f.holds("Pass.Word", PASSWORDS[8], &[PASSWORDS[4]]);

    let audit = f.audit();
    let set = json!({"credential": "password_set"});
    let rows = set_password_rows(&audit);
    let mut want: Vec<(String, Value, Value)> = (0..4)
        .map(|_| ("Pass.Word".to_string(), set.clone(), set.clone()))
        .collect();
    want.push((
        "Inv.Ited".to_string(),
        json!({"credential": "invited"}),
        set.clone(),
    ));
    want.push(("Pass.Word".to_string(), set.clone(), set.clone()));
    assert_eq!(rows, want);
    assert!(
        audit
            .iter()
            .filter(|e| e["op"] == "set_password")
            .all(|e| e["actor"] == "token:ci"),
        "{audit:?}"
    );
    serve::ok_in(f.r.path(), &["log", "--store", &f.db, "--verify"]);
    f.nothing_shown();
}

/// An empty password, a password taken out (remove, or set to null), one
/// that is not a string, one for an SSO account, and one sent with a
/// scoped token are each refused with what to do, and change nothing.
fn password_writes_are_refused(b: Backend) {
    let f = Served::new(b);
    let upath = f.create(
        "Keep.Pass",
        "keep.pass@example.org",
        json!({"password": PASSWORDS[0]}),
    );
    let (_, kept, _, _) = f.stored("Keep.Pass");
    let refused = |method: &str, path: &str, body: &Value, detail: &str| {
        let r = f.send(method, path, body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue", "{body}");
        assert_eq!(r.body["detail"], detail, "{body}");
    };
    let op = |op: &str, path: Option<&str>, value: Value| {
        let mut o = json!({"op": op, "value": value});
        if let Some(p) = path {
            o["path"] = json!(p);
        }
        patch(json!([o]))
    };
    refused(
        "PATCH",
        &upath,
        &op("replace", Some("password"), json!("")),
        EMPTY,
    );
    refused(
        "PATCH",
        &upath,
        &op("replace", None, json!({"password": ""})),
        EMPTY,
    );
    refused(
        "PATCH",
        &upath,
        &op("replace", None, json!({USER: {"password": ""}})),
        EMPTY,
    );
    refused(
        "PATCH",
        &upath,
        &patch(json!([{"op": "remove", "path": "password"}])),
        REMOVED,
    );
    refused(
        "PATCH",
        &upath,
        &op("replace", Some("password"), Value::Null),
        REMOVED,
    );
    refused(
        "PATCH",
        &upath,
        &op("add", Some("password"), json!(12345678)),
        "password must be a string: the new password",
    );
    let mut whole = f.get(&upath).body;
    whole["password"] = json!("");
    refused("PUT", &upath, &whole, EMPTY);
    whole["password"] = json!(["Sixth-Pass-0006"]);
    refused(
        "PUT",
        &upath,
        &whole,
        "password must be a string: the new password",
    );
    // A password with a change to the User: neither is written.
    let mut both = patch(json!([
        {"op": "replace", "path": "name.givenName", "value": "Changed"},
        {"op": "replace", "path": "password", "value": ""},
    ]));
    refused("PATCH", &upath, &both, EMPTY);
    both["Operations"][1] = json!({"op": "remove", "path": "password"});
    refused("PATCH", &upath, &both, REMOVED);
    assert_eq!(f.get(&upath).body["name"]["givenName"], "Pat");

    // An SSO account has no password to set.
    let spath = f.create(
        "Sso.Only",
        "sso.only@example.org",
        json!({EXT: {"signIn": "sso"}}),
    );
    let sso = "password: User `Sso.Only` signs in with single sign-on (SSO) and has no password \
               to set; leave out password";
    refused(
        "PATCH",
        &spath,
        &op("replace", Some("password"), json!(PASSWORDS[6])),
        sso,
    );
    let mut whole = f.get(&spath).body;
    whole["password"] = json!(PASSWORDS[6]);
    refused("PUT", &spath, &whole, sso);
    let (credential, hash, _, _) = f.stored("Sso.Only");
    assert_eq!((credential.as_str(), hash), ("none", None));

    // A token scoped to groups cannot change a User, its password least.
    let scoped = serve::ok_in(
        f.r.path(),
        &[
            "token",
            "create",
            "--name",
            "um",
            "--scope",
            "group:Legacy Pilot Group",
            "--store",
            &f.db,
        ],
    )
    .stdout
    .trim()
    .to_string();
    let r = f.call(
        "PATCH",
        &upath,
        &scoped,
        Some(&op("replace", Some("password"), json!(PASSWORDS[7]))),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.body["detail"],
        "this token manages group memberships only; changing a User needs an admin token"
    );
    // `password` has no sub-attributes and no values to filter.
    for (path, why) in [
        ("password.value", "invalidPath"),
        ("password[value eq \"x\"]", "noTarget"),
    ] {
        for o in ["remove", "replace"] {
            let r = f.send("PATCH", &upath, &op(o, Some(path), json!(PASSWORDS[7])));
            assert_eq!(
                (r.status, r.body["scimType"].as_str()),
                (400, Some(why)),
                "{o} {path}: {}",
                r.body
            );
        }
    }
    // A Group has no password.
    let groups = f.get("/Groups?count=1").body;
    let gpath = format!("/Groups/{}", groups["Resources"][0]["id"].as_str().unwrap());
    let r = f.send(
        "PATCH",
        &gpath,
        &op("replace", Some("password"), json!(PASSWORDS[7])),
    );
    assert_eq!(
        (r.status, r.body["scimType"].as_str()),
        (400, Some("invalidPath"))
    );

    // Nor can a listing test, sort by or show it.
    let pct = |s: &str| s.replace(' ', "%20").replace('"', "%22");
    for query in [
        pct(&format!("filter=password eq \"{}\"", PASSWORDS[0])),
        pct("filter=password pr"),
        "sortBy=password".to_string(),
    ] {
        let r = f.get(&format!("/Users?{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.body);
    }
    let r = f.get("/Users?attributes=userName,password");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["Resources"][0].get("password").is_none());

    assert_eq!(f.stored("Keep.Pass").1, kept);
    f.holds("Keep.Pass", PASSWORDS[0], &[]);
    assert!(set_password_rows(&f.audit()).is_empty());
    f.nothing_shown();
}

on_every_store!(
    passwords_are_set_through_put_and_patch,
    password_writes_are_refused,
);
