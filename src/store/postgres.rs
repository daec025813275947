//! `roster serve`'s read connections on the PostgreSQL store; the store
//! itself is [`super::sql`] over [`super::sql::postgres`].

use super::StoreError;
pub(crate) use super::sql::postgres::statement_timeout_ms;
pub use super::sql::postgres::{LOCK_KEY, redact, set_statement_timeout};
use super::sql::postgres::{Postgres, describe};
use crate::domain::{Account, CredentialState, Profile};
use ::postgres::{Client, Row};

mod directory;

const ACCOUNT_COLUMNS: &str = super::sql::ACCOUNT_COLUMNS;

fn sql_err(url: &str) -> impl Fn(::postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Postgres {
        url: url.to_string(),
        message: describe(&e),
    }
}

fn account_from_row(r: &Row) -> Account {
    let role: String = r.get(8);
    let credential: String = r.get(10);
    Account {
        user_name: r.get(0),
        profile: Profile {
            email: r.get(1),
            first_name: r.get(2),
            last_name: r.get(3),
            birth_date: r.get(4),
            phone: r.get(5),
            extension: r.get(6),
            zip: r.get(7),
            role: role.parse().unwrap_or_default(),
        },
        active: r.get(9),
        credential: CredentialState::parse(&credential),
    }
}

fn lwia_from(v: Option<i64>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok())
}

/// A read connection of `roster serve`.
pub struct PgReader {
    url: String,
    client: Client,
    /// No roster tables yet: everything reads as empty at revision 0.
    empty: bool,
}

impl PgReader {
    /// In a read transaction. A store that does not exist yet reads as
    /// empty; nothing is created.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let shown = redact(url);
        let (client, empty) = match super::sql::open_snapshot(&Postgres::new(url))? {
            Some(c) => (c.into_raw(), false),
            None => {
                let mut c = super::sql::postgres::connect(url, &shown)?;
                c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .map_err(sql_err(&shown))?;
                (c, true)
            }
        };
        Ok(PgReader {
            url: shown,
            client,
            empty,
        })
    }
}

impl super::Served for PgReader {
    fn end_read(&mut self) -> Result<(), StoreError> {
        self.client
            .batch_execute("ROLLBACK")
            .map_err(sql_err(&self.url))
    }
    fn begin_read(&mut self) -> Result<(), StoreError> {
        self.client
            .batch_execute("ROLLBACK; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(sql_err(&self.url))
    }
}
