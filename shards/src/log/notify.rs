//! Two tiny single-threaded synchronisation primitives: a broadcast [`Notify`] with a
//! generation counter (no lost wake-ups: read the generation, check the condition, then
//! wait for the generation to move) and an [`AsyncLock`] that serialises the log's file
//! operations (flusher step, truncation, retention, close).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
pub struct Notify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether a task waits (or waited and has not been polled since: a dropped waiter's
    /// waker stays until the next notification, so this may say yes spuriously, never no
    /// wrongly).
    pub fn has_waiters(&self) -> bool {
        !self.wakers.borrow().is_empty()
    }

    /// Resolves once the generation differs from `seen`.
    pub fn wait(&self, seen: u64) -> Wait<'_> {
        Wait { notify: self, seen }
    }
}

pub struct Wait<'a> {
    notify: &'a Notify,
    seen: u64,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A non-reentrant async mutex without data (the data lives in the log's `RefCell`, never
/// borrowed across an await).
#[derive(Debug, Default)]
pub struct AsyncLock {
    locked: Cell<bool>,
    released: Notify,
}

pub struct AsyncLockGuard<'a> {
    lock: &'a AsyncLock,
}

impl AsyncLock {
    /// Whether another task waits for the lock (possibly spuriously, see
    /// [`Notify::has_waiters`]).
    pub fn contended(&self) -> bool {
        self.released.has_waiters()
    }

    pub async fn lock(&self) -> AsyncLockGuard<'_> {
        loop {
            let seen = self.released.generation();
            if !self.locked.get() {
                self.locked.set(true);
                return AsyncLockGuard { lock: self };
            }
            self.released.wait(seen).await;
        }
    }
}

impl Drop for AsyncLockGuard<'_> {
    fn drop(&mut self) {
        assert!(self.lock.locked.get());
        self.lock.locked.set(false);
        self.lock.released.notify_all();
    }
}
