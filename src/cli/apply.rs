//! `roster apply ROSTER…` (plan, show, confirm, apply) and
//! `roster apply PLAN.json` (apply a saved plan unless it is stale).

use super::Out;
use super::plan::{StoreArg, exit_code, make, store_error};
use crate::apply::{self, ApplyError, Onboarding, Options};
use crate::plan::{Plan, render, seal};
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
fn read_plan(path: &Path, out: &mut Out) -> Result<(Plan, bool), u8> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let _ = writeln!(
            out.stderr,
            "error: {}: cannot read the plan: {e}; a saved plan is a file made by \
             `roster plan -o FILE`, a roster a .yaml/.yml file or a directory not named *.json",
            path.display()
        );
        1
    })?;
    let plan = parse_plan(&text).map_err(|e| {
        let _ = writeln!(
            out.stderr,
            "error: {}:{}:{}: not a roster plan: {e}; make one with `roster plan -o FILE`",
            path.display(),
            e.line(),
            e.column()
        );
        1
    })?;
    let exact = seal::is_exactly(&plan, &text);
    Ok((plan, exact))
}

/// A saved plan's text as `apply` takes it (the fuzz harness reads plans
/// through here too); its seal is checked against the store afterwards.
pub fn parse_plan(text: &str) -> Result<Plan, serde_json::Error> {
    serde_json::from_str(text)
}

/// A saved plan is applied only to the store it was made for, only in a
/// format this roster reads, and only as `roster plan -o` sealed it.
fn check_saved(plan: &Plan, exact: bool, url: &str, out: &mut Out) -> Result<(), u8> {
    let fail = |out: &mut Out, e: &dyn std::fmt::Display| {
        let _ = writeln!(out.stderr, "error: {e}");
        1
    };
    if plan.format_version != crate::plan::FORMAT_VERSION {
        return Err(fail(out, &ApplyError::FormatVersion(plan.format_version)));
    }
    let shown = crate::store::display_url(url);
    if plan.store.url != shown {
        return Err(fail(
            out,
            &ApplyError::WrongStore {
                plan: plan.store.url.clone(),
                store: shown,
            },
        ));
    }
    let key = crate::store::plan_key(url, false).map_err(|e| fail(out, &e))?;
    let verdict = match &key {
        Some(k) => {
            seal::verify(plan, k).and_then(|()| exact.then_some(()).ok_or(seal::Altered::Additions))
        }
        None => Err(seal::Altered::Seal),
    };
    if let Err(why) = verdict {
        let help = match why {
            seal::Altered::Unsealed => {
                "it carries no seal: only plans saved with `roster plan -o FILE` can be applied"
            }
            seal::Altered::Malformed => "its seal is not one `roster plan -o` writes",
            seal::Altered::Digest => "its content no longer matches its digest",
            seal::Altered::Additions => "it holds fields that `roster plan -o` never writes",
            seal::Altered::Seal => {
                "its seal does not match its content under this store's key (edited, or sealed for another store)"
            }
        };
        let _ = writeln!(
            out.stderr,
            "error: plan was altered after it was made\nhelp: {help}; nothing was applied, run `roster plan -o FILE` again"
        );
        return Err(1);
    }
    Ok(())
}

/// Ask on a terminal; refuse to go on without one unless `--yes`.
fn confirm(out: &mut Out) -> Result<(), u8> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let _ = writeln!(
            out.stderr,
            "error: not on a terminal, so nobody can confirm this apply; pass --yes to apply without asking"
        );
        return Err(1);
    }
    let _ = write!(out.stderr, "Apply this plan? Only 'yes' is accepted: ");
    let _ = out.stderr.flush();
    let mut answer = String::new();
    let _ = stdin.lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        let _ = writeln!(out.stderr, "Apply cancelled; nothing changed.");
        Err(1)
    }
}

pub fn run(args: Args, out: &mut Out) -> u8 {
    let code = run_inner(&args, out);
    args.store.report(out);
    code
}

fn run_inner(args: &Args, out: &mut Out) -> u8 {
    let from_file = is_plan_file(&args.targets);
    let (mut plan, checked) = if from_file {
        let (mut plan, exact) = match read_plan(&args.targets[0], out) {
            Ok(p) => p,
            Err(c) => return c,
        };
        if let Err(c) = check_saved(&plan, exact, &args.store.url, out) {
            return c;
        }
        // Count what the plan holds, not what it says (they agree in a
        // sealed plan).
        plan.summary = crate::plan::compute::summarize(&plan.actions, &plan.resolutions);
        (plan, None)
    } else {
        match make(&args.targets, &args.store.url, out, false) {
            Ok((p, c)) => (p, Some(c)),
            Err(c) => return c,
        }
    };
    let url = args.store.url.as_str();
    let replan = |checked: &crate::check::Checked| super::plan::replan(checked, url);
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
            return 0;
        }
        let opts = Options {
            allow_mass_removal: args.allow_mass_removal,
            onboarding: args.onboarding,
            credentials_file: args.credentials_file.as_deref(),
            actor: &actor,
            now: &now,
            lock_timeout: std::time::Duration::from_secs_f64(args.lock_timeout),
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
        if let Err(e) = apply::guard(&plan, &opts) {
            let _ = writeln!(out.stderr, "error: {e}");
            return 1;
        }
        if !args.yes
            && let Err(c) = confirm(out)
        {
            return c;
        }
        match apply::apply(&plan, url, &opts) {
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
                applied_line(args, out, &done);
                return exit_code(&plan, false);
            }
            Err(ApplyError::Changed(new)) => {
                let _ = writeln!(
                    out.stderr,
                    "note: the store changed since this plan was shown, and the plan with it; nothing was written. The plan as it is now:"
                );
                plan = *new;
            }
            Err(ApplyError::Store(e)) => {
                return store_error(out, &e);
            }
            Err(e) => {
                let _ = writeln!(out.stderr, "error: {e}");
                return 1;
            }
        }
    }
}

fn applied_line(args: &Args, out: &mut Out, done: &apply::Applied) {
    // A SCIM provider has no store-wide revision to report.
    let revision = if crate::store::requests(&args.store.url).is_some() {
        String::new()
    } else {
        format!("; it is now at revision {}", done.revision)
    };
    let _ = writeln!(
        out.stdout,
        "Applied {} to {}{revision}.{}",
        crate::report::plural(done.actions, "action"),
        crate::store::display_url(&args.store.url),
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
