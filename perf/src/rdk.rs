//! The librdkafka driver (the `rdkafka` crate, librdkafka built from source with cmake): what
//! users actually run, for apples-to-apples comparisons. Same payload format as the native
//! driver (an 8-byte µs timestamp first), same counters and histograms.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::native::{all_partitions, assigned, precise_sleeps, ClientCtx};
use crate::stats::{wall_us, WorkerStats};
use crate::workload::{KeyMode, Subscription};

/// librdkafka's local queue bounds; when full, the producer waits (back-pressure, not loss).
/// Kept modest: at max rate, publish latency includes the time spent in this queue.
const QUEUE_MESSAGES_MAX: &str = "100000";
const QUEUE_KBYTES_MAX: &str = "65536";
const QUEUE_FULL_WAIT: Duration = Duration::from_micros(200);

pub struct Ctx {
    stats: Arc<WorkerStats>,
    start: Instant,
}

impl ClientContext for Ctx {}

/// The opaque carried with each message: intended send time (µs since `start`) and size.
pub struct Sent {
    at_us: u64,
    bytes: u64,
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Sent>;
    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        match result {
            Ok(_) => {
                let now = self.start.elapsed().as_micros() as u64;
                self.stats.add(1, sent.bytes);
                self.stats
                    .latency
                    .lock()
                    .unwrap()
                    .record(now.saturating_sub(sent.at_us), 1);
            }
            Err(_) => self.stats.error(1),
        }
    }
}

fn producer_config(ctx: &ClientCtx) -> ClientConfig {
    let w = &ctx.workload;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &ctx.bootstrap)
        .set("client.id", format!("riptide-perf-rdkafka-{}", ctx.index))
        .set(
            "acks",
            if w.acks == "all" {
                "-1"
            } else {
                w.acks.as_str()
            },
        )
        .set("linger.ms", w.linger_ms.to_string())
        .set("batch.size", w.batch_size_bytes.to_string())
        .set("compression.type", &w.compression)
        .set(
            "max.in.flight.requests.per.connection",
            w.max_in_flight.to_string(),
        )
        .set("enable.idempotence", "false")
        .set("queue.buffering.max.messages", QUEUE_MESSAGES_MAX)
        .set("queue.buffering.max.kbytes", QUEUE_KBYTES_MAX);
    c
}

pub fn run_producer(ctx: ClientCtx) -> Result<()> {
    ctx.pin_now();
    precise_sleeps();
    let w = ctx.workload.clone();
    let start = Instant::now();
    // Wall clock at `start`: payloads carry the time their message was due (as the native
    // driver's do), so end-to-end latency counts from the same moment as publish latency.
    let wall_start_us = wall_us();
    // The threaded producer polls on its own thread, so delivery reports (and so publish
    // latency) are timed as they arrive, not when this loop gets around to polling.
    let producer: ThreadedProducer<Ctx> = producer_config(&ctx)
        .create_with_context(Ctx {
            stats: ctx.stats.clone(),
            start,
        })
        .context("creating librdkafka producer")?;
    let mode = w.keys.mode()?;
    let (lo, hi) = w.message_size.bounds();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xfeed ^ ctx.index as u64);
    let mut payload: Vec<u8> = (0..hi).map(|_| rng.gen()).collect();
    let partitions = all_partitions(&ctx.layouts);
    let interval_us = if ctx.rate_msgs_per_s > 0.0 {
        1e6 / ctx.rate_msgs_per_s
    } else {
        0.0
    };
    let mut next_us = 0.0f64;
    let mut sent_bytes = 0u64;
    let mut n = 0u64;
    let mut key_buf = String::new();
    loop {
        let limit_reached = ctx.bytes_limit > 0 && sent_bytes >= ctx.bytes_limit;
        if ctx.stop.load(Ordering::Relaxed) || limit_reached {
            break;
        }
        let at_us = if interval_us > 0.0 {
            let now = start.elapsed().as_micros() as f64;
            if next_us > now {
                // Sleep, never spin: the client shares two cores with the broker.
                std::thread::sleep(Duration::from_micros((next_us - now) as u64));
            }
            let t = next_us as u64;
            next_us += interval_us;
            t
        } else {
            start.elapsed().as_micros() as u64
        };
        let size = if lo == hi { lo } else { rng.gen_range(lo..=hi) } as usize;
        payload[..8].copy_from_slice(&(wall_start_us + at_us).to_le_bytes());
        key_buf.clear();
        let key: Option<&[u8]> = match mode {
            KeyMode::None => None,
            KeyMode::Random => {
                key_buf.push_str(&format!("{:016x}", rng.gen::<u64>()));
                Some(key_buf.as_bytes())
            }
            KeyMode::Distinct(k) => {
                key_buf.push_str(&format!("key-{:012}", n % k));
                Some(key_buf.as_bytes())
            }
        };
        let bytes = (size + key.map_or(0, |k| k.len())) as u64;
        // Same placement rule as the native driver: key k to global partition k % total.
        let g = match mode {
            KeyMode::Distinct(k) => Some(((n % k) % partitions.len() as u64) as usize),
            _ => None,
        };
        let topic_index = g
            .map(|g| partitions[g].0)
            .unwrap_or((n % ctx.layouts.len() as u64) as usize);
        let topic = ctx.layouts[topic_index].topic.as_str();
        let mut sent = Box::new(Sent { at_us, bytes });
        loop {
            let mut rec = BaseRecord::with_opaque_to(topic, sent).payload(&payload[..size]);
            if let Some(k) = key {
                rec = rec.key(k);
            }
            if let Some(g) = g {
                rec = rec.partition(partitions[g].1);
            }
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rec)) => {
                    sent = rec.delivery_opaque;
                    std::thread::sleep(QUEUE_FULL_WAIT);
                }
                Err((e, _)) => {
                    ctx.stats.error(1);
                    return Err(e).context("librdkafka send");
                }
            }
        }
        sent_bytes += bytes;
        n += 1;
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing librdkafka producer")?;
    Ok(())
}

pub fn run_consumer(ctx: ClientCtx) -> Result<()> {
    ctx.pin_now();
    let w = &ctx.workload;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &ctx.bootstrap)
        .set("client.id", format!("riptide-perf-rdkafka-c{}", ctx.index))
        .set("group.id", format!("riptide-perf-{}", ctx.layouts[0].topic))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", w.fetch_max_wait_ms.to_string())
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = c.create().context("creating librdkafka consumer")?;
    match w.subscription {
        Subscription::Direct => {
            let partitions = all_partitions(&ctx.layouts);
            let mut tpl = TopicPartitionList::new();
            for g in assigned(partitions.len(), w.consumers, ctx.index) {
                let (t, p) = partitions[g];
                tpl.add_partition_offset(&ctx.layouts[t].topic, p, Offset::Beginning)?;
            }
            consumer.assign(&tpl)?;
        }
        Subscription::Group => {
            let topics: Vec<&str> = ctx.layouts.iter().map(|l| l.topic.as_str()).collect();
            consumer.subscribe(&topics)?;
        }
    }
    while !ctx.stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(_)) => ctx.stats.error(1),
            Some(Ok(m)) => {
                let now = wall_us();
                let value = m.payload().unwrap_or(&[]);
                let bytes = (value.len() + m.key().map_or(0, |k| k.len())) as u64;
                ctx.stats.add(1, bytes);
                if value.len() >= 8 {
                    let ts = u64::from_le_bytes(value[..8].try_into().unwrap());
                    ctx.stats
                        .latency
                        .lock()
                        .unwrap()
                        .record(now.saturating_sub(ts), 1);
                }
            }
        }
    }
    Ok(())
}
