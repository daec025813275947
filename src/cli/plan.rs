//! `roster plan`, and the planning that `apply` and `diff` share.

use super::Out;
use crate::check::{self, Checked};
use crate::plan::compute::{self, Desired};
use crate::plan::{Note, Plan, render};
use crate::report::{self, Style};
use crate::roster::Roster;
use crate::store::{self, StoreError};
use clap::ValueEnum;
use std::path::{Path, PathBuf};

/// `--store`, shared by every verb that reads or writes a store.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArg {
    /// The account store: sqlite:PATH, postgres://USER@HOST:PORT/DATABASE
    /// (password in the URL or in PGPASSWORD), or scim+https://HOST/PATH
    /// (token in ROSTER_SCIM_TOKEN).
    // The variable's value may hold a password: `--help` does not show it.
    #[arg(long = "store", env = "ROSTER_STORE", hide_env_values = true, default_value = store::DEFAULT_URL)]
    pub url: String,
    /// Say on stderr how many requests a remote store took.
    #[arg(long, short = 'v', env = "ROSTER_VERBOSE", hide_env_values = true)]
    pub verbose: bool,
}

impl StoreArg {
    /// `store: N requests` on stderr, for `--verbose` on a remote store.
    pub fn report(&self, out: &mut Out) {
        if self.verbose
            && let Some(n) = store::requests(&self.url)
        {
            let _ = writeln!(
                out.stderr,
                "store: {}",
                crate::report::plural(n as usize, "request")
            );
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Roster files or directories (default: roster.yaml or roster/).
    pub rosters: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
    /// Save the plan as JSON (mode 0600: it holds what account creation needs).
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(
        long,
        value_enum,
        default_value = "human",
        env = "ROSTER_FORMAT",
        hide_env_values = true
    )]
    pub format: Format,
    /// Exit 2 when the plan has changes (0: none, 1: error or unresolved).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Show birth dates and phone numbers (JSON output, snippets).
    #[arg(long, env = "ROSTER_SHOW_PII", hide_env_values = true)]
    pub show_pii: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Markdown,
}

/// The roster as planning takes it.
fn desired(roster: &Roster) -> Desired<'_> {
    Desired {
        groups: roster.groups.iter().map(|e| &e.item).collect(),
        partners: roster.partners.iter().map(|e| &e.item).collect(),
        policy: &roster.policy,
        digest: digest(roster),
    }
}

/// `sha256:` over the roster files' names and contents, in order.
fn digest(roster: &Roster) -> String {
    let mut data = Vec::new();
    for f in &roster.files {
        data.extend_from_slice(f.name.as_bytes());
        data.push(0);
        data.extend_from_slice(f.text.as_bytes());
        data.push(0);
    }
    crate::secrets::sha256(&data)
}

/// Read and check the roster, then plan it against the store. On failure
/// the findings or the store error are already written to stderr; the
/// exit code is returned.
pub fn make(
    rosters: &[PathBuf],
    url: &str,
    out: &mut Out,
    show_pii: bool,
) -> Result<(Plan, Checked), u8> {
    make_with_live(rosters, url, out, show_pii).map(|(p, c, _)| (p, c))
}

/// [`make`], also returning what was read from the store.
pub fn make_with_live(
    rosters: &[PathBuf],
    url: &str,
    out: &mut Out,
    show_pii: bool,
) -> Result<(Plan, Checked, compute::LiveState), u8> {
    // The store is read while the cross-file checks run; what it returns is
    // dropped if the roster turns out not to be plannable.
    let read_store = |roster: &Roster| {
        store::open_reader(url).and_then(|mut r| compute::gather(r.as_mut(), &desired(roster)))
    };
    let (checked, live) = check::check_paths_while(rosters, &out.cwd, read_store);
    let fatal: Vec<_> = checked
        .findings
        .iter()
        .filter(|f| f.is_error() && !f.code.is_violation())
        .cloned()
        .collect();
    if !fatal.is_empty() || !checked.complete {
        let style = Style {
            color: out.color,
            show_pii,
        };
        let mut text = report::human(&checked.findings, &checked.roster.files, style);
        let (errors, _) = report::counts(&checked.findings);
        text.push_str(&format!(
            "cannot plan: the roster has {}; fix {} and run plan again\n",
            report::plural(errors, "error"),
            if errors == 1 { "it" } else { "them" }
        ));
        let _ = out.stderr.write_all(text.as_bytes());
        return Err(1);
    }
    let (violations, warnings) = notes(&checked);
    let live = match live {
        Some(Ok(l)) => l,
        Some(Err(e)) => return Err(store_error(out, &e)),
        None => return Err(1),
    };
    let plan = compute::compute(&desired(&checked.roster), &live, violations, warnings);
    Ok((plan, checked, live))
}

/// The findings as the plan carries them: policy violations and warnings.
fn notes(checked: &Checked) -> (Vec<Note>, Vec<Note>) {
    let (errors, others): (Vec<_>, Vec<_>) = checked.findings.iter().partition(|f| f.is_error());
    (
        errors.into_iter().map(Note::from).collect(),
        others.into_iter().map(Note::from).collect(),
    )
}

/// Plan a roster already read and checked against the store as it is now
/// (`apply`, when another write landed since it planned).
pub fn replan(checked: &Checked, url: &str) -> Result<Plan, StoreError> {
    let d = desired(&checked.roster);
    let mut reader = store::open_reader(url)?;
    let live = compute::gather(reader.as_mut(), &d)?;
    let (violations, warnings) = notes(checked);
    Ok(compute::compute(&d, &live, violations, warnings))
}

pub fn store_error(out: &mut Out, e: &StoreError) -> u8 {
    // Store errors quote names and answers from the store or provider.
    let _ = writeln!(
        out.stderr,
        "error: {}",
        crate::report::printable_text(&e.to_string())
    );
    1
}

/// Write a file readable by its owner only, replacing it atomically.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Made 0600; removed again if anything fails before the rename.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
        // The same words as for the file itself: the random name of the
        // temporary file would only confuse.
        let words = e.to_string();
        let words = words.split(" at path ").next().unwrap_or_default();
        std::io::Error::new(e.kind(), words.to_string())
    })?;
    std::io::Write::write_all(tmp.as_file_mut(), data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

pub fn run(args: Args, out: &mut Out) -> u8 {
    // A saved plan is sealed with the store's key: get it (made on first
    // need) before planning, so a store that cannot seal fails fast.
    let key = match &args.out {
        Some(_) => match store::plan_key(&args.store.url, true) {
            Ok(k) => k,
            Err(e) => {
                let _ = writeln!(out.stderr, "error: cannot seal the plan: {e}");
                return 1;
            }
        },
        None => None,
    };
    let made = make(&args.rosters, &args.store.url, out, args.show_pii);
    args.store.report(out);
    let (mut plan, checked) = match made {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(path) = &args.out {
        if let Some(key) = &key {
            crate::plan::seal::seal(&mut plan, key);
        }
        let json = serde_json::to_string_pretty(&plan).unwrap_or_default() + "\n";
        if let Err(e) = write_private(path, json.as_bytes()) {
            let _ = writeln!(
                out.stderr,
                "error: {}: cannot write the plan: {e}",
                path.display()
            );
            return 1;
        }
    }
    let code = exit_code(&plan, args.detailed_exitcode);
    let mut shown = plan.into_display(args.show_pii);
    // The seal covers the saved file, not this rendering of it.
    shown.seal = None;
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&shown).unwrap_or_default() + "\n",
        Format::Markdown => render::markdown(&shown),
        Format::Human => render::human(&shown, out.color),
    };
    let _ = out.stdout.write_all(text.as_bytes());
    // The roster and plan are large and about to be freed by the exit anyway.
    std::mem::forget(checked);
    std::mem::forget(shown);
    code
}

pub fn exit_code(plan: &Plan, detailed: bool) -> u8 {
    if plan.summary.unresolved > 0 || !plan.violations.is_empty() {
        1
    } else if detailed && plan.summary.changes() > 0 {
        2
    } else {
        0
    }
}
