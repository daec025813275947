//! The desired state as written in roster files (SPEC §2 and §5).
//!
//! These types are the single source of the JSON Schema in
//! `schemas/roster.schema.json`: change a field here and regenerate it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::domain::{GroupType, Role, SignIn, UserNames};

/// One roster file. A roster is one such file or a directory of them, merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "roster file")]
pub struct RosterFile {
    /// Format version of this file; always 1.
    #[schemars(extend("const" = 1))]
    pub version: u32,
    /// Groups (organizations, agencies, project groups) and their members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// The people: partners, identified by email.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partners: Vec<Partner>,
    /// Rules that `roster check` and `roster plan` enforce. At most one file may carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Unique across all roster files; the group's key in the store.
    #[schemars(length(min = 1))]
    pub name: String,
    /// `organization` (default) or `project`.
    #[serde(default, rename = "type")]
    pub kind: GroupType,
    /// Local workforce innovation area number, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lwia: Option<u32>,
    /// Partners in this group, by email; `user_manager: true` lets one manage its users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
}

/// A member: a partner's email, or an entry with the user-manager flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Member {
    Email(String),
    Entry(MemberEntry),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    /// The partner's email.
    pub email: String,
    /// May manage the users of this group.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_manager: bool,
}

impl Member {
    pub fn email(&self) -> &str {
        match self {
            Member::Email(e) => e,
            Member::Entry(e) => &e.email,
        }
    }
    pub fn user_manager(&self) -> bool {
        matches!(
            self,
            Member::Entry(MemberEntry {
                user_manager: true,
                ..
            })
        )
    }
}

/// A person who should have an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    /// Unique across all files, compared case-insensitively.
    #[schemars(extend("format" = "email"))]
    pub email: String,
    #[schemars(length(min = 1))]
    pub first_name: String,
    #[schemars(length(min = 1))]
    pub last_name: String,
    /// YYYY-MM-DD, a real calendar date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date"))]
    pub birth_date: Option<String>,
    /// Ten digits; punctuation is dropped (`"217-852-9634"` is kept as 2178529634). Quote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Phone extension, digits. Quote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// Five digits or ZIP+4 (`62568` or `62568-1234`). Quote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    /// One role of `policy.roles` (`public-viewer` or `individual` without a
    /// catalog). Not together with `roles`; neither means `policy.default_roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Several roles of `policy.roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Named grants by kind, each kind and value from `policy.entitlements`,
    /// e.g. `{products: [webcenter], coverage: [North Team]}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entitlements: BTreeMap<String, Vec<String>>,
    /// The email of the active partner who oversees this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "email"))]
    pub case_manager: Option<String>,
    /// How a new account signs in: `invite`, `password` or `sso`. Without it,
    /// `roster apply --onboarding` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<SignIn>,
    /// The account's user name: confirms a match, or names the account to create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub account: Option<String>,
    /// The account's former user name: the account `previously` is renamed to `account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub previously: Option<String>,
    /// False means the account must be deactivated.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub active: bool,
}

impl Default for Partner {
    fn default() -> Self {
        Partner {
            email: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            birth_date: None,
            phone: None,
            extension: None,
            zip: None,
            role: None,
            roles: None,
            entitlements: BTreeMap::new(),
            case_manager: None,
            sign_in: None,
            account: None,
            previously: None,
            active: true,
        }
    }
}

impl Partner {
    /// The roles the partner names (`role` or `roles`), or `None` when it
    /// names none and `policy.default_roles` applies.
    pub fn named_roles(&self) -> Option<Vec<&str>> {
        match (&self.role, &self.roles) {
            (None, None) => None,
            (role, roles) => Some(
                role.iter()
                    .chain(roles.iter().flatten())
                    .map(String::as_str)
                    .collect(),
            ),
        }
    }

    /// The one role the stores keep today (SPEC §2): `individual` when the
    /// partner's roles hold `individual` but not `public-viewer`, otherwise
    /// `public-viewer`.
    pub fn store_role(&self, default_roles: &[String]) -> Role {
        let roles = self
            .named_roles()
            .unwrap_or_else(|| default_roles.iter().map(String::as_str).collect());
        let has = |r: Role| roles.iter().any(|x| *x == r.as_str());
        if has(Role::Individual) && !has(Role::PublicViewer) {
            Role::Individual
        } else {
            Role::PublicViewer
        }
    }

    /// The partner's access as plain data, with the policy's defaults applied
    /// (SPEC §9). Names that are not in the catalogs are kept as written;
    /// `check` reports them.
    pub fn access(&self, policy: &Policy) -> crate::domain::Access {
        use crate::roster::normalize;
        let roles = self
            .named_roles()
            .unwrap_or_else(|| policy.default_roles.iter().map(String::as_str).collect())
            .into_iter()
            .map(|r| r.trim().to_string())
            .collect();
        let entitlements = self
            .entitlements
            .iter()
            .flat_map(|(k, vs)| {
                vs.iter()
                    .map(move |v| (k.trim().to_string(), v.trim().to_string()))
            })
            .collect();
        crate::domain::Access {
            roles,
            entitlements,
            case_manager: self.case_manager.as_deref().map(normalize::email),
            sign_in: self.sign_in,
            previously: self.previously.as_deref().map(|s| s.trim().to_string()),
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Optional partner fields that a policy can require.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    strum::IntoStaticStr,
)]
#[cfg_attr(test, derive(strum::EnumIter))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OptionalField {
    BirthDate,
    Phone,
    Extension,
    Zip,
    Account,
}

impl OptionalField {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn is_set(self, p: &Partner) -> bool {
        let v = match self {
            OptionalField::BirthDate => &p.birth_date,
            OptionalField::Phone => &p.phone,
            OptionalField::Extension => &p.extension,
            OptionalField::Zip => &p.zip,
            OptionalField::Account => &p.account,
        };
        v.as_deref().is_some_and(|s| !s.trim().is_empty())
    }
}

/// Rules that `roster check` and `roster plan` enforce (SPEC §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Partner fields required beyond email, first and last name.
    #[serde(default = "default_required_fields")]
    pub required_fields: Vec<OptionalField>,
    /// Each group must have at least this many user managers.
    #[serde(default)]
    pub min_user_managers: u32,
    /// Roles allowed to hold the user-manager grant (roles of the catalog,
    /// `policy.roles`).
    #[serde(default = "default_user_manager_roles")]
    pub user_manager_roles: Vec<String>,
    /// Which email domains partners may use.
    #[serde(default)]
    pub email_domains: EmailDomains,
    /// Most memberships (and grants) one apply may remove: a count, or a percentage of
    /// the managed memberships such as `"25%"`.
    #[serde(default)]
    pub max_removals: MaxRemovals,
    /// Deactivate accounts left in no managed group.
    #[serde(default)]
    pub deactivate_orphans: bool,
    /// Push phone, ZIP, extension and names to matched accounts (otherwise drift is reported).
    #[serde(default)]
    pub manage_profiles: bool,
    /// What to do with groups that are in the store but in no roster file.
    #[serde(default)]
    pub unmanaged_groups: UnmanagedGroups,
    /// Which files may declare which groups.
    #[serde(default)]
    pub restrictions: Vec<Restriction>,
    /// The role catalog (SPEC §9); without it, `public-viewer` and `individual`.
    #[serde(default = "default_roles_catalog")]
    pub roles: Vec<String>,
    /// The roles of a partner that names none.
    #[serde(default = "default_default_roles")]
    pub default_roles: Vec<String>,
    /// Catalogs of named grants, by kind: a list of values, or `groups` for
    /// the roster's group names (e.g. `coverage: groups`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entitlements: BTreeMap<String, EntitlementCatalog>,
    /// How new accounts' user names are made: `initials` (MMcCray) or `email`.
    #[serde(default)]
    pub user_names: UserNames,
    /// Licence seats: the most active accounts the store may hold after a plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_active_accounts: Option<u64>,
}

/// The values an entitlement kind allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EntitlementCatalog {
    /// The names of the roster's groups.
    Groups(GroupsCatalog),
    /// These values.
    Values(Vec<String>),
}

/// `groups`: an entitlement whose values are the roster's group names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupsCatalog {
    Groups,
}

fn default_roles_catalog() -> Vec<String> {
    vec![
        Role::PublicViewer.as_str().to_string(),
        Role::Individual.as_str().to_string(),
    ]
}

fn default_default_roles() -> Vec<String> {
    vec![Role::PublicViewer.as_str().to_string()]
}

fn default_required_fields() -> Vec<OptionalField> {
    vec![
        OptionalField::BirthDate,
        OptionalField::Phone,
        OptionalField::Zip,
    ]
}

fn default_user_manager_roles() -> Vec<String> {
    vec![Role::PublicViewer.as_str().to_string()]
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            required_fields: default_required_fields(),
            min_user_managers: 0,
            user_manager_roles: default_user_manager_roles(),
            email_domains: EmailDomains::default(),
            max_removals: MaxRemovals::default(),
            deactivate_orphans: false,
            manage_profiles: false,
            unmanaged_groups: UnmanagedGroups::default(),
            restrictions: Vec::new(),
            roles: default_roles_catalog(),
            default_roles: default_default_roles(),
            entitlements: BTreeMap::new(),
            user_names: UserNames::default(),
            max_active_accounts: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailDomains {
    /// If not empty, partner emails must be in one of these domains (or their subdomains).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Partner emails must not be in any of these domains (or their subdomains).
    #[serde(default)]
    pub deny: Vec<String>,
}

/// A number of removals, or a percentage of the managed memberships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum MaxRemovals {
    Count(u64),
    #[schemars(extend("pattern" = r"^[0-9]+(\.[0-9]+)?%$"))]
    Percent(String),
}

impl Default for MaxRemovals {
    fn default() -> Self {
        MaxRemovals::Percent("25%".into())
    }
}

impl MaxRemovals {
    /// The limit for a store holding `managed` memberships. `None` if the
    /// percentage does not parse (reported by `check`).
    pub fn limit(&self, managed: u64) -> Option<u64> {
        match self {
            MaxRemovals::Count(n) => Some(*n),
            MaxRemovals::Percent(p) => {
                let pct: f64 = p.strip_suffix('%')?.parse().ok()?;
                Some(((managed as f64) * pct / 100.0).floor() as u64)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnmanagedGroups {
    #[default]
    Ignore,
    Warn,
    Remove,
}

/// Groups whose names match `groups` may be declared only in files matching `files`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Restriction {
    /// A glob over file paths relative to the roster directory, e.g. `agencies/acme/*.yaml`.
    pub files: String,
    /// A regular expression that must match the whole group name, e.g. `ACME .*`.
    pub groups: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Access;

    fn partner(yaml: &str) -> Partner {
        let node = crate::roster::yaml::parse(yaml).unwrap();
        Partner::deserialize(&node.to_json()).unwrap()
    }

    #[test]
    fn access_is_sorted_plain_data_with_the_policy_defaults() {
        let policy = Policy {
            default_roles: vec!["caseworker".into()],
            ..Policy::default()
        };
        let p = partner(
            "email: a@example.org\nfirst_name: A\nlast_name: B\nroles: [supervisor, caseworker, supervisor]\nentitlements:\n  products: [webcenter, hrcenter]\n  coverage: [North Team]\ncase_manager: \" Boss@Example.org \"\nsign_in: sso\naccount: NHoliday\npreviously: NHoliday2\n",
        );
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            p.access(&policy),
            Access {
                roles: s(&["caseworker", "supervisor"]),
                entitlements: [
                    pair("coverage", "North Team"),
                    pair("products", "hrcenter"),
                    pair("products", "webcenter"),
                ]
                .into(),
                case_manager: Some("boss@example.org".into()),
                sign_in: Some(SignIn::Sso),
                previously: Some("NHoliday2".into()),
            }
        );
        // No role named: the policy's default roles; `role: X` is one role.
        let bare = partner("email: a@example.org\nfirst_name: A\nlast_name: B\n");
        assert_eq!(bare.access(&policy).roles, s(&["caseworker"]));
        assert_eq!(bare.access(&Policy::default()).roles, s(&["public-viewer"]));
        let one = partner("email: a@example.org\nfirst_name: A\nlast_name: B\nrole: individual\n");
        assert_eq!(one.access(&policy).roles, s(&["individual"]));
        assert_eq!(one.access(&policy).sign_in, None);
    }

    #[test]
    fn the_store_keeps_individual_only_without_public_viewer() {
        let with = |roles: Option<&[&str]>| Partner {
            roles: roles.map(|r| r.iter().map(|x| x.to_string()).collect()),
            ..Partner::default()
        };
        let none: &[String] = &[];
        assert_eq!(with(None).store_role(none), Role::PublicViewer);
        assert_eq!(
            with(None).store_role(&["individual".into()]),
            Role::Individual
        );
        assert_eq!(
            with(Some(&["individual", "caseworker"])).store_role(none),
            Role::Individual
        );
        assert_eq!(
            with(Some(&["individual", "public-viewer"])).store_role(none),
            Role::PublicViewer
        );
        assert_eq!(
            with(Some(&["caseworker"])).store_role(none),
            Role::PublicViewer
        );
    }
}
