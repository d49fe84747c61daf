//! The stall guard: a plain thread that interrupts a shard whose executor sleeps through
//! its own timers.
//!
//! Why: glommio 0.9 sleeps in `io_uring_enter` on its main ring, woken by a POLL_ADD on its
//! latency ring's fd, where timers live. About once in several thousand two-shard runtime
//! starts (and, rarely, in a running broker) both executors were seen asleep there for
//! tens of seconds with a 2 ms timer due: the wake-up was lost below our code, in the
//! ring-linking sleep. Attaching a debugger — which interrupts the syscall — un-stuck them
//! at once. So this guard does what the debugger did: each shard counts its 2 ms beats;
//! a thread checks the counts every [`CHECK_PERIOD`] and sends a no-op signal (installed
//! without `SA_RESTART`) to a shard that has not beaten since the last check. The
//! interrupted `io_uring_enter` returns EINTR, which glommio treats as "woke up": the
//! executor runs its loop, expired timers fire, and everything they wake runs.
//!
//! A kick is harmless when it is not needed (a shard that is merely descheduled on an
//! overloaded machine, or busy in a long task): glommio retries, and the shard threads do
//! no other interruptible blocking syscalls (file I/O on regular files is not interrupted;
//! std retries EINTR where it can happen). Kicks are counted and logged (rate-limited), so
//! a real stall is visible rather than silently bounded.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};

/// How often the guard looks, and so the longest a shard sleeps through its timers.
///
/// 5 ms (was 20 until session 10): under a librdkafka load at 5,000 msg/s a broker logged
/// about one kick per two minutes, each a shard stalled 20–40 ms with messages waiting —
/// visible at p99.9. A shard beats every 2 ms, and only a thread asleep (state S) without
/// a beat for a whole period is kicked, so a busy or descheduled shard is still left alone.
pub const CHECK_PERIOD: Duration = Duration::from_millis(5);

/// The signal that interrupts a shard. SIGURG: ignored by default, so a stray one (before
/// the handler is installed) is harmless, and nothing else in the process uses it.
const KICK_SIGNAL: libc::c_int = libc::SIGURG;

/// What the guard knows of one shard.
#[derive(Default)]
pub struct ShardBeat {
    beats: AtomicU64,
    /// Kicks this shard received.
    kicks: AtomicU64,
    /// The shard thread's tid while its executor runs; `None` before and after. Held
    /// locked while signalling, so a thread that has deregistered is never signalled (its
    /// tid could be reused by another thread).
    tid: Mutex<Option<libc::pid_t>>,
}

impl ShardBeat {
    /// The shard is alive and its timers fire.
    pub fn beat(&self) {
        self.beats.fetch_add(1, Ordering::Relaxed);
    }

    /// Called on the shard thread when its executor starts.
    pub fn register_current_thread(&self) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        *self.tid.lock().unwrap_or_else(|e| e.into_inner()) = Some(tid);
    }

    /// How many times the guard interrupted this shard.
    #[cfg(test)]
    pub fn kicks(&self) -> u64 {
        self.kicks.load(Ordering::Relaxed)
    }

    /// Called on the shard thread before its executor stops.
    pub fn deregister(&self) {
        *self.tid.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The shards' beats, shared with the guard thread; the guard exits once every holder of
/// the `Arc` (the runtime and its shards) is gone.
pub type Beats = Arc<Vec<ShardBeat>>;

/// Kicks sent since the process started (all runtimes), for tests and logs.
static KICKS: AtomicU64 = AtomicU64::new(0);

/// The syscall number the last kicked thread was blocked in (from
/// /proc/self/task/<tid>/syscall; -1 unknown): tells a sleep in `io_uring_enter` (426)
/// from, say, a futex wait (202). For logs and tests.
static LAST_KICK_SYSCALL: AtomicI64 = AtomicI64::new(-1);

pub fn last_kick_syscall() -> i64 {
    LAST_KICK_SYSCALL.load(Ordering::Relaxed)
}

pub fn kicks() -> u64 {
    KICKS.load(Ordering::Relaxed)
}

/// Creates the beats of `count` shards and starts the guard thread watching them.
pub fn start(count: u16) -> std::io::Result<Beats> {
    install_handler();
    let beats: Beats = Arc::new((0..count).map(|_| ShardBeat::default()).collect());
    let weak = Arc::downgrade(&beats);
    std::thread::Builder::new()
        .name("shard-stall-guard".into())
        .spawn(move || guard(weak))?;
    Ok(beats)
}

fn guard(beats: Weak<Vec<ShardBeat>>) {
    let mut last: Vec<u64> = Vec::new();
    let mut last_log: Option<Instant> = None;
    loop {
        std::thread::sleep(CHECK_PERIOD);
        let Some(beats) = beats.upgrade() else {
            return;
        };
        last.resize(beats.len(), u64::MAX);
        for (i, shard) in beats.iter().enumerate() {
            let now = shard.beats.load(Ordering::Relaxed);
            let stalled = now == last[i];
            last[i] = now;
            if stalled && kick(shard) {
                shard.kicks.fetch_add(1, Ordering::Relaxed);
                let total = KICKS.fetch_add(1, Ordering::Relaxed) + 1;
                if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    last_log = Some(Instant::now());
                    tracing::warn!(
                        shard = i,
                        kicks = total,
                        syscall = last_kick_syscall(),
                        "shard asleep through its due timers for {} ms; interrupted it",
                        CHECK_PERIOD.as_millis()
                    );
                }
            }
        }
    }
}

/// Signals the shard's thread if it is registered and asleep. Returns whether a signal was
/// sent. A shard that missed its beats while running or runnable (busy in a long task, or
/// descheduled on an overloaded machine) is left alone: only a sleeping executor can have
/// slept through its timer.
fn kick(shard: &ShardBeat) -> bool {
    let tid = shard.tid.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tid) = *tid else {
        return false;
    };
    if !is_sleeping(tid) {
        return false;
    }
    LAST_KICK_SYSCALL.store(blocked_syscall(tid).unwrap_or(-1), Ordering::Relaxed);
    // SAFETY: tgkill with our own pid and a tid that stays registered (so alive) while
    // the lock is held; the signal's handler does nothing.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, KICK_SIGNAL) };
    rc == 0
}

/// Whether the thread is in an interruptible sleep ('S' in /proc/self/task/<tid>/stat).
fn is_sleeping(tid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|stat| thread_state(&stat))
        == Some('S')
}

/// The number of the syscall a thread is blocked in (first field of
/// /proc/self/task/<tid>/syscall), if it is in one.
fn blocked_syscall(tid: libc::pid_t) -> Option<i64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The state letter of a /proc stat line: the first field after the command, which is in
/// parentheses and may itself contain spaces and parentheses. Pure.
fn thread_state(stat: &str) -> Option<char> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

extern "C" fn on_kick(_: libc::c_int) {}

/// Installs the no-op handler once per process, without SA_RESTART: the point is that
/// the sleeping `io_uring_enter` returns EINTR instead of being restarted.
fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask; the handler
        // is async-signal-safe (it does nothing).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = 0;
            let rc = libc::sigaction(KICK_SIGNAL, &action, std::ptr::null_mut());
            assert_eq!(rc, 0, "installing the stall guard's signal handler");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_state_parses_odd_command_names() {
        assert_eq!(thread_state("123 (shard-0) S 1 2 3"), Some('S'));
        assert_eq!(thread_state("123 (a) b) (c) R 1 2"), Some('R'));
        assert_eq!(thread_state("garbage"), None);
    }

    /// A registered thread that stops beating but keeps running is not interrupted.
    #[test]
    fn guard_leaves_a_busy_thread_alone() {
        let beats = start(1).unwrap();
        let b = beats.clone();
        std::thread::spawn(move || {
            b[0].register_current_thread();
            let t0 = Instant::now();
            while t0.elapsed() < CHECK_PERIOD * 6 {
                std::hint::spin_loop();
            }
            b[0].deregister();
        })
        .join()
        .unwrap();
        assert_eq!(beats[0].kicks(), 0);
    }

    /// A thread blocked in a syscall that a signal interrupts (here `pause`) is woken by
    /// the guard once it stops beating; while it beats, it is left alone.
    #[test]
    fn guard_interrupts_a_registered_thread_that_stops_beating() {
        let beats = start(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let b = beats.clone();
        let t = std::thread::spawn(move || {
            b[0].register_current_thread();
            // Beating: the guard must not interrupt this sleep loop (std::thread::sleep
            // would resume after EINTR anyway, so count kicks around it instead).
            for _ in 0..100 {
                b[0].beat();
                std::thread::sleep(CHECK_PERIOD / 5);
            }
            let during_beats = b[0].kicks();
            // Now stop beating and block until a signal arrives.
            // SAFETY: pause has no preconditions; it returns on any handled signal.
            let t0 = Instant::now();
            unsafe { libc::pause() };
            b[0].deregister();
            tx.send((during_beats, t0.elapsed())).unwrap();
        });
        let (during_beats, paused) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the guard interrupted the stalled thread");
        t.join().unwrap();
        assert_eq!(during_beats, 0, "kicked while beating");
        assert!(paused < Duration::from_secs(2), "woken after {paused:?}");
        assert!(beats[0].kicks() >= 1);
    }
}
