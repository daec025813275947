//! SCIM 2.0 (RFC 7643/7644): the resource mapping shared by the client store
//! and `roster serve`.
pub mod resource;
