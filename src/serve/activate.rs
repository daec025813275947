//! The activation page (SPEC §10): `GET /activate?token=…` shows a form
//! where the person an invitation, reminder or password reset was mailed to
//! sets a password; `POST /activate` sets it.
//!
//! People reach it from a mailed link, so it needs no bearer token: the
//! one-time token is the secret, carried by the link and then by the form.
//! The page is plain HTML with no script; every answer forbids caching,
//! framing and referrers. A POST from another site is refused (`Origin`,
//! `Sec-Fetch-Site`). Refused tokens (unknown, used, expired, of a
//! deactivated account) get one page, and count against a budget per client
//! address and minute, beyond which the page answers that client 429 until
//! the minute is over; Argon2id hashes run a few at a time. Nothing of the token or
//! the password reaches the log: the request log shows the path and the
//! query's parameter names only.

use super::net::Peer;
use super::{Shared, pool::Permit};
use crate::store::{TokenHolder, TokenLookup, TokenRefused};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where the page lives.
pub const PATH: &str = "/activate";

/// The largest form accepted (a token and two passwords fit many times).
pub const MAX_FORM: usize = 16 * 1024;

/// Refused tokens a client address gets per minute before it gets 429.
pub const REFUSED_PER_MINUTE: u32 = 60;

/// Argon2id hashes computed at once (each takes tens of milliseconds and
/// about 19 MiB).
const HASHES_AT_ONCE: usize = 2;

/// The shortest password, in characters.
pub const MIN_LEN: usize = 12;
/// The longest password, in characters.
pub const MAX_LEN: usize = 256;

/// The audit actor of activations.
const ACTOR: &str = "activation-page";

/// Clients whose refused tokens are counted at once; past it, the counts
/// start over (a flood of addresses cannot grow the table).
const CLIENTS_MAX: usize = 10_000;

/// The page's state in the server: how long tokens live, and the limits.
pub struct Page {
    pub ttl: Duration,
    /// Refused tokens this minute (since the instant), by client address.
    refused: Mutex<(Instant, HashMap<Option<IpAddr>, u32>)>,
    hashes: tokio::sync::Semaphore,
}

impl Page {
    pub fn new(ttl: Duration) -> Self {
        Page {
            ttl,
            refused: Mutex::new((Instant::now(), HashMap::new())),
            hashes: tokio::sync::Semaphore::new(HASHES_AT_ONCE),
        }
    }

    /// Whether this client's budget of refused tokens for this minute is
    /// spent.
    fn spent(&self, client: Option<IpAddr>) -> bool {
        let mut r = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if r.0.elapsed() >= Duration::from_secs(60) {
            *r = (Instant::now(), HashMap::new());
        }
        r.1.get(&client).is_some_and(|n| *n >= REFUSED_PER_MINUTE)
    }

    fn count_refused(&self, client: Option<IpAddr>) {
        let mut r = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if r.1.len() >= CLIENTS_MAX && !r.1.contains_key(&client) {
            r.1.clear();
        }
        let n = r.1.entry(client).or_default();
        *n = n.saturating_add(1);
    }
}

/// What the page says about a password: each rule it breaks, in plain words.
pub fn rule_broken(password: &str, confirm: &str, holder: &TokenHolder) -> Vec<String> {
    let mut out = Vec::new();
    let len = password.chars().count();
    if len < MIN_LEN {
        out.push(format!(
            "The password has {len} characters; it needs at least {MIN_LEN}."
        ));
    }
    if len > MAX_LEN {
        out.push(format!(
            "The password has {len} characters; it may have at most {MAX_LEN}."
        ));
    }
    let lower = password.to_lowercase();
    let user = holder.user_name.to_lowercase();
    if user.chars().count() >= 3 && lower.contains(&user) {
        out.push("The password contains your user name; leave it out.".into());
    }
    let local = holder.email.split('@').next().unwrap_or("").to_lowercase();
    if local.chars().count() >= 3 && local != user && lower.contains(&local) {
        out.push(
            "The password contains your email address (the part before the @); leave it out."
                .into(),
        );
    }
    let kinds = [
        password.chars().any(char::is_lowercase),
        password.chars().any(char::is_uppercase),
        password.chars().any(|c| c.is_ascii_digit()),
        password
            .chars()
            .any(|c| !c.is_lowercase() && !c.is_uppercase() && !c.is_ascii_digit()),
    ];
    if len > 0 && kinds.iter().filter(|k| **k).count() < 2 {
        out.push(
            "The password uses one kind of character only; mix at least two of: \
             lower-case letters, capital letters, digits, other characters (spaces, symbols)."
                .into(),
        );
    }
    if password != confirm {
        out.push("The two passwords differ; type the same password in both fields.".into());
    }
    out
}

/// The rule as the page states it.
const RULE: &str = "Your password needs at least 12 characters, must not contain your user \
                    name or your email address, and must mix at least two kinds of characters: \
                    lower-case letters, capital letters, digits, other characters (spaces, symbols). \
                    A few words with a digit or a space between them make a good one.";

/// `s` safe inside HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;padding:1rem;\
color:#1a1a1a;background:#fff}main{max-width:32rem;margin:0 auto}h1{font-size:1.5rem}\
label{display:block;font-weight:600;margin-top:1rem}\
input{box-sizing:border-box;width:100%;font-size:1rem;padding:.6rem;border:2px solid #555;border-radius:4px}\
input:focus{outline:3px solid #1d4ed8;outline-offset:1px}\
button{margin-top:1.5rem;font-size:1rem;padding:.7rem 1.4rem;background:#1d4ed8;color:#fff;border:0;border-radius:4px}\
.errors{border:2px solid #b91c1c;padding:.5rem 1rem;margin:1rem 0}.errors h2{font-size:1.1rem;color:#b91c1c;margin:.3rem 0}";

/// The Content-Security-Policy: no script at all, the one inline style
/// by its hash, forms posted back here only, never in a frame.
static CSP: LazyLock<String> = LazyLock::new(|| {
    use sha2::Digest;
    let hash = data_encoding::BASE64.encode(&sha2::Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
});

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n{body}</main>\n</body>\n</html>\n",
        escape(title),
        escape(title)
    );
    let mut r = (status, page).into_response();
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(name, v);
        }
    };
    set(h, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::CONTENT_SECURITY_POLICY, &CSP);
    r
}

/// The form, with the errors of the last try if any.
pub fn form_page(token: &str, holder: &TokenHolder, errors: &[String]) -> Response {
    let mut body = String::new();
    let greeting = if holder.first_name.trim().is_empty() {
        "Hello.".to_string()
    } else {
        format!("Hello {}.", escape(&holder.first_name))
    };
    body.push_str(&format!(
        "<p>{greeting} Choose a password for your account <strong>{}</strong>.</p>\n",
        escape(&holder.user_name)
    ));
    if !errors.is_empty() {
        body.push_str(
            "<div class=\"errors\" role=\"alert\" id=\"errors\">\n\
             <h2>The password was not set</h2>\n<ul>\n",
        );
        for e in errors {
            body.push_str(&format!("<li>{}</li>\n", escape(e)));
        }
        body.push_str("</ul>\n</div>\n");
    }
    body.push_str(&format!(
        "<p id=\"rule\">{RULE}</p>\n\
         <form method=\"post\" action=\"{PATH}\">\n\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\n\
         <input type=\"text\" name=\"username\" value=\"{}\" autocomplete=\"username\" hidden readonly>\n\
         <label for=\"password\">New password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" \
         required minlength=\"{MIN_LEN}\" maxlength=\"{MAX_LEN}\" aria-describedby=\"rule\">\n\
         <label for=\"confirm\">The same password again</label>\n\
         <input id=\"confirm\" name=\"confirm\" type=\"password\" autocomplete=\"new-password\" \
         required minlength=\"{MIN_LEN}\" maxlength=\"{MAX_LEN}\">\n\
         <button type=\"submit\">Set password</button>\n</form>\n",
        escape(token),
        escape(&holder.user_name)
    ));
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    html(status, "Set your password", &body)
}

/// The one page for every token that opens nothing.
pub fn refused_page() -> Response {
    html(
        StatusCode::GONE,
        "This link no longer works",
        "<p>This link has expired, has been used already, or is not valid. \
         Links work once, and only for a limited time.</p>\n\
         <p>If you have not set your password yet, or need to change it, ask your \
         administrator for a new invitation or a password reset; it comes with a new link.</p>\n",
    )
}

fn done_page(holder: &TokenHolder) -> Response {
    html(
        StatusCode::OK,
        "Your password is set",
        &format!(
            "<p>You can now sign in as <strong>{}</strong> with your new password.</p>\n\
             <p>The link you used no longer works.</p>\n",
            escape(&holder.user_name)
        ),
    )
}

fn error_page(status: StatusCode, title: &str, text: &str) -> Response {
    html(status, title, &format!("<p>{}</p>\n", escape(text)))
}

fn busy_page() -> Response {
    let mut r = error_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        "This page has refused too many links from your address in the last minute. Wait a \
         minute, then open the link from your mail again.",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    r
}

fn failed_page() -> Response {
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Your password was not set because of a problem on our side. Try again in a few \
         minutes; if it keeps happening, tell your administrator.",
    )
}

/// A token as links carry it: `secrets::token`'s 64 hex characters. Anything
/// else cannot be one, and costs no look-up.
fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The value of `name` in a form or query string.
fn field(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn pairs(data: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether a POST comes from another site: its browser says so
/// (`Sec-Fetch-Site` other than `same-origin`), or its `Origin` is not this
/// server's. Pages sent with `Referrer-Policy: no-referrer` make browsers
/// send `Origin: null` with their own forms: that is taken only with
/// `Sec-Fetch-Site: same-origin`.
pub fn cross_site(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let site = get("sec-fetch-site").map(str::to_ascii_lowercase);
    if site
        .as_deref()
        .is_some_and(|s| s != "same-origin" && s != "none")
    {
        return true;
    }
    let Some(origin) = get("origin") else {
        return false;
    };
    if origin == "null" {
        return site.as_deref() != Some("same-origin");
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match (authority, get("host")) {
        (Some(a), Some(host)) => !a.eq_ignore_ascii_case(host),
        _ => true,
    }
}

/// Look the token up (blocking pool; a connection slot of the server's
/// pool held meanwhile).
async fn lookup(config: &Shared, page_ttl: Duration, token: &str) -> Result<TokenLookup, Response> {
    let permit: Permit = config.pool.permit().await.map_err(|_| busy_store())?;
    let store = config.store.clone();
    let digest = crate::secrets::sha256(token.as_bytes());
    let found = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        store
            .reader()?
            .token_holder(&digest, page_ttl, &crate::store::now())
    })
    .await;
    match found {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "activation: the store failed");
            Err(failed_page())
        }
        Err(_) => Err(failed_page()),
    }
}

fn busy_store() -> Response {
    let mut r = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The server is busy",
        "The server is busy right now. Wait a moment, then try again.",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

fn refused(page: &Page, client: Option<IpAddr>, why: TokenRefused) -> Response {
    page.count_refused(client);
    tracing::info!(reason = why.as_str(), "activation: token refused");
    refused_page()
}

/// `GET /activate?token=…`
pub async fn show(
    State(config): State<Shared>,
    peer: Option<Extension<Peer>>,
    RawQuery(query): RawQuery,
) -> Response {
    let client = peer.map(|p| p.0.0);
    let Some(page) = config.activation.as_ref() else {
        return refused_page();
    };
    if page.spent(client) {
        return busy_page();
    }
    let token = field(&pairs(query.unwrap_or_default().as_bytes()), "token").unwrap_or_default();
    if !well_formed(&token) {
        return refused(page, client, TokenRefused::Unknown);
    }
    match lookup(&config, page.ttl, &token).await {
        Ok(Ok(holder)) => form_page(&token, &holder, &[]),
        Ok(Err(why)) => refused(page, client, why),
        Err(r) => r,
    }
}

/// `POST /activate` (form: token, password, confirm).
pub async fn submit(
    State(config): State<Shared>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = peer.map(|p| p.0.0);
    let Some(page) = config.activation.as_ref() else {
        return refused_page();
    };
    if cross_site(&headers) {
        let shown = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(crate::report::printable)
                .unwrap_or_default()
                .to_string()
        };
        tracing::info!(
            origin = %shown("origin"),
            sec_fetch_site = %shown("sec-fetch-site"),
            "activation: a form posted from another site refused"
        );
        return error_page(
            StatusCode::FORBIDDEN,
            "Not accepted",
            "This form was sent from another web site. Open the link from your mail and \
             set your password on this page.",
        );
    }
    if body.len() > MAX_FORM {
        return error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Not accepted",
            "The form sent is larger than this page accepts.",
        );
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return error_page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Not accepted",
            "Send the form as application/x-www-form-urlencoded, as the page does.",
        );
    }
    if page.spent(client) {
        return busy_page();
    }
    let form = pairs(&body);
    let token = field(&form, "token").unwrap_or_default();
    if !well_formed(&token) {
        return refused(page, client, TokenRefused::Unknown);
    }
    let holder = match lookup(&config, page.ttl, &token).await {
        Ok(Ok(holder)) => holder,
        Ok(Err(why)) => return refused(page, client, why),
        Err(r) => return r,
    };
    let password = field(&form, "password").unwrap_or_default();
    let confirm = field(&form, "confirm").unwrap_or_default();
    let errors = rule_broken(&password, &confirm, &holder);
    if !errors.is_empty() {
        return form_page(&token, &holder, &errors);
    }
    let Ok(_hashing) = page.hashes.acquire().await else {
        return failed_page();
    };
    let shared = config.clone();
    let ttl = page.ttl;
    // `None`: failed, and logged.
    let done = tokio::task::spawn_blocking(move || {
        let hash = crate::secrets::hash_password(&password)
            .map_err(|e| tracing::error!(error = %e, "activation: cannot hash"))
            .ok()?;
        let digest = crate::secrets::sha256(token.as_bytes());
        shared
            .writes
            .write_alone(shared.store.as_ref(), ACTOR, |s| {
                Ok(s.activate(&digest, &hash, ttl)?)
            })
            .map_err(|e| {
                tracing::error!(status = e.status.as_u16(), "activation: the write failed");
            })
            .ok()
    })
    .await;
    match done {
        Ok(Some(Ok(holder))) => {
            tracing::info!(reset = holder.reset, "activation: password set");
            done_page(&holder)
        }
        Ok(Some(Err(why))) => refused(page, client, why),
        Ok(None) | Err(_) => failed_page(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> TokenHolder {
        TokenHolder {
            user_name: "ann.lee".into(),
            first_name: "Ann".into(),
            email: "annie@example.org".into(),
            reset: false,
        }
    }

    #[test]
    fn the_rule_names_each_thing_wrong() {
        let ok = "correct horse 7 battery";
        assert!(rule_broken(ok, ok, &ann()).is_empty());
        assert!(rule_broken("Tr0ub4dor&3x", "Tr0ub4dor&3x", &ann()).is_empty());
        let e = rule_broken("short1A", "short1A", &ann());
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("7 characters"), "{e:?}");
        let e = rule_broken("abcdefghijklmnop", "abcdefghijklmnop", &ann());
        assert!(e[0].contains("one kind"), "{e:?}");
        let e = rule_broken("123456789012345", "123456789012345", &ann());
        assert!(e[0].contains("one kind"), "{e:?}");
        let e = rule_broken("my-ANN.LEE-2026!", "my-ANN.LEE-2026!", &ann());
        assert!(e[0].contains("user name"), "{e:?}");
        let e = rule_broken("xx annie 2026 yy", "xx annie 2026 yy", &ann());
        assert!(e[0].contains("email"), "{e:?}");
        let e = rule_broken(ok, "correct horse 7 batterY", &ann());
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("differ"), "{e:?}");
        let long = "a1".repeat(200);
        assert!(rule_broken(&long, &long, &ann())[0].contains("at most 256"));
        // Characters, not bytes: twelve accented letters and a digit pass.
        let accented = "éééééééééééé1";
        assert!(rule_broken(accented, accented, &ann()).is_empty());
    }

    #[test]
    fn form_pages_forbid_caching_framing_and_scripts() {
        let mut h = ann();
        h.first_name = "<script>x</script>".into();
        h.user_name = "a\"b".into();
        let errors = vec!["The password <b>".to_string()];
        let r = form_page(&"a".repeat(64), &h, &errors);
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let h = r.headers();
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(!csp.contains("script-src"), "{csp}");
    }

    #[test]
    fn each_client_has_its_own_budget_of_refused_tokens() {
        let page = Page::new(Duration::from_secs(60));
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..REFUSED_PER_MINUTE {
            assert!(!page.spent(a));
            page.count_refused(a);
        }
        assert!(page.spent(a));
        assert!(!page.spent(b));
        assert!(!page.spent(None));
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            !cross_site(&h),
            "no Origin: a same-site form of an old browser"
        );
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(!cross_site(&h));
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(cross_site(&h));
        h.insert("origin", HeaderValue::from_static("null"));
        assert!(cross_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(!cross_site(&h), "a no-referrer page's own form");
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(cross_site(&h));
        h.remove("sec-fetch-site");
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8080"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(!cross_site(&h));
    }

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        assert!(well_formed(&"0a".repeat(32)));
        assert!(!well_formed(&"0a".repeat(31)));
        assert!(!well_formed(&format!("{}zz", "0a".repeat(31))));
    }
}
