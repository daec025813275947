//! Discovery (RFC 7644 §4): what this provider supports, its resource types
//! and schemas. Public, like the RFC's examples: nothing here is personal.

use super::Shared;
use super::catalog::Catalog;
use super::{MAX_PAYLOAD, MAX_RESULTS, ScimError, respond};
use crate::scim::resource::{
    CORE_JSON, ENTERPRISE_JSON, EXT_ENTERPRISE, EXT_GROUP, EXT_USER, EXTENSIONS_JSON, GROUP,
    LIST_RESPONSE, USER,
};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Most operations in one Bulk request.
pub const BULK_MAX_OPERATIONS: usize = 1000;

pub async fn service_provider_config(headers: HeaderMap) -> Response {
    let base = super::base_url(&headers);
    respond(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/roster/roster#serve",
            "patch": {"supported": true},
            "bulk": {"supported": true, "maxOperations": BULK_MAX_OPERATIONS, "maxPayloadSize": MAX_PAYLOAD},
            "filter": {"supported": true, "maxResults": MAX_RESULTS},
            "changePassword": {"supported": true},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A token made with `roster token create`",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
        }),
    )
}

fn resource_type_list(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users",
            "description": "User accounts", "schema": USER,
            "schemaExtensions": [
                {"schema": EXT_USER, "required": false},
                {"schema": EXT_ENTERPRISE, "required": false},
            ],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "Organizations and project groups", "schema": GROUP,
            "schemaExtensions": [{"schema": EXT_GROUP, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": items.len(),
        "itemsPerPage": items.len(),
        "startIndex": 1,
        "Resources": items,
    })
}

pub async fn resource_types(headers: HeaderMap) -> Response {
    respond(
        StatusCode::OK,
        &list(resource_type_list(&super::base_url(&headers))),
    )
}

pub async fn resource_type(headers: HeaderMap, Path(id): Path<String>) -> Response {
    match resource_type_list(&super::base_url(&headers))
        .into_iter()
        .find(|r| r["id"] == id.as_str())
    {
        Some(r) => respond(StatusCode::OK, &r),
        None => ScimError::not_found("resource type", &id).into_response(),
    }
}

/// The served schemas; `roles` and `entitlements` list the catalog's
/// values as `canonicalValues` (a kind whose values are group names lists
/// none).
fn schema_list(base: &str, catalog: &Catalog) -> Vec<Value> {
    let parse = |s: &str| serde_json::from_str::<Vec<Value>>(s).unwrap_or_default();
    let mut all = parse(CORE_JSON);
    all.extend(parse(EXTENSIONS_JSON));
    all.extend(parse(ENTERPRISE_JSON));
    let entitlements: Vec<String> = catalog
        .entitlements
        .iter()
        .flat_map(|(kind, values)| values.iter().flatten().map(move |v| format!("{kind}:{v}")))
        .collect();
    let kinds: Vec<&String> = catalog.entitlements.keys().collect();
    for s in &mut all {
        let id = s["id"].as_str().unwrap_or_default().to_string();
        s["meta"]["location"] = json!(format!("{base}/Schemas/{id}"));
        if id != USER {
            continue;
        }
        for a in s["attributes"].as_array_mut().into_iter().flatten() {
            let canonical: [(&str, Value); 2] = match a["name"].as_str() {
                Some("roles") => [("value", json!(catalog.roles)), ("", Value::Null)],
                Some("entitlements") if !entitlements.is_empty() => {
                    [("value", json!(entitlements)), ("type", json!(kinds))]
                }
                _ => continue,
            };
            for sub in a["subAttributes"].as_array_mut().into_iter().flatten() {
                if let Some((_, values)) = canonical.iter().find(|(n, _)| sub["name"] == *n) {
                    sub["canonicalValues"] = values.clone();
                }
            }
        }
    }
    all
}

pub async fn schemas(State(server): State<Shared>, headers: HeaderMap) -> Response {
    respond(
        StatusCode::OK,
        &list(schema_list(&super::base_url(&headers), &server.catalog)),
    )
}

pub async fn schema(
    State(server): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match schema_list(&super::base_url(&headers), &server.catalog)
        .into_iter()
        .find(|s| {
            s["id"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(&id))
        }) {
        Some(s) => respond(StatusCode::OK, &s),
        None => ScimError::not_found("schema", &id).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shipped_schemas_parse() {
        let mut catalog = super::Catalog::of(&Default::default(), false);
        catalog
            .entitlements
            .insert("products".into(), Some(vec!["webcenter".into()]));
        let all = super::schema_list("http://x", &catalog);
        assert_eq!(all.len(), 5);
        let text = all[0].to_string();
        assert!(
            text.contains(r#""canonicalValues":["public-viewer","individual"]"#),
            "{text}"
        );
        assert!(
            text.contains(r#""canonicalValues":["products:webcenter"]"#),
            "{text}"
        );
    }
}
