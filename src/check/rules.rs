//! The always-on checks of SPEC §5: values, duplicates and references.

use super::Index;
use super::finding::{Code, Finding, did_you_mean};
use crate::roster::normalize;
use crate::roster::{Origin, Roster, Section};
use std::collections::HashMap;

pub fn check(roster: &Roster, index: &Index, out: &mut Vec<Finding>) {
    values(roster, out);
    duplicates(roster, index, out);
    members(roster, index, out);
}

fn push(
    roster: &Roster,
    out: &mut Vec<Finding>,
    section: Section,
    at: Origin,
    path: &[&str],
    make: impl FnOnce(&str, crate::roster::yaml::Pos) -> Finding,
) {
    let (file, pos) = roster.pos(section, at, path);
    out.push(make(file, pos).in_file(at.file));
}

fn values(roster: &Roster, out: &mut Vec<Finding>) {
    for e in &roster.partners {
        let p = &e.item;
        let at = e.at;
        match normalize::email_form(&p.email) {
            normalize::EmailForm::Deliverable => {}
            normalize::EmailForm::Malformed => {
                push(roster, out, Section::Partners, at, &["email"], |f, pos| {
                    Finding::error(
                        Code::InvalidEmail,
                        f,
                        pos,
                        format!("`{}` is not a valid email address", p.email),
                    )
                    .help("write an address such as name@example.org")
                    .span_len(p.email.len())
                });
            }
            normalize::EmailForm::Undeliverable(why) => {
                push(roster, out, Section::Partners, at, &["email"], |f, pos| {
                    Finding::warning(
                        Code::UndeliverableEmail,
                        f,
                        pos,
                        format!("`{}` is a valid address, but many mail systems will not deliver to it: {why}", p.email.trim()),
                    )
                    .help("keep it if the account already uses it; invitations and notices to it may bounce")
                    .span_len(p.email.len())
                });
            }
        }
        let account = p.account.as_deref().unwrap_or("x");
        for (key, value) in [
            ("first_name", p.first_name.as_str()),
            ("last_name", p.last_name.as_str()),
            ("account", account),
        ] {
            if value.trim().is_empty() {
                push(roster, out, Section::Partners, at, &[key], |f, pos| {
                    Finding::error(
                        Code::EmptyValue,
                        f,
                        pos,
                        format!("`{key}` must not be empty"),
                    )
                });
            }
        }
        if let Some(d) = &p.birth_date
            && let Err(why) = normalize::is_valid_date(d.trim())
        {
            push(
                roster,
                out,
                Section::Partners,
                at,
                &["birth_date"],
                |f, pos| {
                    Finding::error(Code::InvalidDate, f, pos, format!("`birth_date` {why}"))
                        .help("write the date as YYYY-MM-DD, e.g. 1972-09-01")
                        .span_len(d.len())
                },
            );
        }
        if let Some(ph) = &p.phone
            && normalize::phone(ph).is_none()
        {
            let digits = normalize::phone_digits(ph).len();
            push(roster, out, Section::Partners, at, &["phone"], |f, pos| {
                Finding::error(
                    Code::InvalidPhone,
                    f,
                    pos,
                    format!("`phone` must have 10 digits; this one has {digits}"),
                )
                .help("write a ten-digit number such as \"217-852-9634\"; put the extension in `extension`")
            });
        }
        if let Some(x) = &p.extension
            && !normalize::is_valid_extension(x)
        {
            push(
                roster,
                out,
                Section::Partners,
                at,
                &["extension"],
                |f, pos| {
                    Finding::error(
                        Code::InvalidExtension,
                        f,
                        pos,
                        "`extension` must be 1 to 6 digits",
                    )
                },
            );
        }
        if let Some(z) = &p.zip
            && !normalize::is_valid_zip(z)
        {
            push(roster, out, Section::Partners, at, &["zip"], |f, pos| {
                Finding::error(
                    Code::InvalidZip,
                    f,
                    pos,
                    "`zip` must be 5 digits or ZIP+4 (12345-6789)",
                )
                .help("quote it so leading zeros are kept: zip: \"02134\"")
            });
        }
    }
}

/// Duplicate emails and group names; warnings for partners sharing name and
/// birth date.
fn duplicates(roster: &Roster, index: &Index, out: &mut Vec<Finding>) {
    let mut by_person: HashMap<(String, String, &str), usize> = HashMap::new();
    for (i, e) in roster.partners.iter().enumerate() {
        let key = &index.emails[i];
        let first = index.first(i);
        if first != i {
            let (ffile, fpos) =
                roster.pos(Section::Partners, roster.partners[first].at, &["email"]);
            let first_at = format!("{ffile}:{}", fpos.line);
            push(
                roster,
                out,
                Section::Partners,
                e.at,
                &["email"],
                |f, pos| {
                    Finding::error(
                        Code::DuplicateEmail,
                        f,
                        pos,
                        format!(
                            "partner `{key}` is defined twice (emails compare case-insensitively)"
                        ),
                    )
                    .help(format!("first defined at {first_at}; keep one of them"))
                },
            );
            continue; // the other findings would only repeat this one
        }
        if let Some(d) = e.item.birth_date.as_deref() {
            let person = (
                normalize::name_key(&e.item.first_name),
                normalize::name_key(&e.item.last_name),
                d.trim(),
            );
            if let Some(&first) = by_person.get(&person) {
                let other = &index.emails[first];
                push(roster, out, Section::Partners, e.at, &[], |f, pos| {
                    Finding::warning(
                        Code::SameNameAndBirthDate,
                        f,
                        pos,
                        format!(
                            "partners `{}` and `{other}` have the same name and birth date",
                            index.emails[i]
                        ),
                    )
                    .help("if they are one person, keep one entry; if not, nothing to do, but the account search will ask to confirm")
                });
            } else {
                by_person.insert(person, i);
            }
        }
    }
    let mut groups: HashMap<String, usize> = HashMap::with_capacity(roster.groups.len());
    for (i, g) in roster.groups.iter().enumerate() {
        let key = normalize::name_key(&g.item.name);
        if let Some(&first) = groups.get(&key) {
            let (ffile, fpos) = roster.pos(Section::Groups, roster.groups[first].at, &["name"]);
            let first_at = format!("{ffile}:{}", fpos.line);
            push(roster, out, Section::Groups, g.at, &["name"], |f, pos| {
                Finding::error(
                    Code::DuplicateGroup,
                    f,
                    pos,
                    format!("group `{}` is declared twice", g.item.name.trim()),
                )
                .help(format!(
                    "first declared at {first_at}; group names are unique across all files"
                ))
            });
        } else {
            groups.insert(key, i);
        }
    }
}

/// Members must name partners; user managers must be active; every active
/// partner should be in some group.
fn members(roster: &Roster, index: &Index, out: &mut Vec<Finding>) {
    let mut in_group = vec![false; roster.partners.len()];
    for g in &roster.groups {
        let mut seen: HashMap<usize, usize> = HashMap::with_capacity(g.item.members.len());
        for (j, m) in g.item.members.iter().enumerate() {
            let j_s = j.to_string();
            let path = ["members", j_s.as_str()];
            let email = normalize::email_key(m.email());
            let Some(&pi) = index.by_email.get(email.as_ref()) else {
                let suggestion = did_you_mean(&email, index.by_email.keys().map(|k| k.as_ref()));
                push(roster, out, Section::Groups, g.at, &path, |f, pos| {
                    let f = Finding::error(
                        Code::UnknownMember,
                        f,
                        pos,
                        format!(
                            "group `{}` lists `{email}`, who is not among the partners",
                            g.item.name
                        ),
                    );
                    match suggestion {
                        Some(s) => f.help(format!("did you mean `{s}`?")),
                        None => f.help(
                            "add the person under `partners:` (in any file), or fix the email",
                        ),
                    }
                });
                continue;
            };
            in_group[pi] = true;
            if let Some(&first) = seen.get(&pi) {
                let first_line = roster
                    .pos(Section::Groups, g.at, &["members", &first.to_string()])
                    .1
                    .line;
                push(roster, out, Section::Groups, g.at, &path, |f, pos| {
                    Finding::error(
                        Code::DuplicateMember,
                        f,
                        pos,
                        format!("`{email}` is listed twice in group `{}`", g.item.name),
                    )
                    .help(format!("first listed on line {first_line}; keep one entry (with `user_manager: true` if they manage the group)"))
                });
            } else {
                seen.insert(pi, j);
            }
            let partner = &roster.partners[pi].item;
            if m.user_manager() && !partner.active {
                push(roster, out, Section::Groups, g.at, &path, |f, pos| {
                    Finding::error(
                        Code::InactiveUserManager,
                        f,
                        pos,
                        format!("`{email}` is a user manager of `{}` but is marked `active: false`", g.item.name),
                    )
                    .help("a user manager must be an active member: remove `user_manager: true` or make the partner active")
                });
            }
        }
    }
    for (i, e) in roster.partners.iter().enumerate() {
        if !in_group[i] && e.item.active && index.first(i) == i {
            push(
                roster,
                out,
                Section::Partners,
                e.at,
                &["email"],
                |f, pos| {
                    Finding::warning(
                    Code::PartnerInNoGroup,
                    f,
                    pos,
                    format!("partner `{}` is in no group", index.emails[i]),
                )
                .help("add them to a group's members, or set `active: false` to deactivate the account")
                },
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    /// Code, file, line and column of a finding.
    type Found = (&'static str, String, u32, u32);

    use super::*;
    use crate::check::finding::Severity;
    use crate::roster::load::{self, Input};

    /// Parse and merge roster files given as text; parsing must be clean.
    pub(crate) fn roster_of(files: &[(&str, &str)]) -> Roster {
        let mut findings = Vec::new();
        let parsed = files
            .iter()
            .enumerate()
            .map(|(i, (name, text))| {
                let input = Input {
                    name: name.to_string(),
                    rel: name.to_string(),
                    bytes: text.as_bytes().to_vec(),
                };
                let (source, file, mut f) = load::parse_file(input, i);
                findings.append(&mut f);
                (source, file)
            })
            .collect();
        let roster = load::merge(parsed, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        roster
    }

    fn found(files: &[(&str, &str)]) -> Vec<Found> {
        let roster = roster_of(files);
        let index = Index::new(&roster);
        let mut out = Vec::new();
        check(&roster, &index, &mut out);
        out.iter()
            .map(|f| (f.code.as_str(), f.file.clone(), f.line, f.column))
            .collect()
    }

    const HEAD: &str =
        "version: 1\ngroups:\n  - name: ABC\n    members:\n      - ann@example.org\npartners:\n";
    // Line 7 onwards: one partner per call.
    fn partner(email: &str, extra: &str) -> String {
        format!("  - email: {email}\n    first_name: Ann\n    last_name: Lee\n{extra}")
    }

    #[test]
    fn a_clean_roster_has_no_findings() {
        let text = format!(
            "{HEAD}{}",
            partner(
                "ann@example.org",
                "    birth_date: 1980-02-29\n    phone: \"217-852-9634\"\n    zip: \"62568-1234\"\n    extension: \"12\"\n"
            )
        );
        assert_eq!(found(&[("r.yaml", &text)]), vec![]);
    }

    #[test]
    fn each_bad_value_gives_its_code_at_its_value() {
        let cases: [(&str, &str, &str, u32, u32); 9] = [
            ("invalid email", "ann.example.org", "", 7, 12),
            ("empty first name", "ann@example.org", "", 0, 0),
            (
                "invalid date",
                "ann@example.org",
                "    birth_date: 1981-02-29\n",
                10,
                17,
            ),
            (
                "month 13",
                "ann@example.org",
                "    birth_date: 1981-13-01\n",
                10,
                17,
            ),
            (
                "short phone",
                "ann@example.org",
                "    phone: \"852-9634\"\n",
                10,
                12,
            ),
            (
                "long phone",
                "ann@example.org",
                "    phone: \"1-217-852-96345\"\n",
                10,
                12,
            ),
            ("bad zip", "ann@example.org", "    zip: \"6256\"\n", 10, 10),
            (
                "bad extension",
                "ann@example.org",
                "    extension: \"12a\"\n",
                10,
                16,
            ),
            (
                "long extension",
                "ann@example.org",
                "    extension: \"1234567\"\n",
                10,
                16,
            ),
        ];
        let codes = [
            "invalid-email",
            "empty-value",
            "invalid-date",
            "invalid-date",
            "invalid-phone",
            "invalid-phone",
            "invalid-zip",
            "invalid-extension",
            "invalid-extension",
        ];
        for ((name, email, extra, line, column), code) in cases.into_iter().zip(codes) {
            let mut p = partner(email, extra);
            if name == "empty first name" {
                p = p.replace("first_name: Ann", "first_name: \"  \"");
            }
            let text = format!("{HEAD}{p}");
            let got = found(&[("r.yaml", &text)]);
            let (line, column) = if line == 0 { (8, 17) } else { (line, column) };
            let want = (code, "r.yaml".to_string(), line, column);
            assert!(got.contains(&want), "{name}: want {want:?}, got {got:?}");
            // Only the one value is wrong; the invalid email also leaves the
            // partner out of its group.
            let extra_codes: Vec<_> = got
                .iter()
                .filter(|g| g.0 != code && g.0 != "partner-in-no-group" && g.0 != "unknown-member")
                .collect();
            assert!(extra_codes.is_empty(), "{name}: {got:?}");
        }
    }

    #[test]
    fn duplicates_and_references_point_at_the_second_use() {
        let text = "\
version: 1
groups:
  - name: ABC
    members:
      - ann@example.org
      - ANN@example.org
      - ghost@example.org
      - email: bob@example.org
        user_manager: true
  - name: abc
    members:
      - bob@example.org
partners:
  - email: ann@example.org
    first_name: Ann
    last_name: Lee
    birth_date: 1980-01-01
  - email: Ann@Example.org
    first_name: Other
    last_name: Ann
  - email: bob@example.org
    first_name: Ann
    last_name: Lee
    birth_date: 1980-01-01
    active: false
  - email: cat@example.org
    first_name: Cat
    last_name: Lone
";
        let mut got = found(&[("r.yaml", text)]);
        got.sort_by_key(|g| (g.2, g.3));
        let r = |c: &'static str, l, col| (c, "r.yaml".to_string(), l, col);
        assert_eq!(
            got,
            vec![
                r("duplicate-member", 6, 9),
                r("unknown-member", 7, 9),
                r("inactive-user-manager", 8, 9),
                r("duplicate-group", 10, 11),
                r("duplicate-email", 18, 12),
                r("same-name-and-birth-date", 21, 5),
                r("partner-in-no-group", 26, 12),
            ],
        );
    }

    #[test]
    fn findings_name_the_file_they_are_in() {
        let a = "version: 1\ngroups:\n  - name: ABC\n    members:\n      - ann@example.org\n";
        let b = format!(
            "version: 1\ngroups:\n  - name: ABC\npartners:\n{}",
            partner("ann@example.org", "")
        );
        let got = found(&[("a.yaml", a), ("b.yaml", &b)]);
        assert_eq!(got, vec![("duplicate-group", "b.yaml".to_string(), 3, 11)]);
    }

    #[test]
    fn an_address_mail_hosts_refuse_is_kept_with_a_warning() {
        let text = format!("{HEAD}{}", partner("ann@example.org", ""))
            .replace("ann@example.org", "ann@mail_host.example.org");
        let roster = roster_of(&[("r.yaml", &text)]);
        let mut out = Vec::new();
        check(&roster, &Index::new(&roster), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let f = &out[0];
        assert_eq!(
            (f.code, f.severity, f.line, f.column),
            (Code::UndeliverableEmail, Severity::Warning, 7, 12)
        );
        assert_eq!(
            f.message,
            "`ann@mail_host.example.org` is a valid address, but many mail systems will not deliver to it: its domain has an underscore, which host names may not have"
        );
        // A quoted local part, as RFC 5322 allows, is kept too.
        let text = format!("{HEAD}{}", partner("ann@example.org", ""))
            .replace("ann@example.org", "'\"ann lee\"@example.org'");
        let roster = roster_of(&[("r.yaml", &text)]);
        let mut out = Vec::new();
        check(&roster, &Index::new(&roster), &mut out);
        let codes: Vec<_> = out.iter().map(|f| (f.code, f.severity)).collect();
        assert_eq!(
            codes,
            [(Code::UndeliverableEmail, Severity::Warning)],
            "{out:?}"
        );
        assert!(out[0].message.ends_with("its local part is quoted"));
    }

    #[test]
    fn unknown_members_suggest_a_near_email() {
        let text = format!(
            "version: 1\ngroups:\n  - name: ABC\n    members:\n      - ann@example.org\n      - ann@exmaple.org\npartners:\n{}",
            partner("ann@example.org", "")
        );
        let roster = roster_of(&[("r.yaml", &text)]);
        let mut out = Vec::new();
        check(&roster, &Index::new(&roster), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].code, Code::UnknownMember);
        assert_eq!(out[0].severity, Severity::Error);
        assert_eq!(
            out[0].help.as_deref(),
            Some("did you mean `ann@example.org`?")
        );
    }
}
