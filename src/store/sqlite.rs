//! `roster serve`'s read connections on the embedded store; the store
//! itself is [`super::sql`] over [`super::sql::sqlite`].

use super::StoreError;
use super::sql::sqlite::{Sqlite, empty_in_memory, value_of};
use crate::domain::{Account, GroupType};
use rusqlite::Connection;

mod directory;

const ACCOUNT_COLUMNS: &str = super::sql::ACCOUNT_COLUMNS;

fn sql_err(url: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sql {
        url: url.to_string(),
        source,
    }
}

/// An account from the first 11 columns of `r` ([`ACCOUNT_COLUMNS`]).
fn account_from_row(r: &rusqlite::Row) -> rusqlite::Result<Account> {
    let values = (0..11)
        .map(|i| r.get_ref(i).map(value_of))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    super::sql::account_from_row(&super::sql::conn::Row::new(values)).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(super) fn group_type(s: &str) -> GroupType {
    s.parse().unwrap_or_default()
}

/// A read connection of `roster serve`.
pub struct SqliteReader {
    url: String,
    conn: Connection,
}

impl super::Served for SqliteReader {
    fn end_read(&mut self) -> Result<(), StoreError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn
            .execute_batch("ROLLBACK")
            .map_err(sql_err(&self.url))
    }
    fn begin_read(&mut self) -> Result<(), StoreError> {
        self.end_read()?;
        self.conn.execute_batch("BEGIN").map_err(sql_err(&self.url))
    }
}

impl SqliteReader {
    /// In a read transaction. A store that does not exist yet reads as
    /// empty; nothing is created.
    pub fn open(url: &str, path: &str) -> Result<Self, StoreError> {
        let conn = match super::sql::open_snapshot(&Sqlite::new(url, path))? {
            Some(c) => c.into_raw(),
            None => empty_in_memory(url)?,
        };
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteReader {
            url: url.to_string(),
            conn,
        })
    }
}
