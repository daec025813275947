//! The server's store connections: a few, kept open and reused, so no
//! request logs in to the store anew and no flood of requests can take more
//! than the pool's size of the database's connections. A request takes a
//! permit before it touches the store; when none is free for a while it gets
//! 503 instead of waiting for ever.

use super::ScimError;
use crate::store::{Served, Store, StoreError, directory::Directory};
use axum::http::StatusCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Pool {
    store: Arc<dyn Store>,
    /// Open connections between requests, outside any transaction.
    idle: Mutex<Vec<Box<dyn Served>>>,
    permits: Arc<Semaphore>,
    /// How long a request waits for a connection before 503.
    wait: Duration,
}

/// The right to hold one of the pool's connections.
pub struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

impl Pool {
    pub fn new(store: Arc<dyn Store>, size: usize, wait: Duration) -> Self {
        Pool {
            store,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
            wait,
        }
    }

    /// Wait (briefly) for a free connection slot.
    pub async fn permit(&self) -> Result<Permit, ScimError> {
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(Permit(p)),
            _ => Err(ScimError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the server is busy: every store connection is in use; try again",
            )),
        }
    }

    /// A connection, its read snapshot asked for: an idle one, or a new
    /// one. Asking sends nothing to the store, so a connection the database
    /// dropped meanwhile shows at its first read: [`Lease::reused`] says
    /// whether [`Lease::replace`] may then try a new one.
    /// Blocking: call it on the blocking pool.
    pub fn take(self: &Arc<Self>, permit: Permit) -> Result<Lease, StoreError> {
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let (conn, reused) = match idle {
                Some(mut c) => match c.begin_read() {
                    Ok(()) => (c, true),
                    Err(_) => continue,
                },
                None => (self.store.served()?, false),
            };
            return Ok(Lease {
                conn: Some(conn),
                pool: Some(Arc::clone(self)),
                _permit: Some(permit),
                reused,
            });
        }
    }
}

/// One connection, given back to its pool when dropped.
pub struct Lease {
    conn: Option<Box<dyn Served>>,
    pool: Option<Arc<Pool>>,
    _permit: Option<Permit>,
    /// Taken from the idle connections, and not read from since.
    reused: bool,
}

impl Lease {
    /// A connection of no pool (closed when dropped).
    pub fn unpooled(store: &dyn Store) -> Result<Lease, StoreError> {
        Ok(Lease {
            conn: Some(store.served()?),
            pool: None,
            _permit: None,
            reused: false,
        })
    }

    /// Whether the connection came from the idle ones and has not been
    /// read from since: a failure of its first read may be the database
    /// having dropped it.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Let the connection go (not back to the pool) and take a new one.
    pub fn replace(&mut self) -> Result<(), StoreError> {
        let store = match &self.pool {
            Some(p) => Arc::clone(&p.store),
            None => return Ok(()),
        };
        self.conn = None;
        self.reused = false;
        self.conn = Some(store.served()?);
        Ok(())
    }

    pub fn dir(&mut self) -> &mut (dyn Directory + 'static) {
        self.reused = false;
        self.served()
    }

    pub fn dir_ref(&self) -> &(dyn Directory + 'static) {
        self.conn.as_deref().expect("connection present until drop")
    }

    /// A new snapshot: what is committed from now on is seen.
    pub fn refresh(&mut self) -> Result<(), StoreError> {
        self.served().begin_read()
    }

    fn served(&mut self) -> &mut (dyn Served + 'static) {
        // Only `drop` takes the connection out.
        self.conn
            .as_deref_mut()
            .expect("connection present until drop")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(mut conn), Some(pool)) = (self.conn.take(), self.pool.take())
            && conn.end_read().is_ok()
        {
            pool.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }
}
