//! The roles and entitlements a User may be given through `roster serve`
//! (SPEC §9): the catalogs of the roster given with `--roster`. A server
//! without a roster knows the default catalog (`public-viewer`,
//! `individual`, no entitlement kinds) plus what the store already holds:
//! a role some account holds, and any value of an entitlement kind some
//! account holds. Only what a write adds is checked, so an account holding
//! a grant outside the catalog can still be changed otherwise.

use super::ScimError;
use super::kind::Kind;
use crate::domain::{Account, Entitlement};
use crate::roster::model::{EntitlementCatalog, Policy};
use crate::scim::excerpt;
use crate::scim::filter::{AttrPath, CompareOp, Filter};
use crate::store::directory::{Directory, ListQuery};
use std::collections::BTreeMap;

/// What a write may grant.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub roles: Vec<String>,
    /// The roles of a User created without `roles`.
    pub default_roles: Vec<String>,
    /// Entitlement kinds and their values; `None`: the store's group names.
    pub entitlements: BTreeMap<String, Option<Vec<String>>>,
    /// The catalogs are a roster's: nothing outside them is taken.
    pub roster: bool,
}

impl Catalog {
    /// The catalogs of a roster's policy (`roster`: one was given), else
    /// the default ones.
    pub fn of(policy: &Policy, roster: bool) -> Self {
        Catalog {
            roles: policy.roles.clone(),
            default_roles: crate::domain::sorted_unique(policy.default_roles.clone()),
            entitlements: policy
                .entitlements
                .iter()
                .map(|(kind, c)| {
                    let values = match c {
                        EntitlementCatalog::Groups(_) => None,
                        EntitlementCatalog::Values(v) => Some(v.clone()),
                    };
                    (kind.clone(), values)
                })
                .collect(),
            roster,
        }
    }
}

/// Whether some account of the store matches `attr.sub eq value`.
fn held(dir: &mut dyn Directory, attr: &str, sub: &str, value: &str) -> Result<bool, ScimError> {
    let f = Filter::compare(AttrPath::with_sub(attr, sub), CompareOp::Eq, value);
    let ids = dir.user_ids_where(&ListQuery {
        schema: super::attrs::for_kind(Kind::User),
        filter: Some(&f),
        sort_by: None,
        descending: false,
        offset: 0,
        limit: 1,
        scope: None,
        timeout: None,
    })?;
    Ok(!ids.is_empty())
}

fn bad(attr: &str, what: String) -> ScimError {
    ScimError::bad("invalidValue", format!("{attr}: {what}"))
}

/// Refuse a role or entitlement `next` adds to `cur` (none: a new User)
/// that the catalog does not hold. `roster`: the catalogs are a roster's,
/// and nothing outside them is taken.
pub fn check_grants(
    catalog: &Catalog,
    dir: &mut dyn Directory,
    next: &Account,
    cur: Option<&Account>,
) -> Result<(), ScimError> {
    let had_role = |r: &String| cur.is_some_and(|c| c.roles.contains(r));
    for role in next.roles.iter().filter(|r| !had_role(r)) {
        if catalog.roles.contains(role) || (!catalog.roster && held(dir, "roles", "value", role)?) {
            continue;
        }
        return Err(bad(
            "roles",
            format!(
                "`{}` is not a role of the catalog: use {}",
                excerpt(role),
                catalog.roles.join(", ")
            ),
        ));
    }
    let had = |e: &Entitlement| cur.is_some_and(|c| c.entitlements.contains(e));
    for e in next.entitlements.iter().filter(|e| !had(e)) {
        let both = format!("{}:{}", e.kind, e.value);
        let shown = excerpt(&both);
        match catalog.entitlements.get(&e.kind) {
            Some(Some(values)) => {
                if !values.contains(&e.value) {
                    return Err(bad(
                        "entitlements",
                        format!(
                            "`{shown}`: `{}` is not in the {} catalog: use {}",
                            excerpt(&e.value),
                            excerpt(&e.kind),
                            values.join(", ")
                        ),
                    ));
                }
            }
            Some(None) => {
                if dir.group_id(&e.value)?.is_none() {
                    return Err(bad(
                        "entitlements",
                        format!(
                            "`{shown}`: {} takes group names, and no group is named `{}`",
                            excerpt(&e.kind),
                            excerpt(&e.value)
                        ),
                    ));
                }
            }
            None if !catalog.roster && held(dir, "entitlements", "type", &e.kind)? => {}
            None => {
                let kinds: Vec<&str> = catalog.entitlements.keys().map(String::as_str).collect();
                return Err(bad(
                    "entitlements",
                    format!(
                        "`{shown}`: `{}` is not an entitlement kind: {}",
                        excerpt(&e.kind),
                        if kinds.is_empty() {
                            "the server knows none; give it a roster whose policy lists \
                             `entitlements` (roster serve --roster)"
                                .to_string()
                        } else {
                            format!("use {}", kinds.join(", "))
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}
