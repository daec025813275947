//! Finding codes: the stable kebab-case names that `check` and `plan` print,
//! that users grep for and that the README lists (a test holds the two
//! together). One declaration gives the enum, its string form and `ALL`.

use serde::{Serialize, Serializer};

macro_rules! codes {
    ($($(#[$meta:meta])* $name:ident = $text:literal,)*) => {
        /// What a finding or a plan note is about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$meta])* $name,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code as users see it, e.g. `unknown-member`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => $text,)*
                }
            }
        }
    };
}

codes! {
    // The files cannot be read.
    NoRoster = "no-roster",
    NoRosterFiles = "no-roster-files",
    NotFound = "not-found",
    IoError = "io-error",
    FileTooLarge = "file-too-large",
    // The file is not a readable YAML document.
    NotUtf8 = "not-utf8",
    NulByte = "nul-byte",
    TabIndent = "tab-indent",
    EmptyFile = "empty-file",
    YamlTooComplex = "yaml-too-complex",
    YamlSyntax = "yaml-syntax",
    // The file does not match the schema.
    MissingVersion = "missing-version",
    UnsupportedVersion = "unsupported-version",
    UnknownField = "unknown-field",
    WrongType = "wrong-type",
    MissingField = "missing-field",
    InvalidValue = "invalid-value",
    EmptyValue = "empty-value",
    /// Any other way of not matching the schema.
    Schema = "schema",
    // A value is malformed.
    InvalidEmail = "invalid-email",
    InvalidDate = "invalid-date",
    InvalidPhone = "invalid-phone",
    InvalidExtension = "invalid-extension",
    InvalidZip = "invalid-zip",
    // Something is declared twice.
    DuplicateEmail = "duplicate-email",
    DuplicateGroup = "duplicate-group",
    DuplicateMember = "duplicate-member",
    DuplicatePolicy = "duplicate-policy",
    // A reference is wrong.
    UnknownMember = "unknown-member",
    InactiveUserManager = "inactive-user-manager",
    UnknownEntitlementKind = "unknown-entitlement-kind",
    UnknownEntitlementValue = "unknown-entitlement-value",
    UnknownCaseManager = "unknown-case-manager",
    InactiveCaseManager = "inactive-case-manager",
    OwnCaseManager = "own-case-manager",
    // A rename (`previously`) is wrong.
    RenameToSameName = "rename-to-same-name",
    DuplicatePreviously = "duplicate-previously",
    PreviouslyWithoutAccount = "previously-without-account",
    // Two fields that exclude each other.
    RoleAndRoles = "role-and-roles",
    // The policy block itself is wrong.
    InvalidPolicy = "invalid-policy",
    InvalidGlob = "invalid-glob",
    InvalidRegex = "invalid-regex",
    // The roster breaks its policy.
    MissingRequiredField = "missing-required-field",
    TooFewUserManagers = "too-few-user-managers",
    UserManagerRole = "user-manager-role",
    EmailDomainDenied = "email-domain-denied",
    EmailDomainNotAllowed = "email-domain-not-allowed",
    RestrictedGroup = "restricted-group",
    // Warnings of `check`.
    PartnerInNoGroup = "partner-in-no-group",
    SameNameAndBirthDate = "same-name-and-birth-date",
    UndeliverableEmail = "undeliverable-email",
    // Warnings of `plan`.
    StoreCannotKeep = "store-cannot-keep",
    ProfileDrift = "profile-drift",
    GroupDrift = "group-drift",
    UnmanagedGroup = "unmanaged-group",
    MassRemoval = "mass-removal",
    SeatsExceeded = "seats-exceeded",
    // The built-in schema and the roster's types disagree: a bug in roster.
    Internal = "internal",
    Invalid = "invalid",
}

impl Code {
    /// True for the codes that say the roster breaks its policy (as opposed
    /// to a roster or policy block that is itself wrong): `plan` lists them
    /// as violations instead of refusing to plan.
    pub const fn is_violation(self) -> bool {
        matches!(
            self,
            Code::MissingRequiredField
                | Code::TooFewUserManagers
                | Code::UserManagerRole
                | Code::EmailDomainDenied
                | Code::EmailDomainNotAllowed
                | Code::RestrictedGroup
        )
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Code {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown finding code `{s}`"))
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Code;
    use std::collections::BTreeSet;

    #[test]
    fn codes_are_distinct_kebab_case_and_round_trip() {
        let mut seen = BTreeSet::new();
        for &c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "`{s}` is declared twice");
            assert!(
                !s.is_empty()
                    && !s.starts_with('-')
                    && !s.ends_with('-')
                    && !s.contains("--")
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "`{s}` is not kebab-case"
            );
            assert_eq!(s.parse::<Code>(), Ok(c));
            assert_eq!(c.to_string(), s);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{s}\""));
        }
        assert!("no-such-code".parse::<Code>().is_err());
    }

    #[test]
    fn only_policy_breaches_are_violations() {
        let violations: Vec<_> = Code::ALL
            .iter()
            .filter(|c| c.is_violation())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            violations,
            [
                "missing-required-field",
                "too-few-user-managers",
                "user-manager-role",
                "email-domain-denied",
                "email-domain-not-allowed",
                "restricted-group",
            ]
        );
    }

    /// The README's "Findings" section and the enum list the same codes.
    #[test]
    fn readme_lists_exactly_the_codes() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("\n### Findings\n")
            .expect("README has a \"### Findings\" section");
        let section = &readme[start + 1..];
        let end = section[4..].find("\n#").map_or(section.len(), |i| i + 4);
        let section = &section[..end];
        let listed: BTreeSet<&str> = section
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| s.contains('-') || Code::ALL.iter().any(|c| c.as_str() == *s))
            .filter(|s| !s.starts_with("--"))
            .collect();
        let known: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let missing: Vec<_> = known.difference(&listed).collect();
        let unknown: Vec<_> = listed.difference(&known).collect();
        assert!(
            missing.is_empty(),
            "codes missing from the README's Findings: {missing:?}"
        );
        assert!(
            unknown.is_empty(),
            "the README's Findings lists unknown codes: {unknown:?}"
        );
    }
}
