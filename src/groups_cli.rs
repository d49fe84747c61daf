//! `riptide groups`: the consumer-group admin tool, mirroring `kafka-consumer-groups.sh`.
//! It talks to any Kafka-protocol broker over a tiny blocking client (std `TcpStream`,
//! `kafka-protocol` codecs): nothing here reaches into the broker's internals.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytes::{Bytes, BytesMut};
use clap::{Args, Subcommand};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

const CLIENT_ID: &str = "riptide-groups";
/// A response frame above this is refused.
const FRAME_BYTES_MAX: usize = 64 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct GroupsArgs {
    /// A broker to bootstrap from.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Subcommand, Debug)]
enum GroupsCommand {
    /// List every group (with --state, only groups in these states).
    List {
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
    },
    /// Members, assignments, committed offsets and lag of a group.
    Describe { group: String },
    /// Move a group's committed offsets (the group must have no members). Dry run unless
    /// --execute, as kafka-consumer-groups.sh.
    ResetOffsets(ResetArgs),
    /// Delete a group without members, with its committed offsets.
    Delete { group: String },
}

#[derive(Args, Debug)]
struct ResetArgs {
    group: String,
    #[arg(long)]
    topic: String,
    #[arg(long, group = "to")]
    to_earliest: bool,
    #[arg(long, group = "to")]
    to_latest: bool,
    #[arg(long, group = "to")]
    to_offset: Option<i64>,
    /// UTC `YYYY-MM-DDTHH:MM:SS[.mmm]` or epoch milliseconds.
    #[arg(long, group = "to")]
    to_datetime: Option<String>,
    #[arg(long)]
    execute: bool,
}

pub fn run(args: GroupsArgs) -> Result<()> {
    let mut boot = Conn::connect(&args.bootstrap_server)?;
    match args.command {
        GroupsCommand::List { state } => list(&mut boot, &state),
        GroupsCommand::Describe { group } => describe(&mut boot, &group),
        GroupsCommand::ResetOffsets(r) => reset(&mut boot, &r),
        GroupsCommand::Delete { group } => delete(&mut boot, &group),
    }
}

struct Conn {
    stream: TcpStream,
    correlation_id: i32,
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Conn {
    fn connect(addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut c = Conn {
            stream,
            correlation_id: 0,
            versions: BTreeMap::new(),
        };
        let resp: ApiVersionsResponse = c.call(0, &ApiVersionsRequest::default())?;
        ensure!(
            resp.error_code == 0,
            "ApiVersions error {}",
            resp.error_code
        );
        c.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(c)
    }

    /// The highest version both sides speak, capped at `ours_max`.
    fn version(&self, key: ApiKey, ours_max: i16) -> Result<i16> {
        let &(lo, hi) = self
            .versions
            .get(&(key as i16))
            .with_context(|| format!("broker does not support {key:?}"))?;
        let v = hi.min(ours_max);
        ensure!(v >= lo, "no common version for {key:?}");
        Ok(v)
    }

    fn call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        header.encode(&mut buf, R::header_version(version))?;
        req.encode(&mut buf, version)?;
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        ensure!(
            len >= 4 && len as usize <= FRAME_BYTES_MAX,
            "bad response length {len}"
        );
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        let mut frame = Bytes::from(body);
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))?;
        ensure!(
            header.correlation_id == self.correlation_id,
            "correlation id mismatch"
        );
        R::Response::decode(&mut frame, version)
    }

    /// A connection to the group's coordinator.
    fn coordinator(&mut self, group: &str) -> Result<Conn> {
        let v = self.version(ApiKey::FindCoordinator, 3)?;
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_string()))
            .with_key_type(0);
        for _ in 0..20 {
            let resp: FindCoordinatorResponse = self.call(v, &req)?;
            if resp.error_code == 0 {
                return Conn::connect(&format!("{}:{}", resp.host, resp.port));
            }
            // COORDINATOR_NOT_AVAILABLE while the offsets topic is created: retry.
            std::thread::sleep(Duration::from_millis(250));
        }
        bail!("no coordinator for group {group}")
    }
}

fn error_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?} ({code})"),
        None => format!("error {code}"),
    }
}

fn list(boot: &mut Conn, states: &[String]) -> Result<()> {
    let v = boot.version(ApiKey::ListGroups, 4)?;
    let req = ListGroupsRequest::default().with_states_filter(
        states
            .iter()
            .map(|s| StrBytes::from_string(s.clone()))
            .collect(),
    );
    let resp: ListGroupsResponse = boot.call(v, &req)?;
    ensure!(
        resp.error_code == 0,
        "ListGroups: {}",
        error_name(resp.error_code)
    );
    let mut groups: Vec<_> = resp.groups.iter().collect();
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    if states.is_empty() {
        for g in groups {
            println!("{}", g.group_id.0);
        }
    } else {
        println!("{:<40} STATE", "GROUP");
        for g in groups {
            println!("{:<40} {}", g.group_id.0.as_str(), g.group_state.as_str());
        }
    }
    Ok(())
}

/// The partitions of a ConsumerProtocolAssignment, as "topic-p" strings.
fn assignment_partitions(assignment: &Bytes) -> Vec<(String, i32)> {
    if assignment.len() < 2 {
        return Vec::new();
    }
    let mut buf = assignment.clone();
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn committed(coord: &mut Conn, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
    let v = coord.version(ApiKey::OffsetFetch, 7)?;
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(None);
    let resp: OffsetFetchResponse = coord.call(v, &req)?;
    ensure!(
        resp.error_code == 0,
        "OffsetFetch: {}",
        error_name(resp.error_code)
    );
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| {
                    (
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect())
}

/// Offsets of `parts` by ListOffsets `timestamp` (-1 latest, -2 earliest, or a time).
fn list_offsets(
    boot: &mut Conn,
    parts: &[(String, i32)],
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>> {
    let v = boot.version(ApiKey::ListOffsets, 7)?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let topics = by_topic
        .iter()
        .map(|(t, ps)| {
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(t.to_string())))
                .with_partitions(
                    ps.iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )
        })
        .collect();
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    let resp: ListOffsetsResponse = boot.call(v, &req)?;
    let mut out = BTreeMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            ensure!(
                p.error_code == 0,
                "ListOffsets {}-{}: {}",
                t.name.0,
                p.partition_index,
                error_name(p.error_code)
            );
            out.insert((t.name.0.to_string(), p.partition_index), p.offset);
        }
    }
    Ok(out)
}

fn describe(boot: &mut Conn, group: &str) -> Result<()> {
    let mut coord = boot.coordinator(group)?;
    let v = coord.version(ApiKey::DescribeGroups, 5)?;
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let resp: DescribeGroupsResponse = coord.call(v, &req)?;
    let g = resp
        .groups
        .first()
        .context("empty DescribeGroups response")?;
    ensure!(
        g.error_code == 0,
        "DescribeGroups: {}",
        error_name(g.error_code)
    );
    if g.group_state.as_str() == "Dead" {
        bail!("Consumer group '{group}' does not exist.");
    }
    let mut owner: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for m in &g.members {
        for tp in assignment_partitions(&m.member_assignment) {
            owner.insert(
                tp,
                (
                    m.member_id.to_string(),
                    m.client_host.to_string(),
                    m.client_id.to_string(),
                ),
            );
        }
    }
    let offsets = committed(&mut coord, group)?;
    let mut parts: Vec<(String, i32)> = offsets.keys().cloned().collect();
    for tp in owner.keys() {
        if !offsets.contains_key(tp) {
            parts.push(tp.clone());
        }
    }
    parts.sort();
    let ends = if parts.is_empty() {
        BTreeMap::new()
    } else {
        list_offsets(boot, &parts, -1)?
    };
    println!(
        "Group '{group}': state {}, protocol {} ({}), {} member(s)\n",
        g.group_state.as_str(),
        g.protocol_data.as_str(),
        g.protocol_type.as_str(),
        g.members.len()
    );
    println!(
        "{:<24} {:<24} {:>9} {:>14} {:>14} {:>8} {:<40} {:<16} CLIENT-ID",
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST"
    );
    for tp in &parts {
        let current = offsets.get(tp).copied().filter(|o| *o >= 0);
        let end = ends.get(tp).copied();
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => "-".into(),
        };
        let (member, host, client) = owner
            .get(tp)
            .cloned()
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        println!(
            "{:<24} {:<24} {:>9} {:>14} {:>14} {:>8} {:<40} {:<16} {}",
            group,
            tp.0,
            tp.1,
            current.map_or("-".into(), |c| c.to_string()),
            end.map_or("-".into(), |e| e.to_string()),
            lag,
            member,
            host,
            client
        );
    }
    Ok(())
}

fn topic_partitions(boot: &mut Conn, topic: &str) -> Result<Vec<i32>> {
    let v = boot.version(ApiKey::Metadata, 9)?;
    let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
    let resp: MetadataResponse = boot.call(v, &req)?;
    let t = resp.topics.first().context("empty Metadata response")?;
    ensure!(
        t.error_code == 0,
        "topic {topic}: {}",
        error_name(t.error_code)
    );
    let mut ps: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    ps.sort_unstable();
    Ok(ps)
}

/// Epoch milliseconds from `YYYY-MM-DDTHH:MM:SS[.mmm]` (UTC) or a plain integer.
fn parse_datetime(text: &str) -> Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || anyhow::anyhow!("--to-datetime {text:?}: expected YYYY-MM-DDTHH:MM:SS[.mmm]");
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    ensure!(d.len() == 3 && t.len() == 3, bad());
    let millis: i64 = millis.trim_end_matches('Z').parse().map_err(|_| bad())?;
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + millis)
}

fn reset(boot: &mut Conn, r: &ResetArgs) -> Result<()> {
    let partitions = topic_partitions(boot, &r.topic)?;
    let parts: Vec<(String, i32)> = partitions.iter().map(|p| (r.topic.clone(), *p)).collect();
    let targets: BTreeMap<(String, i32), i64> = if r.to_earliest {
        list_offsets(boot, &parts, -2)?
    } else if r.to_latest {
        list_offsets(boot, &parts, -1)?
    } else if let Some(offset) = r.to_offset {
        parts.iter().map(|tp| (tp.clone(), offset)).collect()
    } else if let Some(dt) = &r.to_datetime {
        let ms = parse_datetime(dt)?;
        let mut at = list_offsets(boot, &parts, ms)?;
        // No record at or after the time: the log end, as Kafka's tool does.
        let ends = list_offsets(boot, &parts, -1)?;
        for (tp, o) in at.iter_mut() {
            if *o < 0 {
                *o = ends[tp];
            }
        }
        at
    } else {
        bail!("one of --to-earliest, --to-latest, --to-offset, --to-datetime is required");
    };
    println!(
        "{:<24} {:<24} {:>9} {:>14}",
        "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"
    );
    for ((t, p), o) in &targets {
        println!("{:<24} {:<24} {:>9} {:>14}", r.group, t, p, o);
    }
    if !r.execute {
        println!("\n(dry run: add --execute to commit these offsets)");
        return Ok(());
    }
    let mut coord = boot.coordinator(&r.group)?;
    let v = coord.version(ApiKey::OffsetCommit, 8)?;
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(r.group.clone())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(r.topic.clone())))
            .with_partitions(
                targets
                    .iter()
                    .map(|((_, p), o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                    })
                    .collect(),
            )]);
    let resp: OffsetCommitResponse = coord.call(v, &req)?;
    for t in &resp.topics {
        for p in &t.partitions {
            ensure!(
                p.error_code == 0,
                "OffsetCommit {}-{}: {} (the group must have no active members)",
                t.name.0,
                p.partition_index,
                error_name(p.error_code)
            );
        }
    }
    println!("\noffsets committed");
    Ok(())
}

fn delete(boot: &mut Conn, group: &str) -> Result<()> {
    let mut coord = boot.coordinator(group)?;
    let v = coord.version(ApiKey::DeleteGroups, 2)?;
    let req = DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let resp: DeleteGroupsResponse = coord.call(v, &req)?;
    let r = resp
        .results
        .first()
        .context("empty DeleteGroups response")?;
    ensure!(
        r.error_code == 0,
        "DeleteGroups {group}: {}",
        error_name(r.error_code)
    );
    println!("Deletion of requested consumer groups ('{group}') was successful.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_parses_utc() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.789").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(parse_datetime("1700000000000").unwrap(), 1_700_000_000_000);
        assert!(parse_datetime("yesterday").is_err());
    }
}
