//! `roster apply ROSTER…` (plan, show, confirm, apply) and
//! `roster apply PLAN.json` (apply a saved plan unless it is stale).

use super::plan::{StoreArg, make, outcome};
use super::{Done, Error, Out, Outcome};
use crate::app::apply::{self, ApplyError, Options};
use crate::plan::{Plan, render, seal};
use crate::store::Store;
use clap::ValueEnum;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Roster files or directories, or one saved plan (JSON).
    pub targets: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
    /// Apply without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How new accounts get in.
    #[arg(
        long,
        value_enum,
        default_value = "invite",
        env = "ROSTER_ONBOARDING",
        hide_env_values = true
    )]
    pub onboarding: Onboarding,
    /// Where `--onboarding password` writes the generated passwords (mode 0600; must not exist).
    #[arg(long)]
    pub credentials_file: Option<PathBuf>,
    /// Apply even when the plan removes more than the policy's max_removals.
    #[arg(long)]
    pub allow_mass_removal: bool,
    /// Seconds to wait for another apply holding the store's lock.
    #[arg(long, default_value = "10", env = "ROSTER_LOCK_TIMEOUT", hide_env_values = true, value_parser = seconds)]
    pub lock_timeout: f64,
    /// Who is applying, for the audit log (default: the user running roster).
    #[arg(long, env = "ROSTER_ACTOR", hide_env_values = true)]
    pub actor: Option<String>,
    /// Exit 2 when changes were applied, 0 when there was nothing to change.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// How new accounts get in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Onboarding {
    /// No password; a one-time activation token (kept as a digest) and a queued invitation.
    Invite,
    /// A generated password, kept as an Argon2id hash and written only to --credentials-file.
    Password,
}

impl From<Onboarding> for apply::Onboarding {
    fn from(o: Onboarding) -> Self {
        match o {
            Onboarding::Invite => apply::Onboarding::Invite,
            Onboarding::Password => apply::Onboarding::Password,
        }
    }
}

/// A number of seconds between 0 and a day.
pub fn seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{s}` is not a number of seconds between 0 and 86400"
        )),
    }
}

/// Plans smaller than this apply too fast to need a progress line.
const PROGRESS_FROM: usize = 10_000;

/// The actor recorded in the audit log.
pub fn actor(given: Option<String>) -> String {
    given
        .filter(|a| !a.trim().is_empty())
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

pub use crate::store::now;

fn is_plan_file(targets: &[PathBuf]) -> bool {
    // The mode follows the name the caller typed, never what the file holds:
    // whoever can write the artifact must not turn a saved plan into a
    // roster. A single target is a roster only as a directory whose name
    // does not end in `.json`, or as a `.yaml`/`.yml` file; anything else is
    // read as a saved plan, and refused unless it is one.
    let [target] = targets else {
        return false;
    };
    let ext = |e: &[&str]| {
        target
            .extension()
            .is_some_and(|x| e.iter().any(|e| x == *e))
    };
    let roster = (target.is_dir() && !ext(&["json"])) || ext(&["yaml", "yml"]);
    !roster
}

/// The plan in `path`, and whether the file is exactly that plan (see
/// [`seal::is_exactly`]).
pub(super) fn read_plan(path: &Path) -> Result<(Plan, bool), Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::msg(format!(
            "{}: cannot read the plan: {e}; a saved plan is a file made by \
             `roster plan -o FILE`, a roster a .yaml/.yml file or a directory not named *.json",
            path.display()
        ))
    })?;
    let plan = parse_plan(&text).map_err(|e| {
        Error::msg(format!(
            "{}:{}:{}: not a roster plan: {e}; make one with `roster plan -o FILE`",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    let exact = seal::is_exactly(&plan, &text);
    Ok((plan, exact))
}

/// A saved plan's text as `apply` takes it (the fuzz harness reads plans
/// through here too); its seal is checked against the store afterwards.
pub fn parse_plan(text: &str) -> Result<Plan, serde_json::Error> {
    serde_json::from_str(text)
}

/// Ask on a terminal; refuse to go on without one unless `--yes`.
fn confirm(out: &mut Out) -> Result<(), Error> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::msg(
            "not on a terminal, so nobody can confirm this apply; pass --yes to apply without asking",
        ));
    }
    let _ = write!(out.stderr, "Apply this plan? Only 'yes' is accepted: ");
    let _ = out.stderr.flush();
    let mut answer = String::new();
    let _ = stdin.lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::Text("Apply cancelled; nothing changed.".into()))
    }
}

pub fn run(args: Args, out: &mut Out) -> Outcome {
    let lock_timeout = std::time::Duration::from_secs_f64(args.lock_timeout);
    let store = args.store.open(out, lock_timeout)?;
    let store = store.as_ref();
    let from_file = is_plan_file(&args.targets);
    let (mut plan, checked) = if from_file {
        let (mut plan, exact) = read_plan(&args.targets[0])?;
        apply::check_saved(&plan, exact, store).map_err(Error::msg)?;
        // Count what the plan holds, not what it says (they agree in a
        // sealed plan).
        plan.summary = crate::plan::compute::summarize(&plan.actions, &plan.resolutions);
        (plan, None)
    } else {
        let planned = make(store, &args.targets, out, false)?;
        (planned.plan, Some(planned.checked))
    };
    let replan = |checked: &crate::check::Checked| crate::app::plan::replan(store, checked);
    let replan_this = checked.as_ref().map(|c| move || replan(c));
    let actor = actor(args.actor.clone());
    let now = now();
    // Progress on a terminal only: CI logs stay quiet.
    let show = |done: usize, total: usize| {
        let mut e = std::io::stderr();
        let _ = write!(e, "\rapplying: {done}/{total} actions");
        if done == total {
            let _ = writeln!(e);
        }
    };
    loop {
        // The human rendering shows no birth dates or phones.
        let _ = out
            .stdout
            .write_all(render::human(&plan, out.color).as_bytes());
        if plan.summary.changes() == 0 && plan.summary.unresolved == 0 && plan.violations.is_empty()
        {
            return Ok(Done::Ok);
        }
        let opts = Options {
            allow_mass_removal: args.allow_mass_removal,
            onboarding: args.onboarding.into(),
            credentials_file: args.credentials_file.as_deref(),
            actor: &actor,
            now: &now,
            progress: (std::io::stderr().is_terminal() && plan.actions.len() >= PROGRESS_FROM)
                .then_some(&show as &dyn Fn(usize, usize)),
            // A roster is planned again when the store moved on; a saved
            // plan is what was approved, or nothing.
            replan: replan_this
                .as_ref()
                .map(|f| f as &dyn Fn() -> Result<Plan, crate::store::StoreError>),
            accept_changes: args.yes,
        };
        // Refuse before asking.
        apply::guard(&plan, &opts).map_err(Error::msg)?;
        if !args.yes {
            confirm(out)?;
        }
        match apply::apply(&plan, store, &opts) {
            Ok(mut done) => {
                if let Some(applied) = done.replanned.take() {
                    let _ = writeln!(
                        out.stderr,
                        "note: the store changed while this apply was planning (revision {} → {}); planned again under the store's lock",
                        plan.store.revision, applied.store.revision
                    );
                    if !apply::same_changes(&plan, &applied) {
                        let _ = writeln!(
                            out.stdout,
                            "\nThe plan changed with the store; this is the plan applied:\n"
                        );
                        let _ = out
                            .stdout
                            .write_all(render::human(&applied, out.color).as_bytes());
                    }
                    plan = applied;
                }
                applied_line(&args, store, out, &done);
                return outcome(&plan, args.detailed_exitcode);
            }
            Err(ApplyError::Changed(new)) => {
                let _ = writeln!(
                    out.stderr,
                    "note: the store changed since this plan was shown, and the plan with it; nothing was written. The plan as it is now:"
                );
                plan = *new;
            }
            Err(ApplyError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(Error::msg(e)),
        }
    }
}

fn applied_line(args: &Args, store: &dyn Store, out: &mut Out, done: &apply::Applied) {
    // A SCIM provider has no store-wide revision to report.
    let revision = if store.requests().is_some() {
        String::new()
    } else {
        format!("; it is now at revision {}", done.revision)
    };
    let _ = writeln!(
        out.stdout,
        "Applied {} to {}{revision}.{}",
        crate::report::plural(done.actions, "action"),
        crate::store::display_url(store.url()),
        if done.credentials > 0 {
            format!(
                " Passwords of {} are in {} (mode 0600).",
                crate::report::plural(done.credentials, "new account"),
                args.credentials_file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        } else {
            String::new()
        }
    );
}
