//! Listeners and connections. Each shard binds the client port (SO_REUSEPORT, set by
//! glommio) and serves the connections the kernel hands it.
//!
//! A connection is two tasks: the reader decodes requests and runs each handler's first
//! stage *in order* (so requests take effect in the order they were sent: idempotent
//! producers with 5 in flight depend on it) — a stage that runs on other shards is sent
//! through the connection's `Lane`, which keeps that order there without the reader
//! waiting for it; the writer awaits each reply's second stage (durability, long-poll)
//! in the same order and writes it with one vectored send. The queue between them is
//! bounded by `max_in_flight`, so a client that never reads its responses stops being
//! read from.

mod writev;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::AsyncReadExt;
use glommio::channels::local_channel;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::{Semaphore, StaticPermit};
use tracing::{debug, info, warn};

/// What a handler gives back for one request.
pub enum Reply {
    /// Response frame pieces (size prefix included), ready to write.
    Ready(Vec<Bytes>),
    /// The response is known only later (durability, long-poll); the request's effects
    /// are already ordered.
    Deferred(Pin<Box<dyn Future<Output = Vec<Bytes>>>>),
    /// No response is sent (Produce with acks=0).
    Nothing,
    /// Close the connection (e.g. an undecodable request header).
    Close,
}

/// The request handler the server calls, one frame (without size prefix) at a time.
pub trait Handler: 'static {
    fn handle(self: &Rc<Self>, conn: &Rc<ConnInfo>, frame: Bytes) -> impl Future<Output = Reply>;
}

/// Per-connection facts and state a handler may need.
pub struct ConnInfo {
    pub peer: Option<SocketAddr>,
    pub id: u64,
    /// The connection's ordered way to run request stages on other shards without waiting
    /// for them (a produce's appends): see `shards::runtime::Lane`. A handler whose
    /// request must see the effects of earlier ones drains it first.
    pub lane: shards::runtime::Lane,
}

impl ConnInfo {
    /// `in_flight_max` requests may be unanswered at once, each with a stage on every
    /// shard at most: the lane's bound is a backstop that never holds a client back.
    pub fn new(peer: Option<SocketAddr>, id: u64, in_flight_max: usize) -> ConnInfo {
        let jobs_max = (in_flight_max + 1) * shards::runtime::shard_count() as usize;
        ConnInfo {
            peer,
            id,
            lane: shards::runtime::Lane::new(jobs_max),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// socket.request.max.bytes
    pub request_bytes_max: usize,
    /// max.connections (per broker, over all shards)
    pub connections_max: usize,
    /// connections.max.idle.ms
    pub idle_ms_max: u64,
    /// Requests read but not yet answered, per connection.
    pub in_flight_max: usize,
    /// Bytes of request frames being read or handled at once, per shard (Kafka's
    /// `queued.max.request.bytes`, bounded here): a flood of large requests waits instead
    /// of exhausting memory.
    pub request_memory_bytes_max: usize,
}

/// Frames below this size do not take from the request memory budget: they are bounded by
/// the per-connection read buffer already.
const FRAME_BYTES_UNBUDGETED_MAX: usize = 64 * 1024;

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            request_bytes_max: 104_857_600,
            connections_max: usize::MAX,
            idle_ms_max: 600_000,
            in_flight_max: 16,
            request_memory_bytes_max: 256 << 20,
        }
    }
}

/// Shared across shards: the live connection count behind `max.connections`.
#[derive(Debug, Default)]
pub struct ConnectionCounter(AtomicUsize);

/// Accept connections on `addr` until `stop` resolves.
pub async fn serve<H: Handler>(
    addr: SocketAddr,
    handler: Rc<H>,
    limits: ServerLimits,
    counter: Arc<ConnectionCounter>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    info!(%addr, shard = %shards::runtime::shard_id(), "listening");
    let next_id = Rc::new(Cell::new(0u64));
    let total_bytes = limits
        .request_memory_bytes_max
        .max(limits.request_bytes_max) as u64;
    let budget = Rc::new(RequestBudget {
        semaphore: Rc::new(Semaphore::new(total_bytes)),
        total_bytes,
    });
    // Live connection tasks, cancelled when the listener stops (clean shutdown).
    let live: Rc<RefCell<HashMap<u64, glommio::task::JoinHandle<()>>>> = Rc::default();
    let accept_loop = async {
        loop {
            let stream = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warn!("accept failed: {e}");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let count = counter.0.fetch_add(1, Ordering::Relaxed) + 1;
            if count > limits.connections_max {
                counter.0.fetch_sub(1, Ordering::Relaxed);
                debug!(
                    "refusing connection: max.connections {} reached",
                    limits.connections_max
                );
                drop(stream);
                continue;
            }
            let id = next_id.get();
            next_id.set(id + 1);
            let handler = handler.clone();
            let limits = limits.clone();
            let counter = counter.clone();
            let registry = live.clone();
            let budget = budget.clone();
            let task = glommio::spawn_local(async move {
                let peer = stream.peer_addr().ok();
                let conn = Rc::new(ConnInfo::new(peer, id, limits.in_flight_max));
                if let Err(e) = serve_connection(stream, handler, conn, &limits, &budget).await {
                    debug!("connection closed: {e}");
                }
                counter.0.fetch_sub(1, Ordering::Relaxed);
                registry.borrow_mut().remove(&id);
            })
            .detach();
            live.borrow_mut().insert(id, task);
        }
    };
    futures::pin_mut!(accept_loop);
    let stop = std::pin::pin!(stop);
    futures::future::select(accept_loop, stop).await;
    let open: Vec<_> = live.borrow_mut().drain().collect();
    for (_, task) in open {
        task.cancel();
        counter.0.fetch_sub(1, Ordering::Relaxed);
    }
    Ok(())
}

async fn serve_connection<H: Handler>(
    stream: TcpStream,
    handler: Rc<H>,
    conn: Rc<ConnInfo>,
    limits: &ServerLimits,
    budget: &RequestBudget,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    if limits.idle_ms_max > 0 {
        stream.set_read_timeout(Some(Duration::from_millis(limits.idle_ms_max)))?;
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let (mut reader, writer) = stream.split();
    // Each reply travels with its request's memory permit: a produce's first stage may
    // still be running on another shard (`ConnInfo::lane`) when the handler returns, so
    // the frame's bytes count against the budget until the response is written.
    let (tx, rx) =
        local_channel::new_bounded::<(Reply, Option<StaticPermit>)>(limits.in_flight_max.max(1));
    let write_task = glommio::spawn_local(write_replies(fd, writer, rx));
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let read_result: std::io::Result<()> = async {
        loop {
            let (frame, permit) = match read_frame(
                &mut reader,
                Some(fd),
                &mut buf,
                limits.request_bytes_max,
                budget,
            )
            .await?
            {
                Some(f) => f,
                None => return Ok(()),
            };
            let reply = handler.handle(&conn, frame).await;
            let close = matches!(reply, Reply::Close);
            if tx.send((reply, permit)).await.is_err() || close {
                return Ok(());
            }
        }
    }
    .await;
    // Let the writer drain what was accepted before closing.
    drop(tx);
    let write_result = write_task.await;
    read_result.and(write_result)
}

/// Writes the connection's replies in request order. Replies that are already complete
/// when one is about to be written go out with it in one `sendmsg` (several produce
/// acknowledgements made durable by the same write, say): one system call, and one
/// wake-up of the client's reader instead of one per response.
async fn write_replies<W: futures::AsyncWrite + Unpin>(
    fd: RawFd,
    mut writer: W,
    rx: local_channel::LocalReceiver<(Reply, Option<StaticPermit>)>,
) -> std::io::Result<()> {
    let mut next: Option<(Reply, Option<StaticPermit>)> = None;
    loop {
        let Some((reply, permit)) = (match next.take() {
            Some(r) => Some(r),
            None => rx.recv().await,
        }) else {
            return Ok(());
        };
        // Most requests are small and hold no permit: no allocation for them.
        let mut permits: Vec<StaticPermit> = permit.into_iter().collect();
        let mut pieces = match reply {
            Reply::Ready(p) => p,
            Reply::Deferred(f) => f.await,
            Reply::Nothing => continue,
            Reply::Close => return Ok(()),
        };
        let mut close = pieces.is_empty();
        // Gather the replies that are complete already, up to one sendmsg's worth of pieces.
        while !close && pieces.len() < writev::IOV_MAX {
            let Some(Some((reply, permit))) = futures_lite::future::poll_once(rx.recv()).await
            else {
                break;
            };
            let more = match reply {
                Reply::Ready(p) => p,
                Reply::Deferred(mut f) => match futures_lite::future::poll_once(&mut f).await {
                    Some(p) => p,
                    None => {
                        // Not complete: written after this batch, in order.
                        next = Some((Reply::Deferred(f), permit));
                        break;
                    }
                },
                Reply::Nothing => continue,
                Reply::Close => {
                    close = true;
                    break;
                }
            };
            permits.extend(permit);
            close = more.is_empty();
            pieces.extend(more);
        }
        if !pieces.is_empty() {
            writev::write_all(fd, &mut writer, pieces).await?;
        }
        // The requests' memory is released once their responses are written.
        drop(permits);
        if close {
            return Ok(());
        }
    }
}

/// Read one size-prefixed frame. `Ok(None)` on a clean end of stream between frames.
/// The declared size is checked against the limit before anything is reserved; a large
/// frame first takes its size from the shard's request memory budget (the permit comes
/// back with the frame and is held while the request is handled).
async fn read_frame<R: futures::AsyncRead + Unpin>(
    reader: &mut R,
    fd: Option<RawFd>,
    buf: &mut BytesMut,
    request_bytes_max: usize,
    budget: &RequestBudget,
) -> std::io::Result<Option<(Bytes, Option<StaticPermit>)>> {
    let mut permit = None;
    // `(start, end)`: bytes `[buf.len(), end)` of the allocation whose data starts at
    // `start` were zeroed by an earlier pass of this loop and not read into: a large frame arrives in many
    // reads, and zeroing its whole remainder before each one cost 1.4% of a producing
    // broker's CPU.
    let mut zeroed: Option<(*const u8, usize)> = None;
    loop {
        // The size (prefix included) of the frame being read, once known, if it is large.
        let mut large_total = None;
        if buf.len() >= 4 {
            let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            if size < 0 || size as usize > request_bytes_max {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("request size {size} outside 0..={request_bytes_max}"),
                ));
            }
            let total = 4 + size as usize;
            let large = size as usize > FRAME_BYTES_OWNED_MIN;
            if permit.is_none() && size as usize > FRAME_BYTES_UNBUDGETED_MAX {
                // Never ask for more than the whole budget: that would wait forever.
                let units = (size as u64).min(budget.total_bytes);
                let p = budget.semaphore.acquire_static_permit(units).await;
                permit = Some(p.map_err(|e| std::io::Error::other(e.to_string()))?);
            }
            if buf.len() >= total {
                buf.advance(4);
                let frame = buf.split_to(size as usize);
                if buf.is_empty() && large {
                    // The frame keeps its allocation alone, so a produce handler can take
                    // its batches back as mutable buffers and patch them in place instead
                    // of copying them (`produce::reclaim_batches`).
                    *buf = BytesMut::new();
                    OWNED_FRAME_BYTES.fetch_add(size as u64, Ordering::Relaxed);
                }
                return Ok(Some((frame.freeze(), permit)));
            }
            // Room for the rest of this frame at once: reads then fill it in large steps.
            // A large frame gets exactly its size (it leaves in an allocation of its own),
            // a small one room for the frames after it as well.
            let need = total - buf.len();
            if buf.capacity() - buf.len() < need {
                buf.reserve(if large {
                    need
                } else {
                    need.max(READ_CHUNK_BYTES)
                });
            }
            large_total = large.then_some(total);
        } else if buf.capacity() < PREFIX_BUF_BYTES_MAX {
            // Fresh after a large frame left with the allocation: read little more than the
            // size prefix first (in as many reads as it takes), so the next large frame's
            // allocation is sized exactly and never grown (a grown one is a copy of what
            // was read so far).
            buf.reserve(4 - buf.len());
        } else if buf.capacity() - buf.len() < READ_CHUNK_BYTES_MIN {
            buf.reserve(READ_CHUNK_BYTES);
        }
        let len = buf.len();
        // Zero (initialise) only the part this read may fill, never the whole reservation.
        // A large frame's reads stop at its end: the next frame's first bytes would share
        // (and pin) its allocation.
        let chunk = (buf.capacity() - len)
            .min(large_total.map_or(usize::MAX, |total| total - len))
            .clamp(1, READ_CHUNK_BYTES_MAX);
        // Straight into uninitialised memory only inside a large frame: small requests
        // (a latency load's) park in glommio's read at once, as they always did, without
        // a failed `recv` of our own first.
        let large = large_total.is_some();
        let received = fd
            .filter(|_| large)
            .map(|fd| recv_into_spare(fd, buf, chunk));
        let n = match received {
            Some(Ok(n)) => n,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Some(Err(e)) if e.kind() != std::io::ErrorKind::WouldBlock => return Err(e),
            _ => {
                // Nothing to read yet, a small frame, or no descriptor: glommio's read, which
                // also keeps the idle timeout. Its buffer must be initialised: with a
                // descriptor, a small window (the rest follows through `recv_into_spare`).
                let chunk = if fd.is_some() && large {
                    chunk.min(PARKED_READ_BYTES)
                } else {
                    chunk
                };
                if let Some((ptr, end)) = zeroed {
                    if ptr == buf.as_ptr() && end > len {
                        // SAFETY: same allocation, same start (a reallocation or a move of
                        // the data would change `as_ptr`), so bytes `len..end` are the ones
                        // an earlier pass initialised with `resize` and only truncated
                        // away; `end` was within the capacity then and the capacity has
                        // not shrunk since.
                        unsafe { buf.set_len(end.min(len + chunk)) };
                    }
                }
                buf.resize(len + chunk, 0);
                zeroed = Some((buf.as_ptr(), len + chunk));
                let n = match reader.read(&mut buf[len..]).await {
                    Ok(n) => n,
                    Err(e) => {
                        buf.truncate(len);
                        return Err(e);
                    }
                };
                buf.truncate(len + n);
                n
            }
        };
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed mid-frame",
                ))
            };
        }
    }
}

/// One non-blocking `recv` of at most `len` bytes into `buf`'s spare capacity, which need
/// not be initialised (zeroing every received byte first cost 2–4% of a producing
/// broker's CPU): the kernel writes the bytes, and only those become part of `buf`.
fn recv_into_spare(fd: RawFd, buf: &mut BytesMut, len: usize) -> std::io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let len = len.min(spare.len());
    // SAFETY: `spare` is valid for writes of `len` bytes; recv writes at most that many.
    let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), len, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    assert!(n <= len, "recv returned more than asked");
    // SAFETY: the kernel initialised the first `n` spare bytes.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// A read buffer smaller than this holds at most a size prefix being read (see `read_frame`).
const PREFIX_BUF_BYTES_MAX: usize = 16;

/// The window of a read that parks in glommio until the socket is readable.
const PARKED_READ_BYTES: usize = 4096;

/// Bytes of frames that left `read_frame` in allocations of their own, on all shards:
/// what the allocator may keep mapped after they are freed (`broker::return_free_memory`).
static OWNED_FRAME_BYTES: AtomicU64 = AtomicU64::new(0);

pub fn owned_frame_bytes() -> u64 {
    OWNED_FRAME_BYTES.load(Ordering::Relaxed)
}

/// Frames larger than this are read into an allocation of their own (see `read_frame`).
const FRAME_BYTES_OWNED_MIN: usize = 16 * 1024;

/// Read sizes: small frames arrive in 64 KiB reads; a large frame's body in up to 1 MiB.
const READ_CHUNK_BYTES: usize = 64 * 1024;
const READ_CHUNK_BYTES_MIN: usize = 16 * 1024;
const READ_CHUNK_BYTES_MAX: usize = 1 << 20;

/// The per-shard request memory budget.
struct RequestBudget {
    semaphore: Rc<Semaphore>,
    total_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// Hands out its bytes in reads of random sizes, as a socket does.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        rng: Rng,
    }

    impl futures::AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            out: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let left = self.bytes.len() - self.at;
            let n = (self.rng.range(1, 70_001) as usize)
                .min(left)
                .min(out.len());
            let at = self.at;
            out[..n].copy_from_slice(&self.bytes[at..at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(n))
        }
    }

    /// Over a real socket (reads into uninitialised spare capacity, parking in glommio
    /// when the socket is empty): frames of every size class come back whole, in order,
    /// and large ones after a large one in an exact allocation of their own.
    #[test]
    fn frames_over_a_socket_come_back_whole() {
        glommio::LocalExecutor::default().run(async {
            let mut rng = Rng(21);
            // Mixed sizes, then a producer's stream of large frames.
            let sizes: Vec<usize> = (0..120)
                .map(|i| match i % 3 {
                    0 if i < 60 => rng.range(0, 3000) as usize,
                    _ => rng.range(FRAME_BYTES_OWNED_MIN as u64 + 1, 600_000) as usize,
                })
                .collect();
            let wire = frames_wire(&sizes, 3);
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let writer = glommio::spawn_local(async move {
                use futures::AsyncWriteExt;
                let mut s = TcpStream::connect(addr).await.unwrap();
                let mut rng = Rng(22);
                let mut at = 0;
                while at < wire.len() {
                    let n = (rng.range(1, 200_000) as usize).min(wire.len() - at);
                    s.write_all(&wire[at..at + n]).await.unwrap();
                    at += n;
                    if rng.range(0, 4) == 0 {
                        // Let the reader find the socket empty and park.
                        glommio::timer::sleep(Duration::from_micros(300)).await;
                    }
                }
            })
            .detach();
            let stream = listener.accept().await.unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
            let (mut reader, _w) = stream.split();
            read_back(&mut reader, Some(fd), &sizes, 3, |i, n, frame| {
                if i >= 62 {
                    assert_owned_exactly(i, n, frame);
                }
            })
            .await;
            writer.await;
        });
    }

    /// Replies are written in request order whether they are ready at once, complete
    /// later, or complete already when gathered with an earlier one; `Nothing` writes
    /// nothing, and `Close` ends the connection after everything before it.
    #[test]
    fn replies_go_out_in_request_order_until_close() {
        glommio::LocalExecutor::default().run(async {
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = glommio::spawn_local(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                got
            });
            let stream = listener.accept().await.unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
            let (reader, writer) = stream.split();
            drop(reader);
            let (tx, rx) = local_channel::new_bounded::<(Reply, Option<StaticPermit>)>(16);
            let ready = |s: &'static str| Reply::Ready(vec![Bytes::from_static(s.as_bytes())]);
            let later = |s: &'static str, ms: u64| {
                Reply::Deferred(Box::pin(async move {
                    glommio::timer::sleep(Duration::from_millis(ms)).await;
                    vec![Bytes::from_static(s.as_bytes())]
                }))
            };
            let done = |s: &'static str| {
                Reply::Deferred(Box::pin(std::future::ready(vec![Bytes::from_static(
                    s.as_bytes(),
                )])))
            };
            let replies = vec![
                ready("a"),
                later("b", 5),
                ready("c"),
                done("d"),
                Reply::Nothing,
                later("e", 1),
                ready("f"),
                Reply::Close,
                ready("never"),
            ];
            for r in replies {
                assert!(tx.send((r, None)).await.is_ok());
            }
            write_replies(fd, writer, rx).await.unwrap();
            drop(tx);
            assert_eq!(client.await, b"abcdef");
        });
    }

    /// A producer's stream of large frames: after the first, each frame comes back alone
    /// in an allocation of its own size (nothing of the next frame read into it, never
    /// grown), so a produce handler can take its batches back without a copy.
    #[test]
    fn large_frames_after_a_large_frame_own_an_exact_allocation() {
        glommio::LocalExecutor::default().run(async {
            let mut rng = Rng(11);
            let sizes: Vec<usize> = (0..60)
                .map(|_| rng.range(FRAME_BYTES_OWNED_MIN as u64 + 1, 1_500_000) as usize)
                .collect();
            read_trickled(&sizes, 7, 12, |i, n, frame| {
                if i > 0 {
                    assert_owned_exactly(i, n, frame);
                }
            })
            .await;
        });
    }

    /// Size-prefixed frames of `sizes`; byte `j` of frame `i` is `i * salt + j`.
    fn frames_wire(sizes: &[usize], salt: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            wire.extend_from_slice(&(n as i32).to_be_bytes());
            wire.extend((0..n).map(|j| (i * salt + j) as u8));
        }
        wire
    }

    /// Whether `frame` is frame `i` of `frames_wire(.., salt)`, whole.
    fn frame_is(frame: &[u8], i: usize, n: usize, salt: usize) -> bool {
        frame.len() == n
            && frame
                .iter()
                .enumerate()
                .all(|(j, &b)| b == (i * salt + j) as u8)
    }

    /// Reads `frames_wire(sizes, salt)` back through `read_frame` in reads of random
    /// sizes (see `read_back`).
    async fn read_trickled(
        sizes: &[usize],
        salt: usize,
        seed: u64,
        check: impl FnMut(usize, usize, Bytes),
    ) {
        let mut reader = Trickle {
            bytes: frames_wire(sizes, salt),
            at: 0,
            rng: Rng(seed),
        };
        read_back(&mut reader, None, sizes, salt, check).await;
    }

    /// Reads frames `sizes` of `frames_wire(.., salt)` from `reader`: each must come back
    /// whole and in order (then goes to `check`), and the stream must end cleanly after
    /// the last.
    async fn read_back<R: futures::AsyncRead + Unpin>(
        reader: &mut R,
        fd: Option<RawFd>,
        sizes: &[usize],
        salt: usize,
        mut check: impl FnMut(usize, usize, Bytes),
    ) {
        let budget = test_budget();
        let mut buf = BytesMut::with_capacity(64 * 1024);
        for (i, &n) in sizes.iter().enumerate() {
            let (frame, _permit) = read_frame(reader, fd, &mut buf, 4 << 20, &budget)
                .await
                .unwrap()
                .expect("a frame");
            assert!(frame_is(&frame, i, n, salt), "frame {i}");
            check(i, n, frame);
        }
        assert!(read_frame(reader, fd, &mut buf, 4 << 20, &budget)
            .await
            .unwrap()
            .is_none());
    }

    /// Frame `i` (of `n` bytes) is alone in an allocation of its size.
    fn assert_owned_exactly(i: usize, n: usize, frame: Bytes) {
        let owned = frame.try_into_mut();
        assert!(
            owned.is_ok(),
            "frame {i} of {n} bytes shares its allocation"
        );
        let spare = owned.unwrap().capacity() - n;
        assert!(spare <= 8, "frame {i} of {n} bytes: {spare} spare bytes");
    }

    fn test_budget() -> RequestBudget {
        RequestBudget {
            semaphore: Rc::new(Semaphore::new(1 << 30)),
            total_bytes: 1 << 30,
        }
    }

    /// Frames of every size class come back whole and in order, whatever the read sizes
    /// (the zeroed-region bookkeeping must never expose stale bytes as a frame's).
    #[test]
    fn frames_come_back_whole_in_order() {
        glommio::LocalExecutor::default().run(async {
            let mut rng = Rng(7);
            let sizes: Vec<usize> = (0..200)
                .map(|i| match i % 4 {
                    0 => rng.range(0, 100) as usize,
                    1 => rng.range(100, 70_000) as usize,
                    2 => rng.range(64 * 1024, 400_000) as usize,
                    _ => rng.range(1, 2_000_000) as usize,
                })
                .collect();
            read_trickled(&sizes, 1, 8, |_, _, _| {}).await;
        });
    }
}
