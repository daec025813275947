//! What `roster serve` needs of a store beyond planning: resources by id,
//! filtered and sorted pages of them, and API tokens. Filters arrive as the
//! SCIM filter's AST ([`crate::scim::filter`]) over the attributes of a
//! [`Schema`]; each store translates them into its own queries.

use super::StoreError;
use crate::domain::{Account, Group};
use crate::scim::filter::{AttrPath, Filter, Schema};
use std::time::Duration;

/// One page of a listing: the filter, the sort attribute, and the window.
pub struct ListQuery<'a> {
    /// The attributes `filter` and `sort_by` may name.
    pub schema: &'a dyn Schema,
    pub filter: Option<&'a Filter>,
    /// Sort by this attribute (single-valued), then by id.
    pub sort_by: Option<&'a AttrPath>,
    pub descending: bool,
    /// 0-based offset.
    pub offset: u64,
    pub limit: u64,
    /// Group-scoped tokens see only these groups (by id) and their members.
    pub scope: Option<&'a [i64]>,
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

#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub digest: String,
    pub scope: Scope,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// What a token may reach. A scope is kept as the JSON array of its groups'
/// ids, so a renamed group keeps its tokens and a group deleted and made
/// again under the same name gets none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Admin,
    /// The groups the token may manage, with their names now.
    Groups(Vec<GroupRef>),
    /// A stored scope that cannot be read, or names a group that is gone:
    /// it grants nothing.
    Broken(String),
}

impl Scope {
    /// The scope stored as `stored` (NULL: admin), its groups looked up by
    /// `names`. Anything but an array of ids of existing groups is
    /// [`Scope::Broken`], never admin.
    pub fn read(
        stored: Option<&str>,
        names: impl FnOnce(&[i64]) -> Result<Vec<GroupRef>, StoreError>,
    ) -> Result<Scope, StoreError> {
        let Some(text) = stored else {
            return Ok(Scope::Admin);
        };
        let ids = match serde_json::from_str::<Vec<i64>>(text) {
            Ok(ids) => ids,
            Err(_) => return Ok(Scope::Broken("its stored scope cannot be read".into())),
        };
        let mut found = names(&ids)?;
        found.sort_by(|a, b| a.name.cmp(&b.name));
        match ids.iter().find(|id| !found.iter().any(|g| g.id == **id)) {
            Some(id) => Ok(Scope::Broken(format!(
                "group #{id} of its scope no longer exists"
            ))),
            None => Ok(Scope::Groups(found)),
        }
    }

    /// The scope as stored: the groups' ids.
    pub fn stored(ids: &[i64]) -> String {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        serde_json::json!(ids).to_string()
    }
}

/// Read access for the SCIM service provider.
pub trait Directory {
    /// The total matching and one page of users.
    fn users(&mut self, q: &ListQuery) -> Result<(u64, Vec<UserRecord>), StoreError>;
    fn user(&mut self, id: i64) -> Result<Option<UserRecord>, StoreError>;
    /// The ids of one page of the users `q` selects, without their total.
    fn user_ids_where(&mut self, q: &ListQuery) -> Result<Vec<i64>, StoreError> {
        Ok(self.users(q)?.1.into_iter().map(|u| u.id).collect())
    }
    /// The user with this user name (case-insensitive).
    fn user_named(&mut self, user_name: &str) -> Result<Option<UserRecord>, StoreError> {
        match self.user_ids(&[user_name.to_string()])?.first() {
            Some((id, _)) => self.user(*id),
            None => Ok(None),
        }
    }
    fn groups(&mut self, q: &ListQuery) -> Result<(u64, Vec<GroupRecord>), StoreError>;
    fn group(&mut self, id: i64) -> Result<Option<GroupRecord>, StoreError>;
    /// Ids of the accounts with these user names (case-insensitive), in any order.
    fn user_ids(&mut self, user_names: &[String]) -> Result<Vec<(i64, String)>, StoreError>;
    /// User names of these account ids; unknown ids are left out.
    fn user_names(&mut self, ids: &[i64]) -> Result<Vec<(i64, String)>, StoreError>;
    fn group_id(&mut self, name: &str) -> Result<Option<i64>, StoreError>;
    /// Ids and names of these groups; unknown ids are left out.
    fn group_refs(&mut self, ids: &[i64]) -> Result<Vec<GroupRef>, StoreError>;
    /// Ids of the accounts among `ids` that are members of one of `groups`.
    fn members_of(&mut self, groups: &[i64], ids: &[i64]) -> Result<Vec<i64>, StoreError>;
    /// The live (not revoked) token with this digest.
    fn token(&mut self, digest: &str) -> Result<Option<Token>, StoreError>;
    fn tokens(&mut self) -> Result<Vec<Token>, StoreError>;
}
