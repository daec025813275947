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

    /// A connection in a fresh read transaction: an idle one, or a new one.
    /// Blocking: call it on the blocking pool.
    pub fn take(self: &Arc<Self>, permit: Permit) -> Result<Lease, StoreError> {
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let conn = match idle {
                // A connection the database dropped meanwhile is let go.
                Some(mut c) => match c.begin_read() {
                    Ok(()) => c,
                    Err(_) => continue,
                },
                None => self.store.served()?,
            };
            return Ok(Lease {
                conn: Some(conn),
                pool: Some(Arc::clone(self)),
                _permit: Some(permit),
            });
        }
    }
}

/// One connection, given back to its pool when dropped.
pub struct Lease {
    conn: Option<Box<dyn Served>>,
    pool: Option<Arc<Pool>>,
    _permit: Option<Permit>,
}

impl Lease {
    /// A connection of no pool (closed when dropped).
    pub fn unpooled(store: &dyn Store) -> Result<Lease, StoreError> {
        Ok(Lease {
            conn: Some(store.served()?),
            pool: None,
            _permit: None,
        })
    }

    pub fn dir(&mut self) -> &mut (dyn Directory + 'static) {
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
