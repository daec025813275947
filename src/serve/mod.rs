//! `roster serve`: the store published as a SCIM 2.0 service provider
//! (RFC 7643/7644) under `/scim/v2`.
//!
//! Reads open a read transaction per request; writes go through the same
//! [`Session`] as `roster apply`, so they bump the revision and land in the
//! audit log, with the token's name as the actor. Blocking store work runs
//! on tokio's blocking pool.

mod attrs;
mod bulk;
mod discovery;
pub mod patch;
mod resources;

use crate::scim::resource::ERROR;
use crate::store::directory::{Directory, Scope, Token};
use crate::store::{self, Session, StoreError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Where the service lives on the listener.
pub const PREFIX: &str = "/scim/v2";

/// Largest request body accepted (also announced for Bulk).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Most resources on one page, and the default page.
pub const MAX_RESULTS: u64 = 1000;
pub const DEFAULT_COUNT: u64 = 100;

pub struct Config {
    pub url: String,
    pub lock_timeout: Duration,
    /// How long the queries of one listing may run before the store
    /// cancels them.
    pub statement_timeout: Duration,
    /// The rules grants made through the server obey, as a plan does.
    pub policy: crate::roster::model::Policy,
}

/// The server's state: its configuration, and a gate that lets one write
/// of this process at a time reach the store. Writers of other processes
/// still meet at the store's own lock; within one process, queueing here is
/// cheaper than SQLite's busy-wait, which sleeps between retries.
pub struct Server {
    config: Config,
    writes: std::sync::Mutex<()>,
}

impl std::ops::Deref for Server {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
}

type Shared = Arc<Server>;

/// Most characters of an error's `detail`.
pub const MAX_DETAIL: usize = 500;

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        // Sites quote a client's input through `scim::excerpt`; this caps
        // whatever else a message may carry (a store's message naming a
        // value, say), so that no error echoes a request at its full size.
        let detail: String = detail.into();
        ScimError {
            status,
            scim_type,
            detail: crate::scim::clip(&detail, MAX_DETAIL).into_owned(),
        }
    }
    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            None,
            format!("{what} {} not found", crate::scim::excerpt(id)),
        )
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, detail)
    }
    pub fn body(&self) -> Value {
        let mut v = json!({
            "schemas": [ERROR],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            v["scimType"] = json!(t);
        }
        v
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Taken(m) => ScimError::new(StatusCode::CONFLICT, Some("uniqueness"), m),
            StoreError::Invalid(m) => ScimError::bad("invalidValue", m),
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
                eprintln!("roster serve: {other}");
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

/// A JSON response with the SCIM media type, and the resource's ETag if any.
pub fn respond(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
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

fn authenticate(dir: &mut dyn Directory, headers: &HeaderMap) -> Result<Caller, ScimError> {
    let unauthorized =
        |detail: &str| ScimError::new(StatusCode::UNAUTHORIZED, None, detail.to_string());
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unauthorized("send `Authorization: Bearer TOKEN`; `roster token create` makes one")
        })?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("use a bearer token: `Authorization: Bearer TOKEN`"))?;
    let found: Option<Token> = dir.token(&crate::secrets::sha256(token.as_bytes()))?;
    let t = found.ok_or_else(|| unauthorized("unknown or revoked token"))?;
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
    /// The read transaction the token was checked in, for the request's
    /// first read: one connection per read request.
    first_read: std::sync::Mutex<Option<Box<dyn Directory>>>,
}

impl Ctx {
    pub fn read(&self) -> Result<Box<dyn Directory>, ScimError> {
        let reused = self
            .first_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match reused {
            Some(dir) => Ok(dir),
            None => Ok(store::open_directory(&self.config.url)?),
        }
    }

    /// Run `f` in one write transaction, then commit.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Session, &mut dyn Directory) -> Result<T, ScimError>,
    ) -> Result<T, ScimError> {
        // A poisoned gate only means another write panicked; the store
        // itself rolled that write back.
        let _turn = self
            .config
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Reads after this write must see it: not the snapshot taken before.
        drop(
            self.first_read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let mut session = store::begin(
            &self.config.url,
            &self.caller.actor(),
            &store::now(),
            self.config.lock_timeout,
        )?;
        // Opened after the write lock is held: it sees every committed write
        // and no other writer can commit until this one does.
        let mut dir = store::open_directory(&self.config.url)?;
        let out = f(session.as_mut(), dir.as_mut())?;
        session.commit()?;
        Ok(out)
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}{PREFIX}")
}

/// Authenticate, then run `f` on the blocking pool.
async fn handle(
    config: Shared,
    headers: HeaderMap,
    f: impl FnOnce(&Ctx) -> Result<Response, ScimError> + Send + 'static,
) -> Response {
    let base = base_url(&headers);
    let result = tokio::task::spawn_blocking(move || {
        let mut dir = store::open_directory(&config.url)?;
        let caller = authenticate(dir.as_mut(), &headers)?;
        f(&Ctx {
            config,
            caller,
            base,
            first_read: std::sync::Mutex::new(Some(dir)),
        })
    })
    .await;
    match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(_) => ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the request failed",
        )
        .into_response(),
    }
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

pub fn router(config: Config) -> Router {
    let shared: Shared = Arc::new(Server {
        config,
        writes: std::sync::Mutex::new(()),
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
    Router::new()
        .nest(PREFIX, api)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_PAYLOAD))
        .with_state(shared)
}

/// Serve until Ctrl-C or SIGTERM.
pub async fn run(config: Config, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(config))
        .with_graceful_shutdown(async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(_) => return std::future::pending().await,
                    };
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
        })
        .await
}

use resources::Kind;

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
    create_user(body: Bytes) => |ctx: &Ctx, _h: &HeaderMap| resources::create(ctx, Kind::User, &body);
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
