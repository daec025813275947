//! The domain: accounts, profiles, groups, memberships and credential states
//! as roster plans, stores, serves and speaks SCIM about them. Every other
//! module builds on these types; they build only on roster's text
//! normalization ([`crate::roster::normalize`]) for the name + birth-date key.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A closed set of names spelled one way in roster files, plans and
/// stores: the derives such an enum shares, its serde and strum spelling
/// (`$case`), and `as_str`. Extra derives and docs go before `enum`.
macro_rules! names {
    ($case:literal; $(#[$m:meta])* $vis:vis enum $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            schemars::JsonSchema,
            strum::IntoStaticStr,
        )]
        #[cfg_attr(test, derive(strum::EnumIter))]
        #[serde(rename_all = $case)]
        #[strum(serialize_all = $case)]
        $vis enum $name { $($body)* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}
pub(crate) use names;

names! {
    "kebab-case";
    #[derive(Default, PartialOrd, Ord, strum::EnumString)]
    #[strum(ascii_case_insensitive)]
    pub enum GroupType {
        #[default]
        Organization,
        Project,
    }
}

names! {
    "kebab-case";
    #[derive(Default, PartialOrd, Ord, strum::EnumString)]
    pub enum Role {
        /// Partner tools.
        #[default]
        PublicViewer,
        /// No partner tools.
        Individual,
    }
}

/// The role catalog of a roster without `policy.roles`.
pub const DEFAULT_ROLES: [&str; 2] = ["public-viewer", "individual"];

names! {
    "snake_case";
    /// How a new account first signs in (SPEC §9 `sign_in`).
    #[derive(PartialOrd, Ord, strum::EnumString)]
    pub enum SignIn {
        /// No password; an activation link is sent.
        Invite,
        /// A generated password, handed over out of band.
        Password,
        /// Created active with no password and no invitation: the identity provider signs in.
        Sso,
    }
}

names! {
    "snake_case";
    /// How new accounts' user names are made (SPEC §9 `policy.user_names`).
    #[derive(Default)]
    pub enum UserNames {
        /// First initial and last name, e.g. MMcCray.
        #[default]
        Initials,
        /// The email address.
        Email,
    }
}

/// What a partner may do and who oversees them, as plain data (SPEC §9):
/// what the planner compares with the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Role names, sorted and distinct.
    pub roles: std::collections::BTreeSet<String>,
    /// (kind, value) grants, sorted and distinct.
    pub entitlements: std::collections::BTreeSet<(String, String)>,
    /// The case manager's normalized email.
    pub case_manager: Option<String>,
    /// `None`: as `roster apply --onboarding` says.
    pub sign_in: Option<SignIn>,
    /// The user name the account had before a rename.
    pub previously: Option<String>,
}

names! {
    "snake_case";
    /// How an account can sign in.
    #[derive(strum::EnumString)]
    pub enum CredentialState {
        /// Created by invitation; has not activated yet.
        Invited,
        /// Activated (or given a password).
        PasswordSet,
        /// No credential (e.g. single sign-on only).
        None,
    }
}

impl CredentialState {
    pub fn parse(s: &str) -> Self {
        s.parse().unwrap_or(CredentialState::None)
    }
}

/// The person-facing fields of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Profile {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
}

/// A profile field by its roster name (`email`, `first_name`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum ProfileField {
    Email,
    FirstName,
    LastName,
    BirthDate,
    Phone,
    Extension,
    Zip,
}

impl ProfileField {
    pub fn parse(name: &str) -> Result<Self, String> {
        name.parse()
            .map_err(|_| format!("unknown profile field `{name}`"))
    }
}

impl Profile {
    /// A profile of the required fields only: email and names.
    #[cfg(test)]
    pub fn named(email: &str, first_name: &str, last_name: &str) -> Profile {
        Profile {
            email: email.into(),
            first_name: first_name.into(),
            last_name: last_name.into(),
            birth_date: None,
            phone: None,
            extension: None,
            zip: None,
        }
    }

    /// This profile with `fields` (roster names) taken from `from`.
    pub fn with_fields(&self, from: &Profile, fields: &[String]) -> Result<Profile, String> {
        let mut p = self.clone();
        for f in fields {
            match ProfileField::parse(f)? {
                ProfileField::Email => p.email = from.email.clone(),
                ProfileField::FirstName => p.first_name = from.first_name.clone(),
                ProfileField::LastName => p.last_name = from.last_name.clone(),
                ProfileField::BirthDate => p.birth_date = from.birth_date.clone(),
                ProfileField::Phone => p.phone = from.phone.clone(),
                ProfileField::Extension => p.extension = from.extension.clone(),
                ProfileField::Zip => p.zip = from.zip.clone(),
            }
        }
        Ok(p)
    }

    /// The same profile without birth date, phone and extension.
    pub fn without_pii(&self) -> Profile {
        Profile {
            birth_date: None,
            phone: None,
            extension: None,
            ..self.clone()
        }
    }
}

/// One account as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_name: String,
    pub profile: Profile,
    pub active: bool,
    pub credential: CredentialState,
    /// Role names from the roster's catalog, sorted, each once.
    pub roles: Vec<String>,
    /// Named grants (products, dashboards, coverage, …), sorted, each once.
    pub entitlements: Vec<Entitlement>,
    /// The user name of the account that oversees this one.
    pub case_manager: Option<String>,
}

impl Account {
    /// An active account with no roles, entitlements or case manager.
    pub fn new(user_name: &str, profile: Profile, credential: CredentialState) -> Self {
        Account {
            user_name: user_name.to_string(),
            profile,
            active: true,
            credential,
            roles: Vec::new(),
            entitlements: Vec::new(),
            case_manager: None,
        }
    }
}

/// One named grant of an account: `kind` is the catalog (`products`,
/// `dashboards`, `coverage`, …), `value` an entry of it.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Entitlement {
    pub kind: String,
    pub value: String,
}

impl Entitlement {
    pub fn new(kind: &str, value: &str) -> Self {
        Entitlement {
            kind: kind.to_string(),
            value: value.to_string(),
        }
    }
}

/// `v` sorted, each entry once: how accounts keep roles and entitlements.
pub fn sorted_unique<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub kind: GroupType,
    pub lwia: Option<u32>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub group: String,
    pub user_name: String,
    pub user_manager: bool,
}

/// A name + birth-date key, compared after normalization (SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameDob {
    pub first: String,
    pub last: String,
    pub birth_date: String,
}

impl NameDob {
    pub fn new(first: &str, last: &str, birth_date: &str) -> Self {
        use crate::roster::normalize::name_key;
        NameDob {
            first: name_key(first),
            last: name_key(last),
            birth_date: birth_date.trim().to_string(),
        }
    }
}
