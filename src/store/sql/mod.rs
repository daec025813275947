//! The SQL store, written once over a small connection layer ([`conn`]),
//! with what SQLite and PostgreSQL do differently in their adapters.

pub mod conn;
pub mod postgres;
pub mod sqlite;
