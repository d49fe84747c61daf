"""Just enough of the Kafka wire protocol, by hand, for tests that need raw bytes:
hostile frames, ApiVersions, and a Fetch v4 that shows the stored RecordBatch headers
(to check that batches are kept as produced, e.g. with their compression codec).

Independent of the broker's code on purpose: it is a second reading of the protocol.
"""

import socket
import struct

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_API_VERSIONS = 18
API_INIT_PRODUCER_ID = 22
API_OFFSET_FOR_LEADER_EPOCH = 23

UNSUPPORTED_VERSION = 35


def connect(port: int, timeout_s: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def string(s):
    """Kafka (nullable) STRING: i16 length, -1 for null."""
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def header(api_key: int, api_version: int, correlation_id: int, client_id="riptide-tests", flexible=False):
    """Request header v1 (v2 when `flexible`: an empty tagged-field section follows)."""
    h = struct.pack(">hhi", api_key, api_version, correlation_id) + string(client_id)
    return h + (b"\x00" if flexible else b"")


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock: socket.socket, n: int):
    """n bytes, or None if the peer closed first."""
    chunks = []
    while n:
        b = sock.recv(min(n, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def read_frame(sock: socket.socket):
    """One response frame without its size prefix, or None when the broker closed."""
    size_bytes = recv_exact(sock, 4)
    if size_bytes is None:
        return None
    (size,) = struct.unpack(">i", size_bytes)
    assert 0 <= size <= 256 << 20, f"implausible response size {size}"
    return recv_exact(sock, size)


def outcome(sock: socket.socket, timeout_s: float = 5.0):
    """What the broker did after a request: ("closed", None), ("response", frame) or
    ("timeout", None) when it neither answered nor closed in time."""
    sock.settimeout(timeout_s)
    try:
        f = read_frame(sock)
    except socket.timeout:
        return ("timeout", None)
    except (ConnectionResetError, BrokenPipeError):
        return ("closed", None)
    return ("closed", None) if f is None else ("response", f)


def parse_api_versions_v0(body: bytes):
    """ApiVersions response v0 body (after the 4-byte correlation id):
    (error_code, {api_key: (min, max)})."""
    (error_code, n) = struct.unpack_from(">hi", body, 0)
    assert 0 <= n <= 1000, n
    pos = 6
    keys = {}
    for _ in range(n):
        k, lo, hi = struct.unpack_from(">hhh", body, pos)
        keys[k] = (lo, hi)
        pos += 6
    return error_code, keys


def api_versions(port: int, timeout_s: float = 5.0, version: int = 0):
    """ApiVersions at `version` (0..2 are non-flexible); returns (correlation_id,
    error_code, {api_key: (min, max)}). The response header is always v0, and a
    broker answers an unsupported ApiVersions version with a v0 body."""
    with connect(port, timeout_s) as s:
        s.sendall(frame(header(API_API_VERSIONS, version, 7)))
        f = read_frame(s)
        if f is None:
            raise ConnectionError("closed without an ApiVersions response")
        (corr,) = struct.unpack_from(">i", f, 0)
        err, keys = parse_api_versions_v0(f[4:])
        return corr, err, keys


def fetch_v4_request(topic: str, partition: int, offset: int, correlation_id=1, max_bytes=16 << 20):
    body = struct.pack(">iiiib", -1, 100, 1, max_bytes, 0)  # replica, max_wait, min_bytes, max_bytes, isolation
    body += struct.pack(">i", 1) + string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes)
    return frame(header(API_FETCH, 4, correlation_id) + body)


def parse_fetch_v4(f: bytes):
    """A Fetch v4 response frame → {(topic, partition): (error_code, high_watermark, records)}."""
    pos = 4 + 4  # correlation id, throttle time
    out = {}
    (nt,) = struct.unpack_from(">i", f, pos)
    pos += 4
    for _ in range(nt):
        (tl,) = struct.unpack_from(">h", f, pos)
        pos += 2
        topic = f[pos : pos + tl].decode()
        pos += tl
        (np_,) = struct.unpack_from(">i", f, pos)
        pos += 4
        for _ in range(np_):
            p, err, hw, _lso = struct.unpack_from(">ihqq", f, pos)
            pos += 22
            (na,) = struct.unpack_from(">i", f, pos)
            pos += 4 + max(na, 0) * 16
            (rl,) = struct.unpack_from(">i", f, pos)
            pos += 4
            records = b"" if rl < 0 else f[pos : pos + rl]
            pos += max(rl, 0)
            out[(topic, p)] = (err, hw, records)
    return out


def batches(records: bytes):
    """RecordBatch v2 headers in a records blob: dicts with base_offset, attributes,
    codec (attributes & 7), last_offset_delta, count, crc, crc_ok. A partial batch at
    the end (allowed by Kafka) is skipped."""
    out = []
    pos = 0
    while pos + 61 <= len(records):
        base_offset, batch_len = struct.unpack_from(">qi", records, pos)
        end = pos + 12 + batch_len
        if end > len(records):
            break
        _epoch, magic, crc = struct.unpack_from(">ibI", records, pos + 12)
        assert magic == 2, f"magic {magic}"
        attributes, last_delta = struct.unpack_from(">hi", records, pos + 21)
        (count,) = struct.unpack_from(">i", records, pos + 57)
        out.append(
            dict(
                base_offset=base_offset,
                attributes=attributes,
                codec=attributes & 7,
                last_offset_delta=last_delta,
                count=count,
                crc_ok=crc32c(records[pos + 21 : end]) == crc,
            )
        )
        pos = end
    return out


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def zigzag(n: int) -> bytes:
    """Kafka's signed VARINT / VARLONG (zigzag, then unsigned LEB128)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _bytes_field(b):
    return zigzag(-1) if b is None else zigzag(len(b)) + b


def record_batch(
    records, base_timestamp_ms: int, corrupt_crc=False, producer_id=-1, producer_epoch=-1, base_sequence=-1
) -> bytes:
    """An uncompressed RecordBatch v2 holding `records`, a list of (key, value) byte
    strings or None, one millisecond apart; idempotent if `producer_id` is given."""
    body = b""
    for i, (k, v) in enumerate(records):
        rec = b"\x00" + zigzag(i) + zigzag(i) + _bytes_field(k) + _bytes_field(v) + zigzag(0)
        body += zigzag(len(rec)) + rec
    n = len(records)
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            0,
            n - 1,
            base_timestamp_ms,
            base_timestamp_ms + n - 1,
            producer_id,
            producer_epoch,
            base_sequence,
            n,
        )
        + body
    )
    crc = crc32c(after_crc) ^ (1 if corrupt_crc else 0)
    after_length = struct.pack(">ibI", 0, 2, crc) + after_crc  # leader epoch, magic, crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def produce_request(
    topic: str, partition: int, batch: bytes, acks=1, version=3, correlation_id=1, transactional_id=None
):
    """Produce v3..v8 (non-flexible): one topic, one partition."""
    body = string(transactional_id) + struct.pack(">hi", acks, 5000)
    body += struct.pack(">i", 1) + string(topic) + struct.pack(">i", 1) + struct.pack(">i", partition)
    body += struct.pack(">i", len(batch)) + batch
    return frame(header(API_PRODUCE, version, correlation_id) + body)


def parse_produce_v3(f: bytes):
    """Produce v3 response → {(topic, partition): (error_code, base_offset)}."""
    pos = 4
    out = {}
    (nt,) = struct.unpack_from(">i", f, pos)
    pos += 4
    for _ in range(nt):
        (tl,) = struct.unpack_from(">h", f, pos)
        topic = f[pos + 2 : pos + 2 + tl].decode()
        pos += 2 + tl
        (np_,) = struct.unpack_from(">i", f, pos)
        pos += 4
        for _ in range(np_):
            p, err, base, _log_append = struct.unpack_from(">ihqq", f, pos)
            pos += 22
            out[(topic, p)] = (err, base)
    return out


def roundtrip(port: int, request: bytes, timeout_s=10.0):
    """Send one request frame; return the response frame (None if the broker closed)."""
    with connect(port, timeout_s) as s:
        s.sendall(request)
        return read_frame(s)


def list_offsets_v4_request(topic: str, partition: int, timestamp: int, current_leader_epoch=-1, correlation_id=1):
    """ListOffsets v4 (non-flexible): one partition, with `current_leader_epoch` (KIP-320)."""
    body = struct.pack(">ib", -1, 0) + struct.pack(">i", 1) + string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iiq", partition, current_leader_epoch, timestamp)
    return frame(header(API_LIST_OFFSETS, 4, correlation_id) + body)


def parse_list_offsets_v4(f: bytes):
    """ListOffsets v4 response (one topic, one partition) → (error, timestamp, offset, leader_epoch)."""
    pos = 4 + 4 + 4  # correlation id, throttle, topic count
    (tl,) = struct.unpack_from(">h", f, pos)
    pos += 2 + tl + 4  # name, partition count
    _p, err, ts, offset, epoch = struct.unpack_from(">ihqqi", f, pos)
    return err, ts, offset, epoch


def offset_for_leader_epoch_v3_request(topic: str, partition: int, leader_epoch: int, current_leader_epoch=-1):
    """OffsetForLeaderEpoch v3 (non-flexible), as a consumer sends it (replica id -1)."""
    body = struct.pack(">i", -1) + struct.pack(">i", 1) + string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iii", partition, current_leader_epoch, leader_epoch)
    return frame(header(API_OFFSET_FOR_LEADER_EPOCH, 3, 1) + body)


def parse_offset_for_leader_epoch_v3(f: bytes):
    """→ (error, leader_epoch, end_offset) of the one partition."""
    pos = 4 + 4 + 4
    (tl,) = struct.unpack_from(">h", f, pos)
    pos += 2 + tl + 4
    err, _p, epoch, end = struct.unpack_from(">hiiq", f, pos)
    return err, epoch, end


def fetch_v9_request(
    topic: str, partition: int, offset: int, current_leader_epoch=-1, max_wait_ms=0, min_bytes=1, session=(0, -1)
):
    """Fetch v9 (non-flexible), with `current_leader_epoch`; `session` is (id, epoch):
    (0, -1) is a full fetch without a session, (0, 0) asks for a new session (KIP-227)."""
    body = struct.pack(">iiiibii", -1, max_wait_ms, min_bytes, 1 << 20, 0, *session)
    body += struct.pack(">i", 1) + string(topic) + struct.pack(">i", 1)
    body += struct.pack(">iiqqi", partition, current_leader_epoch, offset, -1, 1 << 20)
    body += struct.pack(">i", 0)  # forgotten topics
    return frame(header(API_FETCH, 9, 1) + body)


def parse_fetch_v9_session(f: bytes):
    """→ (top-level error, session id) of a Fetch v7+ response."""
    return struct.unpack_from(">hi", f, 8)


def parse_fetch_v9_partition_error(f: bytes):
    """→ (top-level error, error of the first partition) of a Fetch v9 response."""
    pos = 4 + 4  # correlation id, throttle
    (top,) = struct.unpack_from(">h", f, pos)
    pos += 2 + 4 + 4  # error, session id, topic count
    (tl,) = struct.unpack_from(">h", f, pos)
    pos += 2 + tl + 4
    _p, err = struct.unpack_from(">ih", f, pos)
    return top, err


def init_producer_id_v1_request(transactional_id):
    body = string(transactional_id) + struct.pack(">i", 60_000)
    return frame(header(API_INIT_PRODUCER_ID, 1, 1) + body)


def parse_init_producer_id_v1(f: bytes):
    """→ (error, producer_id, producer_epoch)."""
    _corr, _throttle, err, pid, epoch = struct.unpack_from(">iihqh", f, 0)
    return err, pid, epoch


def uvarint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def read_uvarint(f: bytes, pos: int):
    n = shift = 0
    while True:
        b = f[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def compact_string(s):
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def read_compact_string(f: bytes, pos: int):
    n, pos = read_uvarint(f, pos)
    if n == 0:
        return None, pos
    return f[pos : pos + n - 1].decode(), pos + n - 1


def skip_tagged_fields(f: bytes, pos: int) -> int:
    count, pos = read_uvarint(f, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(f, pos)
        size, pos = read_uvarint(f, pos)
        pos += size
    return pos


def create_topics_v5_request(topic: str, partitions: int, configs: dict, validate_only=False):
    """CreateTopics v5 (flexible): one topic, replication factor -1 (the default)."""
    body = uvarint(2) + compact_string(topic) + struct.pack(">ih", partitions, -1) + uvarint(1)
    body += uvarint(len(configs) + 1)
    for k, v in configs.items():
        body += compact_string(k) + compact_string(v) + b"\x00"
    body += b"\x00" + struct.pack(">ib", 30_000, 1 if validate_only else 0) + b"\x00"
    return frame(header(19, 5, 1, flexible=True) + body)


def parse_create_topics_v5(f: bytes):
    """→ (error, num_partitions, replication_factor, {config name: (value, source)} or None)."""
    pos = 4
    pos = skip_tagged_fields(f, pos)  # response header v1
    pos += 4  # throttle
    n, pos = read_uvarint(f, pos)
    assert n - 1 == 1, f"{n - 1} topics in the response"
    _name, pos = read_compact_string(f, pos)
    (err,) = struct.unpack_from(">h", f, pos)
    pos += 2
    _msg, pos = read_compact_string(f, pos)
    partitions, rf = struct.unpack_from(">ih", f, pos)
    pos += 6
    n, pos = read_uvarint(f, pos)
    configs = None
    if n:
        configs = {}
        for _ in range(n - 1):
            name, pos = read_compact_string(f, pos)
            value, pos = read_compact_string(f, pos)
            _read_only, source, _sensitive = struct.unpack_from(">?b?", f, pos)
            pos = skip_tagged_fields(f, pos + 3)
            configs[name] = (value, source)
    return err, partitions, rf, configs
