//! `meta.properties`: the identity of a data directory (Kafka's KRaft format, version 1):
//! `cluster.id`, `node.id`, `directory.id`. Written once, atomically, on first start; checked
//! on every later start (a node.id mismatch means the wrong directory or the wrong config).

use std::path::Path;

use shards::{Error, NodeId, Result};
use uuid::Uuid;

use super::log::write_atomically;
use crate::config::properties::parse_properties;

pub const META_PROPERTIES_NAME: &str = "meta.properties";
const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaProperties {
    pub version: u32,
    /// 22-character base64url UUID, as Kafka's `Uuid.toString()`.
    pub cluster_id: String,
    pub node_id: NodeId,
    pub directory_id: String,
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka's string form of a UUID: base64url of the 16 bytes, no padding (22 characters).
pub fn kafka_uuid_string(uuid: &Uuid) -> String {
    let bytes = uuid.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(BASE64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    debug_assert_eq!(out.len(), 22);
    out
}

/// Parses Kafka's 22-character base64url UUID form.
pub fn parse_kafka_uuid(text: &str) -> Option<Uuid> {
    if text.len() != 22 {
        return None;
    }
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut bytes = Vec::with_capacity(16);
    for c in text.bytes() {
        let v = BASE64URL.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    // 22 chars = 132 bits: the 4 spare bits must be zero for a canonical encoding.
    if bits != 0 || bytes.len() != 16 {
        return None;
    }
    Some(Uuid::from_bytes(bytes.try_into().ok()?))
}

/// A random UUID as Kafka makes them: never the reserved zero or one UUIDs, and never one
/// whose string starts with '-' (it would read as a command-line flag).
pub fn random_kafka_uuid() -> Uuid {
    loop {
        let uuid = Uuid::new_v4();
        let reserved = uuid.as_u128() <= 1;
        if !reserved && !kafka_uuid_string(&uuid).starts_with('-') {
            return uuid;
        }
    }
}

impl MetaProperties {
    fn render(&self) -> String {
        format!(
            "#\n#Written by Riptide\nnode.id={}\ndirectory.id={}\nversion={}\ncluster.id={}\n",
            self.node_id.0, self.directory_id, self.version, self.cluster_id
        )
    }

    fn parse(path: &Path, text: &str) -> Result<MetaProperties> {
        let bad = |reason: String| Error::MetadataCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        let props = parse_properties(text)?;
        let get = |key: &str| {
            props
                .iter()
                .rev()
                .find(|p| p.key == key)
                .map(|p| p.value.trim().to_string())
        };
        let version: u32 = get("version")
            .ok_or_else(|| bad("no version".into()))?
            .parse()
            .map_err(|_| bad("version is not a number".into()))?;
        if version != VERSION {
            return Err(bad(format!("unsupported version {version}")));
        }
        let cluster_id = get("cluster.id").ok_or_else(|| bad("no cluster.id".into()))?;
        if parse_kafka_uuid(&cluster_id).is_none() {
            return Err(bad(format!(
                "cluster.id {cluster_id:?} is not a base64url UUID"
            )));
        }
        let node_id: i32 = get("node.id")
            .ok_or_else(|| bad("no node.id".into()))?
            .parse()
            .map_err(|_| bad("node.id is not a number".into()))?;
        let directory_id = get("directory.id").unwrap_or_default();
        Ok(MetaProperties {
            version,
            cluster_id,
            node_id: NodeId(node_id),
            directory_id,
        })
    }

    /// Reads `<data_dir>/meta.properties`, or formats the directory on first start. On a
    /// later start the stored node.id must equal `node_id`.
    pub fn load_or_format(data_dir: &Path, node_id: NodeId) -> Result<MetaProperties> {
        let path = data_dir.join(META_PROPERTIES_NAME);
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let props = MetaProperties::parse(&path, &text)?;
            if props.node_id != node_id {
                return Err(Error::Invalid(format!(
                    "{} belongs to node.id {} but this broker is configured with node.id {}",
                    path.display(),
                    props.node_id.0,
                    node_id.0
                )));
            }
            return Ok(props);
        }
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let props = MetaProperties {
            version: VERSION,
            cluster_id: kafka_uuid_string(&random_kafka_uuid()),
            node_id,
            directory_id: kafka_uuid_string(&random_kafka_uuid()),
        };
        write_atomically(data_dir, META_PROPERTIES_NAME, props.render().as_bytes())?;
        let written = MetaProperties::parse(&path, &props.render())?;
        assert_eq!(written, props);
        Ok(props)
    }
}
