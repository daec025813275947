//! `roster init DIR`: a new roster repository from a store (or from
//! nothing), laid out by [`crate::app::init`].

use super::plan::write_private;
use super::{Done, Error, Out, Outcome};
use crate::app::init::{self, NewFile, SplitBy};
use crate::store::{self, Options};
use clap::ValueEnum;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The directory to make the repository in (created if missing; must be empty unless --force).
    pub dir: PathBuf,
    /// The store to read: sqlite:PATH, postgres://…, scim+https://… (default: start empty).
    #[arg(long = "store", env = "ROSTER_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// How to lay out the roster files.
    #[arg(long, value_enum, default_value = "organization")]
    pub split_by: Split,
    /// Write into a directory that is not empty, replacing files of the same names.
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Split {
    /// One folder per group, each restricted to its group by the policy.
    Organization,
    /// One roster file.
    None,
}

pub fn run(args: Args, out: &mut Out) -> Outcome {
    let dir = out.cwd.join(&args.dir);
    let shown = args.dir.display().to_string();
    refuse_unless_empty(&dir, &shown, args.force)?;
    let file = match &args.store {
        Some(url) => {
            let opened = store::open(url, Options::default())?;
            let exported = crate::app::export::export(opened.as_ref())?;
            for (other, account, email) in &exported.shared_emails {
                let _ = writeln!(
                    out.stderr,
                    "warning: accounts {other} and {account} share the email {email}; a roster holds one partner per email, so settle which one it is",
                );
            }
            exported.file
        }
        None => init::empty(),
    };
    let split = match args.split_by {
        Split::Organization => SplitBy::Organization,
        Split::None => SplitBy::None,
    };
    let schema = crate::roster::schema::pretty(&crate::roster::schema::roster_schema());
    let files = init::layout(&file, split, &schema);
    for f in &files {
        write(&dir, f).map_err(|e| {
            Error::msg(format!(
                "{}: cannot write: {e}",
                Path::new(&shown).join(&f.path).display()
            ))
        })?;
    }
    let _ = writeln!(
        out.stdout,
        "Wrote {} to {shown}: {} and {} from {}.\n\
         Next: cd {shown} && git init && roster plan{}  (it shows no changes)\n\
         then replace the @CHANGE-ME owners in CODEOWNERS and set the store's URL as the\n\
         ROSTER_STORE secret (GitHub) or CI/CD variable (GitLab).",
        crate::report::plural(files.len(), "file"),
        crate::report::plural(file.groups.len(), "group"),
        crate::report::plural(file.partners.len(), "partner"),
        args.store
            .as_deref()
            .map(store::display_url)
            .unwrap_or_else(|| "an empty start".into()),
        args.store
            .as_deref()
            .map(|u| format!(" --store {}", from_inside(u, &out.cwd)))
            .unwrap_or_default(),
    );
    Ok(Done::Ok)
}

/// The store's URL as seen from inside the new repository: a relative
/// SQLite path made absolute (a password never shown).
fn from_inside(url: &str, cwd: &Path) -> String {
    match url.strip_prefix("sqlite:") {
        Some(path) if Path::new(path).is_relative() => {
            format!("sqlite:{}", cwd.join(path).display())
        }
        _ => store::display_url(url),
    }
}

/// A directory that does not exist or is empty, unless `force`.
fn refuse_unless_empty(dir: &Path, shown: &str, force: bool) -> Result<(), Error> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if !force && entries.next().is_some() {
                return Err(Error::msg(format!(
                    "{shown} is not empty; choose a new or empty directory, or pass --force to write into it (files of the same names are replaced)"
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::msg(format!(
            "{shown} is a file, not a directory; choose a new or empty directory"
        ))),
        Err(e) => Err(Error::msg(format!("{shown}: cannot read: {e}"))),
    }
}

/// One file, its folders made; files with personal data 0600 (written
/// atomically, as exports are).
fn write(dir: &Path, f: &NewFile) -> std::io::Result<()> {
    let path = dir.join(&f.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Through a temporary file renamed into place: `--force` replaces a
    // file (or a symlink) of the same name, never writes through it.
    write_private(&path, f.text.as_bytes())?;
    #[cfg(unix)]
    if !f.private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}
