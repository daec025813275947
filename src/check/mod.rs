//! Checks over a merged roster: always-on rules and the policy. Pure:
//! a roster in, findings out.

pub use crate::finding::{self, code};
pub mod access;
pub mod policy;
pub mod rules;

use crate::roster::Roster;
use crate::roster::load::{self, Input};
use finding::Finding;

/// The result of reading and checking a roster.
#[derive(Debug)]
pub struct Checked {
    pub roster: Roster,
    pub findings: Vec<Finding>,
    /// True when every file parsed, so the cross-file checks ran.
    pub complete: bool,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(Finding::is_error)
    }
}

/// Partners by normalized email, computed once for all checks.
pub struct Index<'a> {
    /// Normalized email of each partner, in roster order.
    pub emails: Vec<std::borrow::Cow<'a, str>>,
    /// First partner with each normalized email.
    pub by_email: std::collections::HashMap<std::borrow::Cow<'a, str>, usize>,
}

impl<'a> Index<'a> {
    pub fn new(roster: &'a Roster) -> Self {
        let emails: Vec<_> = roster
            .partners
            .iter()
            .map(|p| crate::roster::normalize::email_key(&p.item.email))
            .collect();
        let mut by_email = std::collections::HashMap::with_capacity(emails.len());
        for (i, e) in emails.iter().enumerate() {
            by_email.entry(e.clone()).or_insert(i);
        }
        Index { emails, by_email }
    }

    /// The partner that first uses partner `i`'s email (`i` itself unless a duplicate).
    pub fn first(&self, i: usize) -> usize {
        self.by_email
            .get(self.emails[i].as_ref())
            .copied()
            .unwrap_or(i)
    }
}

/// Find the roster files named on the command line (or the default ones),
/// read and check them; unreadable paths become findings. `also` runs as
/// in [`check_while`].
pub fn check_paths_while<T: Send>(
    rosters: &[std::path::PathBuf],
    cwd: &std::path::Path,
    also: impl FnOnce(&Roster) -> T + Send,
) -> (Checked, Option<T>) {
    match load::discover(rosters, cwd) {
        Ok(files) => {
            let (inputs, mut read_errors) = load::read(files);
            let (mut checked, extra) = check_while(inputs, also);
            read_errors.append(&mut checked.findings);
            checked.findings = read_errors;
            (checked, extra)
        }
        Err(f) => (
            Checked {
                roster: Default::default(),
                findings: vec![f],
                complete: false,
            },
            None,
        ),
    }
}

/// Parse, merge and check roster files.
pub fn check(inputs: Vec<Input>) -> Checked {
    check_while(inputs, |_| ()).0
}

/// [`check`], running `also` on the merged roster beside the cross-file
/// checks (planning reads the store meanwhile). `also` runs only when every
/// file parsed; its result is for the caller to discard if the checks fail.
pub fn check_while<T: Send>(
    inputs: Vec<Input>,
    also: impl FnOnce(&Roster) -> T + Send,
) -> (Checked, Option<T>) {
    let mut findings = Vec::new();
    let mut parsed = Vec::with_capacity(inputs.len());
    for (order, input) in inputs.into_iter().enumerate() {
        let (source, file, mut f) = load::parse_file(input, order);
        findings.append(&mut f);
        parsed.push((source, file));
    }
    let complete = parsed.iter().all(|(_, f)| f.is_some());
    let roster = load::merge(parsed, &mut findings);
    let mut extra = None;
    // References across files are only meaningful when every file was read;
    // otherwise a broken file would cascade into "unknown partner" noise.
    if complete {
        let index = Index::new(&roster);
        // All of them only read the roster: run them side by side.
        let (mut from_rules, mut from_policy, other) = std::thread::scope(|s| {
            let rules = s.spawn(|| {
                let mut sink = Vec::new();
                rules::check(&roster, &index, &mut sink);
                access::check(&roster, &index, &mut sink);
                sink
            });
            let other = s.spawn(|| also(&roster));
            let mut sink = Vec::new();
            policy::check(&roster, &index, &mut sink);
            let rules = rules
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            let other = other
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (rules, sink, other)
        });
        extra = Some(other);
        findings.append(&mut from_rules);
        findings.append(&mut from_policy);
    }
    finding::sort(&mut findings);
    (
        Checked {
            roster,
            findings,
            complete,
        },
        extra,
    )
}
