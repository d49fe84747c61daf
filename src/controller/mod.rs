//! The controller: the single writer of cluster metadata, on shard 0. Every change
//! (create/delete topics, partitions, configs, producer-id blocks) runs here, in order,
//! becomes a new [`ClusterView`] and is installed on every shard before the call returns.
//!
//! Other shards reach it with [`call`], which forwards a closure to shard 0.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use shards::{LeaderEpoch, ShardId, TopicId};

use crate::broker::state;
use crate::cluster::{BrokerView, ClusterView, PartitionView, TopicView};
use crate::error::{Error, Result};

/// The shard the controller runs on.
pub const CONTROLLER_SHARD: ShardId = ShardId(0);

/// Kafka's limit on topic name length.
const TOPIC_NAME_LEN_MAX: usize = 249;

struct Controller {
    view: ClusterView,
    next_producer_id: i64,
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

/// Load metadata and install the first view on every shard. Called on shard 0 at start.
pub async fn start() -> Result<()> {
    let st = state();
    let s = &st.settings;
    let view = ClusterView {
        revision: 0,
        cluster_id: "riptide-cluster".into(),
        controller_id: s.node_id,
        brokers: vec![BrokerView {
            node_id: s.node_id,
            host: s.advertised_host.clone(),
            port: s.advertised_port,
            rack: None,
        }],
        ..Default::default()
    };
    CONTROLLER.with(|c| {
        *c.borrow_mut() = Some(Rc::new(RefCell::new(Controller {
            view: view.clone(),
            next_producer_id: 0,
        })))
    });
    publish(view).await
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

/// What CreateTopics asks for one topic, defaults already resolved.
#[derive(Clone, Debug)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// Kafka's topic-name rule: 1..=249 of [a-zA-Z0-9._-], not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidTopic(name.to_string(), why.to_string()));
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > TOPIC_NAME_LEN_MAX {
        return bad("longer than 249 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return bad("only ASCII alphanumerics, '.', '_' and '-' are allowed");
    }
    Ok(())
}

fn check_spec(view: &ClusterView, spec: &TopicSpec) -> Result<()> {
    validate_topic_name(&spec.name)?;
    check_topic_configs(&spec.configs)?;
    if view.topics.contains_key(spec.name.as_str()) {
        return Err(Error::TopicExists(spec.name.clone()));
    }
    if spec.partitions < 1 || spec.partitions > 100_000 {
        return Err(Error::InvalidPartitions(format!(
            "{} partitions",
            spec.partitions
        )));
    }
    if spec.replication_factor < 1 || spec.replication_factor as usize > view.brokers.len() {
        return Err(Error::InvalidReplicationFactor(format!(
            "replication factor {} larger than the {} available broker(s)",
            spec.replication_factor,
            view.brokers.len()
        )));
    }
    Ok(())
}

/// Create topics (or only validate them). Results in request order.
pub async fn create_topics(
    specs: Vec<TopicSpec>,
    validate_only: bool,
) -> Result<Vec<Result<TopicId>>> {
    call(move || async move {
        let c = controller();
        let mut results = Vec::with_capacity(specs.len());
        let mut view = c.borrow().view.clone();
        let mut changed = false;
        for spec in &specs {
            let r = check_spec(&view, spec).map(|_| {
                let id = TopicId(uuid::Uuid::new_v4());
                if !validate_only {
                    add_topic(&mut view, spec, id);
                    changed = true;
                }
                id
            });
            results.push(r);
        }
        if changed {
            view.revision += 1;
            c.borrow_mut().view = view.clone();
            publish(view).await?;
        }
        Ok(results)
    })
    .await?
}

fn add_topic(view: &mut ClusterView, spec: &TopicSpec, id: TopicId) {
    let mut table = shards::table::PartitionTable::new(shards::runtime::shard_count());
    table.apply(0, &current_placement(view));
    let shards_for = table.place(spec.partitions as usize);
    let node = view.controller_id;
    let name: Arc<str> = spec.name.as_str().into();
    let partitions = (0..spec.partitions)
        .map(|i| PartitionView {
            index: i,
            leader: node,
            leader_epoch: LeaderEpoch(0),
            replicas: vec![node],
            isr: vec![node],
            shard: shards_for[i as usize],
        })
        .collect();
    let topic = TopicView {
        name: name.clone(),
        id,
        internal: name.starts_with("__"),
        partitions,
        configs: spec.configs.clone(),
    };
    view.topic_names_by_id.insert(id.0, name.clone());
    view.topics.insert(name, Arc::new(topic));
}

/// Allocate one producer id (blocks of ids come later from the metadata log).
pub async fn allocate_producer_id() -> Result<i64> {
    call(|| async {
        let c = controller();
        let mut c = c.borrow_mut();
        let id = c.next_producer_id;
        c.next_producer_id += 1;
        id
    })
    .await
}

/// An unknown or invalid topic config is INVALID_CONFIG, as in Kafka.
pub fn check_topic_configs(configs: &BTreeMap<String, String>) -> Result<()> {
    let st = state();
    let topic = crate::config::TopicConfig::from_entries(
        configs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .map_err(|e| Error::InvalidConfig(e.to_string()))?;
    topic
        .validate_with(&st.settings.config)
        .map_err(|e| Error::InvalidConfig(e.to_string()))
}

/// Run one change on the controller: `change` edits a copy of the view; a successful edit
/// becomes the next revision and is installed on every shard before this returns.
async fn change<R, F>(change: F) -> Result<R>
where
    R: Send + 'static,
    F: FnOnce(&mut ClusterView) -> Result<(R, bool)> + Send + 'static,
{
    call(move || async move {
        let c = controller();
        let mut view = c.borrow().view.clone();
        let (result, changed) = change(&mut view)?;
        if changed {
            view.revision += 1;
            c.borrow_mut().view = view.clone();
            publish(view).await?;
        }
        Ok(result)
    })
    .await?
}

/// Delete topics by name; results in request order.
pub async fn delete_topics(names: Vec<String>) -> Result<Vec<Result<TopicId>>> {
    change(move |view| {
        let mut changed = false;
        let results = names
            .iter()
            .map(|name| match view.topics.remove(name.as_str()) {
                Some(t) => {
                    view.topic_names_by_id.remove(&t.id.0);
                    changed = true;
                    Ok(t.id)
                }
                None => Err(Error::UnknownTopicOrPartition(name.clone())),
            })
            .collect();
        Ok((results, changed))
    })
    .await
}

/// Grow a topic to `count` partitions (Kafka never shrinks one).
pub async fn create_partitions(
    requests: Vec<(String, i32)>,
    validate_only: bool,
) -> Result<Vec<Result<()>>> {
    change(move |view| {
        let mut changed = false;
        let mut results = Vec::with_capacity(requests.len());
        for (name, count) in &requests {
            let r = grow_topic(view, name, *count, validate_only);
            changed |= r.is_ok() && !validate_only;
            results.push(r);
        }
        Ok((results, changed))
    })
    .await
}

fn grow_topic(view: &mut ClusterView, name: &str, count: i32, validate_only: bool) -> Result<()> {
    let topic = view
        .topics
        .get(name)
        .ok_or_else(|| Error::UnknownTopicOrPartition(name.to_string()))?
        .clone();
    let current = topic.partitions.len() as i32;
    if count <= current {
        return Err(Error::InvalidPartitions(format!(
            "topic {name} has {current} partitions; the new count {count} must be larger"
        )));
    }
    if count > 100_000 {
        return Err(Error::InvalidPartitions(format!("{count} partitions")));
    }
    if validate_only {
        return Ok(());
    }
    let mut table = shards::table::PartitionTable::new(shards::runtime::shard_count());
    table.apply(0, &current_placement(view));
    let placed = table.place((count - current) as usize);
    let node = view.controller_id;
    let mut t = (*topic).clone();
    for (i, shard) in (current..count).zip(placed) {
        t.partitions.push(PartitionView {
            index: i,
            leader: node,
            leader_epoch: LeaderEpoch(0),
            replicas: vec![node],
            isr: vec![node],
            shard,
        });
    }
    view.topics.insert(t.name.clone(), Arc::new(t));
    Ok(())
}

fn current_placement(view: &ClusterView) -> Vec<shards::table::TableUpdate> {
    view.topics
        .values()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| shards::table::TableUpdate::Upsert {
                    tp: shards::TopicPartition::new(t.name.clone(), p.index),
                    entry: shards::table::PartitionEntry {
                        topic_id: t.id,
                        recorded_shard: p.shard,
                    },
                })
        })
        .collect()
}

/// Replace a topic's overrides with `configs` (validated by the caller).
pub async fn set_topic_configs(name: String, configs: BTreeMap<String, String>) -> Result<()> {
    change(move |view| {
        let topic = view
            .topics
            .get(name.as_str())
            .ok_or_else(|| Error::UnknownTopicOrPartition(name.clone()))?;
        let mut t = (**topic).clone();
        t.configs = configs;
        view.topics.insert(t.name.clone(), Arc::new(t));
        Ok(((), true))
    })
    .await
}
