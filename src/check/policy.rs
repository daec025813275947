//! The policy block (SPEC §5): its own validity, and the rules it enforces.

use super::Index;
use super::finding::{Code, Finding};
use crate::roster::model::{MaxRemovals, Policy};
use crate::roster::normalize;
use crate::roster::{Roster, Section};

/// A restriction with its glob and regex compiled.
pub struct CompiledRestriction {
    pub files: globset::GlobMatcher,
    pub groups: regex::Regex,
    pub files_text: String,
}

/// Compile the restrictions; errors go to `out` with positions in the policy file.
pub fn compile_restrictions(roster: &Roster, out: &mut Vec<Finding>) -> Vec<CompiledRestriction> {
    let Some(pf) = roster.policy_at else {
        return Vec::new();
    };
    let mut compiled = Vec::new();
    for (i, r) in roster.policy.restrictions.iter().enumerate() {
        let i_s = i.to_string();
        let glob = globset::GlobBuilder::new(&r.files)
            .literal_separator(true)
            .build();
        let re = regex::Regex::new(&format!("^(?:{})$", r.groups));
        match (glob, re) {
            (Ok(g), Ok(re)) => compiled.push(CompiledRestriction {
                files: g.compile_matcher(),
                groups: re,
                files_text: r.files.clone(),
            }),
            (g, re) => {
                if let Err(e) = g {
                    let (file, pos) =
                        roster.key_pos(pf, &["policy", "restrictions", &i_s], "files");
                    out.push(
                        Finding::error(
                            Code::InvalidGlob,
                            file,
                            pos,
                            format!("`files` is not a valid glob: {}", e.kind()),
                        )
                        .help("use a glob such as `agencies/acme/*.yaml`")
                        .in_file(pf),
                    );
                }
                if let Err(e) = re {
                    let (file, pos) =
                        roster.key_pos(pf, &["policy", "restrictions", &i_s], "groups");
                    let why = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    out.push(
                        Finding::error(Code::InvalidRegex, file, pos, format!("`groups` is not a valid regular expression: {why}"))
                            .help("use a regular expression such as `ACME .*` (it must match the whole name)")
                            .in_file(pf),
                    );
                }
            }
        }
    }
    compiled
}

fn validate_policy(roster: &Roster, out: &mut Vec<Finding>) {
    let Some(pf) = roster.policy_at else { return };
    let p: &Policy = &roster.policy;
    if let MaxRemovals::Percent(s) = &p.max_removals {
        let ok = s
            .strip_suffix('%')
            .and_then(|n| n.parse::<f64>().ok())
            .is_some_and(|n| (0.0..=100.0).contains(&n));
        if !ok {
            let (file, pos) = roster.key_pos(pf, &["policy"], "max_removals");
            out.push(
                Finding::error(Code::InvalidPolicy, file, pos, format!("`max_removals` must be a count or a percentage from 0% to 100%, found \"{s}\""))
                    .help("write e.g. `max_removals: 10` or `max_removals: \"25%\"`")
                    .in_file(pf),
            );
        }
    }
    for (list, name) in [
        (&p.email_domains.allow, "allow"),
        (&p.email_domains.deny, "deny"),
    ] {
        for (i, d) in list.iter().enumerate() {
            let bare = d.trim().trim_start_matches('@');
            if bare.is_empty() || !bare.contains('.') || bare.contains(['@', ' ', '/']) {
                let (file, pos) = roster.key_pos(pf, &["policy", "email_domains"], name);
                out.push(
                    Finding::error(
                        Code::InvalidPolicy,
                        file,
                        pos,
                        format!(
                            "`email_domains.{name}` item {} is not a domain: \"{d}\"",
                            i + 1
                        ),
                    )
                    .help("write domains such as `example.org` (subdomains are included)")
                    .in_file(pf),
                );
            }
        }
    }
}

fn domain_matches(domain: &str, pattern: &str) -> bool {
    let p = pattern.trim().trim_start_matches('@').to_lowercase();
    domain == p || domain.ends_with(&format!(".{p}"))
}

pub fn check(roster: &Roster, index: &Index, out: &mut Vec<Finding>) {
    validate_policy(roster, out);
    let p = &roster.policy;
    let restrictions = compile_restrictions(roster, out);
    let by_email = &index.by_email;

    for e in &roster.partners {
        let partner = &e.item;
        if partner.active {
            for field in &p.required_fields {
                if !field.is_set(partner) {
                    let (file, pos) = roster.pos(Section::Partners, e.at, &[]);
                    out.push(
                        Finding::error(
                            Code::MissingRequiredField,
                            file,
                            pos,
                            format!(
                                "partner `{}` has no `{}`, which the policy requires",
                                normalize::email(&partner.email),
                                field.as_str()
                            ),
                        )
                        .help(format!(
                            "add `{}:` to the partner, or remove it from `policy.required_fields`",
                            field.as_str()
                        ))
                        .in_file(e.at.file),
                    );
                }
            }
        }
        if let Some(domain) = normalize::email_domain(&partner.email) {
            let allow = &p.email_domains.allow;
            let denied = p
                .email_domains
                .deny
                .iter()
                .find(|d| domain_matches(&domain, d));
            let not_allowed =
                !allow.is_empty() && !allow.iter().any(|d| domain_matches(&domain, d));
            if denied.is_some() || not_allowed {
                let (file, pos) = roster.pos(Section::Partners, e.at, &["email"]);
                let f = if let Some(d) = denied {
                    Finding::error(
                        Code::EmailDomainDenied,
                        file,
                        pos,
                        format!(
                            "`{}` uses domain `{domain}`, which the policy denies ({d})",
                            normalize::email(&partner.email)
                        ),
                    )
                } else {
                    Finding::error(
                        Code::EmailDomainNotAllowed,
                        file,
                        pos,
                        format!(
                            "`{}` uses domain `{domain}`, which is not in `email_domains.allow`",
                            normalize::email(&partner.email)
                        ),
                    )
                };
                out.push(
                    f.help(format!(
                        "allowed domains: {}",
                        if allow.is_empty() {
                            "any but the denied".to_string()
                        } else {
                            allow.join(", ")
                        }
                    ))
                    .in_file(e.at.file),
                );
            }
        }
    }

    for g in &roster.groups {
        let mut managers = 0u32;
        for (j, m) in g.item.members.iter().enumerate() {
            if !m.user_manager() {
                continue;
            }
            let Some(&pi) = by_email.get(normalize::email_key(m.email()).as_ref()) else {
                continue;
            };
            let partner = &roster.partners[pi].item;
            if partner.active {
                managers += 1;
            }
            if !p.user_manager_roles.contains(&partner.role) {
                let (file, pos) = roster.pos(Section::Groups, g.at, &["members", &j.to_string()]);
                let roles: Vec<&str> = p.user_manager_roles.iter().map(|r| r.as_str()).collect();
                out.push(
                    Finding::error(
                        Code::UserManagerRole,
                        file,
                        pos,
                        format!("`{}` has role `{}`, which may not manage users (allowed: {})", normalize::email(m.email()), partner.role.as_str(), roles.join(", ")),
                    )
                    .help("remove `user_manager: true`, change the partner's role, or add the role to `policy.user_manager_roles`")
                    .in_file(g.at.file),
                );
            }
        }
        if managers < p.min_user_managers {
            let (file, pos) = roster.pos(Section::Groups, g.at, &["name"]);
            out.push(
                Finding::error(
                    Code::TooFewUserManagers,
                    file,
                    pos,
                    format!("group `{}` has {managers} user manager(s); the policy requires at least {}", g.item.name, p.min_user_managers),
                )
                .help("mark a member with `user_manager: true`")
                .in_file(g.at.file),
            );
        }
        if !restrictions.is_empty() {
            let rel = &roster.files[g.at.file].rel;
            let allowed = restrictions
                .iter()
                .any(|r| r.files.is_match(rel) && r.groups.is_match(&g.item.name));
            if !allowed {
                let homes: Vec<&str> = restrictions
                    .iter()
                    .filter(|r| r.groups.is_match(&g.item.name))
                    .map(|r| r.files_text.as_str())
                    .collect();
                let (file, pos) = roster.pos(Section::Groups, g.at, &["name"]);
                let help = if homes.is_empty() {
                    "no restriction allows this group name in any file; add one to `policy.restrictions`".to_string()
                } else {
                    format!("declare it in a file matching {}", homes.join(" or "))
                };
                out.push(
                    Finding::error(
                        Code::RestrictedGroup,
                        file,
                        pos,
                        format!("group `{}` may not be declared in `{rel}`", g.item.name),
                    )
                    .help(help)
                    .in_file(g.at.file),
                );
            }
        }
    }
}
