//! The SQL store, written once over a small connection layer ([`conn`]),
//! with what SQLite and PostgreSQL do differently in their adapters.

pub mod columns;
pub mod conn;
pub mod directory;
pub mod filter;
pub mod postgres;
pub mod sqlite;

use super::StoreError;
use super::directory::ListQuery;
use crate::scim::filter::FilterError;
use columns::{Mapped, Table};
use conn::Dialect;
use filter::Sql;

/// A listing's filter translated for `dialect`, its placeholders numbered
/// from 1, and its ORDER BY: the sort attribute (NULLs last whichever the
/// direction, RFC 7644 §3.4.2.3), then the table's key so pages never
/// overlap.
pub fn listing(
    q: &ListQuery,
    table: &Table,
    dialect: Dialect,
) -> Result<(Option<Sql>, String), StoreError> {
    let attrs = Mapped {
        schema: q.schema,
        table,
    };
    let sql = q
        .filter
        .map(|f| filter::to_sql(f, &attrs, dialect, 1))
        .transpose()
        .map_err(StoreError::Filter)?;
    let order = match q.sort_by {
        None => table.key.to_string(),
        Some(path) => {
            let expr = filter::order_by(path, &attrs).ok_or_else(|| {
                StoreError::Filter(FilterError {
                    scim_type: "invalidValue",
                    ..FilterError::new(format!("cannot sort by `{path}`"))
                })
            })?;
            let dir = if q.descending { "DESC" } else { "ASC" };
            format!("{expr} {dir} NULLS LAST, {}", table.key)
        }
    };
    Ok((sql, order))
}
