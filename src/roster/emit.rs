//! Canonical YAML text of a roster file, for `roster import`, `export` and
//! `diff`: one layout for the same data, so that two emitted files differ
//! exactly where their data does.
//!
//! Layout: `version` first, then `groups`, `partners` and `policy`, each
//! item's fields in the model's declaration order, a blank line between
//! sections and between list items (as in `examples/worknet/roster.yaml`).
//! Fields the model skips on serialization when they hold their default are
//! left out here too (`active: true`, `user_manager: false`, empty lists,
//! absent optional fields); the others (`type`, `role`, every policy field)
//! are always written.
//!
//! Strings are plain when a YAML 1.2 reader (ours, and YAML 1.1 readers for
//! the usual suspects such as `yes`) reads them back as the same string, and
//! double-quoted with escapes otherwise. Phone, ZIP and extension are always
//! quoted: they look like numbers.

use super::model::{
    EntitlementCatalog, Group, MaxRemovals, Member, Partner, Policy, RosterFile, UnmanagedGroups,
};
use std::borrow::Cow;
use std::fmt::Write;

/// What to emit.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmitOptions {
    /// Emit birth dates, phones and extensions; without it they are left out.
    pub show_pii: bool,
}

/// Canonical YAML text of a roster file: starts with `version: 1`, groups
/// then partners then policy, fields in the model's declaration order,
/// omitting defaults the model omits on serialization.
pub fn roster_file(file: &RosterFile, opts: &EmitOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "version: {}", file.version);
    if !file.groups.is_empty() {
        out.push_str("\ngroups:\n");
        for (i, g) in file.groups.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            group(&mut out, g);
        }
    }
    if !file.partners.is_empty() {
        out.push_str("\npartners:\n");
        for (i, p) in file.partners.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            partner(&mut out, p, opts);
        }
    }
    if let Some(p) = &file.policy {
        out.push_str("\npolicy:\n");
        policy(&mut out, p);
    }
    out
}

fn group(out: &mut String, g: &Group) {
    let _ = writeln!(out, "  - name: {}", scalar(&g.name));
    let _ = writeln!(out, "    type: {}", g.kind.as_str());
    if let Some(lwia) = g.lwia {
        let _ = writeln!(out, "    lwia: {lwia}");
    }
    if !g.members.is_empty() {
        out.push_str("    members:\n");
        for m in &g.members {
            match m {
                Member::Email(e) => {
                    let _ = writeln!(out, "      - {}", scalar(e));
                }
                Member::Entry(e) => {
                    let _ = writeln!(out, "      - email: {}", scalar(&e.email));
                    if e.user_manager {
                        out.push_str("        user_manager: true\n");
                    }
                }
            }
        }
    }
}

fn partner(out: &mut String, p: &Partner, opts: &EmitOptions) {
    let _ = writeln!(out, "  - email: {}", scalar(&p.email));
    let _ = writeln!(out, "    first_name: {}", scalar(&p.first_name));
    let _ = writeln!(out, "    last_name: {}", scalar(&p.last_name));
    if opts.show_pii
        && let Some(d) = &p.birth_date
    {
        let _ = writeln!(out, "    birth_date: {}", scalar(d));
    }
    if opts.show_pii
        && let Some(v) = &p.phone
    {
        let _ = writeln!(out, "    phone: {}", quoted(v));
    }
    if opts.show_pii
        && let Some(v) = &p.extension
    {
        let _ = writeln!(out, "    extension: {}", quoted(v));
    }
    if let Some(v) = &p.zip {
        let _ = writeln!(out, "    zip: {}", quoted(v));
    }
    if let Some(r) = &p.role {
        let _ = writeln!(out, "    role: {}", scalar(r));
    }
    if let Some(rs) = &p.roles {
        let rs: Vec<&str> = rs.iter().map(String::as_str).collect();
        let _ = writeln!(out, "    roles: {}", flow_list(&rs));
    }
    if !p.entitlements.is_empty() {
        out.push_str("    entitlements:\n");
        for (kind, values) in &p.entitlements {
            let vs: Vec<&str> = values.iter().map(String::as_str).collect();
            let _ = writeln!(out, "      {}: {}", scalar(kind), flow_list(&vs));
        }
    }
    if let Some(m) = &p.case_manager {
        let _ = writeln!(out, "    case_manager: {}", scalar(m));
    }
    if let Some(s) = p.sign_in {
        let _ = writeln!(out, "    sign_in: {}", s.as_str());
    }
    if let Some(a) = &p.account {
        let _ = writeln!(out, "    account: {}", scalar(a));
    }
    if let Some(a) = &p.previously {
        let _ = writeln!(out, "    previously: {}", scalar(a));
    }
    if !p.active {
        out.push_str("    active: false\n");
    }
}

fn policy(out: &mut String, p: &Policy) {
    let fields: Vec<&str> = p.required_fields.iter().map(|f| f.as_str()).collect();
    let _ = writeln!(out, "  required_fields: {}", flow_list(&fields));
    let _ = writeln!(out, "  min_user_managers: {}", p.min_user_managers);
    let roles: Vec<&str> = p.user_manager_roles.iter().map(String::as_str).collect();
    let _ = writeln!(out, "  user_manager_roles: {}", flow_list(&roles));
    out.push_str("  email_domains:\n");
    let allow: Vec<&str> = p.email_domains.allow.iter().map(String::as_str).collect();
    let deny: Vec<&str> = p.email_domains.deny.iter().map(String::as_str).collect();
    let _ = writeln!(out, "    allow: {}", flow_list(&allow));
    let _ = writeln!(out, "    deny: {}", flow_list(&deny));
    match &p.max_removals {
        MaxRemovals::Count(n) => {
            let _ = writeln!(out, "  max_removals: {n}");
        }
        // Always quoted, as in the examples; a percentage is text.
        MaxRemovals::Percent(s) => {
            let _ = writeln!(out, "  max_removals: {}", quoted(s));
        }
    }
    let _ = writeln!(out, "  deactivate_orphans: {}", p.deactivate_orphans);
    let _ = writeln!(out, "  manage_profiles: {}", p.manage_profiles);
    let unmanaged = match p.unmanaged_groups {
        UnmanagedGroups::Ignore => "ignore",
        UnmanagedGroups::Warn => "warn",
        UnmanagedGroups::Remove => "remove",
    };
    let _ = writeln!(out, "  unmanaged_groups: {unmanaged}");
    if p.restrictions.is_empty() {
        out.push_str("  restrictions: []\n");
    } else {
        out.push_str("  restrictions:\n");
        for r in &p.restrictions {
            let _ = writeln!(out, "    - files: {}", scalar(&r.files));
            let _ = writeln!(out, "      groups: {}", scalar(&r.groups));
        }
    }
    // SPEC §9: written only when set, so that older policies read the same.
    let defaults = Policy::default();
    if p.roles != defaults.roles {
        let rs: Vec<&str> = p.roles.iter().map(String::as_str).collect();
        let _ = writeln!(out, "  roles: {}", flow_list(&rs));
    }
    if p.default_roles != defaults.default_roles {
        let rs: Vec<&str> = p.default_roles.iter().map(String::as_str).collect();
        let _ = writeln!(out, "  default_roles: {}", flow_list(&rs));
    }
    if !p.entitlements.is_empty() {
        out.push_str("  entitlements:\n");
        for (kind, catalog) in &p.entitlements {
            let values = match catalog {
                EntitlementCatalog::Groups(_) => "groups".to_string(),
                EntitlementCatalog::Values(vs) => {
                    let vs: Vec<&str> = vs.iter().map(String::as_str).collect();
                    flow_list(&vs)
                }
            };
            let _ = writeln!(out, "    {}: {values}", scalar(kind));
        }
    }
    if p.user_names != defaults.user_names {
        let _ = writeln!(out, "  user_names: {}", p.user_names.as_str());
    }
    if let Some(n) = p.max_active_accounts {
        let _ = writeln!(out, "  max_active_accounts: {n}");
    }
}

/// `[a, b]`, each item plain when that is safe inside a flow list.
fn flow_list(items: &[&str]) -> String {
    let parts: Vec<Cow<'_, str>> = items
        .iter()
        .map(|s| {
            if is_plain_safe(s, true) {
                Cow::Borrowed(*s)
            } else {
                Cow::Owned(quoted(s))
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// A string as a block-context YAML scalar: plain when that reads back as
/// the same string, double-quoted otherwise.
pub fn scalar(s: &str) -> Cow<'_, str> {
    if is_plain_safe(s, false) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(quoted(s))
    }
}

/// A double-quoted YAML scalar. The escapes are JSON's, which YAML's
/// double-quoted style includes; characters YAML does not allow raw (C0 and
/// C1 controls, DEL, the byte order mark, line and paragraph separators,
/// non-characters) and bidi controls (which reorder what a terminal shows)
/// are escaped as `\uXXXX`.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'
                | '\u{200e}' | '\u{200f}' | '\u{061c}'
                | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Characters that may not start a plain scalar.
const INDICATORS: &str = "-?:,[]{}#&*!|>'\"%@`";

/// Whether `s` can be written as a plain scalar and read back as this very
/// string. `flow`: inside a flow list, where `,[]{}` and `:` also end it.
fn is_plain_safe(s: &str, flow: bool) -> bool {
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().last()) else {
        return false; // empty: reads back as null
    };
    !(first.is_whitespace()
        || last.is_whitespace()
        || INDICATORS.contains(first)
        || last == ':'
        || s.contains(": ")
        || s.contains(" #")
        || s.chars().any(needs_escape)
        || (flow && s.contains([',', '[', ']', '{', '}', ':']))
        || resolves_to_non_string(s))
}

/// Whether a plain scalar would be read as null, a boolean or a number by
/// the YAML 1.2 core schema, by our reader, or (to spare users of other
/// tools) by YAML 1.1.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", // 1.2
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF", // 1.1 booleans
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if matches!(
        body,
        ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN" | "inf" | "nan" | "infinity"
    ) {
        return true;
    }
    // 0x1F, 0o17, 0b101 (1.1): a radix prefix and anything alphanumeric.
    if let Some(rest) = body
        .strip_prefix("0x")
        .or_else(|| body.strip_prefix("0o"))
        .or_else(|| body.strip_prefix("0b"))
        && !rest.is_empty()
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return true;
    }
    // 1.1 integers and sexagesimals: 1_000, 1:30:00, 1.5_0.
    if body.starts_with(|c: char| c.is_ascii_digit())
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '_' | ':' | '.'))
    {
        return true;
    }
    is_decimal(body)
}

/// `[0-9]+(\.[0-9]*)?|\.[0-9]+`, then optionally `[eE][-+]?[0-9]+`: a 1.2
/// core schema int or float without its sign.
fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i, i - start)
    };
    let (mut i, int_digits) = digits(0);
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        (i, frac_digits) = digits(i + 1);
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let (end, exp_digits) = digits(i);
        if exp_digits == 0 {
            return false;
        }
        i = end;
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::load::{Input, parse_file};
    use crate::roster::model::{
        EmailDomains, GroupType, GroupsCatalog, MemberEntry, OptionalField, Restriction, Role,
        SignIn, UnmanagedGroups, UserNames,
    };

    fn parse(text: &str) -> RosterFile {
        let input = Input {
            name: "emitted.yaml".into(),
            rel: "emitted.yaml".into(),
            bytes: text.as_bytes().to_vec(),
        };
        let (_, file, findings) = parse_file(input, 0);
        assert!(
            findings.is_empty(),
            "findings {findings:#?}\nfor the emitted text:\n{text}"
        );
        file.expect("the emitted text parses")
    }

    fn round_trip(file: &RosterFile) {
        let text = roster_file(file, &EmitOptions { show_pii: true });
        assert!(text.starts_with("version: 1\n"), "{text}");
        assert_eq!(&parse(&text), file, "emitted:\n{text}");
        // Emitting the parsed file again gives the same text.
        assert_eq!(
            roster_file(&parse(&text), &EmitOptions { show_pii: true }),
            text
        );
    }

    fn person(email: &str, first: &str, last: &str) -> Partner {
        Partner {
            email: email.into(),
            first_name: first.into(),
            last_name: last.into(),
            birth_date: None,
            phone: None,
            extension: None,
            zip: None,
            role: Some(Role::PublicViewer.as_str().into()),
            ..Partner::default()
        }
    }

    fn org(name: &str, members: Vec<Member>) -> Group {
        Group {
            name: name.into(),
            kind: GroupType::Organization,
            lwia: None,
            members,
        }
    }

    /// Strings that tempt a YAML writer to get it wrong.
    const AWKWARD: &[&str] = &[
        "true",
        "false",
        "True",
        "null",
        "Null",
        "~",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "12",
        "007",
        "-12",
        "+12",
        "1.5",
        "1.",
        ".5",
        "1e5",
        "1E+5",
        "-1.5e-3",
        "0x1F",
        "0o17",
        "0b101",
        "1_000",
        "1:30",
        ".inf",
        "-.inf",
        ".nan",
        "- x",
        "-x",
        "-",
        "#tag",
        "a #b",
        "a#b",
        "a: b",
        "a:b",
        "a:",
        ":a",
        "?x",
        "? x",
        "[x]",
        "{x}",
        "x, y",
        "&anchor",
        "*alias",
        "!tag",
        "!!str",
        "|",
        ">",
        "'single'",
        "\"double\"",
        "%YAML",
        "@at",
        "`tick`",
        " leading",
        "trailing ",
        "in  side",
        "tab\there",
        "line\nbreak",
        "cr\rlf",
        "nul\0",
        "bell\u{7}",
        "del\u{7f}",
        "nel\u{85}",
        "bom\u{feff}",
        "ls\u{2028}",
        "back\\slash",
        "José Núñez-O'Neil",
        "Zoë",
        "東京",
        "emoji 🎉",
        "nbsp\u{a0}inside",
        "---",
        "...",
        "= x",
        "<<",
        "1972-09-01",
        "2178529634",
        "62568-1234",
        "ABC Location - 20",
        "O'Neil \"Pepe\"",
    ];

    #[test]
    fn awkward_strings_survive_a_round_trip() {
        let mut partners = vec![{
            let mut p = person("jose.nunez@example.org", "José", "Núñez-O'Neil");
            p.birth_date = Some("1979-02-28".into());
            p.phone = Some("+1 217 555 0101".into());
            p.extension = Some("007".into());
            p.zip = Some("02134".into());
            p.account = Some("007".into());
            p.role = Some(Role::Individual.as_str().into());
            p.active = false;
            p
        }];
        let mut groups = vec![
            org("true", vec![Member::Email("jose.nunez@example.org".into())]),
            org("- x", vec![]),
            org("#tag", vec![]),
            org("007", vec![]),
        ];
        for (i, s) in AWKWARD.iter().enumerate() {
            let email = format!("p{i}@example.org");
            let mut p = person(&email, s, s);
            p.account = Some((*s).into());
            p.zip = Some((*s).into());
            p.phone = Some((*s).into());
            p.extension = Some((*s).into());
            partners.push(p);
            groups.push(Group {
                name: format!("group {i}: {s}"),
                kind: GroupType::Project,
                lwia: Some(u32::try_from(i).unwrap()),
                members: vec![
                    Member::Email(email.clone()),
                    Member::Entry(MemberEntry {
                        email: (*s).into(),
                        user_manager: i % 2 == 0,
                    }),
                    Member::Email((*s).into()),
                ],
            });
            groups.push(org(s, vec![]));
        }
        let file = RosterFile {
            version: 1,
            groups,
            partners,
            policy: Some(Policy {
                required_fields: vec![OptionalField::Account, OptionalField::Extension],
                min_user_managers: 2,
                user_manager_roles: vec!["public-viewer".into(), "individual".into()],
                email_domains: EmailDomains {
                    allow: AWKWARD.iter().map(|s| s.to_string()).collect(),
                    deny: vec!["mailinator.com".into(), "x, y".into()],
                },
                max_removals: MaxRemovals::Percent("12.5%".into()),
                deactivate_orphans: true,
                manage_profiles: true,
                unmanaged_groups: UnmanagedGroups::Remove,
                restrictions: AWKWARD
                    .iter()
                    .map(|s| Restriction {
                        files: (*s).into(),
                        groups: "ACME .*".into(),
                    })
                    .collect(),
                roles: vec!["public-viewer".into(), "case: worker".into(), "007".into()],
                default_roles: vec!["case: worker".into()],
                entitlements: [
                    (
                        "products".to_string(),
                        EntitlementCatalog::Values(AWKWARD.iter().map(|s| s.to_string()).collect()),
                    ),
                    (
                        "coverage".to_string(),
                        EntitlementCatalog::Groups(GroupsCatalog::Groups),
                    ),
                    ("true".to_string(), EntitlementCatalog::Values(vec![])),
                ]
                .into(),
                user_names: UserNames::Email,
                max_active_accounts: Some(250),
            }),
        };
        round_trip(&file);
        // A partner with every SPEC §9 field.
        let mut p = person("noelle@example.org", "Noelle", "Holiday");
        p.role = None;
        p.roles = Some(vec!["case: worker".into(), "007".into()]);
        p.entitlements = [
            (
                "products".to_string(),
                vec!["- x".to_string(), "true".into()],
            ),
            ("coverage".to_string(), vec!["North Team".to_string()]),
        ]
        .into();
        p.case_manager = Some("jose.nunez@example.org".into());
        p.sign_in = Some(SignIn::Sso);
        p.account = Some("NHoliday".into());
        p.previously = Some("007".into());
        let mut with_access = file.clone();
        with_access.partners.push(p);
        round_trip(&with_access);
    }

    #[test]
    fn defaults_and_empty_files_round_trip() {
        round_trip(&RosterFile {
            version: 1,
            groups: vec![],
            partners: vec![],
            policy: None,
        });
        round_trip(&RosterFile {
            version: 1,
            groups: vec![org("A", vec![])],
            partners: vec![person("a@example.org", "A", "B")],
            policy: Some(Policy {
                max_removals: MaxRemovals::Count(3),
                ..Policy::default()
            }),
        });
        round_trip(&RosterFile {
            version: 1,
            groups: vec![],
            partners: vec![],
            policy: Some(Policy {
                max_removals: MaxRemovals::Percent("0%".into()),
                ..Policy::default()
            }),
        });
    }

    #[test]
    fn the_shipped_example_round_trips() {
        let text = include_str!("../../examples/worknet/roster.yaml");
        round_trip(&parse(text));
    }

    fn small() -> RosterFile {
        let mut mandy = person("Mandy.McCray@example.com", "Mandy", "McCray");
        mandy.birth_date = Some("1972-09-01".into());
        mandy.phone = Some("217-852-9634".into());
        mandy.extension = Some("12".into());
        mandy.zip = Some("62568".into());
        mandy.account = Some("MMcCray".into());
        let mut jose = person("jose@example.org", "José", "Núñez-O'Neil");
        jose.role = Some(Role::Individual.as_str().into());
        jose.active = false;
        RosterFile {
            version: 1,
            groups: vec![
                Group {
                    name: "Apprenticeship: ABC".into(),
                    kind: GroupType::Project,
                    lwia: Some(20),
                    members: vec![
                        Member::Entry(MemberEntry {
                            email: "mandy.mccray@example.com".into(),
                            user_manager: true,
                        }),
                        Member::Email("jose@example.org".into()),
                        Member::Entry(MemberEntry {
                            email: "x@example.org".into(),
                            user_manager: false,
                        }),
                    ],
                },
                org("true", vec![]),
            ],
            partners: vec![mandy, jose],
            policy: Some(Policy {
                email_domains: EmailDomains {
                    allow: vec![],
                    deny: vec!["mailinator.com".into()],
                },
                restrictions: vec![Restriction {
                    files: "agencies/*.yaml".into(),
                    groups: "ACME .*".into(),
                }],
                ..Policy::default()
            }),
        }
    }

    #[test]
    fn exact_text_of_a_small_file() {
        let expected = r#"version: 1

groups:
  - name: "Apprenticeship: ABC"
    type: project
    lwia: 20
    members:
      - email: mandy.mccray@example.com
        user_manager: true
      - jose@example.org
      - email: x@example.org

  - name: "true"
    type: organization

partners:
  - email: Mandy.McCray@example.com
    first_name: Mandy
    last_name: McCray
    birth_date: 1972-09-01
    phone: "217-852-9634"
    extension: "12"
    zip: "62568"
    role: public-viewer
    account: MMcCray

  - email: jose@example.org
    first_name: José
    last_name: Núñez-O'Neil
    role: individual
    active: false

policy:
  required_fields: [birth_date, phone, zip]
  min_user_managers: 0
  user_manager_roles: [public-viewer]
  email_domains:
    allow: []
    deny: [mailinator.com]
  max_removals: "25%"
  deactivate_orphans: false
  manage_profiles: false
  unmanaged_groups: ignore
  restrictions:
    - files: agencies/*.yaml
      groups: ACME .*
"#;
        let file = small();
        assert_eq!(
            roster_file(&file, &EmitOptions { show_pii: true }),
            expected
        );
        round_trip(&file);
    }

    #[test]
    fn personal_data_is_left_out_unless_asked_for() {
        let text = roster_file(&small(), &EmitOptions { show_pii: false });
        for hidden in [
            "birth_date:",
            "1972-09-01",
            "phone:",
            "217-852-9634",
            "extension:",
        ] {
            assert!(!text.contains(hidden), "{hidden} in\n{text}");
        }
        assert!(text.contains("    zip: \"62568\"\n    role: public-viewer\n"));
        assert!(text.contains("  - email: Mandy.McCray@example.com\n    first_name: Mandy\n"));
    }

    #[test]
    fn plain_or_quoted() {
        for plain in [
            "Mandy",
            "a:b",
            "a#b",
            "José",
            "1972-09-01",
            "ACME .*",
            "roster.yaml",
        ] {
            assert_eq!(scalar(plain), plain);
        }
        for (s, q) in [
            ("", r#""""#),
            ("true", r#""true""#),
            ("12", r#""12""#),
            ("0x1F", r#""0x1F""#),
            (".inf", r#"".inf""#),
            ("- x", r#""- x""#),
            ("say \"hi\"\n", r#""say \"hi\"\n""#),
            ("bom\u{feff}", r#""bom\uFEFF""#),
        ] {
            assert_eq!(scalar(s), q, "{s:?}");
        }
        assert_eq!(
            flow_list(&["a.org", "x, y", "b:c"]),
            r#"[a.org, "x, y", "b:c"]"#
        );
    }
}
