//! What `roster serve` needs of a store beyond planning: resources by id,
//! filtered and sorted pages of them, and API tokens. The filter arrives
//! already translated to a SQL fragment with bound parameters
//! ([`crate::scim::filter`]); the store only runs it.

use super::{Account, Group, StoreError};
use crate::scim::filter::{Dialect, Sql};
use std::time::Duration;

/// One page of a listing: the WHERE fragment (over `accounts a` or
/// `groups g`), the ORDER BY expression, and the window.
pub struct ListQuery<'a> {
    pub filter: Option<&'a Sql>,
    pub order_by: Option<&'a str>,
    pub descending: bool,
    /// 0-based offset.
    pub offset: u64,
    pub limit: u64,
    /// Group-scoped tokens see only these groups and their members.
    pub scope: Option<&'a [String]>,
    /// How long the listing's queries may run, together; beyond it they
    /// are cancelled and the listing fails with [`StoreError::TimedOut`].
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct MemberRef {
    pub id: i64,
    pub user_name: String,
    pub user_manager: bool,
}

#[derive(Debug, Clone)]
pub struct GroupRef {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: i64,
    pub account: Account,
    pub created: String,
    pub modified: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub groups: Vec<GroupRef>,
}

#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub id: i64,
    pub group: Group,
    pub created: String,
    pub modified: String,
    pub external_id: Option<String>,
    pub members: Vec<MemberRef>,
}

/// An API token as stored: never the token itself, only its digest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Token {
    pub name: String,
    #[serde(skip)]
    pub digest: String,
    /// `None`: admin. Otherwise the groups the token may manage.
    pub scope: Option<Vec<String>>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// Read access for the SCIM service provider.
pub trait Directory {
    fn dialect(&self) -> Dialect;
    /// The total matching and one page of users.
    fn users(&mut self, q: &ListQuery) -> Result<(u64, Vec<UserRecord>), StoreError>;
    fn user(&mut self, id: i64) -> Result<Option<UserRecord>, StoreError>;
    fn groups(&mut self, q: &ListQuery) -> Result<(u64, Vec<GroupRecord>), StoreError>;
    fn group(&mut self, id: i64) -> Result<Option<GroupRecord>, StoreError>;
    /// Ids of the accounts with these user names (case-insensitive), in any order.
    fn user_ids(&mut self, user_names: &[String]) -> Result<Vec<(i64, String)>, StoreError>;
    /// User names of these account ids; unknown ids are left out.
    fn user_names(&mut self, ids: &[i64]) -> Result<Vec<(i64, String)>, StoreError>;
    fn group_id(&mut self, name: &str) -> Result<Option<i64>, StoreError>;
    /// The live (not revoked) token with this digest.
    fn token(&mut self, digest: &str) -> Result<Option<Token>, StoreError>;
    fn tokens(&mut self) -> Result<Vec<Token>, StoreError>;
}

/// The ORDER BY of a listing: the sort expression (NULLs last whichever the
/// direction, RFC 7644 §3.4.2.3), then `key` so pages never overlap.
pub fn order(q: &ListQuery, key: &str) -> String {
    let dir = if q.descending { "DESC" } else { "ASC" };
    match q.order_by {
        Some(expr) => format!("{expr} {dir} NULLS LAST, {key}"),
        None => key.to_string(),
    }
}
