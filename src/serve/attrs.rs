//! Where each SCIM attribute lives in the store's tables, for filters and
//! sorting. Expressions are plain SQL that SQLite and PostgreSQL share: flags
//! are tested bare (`m.user_manager`), as PostgreSQL's booleans do not
//! compare with SQLite's 0 and 1.
//!
//! Multi-valued attributes are semi-joins, not correlated `EXISTS`: the
//! condition picks the groups (or accounts) first, `mg.id IN (SELECT … WHERE
//! {})`, then their memberships by index, then the owners; no subquery names
//! a column of the outer row, so both stores run each once per statement,
//! whatever the number of rows scanned outside, and a filter's `or` chain
//! over group names is one pass over the groups. The keys are `NOT NULL`, so
//! `IN` stays two-valued.

use super::kind::Kind as Resource;
use crate::scim::filter::{Attr, AttrPath, Attributes, Kind, SubAttr};
use crate::scim::resource::{EXT_GROUP, EXT_USER, GROUP, USER};

const CI: Kind = Kind::Text { case_exact: false };
const EXACT: Kind = Kind::Text { case_exact: true };

struct Users;
struct Groups;

pub fn for_kind(kind: Resource) -> Box<dyn Attributes> {
    match kind {
        Resource::User => Box::new(Users),
        Resource::Group => Box::new(Groups),
    }
}

fn is(p: &AttrPath, attr: &str, sub: Option<&str>) -> bool {
    p.is(attr, sub)
}

/// `id` and `meta.*`, which both resources have.
fn common(p: &AttrPath, alias: &str, modified: &str) -> Option<Attr> {
    if is(p, "externalId", None) {
        Some(Attr::new(format!("{alias}.external_id"), EXACT))
    } else if is(p, "id", None) {
        Some(Attr::new(format!("CAST({alias}.id AS TEXT)"), EXACT))
    } else if is(p, "meta", Some("created")) {
        Some(Attr::new(format!("{alias}.created_at"), Kind::DateTime))
    } else if is(p, "meta", Some("lastModified")) {
        Some(Attr::new(modified.to_string(), Kind::DateTime))
    } else {
        None
    }
}

impl Attributes for Users {
    fn resolve(&self, p: &AttrPath) -> Option<Attr> {
        if p.urn_is_or_none(EXT_USER) && p.urn.is_some() {
            return match p.attr.to_ascii_lowercase().as_str() {
                "birthdate" if p.sub.is_none() => Some(Attr::new("a.birth_date", EXACT)),
                "postalcode" if p.sub.is_none() => Some(Attr::new("a.zip", EXACT)),
                "phoneextension" if p.sub.is_none() => Some(Attr::new("a.extension", EXACT)),
                _ => None,
            };
        }
        if !p.urn_is_or_none(USER) {
            return None;
        }
        if let Some(a) = common(p, "a", "a.updated_at") {
            return Some(a);
        }
        let attr = p.attr.to_ascii_lowercase();
        let sub = p.sub.as_deref().map(str::to_ascii_lowercase);
        Some(match (attr.as_str(), sub.as_deref()) {
            ("username", None) => Attr::new("a.user_name", CI),
            ("displayname", None) => Attr::new("a.display_name", CI),
            ("name", Some("givenname")) => Attr::new("a.first_name", CI),
            ("name", Some("familyname")) => Attr::new("a.last_name", CI),
            ("active", None) => Attr::new("a.active", Kind::Bool),
            // One address per account, kept as the primary work address.
            // `pr` already treats an empty address as absent.
            ("emails", None | Some("value")) => Attr::new("a.email", CI),
            ("emails", Some("type")) => Attr::new("CASE WHEN a.email <> '' THEN 'work' END", CI),
            ("emails", Some("primary")) => Attr::new("(a.email <> '')", Kind::Bool),
            ("phonenumbers", None | Some("value")) => Attr::new("a.phone", EXACT),
            ("phonenumbers", Some("type")) => {
                Attr::new("CASE WHEN a.phone IS NOT NULL THEN 'work' END", CI)
            }
            ("roles", None | Some("value")) => Attr::new("a.role", CI),
            ("groups", _) => Attr::new("CAST(mg.id AS TEXT)", EXACT).multi(
                "a.id IN (SELECT m.account_id FROM memberships m WHERE m.group_id IN \
                 (SELECT mg.id FROM groups mg WHERE {}))",
                vec![
                    SubAttr::new("value", "CAST(mg.id AS TEXT)", EXACT),
                    SubAttr::new("display", "mg.name", CI),
                ],
            ),
            _ => return None,
        })
    }
}

fn members(exists: &str) -> Attr {
    Attr::new("CAST(mu.id AS TEXT)", EXACT).multi(
        exists,
        vec![
            SubAttr::new("value", "CAST(mu.id AS TEXT)", EXACT),
            SubAttr::new("display", "mu.user_name", CI),
            SubAttr::new("type", "'User'", CI),
        ],
    )
}

impl Attributes for Groups {
    fn resolve(&self, p: &AttrPath) -> Option<Attr> {
        if p.urn.is_some() && p.urn_is_or_none(EXT_GROUP) {
            return match p.attr.to_ascii_lowercase().as_str() {
                "type" if p.sub.is_none() => Some(Attr::new("g.type", CI)),
                "lwia" if p.sub.is_none() => Some(Attr::new("g.lwia", Kind::Int)),
                "usermanagers" => Some(members(
                    "g.id IN (SELECT m.group_id FROM memberships m WHERE m.user_manager \
                     AND m.account_id IN (SELECT mu.id FROM accounts mu WHERE {}))",
                )),
                _ => None,
            };
        }
        if !p.urn_is_or_none(GROUP) {
            return None;
        }
        if let Some(a) = common(p, "g", "coalesce(g.updated_at, g.created_at)") {
            return Some(a);
        }
        if is(p, "displayName", None) {
            return Some(Attr::new("g.name", CI));
        }
        if p.attr.eq_ignore_ascii_case("members") {
            return Some(members(
                "g.id IN (SELECT m.group_id FROM memberships m WHERE m.account_id IN \
                 (SELECT mu.id FROM accounts mu WHERE {}))",
            ));
        }
        None
    }
}
