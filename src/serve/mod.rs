//! `roster serve`: the store published as a SCIM 2.0 service provider
//! (RFC 7643/7644) under `/scim/v2`.
//!
//! The server opens its store once ([`store::open`]) and keeps the handle.
//! A request's `Authorization` is checked before the store is touched;
//! the token is then looked up (an admin token found live before, by the
//! request's first use of the store: `Admins`) on one of a few pooled
//! store connections,
//! which the request keeps for its reads (one read snapshot, started by the
//! first read of several statements; a read of one statement is a snapshot
//! of its own and needs no transaction). Writes go
//! through the same [`Session`] as `roster apply`, so they bump the revision
//! and land in the audit log, with the token's name as the actor; one
//! writer thread writes for the server, and creates arriving together share
//! one of its transactions, each in a savepoint (`writes`). Other blocking
//! store work runs on tokio's blocking pool.

pub mod activate;
mod attrs;
mod bulk;
pub mod catalog;
mod discovery;
mod kind;
pub mod net;
mod pool;
mod resources;
mod writes;

pub use crate::scim::error::{MAX_DETAIL, ScimError};
use crate::scim::resource::{EXT_GROUP, EXT_USER, GROUP, USER};
use crate::store::directory::{Directory, Scope, Token};
use crate::store::{self, Session, Store, StoreError};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use pool::{Lease, Pool};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The query parameters of a SCIM listing (RFC 7644 §3.4.2), which a
/// SearchRequest body carries as its keys.
pub const QUERY_PARAMS: [&str; 7] = [
    "filter",
    "sortBy",
    "sortOrder",
    "startIndex",
    "count",
    "attributes",
    "excludedAttributes",
];

/// Where the service lives on the listener.
pub const PREFIX: &str = "/scim/v2";

/// Largest request body accepted (also announced for Bulk).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Most resources on one page, and the default page.
pub const MAX_RESULTS: u64 = 1000;
pub const DEFAULT_COUNT: u64 = 100;

pub struct Config {
    pub url: String,
    /// How long the queries of one listing (its filter) may run, together,
    /// before the store cancels them.
    pub filter_timeout: Duration,
    /// The rules grants made through the server obey, as a plan does.
    pub policy: crate::roster::model::Policy,
    /// The roles and entitlements a write may grant: the catalogs of the
    /// roster given (`--roster`), else the default ones plus what the store
    /// already holds (see [`catalog`]).
    pub catalog: catalog::Catalog,
    /// A request's body must arrive within this.
    pub body_timeout: Duration,
    /// Store connections kept for requests: at most this many at once.
    pub store_connections: usize,
    /// How long a request waits for a free store connection before 503.
    pub store_wait: Duration,
    /// The activation page ([`activate`]) and how long its tokens live
    /// after they are issued; `None`: no page.
    pub activation: Option<Duration>,
}

/// The server's state: its configuration, its store handle, the
/// connections its requests read on, and the queue its writes share
/// transactions through (its writer thread). Writers of other processes
/// still meet at the
/// store's own lock; within one process, queueing here is cheaper than
/// SQLite's busy-wait, which sleeps between retries.
pub struct Server {
    config: Config,
    store: Arc<dyn Store>,
    pool: Arc<Pool>,
    writes: writes::Writer,
    activation: Option<activate::Page>,
    /// Whether the store's reads are local (a SQLite file), not over the
    /// network.
    local_reads: bool,
    admins: Admins,
}

impl std::ops::Deref for Server {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
}

pub(crate) type Shared = Arc<Server>;

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Taken(m) => ScimError::new(StatusCode::CONFLICT, Some("uniqueness"), m),
            StoreError::Invalid(m) => ScimError::bad("invalidValue", m),
            StoreError::Filter(e) => ScimError::bad(e.scim_type, e.to_string()),
            StoreError::TimedOut => ScimError::bad(
                "tooMany",
                "the query ran longer than this server allows and was cancelled; \
                 narrow the filter or ask for fewer results (`count`)",
            ),
            StoreError::Locked { .. } => ScimError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the store is busy with another write; try again",
            ),
            // Store internals (paths, SQL) stay in the server's log.
            other => {
                tracing::error!(error = %other, "the store failed");
                ScimError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "the store failed; see the server's log",
                )
            }
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut r = (self.status, self.body().to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, scim_json());
        r
    }
}

fn scim_json() -> HeaderValue {
    HeaderValue::from_static("application/scim+json")
}

/// Bytes set aside for a resource's JSON: a User or a small Group.
pub const JSON_CAPACITY: usize = 2048;

/// A JSON response with the SCIM media type, and the resource's ETag if any.
pub fn respond(status: StatusCode, body: &Value) -> Response {
    // A `Value` always serializes; `to_writer` skips `Display`'s
    // formatter, and a resource fits in the first buffer.
    let mut json = Vec::with_capacity(JSON_CAPACITY);
    let _ = serde_json::to_writer(&mut json, body);
    let mut r = (status, json).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, scim_json());
    if let Some(v) = body.pointer("/meta/version").and_then(Value::as_str)
        && let Ok(h) = HeaderValue::from_str(v)
    {
        r.headers_mut().insert(header::ETAG, h);
    }
    if status == StatusCode::CREATED
        && let Some(loc) = body.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(h) = HeaderValue::from_str(loc)
    {
        r.headers_mut().insert(header::LOCATION, h);
    }
    r
}

/// Who is calling: the token's name (the audit actor) and its scope.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    /// `None`: admin. Otherwise the ids of the groups the token manages.
    pub scope: Option<Vec<i64>>,
}

impl Caller {
    pub fn admin_only(&self, what: &str) -> Result<(), ScimError> {
        match self.scope {
            None => Ok(()),
            Some(_) => Err(ScimError::forbidden(format!(
                "this token manages group memberships only; {what} needs an admin token"
            ))),
        }
    }
    /// Whether the token manages the group with this id.
    pub fn may_manage(&self, group: i64) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(&group))
    }
    fn actor(&self) -> String {
        format!("token:{}", self.name)
    }
}

fn unauthorized(detail: &str) -> ScimError {
    ScimError::new(StatusCode::UNAUTHORIZED, None, detail.to_string())
}

/// The bearer token of the request, checked for form only: a request
/// without one is refused before it touches the store. The scheme is
/// case-insensitive (RFC 7235 §2.1).
fn bearer(headers: &HeaderMap) -> Result<String, ScimError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unauthorized("send `Authorization: Bearer TOKEN`; `roster token create` makes one")
        })?;
    let (scheme, token) = auth
        .trim_start()
        .split_once([' ', '\t'])
        .unwrap_or((auth, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(unauthorized(
            "use a bearer token: `Authorization: Bearer TOKEN`",
        ));
    }
    // Tokens are `rst_` and hex (`roster token create`); anything else
    // cannot be one, and costs no look-up.
    let well_formed = token.len() <= 128
        && token
            .strip_prefix("rst_")
            .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !well_formed {
        return Err(unauthorized("unknown or revoked token"));
    }
    Ok(token.to_string())
}

/// Admin tokens found live before, by digest (their names): a request
/// with one is let in before its token is looked up again, which then
/// happens with the request's first use of the store — in a write, by the
/// write's transaction, which holds the lock that revoking a token takes
/// and looks a token up once per batch of writes; in a read, on its
/// connection; in a request that used no store, before it is answered.
/// A token revoked is refused at once all the same.
#[derive(Default)]
struct Admins(Mutex<HashMap<String, String>>);

/// Most admin tokens [`Admins`] keeps; beyond, it starts over.
const ADMINS_MAX: usize = 256;

impl Admins {
    fn get(&self, digest: &str) -> Option<String> {
        let known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        known.get(digest).cloned()
    }

    fn insert(&self, digest: &str, name: &str) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= ADMINS_MAX {
            known.clear();
        }
        known.insert(digest.to_string(), name.to_string());
    }

    fn forget(&self, digest: &str) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        known.remove(digest);
    }
}

/// The token a digest names, looked up on the request's connection. A
/// connection kept idle that the database dropped meanwhile fails it: the
/// look-up then runs on a new connection.
fn token(lease: &mut Lease, digest: &str) -> Result<Option<Token>, ScimError> {
    let reused = lease.reused();
    Ok(match lease.dir().token(digest) {
        Err(_) if reused => {
            lease.replace()?;
            lease.dir().token(digest)?
        }
        r => r?,
    })
}

/// The caller a token names: looked up on the request's connection, the
/// first read of the request.
fn authenticate(lease: &mut Lease, digest: &str) -> Result<Caller, ScimError> {
    let t = token(lease, digest)?.ok_or_else(|| unauthorized("unknown or revoked token"))?;
    let scope = match t.scope {
        Scope::Admin => None,
        Scope::Groups(groups) => Some(groups.iter().map(|g| g.id).collect()),
        // Fails closed: a scope that cannot be read grants nothing.
        Scope::Broken(why) => {
            return Err(ScimError::forbidden(format!(
                "token `{}` cannot be used: {why}; revoke it and create another",
                t.name
            )));
        }
    };
    Ok(Caller {
        name: t.name,
        scope,
    })
}

/// What a handler gets: the request, authenticated, on the blocking pool.
pub struct Ctx {
    pub config: Shared,
    pub caller: Caller,
    /// `http://host/scim/v2`, for `location` and `$ref`.
    pub base: String,
    /// The pooled connection the token was checked on, in its read
    /// transaction: the request's reads use it too.
    lease: Mutex<Option<Lease>>,
    /// The digest of an admin token let in as found live before, not
    /// looked up again yet (see [`Admins`]).
    unchecked: Mutex<Option<String>>,
}

/// A store connection for reading, as [`Ctx::read`] lends it.
pub struct Conn<'a> {
    lease: Option<Lease>,
    home: &'a Mutex<Option<Lease>>,
}

impl AsMut<dyn Directory> for Conn<'_> {
    fn as_mut(&mut self) -> &mut (dyn Directory + 'static) {
        self.lease().dir()
    }
}

impl Conn<'_> {
    fn lease(&mut self) -> &mut Lease {
        // Only `drop` takes the lease out.
        self.lease.as_mut().expect("lease present until drop")
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = dyn Directory;
    fn deref(&self) -> &(dyn Directory + 'static) {
        self.lease
            .as_ref()
            .expect("lease present until drop")
            .dir_ref()
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut (dyn Directory + 'static) {
        self.lease().dir()
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let mut home = self.home.lock().unwrap_or_else(PoisonError::into_inner);
        if home.is_none() {
            *home = self.lease.take();
        }
    }
}

impl Ctx {
    /// The request's store connection (one read snapshot).
    pub fn read(&self) -> Result<Conn<'_>, ScimError> {
        self.check_token(None)?;
        self.connection()
    }

    /// The admin token let in unchecked, looked up now: by `session` if
    /// given (once per transaction), else on the request's connection.
    /// Refused: 401, and forgotten.
    fn check_token(&self, session: Option<&mut dyn Session>) -> Result<(), ScimError> {
        let mut unchecked = self
            .unchecked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(digest) = unchecked.as_deref() else {
            return Ok(());
        };
        let live = match session {
            Some(s) => s.live_admin_token(digest)?,
            None => {
                let mut conn = self.connection()?;
                token(conn.lease(), digest)?
                    .filter(|t| matches!(t.scope, Scope::Admin))
                    .map(|t| t.name)
            }
        };
        if live.as_deref() != Some(self.caller.name.as_str()) {
            self.config.admins.forget(digest);
            return Err(unauthorized("unknown or revoked token"));
        }
        *unchecked = None;
        Ok(())
    }

    /// The request's store connection, the token not checked.
    fn connection(&self) -> Result<Conn<'_>, ScimError> {
        let held = self
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let lease = match held {
            Some(l) => l,
            // Already lent (a read within a read): one of no pool.
            None => Lease::unpooled(self.config.store.as_ref())?,
        };
        Ok(Conn {
            lease: Some(lease),
            home: &self.lease,
        })
    }

    /// Run `f` in a write transaction of its own, then commit: on this
    /// thread, when the writer gives it its turn.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Session, &mut dyn Directory) -> Result<T, ScimError>,
    ) -> Result<T, ScimError> {
        let mut dir = self.connection()?;
        let out = self.config.writes.write_alone(
            self.config.store.as_ref(),
            &self.caller.actor(),
            |session| {
                self.check_token(Some(&mut *session))?;
                // A snapshot taken under the store's write lock: it sees
                // every committed write, and no other writer can commit
                // until this one.
                dir.lease().refresh()?;
                f(session, dir.as_mut())
            },
        )?;
        // Reads after this write must see it. The write is done either way:
        // a connection that cannot start a new snapshot is let go instead.
        if dir.lease().refresh().is_err() {
            dir.lease.take();
        }
        Ok(out)
    }

    /// Queue `f`, a create, for the writer: in a transaction it may share
    /// with other creates of this caller (each in a savepoint). `email` is
    /// the new User's, which no create it shares the transaction with may
    /// hold. The receiver gets `f`'s value once it is committed.
    pub fn queue_create<T: Send + 'static>(
        &self,
        email: Option<&str>,
        f: writes::CreateFn<T>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<T, ScimError>>, ScimError> {
        // An admin token let in unchecked is looked up by the writer's
        // transaction (once per batch: the session keeps what it found),
        // before the create writes. It stays unchecked for the rest of the
        // request until that create lands: a refused one (the token
        // revoked) must not let a later write of the request (Bulk) in.
        let unchecked = self
            .unchecked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let f: writes::CreateFn<T> = match unchecked.clone() {
            None => f,
            Some(digest) => {
                let (config, name) = (Arc::clone(&self.config), self.caller.name.clone());
                Box::new(move |s, dir| {
                    if s.live_admin_token(&digest)?.as_deref() != Some(name.as_str()) {
                        config.admins.forget(&digest);
                        return Err(unauthorized("unknown or revoked token"));
                    }
                    f(s, dir)
                })
            }
        };
        self.config
            .writes
            .create(&self.caller.actor(), unchecked.as_deref(), email, f)
    }

    /// [`Ctx::queue_create`], waiting here (blocking) until it is committed.
    pub fn create<T: Send + 'static>(
        &self,
        email: Option<&str>,
        f: writes::CreateFn<T>,
    ) -> Result<T, ScimError> {
        let answer = self.queue_create(email, f)?;
        let out = writes::wait(answer)?;
        // It landed: the writer found the token live.
        *self
            .unchecked
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        // Reads after this write must see it.
        let mut held = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        if held.as_mut().is_some_and(|l| l.refresh().is_err()) {
            held.take();
        }
        Ok(out)
    }

    /// Give the request's store connection back to the pool (and with it
    /// the request's place among those using the store): a read after this
    /// opens a connection of no pool.
    pub fn let_go(&self) {
        self.lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// `SCHEME://HOST/scim/v2`: the scheme the client used ([`net`] leaves it
/// in `X-Forwarded-Proto`), the host it asked for.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = match headers.get(net::FORWARDED_PROTO).map(HeaderValue::as_bytes) {
        Some(b"https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}{PREFIX}")
}

/// The name of the token a request was made with, for the request log.
#[derive(Clone)]
struct TokenName(String);

/// Authenticate, then run `f` on the blocking pool.
async fn handle(
    config: Shared,
    headers: HeaderMap,
    f: impl FnOnce(&Ctx) -> Result<Response, ScimError> + Send + 'static,
) -> Response {
    let done = authed(config, headers, move |ctx| {
        let response = f(&ctx).unwrap_or_else(IntoResponse::into_response);
        // A request that did not use the store: its token is checked
        // before it is answered.
        match ctx.check_token(None) {
            Ok(()) => response,
            Err(e) => e.into_response(),
        }
    })
    .await;
    match done {
        Ok((mut response, name)) => {
            response.extensions_mut().insert(name);
            response
        }
        Err(response) => response,
    }
}

/// A request's base URL, its bearer token (well formed) and its place among
/// those using the store, or the answer to a request that got no further.
async fn admit(
    config: &Shared,
    headers: &HeaderMap,
) -> Result<(String, String, pool::Permit), Response> {
    let base = base_url(headers);
    let token = bearer(headers).map_err(IntoResponse::into_response)?;
    let permit = config
        .pool
        .permit()
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((base, token, permit))
}

/// Authenticate, then run `f` on the blocking pool; what it returned and
/// the token's name, or the answer to a request that got no further.
async fn authed<T: Send + 'static>(
    config: Shared,
    headers: HeaderMap,
    f: impl FnOnce(Ctx) -> T + Send + 'static,
) -> Result<(T, TokenName), Response> {
    let (base, token, permit) = admit(&config, &headers).await?;
    let result =
        tokio::task::spawn_blocking(move || with_caller(config, permit, &token, base, f)).await;
    match result {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(e.into_response()),
        Err(_) => Err(ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the request failed",
        )
        .into_response()),
    }
}

/// The request's caller looked up on one of the pool's connections, then
/// `f` with the request's context. Blocking.
fn with_caller<T>(
    config: Shared,
    permit: pool::Permit,
    token: &str,
    base: String,
    f: impl FnOnce(Ctx) -> T,
) -> Result<(T, TokenName), ScimError> {
    let mut lease = config.pool.take(permit)?;
    let digest = crate::secrets::sha256(token.as_bytes());
    let (caller, unchecked) = match config.admins.get(&digest) {
        Some(name) => (Caller { name, scope: None }, Some(digest)),
        None => {
            let caller = authenticate(&mut lease, &digest)?;
            if caller.scope.is_none() {
                config.admins.insert(&digest, &caller.name);
            }
            (caller, None)
        }
    };
    let name = TokenName(caller.name.clone());
    let ctx = Ctx {
        config,
        caller,
        base,
        lease: Mutex::new(Some(lease)),
        unchecked: Mutex::new(unchecked),
    };
    Ok((f(ctx), name))
}

/// [`authed`] on this thread, for a store whose reads are local: a SQLite
/// file's token look-up reads pages the system already caches, for a few
/// microseconds, less than handing the request to the blocking pool and
/// back costs (two thread wake-ups, each a wait of its own on a busy
/// machine). Other stores read over the network: [`authed`].
async fn authed_here<T: Send + 'static>(
    config: Shared,
    headers: HeaderMap,
    f: impl FnOnce(Ctx) -> T + Send + 'static,
) -> Result<(T, TokenName), Response> {
    if !config.local_reads {
        return authed(config, headers, f).await;
    }
    let (base, token, permit) = admit(&config, &headers).await?;
    with_caller(config, permit, &token, base, f).map_err(IntoResponse::into_response)
}

/// POST /Users: checked and queued for the writer (on this thread over
/// SQLite, see [`authed_here`]), then awaited here, holding no thread and
/// no store connection. A body that may hold a password, which takes long
/// to hash, is checked on the blocking pool.
async fn create_user(State(config): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    // Any JSON spelling of the attribute: as is, or with `\u` escapes.
    let hashes = body.windows(8).any(|w| w.eq_ignore_ascii_case(b"password"))
        || body.windows(2).any(|w| w == b"\\u");
    let queue = move |ctx| resources::queue_user(ctx, &body);
    let queued = if hashes {
        authed(config, headers, queue).await
    } else {
        authed_here(config, headers, queue).await
    };
    let (queued, name) = match queued {
        Ok(q) => q,
        Err(response) => return response,
    };
    let mut response = match queued {
        Ok(q) => q.finish().await,
        Err(e) => Err(e),
    }
    .unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(name);
    response
}

/// Every request: its body read within the body timeout (408 after), then
/// handled, then logged: method, path, the names of its query parameters
/// (never their values), status, latency and token name.
async fn edge(State(config): State<Shared>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = logged_path(req.uri().path());
    let query = logged_query(req.uri().query().unwrap_or(""));
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_PAYLOAD);
    let response = match tokio::time::timeout(config.body_timeout, limited.collect()).await {
        Ok(Ok(body)) => {
            let req = Request::from_parts(parts, Body::from(body.to_bytes()));
            next.run(req).await
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("tooLarge"),
            format!("the request body is larger than {MAX_PAYLOAD} bytes"),
        )
        .into_response(),
        Ok(Err(_)) => {
            ScimError::bad("invalidSyntax", "the request body could not be read").into_response()
        }
        Err(_) => ScimError::new(
            StatusCode::REQUEST_TIMEOUT,
            None,
            format!(
                "the request body did not arrive within {} s",
                config.body_timeout.as_secs_f64()
            ),
        )
        .into_response(),
    };
    let token = response
        .extensions()
        .get::<TokenName>()
        .map_or("-", |t| t.0.as_str());
    tracing::info!(
        method = %method,
        path = %path,
        query = %query,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        token = %token,
        "request"
    );
    response
}

/// The path as the request log shows it: what the client may have put in it
/// (an id that is not a number, a user name) is `*`.
fn logged_path(path: &str) -> String {
    const WORDS: [&str; 12] = [
        "activate",
        "scim",
        "v2",
        "Users",
        "Groups",
        "Bulk",
        ".search",
        "Schemas",
        "ResourceTypes",
        "ServiceProviderConfig",
        "User",
        "Group",
    ];
    path.split('/')
        .take(8)
        .map(|seg| {
            let known = seg.is_empty()
                || WORDS.contains(&seg)
                || (seg.len() <= 20 && seg.bytes().all(|b| b.is_ascii_digit()))
                || [USER, GROUP, EXT_USER, EXT_GROUP].contains(&seg);
            if known { seg } else { "*" }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The names of the query's SCIM parameters, never their values; any other
/// name is `*`.
fn logged_query(query: &str) -> String {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .take(10)
        .map(|kv| {
            let name = kv.split('=').next().unwrap_or("");
            QUERY_PARAMS
                .iter()
                .find(|n| n.eq_ignore_ascii_case(name))
                .copied()
                .unwrap_or("*")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A JSON request body, with a SCIM error naming what is wrong.
pub fn parse_body(body: &[u8]) -> Result<Value, ScimError> {
    serde_json::from_slice(body).map_err(|e| {
        ScimError::bad(
            "invalidSyntax",
            format!("the request body is not JSON: {e}"),
        )
    })
}

pub type Params = HashMap<String, String>;

/// Query parameters, looked up case-insensitively.
pub fn param<'a>(q: &'a Params, name: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// How a server keeps its store: the requests' connections, and the write
/// session's.
pub fn store_options(lock_timeout: Duration, store_connections: usize) -> store::Options {
    store::Options {
        lock_timeout,
        connections: store_connections + 1,
    }
}

/// The service over `store`, the store at `config.url` opened once (with
/// [`store_options`]) by the caller.
pub fn router(config: Config, store: Arc<dyn Store>) -> Result<Router, StoreError> {
    let pool = Arc::new(Pool::new(
        Arc::clone(&store),
        config.store_connections,
        config.store_wait,
    ));
    let activation = config.activation.map(activate::Page::new);
    let writes = writes::Writer::start(Arc::clone(&store)).map_err(|e| StoreError::Open {
        url: store::display_url(&config.url),
        message: format!("cannot start the writer thread: {e}"),
    })?;
    let local_reads = config.url.starts_with("sqlite:");
    let shared: Shared = Arc::new(Server {
        local_reads,
        admins: Admins::default(),
        config,
        store,
        pool,
        writes,
        activation,
    });
    let api = Router::new()
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/Users", get(list_users).post(create_user))
        .route(
            "/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/Users/.search", axum::routing::post(search_users))
        .route("/Groups", get(list_groups).post(create_group))
        .route("/Groups/.search", axum::routing::post(search_groups))
        .route(
            "/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route("/Bulk", axum::routing::post(bulk_route))
        .route(
            "/.search",
            axum::routing::post(|| async {
                ScimError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    None,
                    "search Users and Groups separately: POST /Users/.search or /Groups/.search",
                )
                .into_response()
            }),
        )
        .fallback(|| async {
            ScimError::new(StatusCode::NOT_FOUND, None, "no such endpoint").into_response()
        });
    let mut app = Router::new().nest(PREFIX, api);
    if shared.activation.is_some() {
        app = app.route(activate::PATH, get(activate::show).post(activate::submit));
    }
    Ok(app
        .layer(axum::extract::DefaultBodyLimit::max(MAX_PAYLOAD))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), edge))
        .with_state(shared))
}

/// Serve until Ctrl-C or SIGTERM; then requests in flight get
/// `net.shutdown_timeout` to finish.
pub async fn run(
    config: Config,
    store: Arc<dyn Store>,
    net: net::Net,
    listener: tokio::net::TcpListener,
) {
    let router = match router(config, store) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the store");
            return;
        }
    };
    net::serve(listener, router, net, async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
    })
    .await
}

use kind::Kind;

macro_rules! routes {
    ($($name:ident($($arg:ident: $ty:ty),*) => $body:expr;)*) => {$(
        async fn $name(
            State(config): State<Shared>,
            headers: HeaderMap,
            $($arg: $ty),*
        ) -> Response {
            let h = headers.clone();
            handle(config, headers, move |ctx| $body(ctx, &h)).await
        }
    )*};
}

routes! {
    list_users(q: Query<Params>) => |ctx: &Ctx, _h: &HeaderMap| resources::list(ctx, Kind::User, &q.0);
    get_user(id: Path<String>, q: Query<Params>) => |ctx: &Ctx, h: &HeaderMap| resources::get(ctx, Kind::User, &id.0, &q.0, h);
    replace_user(id: Path<String>, body: Bytes) => |ctx: &Ctx, h: &HeaderMap| resources::replace(ctx, Kind::User, &id.0, &body, h);
    patch_user(id: Path<String>, body: Bytes) => |ctx: &Ctx, h: &HeaderMap| resources::patch(ctx, Kind::User, &id.0, &body, h);
    delete_user(id: Path<String>) => |ctx: &Ctx, h: &HeaderMap| resources::delete(ctx, Kind::User, &id.0, h);
    list_groups(q: Query<Params>) => |ctx: &Ctx, _h: &HeaderMap| resources::list(ctx, Kind::Group, &q.0);
    get_group(id: Path<String>, q: Query<Params>) => |ctx: &Ctx, h: &HeaderMap| resources::get(ctx, Kind::Group, &id.0, &q.0, h);
    create_group(body: Bytes) => |ctx: &Ctx, _h: &HeaderMap| resources::create(ctx, Kind::Group, &body);
    replace_group(id: Path<String>, body: Bytes) => |ctx: &Ctx, h: &HeaderMap| resources::replace(ctx, Kind::Group, &id.0, &body, h);
    patch_group(id: Path<String>, body: Bytes) => |ctx: &Ctx, h: &HeaderMap| resources::patch(ctx, Kind::Group, &id.0, &body, h);
    delete_group(id: Path<String>) => |ctx: &Ctx, h: &HeaderMap| resources::delete(ctx, Kind::Group, &id.0, h);
    search_users(body: Bytes) => |ctx: &Ctx, _h: &HeaderMap| resources::search(ctx, Kind::User, &body);
    search_groups(body: Bytes) => |ctx: &Ctx, _h: &HeaderMap| resources::search(ctx, Kind::Group, &body);
    bulk_route(body: Bytes) => |ctx: &Ctx, _h: &HeaderMap| bulk::run(ctx, &body);
}
