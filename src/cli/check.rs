//! `roster check`.

use super::{Done, Error, Out, Outcome, print};
use crate::check;
use crate::report::{self, Style};
use clap::ValueEnum;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Roster files or directories (default: roster.yaml or roster/).
    pub rosters: Vec<PathBuf>,
    /// Output format.
    #[arg(
        long,
        value_enum,
        default_value = "human",
        env = "ROSTER_FORMAT",
        hide_env_values = true
    )]
    pub format: Format,
    /// Show birth dates and phone numbers in snippets.
    #[arg(long, env = "ROSTER_SHOW_PII", hide_env_values = true)]
    pub show_pii: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Github,
}

pub fn run(args: Args, out: &mut Out) -> Outcome {
    let (mut checked, _) = check::check_paths_while(&args.rosters, &out.cwd, |_| ());
    // Seats are counted offline here; a plan counts them with the store.
    if checked.complete
        && let Some(f) = check::policy::seats(&checked.roster, &check::Index::new(&checked.roster))
    {
        checked.findings.push(f);
        crate::finding::sort(&mut checked.findings);
    }
    let style = Style {
        color: out.color,
        show_pii: args.show_pii,
    };
    let findings = &checked.findings;
    let text = match args.format {
        Format::Json => report::json(findings),
        Format::Github => report::github(findings),
        Format::Human => {
            let mut s = report::human(findings, &checked.roster.files, style);
            let (errors, warnings) = report::counts(findings);
            let r = &checked.roster;
            if errors == 0 {
                s.push_str(&format!(
                    "ok: {}, {}, {}{}\n",
                    report::plural(r.files.len(), "file"),
                    report::plural(r.groups.len(), "group"),
                    report::plural(r.partners.len(), "partner"),
                    if warnings > 0 {
                        format!(" ({})", report::plural(warnings, "warning"))
                    } else {
                        String::new()
                    },
                ));
            } else {
                s.push_str(&format!(
                    "failed: {}, {}\n",
                    report::plural(errors, "error"),
                    report::plural(warnings, "warning")
                ));
            }
            s
        }
    };
    print(out, &text)?;
    if checked.has_errors() {
        // The findings above say what.
        return Err(Error::Reported);
    }
    Ok(Done::Ok)
}
