//! Group commit: the writes of `roster serve` share store transactions.
//!
//! One writer thread writes for the server. A create is a job owning what
//! it needs; the request queues it and waits, without a thread, for its
//! answer. The writer takes every create queued by the same actor (up to
//! [`MAX_BATCH`]), runs them in one transaction, each in a savepoint, and
//! commits once; then it answers each. A create the store refused rolls
//! back to its savepoint and answers its own error at once, leaving its
//! neighbours; a failed commit answers all of them with its error.
//!
//! Only what cannot depend on a batch neighbour joins a batch: creates
//! (whose names the store keeps unique within the transaction, and whose
//! emails the batch keeps unique here). A change or delete of an existing
//! resource reads it first, so it runs alone: it queues for its turn like a
//! create, and when the turn comes the writer waits while the request
//! writes and commits on its own thread. Each batch reads one snapshot
//! taken under the store's write lock: it sees every write answered before
//! any of its creates were asked for.

use super::ScimError;
use crate::store::directory::Directory;
use crate::store::{Served, Session, Store, StoreError};
use axum::http::StatusCode;
use std::collections::{HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

/// Most writes committed together.
const MAX_BATCH: usize = 64;

/// Most writes queued at once; more are refused with 503.
const MAX_QUEUED: usize = 1024;

/// A create as the writer runs it: the store's session and a snapshot
/// taken under its write lock.
/// It may run twice: a batch whose creates were written together, one of
/// them refused, is run again one create at a time.
pub type CreateFn<T> =
    Box<dyn Fn(&mut dyn Session, &mut dyn Directory) -> Result<T, ScimError> + Send>;

/// The writes of one server: the queue its writer thread serves.
pub struct Writer {
    queue: mpsc::Sender<Job>,
    /// Writes queued and not yet taken up by the writer.
    queued: Arc<AtomicUsize>,
}

enum Job {
    Create(Box<dyn Create>),
    /// A write alone: the writer hands it its turn, and waits until the
    /// turn is dropped.
    Alone(mpsc::Sender<Turn>),
}

/// The right to write alone: the writer waits until it is dropped.
pub struct Turn {
    _done: mpsc::Sender<()>,
}

/// A queued create, its answer sent when its batch ends.
trait Create: Send {
    fn actor(&self) -> &str;
    /// The digest of the admin token it was asked with, if it is to be
    /// checked in the writer's transaction.
    fn token(&self) -> Option<&str>;
    /// The new User's email as `roster check` compares them, if any.
    fn email(&self) -> Option<&str>;
    fn write(&mut self, s: &mut dyn Session, dir: &mut dyn Directory) -> Result<(), ScimError>;
    /// Its answer: what it wrote once `outcome` (the commit's) is Ok.
    fn answer(self: Box<Self>, outcome: Result<(), ScimError>);
}

struct Pending<T> {
    actor: String,
    token: Option<String>,
    email: Option<String>,
    f: Option<CreateFn<T>>,
    value: Option<T>,
    reply: oneshot::Sender<Result<T, ScimError>>,
}

impl<T: Send> Create for Pending<T> {
    fn actor(&self) -> &str {
        &self.actor
    }
    fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
    fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    fn write(&mut self, s: &mut dyn Session, dir: &mut dyn Directory) -> Result<(), ScimError> {
        let f = self.f.as_ref().ok_or_else(failed)?;
        self.value = Some(f(s, dir)?);
        Ok(())
    }
    fn answer(self: Box<Self>, outcome: Result<(), ScimError>) {
        let Pending { value, reply, .. } = *self;
        let answer = outcome.and_then(|()| value.ok_or_else(failed));
        // The request may have gone (its client hung up): nothing to tell.
        let _ = reply.send(answer);
    }
}

/// What a write gets when the writer could not tell it its outcome.
fn failed() -> ScimError {
    ScimError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "a write committed together with this one failed; try again",
    )
}

fn busy() -> ScimError {
    ScimError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "the server is busy: too many writes wait; try again",
    )
}

/// What the store answers a create whose email another User holds.
pub fn email_taken() -> ScimError {
    ScimError::new(
        StatusCode::CONFLICT,
        Some("uniqueness"),
        "emails: another User holds this email address; emails are unique, in any case",
    )
}

/// The answer of a queued create, once its batch has ended.
pub async fn answer<T>(rx: oneshot::Receiver<Result<T, ScimError>>) -> Result<T, ScimError> {
    rx.await.unwrap_or_else(|_| Err(failed()))
}

/// [`answer`], waiting here (blocking: not on the async runtime).
pub fn wait<T>(rx: oneshot::Receiver<Result<T, ScimError>>) -> Result<T, ScimError> {
    rx.blocking_recv().unwrap_or_else(|_| Err(failed()))
}

impl Writer {
    /// Start the writer thread of `store`; it ends when the writer is
    /// dropped and the queue is empty.
    pub fn start(store: Arc<dyn Store>) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&queued);
        std::thread::Builder::new()
            .name("roster-writer".into())
            .spawn(move || serve(store.as_ref(), &jobs, &count))?;
        Ok(Writer { queue, queued })
    }

    fn send(&self, job: Job) -> Result<(), ScimError> {
        if self.queued.fetch_add(1, Ordering::SeqCst) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(busy());
        }
        self.queue.send(job).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            failed()
        })
    }

    /// Queue `f`, a create by `actor`, in a transaction it may share with
    /// other creates of `actor`. `email` is the new User's, which no create
    /// it shares the transaction with may hold. `token`: the digest of the
    /// admin token that `f` checks, which the batch may look up first. The
    /// receiver gets what `f` returned once it is committed, or why not.
    pub fn create<T: Send + 'static>(
        &self,
        actor: &str,
        token: Option<&str>,
        email: Option<&str>,
        f: CreateFn<T>,
    ) -> Result<oneshot::Receiver<Result<T, ScimError>>, ScimError> {
        let email = email
            .map(|e| crate::roster::normalize::email_key(e).into_owned())
            .filter(|k| !k.is_empty());
        let (reply, rx) = oneshot::channel();
        self.send(Job::Create(Box::new(Pending {
            actor: actor.to_string(),
            token: token.map(str::to_string),
            email,
            f: Some(f),
            value: None,
            reply,
        })))?;
        Ok(rx)
    }

    /// Wait for the turn of a write alone (blocking): no other write of
    /// this server runs until the turn is dropped.
    pub fn alone(&self) -> Result<Turn, ScimError> {
        let (tx, rx) = mpsc::channel();
        self.send(Job::Alone(tx))?;
        rx.recv().map_err(|_| failed())
    }

    /// Run `f` as `actor` in a transaction of its own, on this thread when
    /// its turn comes (blocking), then commit.
    pub fn write_alone<T>(
        &self,
        store: &dyn Store,
        actor: &str,
        f: impl FnOnce(&mut dyn Session) -> Result<T, ScimError>,
    ) -> Result<T, ScimError> {
        let turn = self.alone()?;
        let mut session = store.begin(actor, &crate::store::now())?;
        let out = f(session.as_mut())?;
        session.commit()?;
        drop(turn);
        Ok(out)
    }
}

/// The writer thread: batches from the queue until the queue closes.
fn serve(store: &dyn Store, jobs: &mpsc::Receiver<Job>, queued: &AtomicUsize) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    let mut dir: Option<Box<dyn Served>> = None;
    loop {
        if pending.is_empty() {
            match jobs.recv() {
                Ok(j) => pending.push_back(j),
                Err(_) => return,
            }
        }
        pending.extend(jobs.try_iter());
        let Some(first) = pending.pop_front() else {
            continue;
        };
        match first {
            Job::Alone(go) => {
                let (done, wait) = mpsc::channel();
                queued.fetch_sub(1, Ordering::SeqCst);
                if go.send(Turn { _done: done }).is_ok() {
                    // Err once the turn is dropped: the write is over.
                    let _ = wait.recv();
                }
            }
            Job::Create(first) => {
                let mut batch = vec![first];
                let mut i = 0;
                while i < pending.len() && batch.len() < MAX_BATCH {
                    match &pending[i] {
                        Job::Create(c) if c.actor() == batch[0].actor() => {
                            if let Some(Job::Create(c)) = pending.remove(i) {
                                batch.push(c);
                            }
                        }
                        _ => i += 1,
                    }
                }
                // Taken up before any is answered: a request answered
                // finds room for its next write.
                queued.fetch_sub(batch.len(), Ordering::SeqCst);
                let left =
                    match catch_unwind(AssertUnwindSafe(|| write_batch(store, &mut dir, batch))) {
                        Ok(left) => left,
                        // Its jobs were dropped: their requests learn that
                        // they failed. The connection may be mid-read.
                        Err(_) => {
                            dir = None;
                            Vec::new()
                        }
                    };
                queued.fetch_add(left.len(), Ordering::SeqCst);
                for job in left.into_iter().rev() {
                    pending.push_front(Job::Create(job));
                }
            }
        }
    }
}

/// Run `jobs` (of one actor) in one transaction and answer each; the jobs
/// left to run in the next batch when the session broke. `dir` is the
/// writer's read connection, opened when first needed.
fn write_batch(
    store: &dyn Store,
    dir: &mut Option<Box<dyn Served>>,
    jobs: Vec<Box<dyn Create>>,
) -> Vec<Box<dyn Create>> {
    let fail_all = |jobs: Vec<Box<dyn Create>>, e: ScimError| {
        for j in jobs {
            j.answer(Err(e.clone()));
        }
        Vec::new()
    };
    let actor = jobs[0].actor().to_string();
    // A snapshot taken under the store's write lock: it sees every
    // committed write, and no other writer can commit until this batch does.
    let begin = |dir: &mut Option<Box<dyn Served>>| {
        let session = store.begin(&actor, &crate::store::now())?;
        let mut reader = match dir.take() {
            Some(d) => d,
            None => store.served()?,
        };
        reader.begin_read()?;
        Ok::<_, StoreError>((session, reader))
    };
    let (mut session, mut reader) = match begin(dir) {
        Ok(s) => s,
        Err(e) => return fail_all(jobs, e.into()),
    };
    let jobs = match all_at_once(session.as_mut(), reader.as_mut(), jobs) {
        Together::Written(landed) => {
            let outcome = session.commit().map(drop).map_err(ScimError::from);
            if reader.end_read().is_ok() {
                *dir = Some(reader);
            }
            for job in landed {
                job.answer(outcome.clone());
            }
            return Vec::new();
        }
        Together::Not(jobs) => jobs,
        // One of them refused: again, one at a time, from a new
        // transaction (this one rolled back).
        Together::Refused(jobs) => {
            drop(session);
            let _ = reader.end_read();
            *dir = Some(reader);
            match begin(dir) {
                Ok((s, r)) => (session, reader) = (s, r),
                Err(e) => return fail_all(jobs, e.into()),
            }
            jobs
        }
    };
    let mut emails = HashSet::new();
    let mut landed = Vec::new();
    let mut broken: Option<ScimError> = None;
    let mut left = Vec::new();
    for mut job in jobs {
        if broken.is_some() {
            left.push(job);
            continue;
        }
        if job.email().is_some_and(|k| emails.contains(k)) {
            job.answer(Err(email_taken()));
            continue;
        }
        let ran = catch_unwind(AssertUnwindSafe(|| {
            turn(session.as_mut(), reader.as_mut(), job.as_mut())
        }));
        match ran {
            Ok(Turned::Landed) => {
                emails.extend(job.email().map(str::to_string));
                landed.push(job);
            }
            Ok(Turned::Refused(e)) => job.answer(Err(e)),
            Ok(Turned::Broken(e)) => {
                broken = Some(e.clone());
                job.answer(Err(e));
            }
            // The job is dropped: its request learns that it failed. The
            // panic was reported by the panic hook.
            Err(_) => broken = Some(failed()),
        }
    }
    // The writer's connection holds no snapshot between batches; one that
    // cannot end its read is let go.
    if reader.end_read().is_ok() {
        *dir = Some(reader);
    }
    let outcome = match broken {
        // Dropped: rolled back.
        Some(e) => Err(e),
        None if landed.is_empty() => Ok(()),
        None => session.commit().map(drop).map_err(ScimError::from),
    };
    for job in landed {
        job.answer(outcome.clone());
    }
    left
}

/// What became of a batch's creates written together.
enum Together {
    /// Written (not committed yet).
    Written(Vec<Box<dyn Create>>),
    /// Not tried: the session is as it was.
    Not(Vec<Box<dyn Create>>),
    /// One was refused, or a statement failed: the session can only be
    /// rolled back.
    Refused(Vec<Box<dyn Create>>),
}

/// Write `jobs` together where the store can: each create's rows queued,
/// then all of them in one statement that writes all or none. Only for
/// creates with distinct emails (a batch's neighbours could not see each
/// other's).
fn all_at_once(
    s: &mut dyn Session,
    dir: &mut dyn Directory,
    jobs: Vec<Box<dyn Create>>,
) -> Together {
    let mut emails = HashSet::new();
    if !jobs
        .iter()
        .all(|j| j.email().is_none_or(|e| emails.insert(e)))
    {
        return Together::Not(jobs);
    }
    drop(emails);
    let token = jobs.iter().find_map(|j| j.token());
    match s.defer_creates(jobs.len(), token) {
        Ok(true) => {}
        Ok(false) => return Together::Not(jobs),
        // The transaction may not go on: again from a new one.
        Err(_) => return Together::Refused(jobs),
    }
    let mut jobs = jobs;
    let ran = catch_unwind(AssertUnwindSafe(|| {
        for job in jobs.iter_mut() {
            job.write(s, dir).map_err(drop)?;
        }
        match s.write_deferred() {
            Ok(true) => Ok(()),
            _ => Err(()),
        }
    }));
    match ran {
        Ok(Ok(())) => Together::Written(jobs),
        _ => Together::Refused(jobs),
    }
}

enum Turned {
    Landed,
    /// This write's refusal alone: rolled back to its savepoint.
    Refused(ScimError),
    /// The session cannot go on: the batch rolls back.
    Broken(ScimError),
}

/// One create's turn on the batch's session, in a savepoint.
fn turn(s: &mut dyn Session, dir: &mut dyn Directory, job: &mut dyn Create) -> Turned {
    if let Err(e) = s.savepoint() {
        return Turned::Broken(e.into());
    }
    let refused = match job.write(s, dir) {
        Ok(()) => match s.release_savepoint() {
            Ok(()) => return Turned::Landed,
            // Rows a session queued are checked when written, at the
            // release: a name taken is this write's refusal alone.
            Err(e @ (StoreError::Taken(_) | StoreError::Invalid(_))) => ScimError::from(e),
            Err(e) => return Turned::Broken(e.into()),
        },
        Err(refused) => refused,
    };
    match s.rollback_to_savepoint() {
        Ok(()) => Turned::Refused(refused),
        Err(e) => Turned::Broken(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Profile;
    use crate::store::{NewCredential, Options, audit};

    fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let url = format!("sqlite:{}", dir.path().join("store.db").display());
        Arc::from(crate::store::open(&url, Options::default()).unwrap())
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
        // As the server's creates do.
        s.refuse_taken_emails();
        Ok(s.create_account(name, &profile, invite)?)
    }

    type Answer = oneshot::Receiver<Result<(), ScimError>>;

    /// A create of user `name` by `actor`, as a request queues it.
    fn job(actor: &str, name: &str, email: &str) -> (Box<dyn Create>, Answer) {
        let (reply, rx) = oneshot::channel();
        let (n, e) = (name.to_string(), email.to_string());
        let f: CreateFn<()> = Box::new(move |s, _| create(s, &n, &e));
        let job = Pending {
            actor: actor.to_string(),
            token: None,
            email: Some(crate::roster::normalize::email_key(email).into_owned()),
            f: Some(f),
            value: None,
            reply,
        };
        (Box::new(job), rx)
    }

    /// Run these jobs as the writer thread does when they wait together,
    /// until none is left; their answers.
    fn queued(
        store: &dyn Store,
        jobs: Vec<(Box<dyn Create>, Answer)>,
    ) -> Vec<Result<(), ScimError>> {
        let (tx, rx) = mpsc::channel();
        let mut answers = Vec::new();
        for (j, a) in jobs {
            tx.send(Job::Create(j)).unwrap();
            answers.push(a);
        }
        drop(tx);
        serve(store, &rx, &AtomicUsize::new(answers.len()));
        answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap_or_else(|_| Err(failed())))
            .collect()
    }

    /// The audit log verifies; its rows as (actor, op, subject).
    fn audited(store: &dyn Store) -> Vec<(String, String, String, i64)> {
        let mut r = store.reader().unwrap();
        let (entries, revision) = (r.audit(None).unwrap(), r.revision().unwrap());
        assert_eq!(audit::verify(&entries, revision), Ok(()));
        entries
            .into_iter()
            .map(|e| (e.actor, e.op, e.subject, e.revision))
            .collect()
    }

    /// The users created, as (actor, user name), in the order written.
    fn create_rows(store: &dyn Store) -> Vec<(String, String)> {
        audited(store)
            .into_iter()
            .filter(|(_, op, _, _)| op == "create_account")
            .map(|(actor, _, subject, _)| (actor, subject))
            .collect()
    }

    fn row(actor: &str, name: &str) -> (String, String) {
        (actor.into(), name.into())
    }

    #[test]
    fn a_refused_create_leaves_the_create_it_shares_a_commit_with() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let answers = queued(
            store.as_ref(),
            vec![
                job("a", "ann", "ann@example.org"),
                job("a", "ANN", "other@example.org"),
                job("a", "bo", "bo@example.org"),
            ],
        );
        answers[0].clone().unwrap();
        let twin = answers[1].clone().unwrap_err();
        assert_eq!(twin.status, StatusCode::CONFLICT, "{twin:?}");
        answers[2].clone().unwrap();
        assert_eq!(
            create_rows(store.as_ref()),
            [row("a", "ann"), row("a", "bo")]
        );
        // The writer goes on with the next batch.
        let answers = queued(store.as_ref(), vec![job("a", "cy", "cy@example.org")]);
        answers[0].clone().unwrap();
        assert_eq!(create_rows(store.as_ref()).len(), 3);
    }

    #[test]
    fn a_name_taken_in_the_store_refuses_only_its_own_create() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        queued(store.as_ref(), vec![job("a", "cy", "cy@example.org")])[0]
            .clone()
            .unwrap();
        // The SQL session queues new accounts and learns of the taken name
        // when the savepoint's rows are written.
        let answers = queued(
            store.as_ref(),
            vec![
                job("a", "dee", "dee@example.org"),
                job("a", "CY", "cy2@example.org"),
            ],
        );
        answers[0].clone().unwrap();
        let taken = answers[1].clone().unwrap_err();
        assert_eq!(taken.status, StatusCode::CONFLICT, "{taken:?}");
        assert_eq!(
            create_rows(store.as_ref()),
            [row("a", "cy"), row("a", "dee")]
        );
    }

    #[test]
    fn an_email_taken_in_the_store_refuses_only_its_own_create() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        queued(store.as_ref(), vec![job("a", "ann", "ann@example.org")])[0]
            .clone()
            .unwrap();
        // The store finds the email taken as the row is written, between
        // two creates of the same commit that land.
        let answers = queued(
            store.as_ref(),
            vec![
                job("a", "dee", "dee@example.org"),
                job("a", "eve", "ANN@example.org"),
                job("a", "fay", "fay@example.org"),
            ],
        );
        answers[0].clone().unwrap();
        let e = answers[1].clone().unwrap_err();
        assert_eq!(
            (e.status, e.scim_type),
            (StatusCode::CONFLICT, Some("uniqueness")),
            "{e:?}"
        );
        answers[2].clone().unwrap();
        assert_eq!(
            create_rows(store.as_ref()),
            [row("a", "ann"), row("a", "dee"), row("a", "fay")]
        );
        // Its invitation went with it; its neighbours' did not.
        let mut r = store.reader().unwrap();
        let mut invited: Vec<String> = r
            .invitations()
            .unwrap()
            .into_iter()
            .map(|i| i.user_name)
            .collect();
        invited.sort();
        assert_eq!(invited, ["ann", "dee", "fay"]);
    }

    #[test]
    fn creates_sharing_a_commit_cannot_share_an_email() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let answers = queued(
            store.as_ref(),
            vec![
                job("a", "ann", "Same@Example.org"),
                job("a", "bo", " same@example.org"),
            ],
        );
        answers[0].clone().unwrap();
        let e = answers[1].clone().unwrap_err();
        assert_eq!(
            (e.status, e.scim_type),
            (StatusCode::CONFLICT, Some("uniqueness"))
        );
        assert_eq!(create_rows(store.as_ref()), [row("a", "ann")]);
    }

    #[test]
    fn creates_of_another_actor_run_in_their_own_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let answers = queued(
            store.as_ref(),
            vec![
                job("token:a", "ann", "ann@example.org"),
                job("token:b", "bo", "bo@example.org"),
                job("token:a", "cy", "cy@example.org"),
            ],
        );
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        // `cy` was queued after `bo` and written before it: with `ann`, in
        // the transaction of `token:a`.
        assert_eq!(
            create_rows(store.as_ref()),
            [
                row("token:a", "ann"),
                row("token:a", "cy"),
                row("token:b", "bo"),
            ]
        );
    }

    #[test]
    fn a_write_alone_holds_off_the_writer_until_its_turn_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let w = Writer::start(Arc::clone(&store)).unwrap();
        let turn = w.alone().unwrap();
        let mut s = store.begin("token:a", &crate::store::now()).unwrap();
        create(s.as_mut(), "ann", "ann@example.org").unwrap();
        let f: CreateFn<()> = Box::new(|s, _| create(s, "bo", "bo@example.org"));
        let mut bo = w
            .create("token:a", None, Some("bo@example.org"), f)
            .unwrap();
        // The writer waits for the turn instead of meeting the lock.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(bo.try_recv().is_err());
        s.commit().unwrap();
        drop(turn);
        bo.blocking_recv().unwrap().unwrap();
        assert_eq!(
            create_rows(store.as_ref()),
            [row("token:a", "ann"), row("token:a", "bo")]
        );
    }

    #[test]
    fn a_write_finding_the_queue_full_gets_503_and_the_queue_drains() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let w = Writer::start(Arc::clone(&store)).unwrap();
        // The writer waits for this turn while the creates pile up.
        let turn = w.alone().unwrap();
        let queue = |i: usize| {
            let f: CreateFn<()> =
                Box::new(move |s, _| create(s, &format!("u{i}"), &format!("u{i}@example.org")));
            w.create("a", None, None, f)
        };
        let answers: Vec<_> = (0..MAX_QUEUED).map(|i| queue(i).unwrap()).collect();
        let full = queue(MAX_QUEUED).unwrap_err();
        assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE, "{full:?}");
        drop(turn);
        for a in answers {
            a.blocking_recv().unwrap().unwrap();
        }
        // Answered: room again.
        let next = queue(MAX_QUEUED + 1).unwrap();
        next.blocking_recv().unwrap().unwrap();
        assert_eq!(create_rows(store.as_ref()).len(), MAX_QUEUED + 1);
    }

    #[test]
    fn a_write_that_panics_fails_its_batch_and_the_next_one_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let (reply, panics) = oneshot::channel();
        let bug: CreateFn<()> = Box::new(|_, _| panic!("a bug in a write"));
        let buggy: Box<dyn Create> = Box::new(Pending {
            actor: "a".into(),
            token: None,
            email: None,
            f: Some(bug),
            value: None,
            reply,
        });
        let answers = queued(
            store.as_ref(),
            vec![
                job("a", "ann", "ann@example.org"),
                (buggy, panics),
                job("a", "bo", "bo@example.org"),
            ],
        );
        // The panic rolled the batch back and told its other writes; the
        // one after it ran in the next batch.
        assert_eq!(
            answers[0].clone().unwrap_err().status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert!(answers[1].is_err());
        answers[2].clone().unwrap();
        assert_eq!(create_rows(store.as_ref()), [row("a", "bo")]);
    }
}
