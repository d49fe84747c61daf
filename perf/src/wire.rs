//! A blocking Kafka-protocol connection: framing, ApiVersions negotiation, and the admin calls
//! the harness needs (Metadata, CreateTopics). Requests and responses are encoded with the
//! `kafka-protocol` crate; the hot-path Produce and Fetch loops live in `native`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, DeleteTopicsRequest,
    MetadataRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// A response frame above this is refused (a hostile or broken peer cannot make us allocate more).
pub const FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;
pub const CLIENT_ID: &str = "riptide-perf";
const ERROR_UNSUPPORTED_VERSION: i16 = 35;
/// Read and write timeout on every connection (callers may widen the read side).
pub const IO_TIMEOUT: Duration = Duration::from_secs(40);
const ERROR_TOPIC_ALREADY_EXISTS: i16 = 36;

/// Versions the broker supports, by api key: (min, max).
pub type Versions = HashMap<i16, (i16, i16)>;

/// Picks the highest version both sides speak, capped at `ours_max` (the newest version whose
/// shape this harness fills in correctly).
pub fn pick_version(versions: &Versions, key: ApiKey, ours_min: i16, ours_max: i16) -> Result<i16> {
    let &(lo, hi) = versions
        .get(&(key as i16))
        .with_context(|| format!("broker does not support {key:?}"))?;
    let v = hi.min(ours_max);
    ensure!(
        v >= lo.max(ours_min),
        "no common version for {key:?}: broker {lo}..={hi}, ours {ours_min}..={ours_max}"
    );
    Ok(v)
}

/// Encodes a length-prefixed request frame into `buf` (cleared first).
pub fn encode_request<R: Request>(
    buf: &mut BytesMut,
    version: i16,
    correlation_id: i32,
    req: &R,
) -> Result<()> {
    buf.clear();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    let mut header = RequestHeader::default();
    header.request_api_key = R::KEY;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
    header.encode(buf, R::header_version(version))?;
    req.encode(buf, version)?;
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Reads one length-prefixed frame (without the prefix).
pub fn read_frame(stream: &mut impl Read) -> Result<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            anyhow::anyhow!("no response from the broker within the I/O timeout ({e})")
        }
        _ => anyhow::Error::new(e).context("reading frame length"),
    })?;
    let len = i32::from_be_bytes(len);
    ensure!(
        len >= 4 && len as usize <= FRAME_BYTES_MAX,
        "response frame length {len} out of range"
    );
    let mut body = BytesMut::zeroed(len as usize);
    stream.read_exact(&mut body).context("reading frame body")?;
    Ok(body.freeze())
}

/// Decodes a response frame, checking the correlation id.
pub fn decode_response<R: Request>(
    mut frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response> {
    let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))?;
    ensure!(
        header.correlation_id == correlation_id,
        "correlation id {} != expected {correlation_id}",
        header.correlation_id
    );
    R::Response::decode(&mut frame, version)
}

pub struct Conn {
    pub stream: TcpStream,
    pub addr: String,
    correlation_id: i32,
    buf: BytesMut,
    pub versions: Versions,
}

impl Conn {
    pub fn connect(addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        // No call may hang a run forever on a stuck broker.
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut c = Conn {
            stream,
            addr: addr.to_string(),
            correlation_id: 0,
            buf: BytesMut::new(),
            versions: Versions::new(),
        };
        c.versions = c.api_versions()?;
        Ok(c)
    }

    pub fn next_correlation_id(&mut self) -> i32 {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        self.correlation_id
    }

    /// One request, one response (not for the pipelined hot path).
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        let id = self.next_correlation_id();
        encode_request(&mut self.buf, version, id, req)?;
        self.stream.write_all(&self.buf)?;
        let frame = read_frame(&mut self.stream)?;
        decode_response::<R>(frame, version, id)
    }

    fn api_versions(&mut self) -> Result<Versions> {
        let mut req = ApiVersionsRequest::default();
        req.client_software_name = StrBytes::from_static_str(CLIENT_ID);
        req.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let mut resp: ApiVersionsResponse = self.call(3, &req)?;
        if resp.error_code == ERROR_UNSUPPORTED_VERSION {
            resp = self.call(0, &ApiVersionsRequest::default())?;
        }
        ensure!(
            resp.error_code == 0,
            "ApiVersions error {}",
            resp.error_code
        );
        Ok(resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect())
    }
}

/// Leaders and broker addresses for one topic.
#[derive(Clone, Debug)]
pub struct TopicLayout {
    pub topic: String,
    /// Leader node per partition index.
    pub leaders: Vec<i32>,
    pub brokers: HashMap<i32, String>,
}

pub fn metadata(conn: &mut Conn, topic: &str) -> Result<TopicLayout> {
    let version = pick_version(&conn.versions, ApiKey::Metadata, 1, 12)?;
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = false;
    let resp = conn.call(version, &req)?;
    let brokers = resp
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let t = resp
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .with_context(|| format!("topic {topic} missing from metadata"))?;
    ensure!(
        t.error_code == 0,
        "metadata error {} for topic {topic}",
        t.error_code
    );
    let count = t.partitions.len();
    let mut leaders = vec![-1; count];
    for p in &t.partitions {
        let i = p.partition_index;
        ensure!(
            i >= 0 && (i as usize) < count,
            "partition index {i} out of range"
        );
        leaders[i as usize] = if p.error_code == 0 { p.leader_id.0 } else { -1 };
    }
    Ok(TopicLayout {
        topic: topic.to_string(),
        leaders,
        brokers,
    })
}

/// Creates the topic (already existing is fine) and waits until every partition has a leader.
/// Deletes `topics` (DeleteTopics v1–v5, by name); per-topic errors are returned as text.
pub fn delete_topics(conn: &mut Conn, topics: &[String], timeout: Duration) -> Result<()> {
    let version = pick_version(&conn.versions, ApiKey::DeleteTopics, 1, 5)?;
    let mut req = DeleteTopicsRequest::default();
    req.topic_names = topics
        .iter()
        .map(|t| TopicName(StrBytes::from_string(t.clone())))
        .collect();
    req.timeout_ms = timeout.as_millis() as i32;
    let resp = conn.call(version, &req)?;
    let failed: Vec<String> = resp
        .responses
        .iter()
        .filter(|r| r.error_code != 0)
        .map(|r| format!("{:?}: error {}", r.name, r.error_code))
        .collect();
    ensure!(failed.is_empty(), "DeleteTopics: {}", failed.join(", "));
    Ok(())
}

pub fn create_topic(
    conn: &mut Conn,
    topic: &str,
    partitions: u32,
    replication: i16,
    configs: &std::collections::BTreeMap<String, String>,
    timeout: Duration,
) -> Result<TopicLayout> {
    let version = pick_version(&conn.versions, ApiKey::CreateTopics, 2, 5)?;
    let mut t = CreatableTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.num_partitions = partitions as i32;
    t.replication_factor = replication;
    t.configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = timeout.as_millis() as i32;
    let resp = conn.call(version, &req)?;
    for r in &resp.topics {
        if r.error_code != 0 && r.error_code != ERROR_TOPIC_ALREADY_EXISTS {
            bail!(
                "CreateTopics {topic}: error {} {:?}",
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string())
            );
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        match metadata(conn, topic) {
            Ok(layout)
                if layout.leaders.len() == partitions as usize
                    && layout.leaders.iter().all(|&l| l >= 0) =>
            {
                return Ok(layout)
            }
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(layout) => bail!(
                "topic {topic} has no leader for every partition: {:?}",
                layout.leaders
            ),
            Err(e) => return Err(e),
        }
    }
}

/// Resolves a broker node id to the address to dial.
pub fn broker_addr(layout: &TopicLayout, node: i32) -> Result<String> {
    layout
        .brokers
        .get(&node)
        .cloned()
        .with_context(|| format!("broker {node} not in metadata"))
}
