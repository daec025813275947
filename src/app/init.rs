//! `roster init`: the files of a new roster repository, made from a store's
//! export (or from nothing): roster files split one folder per group, a
//! policy whose restrictions keep each folder to its own group, the JSON
//! Schema for editors, CODEOWNERS, pre-commit and CI pipelines.
//!
//! Pure: takes the exported roster and returns the files to write; the
//! command line writes them.

use crate::domain::GroupType;
use crate::roster::emit::{self, EmitOptions};
use crate::roster::model::{Group, Partner, Policy, Restriction, RosterFile};
use crate::roster::normalize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How roster files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    /// One folder per group (`roster/organizations/NAME/`,
    /// `roster/projects/NAME/`), each restricted to its group.
    Organization,
    /// Every group and partner in `roster/roster.yaml`.
    None,
}

/// One file to write, its path relative to the new repository's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub path: String,
    pub text: String,
    /// Holds personal data (birth dates, phones): written 0600.
    pub private: bool,
}

/// The folder of roster files, relative to the repository's root: what
/// `roster check` and `roster plan` read there by default.
pub const ROSTER_DIR: &str = "roster";

/// Where the JSON Schema for editors is written.
pub const SCHEMA_PATH: &str = "schemas/roster.schema.json";

/// The pipelines and hook configuration written beside the roster; the
/// kit they call lives in this repository under `ci/`.
const GITHUB_WORKFLOW: &str = include_str!("../../ci/templates/github-workflow.yml");
const GITLAB_CI: &str = include_str!("../../ci/templates/gitlab-ci.yml");
const PRE_COMMIT: &str = include_str!("../../ci/templates/pre-commit-config.yaml");

/// The git ref of roster's repository that the generated pipelines and
/// hook configuration pin: this version's tag.
pub fn kit_ref() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// Every file of a new roster repository holding `file` (an export, or an
/// empty roster), with `schema` (the roster JSON Schema's text) for editors.
pub fn layout(file: &RosterFile, split: SplitBy, schema: &str) -> Vec<NewFile> {
    let mut out = Vec::new();
    let mut policy = file.policy.clone().unwrap_or_default();
    let mut owners: Vec<(String, String)> = Vec::new();
    match split {
        SplitBy::None => {
            if !file.groups.is_empty() || !file.partners.is_empty() {
                out.push(roster_file(
                    &format!("{ROSTER_DIR}/roster.yaml"),
                    file.groups.clone(),
                    file.partners.clone(),
                ));
            }
        }
        SplitBy::Organization => {
            let folders = folders(&file.groups);
            // A partner in exactly one group lives in that group's file;
            // one in several groups (or none) in the shared partners file.
            let mut groups_of: HashMap<String, BTreeSet<usize>> = HashMap::new();
            for (i, g) in file.groups.iter().enumerate() {
                for m in &g.members {
                    groups_of
                        .entry(normalize::email(m.email()))
                        .or_default()
                        .insert(i);
                }
            }
            let mut partners_of: BTreeMap<usize, Vec<Partner>> = BTreeMap::new();
            let mut shared = Vec::new();
            for p in &file.partners {
                match groups_of.get(&normalize::email(&p.email)) {
                    Some(gs) if gs.len() == 1 => partners_of
                        .entry(*gs.iter().next().unwrap_or(&0))
                        .or_default()
                        .push(p.clone()),
                    _ => shared.push(p.clone()),
                }
            }
            for (i, g) in file.groups.iter().enumerate() {
                let folder = &folders[i];
                out.push(roster_file(
                    &format!("{ROSTER_DIR}/{folder}/roster.yaml"),
                    vec![g.clone()],
                    partners_of.remove(&i).unwrap_or_default(),
                ));
                policy.restrictions.push(Restriction {
                    files: format!("{folder}/*.yaml"),
                    groups: regex_literal(&g.name),
                });
                owners.push((format!("/{ROSTER_DIR}/{folder}/"), owner_slug(folder)));
            }
            if !shared.is_empty() {
                out.push(roster_file(
                    &format!("{ROSTER_DIR}/partners.yaml"),
                    Vec::new(),
                    shared,
                ));
            }
        }
    }
    let policy_file = RosterFile {
        version: 1,
        groups: Vec::new(),
        partners: Vec::new(),
        policy: Some(policy),
    };
    let policy_path = format!("{ROSTER_DIR}/policy.yaml");
    out.insert(
        0,
        NewFile {
            text: format!(
                "{}# One policy for the whole roster (SPEC §5). `required_fields` lists the fields\n\
                 # every active account in the store has; `restrictions` keep each folder to its\n\
                 # own group, so CODEOWNERS can give each folder its own reviewers.\n{}",
                schema_line(&policy_path),
                emit::roster_file(&policy_file, &EmitOptions { show_pii: true })
            ),
            path: policy_path,
            private: false,
        },
    );
    out.push(NewFile {
        path: SCHEMA_PATH.into(),
        text: schema.to_string(),
        private: false,
    });
    out.push(NewFile {
        path: "CODEOWNERS".into(),
        text: codeowners(&owners),
        private: false,
    });
    let fill = |t: &str| {
        t.replace("{{ref}}", &kit_ref())
            .replace("{{roster}}", &format!("{ROSTER_DIR}/"))
    };
    out.push(NewFile {
        path: ".pre-commit-config.yaml".into(),
        text: fill(PRE_COMMIT),
        private: false,
    });
    out.push(NewFile {
        path: ".github/workflows/roster.yml".into(),
        text: fill(GITHUB_WORKFLOW),
        private: false,
    });
    out.push(NewFile {
        path: ".gitlab-ci.yml".into(),
        text: fill(GITLAB_CI),
        private: false,
    });
    out
}

/// A roster file of these groups and partners, with the `$schema` line.
fn roster_file(path: &str, groups: Vec<Group>, partners: Vec<Partner>) -> NewFile {
    let private = !partners.is_empty();
    let file = RosterFile {
        version: 1,
        groups,
        partners,
        policy: None,
    };
    NewFile {
        text: format!(
            "{}{}",
            schema_line(path),
            emit::roster_file(&file, &EmitOptions { show_pii: true })
        ),
        path: path.to_string(),
        private,
    }
}

/// `# yaml-language-server: $schema=…` pointing from `path` to the schema
/// written at [`SCHEMA_PATH`], relative as in the README's examples.
fn schema_line(path: &str) -> String {
    let up = path.matches('/').count();
    format!(
        "# yaml-language-server: $schema={}{SCHEMA_PATH}\n",
        "../".repeat(up)
    )
}

/// Each group's folder (relative to the roster folder): its kind's folder
/// and a slug of its name, made unique.
fn folders(groups: &[Group]) -> Vec<String> {
    let mut taken: BTreeSet<String> = BTreeSet::new();
    groups
        .iter()
        .map(|g| {
            let kind = match g.kind {
                GroupType::Organization => "organizations",
                GroupType::Project => "projects",
            };
            let base = slug(&g.name);
            let mut name = format!("{kind}/{base}");
            let mut n = 2;
            while !taken.insert(name.clone()) {
                name = format!("{kind}/{base}-{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// Lower-case ASCII letters and digits joined by `-` (accents folded):
/// safe as a folder name, a glob and a CODEOWNERS path.
fn slug(name: &str) -> String {
    let ascii = deunicode::deunicode(name).to_ascii_lowercase();
    let mut s = String::new();
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    while s.ends_with('-') {
        s.pop();
    }
    s.truncate(60);
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() { "group".into() } else { s }
}

/// A regular expression matching exactly `name`.
fn regex_literal(name: &str) -> String {
    regex::escape(name)
}

fn owner_slug(folder: &str) -> String {
    format!("@CHANGE-ME/{}", folder.rsplit('/').next().unwrap_or(folder))
}

fn codeowners(owners: &[(String, String)]) -> String {
    let mut s = String::from(
        "# Who must review changes, per folder (GitHub and GitLab read this file).\n\
         # Replace each @CHANGE-ME/… placeholder with a user (@name) or a team\n\
         # (@org/team), then require code owner reviews on the default branch.\n\
         # The last matching line wins: the roster's administrators own everything,\n\
         # each organization's reviewers own its folder.\n\
         *    @CHANGE-ME/roster-admins\n",
    );
    let width = owners.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    for (path, owner) in owners {
        s.push_str(&format!("{path:width$}  {owner}\n"));
    }
    s
}

/// An empty roster: what `init` writes without a store.
pub fn empty() -> RosterFile {
    RosterFile {
        version: 1,
        groups: Vec::new(),
        partners: Vec::new(),
        policy: None::<Policy>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_folder_names() {
        assert_eq!(
            slug("Apprenticeship Illinois - ABC Location"),
            "apprenticeship-illinois-abc-location"
        );
        assert_eq!(slug("José Núñez-O'Neil"), "jose-nunez-o-neil");
        assert_eq!(slug("../../etc"), "etc");
        assert_eq!(slug("***"), "group");
    }

    #[test]
    fn folders_are_unique() {
        let g = |name: &str| Group {
            name: name.into(),
            kind: GroupType::Organization,
            lwia: None,
            members: Vec::new(),
        };
        assert_eq!(
            folders(&[g("A b"), g("a-B"), g("A  B")]),
            [
                "organizations/a-b",
                "organizations/a-b-2",
                "organizations/a-b-3"
            ]
        );
    }

    #[test]
    fn schema_lines_point_back_to_the_root() {
        assert_eq!(
            schema_line("roster/organizations/x/roster.yaml"),
            "# yaml-language-server: $schema=../../../schemas/roster.schema.json\n"
        );
        assert_eq!(
            schema_line("roster/policy.yaml"),
            "# yaml-language-server: $schema=../schemas/roster.schema.json\n"
        );
    }
}
