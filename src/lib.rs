//! `roster`: a declarative roster reconciler.
pub mod app;
pub mod check;
pub mod cli;
pub mod domain;
pub mod finding;
pub mod mail;
pub mod plan;
pub mod report;
pub mod resolve;
pub mod roster;
pub mod scim;
pub mod secrets;
pub mod serve;
pub mod store;
