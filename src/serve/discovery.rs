//! Discovery (RFC 7644 §4): what this provider supports, its resource types
//! and schemas. Public, like the RFC's examples: nothing here is personal.

use super::{MAX_PAYLOAD, MAX_RESULTS, ScimError, respond};
use crate::scim::resource::{
    CORE_JSON, EXT_GROUP, EXT_USER, EXTENSIONS_JSON, GROUP, LIST_RESPONSE, USER,
};
use axum::extract::Path;
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
            "changePassword": {"supported": false},
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
            "schemaExtensions": [{"schema": EXT_USER, "required": false}],
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

fn schema_list(base: &str) -> Vec<Value> {
    let parse = |s: &str| serde_json::from_str::<Vec<Value>>(s).unwrap_or_default();
    let mut all = parse(CORE_JSON);
    all.extend(parse(EXTENSIONS_JSON));
    for s in &mut all {
        let id = s["id"].as_str().unwrap_or_default().to_string();
        s["meta"]["location"] = json!(format!("{base}/Schemas/{id}"));
    }
    all
}

pub async fn schemas(headers: HeaderMap) -> Response {
    respond(
        StatusCode::OK,
        &list(schema_list(&super::base_url(&headers))),
    )
}

pub async fn schema(headers: HeaderMap, Path(id): Path<String>) -> Response {
    match schema_list(&super::base_url(&headers))
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
        let all = super::schema_list("http://x");
        assert_eq!(all.len(), 4);
    }
}
