//! The PostgreSQL store's public knobs; the store itself is [`super::sql`]
//! over [`super::sql::postgres`].

pub use super::sql::postgres::{LOCK_KEY, redact, set_statement_timeout};
