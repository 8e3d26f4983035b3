//! Group commit: one thread owns the write connection and commits many
//! operations with one transaction, hence one fsync.
//!
//! Callers send an operation (a closure) and wait for its reply. The writer takes
//! everything queued (up to [`MAX_BATCH`]), runs it in one `BEGIN IMMEDIATE`
//! transaction with each operation inside its own savepoint, so that a failed
//! operation rolls back only itself, commits once and only then replies: an `Ok`
//! reply means the effect is on stable storage. If the commit fails, every
//! operation of the batch gets the error.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::{self, JoinHandle};

use rusqlite::Connection;

use crate::store::{Result, StoreError};

/// The most operations one transaction carries. Bounds how long the first caller
/// of a batch waits behind the others.
const MAX_BATCH: usize = 256;

/// The handle to the writer thread. Dropping it lets the thread finish what is
/// queued, close the connection and exit, and waits for that.
pub(super) struct Writer {
    queue: Option<Sender<Box<dyn PendingWrite>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn spawn(conn: Connection) -> Result<Self> {
        let (queue, ops) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("entente-store-writer".into())
            .spawn(move || run(&conn, &ops))
            .map_err(|e| StoreError::Backend(format!("starting the store writer: {e}")))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Runs `op` in the writer's next transaction and returns its result once that
    /// transaction is committed.
    pub(super) fn write<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, replied) = mpsc::sync_channel(1);
        let job = Box::new(Write {
            op: Some(op),
            outcome: None,
            reply,
        });
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        replied.recv().map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the writer's loop once it has drained it.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store writer thread panicked");
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store writer has stopped".into())
}

/// One queued write: runs inside the batch's transaction, replies after it ends.
trait PendingWrite: Send {
    /// Runs the operation; `true` if it succeeded and its effects are to be kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Replies to the caller, given the outcome of the batch's commit.
    fn finish(self: Box<Self>, commit: &Result<(), String>);
}

struct Write<T, F> {
    op: Option<F>,
    outcome: Option<Result<T>>,
    reply: SyncSender<Result<T>>,
}

impl<T, F> PendingWrite for Write<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        let outcome = op(conn);
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn finish(self: Box<Self>, commit: &Result<(), String>) {
        let result = match (commit, self.outcome) {
            (Err(e), _) => Err(StoreError::Backend(e.clone())),
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(StoreError::Backend(
                "bug: the store operation panicked and was rolled back".into(),
            )),
        };
        // The caller waits for this; if it has gone, nobody needs the answer.
        let _ = self.reply.send(result);
    }
}

fn run(conn: &Connection, ops: &Receiver<Box<dyn PendingWrite>>) {
    while let Ok(first) = ops.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let commit = commit_batch(conn, &mut batch);
        if let Err(e) = &commit {
            tracing::error!(operations = batch.len(), "store commit failed: {e}");
        }
        for op in batch {
            op.finish(&commit);
        }
    }
}

/// Runs `batch` in one transaction and commits it. On error the transaction is
/// rolled back and the error is every operation's.
fn commit_batch(conn: &Connection, batch: &mut [Box<dyn PendingWrite>]) -> Result<(), String> {
    execute(conn, "BEGIN IMMEDIATE").map_err(|e| format!("beginning a transaction: {e}"))?;
    let mut outcome = Ok(());
    for op in batch.iter_mut() {
        outcome = run_in_savepoint(conn, op.as_mut());
        if outcome.is_err() {
            break;
        }
    }
    if outcome.is_ok() {
        outcome = execute(conn, "COMMIT").map_err(|e| format!("committing: {e}"));
    }
    // A failed COMMIT (e.g. SQLITE_FULL, a deferred constraint) can leave the
    // transaction open; roll it back so the next batch starts clean.
    if outcome.is_err()
        && !conn.is_autocommit()
        && let Err(e) = execute(conn, "ROLLBACK")
    {
        tracing::error!("store rollback failed: {e}");
    }
    outcome
}

fn run_in_savepoint(conn: &Connection, op: &mut dyn PendingWrite) -> Result<(), String> {
    execute(conn, "SAVEPOINT op").map_err(|e| format!("opening a savepoint: {e}"))?;
    // A panic is a bug in the store; it costs that operation, not the writer.
    let keep = panic::catch_unwind(AssertUnwindSafe(|| op.run(conn))).unwrap_or(false);
    if conn.is_autocommit() {
        // Some errors (I/O, out of memory) make SQLite roll back the whole
        // transaction; what the batch did before is gone too.
        return Err("SQLite rolled back the transaction".into());
    }
    if !keep {
        execute(conn, "ROLLBACK TO op").map_err(|e| format!("rolling back a savepoint: {e}"))?;
    }
    execute(conn, "RELEASE op").map_err(|e| format!("releasing a savepoint: {e}"))
}

fn execute(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dir: &tempfile::TempDir) -> Connection {
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA foreign_keys = ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE t (v INTEGER PRIMARY KEY,
                             p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        conn
    }

    fn insert(v: i64, p: Option<i64>) -> impl FnOnce(&Connection) -> Result<i64> + Send {
        move |conn| {
            conn.execute("INSERT INTO t (v, p) VALUES (?1, ?2)", (v, p))
                .map_err(|e| StoreError::Conflict(e.to_string()))?;
            Ok(v)
        }
    }

    /// Queues `op` as a batch member; returns where its reply arrives.
    fn job<T, F>(op: F) -> (Box<dyn PendingWrite>, Receiver<Result<T>>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, replied) = mpsc::sync_channel(1);
        let job = Box::new(Write {
            op: Some(op),
            outcome: None,
            reply,
        });
        (job, replied)
    }

    fn rows(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn finish(batch: Vec<Box<dyn PendingWrite>>, commit: &Result<(), String>) {
        for op in batch {
            op.finish(commit);
        }
    }

    #[test]
    fn a_failed_operation_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let conn = table(&dir);
        let (a, ra) = job(insert(1, None));
        let (b, rb) = job(|conn: &Connection| {
            conn.execute("INSERT INTO t (v) VALUES (2)", []).unwrap();
            // Fails after a write of its own, which must be undone.
            insert(1, None)(conn)
        });
        let (c, rc) = job(|_: &Connection| -> Result<()> { panic!("bug") });
        let (d, rd) = job(insert(3, None));
        let mut batch = vec![a, b, c, d];
        let commit = commit_batch(&conn, &mut batch);
        assert_eq!(commit, Ok(()));
        finish(batch, &commit);
        assert_eq!(ra.recv().unwrap().unwrap(), 1);
        assert!(matches!(rb.recv().unwrap(), Err(StoreError::Conflict(_))));
        assert!(matches!(rc.recv().unwrap(), Err(StoreError::Backend(_))));
        assert_eq!(rd.recv().unwrap().unwrap(), 3);
        assert_eq!(rows(&conn), [1, 3]);
    }

    #[test]
    fn a_failed_commit_fails_every_operation_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let conn = table(&dir);
        let (a, ra) = job(insert(1, None));
        // Violates a deferred foreign key: only COMMIT notices.
        let (b, rb) = job(insert(2, Some(99)));
        let mut batch = vec![a, b];
        let commit = commit_batch(&conn, &mut batch);
        assert!(commit.is_err());
        assert!(
            conn.is_autocommit(),
            "the failed transaction was rolled back"
        );
        finish(batch, &commit);
        assert!(matches!(ra.recv().unwrap(), Err(StoreError::Backend(_))));
        assert!(matches!(rb.recv().unwrap(), Err(StoreError::Backend(_))));
        assert!(rows(&conn).is_empty());

        // The connection is usable for the next batch.
        let (c, rc) = job(insert(3, None));
        let mut batch = vec![c];
        let commit = commit_batch(&conn, &mut batch);
        finish(batch, &commit);
        assert_eq!(rc.recv().unwrap().unwrap(), 3);
        assert_eq!(rows(&conn), [3]);
    }

    #[test]
    fn the_thread_serves_concurrent_callers_and_drains_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let writer = std::sync::Arc::new(Writer::spawn(table(&dir)).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                thread::spawn(move || {
                    for i in 0..50 {
                        assert_eq!(
                            writer.write(insert(t * 100 + i, None)).unwrap(),
                            t * 100 + i
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(writer);
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        assert_eq!(rows(&conn).len(), 200);
    }
}
