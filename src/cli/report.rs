//! `roster report --html -o FILE`: the audit report as one self-contained
//! HTML page (inline CSS, no scripts, no outside assets), written 0600.

use super::plan::{StoreArg, write_private};
use super::{Done, Error, Out, Outcome};
use crate::app::report::{self, Options};
use crate::store;
use std::path::PathBuf;

/// The page's template; `.html` in its name turns on HTML auto-escaping.
const TEMPLATE: &str = include_str!("../../templates/report.html.j2");
const TEMPLATE_NAME: &str = "report.html.j2";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArg,
    /// Write the report as one HTML page (required: HTML is the one format).
    #[arg(long, required = true)]
    pub html: bool,
    /// The file to write (mode 0600: it names people).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
    /// A plan saved with `roster plan -o FILE` for this store: its changes
    /// are highlighted.
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// How many of the latest audit rows to list (the whole chain is verified).
    #[arg(long, value_name = "N", default_value = "50")]
    pub last: usize,
    /// Show birth dates and phones instead of ***.
    #[arg(long, env = "ROSTER_SHOW_PII", hide_env_values = true)]
    pub show_pii: bool,
    #[command(flatten)]
    pub invite_ttl: super::invitations::InviteTtl,
}

pub fn run(args: Args, out: &mut Out) -> Outcome {
    let store = args
        .store
        .open(out, store::Options::default().lock_timeout)?;
    let plan = match &args.plan {
        Some(path) => {
            let (plan, exact) = super::apply::read_plan(path)?;
            crate::app::apply::check_saved(&plan, exact, store.as_ref())
                .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
            Some(plan)
        }
        None => None,
    };
    let now = store::now();
    let built = report::build(
        store.as_ref(),
        &Options {
            last: args.last,
            show_pii: args.show_pii,
            plan: plan.as_ref(),
            now: &now,
            invite_ttl: args.invite_ttl.get()?,
        },
    )?;
    let html = render(&built).map_err(|e| Error::msg(format!("cannot render the report: {e}")))?;
    write_private(&args.out, html.as_bytes()).map_err(|e| {
        Error::msg(format!(
            "{}: cannot write the report: {e}; give -o a file in a directory you can write",
            args.out.display()
        ))
    })?;
    let _ = writeln!(
        out.stderr,
        "{}",
        crate::report::printable(&format!(
            "Wrote the audit report of {} (revision {}, {}) to {}.",
            built.store,
            built.revision,
            crate::report::plural(built.counts.accounts, "account"),
            args.out.display()
        ))
    );
    if built.revision == 0 && built.counts.accounts == 0 && built.counts.groups == 0 {
        let _ = writeln!(
            out.stderr,
            "note: the store {} is empty (revision 0, nothing ever applied); check --store",
            crate::report::printable(&built.store)
        );
    }
    if built.audit.kept && !built.audit.intact {
        let _ = writeln!(
            out.stderr,
            "warning: the audit log is {}",
            crate::report::printable(&built.audit.verdict)
        );
    }
    Ok(Done::Ok)
}

/// The report as HTML: every value escaped by the template engine.
pub fn render(r: &report::AuditReport) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.add_template(TEMPLATE_NAME, TEMPLATE)?;
    env.get_template(TEMPLATE_NAME)?
        .render(minijinja::context! {
            r => r,
            version => env!("CARGO_PKG_VERSION"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::report::{Options, build};
    use crate::domain::GroupType;
    use crate::store::Store;
    use crate::store::memory::MemoryStore;

    #[test]
    fn names_are_escaped_and_the_page_has_no_script() {
        let s = MemoryStore::new();
        let mut w = s.begin("<b>x</b>", "2026-01-01T00:00:00Z").unwrap();
        w.create_group(
            "<script>alert(1)</script>\"'&",
            GroupType::Organization,
            None,
        )
        .unwrap();
        w.commit().unwrap();
        let r = build(
            &s,
            &Options {
                last: 50,
                show_pii: false,
                plan: None,
                now: "now",
                invite_ttl: std::time::Duration::from_secs(14 * 86_400),
            },
        )
        .unwrap();
        let html = render(&r).unwrap();
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;&#x27;&amp;"),
            "{html}"
        );
        assert!(!html.contains("<b>x</b>"));
    }
}
