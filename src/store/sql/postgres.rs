//! PostgreSQL's side of [`Conn`]: `?N` rewritten to `$N` once per statement
//! text, statements prepared once per connection, one [`Value`] fitting any
//! column by the parameter's type, and the server's error codes.

use super::conn::{Conn, Dialect, Row, Value, dollar_placeholders};
use crate::store::StoreError;
use ::postgres::error::SqlState;
use ::postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use ::postgres::{Client, Statement};
use bytes::BytesMut;
use std::collections::HashMap;
use std::error::Error;
use std::time::Instant;

/// Prepared statements a connection keeps; beyond, the cache starts over
/// (served listings vary their SQL by filter).
const STATEMENTS_MAX: usize = 256;

/// A PostgreSQL connection that runs shared SQL.
pub struct PgConn {
    url: String,
    client: Client,
    statements: HashMap<String, Statement>,
    in_tx: bool,
}

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let int = |i: i64, out: &mut BytesMut| -> Result<IsNull, BoxError> {
            match *ty {
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                    i.to_string().as_str().to_sql(ty, out)
                }
                _ => i.to_sql(ty, out),
            }
        };
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => int(*i, out),
            Value::Bool(b) if *ty == Type::BOOL => b.to_sql(ty, out),
            Value::Bool(b) => int(i64::from(*b), out),
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Bytes(b) => b.as_slice().to_sql(ty, out),
            Value::TextList(l) => l.to_sql(ty, out),
            Value::IntList(l) => match *ty {
                Type::INT4_ARRAY => l
                    .iter()
                    .map(|i| i32::try_from(*i))
                    .collect::<Result<Vec<_>, _>>()?
                    .to_sql(ty, out),
                _ => l.to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A row's column as a [`Value`], by its type.
fn value_of(r: &::postgres::Row, i: usize) -> Result<Value, ::postgres::Error> {
    let ty = r.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(i)?.into(),
        Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(i64::from).into(),
        Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(i64::from).into(),
        Type::BOOL => r.try_get::<_, Option<bool>>(i)?.into(),
        Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.into(),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => r.try_get::<_, Option<Vec<String>>>(i)?.into(),
        Type::INT8_ARRAY => r.try_get::<_, Option<Vec<i64>>>(i)?.into(),
        // Text and anything else that reads as text (an error says if not).
        _ => r.try_get::<_, Option<String>>(i)?.into(),
    })
}

/// A client error with the server's own words, which the client's `Display`
/// leaves out.
pub fn describe(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; {h}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                s.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            s
        }
    }
}

/// A client error as roster reports it.
pub fn store_error(url: &str, e: &::postgres::Error) -> StoreError {
    match e.code() {
        Some(&SqlState::UNIQUE_VIOLATION) => StoreError::Taken(describe(e)),
        Some(&SqlState::LOCK_NOT_AVAILABLE) => StoreError::Locked {
            url: url.to_string(),
            waited_ms: 0,
        },
        Some(&SqlState::QUERY_CANCELED) => StoreError::TimedOut,
        _ => StoreError::Postgres {
            url: url.to_string(),
            message: describe(e),
        },
    }
}

impl PgConn {
    /// `url` is the store's URL without its password.
    pub fn new(url: &str, client: Client) -> Self {
        PgConn {
            url: url.to_string(),
            client,
            statements: HashMap::new(),
            in_tx: false,
        }
    }

    /// The client itself, for what only PostgreSQL has.
    pub fn raw(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare(&dollar_placeholders(sql))
            .map_err(|e| store_error(&self.url, &e))?;
        if self.statements.len() >= STATEMENTS_MAX {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Conn for PgConn {
    fn url(&self) -> &str {
        &self.url
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        self.client
            .execute(&s, &refs(params))
            .map_err(|e| store_error(&self.url, &e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql)?;
        let rows = self
            .client
            .query(&s, &refs(params))
            .map_err(|e| store_error(&self.url, &e))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| value_of(r, i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row::new)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| store_error(&self.url, &e))
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client
            .batch_execute(sql)
            .map_err(|e| store_error(&self.url, &e))?;
        // The last transaction statement of the batch says where it ends.
        for part in sql.split(';') {
            let word = part.trim_start().to_ascii_uppercase();
            if word.starts_with("BEGIN") || word.starts_with("START TRANSACTION") {
                self.in_tx = true;
            } else if word.starts_with("COMMIT")
                || word.starts_with("END")
                || (word.starts_with("ROLLBACK") && !word.starts_with("ROLLBACK TO"))
            {
                self.in_tx = false;
            }
        }
        Ok(())
    }

    fn deadline(&mut self, deadline: Option<Instant>) -> Result<(), StoreError> {
        let Some(at) = deadline else {
            return self.batch("SET LOCAL statement_timeout TO DEFAULT");
        };
        let left = at.saturating_duration_since(Instant::now());
        // Never beyond the cap every statement of this process has.
        let cap =
            crate::store::postgres::statement_timeout_ms().map_or(i32::MAX as u128, u128::from);
        let ms = left.as_millis().min(cap).min(i32::MAX as u128);
        // 0 would mean "no limit".
        if ms == 0 {
            return Err(StoreError::TimedOut);
        }
        self.batch(&format!("SET LOCAL statement_timeout = {ms}"))
    }

    fn in_transaction(&self) -> bool {
        self.in_tx
    }
}
