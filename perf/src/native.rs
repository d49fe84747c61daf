//! The lean native load generator: std threads, blocking sockets, pipelined Produce requests
//! carrying pre-built RecordBatch v2 batches, and a Fetch consumer with direct assignment.
//!
//! Produce uses a non-flexible version (3..=8) so that the records are the last bytes of a
//! one-partition request: the request header is encoded by `kafka-protocol` with empty
//! records, then the batch is appended and the two lengths patched. Per send that is one small
//! encode, one memcpy and one write; per response one decode.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rand::{Rng, SeedableRng};

use crate::batch::{self, BatchTemplate, RecordSpec};
use crate::stats::{wall_us, WorkerStats};
use crate::wire::{self, Conn, TopicLayout};
use crate::workload::{KeyMode, Workload};

/// Distinct pre-built batches per partition, so sizes and keys vary between sends (one when
/// there are many partitions, to bound memory).
fn templates_per_partition(partitions: usize) -> usize {
    if partitions > 100 {
        1
    } else {
        4
    }
}
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// A broker that sends nothing for this long on a connection with requests outstanding is
/// declared stuck (the Produce timeout plus a margin), so a run never hangs on it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(40);
const FETCH_BYTES_MAX: i32 = 64 * 1024 * 1024;
const FETCH_PARTITION_BYTES_MAX: i32 = 8 * 1024 * 1024;
const ERROR_OFFSET_OUT_OF_RANGE: i16 = 1;

/// Everything one client thread needs.
#[derive(Clone)]
pub struct ClientCtx {
    pub workload: Arc<Workload>,
    pub layouts: Arc<Vec<TopicLayout>>,
    pub bootstrap: String,
    /// The target's name in the report (e.g. `riptide`, `tansu`).
    pub target_name: String,
    pub index: u32,
    pub stats: Arc<WorkerStats>,
    pub stop: Arc<AtomicBool>,
    pub pin: Option<core_affinity::CoreId>,
    /// Messages per second for this producer; 0 = unthrottled.
    pub rate_msgs_per_s: f64,
    /// Stop after sending this many payload bytes (backlog fill); 0 = no limit.
    pub bytes_limit: u64,
    pub verify_crc: bool,
}

impl ClientCtx {
    pub fn pin_now(&self) {
        if let Some(core) = self.pin {
            core_affinity::set_for_current(core);
        }
    }
}

/// Timer slack of 1 ns for the calling thread (Linux's default is 50 µs): a rate-limited
/// producer sleeps until each message is due, and latency counts from that due time, so
/// the kernel's licence to wake it up to 50 µs late would be charged to the broker.
pub fn precise_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// (topic index, partition) for every partition of every topic, in order.
pub fn all_partitions(layouts: &[TopicLayout]) -> Vec<(usize, i32)> {
    layouts
        .iter()
        .enumerate()
        .flat_map(|(t, l)| (0..l.leaders.len() as i32).map(move |p| (t, p)))
        .collect()
}

/// Records per batch: filled to `batch_size_bytes`, but when throttled, no more than the
/// producer would gather in `linger_ms` (so linger 0 at a fixed rate sends single records).
pub fn records_per_batch(w: &Workload, rate_msgs_per_s: f64) -> u32 {
    let by_size = ((w.batch_size_bytes as f64 / w.message_size.mean()) as u32).max(1);
    if rate_msgs_per_s > 0.0 {
        let by_linger = ((rate_msgs_per_s * w.linger_ms as f64 / 1000.0) as u32).max(1);
        by_size.min(by_linger)
    } else {
        by_size
    }
}

/// Keys that belong to global partition `g` of `total`: key k goes to partition k % total.
fn key_for(mode: KeyMode, g: usize, total: usize, j: u64, rng: &mut impl Rng) -> Option<Vec<u8>> {
    match mode {
        KeyMode::None => None,
        KeyMode::Random => Some(format!("{:016x}", rng.gen::<u64>()).into_bytes()),
        KeyMode::Distinct(n) => {
            // Keys g, g + total, g + 2·total, … below n; the caller only asks for reachable g.
            let (g, total) = (g as u64, total as u64);
            assert!(g < n, "partition {g} has no key among {n}");
            let count = (n - g).div_ceil(total);
            Some(format!("key-{:012}", g + (j % count) * total).into_bytes())
        }
    }
}

/// Partitions this workload's keys can reach (with N distinct keys < partitions, some get none).
pub fn reachable(mode: KeyMode, total: usize) -> Vec<usize> {
    match mode {
        KeyMode::Distinct(n) if (n as usize) < total => (0..n as usize).collect(),
        _ => (0..total).collect(),
    }
}

pub fn build_templates(w: &Workload, records: u32, seed: u64) -> Result<Vec<Vec<BatchTemplate>>> {
    let mode = w.keys.mode()?;
    let total = w.partitions_total() as usize;
    let (lo, hi) = w.message_size.bounds();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let filler: Vec<u8> = (0..hi).map(|_| rng.gen()).collect();
    let reach = reachable(mode, total);
    let mut out = Vec::with_capacity(total);
    for g in 0..total {
        if !reach.contains(&g) {
            out.push(Vec::new()); // never sent to: no key maps here
            continue;
        }
        let pool_size = templates_per_partition(total);
        let mut pool = Vec::with_capacity(pool_size);
        for t in 0..pool_size {
            let specs: Vec<RecordSpec> = (0..records)
                .map(|i| RecordSpec {
                    key: key_for(
                        mode,
                        g,
                        total,
                        (t as u64) * records as u64 + i as u64,
                        &mut rng,
                    ),
                    value_len: rng.gen_range(lo..=hi) as usize,
                })
                .collect();
            pool.push(batch::build(&specs, &filler));
        }
        out.push(pool);
    }
    Ok(out)
}

/// Batch sizes (records) a throttled producer may send: powers of two up to `max`, and `max`.
/// When the producer falls behind its schedule it sends the overdue records together, as a
/// real client accumulates records while it waits.
pub fn batch_sizes(max: u32) -> Vec<u32> {
    let mut sizes: Vec<u32> = (0..32)
        .map(|i| 1u32 << i)
        .take_while(|&s| s < max)
        .collect();
    sizes.push(max.max(1));
    sizes
}

/// Index of the largest size <= `due` (at least the smallest).
pub fn pick_size(sizes: &[u32], due: u64) -> usize {
    sizes.iter().rposition(|&s| s as u64 <= due).unwrap_or(0)
}

struct InFlight {
    correlation_id: i32,
    sent: Instant,
    records: u32,
    payload_bytes: u64,
}

struct ProducerConn {
    stream: TcpStream,
    in_flight: std::sync::mpsc::SyncSender<InFlight>,
    reader: thread::JoinHandle<Result<()>>,
    correlation_id: i32,
}

fn open_producer_conn(addr: &str, ctx: &ClientCtx, version: i16) -> Result<ProducerConn> {
    let conn = Conn::connect(addr)?;
    let read_stream = conn.stream.try_clone()?;
    read_stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
    let (tx, rx) = sync_channel::<InFlight>(ctx.workload.max_in_flight as usize);
    let stats = ctx.stats.clone();
    let pin = ctx.pin;
    let reader = thread::Builder::new()
        .name(format!("perf-ack-{}", ctx.index))
        .spawn(move || {
            if let Some(core) = pin {
                core_affinity::set_for_current(core);
            }
            read_acks(read_stream, rx, version, &stats)
        })?;
    Ok(ProducerConn {
        stream: conn.stream,
        in_flight: tx,
        reader,
        correlation_id: 0,
    })
}

/// Matches responses to requests in order (Kafka answers a connection's requests in order).
fn read_acks(
    mut stream: TcpStream,
    rx: Receiver<InFlight>,
    version: i16,
    stats: &WorkerStats,
) -> Result<()> {
    while let Ok(inf) = rx.recv() {
        let frame = match wire::read_frame(&mut stream) {
            Ok(f) => f,
            Err(e) => {
                stats.error(inf.records as u64);
                return Err(e.context(format!(
                    "waiting for the response to correlation id {}",
                    inf.correlation_id
                )));
            }
        };
        let resp = wire::decode_response::<ProduceRequest>(frame, version, inf.correlation_id)?;
        let failed = resp
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .any(|p| p.error_code != 0);
        if failed {
            stats.error(inf.records as u64);
            continue;
        }
        let latency_us = inf.sent.elapsed().as_micros() as u64;
        stats.add(inf.records as u64, inf.payload_bytes);
        stats
            .latency
            .lock()
            .unwrap()
            .record(latency_us, inf.records as u64);
    }
    Ok(())
}

/// Encodes a one-partition Produce request (v3..=8) whose records are `batch`.
fn encode_produce(
    buf: &mut BytesMut,
    version: i16,
    correlation_id: i32,
    acks: i16,
    topic: &TopicName,
    partition: i32,
    batch: &[u8],
) -> Result<()> {
    let mut pd = PartitionProduceData::default();
    pd.index = partition;
    pd.records = Some(Bytes::new());
    let mut td = TopicProduceData::default();
    td.name = topic.clone();
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = PRODUCE_TIMEOUT_MS;
    req.topic_data = vec![td];
    wire::encode_request(buf, version, correlation_id, &req)?;
    // Non-flexible versions end with the records' i32 length: patch it, append the batch.
    let n = buf.len();
    ensure!(
        buf[n - 4..] == [0, 0, 0, 0],
        "unexpected Produce encoding tail"
    );
    buf[n - 4..].copy_from_slice(&(batch.len() as i32).to_be_bytes());
    buf.extend_from_slice(batch);
    let frame_len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&frame_len.to_be_bytes());
    Ok(())
}

pub fn run_producer(ctx: ClientCtx) -> Result<()> {
    ctx.pin_now();
    precise_sleeps();
    let w = ctx.workload.clone();
    ensure!(
        w.compression == "none",
        "the native driver sends uncompressed batches; use --driver rdkafka for compression"
    );
    let acks = w.acks_i16()?;
    let boot = Conn::connect(&ctx.bootstrap)?;
    let version = wire::pick_version(&boot.versions, ApiKey::Produce, 3, 8)?;
    drop(boot.stream.shutdown(std::net::Shutdown::Both));
    // Throttled: send `target` records per batch (linger), or more when behind, up to the
    // batch size. Unthrottled: always full batches.
    let throttled = ctx.rate_msgs_per_s > 0.0;
    let target = records_per_batch(&w, ctx.rate_msgs_per_s);
    let max_records = records_per_batch(&w, 0.0);
    let sizes = if throttled {
        batch_sizes(max_records)
    } else {
        vec![max_records]
    };
    let mut templates: Vec<Vec<Vec<BatchTemplate>>> = sizes
        .iter()
        .map(|&k| build_templates(&w, k, 0x5eed ^ ((ctx.index as u64) << 32) ^ k as u64))
        .collect::<Result<_>>()?;
    let partitions = all_partitions(&ctx.layouts);
    let targets = reachable(w.keys.mode()?, partitions.len());
    let pool_size = templates_per_partition(partitions.len());
    let topic_names: Vec<TopicName> = ctx
        .layouts
        .iter()
        .map(|l| TopicName(StrBytes::from_string(l.topic.clone())))
        .collect();
    let mut conns: HashMap<i32, ProducerConn> = HashMap::new();
    let mut buf = BytesMut::with_capacity(w.batch_size_bytes as usize * 2);
    let per_record_s = if throttled {
        1.0 / ctx.rate_msgs_per_s
    } else {
        0.0
    };
    let start = Instant::now();
    // Wall clock at `start`, so intended send times can be stamped into payloads.
    let wall_start_us = wall_us();
    let mut next_send = start;
    let mut sent_bytes = 0u64;
    let mut n: u64 = ctx.index as u64; // stagger producers across partitions
    let result: Result<()> = (|| {
        while !ctx.stop.load(Ordering::Relaxed) {
            if ctx.bytes_limit > 0 && sent_bytes >= ctx.bytes_limit {
                break;
            }
            let (intended, size_index) = if throttled {
                // Wait until `target` records are due, then send all that are due (bounded).
                let ready = next_send + Duration::from_secs_f64(per_record_s * (target - 1) as f64);
                let now = Instant::now();
                if ready > now {
                    thread::sleep(ready - now);
                }
                let late_s = Instant::now()
                    .saturating_duration_since(next_send)
                    .as_secs_f64();
                let due = 1 + (late_s / per_record_s) as u64;
                let i = pick_size(&sizes, due);
                let t = next_send;
                next_send += Duration::from_secs_f64(per_record_s * sizes[i] as f64);
                // Latency counts from when the batch's first record was due, not from when
                // it went out (no coordinated omission).
                (t, i)
            } else {
                (Instant::now(), 0)
            };
            let g = targets[(n % targets.len() as u64) as usize];
            let (t, p) = partitions[g];
            let leader = ctx.layouts[t].leaders[p as usize];
            let conn = match conns.entry(leader) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let addr = wire::broker_addr(&ctx.layouts[t], leader)?;
                    e.insert(open_producer_conn(&addr, &ctx, version)?)
                }
            };
            let tpl =
                &mut templates[size_index][g][((n / targets.len() as u64) as usize) % pool_size];
            tpl.stamp(wall_start_us + intended.saturating_duration_since(start).as_micros() as u64);
            conn.correlation_id = conn.correlation_id.wrapping_add(1);
            encode_produce(
                &mut buf,
                version,
                conn.correlation_id,
                acks,
                &topic_names[t],
                p,
                &tpl.bytes,
            )?;
            if acks != 0 {
                let inf = InFlight {
                    correlation_id: conn.correlation_id,
                    sent: intended,
                    records: tpl.records,
                    payload_bytes: tpl.payload_bytes,
                };
                conn.in_flight
                    .send(inf)
                    .map_err(|_| anyhow::anyhow!("ack reader stopped"))?;
            }
            conn.stream.write_all(&buf).context("writing Produce")?;
            if acks == 0 {
                ctx.stats.add(tpl.records as u64, tpl.payload_bytes);
            }
            sent_bytes += tpl.payload_bytes;
            n += 1;
        }
        Ok(())
    })();
    // Closing the channel lets each reader drain its outstanding acks and exit. A reader's
    // error is the cause of any writer error ("ack reader stopped"), so it is reported first.
    let mut reader_err = None;
    for (leader, c) in conns {
        drop(c.in_flight);
        let e = match c.reader.join() {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.context(format!("reading Produce responses from broker {leader}")),
            Err(_) => anyhow::anyhow!("ack reader for broker {leader} panicked"),
        };
        reader_err.get_or_insert(e);
    }
    match (reader_err, result) {
        (Some(e), _) => Err(e),
        (None, r) => r,
    }
}

/// Partitions consumer `index` of `consumers` reads: g % consumers == index.
pub fn assigned(total: usize, consumers: u32, index: u32) -> Vec<usize> {
    (0..total)
        .filter(|g| *g as u32 % consumers == index)
        .collect()
}

pub fn run_consumer(ctx: ClientCtx) -> Result<()> {
    ctx.pin_now();
    let partitions = all_partitions(&ctx.layouts);
    let mine = assigned(partitions.len(), ctx.workload.consumers, ctx.index);
    // Group my partitions by leader; one connection per leader, fetched in turn.
    let mut by_leader: HashMap<i32, Vec<usize>> = HashMap::new();
    for &g in &mine {
        let (t, p) = partitions[g];
        by_leader
            .entry(ctx.layouts[t].leaders[p as usize])
            .or_default()
            .push(g);
    }
    let mut conns = Vec::new();
    for (leader, gs) in by_leader {
        let (t, _) = partitions[gs[0]];
        let conn = Conn::connect(&wire::broker_addr(&ctx.layouts[t], leader)?)?;
        let wait = Duration::from_millis(ctx.workload.fetch_max_wait_ms as u64);
        conn.stream
            .set_read_timeout(Some(RESPONSE_TIMEOUT + wait))?;
        let version = wire::pick_version(&conn.versions, ApiKey::Fetch, 4, 12)?;
        conns.push((conn, version, gs));
    }
    let index_of: HashMap<(usize, i32), usize> = partitions
        .iter()
        .enumerate()
        .map(|(g, &tp)| (tp, g))
        .collect();
    let mut offsets = vec![0i64; partitions.len()];
    while !ctx.stop.load(Ordering::Relaxed) {
        for (conn, version, gs) in conns.iter_mut() {
            let req = fetch_request(
                &ctx.layouts,
                &partitions,
                gs,
                &offsets,
                ctx.workload.fetch_max_wait_ms,
            );
            let resp = conn.call(*version, &req)?;
            ensure!(resp.error_code == 0, "Fetch error {}", resp.error_code);
            let now_us = wall_us();
            for topic in &resp.responses {
                let t = ctx
                    .layouts
                    .iter()
                    .position(|l| l.topic == topic.topic.0.as_str())
                    .context("Fetch response names an unknown topic")?;
                for pd in &topic.partitions {
                    let g = *index_of
                        .get(&(t, pd.partition_index))
                        .context("Fetch response names an unknown partition")?;
                    if pd.error_code != 0 {
                        ctx.stats.error(1);
                        if pd.error_code == ERROR_OFFSET_OUT_OF_RANGE {
                            bail!(
                                "offset {} out of range on partition {}",
                                offsets[g],
                                pd.partition_index
                            );
                        }
                        continue;
                    }
                    let Some(records) = &pd.records else { continue };
                    consume_records(records, &mut offsets[g], now_us, ctx.verify_crc, &ctx.stats)?;
                }
            }
        }
    }
    Ok(())
}

fn fetch_request(
    layouts: &[TopicLayout],
    partitions: &[(usize, i32)],
    gs: &[usize],
    offsets: &[i64],
    max_wait_ms: u32,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for &g in gs {
        let (t, p) = partitions[g];
        let name = &layouts[t].topic;
        if topics
            .last()
            .map(|ft| ft.topic.0.as_str() != name.as_str())
            .unwrap_or(true)
        {
            let mut ft = FetchTopic::default();
            ft.topic = TopicName(StrBytes::from_string(name.clone()));
            topics.push(ft);
        }
        let mut fp = FetchPartition::default();
        fp.partition = p;
        fp.fetch_offset = offsets[g];
        fp.current_leader_epoch = -1;
        fp.last_fetched_epoch = -1;
        fp.log_start_offset = -1;
        fp.partition_max_bytes = FETCH_PARTITION_BYTES_MAX;
        topics.last_mut().unwrap().partitions.push(fp);
    }
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = max_wait_ms as i32;
    req.min_bytes = 1;
    req.max_bytes = FETCH_BYTES_MAX;
    req.isolation_level = 0;
    req.session_id = 0;
    req.session_epoch = -1;
    req.topics = topics;
    req
}

/// Counts the records at or past `offset`, advances it, and records end-to-end latency.
pub fn consume_records(
    records: &[u8],
    offset: &mut i64,
    now_us: u64,
    verify_crc: bool,
    stats: &WorkerStats,
) -> Result<()> {
    let mut msgs = 0u64;
    let mut bytes = 0u64;
    let mut samples: Vec<(u64, u64)> = Vec::new();
    batch::parse_batches(records, verify_crc, |b| {
        if b.last_offset < *offset {
            return; // a batch the broker returned from before our position
        }
        let n = if b.base_offset >= *offset {
            b.records as u64
        } else {
            (b.last_offset - *offset + 1) as u64
        };
        msgs += n;
        bytes += if n == b.records as u64 {
            b.payload_bytes
        } else {
            b.payload_bytes * n / b.records.max(1) as u64
        };
        if let Some(ts) = b.first_value_timestamp_us {
            samples.push((now_us.saturating_sub(ts), n));
        }
        *offset = b.last_offset + 1;
    })?;
    if msgs > 0 {
        stats.add(msgs, bytes);
        let mut h = stats.latency.lock().unwrap();
        for (lat, n) in samples {
            h.record(lat, n);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::parse;
    use kafka_protocol::protocol::Decodable;

    fn workload(extra: &[&str]) -> Workload {
        let base = "name = \"t\"\npartitions_per_topic = 4\nmessage_size = 1000\nduration_s = 1\n";
        parse(
            base,
            &extra.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn batch_sizing_follows_size_and_linger() {
        let w = workload(&["batch_size_bytes=65536", "linger_ms=5"]);
        assert_eq!(records_per_batch(&w, 0.0), 65);
        assert_eq!(records_per_batch(&w, 5000.0), 25);
        let w0 = workload(&["batch_size_bytes=65536", "linger_ms=0"]);
        assert_eq!(records_per_batch(&w0, 5000.0), 1);
        assert_eq!(batch_sizes(65), vec![1, 2, 4, 8, 16, 32, 64, 65]);
        assert_eq!(batch_sizes(1), vec![1]);
        let sizes = batch_sizes(65);
        assert_eq!(sizes[pick_size(&sizes, 0)], 1);
        assert_eq!(sizes[pick_size(&sizes, 1)], 1);
        assert_eq!(sizes[pick_size(&sizes, 5)], 4);
        assert_eq!(sizes[pick_size(&sizes, 64)], 64);
        assert_eq!(sizes[pick_size(&sizes, 1000)], 65);
    }

    #[test]
    fn produce_request_round_trips() {
        let w = workload(&[]);
        let t = &build_templates(&w, 3, 1).unwrap()[2][0];
        let mut buf = BytesMut::new();
        let topic = TopicName(StrBytes::from_static_str("topic-a"));
        for version in 3..=8 {
            encode_produce(&mut buf, version, 77, -1, &topic, 2, &t.bytes).unwrap();
            let mut frame = buf.clone().freeze();
            let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
            assert_eq!(len, frame.len() - 4);
            let _ = bytes::Buf::get_u32(&mut frame);
            let header = kafka_protocol::messages::RequestHeader::decode(&mut frame, 1).unwrap();
            assert_eq!(header.correlation_id, 77);
            let req = ProduceRequest::decode(&mut frame, version).unwrap();
            assert_eq!(req.acks, -1);
            let pd = &req.topic_data[0].partition_data[0];
            assert_eq!(pd.index, 2);
            assert_eq!(pd.records.as_deref(), Some(&t.bytes[..]));
        }
    }

    #[test]
    fn keys_land_on_their_partition() {
        let w = workload(&["keys=10"]);
        let pools = build_templates(&w, 5, 3).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for (g, pool) in pools.iter().enumerate() {
            for tpl in pool {
                let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut Bytes::from(
                    tpl.bytes.clone(),
                ))
                .unwrap();
                for r in set.records {
                    let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                    let k: usize = key.trim_start_matches("key-").parse().unwrap();
                    assert!(k < 10);
                    seen.insert(k);
                    assert_eq!(k % 4, g, "key {k} in partition {g}");
                }
            }
        }
        assert_eq!(seen.len(), 10, "every key is used: {seen:?}");
        let few = build_templates(&workload(&["keys=2"]), 3, 1).unwrap();
        assert!(few[2].is_empty() && few[3].is_empty() && !few[1].is_empty());
        assert_eq!(reachable(KeyMode::Distinct(2), 4), vec![0, 1]);
        assert_eq!(assigned(7, 3, 1), vec![1, 4]);
    }

    #[test]
    fn consume_counts_from_position() {
        let w = workload(&[]);
        let mut t = build_templates(&w, 4, 1).unwrap()[0][0].clone();
        t.stamp(wall_us());
        let stats = WorkerStats::default();
        let mut offset = 2i64;
        consume_records(&t.bytes, &mut offset, wall_us(), true, &stats).unwrap();
        assert_eq!(offset, 4);
        assert_eq!(stats.msgs.load(Ordering::Relaxed), 2);
        consume_records(&t.bytes, &mut offset, wall_us(), true, &stats).unwrap();
        assert_eq!(
            stats.msgs.load(Ordering::Relaxed),
            2,
            "batch before position is skipped"
        );
    }
}
