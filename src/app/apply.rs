//! Applying a plan through a store session (SPEC §8), behind the guards:
//! unresolved partners, policy violations, mass removals, stale plans.

use crate::domain::{Entitlement, SignIn};
use crate::plan::{Action, PersonalData, Plan, seal};
use crate::secrets;
use crate::store::{self, NewCredential, Store, StoreError};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Onboarding {
    /// No password; a one-time activation token (kept as a digest) and a queued invitation.
    Invite,
    /// A generated password, kept as an Argon2id hash and written only to --credentials-file.
    Password,
}

pub struct Options<'a> {
    pub allow_mass_removal: bool,
    pub onboarding: Onboarding,
    pub credentials_file: Option<&'a Path>,
    pub actor: &'a str,
    /// RFC 3339 time recorded on every row written.
    pub now: &'a str,
    /// Told (done, total) as actions are written, for a progress line.
    pub progress: Option<&'a dyn Fn(usize, usize)>,
    /// For an apply of roster files: when another write landed since the
    /// plan was made, make it again under the store's lock (where nothing
    /// else can land) and go on. `None` (a saved plan): a stale plan is
    /// refused.
    pub replan: Option<&'a dyn Fn() -> Result<Plan, StoreError>>,
    /// Whether a plan made again may differ from the one given and still be
    /// applied (`--yes`). Otherwise it is handed back to be shown and
    /// confirmed ([`ApplyError::Changed`]).
    pub accept_changes: bool,
}

/// How many actions between two progress reports.
const PROGRESS_EVERY: usize = 5_000;

#[derive(Debug)]
pub struct Applied {
    pub revision: i64,
    pub actions: usize,
    pub credentials: usize,
    /// The plan applied, when it was made again under the lock and differs
    /// from the one given.
    pub replanned: Option<Plan>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "the plan has {0} unresolved partner(s); settle them (add `account:` to confirm a match) and plan again"
    )]
    Unresolved(u64),
    #[error("the plan has {0} policy violation(s); fix the roster and plan again")]
    Violations(usize),
    #[error(
        "the plan removes {removals} memberships, more than max_removals allows ({limit}); check the roster, or pass --allow-mass-removal"
    )]
    MassRemoval { removals: u64, limit: u64 },
    #[error(
        "the plan removes {removed}, more than max_removals allows ({limit}); check the roster, or pass --allow-mass-removal"
    )]
    MassRemovalOf { removed: String, limit: u64 },
    #[error(
        "this plan was printed without personal data, so it cannot create or update accounts; save plans with `roster plan -o FILE`"
    )]
    PersonalDataOmitted,
    #[error("this plan was made for store {plan}, not {store}; plan again against {store}")]
    WrongStore { plan: String, store: String },
    #[error("unsupported plan format_version {0}; this roster reads version 1")]
    FormatVersion(u32),
    /// A saved plan that is not exactly what `roster plan -o` sealed.
    #[error(
        "plan was altered after it was made\nhelp: {}; nothing was applied, run `roster plan -o FILE` again",
        altered_help(.0)
    )]
    Altered(seal::Altered),
    #[error(
        "--onboarding password needs --credentials-file FILE: the only place passwords are written"
    )]
    NoCredentialsFile,
    #[error("{}: already exists; roster never overwrites a credentials file", .0.display())]
    CredentialsExist(PathBuf),
    #[error("{}: {source}", path.display())]
    Credentials {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Secret(String),
    /// The store changed since the plan was shown, and the plan made again
    /// differs: it needs confirming.
    #[error("the store changed since this plan was made, and the plan with it; review it again")]
    Changed(Box<Plan>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to tell about a saved plan that fails its seal.
fn altered_help(why: &seal::Altered) -> &'static str {
    match why {
        seal::Altered::Unsealed => {
            "it carries no seal: only plans saved with `roster plan -o FILE` can be applied"
        }
        seal::Altered::Malformed => "its seal is not one `roster plan -o` writes",
        seal::Altered::Digest => "its content no longer matches its digest",
        seal::Altered::Additions => "it holds fields that `roster plan -o` never writes",
        seal::Altered::Seal => {
            "its seal does not match its content under this store's key (edited, or sealed for another store)"
        }
    }
}

/// A saved plan is applied only to the store it was made for, only in a
/// format this roster reads, and only as `roster plan -o` sealed it;
/// `exact` is whether the file holds nothing but that plan (see
/// [`seal::is_exactly`]).
pub fn check_saved(plan: &Plan, exact: bool, store: &dyn Store) -> Result<(), ApplyError> {
    if plan.format_version != crate::plan::FORMAT_VERSION {
        return Err(ApplyError::FormatVersion(plan.format_version));
    }
    let shown = store::display_url(store.url());
    if plan.store.url != shown {
        return Err(ApplyError::WrongStore {
            plan: plan.store.url.clone(),
            store: shown,
        });
    }
    let verdict = match &store.plan_key(false)? {
        Some(k) => {
            seal::verify(plan, k).and_then(|()| exact.then_some(()).ok_or(seal::Altered::Additions))
        }
        None => Err(seal::Altered::Seal),
    };
    verdict.map_err(ApplyError::Altered)
}

/// The checks that need no store.
pub fn guard(plan: &Plan, opts: &Options) -> Result<(), ApplyError> {
    if plan.format_version != crate::plan::FORMAT_VERSION {
        return Err(ApplyError::FormatVersion(plan.format_version));
    }
    if plan.summary.unresolved > 0 || plan.unresolved().next().is_some() {
        return Err(ApplyError::Unresolved(plan.unresolved().count() as u64));
    }
    if !plan.violations.is_empty() {
        return Err(ApplyError::Violations(plan.violations.len()));
    }
    let removals = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::RemoveMembership { .. }))
        .count() as u64;
    if removals > plan.removal_limit && !opts.allow_mass_removal {
        return Err(ApplyError::MassRemoval {
            removals,
            limit: plan.removal_limit,
        });
    }
    let writes_profiles = plan.actions.iter().any(|a| {
        matches!(
            a,
            Action::CreateAccount { .. } | Action::UpdateProfile { .. }
        )
    });
    if writes_profiles && plan.personal_data == PersonalData::Omitted {
        return Err(ApplyError::PersonalDataOmitted);
    }
    if creates(plan, opts.onboarding, Onboarding::Password) > 0 && opts.credentials_file.is_none() {
        return Err(ApplyError::NoCredentialsFile);
    }
    let removed = plan.removal_caps.iter().find(|c| c.exceeded());
    if let (Some(c), false) = (removed, opts.allow_mass_removal) {
        return Err(ApplyError::MassRemovalOf {
            removed: c.removed_text(),
            limit: c.limit,
        });
    }
    Ok(())
}

/// Credentials for each new account, made before the store is locked
/// (Argon2id takes tens of milliseconds a hash: spread over the cores).
fn credentials(
    n: usize,
    onboarding: Onboarding,
) -> Result<Vec<(NewCredential, Option<String>)>, ApplyError> {
    match onboarding {
        Onboarding::Invite => Ok((0..n)
            .map(|_| {
                let token = secrets::token();
                let token_digest = secrets::sha256(token.as_bytes());
                (
                    NewCredential::Invite {
                        token,
                        token_digest,
                    },
                    None,
                )
            })
            .collect()),
        Onboarding::Password => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let chunk = n.div_ceil(threads).max(1);
            let mut out = Vec::with_capacity(n);
            let parts: Vec<Result<Vec<_>, String>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..n)
                    .collect::<Vec<_>>()
                    .chunks(chunk)
                    .map(|c| {
                        let len = c.len();
                        s.spawn(move || {
                            (0..len)
                                .map(|_| {
                                    let pw = secrets::password();
                                    secrets::hash_password(&pw).map(|hash| {
                                        (
                                            NewCredential::Password {
                                                hash,
                                                password: pw.clone(),
                                            },
                                            Some(pw),
                                        )
                                    })
                                })
                                .collect()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            });
            for p in parts {
                out.extend(p.map_err(ApplyError::Secret)?);
            }
            Ok(out)
        }
    }
}

/// A credentials file we created and remove again unless the apply lands.
struct CredentialsFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    keep: bool,
}

impl CredentialsFile {
    fn create(path: &Path) -> Result<Self, ApplyError> {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let file = o.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                ApplyError::CredentialsExist(path.to_path_buf())
            } else {
                ApplyError::Credentials {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
        Ok(CredentialsFile {
            path: path.to_path_buf(),
            file: Some(file),
            keep: false,
        })
    }

    fn write(&mut self, rows: &[(String, String, String)]) -> Result<(), ApplyError> {
        let path = self.path.clone();
        let err = |source| ApplyError::Credentials {
            path: path.clone(),
            source,
        };
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        // Account names are any text: quote what needs it.
        let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
        let io = |e: csv::Error| match e.into_kind() {
            csv::ErrorKind::Io(e) => e,
            other => std::io::Error::other(format!("{other:?}")),
        };
        w.write_record(["account", "email", "password"])
            .map_err(io)
            .map_err(err)?;
        for (account, email, password) in rows {
            w.write_record([account, email, password])
                .map_err(io)
                .map_err(err)?;
        }
        w.flush().map_err(err)?;
        drop(w);
        if let Some(f) = self.file.as_ref() {
            f.sync_all().map_err(err)?;
        }
        Ok(())
    }
}

impl Drop for CredentialsFile {
    fn drop(&mut self) {
        if !self.keep {
            self.file = None;
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Apply a plan to `store`: all of it in one transaction, or nothing.
pub fn apply(plan: &Plan, store: &dyn Store, opts: &Options) -> Result<Applied, ApplyError> {
    guard(plan, opts)?;
    // Plans record the store as roster shows it: without a password.
    let shown = store::display_url(store.url());
    if plan.store.url != shown {
        return Err(ApplyError::WrongStore {
            plan: plan.store.url.clone(),
            store: shown,
        });
    }
    let passwords = creates(plan, opts.onboarding, Onboarding::Password);
    let mut creds = credentials(passwords, Onboarding::Password)?;
    let mut file = match opts.credentials_file {
        Some(p) if !creds.is_empty() => Some(CredentialsFile::create(p)?),
        _ => None,
    };
    let mut written = Vec::new();
    let mut session = store.begin(opts.actor, opts.now)?;
    let revision = session.revision()?;
    let mut replanned = None;
    if revision != plan.store.revision {
        let Some(replan) = opts.replan else {
            return Err(StoreError::Stale.into());
        };
        // Under the lock: what this reads is what the session writes over.
        let fresh = replan()?;
        if fresh.store.revision != revision {
            return Err(StoreError::Stale.into());
        }
        if !opts.accept_changes && !same_changes(plan, &fresh) {
            return Err(ApplyError::Changed(Box::new(fresh)));
        }
        guard(&fresh, opts)?;
        replanned = Some(fresh);
    }
    let plan = replanned.as_ref().unwrap_or(plan);
    let needed = creates(plan, opts.onboarding, Onboarding::Password);
    if creds.len() < needed {
        creds.extend(credentials(needed - creds.len(), Onboarding::Password)?);
    }
    if let (None, Some(p), true) = (&file, opts.credentials_file, needed > 0) {
        file = Some(CredentialsFile::create(p)?);
    }
    let invites = creates(plan, opts.onboarding, Onboarding::Invite);
    let mut invites = credentials(invites, Onboarding::Invite)?.into_iter();
    let mut creds = creds.into_iter();
    let total = plan.actions.len();
    for (done, a) in plan.actions.iter().enumerate() {
        if let Some(report) = opts.progress
            && done % PROGRESS_EVERY == 0
        {
            report(done, total);
        }
        match a {
            Action::CreateGroup { group, kind, lwia } => {
                session.create_group(group, *kind, *lwia)?
            }
            Action::CreateAccount {
                account,
                partner,
                profile,
                roles,
                sign_in,
            } => {
                let next = match onboarding(*sign_in, opts.onboarding) {
                    None => Some((NewCredential::Sso, None)),
                    Some(Onboarding::Invite) => invites.next(),
                    Some(Onboarding::Password) => creds.next(),
                };
                let Some((credential, password)) = next else {
                    return Err(ApplyError::Secret("credentials ran out".into()));
                };
                session.create_account_with_roles(account, profile, roles, credential)?;
                if let Some(pw) = password {
                    written.push((account.clone(), partner.clone(), pw));
                }
            }
            Action::RenameAccount {
                account, new_name, ..
            } => session.rename_account(account, new_name)?,
            Action::ReactivateAccount { account, .. } => session.reactivate_account(account)?,
            Action::GrantRole { account, role } => session.grant_role(account, role)?,
            Action::RevokeRole { account, role } => session.revoke_role(account, role)?,
            Action::GrantEntitlement {
                account,
                kind,
                value,
            } => session.grant_entitlement(account, &Entitlement::new(kind, value))?,
            Action::RevokeEntitlement {
                account,
                kind,
                value,
            } => session.revoke_entitlement(account, &Entitlement::new(kind, value))?,
            Action::SetCaseManager {
                account,
                case_manager,
            } => session.set_case_manager(account, case_manager.as_deref())?,
            Action::UpdateProfile {
                account,
                fields,
                profile,
                ..
            } => session.update_profile(account, profile, fields)?,
            Action::AddMembership {
                account,
                group,
                user_manager,
            } => session.add_membership(account, group, *user_manager)?,
            Action::GrantUserManager { account, group } => {
                session.set_user_manager(account, group, true)?
            }
            Action::RevokeUserManager { account, group } => {
                session.set_user_manager(account, group, false)?
            }
            Action::RemoveMembership { account, group } => {
                session.remove_membership(account, group)?
            }
            Action::DeactivateAccount { account, .. } => session.deactivate_account(account)?,
        }
    }
    // Passwords reach the disk before the accounts exist, so none is lost.
    if let Some(f) = file.as_mut() {
        f.write(&written)?;
    }
    if let Some(report) = opts.progress {
        report(total, total);
    }
    let revision = match session.commit() {
        Ok(r) => r,
        Err(e @ StoreError::Partial { .. }) => {
            // Some accounts now exist with these passwords: the file stays.
            if let Some(f) = file.as_mut() {
                f.keep = true;
            }
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(f) = file.as_mut() {
        f.keep = true;
    }
    let actions = plan.actions.len();
    Ok(Applied {
        revision,
        actions,
        credentials: written.len(),
        replanned,
    })
}

/// How a new account is onboarded: its own `sign_in`, else `default`;
/// `None` for single sign-on (no credential at all).
fn onboarding(sign_in: Option<SignIn>, default: Onboarding) -> Option<Onboarding> {
    match sign_in {
        None => Some(default),
        Some(SignIn::Invite) => Some(Onboarding::Invite),
        Some(SignIn::Password) => Some(Onboarding::Password),
        Some(SignIn::Sso) => None,
    }
}

/// The accounts the plan creates that are onboarded by `mode`.
fn creates(plan: &Plan, default: Onboarding, mode: Onboarding) -> usize {
    plan.actions
        .iter()
        .filter(|a| match a {
            Action::CreateAccount { sign_in, .. } => onboarding(*sign_in, default) == Some(mode),
            _ => false,
        })
        .count()
}

/// Whether two plans of the same roster do the same: same resolutions and
/// actions, whatever the store's revision.
pub fn same_changes(a: &Plan, b: &Plan) -> bool {
    a.actions == b.actions && a.resolutions == b.resolutions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GroupType;
    use crate::plan::{Note, Outcome, Resolution};

    fn plan_at(url: &str, revision: i64, actions: Vec<Action>) -> Plan {
        Plan::for_tests(url, revision, actions)
    }

    fn group(name: &str) -> Action {
        Action::CreateGroup {
            group: name.into(),
            kind: GroupType::Organization,
            lwia: None,
        }
    }

    /// A plan made at revision 0 of a store now at revision 1: planned
    /// again under the lock, and the guards hold for the new plan.
    #[test]
    fn a_plan_made_again_under_the_lock_passes_the_guards_or_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("s.db").display());
        let now = "2026-01-01T00:00:00Z";
        let store = store::open(&url, store::Options::default()).unwrap();
        let store = store.as_ref();
        let mut s = store.begin("t", now).unwrap();
        s.create_group("Other", GroupType::Organization, None)
            .unwrap();
        assert_eq!(s.commit().unwrap(), 1);
        let old = plan_at(&url, 0, vec![group("Mine")]);
        let opts = |replan| Options {
            allow_mass_removal: false,
            onboarding: Onboarding::Invite,
            credentials_file: None,
            actor: "t",
            now,
            progress: None,
            replan,
            accept_changes: true,
        };
        // A saved plan is not made again.
        assert!(matches!(
            apply(&old, store, &opts(None)),
            Err(ApplyError::Store(StoreError::Stale))
        ));
        let unresolved = || {
            let mut p = plan_at(&url, 1, vec![group("Mine")]);
            p.resolutions.push(Resolution {
                partner: "a@example.org".into(),
                outcome: Outcome::NeedsConfirmation,
                account: None,
                via: None,
                candidates: vec!["A".into()],
                differs: Vec::new(),
                reason: None,
            });
            p.summary.unresolved = 1;
            Ok(p)
        };
        assert!(matches!(
            apply(&old, store, &opts(Some(&unresolved))),
            Err(ApplyError::Unresolved(1))
        ));
        let violating = || {
            let mut p = plan_at(&url, 1, vec![group("Mine")]);
            p.violations
                .push(Note::new(crate::finding::code::Code::RestrictedGroup, "y"));
            Ok(p)
        };
        assert!(matches!(
            apply(&old, store, &opts(Some(&violating))),
            Err(ApplyError::Violations(1))
        ));
        let removing = || {
            Ok(plan_at(
                &url,
                1,
                vec![Action::RemoveMembership {
                    account: "A".into(),
                    group: "Other".into(),
                }],
            ))
        };
        assert!(matches!(
            apply(&old, store, &opts(Some(&removing))),
            Err(ApplyError::MassRemoval {
                removals: 1,
                limit: 0
            })
        ));
        // Asked to confirm changes: a different plan is handed back.
        let fine = || Ok(plan_at(&url, 1, vec![group("Mine"), group("Also")]));
        let confirming = Options {
            accept_changes: false,
            ..opts(Some(&fine))
        };
        assert!(matches!(
            apply(&old, store, &confirming),
            Err(ApplyError::Changed(p)) if p.actions.len() == 2
        ));
        // Nothing of the refused ones landed; the good one does.
        let done = apply(&old, store, &opts(Some(&fine))).unwrap();
        assert_eq!((done.revision, done.actions), (3, 2));
        assert!(done.replanned.is_some());
    }

    #[test]
    fn each_capped_collection_and_each_password_sign_in_is_guarded() {
        let opts = Options {
            allow_mass_removal: false,
            onboarding: Onboarding::Invite,
            credentials_file: None,
            actor: "t",
            now: "2026-01-01T00:00:00Z",
            progress: None,
            replan: None,
            accept_changes: true,
        };
        let mut p = plan_at("sqlite:x.db", 0, vec![]);
        p.removal_caps.push(crate::plan::RemovalCap {
            collection: "case_assignments".into(),
            removed: 2,
            of: 4,
            limit: 1,
        });
        let e = guard(&p, &opts).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the plan removes 2 case assignments, more than max_removals allows (1); check the roster, or pass --allow-mass-removal"
        );
        let allowed = Options {
            allow_mass_removal: true,
            ..opts
        };
        guard(&p, &allowed).unwrap();
        // A partner's `sign_in: password` needs a credentials file even
        // when apply invites by default; `sso` needs none.
        let create = |sign_in| Action::CreateAccount {
            account: "A".into(),
            partner: "a@example.org".into(),
            profile: crate::domain::Profile {
                email: "a@example.org".into(),
                first_name: "A".into(),
                last_name: "B".into(),
                birth_date: None,
                phone: None,
                extension: None,
                zip: None,
            },
            roles: Vec::new(),
            sign_in,
        };
        let p = plan_at("sqlite:x.db", 0, vec![create(Some(SignIn::Password))]);
        assert!(matches!(
            guard(&p, &allowed),
            Err(ApplyError::NoCredentialsFile)
        ));
        let p = plan_at("sqlite:x.db", 0, vec![create(Some(SignIn::Sso))]);
        let password = Options {
            onboarding: Onboarding::Password,
            ..allowed
        };
        guard(&p, &password).unwrap();
    }
}
