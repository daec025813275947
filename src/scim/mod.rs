//! SCIM 2.0 (RFC 7643/7644): the filter grammar and the resource mapping
//! shared by the client store and `roster serve`.
pub mod filter;
pub mod resource;
