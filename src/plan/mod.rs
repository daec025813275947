//! The plan (SPEC §7): what `apply` will do, as data. Field names are the
//! contract; `schemas/plan.schema.json` is generated from these types.

pub mod compute;
pub mod render;
pub mod seal;
#[cfg(test)]
mod store_tests;

use crate::domain::{GroupType, Profile, SignIn};
use crate::finding::code::Code;
pub use crate::resolve::{Differs, Outcome, Via};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "roster plan")]
pub struct Plan {
    /// Always 1.
    pub format_version: u32,
    pub store: StoreRef,
    /// `sha256:` + hex digest over the roster files' names and contents.
    pub roster_digest: String,
    pub summary: Summary,
    /// Unresolved partners first, then the others in roster order.
    pub resolutions: Vec<Resolution>,
    /// In the order `apply` runs them.
    pub actions: Vec<Action>,
    pub warnings: Vec<Note>,
    pub violations: Vec<Note>,
    /// Most membership removals the policy's `max_removals` allows this plan.
    pub removal_limit: u64,
    /// The other collections this plan takes entries from (user-manager
    /// grants, roles, entitlements, case assignments, deactivations), each
    /// capped by `max_removals` on its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removal_caps: Vec<RemovalCap>,
    /// Licence seats (`policy.max_active_accounts`) after this plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<Seats>,
    /// Whether birth dates, phones and extensions of new accounts are in this
    /// plan (`roster plan -o FILE`) or left out (printed plans). `apply`
    /// refuses to create accounts from a plan without them.
    pub personal_data: PersonalData,
    /// `sha256:` + hex digest of this plan as printed (without personal
    /// data, `digest` and `seal`): printed plans and saved plans of the same
    /// content show the same digest, so a reviewer can tell that the plan
    /// applied is the plan approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `hmac-sha256:` + hex, made by `roster plan -o` with the store's plan
    /// key over the whole plan (personal data included). `roster apply`
    /// refuses a plan whose seal does not match its content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

/// How many entries of one collection a plan removes, out of how many, and
/// the most `max_removals` allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RemovalCap {
    /// `user_manager_grants`, `roles`, `entitlements`, `case_assignments`
    /// or `deactivations`.
    pub collection: String,
    pub removed: u64,
    /// The entries the roster's accounts hold in the store.
    pub of: u64,
    pub limit: u64,
}

impl RemovalCap {
    pub fn exceeded(&self) -> bool {
        self.removed > self.limit
    }

    /// What is removed, counted: `2 roles`, `1 case assignment`.
    pub fn removed_text(&self) -> String {
        let one = match self.collection.as_str() {
            "user_manager_grants" => "user-manager grant",
            "roles" => "role",
            "entitlements" => "entitlement",
            "case_assignments" => "case assignment",
            "deactivations" => "deactivation",
            other => other,
        };
        crate::report::plural(self.removed as usize, one)
    }
}

/// Active accounts in the whole store after the plan, and the licence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Seats {
    pub used: u64,
    pub max: u64,
    /// `max - used`, never below 0.
    pub free: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonalData {
    Included,
    Omitted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StoreRef {
    pub url: String,
    /// The store's revision when the plan was made; `apply` refuses a plan
    /// whose revision is no longer the store's.
    pub revision: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub create_groups: u64,
    pub create_accounts: u64,
    pub reactivate_accounts: u64,
    pub update_profiles: u64,
    pub add_memberships: u64,
    pub grant_user_manager: u64,
    pub revoke_user_manager: u64,
    pub remove_memberships: u64,
    pub deactivate_accounts: u64,
    #[serde(default)]
    pub rename_accounts: u64,
    #[serde(default)]
    pub grant_roles: u64,
    #[serde(default)]
    pub revoke_roles: u64,
    #[serde(default)]
    pub grant_entitlements: u64,
    #[serde(default)]
    pub revoke_entitlements: u64,
    #[serde(default)]
    pub set_case_managers: u64,
    pub unresolved: u64,
    /// Roles the new accounts are created with (`create_account` `roles`),
    /// when the roster has a role catalog of its own (SPEC §9); not in
    /// `grant_roles`, which counts `grant_role` actions. Entitlements of new
    /// accounts are `grant_entitlement` actions, in `grant_entitlements`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub new_account_roles: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    pub fn changes(&self) -> u64 {
        self.create_groups
            + self.create_accounts
            + self.reactivate_accounts
            + self.update_profiles
            + self.add_memberships
            + self.grant_user_manager
            + self.revoke_user_manager
            + self.remove_memberships
            + self.deactivate_accounts
            + self.rename_accounts
            + self.grant_roles
            + self.revoke_roles
            + self.grant_entitlements
            + self.revoke_entitlements
            + self.set_case_managers
    }

    /// Memberships removed (what `removal_limit` caps; the other
    /// collections are in `removal_caps`).
    pub fn removals(&self) -> u64 {
        self.remove_memberships
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Resolution {
    /// The partner's email, lower-cased.
    pub partner: String,
    pub outcome: Outcome,
    /// The account matched, reactivated or to be created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub via: Option<Via>,
    /// For unresolved partners: the accounts it could be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differs: Vec<Differs>,
    /// Why a conflict is one, or what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    CreateGroup {
        group: String,
        #[serde(rename = "type")]
        kind: GroupType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lwia: Option<u32>,
    },
    CreateAccount {
        account: String,
        partner: String,
        profile: Profile,
        /// The roles the account starts with (sorted).
        roles: Vec<String>,
        /// How the person signs in; absent: as `roster apply --onboarding`
        /// says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sign_in: Option<SignIn>,
    },
    /// `account` (the old user name) becomes `new_name` (SPEC §9 `previously`).
    RenameAccount {
        account: String,
        partner: String,
        new_name: String,
    },
    ReactivateAccount {
        account: String,
        partner: String,
    },
    UpdateProfile {
        account: String,
        partner: String,
        /// Which fields change (`phone`, `zip`, …).
        fields: Vec<String>,
        profile: Profile,
    },
    AddMembership {
        account: String,
        group: String,
        user_manager: bool,
    },
    GrantRole {
        account: String,
        role: String,
    },
    GrantEntitlement {
        account: String,
        kind: String,
        value: String,
    },
    GrantUserManager {
        account: String,
        group: String,
    },
    /// The account that oversees `account`; `null` clears it.
    SetCaseManager {
        account: String,
        case_manager: Option<String>,
    },
    RevokeUserManager {
        account: String,
        group: String,
    },
    RemoveMembership {
        account: String,
        group: String,
    },
    RevokeEntitlement {
        account: String,
        kind: String,
        value: String,
    },
    RevokeRole {
        account: String,
        role: String,
    },
    DeactivateAccount {
        account: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partner: Option<String>,
    },
}

impl Action {
    /// Position in the order apply runs actions (SPEC §7, §9).
    pub fn rank(&self) -> u8 {
        match self {
            Action::CreateGroup { .. } => 0,
            Action::CreateAccount { .. } => 1,
            Action::RenameAccount { .. } => 2,
            Action::ReactivateAccount { .. } => 3,
            Action::UpdateProfile { .. } => 4,
            Action::GrantRole { .. } => 5,
            Action::GrantEntitlement { .. } => 6,
            Action::AddMembership { .. } => 7,
            Action::GrantUserManager { .. } => 8,
            Action::SetCaseManager { .. } => 9,
            Action::RevokeUserManager { .. } => 10,
            Action::RemoveMembership { .. } => 11,
            Action::RevokeEntitlement { .. } => 12,
            Action::RevokeRole { .. } => 13,
            Action::DeactivateAccount { .. } => 14,
        }
    }

    pub fn op(&self) -> &'static str {
        match self {
            Action::CreateGroup { .. } => "create_group",
            Action::CreateAccount { .. } => "create_account",
            Action::RenameAccount { .. } => "rename_account",
            Action::ReactivateAccount { .. } => "reactivate_account",
            Action::UpdateProfile { .. } => "update_profile",
            Action::GrantRole { .. } => "grant_role",
            Action::GrantEntitlement { .. } => "grant_entitlement",
            Action::AddMembership { .. } => "add_membership",
            Action::GrantUserManager { .. } => "grant_user_manager",
            Action::SetCaseManager { .. } => "set_case_manager",
            Action::RevokeUserManager { .. } => "revoke_user_manager",
            Action::RemoveMembership { .. } => "remove_membership",
            Action::RevokeEntitlement { .. } => "revoke_entitlement",
            Action::RevokeRole { .. } => "revoke_role",
            Action::DeactivateAccount { .. } => "deactivate_account",
        }
    }

    /// The group this action is about, if any.
    pub fn group(&self) -> Option<&str> {
        match self {
            Action::CreateGroup { group, .. }
            | Action::AddMembership { group, .. }
            | Action::GrantUserManager { group, .. }
            | Action::RevokeUserManager { group, .. }
            | Action::RemoveMembership { group, .. } => Some(group),
            _ => None,
        }
    }

    pub fn account(&self) -> Option<&str> {
        match self {
            Action::CreateGroup { .. } => None,
            Action::CreateAccount { account, .. }
            | Action::RenameAccount { account, .. }
            | Action::ReactivateAccount { account, .. }
            | Action::UpdateProfile { account, .. }
            | Action::GrantRole { account, .. }
            | Action::RevokeRole { account, .. }
            | Action::GrantEntitlement { account, .. }
            | Action::RevokeEntitlement { account, .. }
            | Action::SetCaseManager { account, .. }
            | Action::AddMembership { account, .. }
            | Action::GrantUserManager { account, .. }
            | Action::RevokeUserManager { account, .. }
            | Action::RemoveMembership { account, .. }
            | Action::DeactivateAccount { account, .. } => Some(account),
        }
    }
}

/// A warning or a policy violation, pointing into a roster file when it can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Note {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

impl Note {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Note {
            code: code.as_str().to_string(),
            message: message.into(),
            help: None,
            file: None,
            line: None,
            column: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl From<&crate::finding::Finding> for Note {
    fn from(f: &crate::finding::Finding) -> Self {
        Note {
            code: f.code.as_str().to_string(),
            message: f.message.clone(),
            help: f.help.clone(),
            file: Some(f.file.clone()),
            line: Some(f.line),
            column: Some(f.column),
        }
    }
}

impl Plan {
    /// A sealable plan of `actions` made at `revision`, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(url: &str, revision: i64, actions: Vec<Action>) -> Plan {
        Plan {
            format_version: FORMAT_VERSION,
            store: StoreRef {
                url: url.into(),
                revision,
            },
            roster_digest: "sha256:00".into(),
            summary: compute::summarize(&actions, &[]),
            resolutions: Vec::new(),
            actions,
            warnings: Vec::new(),
            violations: Vec::new(),
            removal_limit: 0,
            removal_caps: Vec::new(),
            seats: None,
            personal_data: PersonalData::Included,
            digest: None,
            seal: None,
        }
    }

    pub fn unresolved(&self) -> impl Iterator<Item = &Resolution> {
        self.resolutions
            .iter()
            .filter(|r| r.outcome.is_unresolved())
    }

    /// The plan as printed: without birth dates, phones and extensions
    /// unless `show_pii`.
    pub fn into_display(mut self, show_pii: bool) -> Plan {
        if show_pii || self.personal_data == PersonalData::Omitted {
            return self;
        }
        self.personal_data = PersonalData::Omitted;
        for a in &mut self.actions {
            if let Action::CreateAccount { profile, .. } | Action::UpdateProfile { profile, .. } = a
            {
                *profile = profile.without_pii();
            }
        }
        self
    }
}

/// The JSON Schema of the plan, for `roster schema plan`.
pub fn schema() -> serde_json::Value {
    let mut s = serde_json::to_value(schemars::schema_for!(Plan)).unwrap_or_default();
    if let Some(obj) = s.as_object_mut() {
        obj.insert(
            "$id".into(),
            "https://roster.dev/schemas/plan.schema.json".into(),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{Differs, Outcome, Via};
    use crate::domain::{CredentialState, GroupType, Role};
    use crate::roster::model::OptionalField;
    use strum::IntoEnumIterator;

    /// Each name as text is the one serde writes and reads, for every variant.
    fn names_agree<T>(as_str: fn(T) -> &'static str) -> usize
    where
        T: IntoEnumIterator + Copy + std::fmt::Debug + PartialEq + serde::Serialize,
        T: serde::de::DeserializeOwned,
    {
        for v in T::iter() {
            assert_eq!(serde_json::to_value(v).unwrap(), as_str(v), "{v:?}");
            let back: T = serde_json::from_value(as_str(v).into()).unwrap();
            assert_eq!(back, v);
        }
        T::iter().count()
    }

    #[test]
    fn enum_names_are_serde_names() {
        assert_eq!(names_agree(Outcome::as_str), 6);
        assert_eq!(names_agree(Via::as_str), 5);
        assert_eq!(names_agree(Differs::as_str), 4);
        assert_eq!(names_agree(Role::as_str), 2);
        assert_eq!(names_agree(GroupType::as_str), 2);
        assert_eq!(names_agree(OptionalField::as_str), 5);
        assert_eq!(names_agree(CredentialState::as_str), 3);
        // What a store holds reads back; anything else is no credential.
        for c in CredentialState::iter() {
            assert_eq!(CredentialState::parse(c.as_str()), c);
        }
        assert_eq!(CredentialState::parse("Invited"), CredentialState::None);
        // Group types from a SCIM body ignore case; roles do not.
        assert_eq!("PROJECT".parse(), Ok(GroupType::Project));
        assert!("Individual".parse::<Role>().is_err());
    }
}
