//! `roster apply ROSTER…` (plan, show, confirm, apply) and
//! `roster apply PLAN.json` (apply a saved plan unless it is stale).

use super::Out;
use super::plan::{StoreArg, exit_code, make, store_error};
use crate::apply::{self, ApplyError, Onboarding, Options};
use crate::plan::{Plan, render};
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
    targets.len() == 1
        && targets[0].is_file()
        && (targets[0].extension().is_some_and(|e| e == "json")
            || std::fs::read(&targets[0]).is_ok_and(|b| b.trim_ascii_start().starts_with(b"{")))
}

fn read_plan(path: &Path, out: &mut Out) -> Result<Plan, u8> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let _ = writeln!(
            out.stderr,
            "error: {}: cannot read the plan: {e}",
            path.display()
        );
        1
    })?;
    parse_plan(&text).map_err(|e| {
        let _ = writeln!(
            out.stderr,
            "error: {}:{}:{}: not a roster plan: {e}; make one with `roster plan -o FILE`",
            path.display(),
            e.line(),
            e.column()
        );
        1
    })
}

/// A saved plan's text as `apply` takes it (the fuzz harness reads plans
/// through here too).
pub fn parse_plan(text: &str) -> Result<Plan, serde_json::Error> {
    let mut plan: Plan = serde_json::from_str(text)?;
    // The file may have been edited: count what it holds, not what it says.
    plan.summary = crate::plan::compute::summarize(&plan.actions, &plan.resolutions);
    Ok(plan)
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
    let plan = if from_file {
        match read_plan(&args.targets[0], out) {
            Ok(p) => p,
            Err(c) => return c,
        }
    } else {
        match make(&args.targets, &args.store.url, out, false) {
            Ok((p, _)) => p,
            Err(c) => return c,
        }
    };
    // The human rendering shows no birth dates or phones.
    let _ = out
        .stdout
        .write_all(render::human(&plan, out.color).as_bytes());
    if plan.summary.changes() == 0 && plan.summary.unresolved == 0 && plan.violations.is_empty() {
        return 0;
    }
    let actor = actor(args.actor.clone());
    let now = now();
    let opts = Options {
        allow_mass_removal: args.allow_mass_removal,
        onboarding: args.onboarding,
        credentials_file: args.credentials_file.as_deref(),
        actor: &actor,
        now: &now,
        lock_timeout: std::time::Duration::from_secs_f64(args.lock_timeout),
        progress: None,
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
    // Progress on a terminal only: CI logs stay quiet.
    let show = |done: usize, total: usize| {
        let mut e = std::io::stderr();
        let _ = write!(e, "\rapplying: {done}/{total} actions");
        if done == total {
            let _ = writeln!(e);
        }
    };
    let opts = Options {
        progress: (std::io::stderr().is_terminal() && plan.actions.len() >= PROGRESS_FROM)
            .then_some(&show as &dyn Fn(usize, usize)),
        ..opts
    };
    match apply::apply(&plan, &args.store.url, &opts) {
        Ok(done) => {
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
            exit_code(&plan, false)
        }
        Err(ApplyError::Store(e)) => {
            let code = store_error(out, &e);
            if matches!(e, crate::store::StoreError::Stale) && !from_file {
                let _ = writeln!(
                    out.stderr,
                    "note: another apply changed the store while this one was planning; nothing was written, run `roster apply` again"
                );
            }
            code
        }
        Err(e) => {
            let _ = writeln!(out.stderr, "error: {e}");
            1
        }
    }
}
