//! `roster plan`.

use super::{Done, Error, Out, Outcome};
use crate::app::plan::{PlanError, Planned};
use crate::plan::{Plan, render};
use crate::report::{self, Style};
use crate::store::{self, Store};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Open the store, once for the whole command. With `--verbose`, how
    /// many requests it took is said on stderr when the command ends.
    pub fn open(
        &self,
        out: &mut Out,
        lock_timeout: std::time::Duration,
    ) -> Result<Arc<dyn Store>, Error> {
        let options = store::Options {
            lock_timeout,
            ..store::Options::default()
        };
        let opened: Arc<dyn Store> = Arc::from(store::open(&self.url, options)?);
        if self.verbose {
            out.verbose_store = Some(opened.clone());
        }
        Ok(opened)
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

/// Plan the roster against the store; a roster that cannot be planned is
/// reported with its findings (personal data shown only with `show_pii`).
pub fn make(
    store: &dyn Store,
    rosters: &[PathBuf],
    out: &mut Out,
    show_pii: bool,
) -> Result<Planned, Error> {
    match crate::app::plan::plan(store, rosters, &out.cwd) {
        Ok(p) => Ok(p),
        Err(PlanError::Store(e)) => Err(e.into()),
        Err(PlanError::Roster(checked)) => {
            let style = Style {
                color: out.color,
                show_pii,
            };
            let mut text = report::human(&checked.findings, &checked.roster.files, style);
            let (errors, _) = report::counts(&checked.findings);
            text.push_str(&format!(
                "cannot plan: the roster has {}; fix {} and run plan again",
                report::plural(errors, "error"),
                if errors == 1 { "it" } else { "them" }
            ));
            Err(Error::Text(text))
        }
    }
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

pub fn run(args: Args, out: &mut Out) -> Outcome {
    let store = args
        .store
        .open(out, store::Options::default().lock_timeout)?;
    // A saved plan is sealed with the store's key: get it (made on first
    // need) before planning, so a store that cannot seal fails fast.
    let key = match &args.out {
        Some(_) => store
            .plan_key(true)
            .map_err(|e| Error::msg(format!("cannot seal the plan: {e}")))?,
        None => None,
    };
    let Planned {
        mut plan, checked, ..
    } = make(store.as_ref(), &args.rosters, out, args.show_pii)?;
    if let Some(path) = &args.out {
        if let Some(key) = &key {
            crate::plan::seal::seal(&mut plan, key);
        }
        let json = serde_json::to_string_pretty(&plan).unwrap_or_default() + "\n";
        write_private(path, json.as_bytes())
            .map_err(|e| Error::msg(format!("{}: cannot write the plan: {e}", path.display())))?;
    }
    let done = outcome(&plan, args.detailed_exitcode);
    let mut shown = plan.into_display(args.show_pii);
    // The seal covers the saved file, not this rendering of it.
    shown.seal = None;
    let text = match args.format {
        Format::Json => {
            // Written as it is made: a large plan's text is never whole in memory.
            let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut *out.stdout);
            let _ = serde_json::to_writer_pretty(&mut w, &shown)
                .map_err(std::io::Error::from)
                .and_then(|()| std::io::Write::write_all(&mut w, b"\n"))
                .and_then(|()| std::io::Write::flush(&mut w));
            String::new()
        }
        Format::Markdown => render::markdown(&shown),
        Format::Human => render::human(&shown, out.color),
    };
    let _ = out.stdout.write_all(text.as_bytes());
    // The roster and plan are large and about to be freed by the exit anyway.
    std::mem::forget(checked);
    std::mem::forget(shown);
    done
}

/// How a plan ends the command: unresolved partners or violations fail
/// it (the plan says which); with `detailed`, changes exit 2.
pub fn outcome(plan: &Plan, detailed: bool) -> Outcome {
    if plan.summary.unresolved > 0 || !plan.violations.is_empty() {
        Err(Error::Reported)
    } else if detailed && plan.summary.changes() > 0 {
        Ok(Done::Changes)
    } else {
        Ok(Done::Ok)
    }
}
