//! HTTP for the SCIM store: one keep-alive client, its requests counted,
//! bounded concurrency, and retries with backoff on 429/503 and refused
//! connections.
//!
//! Errors never carry the bearer token or a request's query string (filters
//! hold emails and birth dates): a request is named by its method and path.
//!
//! A provider is not trusted further than its answers: redirects are followed
//! only within the provider's origin (the token goes nowhere else), no
//! `Referer` is sent, and an answer's body is read up to [`MAX_BODY`] bytes.

use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where the bearer token comes from.
pub const TOKEN_VAR: &str = "ROSTER_SCIM_TOKEN";

/// Requests in flight at once: enough to hide latency, few enough not to
/// trip a provider's rate limit.
pub const IN_FLIGHT: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per request when the provider asks to slow down or is unavailable.
const ATTEMPTS: u32 = 6;
/// A refused connection is retried less: a provider that is down stays down.
const CONNECT_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between two tries, whatever Retry-After says.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Largest answer read: a page of 1,000 groups with their members fits
/// with room to spare; a provider streaming without end is cut off here.
pub const MAX_BODY: u64 = 32 * 1024 * 1024;
/// Redirects followed within the provider's origin.
const MAX_REDIRECTS: usize = 5;

/// What went wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The provider could not be reached.
    Connect(String),
    /// 401 or 403.
    Auth { status: u16 },
    /// Any other answer outside 2xx, with the SCIM error's `detail`.
    Status { status: u16, detail: Option<String> },
    /// A 2xx answer whose body is not JSON.
    NotJson { status: u16 },
    /// Timed out or broke off after sending.
    Transport(String),
    /// A redirect to another origin (or one too many), not followed.
    Redirect { status: u16, to: String },
    /// An answer longer than [`MAX_BODY`].
    TooLarge,
}

impl Failure {
    /// The failure as a sentence, for a request named `what` (`GET /Users`).
    pub fn describe(&self, what: &str, base: &str) -> String {
        match self {
            Failure::Connect(cause) => {
                format!("cannot connect to {base} ({cause}); is the SCIM provider running there?")
            }
            Failure::Auth { status } => {
                let (says, fix) = match std::env::var_os(TOKEN_VAR) {
                    Some(v) if !v.is_empty() => ("refused the bearer token", "check"),
                    _ => ("wants a bearer token", "set"),
                };
                format!("{what}: HTTP {status}: the provider {says}; {fix} {TOKEN_VAR}")
            }
            Failure::Status { status, detail } => match detail {
                Some(d) => format!("{what}: HTTP {status}: {d}"),
                None => format!("{what}: HTTP {status}"),
            },
            Failure::NotJson { status } => {
                format!(
                    "{what}: HTTP {status} with a body that is not JSON; is {base} a SCIM endpoint?"
                )
            }
            Failure::Transport(cause) => format!("{what}: {cause}"),
            Failure::Redirect { status, to } => format!(
                "{what}: HTTP {status} redirects to {to}, which roster does not follow (the bearer token goes only to {base}); give the provider's own address in the store URL"
            ),
            Failure::TooLarge => format!(
                "{what}: the answer is longer than {} MiB, more than roster reads from a provider; is {base} a SCIM endpoint?",
                MAX_BODY / (1024 * 1024)
            ),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Auth { status }
            | Failure::Status { status, .. }
            | Failure::NotJson { status }
            | Failure::Redirect { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A 2xx answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub etag: Option<String>,
    pub body: Option<Value>,
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path under the base URL, with its query string.
    pub path: String,
    pub body: Option<Value>,
    pub if_match: Option<String>,
}

impl Request {
    pub fn get(path: String) -> Self {
        Request {
            method: Method::GET,
            path,
            body: None,
            if_match: None,
        }
    }

    pub fn with_body(method: Method, path: String, body: Value) -> Self {
        Request {
            method,
            path,
            body: Some(body),
            if_match: None,
        }
    }

    /// `GET /Users`: the method and the path without the query.
    pub fn what(&self) -> String {
        let path = self.path.split('?').next().unwrap_or_default();
        format!("{} {path}", self.method)
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `http://host:port/path`, without a trailing slash.
    pub base: Arc<str>,
    token: Option<Arc<str>>,
    /// Every request this client and its clones sent, retries included.
    sent: Arc<AtomicU64>,
}

/// Percent-encode everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, RESERVED).to_string()
}

/// The deepest cause of an error: "Connection refused (os error 111)"
/// rather than "error sending request".
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// How long Retry-After asks to wait: seconds, or an HTTP date.
pub fn retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The body, chunk by chunk, refused once it passes [`MAX_BODY`].
async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, (Failure, Option<Duration>)> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY) {
        return Err((Failure::TooLarge, None));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| (Failure::Transport(cause(&e.without_url())), None))?
    {
        if (bytes.len() + chunk.len()) as u64 > MAX_BODY {
            return Err((Failure::TooLarge, None));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

impl Client {
    pub fn new(base: &str) -> Result<Self, String> {
        // The ring provider; a second install (tests, serve) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == attempt.url().origin());
                if same && attempt.previous().len() <= MAX_REDIRECTS {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .referer(false)
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(IN_FLIGHT)
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up an HTTP client: {}", cause(&e)))?;
        let token = std::env::var(TOKEN_VAR)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(Arc::from);
        Ok(Client {
            http,
            base: Arc::from(base.trim_end_matches('/')),
            token,
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Requests sent so far by this client and its clones, retries included.
    pub fn requests(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Send one request, retrying what may succeed later.
    pub async fn send(&self, req: &Request) -> Result<Answer, Failure> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = match self.once(req).await {
                Ok(a) => return Ok(a),
                Err((Failure::Connect(c), _)) => {
                    if attempt >= CONNECT_ATTEMPTS {
                        return Err(Failure::Connect(c));
                    }
                    backoff
                }
                Err((Failure::Status { status, .. }, after))
                    if (status == 429 || status == 503) && attempt < ATTEMPTS =>
                {
                    after.unwrap_or(backoff)
                }
                Err((f, _)) => return Err(f),
            };
            tokio::time::sleep(wait.min(MAX_WAIT)).await;
            backoff = (backoff * 2).min(MAX_WAIT);
        }
    }

    /// One try; a failure comes with the wait its Retry-After asks for.
    async fn once(&self, req: &Request) -> Result<Answer, (Failure, Option<Duration>)> {
        let url = format!("{}{}", self.base, req.path);
        let mut b = self
            .http
            .request(req.method.clone(), url)
            .header("Accept", "application/scim+json, application/json");
        if let Some(t) = &self.token {
            b = b.bearer_auth(t);
        }
        if let Some(body) = &req.body {
            b = b
                .header("Content-Type", "application/scim+json")
                .body(body.to_string());
        }
        if let Some(etag) = &req.if_match {
            b = b.header("If-Match", etag.as_str());
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        let resp = b.send().await.map_err(|e| {
            let e = e.without_url();
            let f = if e.is_connect() {
                Failure::Connect(cause(&e))
            } else {
                Failure::Transport(cause(&e))
            };
            (f, None)
        })?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header("etag");
        let after = header("retry-after").and_then(|v| retry_after(&v, jiff::Timestamp::now()));
        if (300..400).contains(&status) {
            // Only the origin: the rest of the address may hold anything.
            let to = header("location")
                .and_then(|l| resp.url().join(&l).ok())
                .map(|u| crate::report::printable(&u.origin().ascii_serialization()).into_owned())
                .unwrap_or_else(|| "an address it does not give".into());
            return Err((Failure::Redirect { status, to }, None));
        }
        let bytes = read_body(resp).await?;
        let body: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => Some(v),
                Err(_) if (200..300).contains(&status) => {
                    return Err((Failure::NotJson { status }, None));
                }
                Err(_) => None,
            }
        };
        match status {
            200..=299 => Ok(Answer { etag, body }),
            401 | 403 => Err((Failure::Auth { status }, None)),
            _ => {
                let detail = body
                    .as_ref()
                    .and_then(|b| b.get("detail"))
                    .and_then(Value::as_str)
                    .map(|d| {
                        crate::report::printable(&d.chars().take(300).collect::<String>())
                            .into_owned()
                    });
                Err((Failure::Status { status, detail }, after))
            }
        }
    }

    /// Send these requests, at most [`IN_FLIGHT`] at a time; answers in order.
    pub async fn send_all(&self, reqs: Vec<Request>) -> Vec<Result<Answer, Failure>> {
        let sem = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut set = tokio::task::JoinSet::new();
        let n = reqs.len();
        for (i, req) in reqs.into_iter().enumerate() {
            let client = self.clone();
            let sem = sem.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                (i, client.send(&req).await)
            });
        }
        let mut out: Vec<Option<Result<Answer, Failure>>> = vec![None; n];
        while let Some(done) = set.join_next().await {
            // A task that panicked or was cancelled leaves its slot empty.
            if let Ok((i, r)) = done
                && let Some(slot) = out.get_mut(i)
            {
                *slot = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Failure::Transport("the request was lost".into()))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now: jiff::Timestamp = "2015-10-21T07:27:00Z".parse().unwrap();
        assert_eq!(retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:20:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn encoding_leaves_only_unreserved_characters() {
        assert_eq!(encode("a b\"&=+/é"), "a%20b%22%26%3D%2B%2F%C3%A9");
    }
}
