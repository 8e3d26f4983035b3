//! A small pool of read-only connections. In WAL mode they read a committed
//! snapshot while the writer writes, so reads never wait for a commit.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

use super::schema;
use crate::store::{Result, StoreError};

pub(super) struct Readers {
    path: PathBuf,
    /// The most connections open at once; further readers wait for one.
    max: usize,
    pool: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

impl Readers {
    pub(super) fn new(path: PathBuf, max: usize) -> Self {
        Self {
            path,
            max: max.max(1),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// Runs `read` on a pooled connection. A `read` of several statements opens a
    /// transaction of its own to see one snapshot.
    pub(super) fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let lease = self.lease()?;
        match &lease.conn {
            Some(conn) => read(conn),
            None => Err(StoreError::Backend("bug: leased no connection".into())),
        }
    }

    fn lease(&self) -> Result<Lease<'_>> {
        let mut pool = self.lock();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Lease {
                    readers: self,
                    conn: Some(conn),
                });
            }
            if pool.open < self.max {
                pool.open += 1;
                drop(pool);
                return match schema::open_reader(&self.path) {
                    Ok(conn) => Ok(Lease {
                        readers: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // The pool's state stays consistent even if a holder panicked.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection taken from the pool; goes back when dropped, even if the read
/// panicked.
struct Lease<'a> {
    readers: &'a Readers,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut pool = self.readers.lock();
        match self.conn.take() {
            Some(conn) => pool.idle.push(conn),
            None => pool.open -= 1,
        }
        drop(pool);
        self.readers.returned.notify_one();
    }
}
