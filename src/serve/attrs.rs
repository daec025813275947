//! Which SCIM attributes a filter or `sortBy` may name, under their canonical
//! names and types: the schemas roster serves (`/Schemas`), seen from a
//! filter. Where each lives in a store is the store's business.

use super::kind::Kind as Resource;
use crate::scim::filter::{AttrPath, Field, Kind, Schema, SubField};
use crate::scim::resource::{EXT_ENTERPRISE, EXT_GROUP, EXT_USER, GROUP, USER};

const CI: Kind = Kind::Text { case_exact: false };
const EXACT: Kind = Kind::Text { case_exact: true };

struct Users;
struct Groups;

pub fn for_kind(kind: Resource) -> &'static dyn Schema {
    match kind {
        Resource::User => &Users,
        Resource::Group => &Groups,
    }
}

/// `id`, `externalId` and `meta.*`, which both resources have.
fn common(p: &AttrPath) -> Option<Field> {
    let f = match () {
        _ if p.is("externalId", None) => Field::new("externalId", EXACT),
        _ if p.is("id", None) => Field::new("id", EXACT),
        _ if p.is("meta", Some("created")) => Field::new("meta.created", Kind::DateTime),
        _ if p.is("meta", Some("lastModified")) => Field::new("meta.lastModified", Kind::DateTime),
        _ => return None,
    };
    Some(f)
}

const GROUPS: &[SubField] = &[SubField::new("value", EXACT), SubField::new("display", CI)];

const ROLES: &[SubField] = &[SubField::new("value", CI)];

/// `value` is `KIND:VALUE`, `type` the kind.
const ENTITLEMENTS: &[SubField] = &[SubField::new("value", EXACT), SubField::new("type", EXACT)];

const MEMBERS: &[SubField] = &[
    SubField::new("value", EXACT),
    SubField::new("display", CI),
    SubField::new("type", CI),
];

impl Schema for Users {
    fn field(&self, p: &AttrPath) -> Option<Field> {
        if p.urn_is_or_none(EXT_USER) && p.urn.is_some() {
            return match p.attr.to_ascii_lowercase().as_str() {
                "birthdate" if p.sub.is_none() => Some(Field::new("birthDate", EXACT)),
                "postalcode" if p.sub.is_none() => Some(Field::new("postalCode", EXACT)),
                "phoneextension" if p.sub.is_none() => Some(Field::new("phoneExtension", EXACT)),
                _ => None,
            };
        }
        if p.urn.is_some() && p.urn_is_or_none(EXT_ENTERPRISE) {
            let sub = p.sub.as_deref().map(str::to_ascii_lowercase);
            return match (p.attr.to_ascii_lowercase().as_str(), sub.as_deref()) {
                ("manager", None | Some("value")) => Some(Field::new("manager.value", EXACT)),
                ("manager", Some("displayname")) => Some(Field::new("manager.displayName", CI)),
                _ => None,
            };
        }
        if !p.urn_is_or_none(USER) {
            return None;
        }
        if let Some(f) = common(p) {
            return Some(f);
        }
        let attr = p.attr.to_ascii_lowercase();
        let sub = p.sub.as_deref().map(str::to_ascii_lowercase);
        Some(match (attr.as_str(), sub.as_deref()) {
            ("username", None) => Field::new("userName", CI),
            ("displayname", None) => Field::new("displayName", CI),
            ("name", Some("givenname")) => Field::new("name.givenName", CI),
            ("name", Some("familyname")) => Field::new("name.familyName", CI),
            ("active", None) => Field::new("active", Kind::Bool),
            // One address per account, the primary work address.
            ("emails", None | Some("value")) => Field::new("emails.value", CI),
            ("emails", Some("type")) => Field::new("emails.type", CI),
            ("emails", Some("primary")) => Field::new("emails.primary", Kind::Bool),
            ("phonenumbers", None | Some("value")) => Field::new("phoneNumbers.value", EXACT),
            ("phonenumbers", Some("type")) => Field::new("phoneNumbers.type", CI),
            ("roles", _) => Field::multi("roles", CI, ROLES),
            ("entitlements", _) => Field::multi("entitlements", EXACT, ENTITLEMENTS),
            ("groups", _) => Field::multi("groups", EXACT, GROUPS),
            _ => return None,
        })
    }
}

impl Schema for Groups {
    fn field(&self, p: &AttrPath) -> Option<Field> {
        if p.urn.is_some() && p.urn_is_or_none(EXT_GROUP) {
            return match p.attr.to_ascii_lowercase().as_str() {
                "type" if p.sub.is_none() => Some(Field::new("type", CI)),
                "lwia" if p.sub.is_none() => Some(Field::new("lwia", Kind::Int)),
                "usermanagers" => Some(Field::multi("userManagers", EXACT, MEMBERS)),
                _ => None,
            };
        }
        if !p.urn_is_or_none(GROUP) {
            return None;
        }
        if let Some(f) = common(p) {
            return Some(f);
        }
        if p.is("displayName", None) {
            return Some(Field::new("displayName", CI));
        }
        if p.attr.eq_ignore_ascii_case("members") {
            return Some(Field::multi("members", EXACT, MEMBERS));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_path;
    use crate::store::sql::columns::{GROUPS, Mapped, Table, USERS};
    use crate::store::sql::filter::Attributes;

    /// Every attribute the schemas let a filter name is kept by the store:
    /// a name spelt one way here and another there would be refused as
    /// unknown.
    #[test]
    fn every_attribute_a_filter_may_name_has_a_column() {
        let user_paths = [
            "userName",
            "displayName",
            "name.givenName",
            "name.familyName",
            "active",
            "emails",
            "emails.value",
            "emails.type",
            "emails.primary",
            "phoneNumbers",
            "phoneNumbers.type",
            "roles",
            "roles.value",
            "entitlements",
            "entitlements.value",
            "entitlements.type",
            &format!("{EXT_ENTERPRISE}:manager"),
            &format!("{EXT_ENTERPRISE}:manager.value"),
            &format!("{EXT_ENTERPRISE}:manager.displayName"),
            "id",
            "externalId",
            "meta.created",
            "meta.lastModified",
            "groups",
            "groups.value",
            "groups.display",
            &format!("{EXT_USER}:birthDate"),
            &format!("{EXT_USER}:postalCode"),
            &format!("{EXT_USER}:phoneExtension"),
            &format!("{USER}:userName"),
        ];
        let group_paths = [
            "displayName",
            "id",
            "externalId",
            "meta.created",
            "meta.lastModified",
            "members",
            "members.value",
            "members.display",
            "members.type",
            &format!("{EXT_GROUP}:type"),
            &format!("{EXT_GROUP}:lwia"),
            &format!("{EXT_GROUP}:userManagers"),
            &format!("{EXT_GROUP}:userManagers.display"),
        ];
        let check = |schema: &'static dyn Schema, table: &Table, paths: &[&str]| {
            let mapped = Mapped { schema, table };
            for p in paths {
                let path = parse_path(p).unwrap();
                assert!(schema.field(&path).is_some(), "{p}: not in the schema");
                let attr = mapped.resolve(&path).or_else(|| {
                    // A sub-attribute comes from its multi-valued parent.
                    mapped.resolve(&path.parent()).filter(|a| a.multi.is_some())
                });
                assert!(attr.is_some(), "{p}: no column");
                if let Some(multi) = attr.and_then(|a| a.multi) {
                    let field = schema.field(&path).unwrap();
                    assert_eq!(multi.subs.len(), field.subs.map_or(0, <[_]>::len), "{p}");
                }
            }
        };
        check(for_kind(Resource::User), &USERS, &user_paths);
        check(for_kind(Resource::Group), &GROUPS, &group_paths);
        // And nothing else.
        for p in ["nickName", "name.middleName", "urn:x:userName"] {
            assert!(Users.field(&parse_path(p).unwrap()).is_none(), "{p}");
        }
    }
}
