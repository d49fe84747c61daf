//! A [`Lane`]: one source's ordered, pipelined way of sending jobs to shards.
//!
//! Why: [`invoke_on`](super::invoke_on) awaits the reply, so a connection that runs each
//! request's first stage on a partition's home shard reads its next request only after a
//! cross-shard round trip (one wake of the other executor and one back). That capped a
//! connection at about 5,000 produce requests per second, and librdkafka's default of up
//! to a million requests in flight queued behind it for hundreds of milliseconds. A lane
//! sends the job and returns its reply receiver at once; the order the jobs take effect in
//! is kept on the target shard instead: each job sent through a lane starts only after the
//! job the lane sent to the same shard before it has finished. A job that finishes on its
//! first poll (the usual case: nothing to wait for) costs no extra task switch.
//!
//! Bounded: at most `jobs_max` jobs of one lane are unfinished; sending more waits for
//! the oldest. [`Lane::drain`] waits for all of them (a request that must see every
//! earlier request's effect).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};

use super::{context, ShardJob};
use crate::error::{Error, Result};
use crate::types::ShardId;

/// Resolves when a job has finished (or was dropped unrun: its shard stopped).
type Done = Shared<oneshot::Receiver<()>>;

/// See the module documentation. Lives on one shard (not `Send`).
pub struct Lane {
    /// Per target shard (indexed by id), the completion of the last job sent there.
    last: RefCell<Vec<Option<Done>>>,
    /// Completions of the jobs not yet seen finished, oldest first.
    unfinished: RefCell<VecDeque<Done>>,
    jobs_max: usize,
}

impl Lane {
    /// A lane that lets at most `jobs_max` (at least 1) of its jobs be unfinished.
    pub fn new(jobs_max: usize) -> Lane {
        Lane {
            last: RefCell::new(Vec::new()),
            unfinished: RefCell::new(VecDeque::new()),
            jobs_max: jobs_max.max(1),
        }
    }

    /// Queue `job` on shard `target` behind every job this lane sent there before, and
    /// return the receiver of its result without waiting for it to run. Waits only for
    /// room: first this lane's bound, then the mesh queue to `target`. On this shard
    /// itself the job is polled once in place. Fails only when `target` has shut down;
    /// the receiver is cancelled if it shuts down before running the job.
    pub async fn send<R, F, Fut>(&self, target: ShardId, job: F) -> Result<oneshot::Receiver<R>>
    where
        R: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        self.wait_for_room().await;
        let ctx = context();
        let index = target.0 as usize;
        if index >= ctx.count as usize {
            return Err(Error::ShardUnavailable(target.0));
        }
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let done = done_rx.shared();
        let previous = {
            let mut last = self.last.borrow_mut();
            if last.len() <= index {
                last.resize(index + 1, None);
            }
            last[index].replace(done.clone())
        };
        self.unfinished.borrow_mut().push_back(done);
        let (tx, rx) = oneshot::channel();
        // A `Send` closure that makes the (local) future where it runs.
        let run = move || async move {
            if let Some(previous) = previous {
                // Cancelled means the previous job was dropped unrun: nothing to wait for.
                let _ = previous.await;
            }
            let result = job().await;
            // The sender may have gone away (connection closed): nothing to do then.
            let _ = tx.send(result);
            let _ = done_tx.send(());
        };
        if target == ctx.id {
            let mut run = Box::pin(run());
            if futures_lite::future::poll_once(run.as_mut())
                .await
                .is_none()
            {
                glommio::spawn_local_into(run, ctx.latency_queue)
                    .expect("latency queue exists")
                    .detach();
            }
            return Ok(rx);
        }
        let boxed: ShardJob = Box::new(move || Box::pin(run()));
        ctx.enqueue(target, boxed).await?;
        Ok(rx)
    }

    /// Resolves when every job sent through this lane so far has finished.
    pub async fn drain(&self) {
        while let Some(oldest) = self.oldest_unfinished() {
            let _ = oldest.await;
        }
    }

    /// How many jobs of this lane may still be running (finished ones are counted until
    /// the next `send` or `drain` looks).
    pub fn unfinished(&self) -> usize {
        self.unfinished.borrow().len()
    }

    async fn wait_for_room(&self) {
        loop {
            let oldest = self.oldest_unfinished();
            match oldest {
                Some(oldest) if self.unfinished() >= self.jobs_max => {
                    let _ = oldest.await;
                }
                _ => return,
            }
        }
    }

    /// The oldest job not yet seen finished, after forgetting the finished ones.
    fn oldest_unfinished(&self) -> Option<Done> {
        let mut unfinished = self.unfinished.borrow_mut();
        // `peek` would see only results some clone has already polled for.
        while unfinished
            .front()
            .is_some_and(|d| d.clone().now_or_never().is_some())
        {
            unfinished.pop_front();
        }
        unfinished.front().cloned()
    }
}
