//! Writing queued changes to a SCIM provider, action by action (SPEC §8):
//! groups, then accounts, then profile changes and reactivations, then one
//! PATCH per group for its memberships and grants, then deactivations.
//! Requests of a phase run concurrently. A failure stops nothing but what
//! depends on it; every failure is reported, so `plan` shows what is left.

use super::http::{Failure, Request};
use super::{Attr, Grant, MemberChange, Op, Remote};
use crate::domain::{Group, Profile, ProfileField as F};
use crate::scim::resource::{self, EXT_GROUP, EXT_USER, PATCH_OP};
use crate::store::audit::Change;
use crate::store::{Reader, StoreError};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

/// Failures so far, each naming the action, the request and the provider's word.
#[derive(Default)]
struct Outcome {
    applied: usize,
    failures: Vec<String>,
    /// Lower-cased user names this apply was to create and did not: their
    /// other actions fail too, even if an account of that name turns up.
    not_created: HashSet<String>,
}

impl Outcome {
    /// Fail `action` if its account was not created; true if it was failed.
    fn lost(&mut self, action: &str, user_name: &str) -> bool {
        if self.not_created.contains(&user_name.to_lowercase()) {
            self.fail(action, "skipped: the account was not created");
            true
        } else {
            false
        }
    }

    fn fail(&mut self, action: &str, why: impl Into<String>) {
        self.failures.push(format!("{action}: {}", why.into()));
    }

    /// Each of `actions` failed, for the same reason.
    fn fail_all(&mut self, actions: &[String], why: &str) {
        for a in actions {
            self.fail(a, why);
        }
    }
}

/// A PATCH of `ops` to `/{resources}/{id}`, on the version `etag` where
/// the provider keeps versions.
fn patch(resources: &str, id: &str, etag: Option<String>, ops: Vec<Value>) -> Request {
    let body = json!({"schemas": [PATCH_OP], "Operations": ops});
    let path = format!("/{resources}/{}", super::http::encode(id));
    let mut req = Request::with_body(Method::PATCH, path, body);
    req.if_match = etag;
    req
}

fn without(mut v: Value, ext: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove(ext);
    }
    if let Some(s) = v.get_mut("schemas").and_then(Value::as_array_mut) {
        s.retain(|x| x.as_str() != Some(ext));
    }
    v
}

/// PATCH operations that set these profile fields.
fn profile_ops(p: &Profile, fields: &[String], ext: bool) -> Result<Vec<Value>, String> {
    let set = |path: &str, v: Option<Value>| match v {
        Some(v) => json!({"op": "replace", "path": path, "value": v}),
        None => json!({"op": "remove", "path": path}),
    };
    let ext_path = |k: &str| format!("{EXT_USER}:{k}");
    let ext_val = |v: &Option<String>| v.as_ref().map(|s| Value::String(s.clone()));
    let mut ops = Vec::new();
    for f in fields {
        ops.push(match F::parse(f)? {
            F::Email => set(
                "emails",
                (!p.email.is_empty())
                    .then(|| json!([{"value": p.email, "type": "work", "primary": true}])),
            ),
            F::FirstName => set("name.givenName", Some(json!(p.first_name))),
            F::LastName => set("name.familyName", Some(json!(p.last_name))),
            F::Phone => set(
                "phoneNumbers",
                p.phone
                    .as_ref()
                    .map(|ph| json!([{"value": ph, "type": "work"}])),
            ),
            // The plan warned that the provider cannot keep these.
            F::BirthDate | F::Extension | F::Zip if !ext => continue,
            F::BirthDate => set(&ext_path("birthDate"), ext_val(&p.birth_date)),
            F::Extension => set(&ext_path("phoneExtension"), ext_val(&p.extension)),
            F::Zip => set(&ext_path("postalCode"), ext_val(&p.zip)),
        });
    }
    Ok(ops)
}

/// References to users; `display` only where the schema lets clients
/// write it (roster's `userManagers.display` is read-only).
fn refs(items: &[(String, String)], display: bool) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(id, name)| {
                if display {
                    json!({"value": id, "display": name})
                } else {
                    json!({"value": id})
                }
            })
            .collect(),
    )
}

fn member_filter(path: &str, id: &str) -> String {
    format!("{path}[value eq {}]", super::query::quote(id))
}

impl Remote {
    fn describe(&self, req: &Request, f: &Failure) -> String {
        let mut s = f.describe(&req.what(), &self.client.base);
        if f.status() == Some(412) {
            s.push_str("; it changed at the provider since it was read: run plan again");
        }
        s
    }

    fn if_match(&self, etag: Option<&String>) -> Option<String> {
        etag.filter(|_| self.provider.etag).cloned()
    }
}

/// Lower-cased user names of the accounts the queued changes create.
fn created(ops: &[Op]) -> HashSet<String> {
    ops.iter()
        .filter_map(|o| match o {
            Op::CreateAccount { user_name, .. } => Some(user_name.to_lowercase()),
            _ => None,
        })
        .collect()
}

/// The groups and accounts named by the queued changes, read before writing.
fn read_first(remote: &mut Remote, ops: &[Op]) -> Result<(), StoreError> {
    let created = created(ops);
    let mut users = Vec::new();
    let mut groups = Vec::new();
    for o in ops {
        match o {
            Op::CreateGroup { name, .. } => groups.push(name.clone()),
            Op::SetActive { user_name, .. }
            | Op::UpdateProfile { user_name, .. }
            | Op::Rename { user_name, .. }
            | Op::Grant { user_name, .. } => users.push(user_name.clone()),
            Op::CaseManager { user_name, manager } => {
                users.push(user_name.clone());
                users.extend(manager.clone());
            }
            Op::Member {
                user_name, group, ..
            } => {
                users.push(user_name.clone());
                groups.push(group.clone());
            }
            Op::CreateAccount { .. } => {}
        }
    }
    users.retain(|u| !created.contains(&u.to_lowercase()));
    users.sort();
    users.dedup();
    groups.sort();
    groups.dedup();
    remote.fetch(Attr::UserName, &users)?;
    remote.fetch(Attr::GroupName, &groups)
}

pub(super) fn run(mut remote: Remote, ops: Vec<Op>) -> Result<i64, StoreError> {
    if ops.is_empty() {
        return Ok(0);
    }
    let base = remote.client.base.to_string();
    let created = created(&ops);
    let needs_patch = ops.iter().any(|o| match o {
        Op::CreateGroup { .. } | Op::CreateAccount { .. } => false,
        Op::Grant { user_name, .. } => !created.contains(&user_name.to_lowercase()),
        _ => true,
    });
    if needs_patch && !remote.provider.patch {
        return Err(StoreError::Invalid(format!(
            "the SCIM provider at {base} does not support PATCH, which roster needs to change accounts and memberships; nothing was written"
        )));
    }
    let passwords = ops.iter().any(|o| {
        matches!(
            o,
            Op::CreateAccount {
                password: Some(_),
                ..
            }
        )
    });
    if passwords && !remote.provider.password {
        return Err(StoreError::Invalid(format!(
            "the SCIM provider at {base} does not take passwords (changePassword is not supported); apply with --onboarding invite; nothing was written"
        )));
    }
    // Reads fail before anything is written: then nothing is.
    read_first(&mut remote, &ops)?;
    let mut out = Outcome::default();
    create_groups(&mut remote, &ops, &mut out);
    // Accounts the roster wants inactive are created inactive.
    let deactivate: HashSet<String> = ops
        .iter()
        .filter_map(|o| match o {
            Op::SetActive {
                user_name,
                active: false,
            } => Some(user_name.to_lowercase()),
            _ => None,
        })
        .collect();
    let created_inactive = create_accounts(&mut remote, &ops, &deactivate, &mut out);
    rename_accounts(&mut remote, &ops, &mut out);
    patch_users(&mut remote, &ops, true, &HashSet::new(), &mut out);
    let members_changed = patch_groups(&mut remote, &ops, &mut out);
    reread_members(&mut remote, &ops, &members_changed);
    patch_users(&mut remote, &ops, false, &created_inactive, &mut out);
    if out.failures.is_empty() {
        Ok(0)
    } else {
        Err(StoreError::Partial {
            url: remote.url.clone(),
            applied: out.applied,
            failures: out.failures,
        })
    }
}

fn create_groups(remote: &mut Remote, ops: &[Op], out: &mut Outcome) {
    let mut names = Vec::new();
    let mut reqs = Vec::new();
    for o in ops {
        let Op::CreateGroup { name, kind, lwia } = o else {
            continue;
        };
        let action = format!("create_group {name}");
        if remote.groups.contains_key(name) {
            out.fail(
                &action,
                "the group already exists at the provider; run plan again",
            );
            continue;
        }
        let group = Group {
            name: name.clone(),
            kind: *kind,
            lwia: *lwia,
            active: true,
        };
        let mut body = resource::group_resource(&group, &[], &[]);
        if !remote.provider.group_ext {
            body = without(body, EXT_GROUP);
        }
        names.push(action);
        reqs.push(Request::with_body(Method::POST, "/Groups".into(), body));
    }
    for ((action, req), answer) in names.iter().zip(&reqs).zip(remote.phase(&reqs)) {
        match answer {
            Ok(a) => match a.body {
                // Created, but unreadable: its memberships cannot follow.
                Some(v) => match remote.keep_group(&v) {
                    Ok(()) => out.applied += 1,
                    Err(e) => out.fail(action, e.to_string()),
                },
                None => out.fail(action, "the provider created it but did not return it"),
            },
            Err(f) => out.fail(action, remote.describe(req, &f)),
        }
    }
}

/// Create the accounts; returns those created inactive.
fn create_accounts(
    remote: &mut Remote,
    ops: &[Op],
    deactivate: &HashSet<String>,
    out: &mut Outcome,
) -> HashSet<String> {
    let mut actions = Vec::new();
    // Each account's lower-cased name, and whether it is created active.
    let mut created = Vec::new();
    let mut reqs = Vec::new();
    for o in ops {
        let Op::CreateAccount {
            user_name,
            profile,
            password,
            sso,
        } = o
        else {
            continue;
        };
        let active = !deactivate.contains(&user_name.to_lowercase());
        let mut body = resource::user_resource(user_name, profile, active);
        // Grants to a new account come with its creation.
        let (mut roles, mut entitlements) = (Vec::new(), Vec::new());
        for o in ops {
            if let Op::Grant {
                user_name: u,
                what,
                grant: true,
            } = o
                && u.eq_ignore_ascii_case(user_name)
            {
                match what {
                    Grant::Role(role) => roles.push(json!({ "value": role })),
                    Grant::Entitlement(e) => entitlements.push(entitlement_value(e)),
                }
            }
        }
        for (attr, values) in [("roles", roles), ("entitlements", entitlements)] {
            if !values.is_empty() {
                body[attr] = Value::Array(values);
            }
        }
        if !remote.provider.user_ext {
            body = without(body, EXT_USER);
        } else if *sso {
            // roster's User extension tells a provider that knows it to
            // create the account with no password and no invitation.
            body[EXT_USER]["signIn"] = json!("sso");
        }
        if let Some(pw) = password {
            body["password"] = json!(pw);
        }
        actions.push(format!("create_account {user_name}"));
        out.not_created.insert(user_name.to_lowercase());
        created.push((user_name.to_lowercase(), active));
        reqs.push(Request::with_body(Method::POST, "/Users".into(), body));
    }
    let mut created_inactive = HashSet::new();
    let answers = match remote.provider.bulk {
        Some(max) if reqs.len() > 1 => create_in_bulk(remote, &reqs, max),
        _ => remote
            .phase(&reqs)
            .into_iter()
            .zip(&reqs)
            .map(|(a, req)| match a {
                Ok(a) => Ok(a.body),
                Err(f) => Err(remote.describe(req, &f)),
            })
            .collect(),
    };
    for ((action, answer), (name, active)) in actions.iter().zip(answers).zip(created) {
        match answer {
            Ok(Some(v)) => {
                if let Err(e) = remote.keep_user(&v) {
                    out.fail(action, e.to_string());
                    continue;
                }
                out.not_created.remove(&name);
                out.applied += 1;
                if !active {
                    out.applied += 1;
                    created_inactive.insert(name);
                }
            }
            Ok(None) => out.fail(action, "the provider created it but did not return it"),
            Err(why) => out.fail(action, why),
        }
    }
    created_inactive
}

/// A Bulk operation's status: a string by the RFC, a number by some providers.
fn bulk_status(op: &Value) -> Option<u16> {
    match op.get("status")? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
}

/// Creates through `POST /Bulk`, in requests of at most `max` operations
/// and the provider's payload limit; what a Bulk request as a whole fails
/// is sent one by one. Each answer is the created resource or why not.
fn create_in_bulk(
    remote: &Remote,
    reqs: &[Request],
    max: usize,
) -> Vec<Result<Option<Value>, String>> {
    let bytes = remote.provider.bulk_bytes.saturating_mul(9) / 10;
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for (i, req) in reqs.iter().enumerate() {
        let len = req.body.as_ref().map_or(0, |b| b.to_string().len()) + 100;
        match chunks.last_mut() {
            Some(c) if c.len() < max && size + len <= bytes => {
                c.push(i);
                size += len;
            }
            _ => {
                chunks.push(vec![i]);
                size = len;
            }
        }
    }
    let bulk: Vec<Request> = chunks
        .iter()
        .map(|c| {
            let ops: Vec<Value> = c
                .iter()
                .map(|&i| {
                    json!({"method": "POST", "path": reqs[i].path, "bulkId": format!("c{i}"),
                           "data": reqs[i].body})
                })
                .collect();
            Request::with_body(
                Method::POST,
                "/Bulk".into(),
                json!({"schemas": [resource::BULK_REQUEST], "Operations": ops}),
            )
        })
        .collect();
    let mut out: Vec<Option<Result<Option<Value>, String>>> = vec![None; reqs.len()];
    let mut one_by_one = Vec::new();
    for (c, answer) in chunks.iter().zip(remote.phase(&bulk)) {
        let Ok(Some(body)) = answer.map(|a| a.body) else {
            one_by_one.extend(c.iter().copied());
            continue;
        };
        let answered = body
            .get("Operations")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for op in answered {
            let Some(i) = op
                .get("bulkId")
                .and_then(Value::as_str)
                .and_then(|b| b.strip_prefix('c'))
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| c.contains(i))
            else {
                continue;
            };
            let what = format!("{} (bulk)", reqs[i].what());
            let result = match bulk_status(op) {
                Some(200..=299) => {
                    let id = op
                        .get("location")
                        .and_then(Value::as_str)
                        .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                        .filter(|id| !id.is_empty());
                    match (id, &reqs[i].body) {
                        (Some(id), Some(sent)) => {
                            // The answer holds no resource: it is what was sent, with its id.
                            let mut v = sent.clone();
                            if let Some(o) = v.as_object_mut() {
                                o.remove("password");
                            }
                            v["id"] = json!(id);
                            if let Some(version) = op.get("version") {
                                v["meta"] = json!({"version": version});
                            }
                            Ok(Some(v))
                        }
                        _ => Ok(None),
                    }
                }
                status => {
                    let detail = op
                        .get("response")
                        .and_then(|r| r.get("detail"))
                        .and_then(Value::as_str)
                        .map(|d| d.chars().take(300).collect::<String>());
                    Err(match (status, detail) {
                        (Some(s), Some(d)) => format!("{what}: HTTP {s}: {d}"),
                        (Some(s), None) => format!("{what}: HTTP {s}"),
                        (None, _) => format!("{what}: the provider's answer has no status"),
                    })
                }
            };
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(result);
            }
        }
    }
    let retry: Vec<Request> = one_by_one.iter().map(|&i| reqs[i].clone()).collect();
    for (&i, answer) in one_by_one.iter().zip(remote.phase(&retry)) {
        out[i] = Some(match answer {
            Ok(a) => Ok(a.body),
            Err(f) => Err(remote.describe(&reqs[i], &f)),
        });
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err("the provider's Bulk answer does not mention it".into())))
        .collect()
}

/// One PATCH per account: reactivations and profile changes (`early`), or
/// deactivations (last, after the memberships).
/// Renames, before every other change of an account names it anew: a
/// PATCH of `userName`, after which the new name finds the User.
fn rename_accounts(remote: &mut Remote, ops: &[Op], out: &mut Outcome) {
    let mut work = Vec::new();
    let mut reqs = Vec::new();
    for o in ops {
        let Op::Rename {
            user_name,
            new_name,
        } = o
        else {
            continue;
        };
        let action = format!("rename_account {user_name}");
        let Some(u) = remote.user_by_name(user_name) else {
            out.fail(
                &action,
                "the account was not found at the provider; run plan again",
            );
            continue;
        };
        let rename = json!({"op": "replace", "path": "userName", "value": new_name});
        let req = patch(
            "Users",
            &u.id,
            remote.if_match(u.etag.as_ref()),
            vec![rename],
        );
        work.push((u.id.clone(), user_name, new_name, action));
        reqs.push(req);
    }
    let answers = remote.phase(&reqs);
    for (((id, old, new, action), req), answer) in work.into_iter().zip(&reqs).zip(answers) {
        match answer {
            Ok(a) => {
                out.applied += 1;
                remote.by_name.remove(&old.to_lowercase());
                remote.by_name.insert(new.to_lowercase(), id.clone());
                if let Some(u) = remote.users.get_mut(&id) {
                    u.account.user_name = new.clone();
                    u.etag = a.body.as_ref().and_then(super::etag_of).or(a.etag);
                }
            }
            Err(f) => {
                let why = remote.describe(req, &f);
                out.fail(&action, why);
            }
        }
    }
}

/// The plan op of a grant or revoke of `what` (`grant_role`, …).
fn grant_op(grant: bool, what: &str) -> String {
    format!("{}_{what}", if grant { "grant" } else { "revoke" })
}

/// The PATCH operation that adds `value` to the multi-valued `attr`, or
/// removes the entry of `attr` whose value is `shown`.
fn grant_patch(attr: &str, grant: bool, value: Value, shown: &str) -> Value {
    if grant {
        json!({"op": "add", "path": attr, "value": [value]})
    } else {
        json!({"op": "remove", "path": member_filter(attr, shown)})
    }
}

fn patch_users(
    remote: &mut Remote,
    ops: &[Op],
    early: bool,
    skip: &HashSet<String>,
    out: &mut Outcome,
) {
    let created = created(ops);
    // Lower-cased user name → (actions, operations), in user-name order.
    let mut by_user: BTreeMap<String, (String, Vec<String>, Vec<Value>)> = BTreeMap::new();
    for o in ops {
        let (user_name, action, ops) = match o {
            Op::SetActive { user_name, active } if *active == early => {
                if skip.contains(&user_name.to_lowercase()) {
                    continue;
                }
                let op = Change::SetActive {
                    user_name,
                    active: *active,
                }
                .op();
                (
                    user_name,
                    format!("{op} {user_name}"),
                    vec![json!({"op": "replace", "path": "active", "value": active})],
                )
            }
            Op::Grant {
                user_name,
                what,
                grant,
            } if early => {
                // A new account's grants came with its creation.
                if created.contains(&user_name.to_lowercase()) {
                    continue;
                }
                let (attr, kind, value, shown) = match what {
                    Grant::Role(r) => ("roles", "role", json!({ "value": r }), r.clone()),
                    Grant::Entitlement(e) => {
                        let shown = format!("{}:{}", e.kind, e.value);
                        ("entitlements", "entitlement", entitlement_value(e), shown)
                    }
                };
                let patch = grant_patch(attr, *grant, value, &shown);
                let op = grant_op(*grant, kind);
                (user_name, format!("{op} {user_name} {shown}"), vec![patch])
            }
            // After every creation, so a new manager has its id.
            Op::CaseManager { user_name, manager } if early => {
                let action = format!("set_case_manager {user_name}");
                if !remote.provider.enterprise {
                    out.fail(
                        &action,
                        format!(
                            "the SCIM provider at {} does not offer the enterprise User extension ({}), where case managers are kept",
                            remote.client.base,
                            resource::EXT_ENTERPRISE
                        ),
                    );
                    continue;
                }
                let path = format!("{}:manager", resource::EXT_ENTERPRISE);
                let patch = match manager {
                    None => json!({"op": "remove", "path": path}),
                    Some(m) => match remote.user_by_name(m) {
                        Some(u) => json!({"op": "replace", "path": path, "value": {"value": u.id}}),
                        None => {
                            out.fail(
                                &action,
                                format!("the case manager {m} does not exist at the provider"),
                            );
                            continue;
                        }
                    },
                };
                (user_name, action, vec![patch])
            }
            Op::UpdateProfile {
                user_name,
                profile,
                fields,
            } if early => {
                let action = format!("update_profile {user_name}");
                match profile_ops(profile, fields, remote.provider.user_ext) {
                    Ok(ops) => (user_name, action, ops),
                    Err(e) => {
                        out.fail(&action, e);
                        continue;
                    }
                }
            }
            _ => continue,
        };
        let e = by_user
            .entry(user_name.to_lowercase())
            .or_insert_with(|| (user_name.clone(), Vec::new(), Vec::new()));
        e.1.push(action);
        e.2.extend(ops);
    }
    let mut work = Vec::new();
    let mut reqs = Vec::new();
    for (_, (user_name, actions, ops)) in by_user {
        if out.not_created.contains(&user_name.to_lowercase()) {
            for a in &actions {
                out.lost(a, &user_name);
            }
            continue;
        }
        let Some(u) = remote.user_by_name(&user_name) else {
            out.fail_all(
                &actions,
                "the account was not found at the provider; run plan again",
            );
            continue;
        };
        if ops.is_empty() {
            out.applied += actions.len();
            continue;
        }
        let req = patch("Users", &u.id, remote.if_match(u.etag.as_ref()), ops);
        work.push((u.id.clone(), actions));
        reqs.push(req);
    }
    let answers = remote.phase(&reqs);
    for (((id, actions), req), answer) in work.into_iter().zip(&reqs).zip(answers) {
        match answer {
            Ok(a) => {
                out.applied += actions.len();
                // The account as written, so a later write sends its new version.
                let kept = a.body.as_ref().is_some_and(|b| {
                    super::etag_of(b).is_some() && remote.keep_user(b).is_ok_and(|k| k == id)
                });
                if !kept && let Some(u) = remote.users.get_mut(&id) {
                    u.etag = a.body.as_ref().and_then(super::etag_of).or(a.etag);
                }
            }
            Err(f) => {
                out.fail_all(&actions, &remote.describe(req, &f));
            }
        }
    }
}

/// An entitlement as a core `entitlements` value.
fn entitlement_value(e: &crate::domain::Entitlement) -> Value {
    json!({"value": format!("{}:{}", e.kind, e.value), "type": e.kind})
}

/// The queued membership changes of one group.
#[derive(Default)]
struct GroupChanges {
    actions: Vec<String>,
    add: Vec<(String, String)>,
    add_managers: Vec<(String, String)>,
    ops: Vec<Value>,
    /// Ids of the users whose memberships these change.
    users: HashSet<String>,
}

/// A provider may count a User's `groups` in its version, so the
/// membership changes just written make the versions read stale. The
/// accounts still to be deactivated are read again: one found as roster
/// left it (apart from its groups) takes the new version; one changed by
/// someone else keeps the old, and its write is refused (HTTP 412).
fn reread_members(remote: &mut Remote, ops: &[Op], changed: &HashSet<String>) {
    if !remote.provider.etag || changed.is_empty() {
        return;
    }
    let ids: Vec<String> = ops
        .iter()
        .filter_map(|o| match o {
            Op::SetActive {
                user_name,
                active: false,
            } => remote.user_by_name(user_name).map(|u| u.id.clone()),
            _ => None,
        })
        .filter(|id| changed.contains(id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let reqs: Vec<Request> = ids
        .iter()
        .map(|id| Request::get(format!("/Users/{}", super::http::encode(id))))
        .collect();
    for (id, answer) in ids.iter().zip(remote.phase(&reqs)) {
        let Ok(a) = answer else { continue };
        let Some(body) = a.body else { continue };
        let Ok((read_id, account)) = resource::account_from_user(&body) else {
            continue;
        };
        if let Some(u) = remote.users.get_mut(id)
            && read_id == *id
            && account == u.account
        {
            u.etag = super::etag_of(&body).or(a.etag);
        }
    }
}

/// The membership PATCHes; answers the ids of the users whose memberships
/// were changed.
fn patch_groups(remote: &mut Remote, ops: &[Op], out: &mut Outcome) -> HashSet<String> {
    let managers_path = format!("{EXT_GROUP}:userManagers");
    let mut by_group: BTreeMap<&str, GroupChanges> = BTreeMap::new();
    for o in ops {
        let Op::Member {
            user_name,
            group,
            change,
        } = o
        else {
            continue;
        };
        let action = match change {
            MemberChange::Add { .. } => format!("add_membership {user_name} {group}"),
            MemberChange::Manager(true) => format!("grant_user_manager {user_name} {group}"),
            MemberChange::Manager(false) => format!("revoke_user_manager {user_name} {group}"),
            MemberChange::Remove => format!("remove_membership {user_name} {group}"),
        };
        if out.lost(&action, user_name) {
            continue;
        }
        let Some(g) = remote.groups.get(group.as_str()) else {
            out.fail(&action, "the group does not exist at the provider");
            continue;
        };
        let Some(u) = remote.user_by_name(user_name) else {
            out.fail(&action, "the account does not exist at the provider");
            continue;
        };
        let touches_managers = match change {
            MemberChange::Add { user_manager } => *user_manager,
            MemberChange::Manager(_) => true,
            MemberChange::Remove => g.res.managers.contains(&u.id),
        };
        if touches_managers && !remote.provider.group_ext {
            out.fail(
                &action,
                format!(
                    "user-manager grants cannot be stored: {}",
                    remote.limits().group_extras.unwrap_or_default()
                ),
            );
            continue;
        }
        let id = u.id.clone();
        let c = by_group.entry(group.as_str()).or_default();
        let member = (id.clone(), u.account.user_name.clone());
        match change {
            MemberChange::Add { user_manager } => {
                // Already there (a run cut short): nothing to do twice.
                if !g.res.members.contains(&id) {
                    c.add.push(member.clone());
                }
                if *user_manager && !g.res.managers.contains(&id) {
                    c.add_managers.push(member);
                }
            }
            // What is already so (a run cut short) is not asked again: a
            // remove that matches nothing is an error to some providers.
            MemberChange::Manager(true) => {
                if !g.res.managers.contains(&id) {
                    c.add_managers.push(member);
                }
            }
            MemberChange::Manager(false) => {
                if g.res.managers.contains(&id) {
                    c.ops
                        .push(json!({"op": "remove", "path": member_filter(&managers_path, &id)}));
                }
            }
            MemberChange::Remove => {
                if g.res.members.contains(&id) {
                    c.ops
                        .push(json!({"op": "remove", "path": member_filter("members", &id)}));
                }
                if touches_managers {
                    c.ops
                        .push(json!({"op": "remove", "path": member_filter(&managers_path, &id)}));
                }
            }
        }
        c.actions.push(action);
        c.users.insert(id);
    }
    let mut changed = HashSet::new();
    let mut work = Vec::new();
    let mut reqs = Vec::new();
    for (name, c) in by_group {
        let Some(g) = remote.groups.get(name) else {
            continue;
        };
        let mut ops = Vec::new();
        if !c.add.is_empty() {
            ops.push(json!({"op": "add", "path": "members", "value": refs(&c.add, true)}));
        }
        if !c.add_managers.is_empty() {
            ops.push(
                json!({"op": "add", "path": managers_path, "value": refs(&c.add_managers, false)}),
            );
        }
        ops.extend(c.ops);
        if ops.is_empty() {
            out.applied += c.actions.len();
            continue;
        }
        let req = patch("Groups", &g.res.id, remote.if_match(g.etag.as_ref()), ops);
        work.push((c.actions, c.users));
        reqs.push(req);
    }
    let answers = remote.phase(&reqs);
    for (((actions, users), req), answer) in work.into_iter().zip(&reqs).zip(answers) {
        match answer {
            Ok(_) => {
                out.applied += actions.len();
                changed.extend(users);
            }
            Err(f) => {
                out.fail_all(&actions, &remote.describe(req, &f));
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_changes_become_patch_operations() {
        let p = Profile {
            email: "a@x.org".into(),
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            birth_date: Some("1990-05-01".into()),
            phone: None,
            extension: None,
            zip: Some("60601".into()),
        };
        let fields: Vec<String> = ["email", "phone", "zip"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let ops = profile_ops(&p, &fields, true).unwrap();
        assert_eq!(ops[0]["path"], "emails");
        assert_eq!(ops[1], json!({"op": "remove", "path": "phoneNumbers"}));
        assert_eq!(ops[2]["path"], format!("{EXT_USER}:postalCode"));
        assert_eq!(ops.len(), 3);
        // Without the extension the ZIP is left out (the plan said so).
        assert_eq!(profile_ops(&p, &fields, false).unwrap().len(), 2);
        assert!(profile_ops(&p, &["shoe_size".into()], true).is_err());
        assert_eq!(
            member_filter("members", "a\"b"),
            r#"members[value eq "a\"b"]"#
        );
    }
}
