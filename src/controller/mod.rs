//! The controller: the single writer of cluster metadata, on shard 0. Every change
//! (create/delete topics, partitions, configs, producer-id blocks) runs here, in order,
//! through the [`MetadataStore`] (typed records in the local metadata log, fsync'd before
//! the change is visible), becomes a new [`ClusterView`], and is installed on every shard
//! before the call returns.
//!
//! Other shards reach it with [`call`], which forwards a closure to shard 0. The store does
//! synchronous file I/O; metadata changes are rare and small, so shard 0 pays a few
//! milliseconds per change rather than the code paying a second I/O path.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use shards::{ShardId, TopicId};

use crate::broker::state;
use crate::cluster::{BrokerView, ClusterView, PartitionView, TopicView};
use crate::error::{Error, Result};
use crate::metadata::log::MetadataLogOptions;
use crate::metadata::record::BrokerEndpoint;
use crate::metadata::store::{AlterConfigOp, CreatedTopic, MetadataStore, NewTopic};

/// The shard the controller runs on.
pub const CONTROLLER_SHARD: ShardId = ShardId(0);

/// Producer ids taken from the metadata log at a time.
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

struct Controller {
    store: MetadataStore,
    /// The unused part of the current producer-id block: `[next, end)`.
    producer_id_next: i64,
    producer_id_end: i64,
}

thread_local! {
    static CONTROLLER: RefCell<Option<Rc<RefCell<Controller>>>> = const { RefCell::new(None) };
}

fn controller() -> Rc<RefCell<Controller>> {
    CONTROLLER
        .with(|c| c.borrow().clone())
        .expect("controller runs on shard 0")
}

/// Run `f` on the controller shard.
pub async fn call<R, F, Fut>(f: F) -> Result<R>
where
    R: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    Ok(shards::runtime::invoke_on(CONTROLLER_SHARD, f).await?)
}

/// Open the metadata store (formatting the data directory on first start), register this
/// broker, place partitions recorded without a shard, and install the first view on every
/// shard. Called on shard 0 before any listener opens.
pub async fn start() -> Result<()> {
    let st = state();
    let s = &st.settings;
    let mut store = MetadataStore::open(&s.data_dir, s.node_id, MetadataLogOptions::default())?;
    let endpoint = BrokerEndpoint {
        name: "PLAINTEXT".into(),
        host: s.advertised_host.clone(),
        port: s.advertised_port as u16,
        security_protocol: 0,
    };
    store.register_broker(uuid::Uuid::new_v4(), vec![endpoint], None)?;
    store.place_unplaced(shards::runtime::shard_count())?;
    tracing::info!(
        cluster_id = store.cluster_id(),
        topics = store.image().topic_count(),
        "metadata loaded"
    );
    let view = build_view(&store);
    CONTROLLER.with(|c| {
        *c.borrow_mut() = Some(Rc::new(RefCell::new(Controller {
            store,
            producer_id_next: 0,
            producer_id_end: 0,
        })))
    });
    publish(view).await
}

/// Snapshot the metadata on clean shutdown so the next start replays nothing.
pub fn shutdown() {
    if let Some(c) = CONTROLLER.with(|c| c.borrow().clone()) {
        if let Err(e) = c.borrow_mut().store.snapshot() {
            tracing::warn!("metadata snapshot at shutdown failed: {e}");
        }
    }
}

async fn publish(view: ClusterView) -> Result<()> {
    let view = Arc::new(view);
    shards::runtime::invoke_on_all(move || {
        let view = view.clone();
        async move { crate::broker::install_view(view).await }
    })
    .await?;
    Ok(())
}

/// The immutable view every shard reads, built from the metadata image.
fn build_view(store: &MetadataStore) -> ClusterView {
    let image = store.image();
    let mut view = ClusterView {
        revision: store.next_offset() as i64,
        cluster_id: store.cluster_id().to_string(),
        controller_id: store.node_id(),
        ..Default::default()
    };
    for b in image.brokers().filter(|b| !b.fenced) {
        if let Some(l) = b.listeners.first() {
            view.brokers.push(BrokerView {
                node_id: b.id,
                host: l.host.clone(),
                port: l.port as i32,
                rack: b.rack.clone(),
            });
        }
    }
    for t in image.topics() {
        let name: Arc<str> = t.name.as_str().into();
        let partitions = t
            .partitions
            .iter()
            .map(|(index, p)| PartitionView {
                index: *index,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                shard: p.shard.unwrap_or(ShardId(0)),
            })
            .collect();
        let configs: BTreeMap<String, String> = image
            .topic_config(&t.name)
            .overrides()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let topic = TopicView {
            name: name.clone(),
            id: t.id,
            internal: t.name.starts_with("__"),
            partitions,
            configs,
        };
        view.topic_names_by_id.insert(t.id.0, name.clone());
        view.topics.insert(name, Arc::new(topic));
    }
    view
}

/// Run one change against the store on the controller shard; when it changed the
/// metadata, install the new view everywhere before returning.
async fn change<R, F>(f: F) -> Result<R>
where
    R: Send + 'static,
    F: FnOnce(&mut MetadataStore) -> R + Send + 'static,
{
    call(move || async move {
        let c = controller();
        let before = c.borrow().store.next_offset();
        let result = f(&mut c.borrow_mut().store);
        let view = {
            let c = c.borrow();
            (c.store.next_offset() != before).then(|| build_view(&c.store))
        };
        if let Some(view) = view {
            publish(view).await?;
        }
        Ok(result)
    })
    .await?
}

/// Create topics (or only validate them). Results in request order.
pub async fn create_topics(
    specs: Vec<NewTopic>,
    validate_only: bool,
) -> Result<Vec<Result<CreatedTopic>>> {
    change(move |store| {
        let st = state();
        let shard_count = shards::runtime::shard_count();
        specs
            .iter()
            .map(|spec| {
                store
                    .create_topic(spec, &st.settings.config, shard_count, validate_only)
                    .map_err(Error::from)
            })
            .collect()
    })
    .await
}

/// Delete topics by name or id; results in request order.
pub async fn delete_topics(
    asks: Vec<(Option<String>, TopicId)>,
) -> Result<Vec<Result<(String, TopicId)>>> {
    change(move |store| {
        asks.iter()
            .map(|(name, id)| {
                let removed = match name {
                    Some(n) => store.delete_topic(n),
                    None => store.delete_topic_by_id(*id),
                };
                removed.map(|t| (t.name, t.id)).map_err(Error::from)
            })
            .collect()
    })
    .await
}

/// Grow topics to the given partition counts (Kafka never shrinks one).
pub async fn create_partitions(
    asks: Vec<(String, i32)>,
    validate_only: bool,
) -> Result<Vec<Result<()>>> {
    change(move |store| {
        let shard_count = shards::runtime::shard_count();
        asks.iter()
            .map(|(name, total)| {
                store
                    .create_partitions(name, *total, None, shard_count, validate_only)
                    .map(|_| ())
                    .map_err(Error::from)
            })
            .collect()
    })
    .await
}

/// AlterConfigs for a topic: `entries` replace its whole override set.
pub async fn alter_topic_configs(
    name: String,
    entries: Vec<(String, Option<String>)>,
    validate_only: bool,
) -> Result<()> {
    change(move |store| {
        let st = state();
        store
            .alter_topic_configs(&name, &entries, &st.settings.config, validate_only)
            .map(|_| ())
            .map_err(Error::from)
    })
    .await?
}

/// IncrementalAlterConfigs for a topic.
pub async fn incremental_alter_topic_configs(
    name: String,
    ops: Vec<AlterConfigOp>,
    validate_only: bool,
) -> Result<()> {
    change(move |store| {
        let st = state();
        store
            .incremental_alter_topic_configs(&name, &ops, &st.settings.config, validate_only)
            .map(|_| ())
            .map_err(Error::from)
    })
    .await?
}

/// One producer id for a non-transactional producer. Ids come from blocks recorded in the
/// metadata log, so they stay unique across restarts (and, later, across brokers).
pub async fn allocate_producer_id() -> Result<i64> {
    call(|| async {
        let c = controller();
        let mut c = c.borrow_mut();
        if c.producer_id_next >= c.producer_id_end {
            let block = c.store.allocate_producer_id_block(PRODUCER_ID_BLOCK_SIZE)?;
            c.producer_id_next = block.first_id;
            c.producer_id_end = block.first_id + block.size;
        }
        let id = c.producer_id_next;
        c.producer_id_next += 1;
        Ok(id)
    })
    .await?
}
