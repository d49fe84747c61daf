//! The broker process: starts the shards, gives each its state, a listener and the
//! current cluster view, and shuts them down cleanly on SIGINT/SIGTERM.
//!
//! Per-shard state lives in a thread-local [`ShardState`]; handlers reach it with
//! [`state()`]. Partitions are opened on their home shard only.

pub mod settings;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;
use shards::partition::{OpenContext, Partition};
use shards::table::{PartitionEntry, PartitionTable, TableUpdate};
use shards::{ShardId, TopicPartition};
use tracing::{info, warn};

use crate::cluster::ClusterView;
pub use settings::BrokerSettings;

/// Appended but not yet written bytes per shard before producers are held back.
const IN_FLIGHT_BYTES_PER_SHARD: usize = 64 << 20;

/// Everything one shard owns or caches.
pub struct ShardState {
    pub id: ShardId,
    pub settings: Arc<BrokerSettings>,
    pub view: RefCell<Arc<ClusterView>>,
    pub table: RefCell<PartitionTable>,
    /// Partitions whose home is this shard.
    pub partitions: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
    /// Storage, clock and memory budgets every partition of this shard opens with.
    pub open_ctx: OpenContext,
    /// Views are installed one at a time: two concurrent installs would open the same
    /// partition twice (both writing its checkpoints).
    install_lock: glommio::sync::Semaphore,
}

thread_local! {
    static STATE: RefCell<Option<Rc<ShardState>>> = const { RefCell::new(None) };
}

/// This shard's state. Panics off a broker shard (a programming error).
pub fn state() -> Rc<ShardState> {
    STATE
        .with(|s| s.borrow().clone())
        .expect("broker state not initialised on this shard")
}

impl ShardState {
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    pub fn shard_of(&self, tp: &TopicPartition) -> Option<ShardId> {
        self.table.borrow().shard_of(tp)
    }

    pub fn local_partition(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.partitions.borrow().get(tp).cloned()
    }
}

/// Install a new cluster view on this shard: update the table, open partitions that are
/// now homed here, close the ones that left. Views older than the current are ignored.
pub async fn install_view(view: Arc<ClusterView>) {
    let st = state();
    let Ok(_permit) = st.install_lock.acquire_permit(1).await else {
        return;
    };
    if view.revision <= st.view.borrow().revision && st.view.borrow().revision >= 0 {
        return;
    }
    let mut updates = Vec::new();
    let mut wanted: HashMap<
        TopicPartition,
        (
            shards::TopicId,
            shards::LeaderEpoch,
            Arc<crate::cluster::TopicView>,
        ),
    > = HashMap::new();
    {
        let table = st.table.borrow();
        for topic in view.topics.values() {
            for p in &topic.partitions {
                let tp = TopicPartition::new(topic.name.clone(), p.index);
                let entry = PartitionEntry {
                    topic_id: topic.id,
                    recorded_shard: p.shard,
                };
                if table.get(&tp) != Some(&entry) {
                    updates.push(TableUpdate::Upsert {
                        tp: tp.clone(),
                        entry,
                    });
                }
                wanted.insert(tp, (topic.id, p.leader_epoch, topic.clone()));
            }
        }
        for (tp, _) in table.iter() {
            if !wanted.contains_key(tp) {
                updates.push(TableUpdate::Remove { tp: tp.clone() });
            }
        }
    }
    st.table.borrow_mut().apply(view.revision, &updates);
    let old_view = st.view.replace(view.clone());
    // Committed offsets of deleted topics go with them: removed before any request sees the
    // view, their tombstones durable before this install (and so DeleteTopics) completes.
    let offsets_cleaned = crate::coordinator::on_topics_deleted(deleted_topics(&old_view, &view));

    let owned = st.table.borrow().owned_by(st.id);
    for tp in owned {
        let open = st.partitions.borrow().get(&tp).cloned();
        if let Some(p) = open {
            // A topic config change (AlterConfigs) takes effect by reopening the log with
            // the new config: rare, and the log's recovery after a clean close is cheap.
            let Some((_, _, topic)) = wanted.get(&tp) else {
                continue;
            };
            if *p.log().config() == st.settings.log_config(&topic.configs) {
                let (before_ms, after_ms) = st.settings.timestamp_bounds(&topic.configs);
                p.set_timestamp_bounds(before_ms, after_ms);
                continue;
            }
            st.partitions.borrow_mut().remove(&tp);
            if let Err(e) = p.close().await {
                warn!(%tp, "closing partition for a config change: {e}");
            }
        }
        let Some((topic_id, epoch, topic)) = wanted.get(&tp).cloned() else {
            continue;
        };
        match open_partition(&st, &tp, topic_id, epoch, &topic).await {
            Ok(p) => {
                st.partitions.borrow_mut().insert(tp, p);
            }
            Err(e) => warn!(%tp, "cannot open partition: {e}"),
        }
    }
    let gone: Vec<TopicPartition> = st
        .partitions
        .borrow()
        .keys()
        .filter(|tp| !wanted.contains_key(*tp))
        .cloned()
        .collect();
    for tp in gone {
        let removed = st.partitions.borrow_mut().remove(&tp);
        if let Some(p) = removed {
            // The topic was deleted (or the partition moved to another shard, which needs
            // the files: only delete when the topic is gone from the view).
            let topic_gone = view.topic(&tp.topic).is_none_or(|t| t.id != p.topic_id);
            let result = if topic_gone {
                p.delete().await
            } else {
                p.close().await
            };
            if let Err(e) = result {
                warn!(%tp, "closing removed partition: {e}");
            }
        }
    }
    offsets_cleaned.await;
}

/// Topics of `old` that `new` no longer has (by name and id: a topic deleted and created
/// again under the same name between two views is deleted too).
fn deleted_topics(old: &ClusterView, new: &ClusterView) -> Vec<String> {
    old.topics
        .values()
        .filter(|t| new.topic(&t.name).is_none_or(|n| n.id != t.id))
        .map(|t| t.name.to_string())
        .collect()
}

async fn open_partition(
    st: &ShardState,
    tp: &TopicPartition,
    topic_id: shards::TopicId,
    epoch: shards::LeaderEpoch,
    topic: &crate::cluster::TopicView,
) -> crate::error::Result<Rc<Partition>> {
    let dir = st.settings.data_dir.join(tp.dir_name());
    let config = st.settings.log_config(&topic.configs);
    let p = Partition::open(tp.clone(), topic_id, dir, config, epoch, &st.open_ctx).await?;
    let (before_ms, after_ms) = st.settings.timestamp_bounds(&topic.configs);
    p.set_timestamp_bounds(before_ms, after_ms);
    Ok(p)
}

/// Run the broker until SIGINT/SIGTERM. Blocks the calling thread.
pub fn run(settings: BrokerSettings) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    info!(
        node_id = settings.node_id.0,
        shards = settings.shard_count,
        data_dir = %settings.data_dir.display(),
        tail_cache_mib_per_shard = settings.tail_cache_bytes_per_shard >> 20,
        "starting"
    );
    std::fs::create_dir_all(&settings.data_dir)?;
    // Held until the broker has stopped.
    let _data_dir_lock = lock_data_dir(&settings.data_dir)?;
    ensure_listener_free(settings.listen_addr)?;
    let runtime_config = shards::runtime::RuntimeConfig {
        shard_count: settings.shard_count,
        pin: settings.pin,
        ..Default::default()
    };
    let counter = Arc::new(crate::server::ConnectionCounter::default());
    let (stop_txs, stop_rxs): (Vec<_>, Vec<_>) = (0..settings.shard_count)
        .map(|_| oneshot::channel::<()>())
        .unzip();
    let stop_rxs = Arc::new(std::sync::Mutex::new(
        stop_rxs.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let s = settings.clone();
    let started = shards::runtime::Rendezvous::new(settings.shard_count as usize);
    let stopped = shards::runtime::Rendezvous::new(settings.shard_count as usize);
    // Shard 0 alone arrives, once the controller has installed the first view everywhere.
    let ready = shards::runtime::Rendezvous::new(1);
    let runtime = shards::runtime::Runtime::start(&runtime_config, move |id| {
        let settings = s.clone();
        let counter = counter.clone();
        let phases = (started.clone(), ready.clone(), stopped.clone());
        let stop = stop_rxs.lock().expect("stop list")[id.0 as usize]
            .take()
            .expect("one stop per shard");
        async move { shard_main(id, settings, counter, stop, phases).await }
    })?;
    wait_for_signal();
    info!("shutting down");
    for tx in stop_txs {
        let _ = tx.send(());
    }
    runtime.join()?;
    info!("stopped");
    Ok(())
}

/// Kafka's lock file in each log directory.
pub const DATA_DIR_LOCK_NAME: &str = ".lock";

/// Takes the data directory's lock (an exclusive `flock` on `.lock`, as Kafka does), so
/// that a second broker process started on the same directory — a copied config, a
/// restart before the old process is gone — exits instead of writing the same segments.
/// The lock lasts as long as the returned file is open.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    let path = dir.join(DATA_DIR_LOCK_NAME);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!(
            "failed to acquire lock on {} ({e}): another broker process is using data directory {}",
            path.display(),
            dir.display()
        );
    }
    Ok(file)
}

/// The shards' listeners share the port through SO_REUSEPORT, which would also let a
/// second broker process of the same user join the group and silently take a share of
/// the connections. So a listener already there is refused, as Kafka's failed bind is.
/// Found by connecting, not by a probe bind: a plain bind would also fail on the
/// connections the previous broker on this port left in TIME_WAIT (they are SO_REUSEPORT
/// sockets), a SO_REUSEPORT one would join the other broker's group.
fn ensure_listener_free(addr: SocketAddr) -> anyhow::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let target = match addr.ip() {
        ip if !ip.is_unspecified() => addr,
        std::net::IpAddr::V4(_) => SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port())),
        std::net::IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
    };
    // A broker that just died can leave its listener accepting for a moment: the kernel
    // releases the sockets its io_uring held only after the process is gone. Another
    // broker's listener stays.
    let deadline = std::time::Instant::now() + LISTENER_GONE_WAIT;
    loop {
        if std::net::TcpStream::connect_timeout(&target, LISTENER_PROBE_TIMEOUT).is_err() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "socket server failed to bind to {addr}: another process is listening there \
                 (it accepted connections to {target} for {LISTENER_GONE_WAIT:?})"
            );
        }
        std::thread::sleep(LISTENER_PROBE_INTERVAL);
    }
}

/// How long the start-up check waits for a connection to its own address (refused at
/// once when nothing listens on a local address).
const LISTENER_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a listener found on the broker's address may take to go away.
const LISTENER_GONE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const LISTENER_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

async fn shard_main(
    id: ShardId,
    settings: Arc<BrokerSettings>,
    counter: Arc<crate::server::ConnectionCounter>,
    stop: oneshot::Receiver<()>,
    (started, ready, stopped): (
        shards::runtime::Rendezvous,
        shards::runtime::Rendezvous,
        shards::runtime::Rendezvous,
    ),
) {
    let storage = match shards::storage::DmaStorage::init(&settings.data_dir).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "cannot use data directory {}: {e}",
                settings.data_dir.display()
            );
            std::process::exit(1);
        }
    };
    let open_ctx = OpenContext {
        storage,
        clock: Rc::new(shards::clock::SystemClock),
        budgets: shards::log::ShardBudgets::new(
            settings.tail_cache_bytes_per_shard,
            IN_FLIGHT_BYTES_PER_SHARD,
        ),
    };
    let st = Rc::new(ShardState {
        id,
        settings: settings.clone(),
        view: RefCell::new(Arc::new(ClusterView {
            revision: -1,
            ..Default::default()
        })),
        table: RefCell::new(PartitionTable::new(shards::runtime::shard_count())),
        partitions: RefCell::new(HashMap::new()),
        open_ctx,
        install_lock: glommio::sync::Semaphore::new(1),
    });
    STATE.with(|s| *s.borrow_mut() = Some(st.clone()));
    info!(shard = id.0, "shard up");
    // Every shard's state must exist before the controller installs the first view.
    started.arrive_and_wait().await;
    if id.0 == 0 {
        // The controller lives on shard 0: it loads metadata and pushes the first view
        // to every shard before any listener opens.
        if let Err(e) = crate::controller::start().await {
            tracing::error!("controller failed to start: {e}");
            std::process::exit(1);
        }
        ready.arrive();
    }
    shards::runtime::spawn_background(maintenance(settings.clone()));
    if id.0 == 0 {
        shards::runtime::spawn_background(return_free_memory());
    }
    // No listener before every shard has installed the first view and opened (recovered)
    // its partitions: a client must never be told that an existing topic or partition is
    // unknown because it connected during start-up.
    ready.wait().await;
    let addr: SocketAddr = settings.listen_addr;
    let handler = Rc::new(crate::api::Api::default());
    let stop = async move {
        let _ = stop.await;
    };
    if let Err(e) =
        crate::server::serve(addr, handler, settings.server_limits(), counter, stop).await
    {
        tracing::error!(%addr, "listener failed: {e}");
        std::process::exit(1);
    }
    // Clean shutdown. Every shard first stops its listener and connections; only then are
    // partitions closed, so no request is half-served by a closing partition.
    stopped.arrive_and_wait().await;
    // Close every local partition (flush, checkpoints, clean marker).
    let parts: Vec<_> = st.partitions.borrow_mut().drain().collect();
    for (tp, p) in parts {
        if let Err(e) = p.close().await {
            warn!(%tp, "close failed: {e}");
        }
    }
    if id.0 == 0 {
        crate::controller::shutdown();
    }
    // STATE stays set: the executor drops (never polls) whatever tasks remain.
}

/// Wait for SIGINT or SIGTERM. Works because `block_shutdown_signals` blocked both before
/// any shard thread existed, so no other thread consumes them.
/// How often producer state is snapshotted and expired producers are dropped.
const PRODUCER_SNAPSHOT_INTERVAL_MS: u64 = 30_000;

/// Background upkeep of this shard's partitions, on the background task queue: retention
/// every `log.retention.check.interval.ms`, producer-state snapshots and expiry every
/// 30 s. Runs until the shard stops (the task is dropped with the executor).
/// Every `MALLOC_TRIM_INTERVAL_MS`, hands the allocator's free pages back to the kernel
/// (`malloc_trim`: all arenas, free pages inside the heaps too, not only at their tops).
/// Large produce frames live in allocations of their own (`server::read_frame`), freed
/// when their batches leave the tail cache; glibc keeps such freed memory mapped, and
/// under a librdkafka produce load with 1 MB batches the broker's RSS settled near twice
/// its tail-cache budget (1.06 GiB vs 0.55 GiB with 256 MiB per shard) — memory that no
/// budget accounts for.
/// With this, RSS stays at the budget, for about 3% of CPU at that load (BENCHMARKS.md).
/// Only after `MALLOC_TRIM_FRAME_BYTES_MIN` of such frames: a load of small requests never
/// pays a trim (and the page faults of re-touching what it gave back).
async fn return_free_memory() {
    let mut trimmed_at = 0;
    loop {
        glommio::timer::sleep(std::time::Duration::from_millis(MALLOC_TRIM_INTERVAL_MS)).await;
        let owned = crate::server::owned_frame_bytes();
        if owned - trimmed_at < MALLOC_TRIM_FRAME_BYTES_MIN {
            continue;
        }
        trimmed_at = owned;
        // SAFETY: malloc_trim only takes the allocator's own locks.
        unsafe { libc::malloc_trim(0) };
    }
}

const MALLOC_TRIM_INTERVAL_MS: u64 = 1000;
const MALLOC_TRIM_FRAME_BYTES_MIN: u64 = 64 << 20;

async fn maintenance(settings: Arc<BrokerSettings>) {
    let retention_every_ms = settings.config.log_retention_check_interval_ms().max(1) as u64;
    let expiration_ms = settings.config.producer_id_expiration_ms();
    let tick_ms = retention_every_ms.min(PRODUCER_SNAPSHOT_INTERVAL_MS);
    let mut since_retention_ms = 0u64;
    loop {
        glommio::timer::sleep(std::time::Duration::from_millis(tick_ms)).await;
        since_retention_ms += tick_ms;
        let run_retention = since_retention_ms >= retention_every_ms;
        if run_retention {
            since_retention_ms = 0;
        }
        let partitions: Vec<Rc<Partition>> =
            state().partitions.borrow().values().cloned().collect();
        for p in partitions {
            if run_retention {
                if let Err(e) = p.log().enforce_retention().await {
                    warn!(tp = %p.tp, "retention failed: {e}");
                }
            }
            p.expire_producers(expiration_ms);
            if let Err(e) = p.snapshot_producers().await {
                warn!(tp = %p.tp, "producer snapshot failed: {e}");
            }
        }
    }
}

fn wait_for_signal() {
    // SAFETY: sigwait on a properly initialised set of signals blocked in every thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let mut sig: libc::c_int = 0;
        libc::sigwait(&set, &mut sig);
    }
}

/// Block SIGINT and SIGTERM in the calling thread; threads spawned afterwards inherit the
/// mask, so only [`run`]'s `sigwait` receives them. Call first thing in `main`.
pub fn block_shutdown_signals() {
    // SAFETY: manipulating this thread's signal mask with a properly initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
