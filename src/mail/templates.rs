//! The mails' text and HTML, from templates: the shipped defaults
//! (templates/ in the source tree, built in) or a folder of the
//! organisation's (`--templates DIR`), whose `settings.yaml` names the
//! organisation, its colors, logo and contact, and the subject lines.

use crate::roster::yaml;
use crate::store::MailKind;
use minijinja::{AutoEscape, Environment, context};
use std::path::{Path, PathBuf};

/// The shipped templates, by file name.
const DEFAULTS: &[(&str, &str)] = &[
    (
        "layout.html.j2",
        include_str!("../../templates/layout.html.j2"),
    ),
    (
        "invitation.txt.j2",
        include_str!("../../templates/invitation.txt.j2"),
    ),
    (
        "invitation.html.j2",
        include_str!("../../templates/invitation.html.j2"),
    ),
    (
        "reminder.txt.j2",
        include_str!("../../templates/reminder.txt.j2"),
    ),
    (
        "reminder.html.j2",
        include_str!("../../templates/reminder.html.j2"),
    ),
    ("reset.txt.j2", include_str!("../../templates/reset.txt.j2")),
    (
        "reset.html.j2",
        include_str!("../../templates/reset.html.j2"),
    ),
];

/// The shipped settings.
const DEFAULT_SETTINGS: &str = include_str!("../../templates/settings.yaml");

/// A mail ready to send: its subject, text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Who a mail is for.
pub struct Person<'a> {
    pub user_name: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
}

/// The organisation's settings.
#[derive(Debug, Clone, serde::Serialize)]
struct Org {
    name: String,
    color: String,
    text_color: String,
    logo_url: String,
    contact: String,
}

/// The templates, compiled once, and the settings.
pub struct Templates {
    env: Environment<'static>,
    org: Org,
    /// Where each template came from, for errors.
    dir: Option<PathBuf>,
}

fn subject_name(kind: MailKind) -> String {
    format!("subject.{}", kind.as_str())
}

impl Templates {
    /// The shipped templates, with `dir`'s files and settings over them.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut env = Environment::new();
        // HTML templates (`*.html.j2`) escape every value; text ones do not.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let mut settings_text = DEFAULT_SETTINGS.to_string();
        let mut settings_file = "the shipped settings.yaml".to_string();
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(format!(
                    "--templates {}: not a folder of templates",
                    dir.display()
                ));
            }
            let s = dir.join("settings.yaml");
            if s.exists() {
                settings_text =
                    std::fs::read_to_string(&s).map_err(|e| format!("{}: {e}", s.display()))?;
                settings_file = s.display().to_string();
            }
        }
        let (org, subjects) = settings(&settings_text, &settings_file)?;
        for (name, text) in DEFAULTS {
            let (text, shown) = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(p) => (
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?,
                    p.display().to_string(),
                ),
                None => (text.to_string(), format!("templates/{name}")),
            };
            env.add_template_owned(name.to_string(), text)
                .map_err(|e| template_error(&shown, &e))?;
        }
        for (kind, text) in subjects {
            env.add_template_owned(subject_name(kind), text)
                .map_err(|e| {
                    template_error(&format!("{settings_file}: subjects.{}", kind.as_str()), &e)
                })?;
        }
        Ok(Templates {
            env,
            org,
            dir: dir.map(Path::to_path_buf),
        })
    }

    /// The mail of `kind` for `person` with the activation `link`.
    pub fn render(
        &self,
        kind: MailKind,
        person: &Person,
        link: &str,
        expires_in_days: i64,
    ) -> Result<Rendered, String> {
        let person = context! {
            user_name => person.user_name,
            first_name => person.first_name,
            last_name => person.last_name,
            email => person.email,
        };
        let ctx = context! { org => &self.org, person => &person, link => link,
        kind => kind.as_str(), expires_in_days => expires_in_days };
        let subject = self.run(&subject_name(kind), &ctx)?;
        // A subject is one line: a value with a line break cannot add headers.
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let ctx = context! { subject => &subject, ..ctx };
        Ok(Rendered {
            text: self.run(&format!("{}.txt.j2", kind.as_str()), &ctx)?,
            html: self.run(&format!("{}.html.j2", kind.as_str()), &ctx)?,
            subject,
        })
    }

    fn run(&self, name: &str, ctx: &minijinja::Value) -> Result<String, String> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| template_error(name, &e))?;
        t.render(ctx).map_err(|e| {
            let shown = match &self.dir {
                Some(d) if d.join(e.name().unwrap_or(name)).exists() => {
                    d.join(e.name().unwrap_or(name)).display().to_string()
                }
                _ => format!("templates/{}", e.name().unwrap_or(name)),
            };
            template_error(&shown, &e)
        })
    }
}

/// `FILE:LINE: what is wrong` from a template error.
fn template_error(file: &str, e: &minijinja::Error) -> String {
    let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
    let mut msg = format!("{file}{line}: {}", e.kind());
    if let Some(d) = e.detail() {
        msg.push_str(": ");
        msg.push_str(d);
    }
    msg
}

/// The organisation and the subject templates from settings.yaml.
fn settings(text: &str, file: &str) -> Result<(Org, Vec<(MailKind, String)>), String> {
    let root = yaml::parse(text).map_err(|e| match e.pos {
        Some(p) => format!("{file}:{}:{}: {}", p.line, p.column, e.message),
        None => format!("{file}: {}", e.message),
    })?;
    let mut org = Org {
        name: "Roster".into(),
        color: "#1d4ed8".into(),
        text_color: "#1f2937".into(),
        logo_url: String::new(),
        contact: String::new(),
    };
    let mut subjects = vec![
        (
            MailKind::Invitation,
            "Activate your {{ org.name }} account".to_string(),
        ),
        (
            MailKind::Reminder,
            "Reminder: activate your {{ org.name }} account".to_string(),
        ),
        (
            MailKind::Reset,
            "Choose a new {{ org.name }} password".to_string(),
        ),
    ];
    let at = |n: &yaml::Node| format!("{file}:{}:{}", n.pos.line, n.pos.column);
    let entries = match &root.value {
        yaml::Value::Map(m) => m.as_slice(),
        yaml::Value::Null => &[],
        _ => {
            return Err(format!(
                "{}: settings are a mapping of keys (organization, color, …)",
                at(&root)
            ));
        }
    };
    let text_of = |v: &yaml::Node, key: &str| -> Result<String, String> {
        match &v.value {
            yaml::Value::Str(s) => Ok(s.clone()),
            yaml::Value::Null => Ok(String::new()),
            _ => Err(format!("{}: `{key}` is text", at(v))),
        }
    };
    for (k, v) in entries {
        let key = k.key_text();
        match key.as_str() {
            "organization" => org.name = text_of(v, &key)?,
            "color" | "text_color" => {
                let c = text_of(v, &key)?;
                let hex = c.strip_prefix('#').unwrap_or("");
                if !matches!(hex.len(), 3 | 6) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "{}: `{key}` is a color as #rgb or #rrggbb, not `{c}`",
                        at(v)
                    ));
                }
                if key == "color" {
                    org.color = c;
                } else {
                    org.text_color = c;
                }
            }
            "logo_url" => {
                let u = text_of(v, &key)?;
                if !u.is_empty() && !u.starts_with("https://") {
                    return Err(format!("{}: `logo_url` is an https:// address", at(v)));
                }
                org.logo_url = u;
            }
            "contact" => org.contact = text_of(v, &key)?,
            "subjects" => {
                let yaml::Value::Map(m) = &v.value else {
                    return Err(format!(
                        "{}: `subjects` maps invitation, reminder and reset to subject lines",
                        at(v)
                    ));
                };
                for (sk, sv) in m {
                    let kind = match sk.key_text().as_str() {
                        "invitation" => MailKind::Invitation,
                        "reminder" => MailKind::Reminder,
                        "reset" => MailKind::Reset,
                        other => {
                            return Err(format!(
                                "{}: unknown subject `{other}`: use invitation, reminder or reset",
                                at(sk)
                            ));
                        }
                    };
                    let t = text_of(sv, "subjects")?;
                    subjects.retain(|(k, _)| *k != kind);
                    subjects.push((kind, t));
                }
            }
            other => {
                return Err(format!(
                    "{}: unknown setting `{other}`: use organization, color, text_color, logo_url, contact or subjects",
                    at(k)
                ));
            }
        }
    }
    Ok((org, subjects))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> Person<'static> {
        Person {
            user_name: "ALee",
            first_name: "Ann <b>",
            last_name: "Lee",
            email: "ann@x.org",
        }
    }

    #[test]
    fn defaults_render_both_parts_and_escape_html() {
        let t = Templates::load(None).unwrap();
        let link = "https://p.example/activate?token=abc&x=1";
        for kind in [MailKind::Invitation, MailKind::Reminder, MailKind::Reset] {
            let r = t.render(kind, &ann(), link, 14).unwrap();
            assert!(r.text.contains(link), "{}", r.text);
            assert!(r.text.contains("Ann <b>"), "{}", r.text);
            assert!(r.html.contains("Ann &lt;b&gt;"), "{}", r.html);
            assert!(!r.html.contains("Ann <b>"), "{}", r.html);
            assert!(r.html.contains("token=abc&amp;x=1"), "{}", r.html);
            assert!(r.subject.contains("Roster"), "{}", r.subject);
        }
    }

    #[test]
    fn a_folder_overrides_settings_and_templates_and_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("settings.yaml"),
            "organization: Acme & Co\ncolor: \"#ff0000\"\ncontact: help@acme.example\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t
            .render(MailKind::Invitation, &ann(), "https://x/?t=1", 14)
            .unwrap();
        assert_eq!(r.subject, "Activate your Acme & Co account");
        assert!(r.html.contains("Acme &amp; Co") && r.html.contains("#ff0000"));
        assert!(r.text.contains("help@acme.example"));

        std::fs::write(
            dir.path().join("invitation.txt.j2"),
            "Hi\n{{ person.first_name\n",
        )
        .unwrap();
        let e = Templates::load(Some(dir.path())).err().unwrap();
        assert!(e.contains("invitation.txt.j2:2"), "{e}");

        std::fs::write(
            dir.path().join("invitation.txt.j2"),
            "Hi\n\n{{ nobody.here }}\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let e = t
            .render(MailKind::Invitation, &ann(), "https://x/", 14)
            .err()
            .unwrap();
        assert!(e.contains("invitation.txt.j2:3"), "{e}");

        for (bad, says) in [
            ("color: red\n", "settings.yaml:1:8"),
            ("logo_url: javascript:alert(1)\n", "https://"),
            ("colour: \"#fff\"\n", "unknown setting `colour`"),
        ] {
            std::fs::write(dir.path().join("settings.yaml"), bad).unwrap();
            let e = Templates::load(Some(dir.path())).err().unwrap();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
