//! Planning a roster against a store (SPEC §5): read and check the roster
//! while the store is read, then compute the plan.

use crate::check::{self, Checked};
use crate::plan::compute::{self, Desired, LiveState};
use crate::plan::{Note, Plan};
use crate::roster::Roster;
use crate::store::{Store, StoreError};
use std::path::{Path, PathBuf};

/// A roster planned against a store.
pub struct Planned {
    pub plan: Plan,
    /// The roster as read and checked, with its findings.
    pub checked: Checked,
    /// What was read from the store.
    pub live: LiveState,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The roster did not parse, or has errors other than policy
    /// violations: there is nothing to plan. The findings say why.
    #[error("the roster has errors")]
    Roster(Box<Checked>),
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// Read and check the roster files `rosters` (relative to `cwd`), then plan
/// them against `store`. A roster that cannot be planned comes back with
/// its findings; policy violations and warnings ride on the plan.
pub fn plan(store: &dyn Store, rosters: &[PathBuf], cwd: &Path) -> Result<Planned, PlanError> {
    // The store is read while the cross-file checks run; what it returns is
    // dropped if the roster turns out not to be plannable.
    let read_store = |roster: &Roster| {
        store
            .reader()
            .and_then(|mut r| compute::gather(r.as_mut(), &desired(roster)))
    };
    let (checked, live) = check::check_paths_while(rosters, cwd, read_store);
    let fatal = checked
        .findings
        .iter()
        .any(|f| f.is_error() && !f.code.is_violation());
    let live = match live {
        _ if fatal || !checked.complete => return Err(PlanError::Roster(Box::new(checked))),
        Some(live) => live?,
        None => return Err(PlanError::Roster(Box::new(checked))),
    };
    let (violations, warnings) = notes(&checked);
    let plan = compute::compute(&desired(&checked.roster), &live, violations, warnings);
    Ok(Planned {
        plan,
        checked,
        live,
    })
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
pub fn replan(store: &dyn Store, checked: &Checked) -> Result<Plan, StoreError> {
    let d = desired(&checked.roster);
    let mut reader = store.reader()?;
    let live = compute::gather(reader.as_mut(), &d)?;
    let (violations, warnings) = notes(checked);
    Ok(compute::compute(&d, &live, violations, warnings))
}
