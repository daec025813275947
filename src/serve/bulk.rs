//! POST /Bulk (RFC 7644 §3.7): operations run in order, each as its own
//! request (and transaction); `bulkId:` references name resources created
//! earlier in the same request.

use super::discovery::BULK_MAX_OPERATIONS;
use super::kind::Kind;
use super::resources;
use super::{Ctx, ScimError, parse_body, respond};
use crate::scim::excerpt;
use crate::scim::resource::{BULK_REQUEST, BULK_RESPONSE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Replace `"bulkId:x"` strings by the ids created so far.
fn resolve(v: &mut Value, ids: &HashMap<String, String>) -> Result<(), ScimError> {
    match v {
        Value::String(s) => {
            if let Some(b) = s.strip_prefix("bulkId:") {
                *s = ids.get(b).cloned().ok_or_else(|| {
                    ScimError::new(
                        StatusCode::CONFLICT,
                        Some("invalidValue"),
                        format!(
                            "bulkId `{}` is not created by an earlier operation",
                            excerpt(b)
                        ),
                    )
                })?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|i| resolve(i, ids)),
        Value::Object(o) => o.values_mut().try_for_each(|i| resolve(i, ids)),
        _ => Ok(()),
    }
}

fn target(path: &str) -> Result<(Kind, Option<&str>), ScimError> {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let kind = match parts.next() {
        Some("Users") => Kind::User,
        Some("Groups") => Kind::Group,
        _ => {
            return Err(ScimError::bad(
                "invalidPath",
                format!("`{}` is not /Users or /Groups", excerpt(path)),
            ));
        }
    };
    Ok((kind, parts.next().filter(|s| !s.is_empty())))
}

fn one(
    ctx: &Ctx,
    op: &Value,
    ids: &mut HashMap<String, String>,
) -> Result<(StatusCode, Option<Value>), ScimError> {
    let method = op["method"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let path = op["path"]
        .as_str()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "each operation has a `path`"))?;
    let (kind, id) = target(path)?;
    let mut data = op.get("data").cloned().unwrap_or(Value::Null);
    resolve(&mut data, ids)?;
    let id = match id {
        Some(i) if i.starts_with("bulkId:") => {
            let mut v = Value::String(i.to_string());
            resolve(&mut v, ids)?;
            v.as_str().map(str::to_string)
        }
        other => other.map(str::to_string),
    };
    let mut headers = HeaderMap::new();
    if let Some(v) = op.get("version").and_then(Value::as_str)
        && let Ok(h) = HeaderValue::from_str(v)
    {
        headers.insert(header::IF_MATCH, h);
    }
    match (method.as_str(), id) {
        ("POST", None) => {
            let v = resources::create_value(ctx, kind, &data)?;
            if let (Some(b), Some(id)) =
                (op.get("bulkId").and_then(Value::as_str), v["id"].as_str())
            {
                ids.insert(b.to_string(), id.to_string());
            }
            Ok((StatusCode::CREATED, Some(v)))
        }
        ("PUT", Some(id)) => Ok((
            StatusCode::OK,
            Some(resources::replace_value(ctx, kind, &id, data, &headers)?),
        )),
        ("PATCH", Some(id)) => Ok((
            StatusCode::OK,
            Some(resources::patch_value(ctx, kind, &id, &data, &headers)?),
        )),
        ("DELETE", Some(id)) => {
            resources::delete_value(ctx, kind, &id, &headers)?;
            Ok((StatusCode::NO_CONTENT, None))
        }
        (m, _) => Err(ScimError::bad(
            "invalidSyntax",
            format!("`{} {}` is not a Bulk operation", excerpt(m), excerpt(path)),
        )),
    }
}

pub fn run(ctx: &Ctx, body: &[u8]) -> Result<Response, ScimError> {
    let body = parse_body(body)?;
    let is_bulk = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s == BULK_REQUEST));
    if !is_bulk {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("a Bulk body lists the schema {BULK_REQUEST}"),
        ));
    }
    let ops = body["Operations"]
        .as_array()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a Bulk body has an `Operations` array"))?;
    if ops.len() > BULK_MAX_OPERATIONS {
        return Err(ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!(
                "{} operations; at most {BULK_MAX_OPERATIONS} per Bulk request",
                ops.len()
            ),
        ));
    }
    let fail_on = body["failOnErrors"].as_u64().filter(|n| *n > 0);
    let mut ids = HashMap::new();
    let mut results = Vec::new();
    let mut errors = 0u64;
    for op in ops {
        let mut r = json!({"method": op["method"]});
        if let Some(b) = op.get("bulkId") {
            r["bulkId"] = b.clone();
        }
        match one(ctx, op, &mut ids) {
            Ok((status, v)) => {
                r["status"] = json!(status.as_u16().to_string());
                if let Some(v) = v {
                    r["location"] = v["meta"]["location"].clone();
                    r["version"] = v["meta"]["version"].clone();
                }
            }
            Err(e) => {
                errors += 1;
                r["status"] = json!(e.status.as_u16().to_string());
                r["response"] = e.body();
            }
        }
        results.push(r);
        if fail_on.is_some_and(|n| errors >= n) {
            break;
        }
    }
    Ok(respond(
        StatusCode::OK,
        &json!({"schemas": [BULK_RESPONSE], "Operations": results}),
    ))
}
