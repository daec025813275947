//! Users and Groups: list, read, create, replace, patch, delete.

use super::kind::Kind;
use super::writes::CreateFn;
use super::{
    Ctx, DEFAULT_COUNT, JSON_CAPACITY, MAX_RESULTS, Params, ScimError, param, parse_body, respond,
};
use crate::domain::Account;
use crate::scim::excerpt;
use crate::scim::filter::{self, Filter};
use crate::scim::patch::{self, Projection};
use crate::scim::resource::{
    self, EXT_USER, GroupResource, LIST_RESPONSE, Ref, account_from_user, group_resource,
    user_resource,
};
use crate::store::directory::{Directory, GroupRecord, ListQuery, UserRecord};
use crate::store::{NewCredential, Owner, ScimField, Session};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A resource id: roster's row ids. Anything else names no resource.
fn row_id(kind: Kind, id: &str) -> Result<i64, ScimError> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ScimError::not_found(kind.name(), id))
}

/// A weak ETag over the resource's content (everything but `meta`) and
/// when it was last written (`modified`): it changes when what a client
/// sees changes, and when a write changes what it cannot see (a new
/// password).
fn etag(v: &Value, modified: &str) -> String {
    // `to_vec` writes the bytes `to_string` (`Display`) would, without the
    // formatter's per-piece calls.
    let mut bytes = Vec::with_capacity(JSON_CAPACITY);
    // A `Value` always serializes.
    let _ = serde_json::to_writer(&mut bytes, v);
    bytes.push(b'\n');
    bytes.extend_from_slice(modified.as_bytes());
    let digest = crate::secrets::sha256(&bytes);
    let hex = digest.trim_start_matches("sha256:");
    format!("W/\"{}\"", &hex[..16.min(hex.len())])
}

fn with_meta(
    mut v: Value,
    kind: Kind,
    base: &str,
    id: i64,
    created: &str,
    modified: &str,
) -> Value {
    v["id"] = json!(id.to_string());
    let version = etag(&v, modified);
    v["meta"] = json!({
        "resourceType": kind.name(),
        "created": created,
        "lastModified": modified,
        "location": format!("{base}/{}/{id}", kind.endpoint()),
        "version": version,
    });
    v
}

/// A User resource; `manager` is the id of its case manager, when the
/// caller may see that account (see [`manager_ids`]).
pub fn user_json(base: &str, u: &UserRecord, manager: Option<i64>) -> Value {
    let a = &u.account;
    let mut v = user_resource(&a.user_name, &a.profile, a.active);
    resource::put_grants(&mut v, a);
    if let (Some(id), Some(name)) = (manager, &a.case_manager) {
        resource::put_manager(&mut v, Some((&id.to_string(), name)), Some(base));
    }
    if !u.groups.is_empty() {
        v["groups"] = Value::Array(
            u.groups
                .iter()
                .map(|g| {
                    json!({"value": g.id.to_string(), "display": g.name,
                           "$ref": format!("{base}/Groups/{}", g.id)})
                })
                .collect(),
        );
    }
    if let Some(x) = &u.external_id {
        v["externalId"] = json!(x);
    }
    if let Some(x) = &u.display_name {
        v["displayName"] = json!(x);
    }
    with_meta(v, Kind::User, base, u.id, &u.created, &u.modified)
}

pub fn group_json(base: &str, g: &GroupRecord) -> Value {
    let r = |m: &crate::store::directory::MemberRef| Ref {
        id: m.id.to_string(),
        display: m.user_name.clone(),
    };
    let members: Vec<Ref> = g.members.iter().map(r).collect();
    let managers: Vec<Ref> = g.members.iter().filter(|m| m.user_manager).map(r).collect();
    let mut v = group_resource(&g.group, &members, &managers);
    let user_refs = |items: Option<&mut Value>| {
        for m in items.and_then(Value::as_array_mut).into_iter().flatten() {
            let id = m["value"].as_str().unwrap_or_default().to_string();
            m["type"] = json!("User");
            m["$ref"] = json!(format!("{base}/Users/{id}"));
        }
    };
    user_refs(v.get_mut("members"));
    user_refs(v.pointer_mut(&format!("/{}/userManagers", resource::EXT_GROUP)));
    if let Some(x) = &g.external_id {
        v["externalId"] = json!(x);
    }
    with_meta(v, Kind::Group, base, g.id, &g.created, &g.modified)
}

/// A user as the caller may see it: a scoped token sees only the groups
/// it manages.
fn visible_user(ctx: &Ctx, mut u: UserRecord) -> UserRecord {
    u.groups.retain(|g| ctx.caller.may_manage(g.id));
    u
}

/// The ids of these users' case managers, by lower-cased user name: one
/// look-up for a page. A scoped token sees only the managers who are
/// members of its groups; any other reads as no manager at all.
fn manager_ids(
    ctx: &Ctx,
    dir: &mut dyn Directory,
    users: &[UserRecord],
) -> Result<std::collections::HashMap<String, i64>, ScimError> {
    let mut names: Vec<String> = users
        .iter()
        .filter_map(|u| u.account.case_manager.clone())
        .collect();
    if names.is_empty() {
        return Ok(Default::default());
    }
    names.sort();
    names.dedup();
    let mut found = dir.user_ids(&names)?;
    if let Some(scope) = &ctx.caller.scope {
        let ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
        let reachable = dir.members_of(scope, &ids)?;
        found.retain(|(id, _)| reachable.contains(id));
    }
    Ok(found
        .into_iter()
        .map(|(id, name)| (name.to_lowercase(), id))
        .collect())
}

/// These users' resources as the caller may see them.
fn users_json(
    ctx: &Ctx,
    dir: &mut dyn Directory,
    users: Vec<UserRecord>,
) -> Result<Vec<Value>, ScimError> {
    let ids = manager_ids(ctx, dir, &users)?;
    Ok(users
        .into_iter()
        .map(|u| {
            let manager = u
                .account
                .case_manager
                .as_ref()
                .and_then(|m| ids.get(&m.to_lowercase()).copied());
            user_json(&ctx.base, &visible_user(ctx, u), manager)
        })
        .collect())
}

/// A user's resource as the caller may see it; `missing` when a scoped
/// token may not see it at all.
fn shown_user(
    ctx: &Ctx,
    dir: &mut dyn Directory,
    u: UserRecord,
    missing: impl Fn() -> ScimError,
) -> Result<Value, ScimError> {
    let u = visible_user(ctx, u);
    if ctx.caller.scope.is_some() && u.groups.is_empty() {
        return Err(missing());
    }
    Ok(users_json(ctx, dir, vec![u])?.remove(0))
}

/// The record of `id` as the caller may see it. An id that exists outside
/// a scoped token's groups answers exactly as an id that does not exist.
fn load(ctx: &Ctx, dir: &mut dyn Directory, kind: Kind, id: &str) -> Result<Value, ScimError> {
    let n = row_id(kind, id)?;
    let missing = || ScimError::not_found(kind.name(), id);
    match kind {
        Kind::User => {
            let u = dir.user(n)?.ok_or_else(missing)?;
            shown_user(ctx, dir, u, missing)
        }
        Kind::Group => {
            let g = dir.group(n)?.ok_or_else(missing)?;
            if !ctx.caller.may_manage(g.id) {
                return Err(missing());
            }
            Ok(group_json(&ctx.base, &g))
        }
    }
}

fn if_match(headers: &HeaderMap, current: &Value) -> Result<(), ScimError> {
    let Some(want) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let have = current["meta"]["version"].as_str().unwrap_or_default();
    let matches = want
        .split(',')
        .map(str::trim)
        .any(|w| w == "*" || w.trim_start_matches("W/") == have.trim_start_matches("W/"));
    if matches {
        Ok(())
    } else {
        Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            "the resource changed since you read it (If-Match); read it again",
        ))
    }
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) of a request.
fn projection(q: &Params) -> Result<Projection, ScimError> {
    Projection::parse(param(q, "attributes"), param(q, "excludedAttributes"))
}

fn project(v: Value, q: &Params) -> Result<Value, ScimError> {
    Ok(projection(q)?.apply(v))
}

fn page_params(q: &Params) -> Result<(u64, u64), ScimError> {
    let int = |name: &str, default: i64| -> Result<i64, ScimError> {
        match param(q, name) {
            None => Ok(default),
            Some(s) => s.trim().parse::<i64>().map_err(|_| {
                ScimError::bad(
                    "invalidValue",
                    format!("`{name}` must be a whole number, not `{}`", excerpt(s)),
                )
            }),
        }
    };
    let start = int("startIndex", 1)?.max(1) as u64;
    let count = (int("count", DEFAULT_COUNT as i64)?.max(0) as u64).min(MAX_RESULTS);
    Ok((start, count))
}

pub fn list(ctx: &Ctx, kind: Kind, q: &Params) -> Result<Response, ScimError> {
    // Checked before any store work, and once for every resource returned.
    let projection = projection(q)?;
    let mut dir = ctx.read()?;
    let schema = super::attrs::for_kind(kind);
    let filter = match param(q, "filter").filter(|f| !f.trim().is_empty()) {
        Some(text) => {
            let mut f =
                filter::parse(text).map_err(|e| ScimError::bad(e.scim_type, e.to_string()))?;
            if let (Kind::User, Some(scope)) = (kind, &ctx.caller.scope) {
                f = within_scope(f, scope);
            }
            Some(f)
        }
        None => None,
    };
    let sort_by = match param(q, "sortBy").filter(|s| !s.trim().is_empty()) {
        Some(s) => {
            let path = filter::parse_path(s.trim())
                .map_err(|e| ScimError::bad("invalidValue", format!("sortBy: {e}")))?;
            if schema.field(&path).is_none_or(|f| f.subs.is_some()) {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!("cannot sort by `{}`", excerpt(s)),
                ));
            }
            Some(path)
        }
        None => None,
    };
    let descending = match param(q, "sortOrder") {
        None => false,
        Some(s) if s.eq_ignore_ascii_case("ascending") => false,
        Some(s) if s.eq_ignore_ascii_case("descending") => true,
        Some(s) => {
            return Err(ScimError::bad(
                "invalidValue",
                format!(
                    "sortOrder must be ascending or descending, not `{}`",
                    excerpt(s)
                ),
            ));
        }
    };
    let (start, count) = page_params(q)?;
    let query = ListQuery {
        schema,
        filter: filter.as_ref(),
        sort_by: sort_by.as_ref(),
        descending,
        offset: start - 1,
        limit: count,
        scope: ctx.caller.scope.as_deref(),
        timeout: Some(ctx.config.filter_timeout),
    };
    let (total, items) = match kind {
        Kind::User => {
            let (t, us) = dir.users(&query)?;
            (t, users_json(ctx, dir.as_mut(), us)?)
        }
        Kind::Group => {
            let (t, gs) = dir.groups(&query)?;
            (t, gs.iter().map(|g| group_json(&ctx.base, g)).collect())
        }
    };
    let items: Vec<Value> = items.into_iter().map(|v| projection.apply(v)).collect();
    Ok(respond(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": total,
            "itemsPerPage": items.len(),
            "startIndex": start,
            "Resources": items,
        }),
    ))
}

/// A User filter as a scoped token may ask it: every test on `groups`
/// looks at the token's groups only, so a filter cannot tell which of its
/// members are in other groups (`groups.display eq "…"`).
fn within_scope(f: Filter, scope: &[i64]) -> Filter {
    use filter::{AttrPath, CompareOp, Value as FValue};
    let is_groups = |p: &AttrPath| p.attr.eq_ignore_ascii_case("groups");
    let mine = || {
        let value = AttrPath::new("value");
        scope
            .iter()
            .map(|id| Filter::compare(value.clone(), CompareOp::Eq, id.to_string()))
            .reduce(Filter::or)
            // No group at all: a test no group passes.
            .unwrap_or_else(|| Filter::compare(value.clone(), CompareOp::Eq, "0"))
    };
    // `groups.display` → `display` inside `groups[...]`; bare `groups` is its value.
    let inner = |p: &AttrPath| AttrPath::new(p.sub.clone().unwrap_or_else(|| "value".into()));
    let outer = |p: &AttrPath| AttrPath {
        sub: None,
        ..p.clone()
    };
    match f {
        Filter::And(l, r) => within_scope(*l, scope).and(within_scope(*r, scope)),
        Filter::Or(l, r) => within_scope(*l, scope).or(within_scope(*r, scope)),
        Filter::Not(g) => Filter::not(within_scope(*g, scope)),
        Filter::ValuePath(p, g) if is_groups(&p) => Filter::value_path(p, g.and(mine())),
        Filter::Compare(p, CompareOp::Eq, FValue::Null) if is_groups(&p) => {
            Filter::not(Filter::value_path(outer(&p), mine()))
        }
        Filter::Compare(p, CompareOp::Ne, FValue::Null) if is_groups(&p) => {
            Filter::value_path(outer(&p), mine())
        }
        Filter::Present(p) if is_groups(&p) => Filter::value_path(outer(&p), mine()),
        Filter::Compare(p, op, v) if is_groups(&p) => {
            Filter::value_path(outer(&p), Filter::Compare(inner(&p), op, v).and(mine()))
        }
        other => other,
    }
}

/// POST /.search (RFC 7644 §3.4.3): the query in a SearchRequest body.
pub fn search(ctx: &Ctx, kind: Kind, body: &[u8]) -> Result<Response, ScimError> {
    let body = parse_body(body)?;
    let mut q = Params::new();
    for key in super::QUERY_PARAMS {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                q.insert(key.to_string(), s.clone());
            }
            Some(Value::Number(n)) => {
                q.insert(key.to_string(), n.to_string());
            }
            Some(Value::Array(items)) => {
                let list: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                q.insert(key.to_string(), list.join(","));
            }
            Some(other) => {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!("`{key}` cannot be {}", excerpt(&other.to_string())),
                ));
            }
        }
    }
    list(ctx, kind, &q)
}

pub fn get(
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    q: &Params,
    headers: &HeaderMap,
) -> Result<Response, ScimError> {
    let mut dir = ctx.read()?;
    let v = load(ctx, dir.as_mut(), kind, id)?;
    let version = v["meta"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(none_match) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
        && none_match
            .split(',')
            .map(str::trim)
            .any(|w| w == version || w == "*")
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(h) = version.parse() {
            r.headers_mut().insert(header::ETAG, h);
        }
        return Ok(r);
    }
    Ok(respond(StatusCode::OK, &project(v, q)?))
}

fn bad_resource(e: resource::ResourceError) -> ScimError {
    ScimError::bad("invalidValue", e.0)
}

/// A new account's credential: none when roster's User extension says
/// `signIn: "sso"`, else the password the client sent, else an invitation
/// like `roster apply`'s.
fn credential(body: &Value) -> Result<NewCredential, ScimError> {
    let sign_in = format!("{EXT_USER}:signIn");
    let password = body.get("password").and_then(Value::as_str);
    match body.get(EXT_USER).and_then(|e| e.get("signIn")) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "invite" => {}
        Some(Value::String(s)) if s == "sso" => {
            if password.is_some_and(|p| !p.is_empty()) {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!("{sign_in} \"sso\" takes no password; leave out password or signIn"),
                ));
            }
            return Ok(NewCredential::Sso);
        }
        Some(_) => {
            return Err(ScimError::bad(
                "invalidValue",
                format!(
                    "{sign_in} must be \"sso\" (active, no password, no invitation) or \"invite\" (the default)"
                ),
            ));
        }
    }
    match password {
        Some(p) if !p.is_empty() => crate::secrets::hash_password(p)
            .map(|hash| NewCredential::Password {
                hash,
                password: p.to_string(),
            })
            .map_err(|e| ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e)),
        _ => {
            let token = crate::secrets::token();
            Ok(NewCredential::Invite {
                token_digest: crate::secrets::sha256(token.as_bytes()),
                token,
            })
        }
    }
}

/// The SCIM-only values of a user, and their attribute names.
const USER_FIELDS: [(ScimField, &str); 2] = [
    (ScimField::ExternalId, "externalId"),
    (ScimField::DisplayName, "displayName"),
];

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Refuse a request body holding text no roster file may hold: control
/// characters, NUL among them (PostgreSQL cannot store it).
fn check_text(body: &Value) -> Result<(), ScimError> {
    match resource::control_character_at(body) {
        None => Ok(()),
        Some(path) => Err(ScimError::bad(
            "invalidValue",
            format!("{path} holds a control character; remove it"),
        )),
    }
}

fn check_user(a: &Account, before: Option<&Account>) -> Result<(), ScimError> {
    resource::check_account(a, before).map_err(bad_resource)
}

/// The account a User body asks for, read strictly: a value of the wrong
/// type or shape is refused, naming the attribute, and the email is
/// lower-cased as in roster files.
fn account_of(body: &Value) -> Result<Account, ScimError> {
    resource::check_user_shape(body).map_err(bad_resource)?;
    let (_, mut a) = account_from_user(body).map_err(bad_resource)?;
    a.profile.email = crate::roster::normalize::email(&a.profile.email);
    Ok(a)
}

/// Refuse an email another account holds (compared as `roster check`
/// compares them: trimmed, any case). `own` is the id of the User written.
fn unique_email(dir: &mut dyn Directory, email: &str, own: Option<i64>) -> Result<(), ScimError> {
    if email.is_empty() {
        return Ok(());
    }
    let same = Filter::compare(
        filter::AttrPath::with_sub("emails", "value"),
        filter::CompareOp::Eq,
        email,
    );
    // One indexed look-up (`lower(email)`), with no time cap to set.
    let holders = dir.user_ids_where(&ListQuery {
        schema: super::attrs::for_kind(Kind::User),
        filter: Some(&same),
        sort_by: None,
        descending: false,
        offset: 0,
        limit: 2,
        scope: None,
        timeout: None,
    })?;
    if holders.iter().any(|id| Some(*id) != own) {
        return Err(super::writes::email_taken());
    }
    Ok(())
}

/// The groups whose users the User `id` manages, by name.
fn managed_groups(dir: &mut dyn Directory, id: i64) -> Result<Vec<String>, ScimError> {
    let Some(u) = dir.user(id)? else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for g in &u.groups {
        if let Some(rec) = dir.group(g.id)?
            && rec.members.iter().any(|m| m.id == id && m.user_manager)
        {
            names.push(rec.group.name);
        }
    }
    Ok(names)
}

/// What a create leaves: the new resource's name, and for a User the
/// record the store now holds, when the store says the new row's id.
struct Created {
    name: String,
    user: Option<UserRecord>,
    /// The id of the new User's manager.
    manager: Option<i64>,
}

/// What the writer's User create returns: the store's id and time for the
/// new row (when the store says them), the account as written, and the id
/// of its manager.
pub struct NewUser {
    stored: Option<(i64, String)>,
    account: Account,
    manager: Option<i64>,
}

/// A User create, checked, as the writer runs it: owning what it needs.
/// The new User's email comes with it.
fn user_create(ctx: &Ctx, body: &Value) -> Result<(String, CreateFn<NewUser>), ScimError> {
    ctx.caller.admin_only("creating a User")?;
    let mut account = account_of(body)?;
    check_user(&account, None)?;
    if body.get("roles").is_none_or(Value::is_null) {
        account.roles = ctx.config.catalog.default_roles.clone();
    }
    let cred = credential(body)?;
    let fields: Vec<(ScimField, String)> = USER_FIELDS
        .iter()
        .filter_map(|(field, key)| text(body, key).map(|x| (*field, x.to_string())))
        .collect();
    let email = account.profile.email.clone();
    let (config, caller) = (std::sync::Arc::clone(&ctx.config), ctx.caller.clone());
    let write: CreateFn<NewUser> = Box::new(move |s, dir| {
        // Run again if it was written together with creates of which one
        // was refused: from what the request asked each time.
        let (mut account, cred) = (account.clone(), cred.clone());
        super::catalog::check_grants(&config.catalog, dir, &account, None)?;
        let manager = manager_as(&caller, dir, &mut account, None)?;
        // Checked by the statement that writes the row where the store
        // can (no look-up of its own under the write lock).
        if !s.refuse_taken_emails() {
            unique_email(dir, &account.profile.email, None)?;
        }
        s.create_account_with_roles(&account.user_name, &account.profile, &account.roles, cred)?;
        let roles = Account {
            roles: account.roles.clone(),
            ..Account::new(
                &account.user_name,
                account.profile.clone(),
                account.credential,
            )
        };
        change_grants(s, &account.user_name, Some(&roles), &account)?;
        if let Some(m) = &account.case_manager {
            s.set_case_manager(&account.user_name, Some(m))?;
        }
        if !account.active {
            s.deactivate_account(&account.user_name)?;
        }
        for (field, x) in &fields {
            s.set_scim_field(Owner::Account, &account.user_name, *field, Some(x))?;
        }
        Ok(NewUser {
            stored: s.created_account(&account.user_name)?,
            account,
            manager,
        })
    });
    Ok((email, write))
}

/// A User created: the store keeps what the request holds as it is (the
/// email already lower-cased), stamped with the session's time, in no group
/// yet.
fn created_user(body: &Value, new: NewUser) -> Created {
    let NewUser {
        stored,
        account,
        manager,
    } = new;
    let name = account.user_name.clone();
    let user = stored.map(|(id, at)| UserRecord {
        id,
        account,
        created: at.clone(),
        modified: at,
        external_id: text(body, "externalId").map(str::to_string),
        display_name: text(body, "displayName").map(str::to_string),
        groups: Vec::new(),
    });
    Created {
        name,
        user,
        manager,
    }
}

/// Create a resource.
fn create_in(ctx: &Ctx, kind: Kind, body: &Value) -> Result<Created, ScimError> {
    match kind {
        Kind::User => {
            let (email, write) = user_create(ctx, body)?;
            let new = ctx.create(Some(&email), write)?;
            Ok(created_user(body, new))
        }
        Kind::Group => {
            ctx.caller.admin_only("creating a Group")?;
            let g = resource::group_from_resource(body).map_err(bad_resource)?;
            let name = g.group.name.clone();
            ctx.write(|s, dir| {
                s.create_group(&g.group.name, g.group.kind, g.group.lwia)?;
                if let Some(x) = text(body, "externalId") {
                    s.set_scim_field(Owner::Group, &g.group.name, ScimField::ExternalId, Some(x))?;
                }
                set_members(
                    ctx,
                    s,
                    dir,
                    &g.group.name,
                    &BTreeMap::new(),
                    &member_flags(&g, &[]),
                )
            })?;
            Ok(Created {
                name,
                user: None,
                manager: None,
            })
        }
    }
}

/// The resource just created, as stored. A User is built from the request
/// and the id the store's write returned; where the store does not say it,
/// the User is read back (its row and groups by name, one statement). A
/// Group is read back (two statements).
fn created_value(ctx: &Ctx, kind: Kind, created: Created) -> Result<Value, ScimError> {
    let missing = |id: i64| move || ScimError::not_found(kind.name(), &id.to_string());
    if let Some(u) = created.user {
        // Only an admin token creates Users: it sees every manager.
        return Ok(user_json(&ctx.base, &u, created.manager));
    }
    let name = created.name;
    let mut dir = ctx.read()?;
    let lost = || {
        ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "created, but cannot be read back",
        )
    };
    match kind {
        Kind::User => {
            let u = dir.user_named(&name)?.ok_or_else(lost)?;
            let id = u.id;
            shown_user(ctx, dir.as_mut(), u, missing(id))
        }
        Kind::Group => {
            let id = dir.group_id(&name)?.ok_or_else(lost)?;
            load(ctx, dir.as_mut(), kind, &id.to_string())
        }
    }
}

/// POST: the new resource as stored.
pub fn create_value(ctx: &Ctx, kind: Kind, body: &Value) -> Result<Value, ScimError> {
    check_text(body)?;
    let created = create_in(ctx, kind, body)?;
    created_value(ctx, kind, created)
}

/// A User create queued for the writer ([`queue_user`]).
pub struct QueuedUser {
    ctx: Ctx,
    body: Value,
    answer: tokio::sync::oneshot::Receiver<Result<NewUser, ScimError>>,
}

/// POST /Users up to the writer: the body checked and the create queued.
/// The request's store connection goes back to the pool meanwhile.
pub fn queue_user(ctx: Ctx, body: &[u8]) -> Result<QueuedUser, ScimError> {
    let body = parse_body(body)?;
    check_text(&body)?;
    let (email, write) = user_create(&ctx, &body)?;
    let answer = ctx.queue_create(Some(&email), write)?;
    ctx.let_go();
    Ok(QueuedUser { ctx, body, answer })
}

impl QueuedUser {
    /// The answer once the create is committed (or refused).
    pub async fn finish(self) -> Result<Response, ScimError> {
        let new = super::writes::answer(self.answer).await?;
        let created = created_user(&self.body, new);
        let v = match created.user {
            // Only an admin token creates Users: it sees every manager.
            Some(u) => user_json(&self.ctx.base, &u, created.manager),
            None => {
                let ctx = self.ctx;
                tokio::task::spawn_blocking(move || created_value(&ctx, Kind::User, created))
                    .await
                    .map_err(|_| {
                        ScimError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            None,
                            "created, but cannot be read back",
                        )
                    })??
            }
        };
        Ok(respond(StatusCode::CREATED, &v))
    }
}

pub fn create(ctx: &Ctx, kind: Kind, body: &[u8]) -> Result<Response, ScimError> {
    let v = create_value(ctx, kind, &parse_body(body)?)?;
    Ok(respond(StatusCode::CREATED, &v))
}

/// Make the store hold `new` in place of the resource `current` (both as
/// SCIM JSON), within one transaction.
fn replace_with(
    ctx: &Ctx,
    s: &mut dyn Session,
    dir: &mut dyn Directory,
    kind: Kind,
    current: &Value,
    new: &Value,
    password_hash: Option<&str>,
) -> Result<(), ScimError> {
    match kind {
        Kind::User => {
            ctx.caller.admin_only("changing a User")?;
            let (_, mut cur) = account_from_user(current).map_err(bad_resource)?;
            let id = current["id"].as_str().and_then(|i| i.parse::<i64>().ok());
            if password_hash.is_some() {
                signs_in_with_password(dir, id, &cur.user_name)?;
            }
            // As rendered by this server: the manager's user name is its
            // displayName.
            cur.case_manager = current
                .pointer(&format!(
                    "/{}/manager/displayName",
                    resource::EXT_ENTERPRISE
                ))
                .and_then(Value::as_str)
                .map(str::to_string);
            let mut next = account_of(new)?;
            check_user(&next, Some(&cur))?;
            if new.get("active").is_none() {
                next.active = cur.active;
            }
            super::catalog::check_grants(&ctx.config.catalog, dir, &next, Some(&cur))?;
            resolve_manager(ctx, dir, &mut next, id)?;
            if next.profile.email != cur.profile.email {
                unique_email(dir, &next.profile.email, id)?;
            }
            // The policy for user-manager grants holds after the write:
            // deactivating an account revokes its grants (so a provider can
            // always deprovision); a new role the policy does not allow is
            // refused while the account holds grants.
            let grants = match id {
                Some(n) if !next.active || next.roles != cur.roles => managed_groups(dir, n)?,
                _ => Vec::new(),
            };
            let roles = &ctx.config.policy.user_manager_roles;
            if next.active && !grants.is_empty() && !may_hold_grants(roles, &next.roles) {
                let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                let shown: Vec<String> =
                    grants.iter().map(|g| format!("`{}`", excerpt(g))).collect();
                return Err(ScimError::bad(
                    "invalidValue",
                    format!(
                        "roles: this User manages the users of {}; the policy lets only {} manage a group's users: \
                         take the User out of those groups' userManagers first",
                        shown.join(", "),
                        if allowed.is_empty() {
                            "no role".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            }
            let mut name = cur.user_name.clone();
            if next.user_name != cur.user_name {
                s.rename_account(&cur.user_name, &next.user_name)?;
                name = next.user_name.clone();
            }
            if !next.active {
                for g in &grants {
                    s.set_user_manager(&name, g, false)?;
                }
            }
            let (a, b) = (&cur.profile, &next.profile);
            let fields: Vec<String> = [
                ("email", a.email != b.email),
                ("first_name", a.first_name != b.first_name),
                ("last_name", a.last_name != b.last_name),
                ("birth_date", a.birth_date != b.birth_date),
                ("phone", a.phone != b.phone),
                ("extension", a.extension != b.extension),
                ("zip", a.zip != b.zip),
            ]
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(f, _)| f.to_string())
            .collect();
            if !fields.is_empty() {
                s.update_profile(&name, b, &fields)?;
            }
            change_grants(s, &name, Some(&cur), &next)?;
            let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (a, b) => a == b,
            };
            if !same(&cur.case_manager, &next.case_manager) {
                s.set_case_manager(&name, next.case_manager.as_deref())?;
            }
            match (cur.active, next.active) {
                (true, false) => s.deactivate_account(&name)?,
                (false, true) => s.reactivate_account(&name)?,
                _ => {}
            }
            for (field, key) in USER_FIELDS {
                if text(current, key) != text(new, key) {
                    s.set_scim_field(Owner::Account, &name, field, text(new, key))?;
                }
            }
            if let Some(hash) = password_hash {
                s.set_password(&name, hash)?;
            }
            Ok(())
        }
        Kind::Group => {
            let cur = resource::group_from_resource(current).map_err(bad_resource)?;
            let next = resource::group_from_resource(new).map_err(bad_resource)?;
            let mut name = cur.group.name.clone();
            if next.group.name != cur.group.name
                || next.group.kind != cur.group.kind
                || next.group.lwia != cur.group.lwia
            {
                ctx.caller
                    .admin_only("renaming a group or changing its type or LWIA")?;
                s.update_group(
                    &cur.group.name,
                    &next.group.name,
                    next.group.kind,
                    next.group.lwia,
                )?;
                name = next.group.name.clone();
            }
            if text(current, "externalId") != text(new, "externalId") {
                ctx.caller.admin_only("changing a group's externalId")?;
                s.set_scim_field(
                    Owner::Group,
                    &name,
                    ScimField::ExternalId,
                    text(new, "externalId"),
                )?;
            }
            let removed: Vec<String> = cur
                .members
                .iter()
                .filter(|m| !next.members.contains(m))
                .cloned()
                .collect();
            set_members(
                ctx,
                s,
                dir,
                &name,
                &member_flags(&cur, &[]),
                &member_flags(&next, &removed),
            )
        }
    }
}

/// Member id → user-manager flag. A user listed under `userManagers` is a
/// member with the grant; one taken out of `members` (`removed`) loses the
/// grant too.
fn member_flags(g: &GroupResource, removed: &[String]) -> BTreeMap<String, bool> {
    let mut m: BTreeMap<String, bool> = g.members.iter().map(|id| (id.clone(), false)).collect();
    for id in g.managers.iter().filter(|id| !removed.contains(id)) {
        m.insert(id.clone(), true);
    }
    m
}

fn set_members(
    ctx: &Ctx,
    s: &mut dyn Session,
    dir: &mut dyn Directory,
    group: &str,
    have: &BTreeMap<String, bool>,
    want: &BTreeMap<String, bool>,
) -> Result<(), ScimError> {
    let mut ids = BTreeMap::new();
    for id in have.keys().chain(want.keys()) {
        let n = id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ScimError::bad(
                "invalidValue",
                format!("member `{}` is not a User id of this store", excerpt(id)),
            )
        })?;
        ids.insert(id.clone(), n);
    }
    let all: Vec<i64> = ids.values().copied().collect();
    let names: BTreeMap<i64, String> = dir.user_names(&all)?.into_iter().collect();
    // A scoped token adds only people already in one of its groups; anyone
    // else reads as an id that does not exist (404, the body of GET).
    if let Some(scope) = &ctx.caller.scope {
        let added: Vec<i64> = want
            .keys()
            .filter(|id| !have.contains_key(*id))
            .map(|id| ids[id])
            .collect();
        let reachable = dir.members_of(scope, &added)?;
        if let Some(id) = want
            .keys()
            .filter(|id| !have.contains_key(*id))
            .find(|id| !reachable.contains(&ids[*id]))
        {
            return Err(ScimError::not_found("User", id));
        }
    }
    let name_of = |id: &String| {
        names.get(&ids[id]).ok_or_else(|| {
            ScimError::bad(
                "invalidValue",
                format!("no User with id `{}` in this store", excerpt(id)),
            )
        })
    };
    let granted: Vec<&String> = want
        .iter()
        .filter(|(id, flag)| **flag && have.get(*id) != Some(&true))
        .map(|(id, _)| id)
        .collect();
    for id in granted {
        name_of(id)?;
        may_manage_users(ctx, dir, id, ids[id])?;
    }
    for (id, _) in have.iter().filter(|(id, _)| !want.contains_key(*id)) {
        s.remove_membership(name_of(id)?, group)?;
    }
    for (id, flag) in want {
        match have.get(id) {
            None => s.add_membership(name_of(id)?, group, *flag)?,
            Some(old) if old != flag => s.set_user_manager(name_of(id)?, group, *flag)?,
            Some(_) => {}
        }
    }
    Ok(())
}

/// Turn the manager id a User body names into its user name, refusing an
/// id that names no User (or one a scoped token cannot see) and the User
/// itself (`own`: the id of the User written). Returns the manager's id.
fn resolve_manager(
    ctx: &Ctx,
    dir: &mut dyn Directory,
    a: &mut Account,
    own: Option<i64>,
) -> Result<Option<i64>, ScimError> {
    manager_as(&ctx.caller, dir, a, own)
}

/// [`resolve_manager`] for `caller`.
fn manager_as(
    caller: &super::Caller,
    dir: &mut dyn Directory,
    a: &mut Account,
    own: Option<i64>,
) -> Result<Option<i64>, ScimError> {
    let Some(id) = a.case_manager.take() else {
        return Ok(None);
    };
    let attr = format!("{}:manager", resource::EXT_ENTERPRISE);
    let unknown = || {
        ScimError::bad(
            "invalidValue",
            format!(
                "{attr}: no User has id `{}`; give the id of an existing User",
                excerpt(&id)
            ),
        )
    };
    let n = id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(unknown)?;
    if own == Some(n) {
        return Err(ScimError::bad(
            "invalidValue",
            format!("{attr}: a User cannot be its own manager; give another User's id"),
        ));
    }
    let found = dir.user_names(&[n])?;
    let (_, name) = found.into_iter().next().ok_or_else(unknown)?;
    if let Some(scope) = &caller.scope
        && dir.members_of(scope, &[n])?.is_empty()
    {
        return Err(unknown());
    }
    a.case_manager = Some(name);
    Ok(Some(n))
}

/// Give account `name` the roles and entitlements of `next`, from those
/// of `cur` (none for a new account).
fn change_grants(
    s: &mut dyn Session,
    name: &str,
    cur: Option<&Account>,
    next: &Account,
) -> Result<(), ScimError> {
    let (roles, ents) = cur.map_or((&[][..], &[][..]), |c| {
        (c.roles.as_slice(), c.entitlements.as_slice())
    });
    for r in next.roles.iter().filter(|r| !roles.contains(r)) {
        s.grant_role(name, r)?;
    }
    for e in next.entitlements.iter().filter(|e| !ents.contains(e)) {
        s.grant_entitlement(name, e)?;
    }
    for e in ents.iter().filter(|e| !next.entitlements.contains(e)) {
        s.revoke_entitlement(name, e)?;
    }
    for r in roles.iter().filter(|r| !next.roles.contains(r)) {
        s.revoke_role(name, r)?;
    }
    Ok(())
}

/// Whether an account with these roles may manage a group's users.
fn may_hold_grants(allowed: &[String], roles: &[String]) -> bool {
    allowed.iter().any(|a| roles.iter().any(|r| r == a.trim()))
}

/// The policy's rules for a user-manager grant, as `roster plan` checks
/// them: the account is active and holds an allowed role.
fn may_manage_users(ctx: &Ctx, dir: &mut dyn Directory, id: &str, n: i64) -> Result<(), ScimError> {
    let Some(u) = dir.user(n)? else {
        return Err(ScimError::not_found("User", id));
    };
    let roles = &ctx.config.policy.user_manager_roles;
    if !u.account.active {
        return Err(ScimError::bad(
            "invalidValue",
            format!(
                "userManagers: User {id} is inactive; only active accounts may manage a group's users"
            ),
        ));
    }
    if !may_hold_grants(roles, &u.account.roles) {
        let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Err(ScimError::bad(
            "invalidValue",
            format!(
                "userManagers: User {id} has role `{}`; the policy lets only {} manage a group's users",
                u.account.roles.join("`, `"),
                if allowed.is_empty() {
                    "no role".to_string()
                } else {
                    allowed.join(", ")
                }
            ),
        ));
    }
    Ok(())
}

/// `password` never leaves the server, so a resource read back holds none:
/// one in the resource a write makes came from the request.
fn without_password(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|k, _| !k.eq_ignore_ascii_case("password"));
    }
    v
}

fn update(
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
    password_hash: Option<&str>,
    next: impl FnOnce(&Value) -> Result<Value, ScimError>,
) -> Result<Value, ScimError> {
    ctx.write(|s, dir| {
        let current = load(ctx, dir, kind, id)?;
        if_match(headers, &current)?;
        let new = without_password(next(&current)?);
        replace_with(ctx, s, dir, kind, &current, &new, password_hash)
    })?;
    let mut dir = ctx.read()?;
    load(ctx, dir.as_mut(), kind, id)
}

const PASSWORD_EMPTY: &str = "password: an empty password cannot be set; give the new password, \
     or leave out password to keep the current one";
const PASSWORD_REMOVED: &str = "password: a password cannot be removed; replace it with a new one, \
     or set active to false so the User cannot sign in";

/// The new password a User write gives (`value`: what the request says
/// `password` is; `None`: it does not name it, and the password stays),
/// hashed with Argon2id before the write's transaction, after the token
/// is known to be an admin's. `password` is writeOnly and never returned
/// (RFC 7643 §4.1.1); neither it nor its hash is in an answer, the log or
/// an error.
fn password_hash(ctx: &Ctx, value: Option<&Value>) -> Result<Option<String>, ScimError> {
    let password = match value {
        None => return Ok(None),
        Some(Value::String(p)) if p.is_empty() => {
            return Err(ScimError::bad("invalidValue", PASSWORD_EMPTY));
        }
        Some(Value::String(p)) => p,
        Some(_) => {
            return Err(ScimError::bad(
                "invalidValue",
                "password must be a string: the new password",
            ));
        }
    };
    ctx.caller.admin_only("changing a User")?;
    crate::secrets::hash_password(password)
        .map(Some)
        .map_err(|e| ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e))
}

/// Refuse a password for an account that signs in with SSO: it has none
/// to change.
fn signs_in_with_password(
    dir: &mut dyn Directory,
    id: Option<i64>,
    user_name: &str,
) -> Result<(), ScimError> {
    let Some(u) = id.map(|n| dir.user(n)).transpose()?.flatten() else {
        return Ok(());
    };
    if u.account.credential == crate::domain::CredentialState::None {
        return Err(ScimError::bad(
            "invalidValue",
            format!(
                "password: User `{}` signs in with single sign-on (SSO) and has no password to set; \
                 leave out password",
                excerpt(user_name)
            ),
        ));
    }
    Ok(())
}

/// The value the operations leave in a User's `password`, in order (the
/// last wins); `None` when none names it. Taking it out, or setting it to
/// null, is refused: an account keeps a password once it has one.
fn patched_password(ops: &[patch::Operation]) -> Result<Option<Value>, ScimError> {
    let key = |v: &Value| -> Option<Value> {
        let obj = v.as_object()?;
        let core = obj
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(resource::USER))
            .map(|(_, v)| v);
        [Some(v), core]
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .flat_map(|o| o.iter())
            .filter(|(k, _)| k.eq_ignore_ascii_case("password"))
            .map(|(_, v)| v.clone())
            .next_back()
    };
    let mut found = None;
    for o in ops {
        let value = match &o.path {
            // `password.x` or `password[…]`: an invalid path, refused as one.
            Some((_, p))
                if p.ext.is_none()
                    && p.attr == "password"
                    && p.sub.is_none()
                    && p.filter.is_none() =>
            {
                Some(o.value.clone().unwrap_or(Value::Null))
            }
            Some((_, p)) if p.ext.is_none() && p.attr.is_empty() => o.value.as_ref().and_then(key),
            None => o.value.as_ref().and_then(key),
            Some(_) => None,
        };
        match value {
            None => {}
            Some(_) if o.op == patch::Op::Remove => {
                return Err(ScimError::bad("invalidValue", PASSWORD_REMOVED));
            }
            Some(Value::Null) => return Err(ScimError::bad("invalidValue", PASSWORD_REMOVED)),
            Some(v) => found = Some(v),
        }
    }
    Ok(found)
}

/// PUT: the resource as the body says; a User's password as it is unless
/// the body gives a new one.
pub fn replace_value(
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    body: Value,
    headers: &HeaderMap,
) -> Result<Value, ScimError> {
    check_text(&body)?;
    let hash = match kind {
        Kind::User => {
            let given = body
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("password")))
                .map(|(_, v)| v)
                .filter(|v| !v.is_null());
            password_hash(ctx, given)?
        }
        Kind::Group => None,
    };
    update(ctx, kind, id, headers, hash.as_deref(), |_| Ok(body))
}

/// PATCH: the operations applied to the resource as it is.
pub fn patch_value(
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    body: &Value,
    headers: &HeaderMap,
) -> Result<Value, ScimError> {
    check_text(body)?;
    let ops = patch::operations(body)?;
    let hash = match kind {
        Kind::User => password_hash(ctx, patched_password(&ops)?.as_ref())?,
        Kind::Group => None,
    };
    update(ctx, kind, id, headers, hash.as_deref(), |current| {
        let mut v = current.clone();
        patch::apply(&mut v, &ops)?;
        Ok(v)
    })
}

pub fn replace(
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<Response, ScimError> {
    let v = replace_value(ctx, kind, id, parse_body(body)?, headers)?;
    Ok(respond(StatusCode::OK, &v))
}

pub fn patch(
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<Response, ScimError> {
    let v = patch_value(ctx, kind, id, &parse_body(body)?, headers)?;
    Ok(respond(StatusCode::OK, &v))
}

pub fn delete_value(ctx: &Ctx, kind: Kind, id: &str, headers: &HeaderMap) -> Result<(), ScimError> {
    ctx.caller
        .admin_only(&format!("deleting a {}", kind.name()))?;
    ctx.write(|s, dir| {
        let current = load(ctx, dir, kind, id)?;
        if_match(headers, &current)?;
        match kind {
            Kind::User => s.delete_account(current["userName"].as_str().unwrap_or_default())?,
            Kind::Group => s.delete_group(current["displayName"].as_str().unwrap_or_default())?,
        }
        Ok(())
    })
}

pub fn delete(ctx: &Ctx, kind: Kind, id: &str, headers: &HeaderMap) -> Result<Response, ScimError> {
    delete_value(ctx, kind, id, headers)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
