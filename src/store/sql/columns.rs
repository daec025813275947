//! Where each SCIM attribute lives in the store's tables, for filters and
//! sorting: the canonical names of [`crate::scim::filter::Field`] mapped to
//! SQL that SQLite and PostgreSQL share. Flags are tested bare
//! (`m.user_manager`), as PostgreSQL's booleans do not compare with SQLite's
//! 0 and 1.
//!
//! Multi-valued attributes are semi-joins, not correlated `EXISTS`: the
//! condition picks the groups (or accounts) first, `mg.id IN (SELECT … WHERE
//! {})`, then their memberships by index, then the owners; no subquery names
//! a column of the outer row, so both stores run each once per statement,
//! whatever the number of rows scanned outside, and a filter's `or` chain
//! over group names is one pass over the groups. The keys are `NOT NULL`, so
//! `IN` stays two-valued.

use super::filter::{Attr, Attributes, SubAttr};
use crate::scim::filter::{AttrPath, Schema};

/// A table of resources: the columns of its attributes and, for each
/// multi-valued one, its semi-join template (one `{}` for the condition)
/// and the columns of its sub-attributes inside it.
pub struct Table {
    /// `FROM` text naming the table with its alias, e.g. `accounts a`.
    pub from: &'static str,
    /// The key the listings order by last, so pages never overlap.
    pub key: &'static str,
    columns: &'static [(&'static str, &'static str)],
    multi: &'static [(&'static str, &'static str)],
}

pub const USERS: Table = Table {
    from: "accounts a",
    key: "a.id",
    columns: &[
        ("externalId", "a.external_id"),
        ("id", "CAST(a.id AS TEXT)"),
        ("meta.created", "a.created_at"),
        ("meta.lastModified", "a.updated_at"),
        ("birthDate", "a.birth_date"),
        ("postalCode", "a.zip"),
        ("phoneExtension", "a.extension"),
        ("userName", "a.user_name"),
        ("displayName", "a.display_name"),
        ("name.givenName", "a.first_name"),
        ("name.familyName", "a.last_name"),
        ("active", "a.active"),
        // One address per account, kept as the primary work address. `pr`
        // already treats an empty address as absent.
        ("emails.value", "a.email"),
        ("emails.type", "CASE WHEN a.email <> '' THEN 'work' END"),
        ("emails.primary", "(a.email <> '')"),
        ("phoneNumbers.value", "a.phone"),
        (
            "phoneNumbers.type",
            "CASE WHEN a.phone IS NOT NULL THEN 'work' END",
        ),
        ("roles.value", "ar.role"),
        ("entitlements.value", "ae.kind || ':' || ae.value"),
        ("entitlements.type", "ae.kind"),
        // The case manager: its id, and its user name.
        ("manager.value", "CAST(a.case_manager_id AS TEXT)"),
        (
            "manager.displayName",
            "(SELECT cm.user_name FROM accounts cm WHERE cm.id = a.case_manager_id)",
        ),
        ("groups.value", "CAST(mg.id AS TEXT)"),
        ("groups.display", "mg.name"),
    ],
    multi: &[
        (
            "groups",
            "a.id IN (SELECT m.account_id FROM memberships m WHERE m.group_id IN \
             (SELECT mg.id FROM groups mg WHERE {}))",
        ),
        (
            "roles",
            "a.id IN (SELECT ar.account_id FROM account_roles ar WHERE {})",
        ),
        (
            "entitlements",
            "a.id IN (SELECT ae.account_id FROM account_entitlements ae WHERE {})",
        ),
    ],
};

pub const GROUPS: Table = Table {
    from: "groups g",
    key: "g.id",
    columns: &[
        ("externalId", "g.external_id"),
        ("id", "CAST(g.id AS TEXT)"),
        ("meta.created", "g.created_at"),
        ("meta.lastModified", "coalesce(g.updated_at, g.created_at)"),
        ("type", "g.type"),
        ("lwia", "g.lwia"),
        ("displayName", "g.name"),
        ("members.value", "CAST(mu.id AS TEXT)"),
        ("members.display", "mu.user_name"),
        ("members.type", "'User'"),
        ("userManagers.value", "CAST(mu.id AS TEXT)"),
        ("userManagers.display", "mu.user_name"),
        ("userManagers.type", "'User'"),
    ],
    multi: &[
        (
            "members",
            "g.id IN (SELECT m.group_id FROM memberships m WHERE m.account_id IN \
             (SELECT mu.id FROM accounts mu WHERE {}))",
        ),
        (
            "userManagers",
            "g.id IN (SELECT m.group_id FROM memberships m WHERE m.user_manager \
             AND m.account_id IN (SELECT mu.id FROM accounts mu WHERE {}))",
        ),
    ],
};

fn find(list: &'static [(&'static str, &'static str)], name: &str) -> Option<&'static str> {
    list.iter().find(|(n, _)| *n == name).map(|(_, sql)| *sql)
}

impl Table {
    /// The SQL of the attribute named `name` (canonical), if kept here.
    pub fn column(&self, name: &str) -> Option<&'static str> {
        find(self.columns, name)
    }
}

/// A [`Schema`]'s attributes over a [`Table`]: what the translation to SQL
/// looks paths up in. An attribute the schema knows and the table does not
/// keep is unknown, like one the schema does not know.
pub struct Mapped<'a> {
    pub schema: &'a dyn Schema,
    pub table: &'a Table,
}

impl Attributes for Mapped<'_> {
    fn resolve(&self, path: &AttrPath) -> Option<Attr> {
        let field = self.schema.field(path)?;
        let Some(subs) = field.subs else {
            return Some(Attr::new(self.table.column(field.name)?, field.kind));
        };
        let exists = find(self.table.multi, field.name)?;
        let column = |sub: &str| self.table.column(&format!("{}.{sub}", field.name));
        let subs = subs
            .iter()
            .map(|s| Some(SubAttr::new(s.name, column(s.name)?, s.kind)))
            .collect::<Option<Vec<_>>>()?;
        Some(Attr::new(column("value")?, field.kind).multi(exists, subs))
    }
}
