//! Group commit: the writes of `roster serve` share store transactions.
//!
//! A write takes its turn on the one open [`Session`] (starting one if none
//! is open), runs in a savepoint of it, and then either hands the session
//! on to a write already waiting for it or, when none waits, commits. One
//! commit answers every write of its batch: a write the store refused
//! rolls back to its savepoint and answers its own error at once, leaving
//! its neighbours; a failed commit answers all of them with its error.
//!
//! Only what cannot depend on a batch neighbour joins a batch: creates
//! (whose names the store keeps unique within the transaction, and whose
//! emails the batch keeps unique here). A change or delete of an existing
//! resource reads it first, so it runs alone: it ends the open batch, and
//! commits before anything else writes. Each write reads a snapshot taken
//! when its turn comes, under the store's write lock: it sees every write
//! answered before it was asked for.

use super::ScimError;
use crate::store::{Session, Store, StoreError};
use axum::http::StatusCode;
use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Most writes committed together.
const MAX_BATCH: usize = 64;

/// Whether a write may share its transaction with others.
#[derive(Debug, Clone, Copy)]
pub enum Joins<'a> {
    /// A change or delete: in a transaction of its own.
    Alone,
    /// A create, holding this email if any (unique among all Users).
    Create { email: Option<&'a str> },
}

/// The writes of one server.
#[derive(Default)]
pub struct Writer {
    /// Writes waiting for their turn on the session.
    waiting: AtomicUsize,
    open: Mutex<Option<Batch>>,
    ended: Mutex<Ended>,
    committed: Condvar,
}

/// A transaction shared by the writes of one actor.
struct Batch {
    id: u64,
    actor: String,
    session: Box<dyn Session>,
    /// Writes that ran in it, landed or not.
    writes: usize,
    /// Writes that landed in it and wait for its commit.
    landed: usize,
    /// Emails of the Users created in it (as `roster check` compares them).
    emails: HashSet<String>,
    /// Set when the session cannot go on (a savepoint failed): the batch
    /// rolls back and its writes get this.
    broken: Option<ScimError>,
    /// Ends with the write that ran in it.
    alone: bool,
}

#[derive(Default)]
struct Ended {
    next_id: u64,
    /// Outcomes of ended batches, and how many of their writes have not
    /// read theirs yet.
    outcomes: HashMap<u64, (Result<(), ScimError>, usize)>,
}

/// What the store answers a create whose email another User holds.
pub fn email_taken() -> ScimError {
    ScimError::new(
        StatusCode::CONFLICT,
        Some("uniqueness"),
        "emails: another User holds this email address; emails are unique, in any case",
    )
}

impl Writer {
    /// Run `f` in a savepoint of the shared session, as `actor`; returns
    /// once what `f` wrote is committed (or refused).
    pub fn run<T>(
        &self,
        store: &dyn Store,
        actor: &str,
        joins: Joins,
        f: impl FnOnce(&mut dyn Session) -> Result<T, ScimError>,
    ) -> Result<T, ScimError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        // A poisoned lock only means a write panicked: its batch was ended
        // before the panic went on (see below).
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let alone = matches!(joins, Joins::Alone);
        if open
            .as_ref()
            .is_some_and(|b| alone || b.alone || b.actor != actor)
        {
            self.end(&mut open);
        }
        if open.is_none() {
            let session = store.begin(actor, &crate::store::now())?;
            let id = {
                let mut ended = self.ended();
                ended.next_id += 1;
                ended.next_id
            };
            *open = Some(Batch {
                id,
                actor: actor.to_string(),
                session,
                writes: 0,
                landed: 0,
                emails: HashSet::new(),
                broken: None,
                alone,
            });
        }
        let batch = open.as_mut().expect("a batch was opened above");
        let id = batch.id;
        let result = match catch_unwind(AssertUnwindSafe(|| turn(&mut *batch, joins, f))) {
            Ok(r) => r,
            Err(panic) => {
                batch.broken = Some(ScimError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "a write committed together with this one failed; try again",
                ));
                self.end(&mut open);
                drop(open);
                resume_unwind(panic);
            }
        };
        if result.is_ok() {
            batch.landed += 1;
        }
        let full = batch.broken.is_some() || batch.alone || batch.writes >= MAX_BATCH;
        if full || self.waiting.load(Ordering::SeqCst) == 0 {
            self.end(&mut open);
        }
        drop(open);
        let value = result?;
        self.outcome(id)?;
        Ok(value)
    }

    fn ended(&self) -> MutexGuard<'_, Ended> {
        self.ended.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commit the open batch (roll it back if broken) and tell its writes.
    fn end(&self, open: &mut Option<Batch>) {
        let Some(batch) = open.take() else {
            return;
        };
        let outcome = match batch.broken {
            // Dropped: rolled back.
            Some(e) => Err(e),
            None if batch.landed == 0 => Ok(()),
            None => batch.session.commit().map(drop).map_err(ScimError::from),
        };
        if batch.landed > 0 {
            self.ended()
                .outcomes
                .insert(batch.id, (outcome, batch.landed));
            self.committed.notify_all();
        }
    }

    /// Wait for the batch `id` to end; its outcome.
    fn outcome(&self, id: u64) -> Result<(), ScimError> {
        let mut ended = self.ended();
        loop {
            if let Some((outcome, left)) = ended.outcomes.get_mut(&id) {
                let outcome = outcome.clone();
                *left -= 1;
                if *left == 0 {
                    ended.outcomes.remove(&id);
                }
                return outcome;
            }
            ended = self
                .committed
                .wait(ended)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// One write's turn on the batch's session, in a savepoint.
fn turn<T>(
    batch: &mut Batch,
    joins: Joins,
    f: impl FnOnce(&mut dyn Session) -> Result<T, ScimError>,
) -> Result<T, ScimError> {
    batch.writes += 1;
    let email = match joins {
        Joins::Create { email: Some(e) } => {
            let key = crate::roster::normalize::email_key(e).into_owned();
            if !key.is_empty() && batch.emails.contains(&key) {
                return Err(email_taken());
            }
            Some(key).filter(|k| !k.is_empty())
        }
        _ => None,
    };
    if let Err(e) = batch.session.savepoint() {
        let e = ScimError::from(e);
        batch.broken = Some(e.clone());
        return Err(e);
    }
    match f(batch.session.as_mut()) {
        Ok(v) => match batch.session.release_savepoint() {
            Ok(()) => {
                batch.emails.extend(email);
                Ok(v)
            }
            // Rows a session queued are checked when written, at the
            // release: a name taken is this write's refusal alone.
            Err(e @ (StoreError::Taken(_) | StoreError::Invalid(_))) => {
                if let Err(e) = batch.session.rollback_to_savepoint() {
                    batch.broken = Some(ScimError::from(e));
                }
                Err(ScimError::from(e))
            }
            Err(e) => {
                let e = ScimError::from(e);
                batch.broken = Some(e.clone());
                Err(e)
            }
        },
        Err(refused) => {
            if let Err(e) = batch.session.rollback_to_savepoint() {
                batch.broken = Some(ScimError::from(e));
            }
            Err(refused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Profile;
    use crate::store::{NewCredential, Options, audit};
    use std::sync::atomic::AtomicBool;

    fn store(dir: &tempfile::TempDir) -> Box<dyn Store> {
        let url = format!("sqlite:{}", dir.path().join("store.db").display());
        crate::store::open(&url, Options::default()).unwrap()
    }

    fn create(s: &mut dyn Session, name: &str, email: &str) -> Result<(), ScimError> {
        let profile = Profile {
            email: email.to_string(),
            first_name: name.to_string(),
            last_name: "Tester".to_string(),
            birth_date: None,
            phone: None,
            extension: None,
            zip: None,
        };
        let invite = NewCredential::Invite {
            token: format!("token-{name}"),
            token_digest: crate::secrets::sha256(name.as_bytes()),
        };
        Ok(s.create_account(name, &profile, invite)?)
    }

    /// A write as `second` sends it: (actor, joins, user name, email).
    type Write<'a> = (&'a str, Joins<'a>, &'a str, &'a str);

    /// Run `first`, and `second` while `first` holds the session, so that
    /// `first` hands the session on instead of committing: the two share a
    /// batch unless `second` may not join it. Their answers.
    fn together(
        w: &Writer,
        store: &dyn Store,
        first: Write,
        second: Write,
    ) -> (Result<(), ScimError>, Result<(), ScimError>) {
        let inside = AtomicBool::new(false);
        std::thread::scope(|s| {
            let a = s.spawn(|| {
                w.run(store, first.0, first.1, |session| {
                    inside.store(true, Ordering::SeqCst);
                    while w.waiting.load(Ordering::SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                    create(session, first.2, first.3)
                })
            });
            let b = s.spawn(|| {
                while !inside.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                w.run(store, second.0, second.1, |session| {
                    create(session, second.2, second.3)
                })
            });
            (a.join().unwrap(), b.join().unwrap())
        })
    }

    /// The audit log verifies; its rows as (actor, op, subject).
    fn audited(store: &dyn Store) -> Vec<(String, String, String)> {
        let mut r = store.reader().unwrap();
        let (entries, revision) = (r.audit(None).unwrap(), r.revision().unwrap());
        assert_eq!(audit::verify(&entries, revision), Ok(()));
        entries
            .into_iter()
            .map(|e| (e.actor, e.op, e.subject))
            .collect()
    }

    fn create_rows(store: &dyn Store) -> Vec<(String, String)> {
        audited(store)
            .into_iter()
            .filter(|(_, op, _)| op == "create_account")
            .map(|(actor, _, subject)| (actor, subject))
            .collect()
    }

    const CREATE: Joins = Joins::Create { email: None };

    #[test]
    fn a_refused_create_leaves_the_create_it_shares_a_commit_with() {
        let dir = tempfile::tempdir().unwrap();
        let (w, store) = (Writer::default(), store(&dir));
        let (ann, twin) = together(
            &w,
            store.as_ref(),
            ("a", CREATE, "ann", "ann@example.org"),
            ("a", CREATE, "ANN", "other@example.org"),
        );
        ann.unwrap();
        let twin = twin.unwrap_err();
        assert_eq!(twin.status, StatusCode::CONFLICT, "{twin:?}");
        assert_eq!(create_rows(store.as_ref()), [("a".into(), "ann".into())]);
        // The session was committed and let go: the next write goes on.
        w.run(store.as_ref(), "a", CREATE, |s| {
            create(s, "bo", "bo@example.org")
        })
        .unwrap();
        assert_eq!(create_rows(store.as_ref()).len(), 2);
    }

    #[test]
    fn a_name_taken_in_the_store_refuses_only_its_own_create() {
        let dir = tempfile::tempdir().unwrap();
        let (w, store) = (Writer::default(), store(&dir));
        w.run(store.as_ref(), "a", CREATE, |s| {
            create(s, "cy", "cy@example.org")
        })
        .unwrap();
        // The SQL session queues new accounts and learns of the taken name
        // when the savepoint's rows are written.
        let (dee, taken) = together(
            &w,
            store.as_ref(),
            ("a", CREATE, "dee", "dee@example.org"),
            ("a", CREATE, "CY", "cy2@example.org"),
        );
        dee.unwrap();
        let taken = taken.unwrap_err();
        assert_eq!(taken.status, StatusCode::CONFLICT, "{taken:?}");
        assert_eq!(
            create_rows(store.as_ref()),
            [("a".into(), "cy".into()), ("a".into(), "dee".into())]
        );
    }

    #[test]
    fn creates_sharing_a_commit_cannot_share_an_email() {
        let dir = tempfile::tempdir().unwrap();
        let (w, store) = (Writer::default(), store(&dir));
        let (first, second) = together(
            &w,
            store.as_ref(),
            (
                "a",
                Joins::Create {
                    email: Some("Same@Example.org"),
                },
                "ann",
                "Same@Example.org",
            ),
            (
                "a",
                Joins::Create {
                    email: Some(" same@example.org"),
                },
                "bo",
                "same@example.org",
            ),
        );
        first.unwrap();
        let e = second.unwrap_err();
        assert_eq!(
            (e.status, e.scim_type),
            (StatusCode::CONFLICT, Some("uniqueness"))
        );
        assert_eq!(create_rows(store.as_ref()), [("a".into(), "ann".into())]);
    }

    #[test]
    fn writes_of_another_actor_or_that_change_run_in_their_own_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (w, store) = (Writer::default(), store(&dir));
        let (a, b) = together(
            &w,
            store.as_ref(),
            ("token:a", CREATE, "ann", "ann@example.org"),
            ("token:b", CREATE, "bo", "bo@example.org"),
        );
        a.unwrap();
        b.unwrap();
        let (a, b) = together(
            &w,
            store.as_ref(),
            ("token:a", CREATE, "cy", "cy@example.org"),
            ("token:a", Joins::Alone, "di", "di@example.org"),
        );
        a.unwrap();
        b.unwrap();
        assert_eq!(
            create_rows(store.as_ref()),
            [
                ("token:a".into(), "ann".into()),
                ("token:b".into(), "bo".into()),
                ("token:a".into(), "cy".into()),
                ("token:a".into(), "di".into()),
            ]
        );
    }

    #[test]
    fn a_write_that_panics_fails_its_batch_and_the_next_one_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (w, store) = (Writer::default(), store(&dir));
        let inside = AtomicBool::new(false);
        let (first, second) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                w.run(store.as_ref(), "a", CREATE, |session| {
                    create(session, "ann", "ann@example.org")?;
                    inside.store(true, Ordering::SeqCst);
                    while w.waiting.load(Ordering::SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                    Ok(())
                })
            });
            let b = s.spawn(|| {
                while !inside.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                w.run(store.as_ref(), "a", CREATE, |_| -> Result<(), ScimError> {
                    panic!("a bug in a write")
                })
            });
            (a.join().unwrap(), b.join())
        });
        // The panic rolled the batch back and told its other write.
        assert!(second.is_err());
        assert_eq!(first.unwrap_err().status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(create_rows(store.as_ref()).is_empty());
        w.run(store.as_ref(), "a", CREATE, |s| {
            create(s, "bo", "bo@example.org")
        })
        .unwrap();
        assert_eq!(create_rows(store.as_ref()), [("a".into(), "bo".into())]);
    }
}
