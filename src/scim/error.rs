//! A SCIM error (RFC 7644 §3.12): the status, the `scimType` and a
//! `detail` that never echoes a request at its full size.

use super::resource::ERROR;
use http::StatusCode;
use serde_json::{Value, json};

/// Most characters of an error's `detail`.
pub const MAX_DETAIL: usize = 500;

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug, Clone)]
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
            detail: super::clip(&detail, MAX_DETAIL).into_owned(),
        }
    }
    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            None,
            format!("{what} {} not found", super::excerpt(id)),
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
