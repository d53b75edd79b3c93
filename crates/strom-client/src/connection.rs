//! One TCP connection to one broker: the ApiVersions handshake, version negotiation and
//! pipelined requests.
//!
//! A writer task sends frames in the order `send` queued them; a reader task reads response
//! frames and hands each to the waiter registered under its correlation id. Any socket error
//! closes the connection and fails every waiting request with [`Error::Io`]; the owner
//! ([`crate::Client`]) then opens a new one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes, VersionRange};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{lookup_host, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, trace};

use crate::constants::{
    CLIENT_SOFTWARE_NAME, CLIENT_SOFTWARE_VERSION, CONNECTION_QUEUE_DEPTH, RESPONSE_FRAME_BYTES_MAX,
};
use crate::error::{ConnectFailure, Error, Result};
use crate::sync::lock;

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

type Waiters = Arc<Mutex<HashMap<i32, oneshot::Sender<Result<Bytes>>>>>;

/// What the writer does once a frame is on the wire.
enum Reply {
    /// A response is expected; the waiter is already registered under this correlation id.
    Response,
    /// No response will come (acks=0 produce): tell the caller the frame was written.
    Written(oneshot::Sender<Result<()>>),
}

struct Outgoing {
    frame: Bytes,
    reply: Reply,
}

enum Waiting {
    Response(oneshot::Receiver<Result<Bytes>>),
    Written(oneshot::Receiver<Result<()>>),
}

/// A queued request's reply: its response bytes, or for a request the broker does not
/// answer, word that it was written.
struct Pending {
    waiting: Waiting,
    correlation_id: i32,
    api_key: i16,
    waiters: Waiters,
    address: String,
    request_timeout: Duration,
}

impl Pending {
    /// The response body (`None` once an unanswered request was written), at most the
    /// request timeout away.
    async fn wait(self) -> Result<Option<Bytes>> {
        match self.waiting {
            Waiting::Written(written) => match tokio::time::timeout(self.request_timeout, written).await {
                Ok(Ok(result)) => result.map(|()| None),
                Ok(Err(_)) => Err(closed_error(&self.address)),
                Err(_) => Err(Error::Timeout(format!("writing to {}", self.address))),
            },
            Waiting::Response(response) => match tokio::time::timeout(self.request_timeout, response).await {
                Ok(Ok(result)) => result.map(Some),
                Ok(Err(_)) => Err(closed_error(&self.address)),
                Err(_) => {
                    lock(&self.waiters).remove(&self.correlation_id);
                    Err(Error::Timeout(format!(
                        "no response to API key {} (correlation id {}) from {} within {:?}",
                        self.api_key, self.correlation_id, self.address, self.request_timeout
                    )))
                }
            },
        }
    }
}

/// A request queued by [`Connection::submit`]; [`Submitted::response`] waits for its answer.
pub struct Submitted<Req: Request> {
    pending: Pending,
    version: i16,
    request: std::marker::PhantomData<fn() -> Req>,
}

impl<Req: Request> Submitted<Req> {
    /// The response (at most the request timeout away), or `None` once a request that gets
    /// no response has been written.
    pub async fn response(self) -> Result<Option<Req::Response>> {
        let correlation_id = self.pending.correlation_id;
        match self.pending.wait().await? {
            Some(mut body) => decode_response::<Req>(&mut body, self.version, correlation_id).map(Some),
            None => Ok(None),
        }
    }
}

/// A connection to one broker, shared by all tasks that talk to it.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use std::time::Duration;
/// use kafka_protocol::messages::MetadataRequest;
/// use strom_client::Connection;
///
/// let connection = Connection::connect("127.0.0.1:9092", "my-app", Duration::from_secs(30)).await?;
/// let metadata = connection.send(&MetadataRequest::default()).await?;
/// println!("{} brokers", metadata.brokers.len());
/// # Ok(()) }
/// ```
pub struct Connection {
    address: String,
    client_id: StrBytes,
    request_timeout: Duration,
    versions: HashMap<i16, (i16, i16)>,
    next_correlation_id: AtomicI32,
    waiters: Waiters,
    outgoing: mpsc::Sender<Outgoing>,
    closed: Arc<AtomicBool>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Connection {
    /// Opens a TCP connection to `address` (`host:port`) and performs the ApiVersions
    /// handshake, both within `request_timeout`.
    pub async fn connect(address: &str, client_id: &str, request_timeout: Duration) -> Result<Connection> {
        Connection::connect_within(address, client_id, request_timeout, request_timeout).await
    }

    /// Like [`Connection::connect`], with its own bound on setting the connection up (name
    /// lookup, TCP connect, ApiVersions handshake). Failures are [`Error::Connect`] saying
    /// which step failed.
    pub async fn connect_within(
        address: &str,
        client_id: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Connection> {
        let failed = |failure| Error::Connect {
            address: address.to_string(),
            failure,
        };
        if !has_port(address) {
            return Err(failed(ConnectFailure::NoPort));
        }
        let resolved: Vec<SocketAddr> = match tokio::time::timeout(connect_timeout, lookup_host(address)).await {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(error)) => return Err(failed(ConnectFailure::Lookup(error.to_string()))),
            Err(_) => {
                return Err(failed(ConnectFailure::Lookup(format!(
                    "no answer within {connect_timeout:?}"
                ))))
            }
        };
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(&resolved[..])).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(failed(ConnectFailure::Tcp(error.to_string()))),
            Err(_) => return Err(failed(ConnectFailure::Unanswered(connect_timeout))),
        };
        let mut connection = Connection::start(stream, address, client_id, request_timeout)?;
        connection.versions = match tokio::time::timeout(connect_timeout, connection.handshake()).await {
            Ok(Ok(versions)) => versions,
            Ok(Err(Error::Timeout(_))) | Err(_) => return Err(failed(ConnectFailure::NoKafkaAnswer(connect_timeout))),
            Ok(Err(Error::Protocol(what))) => return Err(failed(ConnectFailure::NotKafka(what))),
            Ok(Err(Error::Io(error))) => return Err(failed(ConnectFailure::Closed(error.to_string()))),
            Ok(Err(error)) => return Err(error),
        };
        debug!(address, apis = connection.versions.len(), "connected");
        Ok(connection)
    }

    /// Starts the reader and writer tasks on a connected socket.
    fn start(stream: TcpStream, address: &str, client_id: &str, request_timeout: Duration) -> Result<Connection> {
        stream.set_nodelay(true)?;
        let (read_half, write_half) = stream.into_split();
        let waiters: Waiters = Arc::new(Mutex::new(HashMap::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let (outgoing, outgoing_rx) = mpsc::channel(CONNECTION_QUEUE_DEPTH);
        let reader = tokio::spawn(read_loop(
            read_half,
            waiters.clone(),
            closed.clone(),
            address.to_string(),
        ));
        let writer = tokio::spawn(write_loop(write_half, outgoing_rx, waiters.clone(), closed.clone()));
        Ok(Connection {
            address: address.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            request_timeout,
            versions: HashMap::new(),
            next_correlation_id: AtomicI32::new(0),
            waiters,
            outgoing,
            closed,
            reader,
            writer,
        })
    }

    /// The `host:port` this connection was opened to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the socket failed or was closed; a closed connection fails every request.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The broker's supported version range of an API, as advertised by ApiVersions.
    pub fn broker_versions(&self, api_key: ApiKey) -> Option<VersionRange> {
        self.versions
            .get(&(api_key as i16))
            .map(|&(min, max)| VersionRange { min, max })
    }

    /// The version `send` uses for request type `Req`: the highest both sides support.
    pub fn version_for<Req: Request>(&self) -> Result<i16> {
        let (broker_min, broker_max) = self
            .versions
            .get(&Req::KEY)
            .copied()
            .ok_or_else(|| Error::Protocol(format!("broker does not support API key {}", Req::KEY)))?;
        let client_min = Req::VERSIONS.min;
        let client_max = Req::VERSIONS.max.min(client_version_max(Req::KEY));
        let version = broker_max.min(client_max);
        if version < broker_min.max(client_min) {
            return Err(Error::Protocol(format!(
                "no common version for API key {}: broker {broker_min}..={broker_max}, client {client_min}..={client_max}",
                Req::KEY
            )));
        }
        Ok(version)
    }

    /// Sends a request with the negotiated version and waits for its response (at most the
    /// request timeout).
    pub async fn send<Req: Request>(&self, request: &Req) -> Result<Req::Response> {
        let version = self.version_for::<Req>()?;
        self.send_version(request, version).await
    }

    /// Sends a request that the broker does not answer (a Produce with acks=0) and returns once
    /// it has been written to the socket.
    pub async fn send_without_response<Req: Request>(&self, request: &Req) -> Result<()> {
        self.submit(request, false).await?.response().await.map(|_| ())
    }

    /// Queues a request for writing and returns its pending response. Requests submitted
    /// one after another by one task are written in that order (a Produce pipeline relies
    /// on it: sequence numbers must reach the broker in order); `None` for a Produce with
    /// acks=0, which gets no response.
    pub async fn submit<Req: Request>(&self, request: &Req, expect_response: bool) -> Result<Submitted<Req>> {
        let version = self.version_for::<Req>()?;
        self.submit_version(request, version, expect_response).await
    }

    /// Sends a request with an explicit version.
    pub async fn send_version<Req: Request>(&self, request: &Req, version: i16) -> Result<Req::Response> {
        self.submit_version(request, version, true)
            .await?
            .response()
            .await?
            .ok_or_else(|| Error::Protocol(format!("no response to API key {}", Req::KEY)))
    }

    async fn submit_version<Req: Request>(
        &self,
        request: &Req,
        version: i16,
        expect_response: bool,
    ) -> Result<Submitted<Req>> {
        let correlation_id = self.next_correlation_id();
        let frame = self.encode(request, version, correlation_id)?;
        Ok(Submitted {
            pending: self.queue(frame, correlation_id, Req::KEY, expect_response).await?,
            version,
            request: std::marker::PhantomData,
        })
    }

    async fn round_trip(&self, frame: Bytes, correlation_id: i32, api_key: i16) -> Result<Bytes> {
        let pending = self.queue(frame, correlation_id, api_key, true).await?;
        Ok(pending.wait().await?.unwrap_or_default())
    }

    /// Hands a frame to the writer; a response waiter is registered first.
    async fn queue(&self, frame: Bytes, correlation_id: i32, api_key: i16, expect_response: bool) -> Result<Pending> {
        let (reply, waiting) = if expect_response {
            let (response_tx, response_rx) = oneshot::channel();
            lock(&self.waiters).insert(correlation_id, response_tx);
            (Reply::Response, Waiting::Response(response_rx))
        } else {
            let (written_tx, written_rx) = oneshot::channel();
            (Reply::Written(written_tx), Waiting::Written(written_rx))
        };
        if let Err(error) = self.enqueue(Outgoing { frame, reply }).await {
            lock(&self.waiters).remove(&correlation_id);
            return Err(error);
        }
        trace!(address = %self.address, api_key, correlation_id, "request sent");
        Ok(Pending {
            waiting,
            correlation_id,
            api_key,
            waiters: self.waiters.clone(),
            address: self.address.clone(),
            request_timeout: self.request_timeout,
        })
    }

    async fn enqueue(&self, outgoing: Outgoing) -> Result<()> {
        if self.is_closed() {
            return Err(closed_error(&self.address));
        }
        self.outgoing
            .send(outgoing)
            .await
            .map_err(|_| closed_error(&self.address))
    }

    fn next_correlation_id(&self) -> i32 {
        // Wraps after 2^31 requests; ids are only compared for equality.
        self.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX
    }

    fn encode<Req: Request>(&self, request: &Req, version: i16, correlation_id: i32) -> Result<Bytes> {
        let header = RequestHeader::default()
            .with_request_api_key(Req::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut frame, Req::header_version(version))
            .map_err(|e| Error::Protocol(format!("encoding request header: {e}")))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| Error::Protocol(format!("encoding request (API key {}, v{version}): {e}", Req::KEY)))?;
        let length = i32::try_from(frame.len() - 4)
            .map_err(|_| Error::Protocol(format!("request of {} bytes is too large", frame.len())))?;
        frame[..4].copy_from_slice(&length.to_be_bytes());
        Ok(frame.freeze())
    }

    async fn handshake(&self) -> Result<HashMap<i16, (i16, i16)>> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_SOFTWARE_NAME))
            .with_client_software_version(StrBytes::from_static_str(CLIENT_SOFTWARE_VERSION));
        let correlation_id = self.next_correlation_id();
        let frame = self.encode(&request, 3, correlation_id)?;
        let mut body = self.round_trip(frame, correlation_id, ApiVersionsRequest::KEY).await?;
        // A broker that does not know v3 answers in v0 with UNSUPPORTED_VERSION, so peek the
        // error code (the first field in every version) before decoding.
        let header = ResponseHeader::decode(&mut body, ApiVersionsResponse::header_version(3))
            .map_err(|e| Error::Protocol(format!("ApiVersions response header: {e}")))?;
        check_correlation(header.correlation_id, correlation_id)?;
        let response = if body.len() >= 2 && i16::from_be_bytes([body[0], body[1]]) == UNSUPPORTED_VERSION {
            debug!(address = %self.address, "ApiVersions v3 unsupported, retrying with v0");
            self.send_version(&ApiVersionsRequest::default(), 0).await?
        } else {
            ApiVersionsResponse::decode(&mut body, 3)
                .map_err(|e| Error::Protocol(format!("malformed ApiVersions v3 response: {e}")))?
        };
        Error::check(response.error_code, None)?;
        let mut versions = HashMap::with_capacity(response.api_keys.len());
        for api in &response.api_keys {
            if api.min_version < 0 || api.max_version < api.min_version {
                return Err(Error::Protocol(format!(
                    "broker advertises API key {} with versions {}..={}",
                    api.api_key, api.min_version, api.max_version
                )));
            }
            versions.insert(api.api_key, (api.min_version, api.max_version));
        }
        Ok(versions)
    }
}

/// Whether `address` ends in `:port`: without one a name lookup fails with a message that
/// does not say so.
fn has_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// The highest version this client speaks per API when it is below what `kafka-protocol`
/// knows: newer versions of these address topics by id only.
fn client_version_max(api_key: i16) -> i16 {
    match ApiKey::try_from(api_key) {
        Ok(ApiKey::Produce) => 12,
        Ok(ApiKey::Fetch) => 12,
        Ok(ApiKey::Metadata) => 12,
        // v4+ batch several transactional ids and are sent by brokers, not producers.
        Ok(ApiKey::AddPartitionsToTxn) => 3,
        _ => i16::MAX,
    }
}

fn decode_response<Req: Request>(body: &mut Bytes, version: i16, correlation_id: i32) -> Result<Req::Response> {
    let header = ResponseHeader::decode(body, <Req::Response as HeaderVersion>::header_version(version))
        .map_err(|e| Error::Protocol(format!("malformed response header (API key {}): {e}", Req::KEY)))?;
    check_correlation(header.correlation_id, correlation_id)?;
    let response = <Req::Response as Decodable>::decode(body, version)
        .map_err(|e| Error::Protocol(format!("malformed response (API key {}, v{version}): {e}", Req::KEY)))?;
    if body.has_remaining() {
        return Err(Error::Protocol(format!(
            "{} trailing bytes after response (API key {}, v{version})",
            body.remaining(),
            Req::KEY
        )));
    }
    Ok(response)
}

fn oversized_frame(length: usize) -> String {
    match u32::try_from(length) {
        Ok(length) => oversized_frame_bytes(length.to_be_bytes()),
        Err(_) => format!("response frame of {length} bytes"),
    }
}

/// A length prefix that no Kafka broker sends; text there (`HTTP`, `SSH-`) names the
/// protocol that actually answered.
fn oversized_frame_bytes(prefix: [u8; 4]) -> String {
    if prefix.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        let text: String = prefix.iter().map(|b| char::from(*b)).collect();
        format!("the answer starts with \"{text}\"")
    } else {
        match i32::from_be_bytes(prefix) {
            length if length < 0 => format!("negative frame length {length}"),
            length => format!("response frame of {length} bytes exceeds the limit of {RESPONSE_FRAME_BYTES_MAX}"),
        }
    }
}

fn check_correlation(received: i32, expected: i32) -> Result<()> {
    if received != expected {
        return Err(Error::Protocol(format!(
            "response correlation id {received}, expected {expected}"
        )));
    }
    Ok(())
}

fn closed_error(address: &str) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        format!("connection to {address} closed"),
    ))
}

fn fail_all(waiters: &Waiters, error: &Error) {
    let drained: Vec<_> = lock(waiters).drain().collect();
    for (_, waiter) in drained {
        let _ = waiter.send(Err(error.clone()));
    }
}

async fn write_loop(
    write_half: OwnedWriteHalf,
    mut outgoing: mpsc::Receiver<Outgoing>,
    waiters: Waiters,
    closed: Arc<AtomicBool>,
) {
    let mut writer = BufWriter::new(write_half);
    let mut written = Vec::new();
    while let Some(first) = outgoing.recv().await {
        let mut next = Some(first);
        let mut result = Ok(());
        // Write everything already queued, then flush once: pipelined requests share syscalls.
        while let Some(item) = next.take() {
            if result.is_ok() {
                result = writer.write_all(&item.frame).await;
            }
            if let Reply::Written(tx) = item.reply {
                written.push(tx);
            }
            next = outgoing.try_recv().ok();
        }
        if result.is_ok() {
            result = writer.flush().await;
        }
        for tx in written.drain(..) {
            let _ = tx.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| Error::Io(std::io::Error::new(e.kind(), e.to_string()))),
            );
        }
        if let Err(error) = result {
            debug!(%error, "write failed, closing connection");
            closed.store(true, Ordering::Release);
            fail_all(&waiters, &Error::Io(error));
            return;
        }
    }
    let _ = writer.shutdown().await;
}

async fn read_loop(mut read_half: OwnedReadHalf, waiters: Waiters, closed: Arc<AtomicBool>, address: String) {
    let error = loop {
        match read_frame(&mut read_half).await {
            Ok(frame) => {
                if frame.len() < 4 {
                    break Error::Protocol(format!("response frame of {} bytes from {address}", frame.len()));
                }
                let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                let waiter = lock(&waiters).remove(&correlation_id);
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(Ok(frame));
                    }
                    None => debug!(%address, correlation_id, "response nobody waits for (timed out?)"),
                }
            }
            Err(error) => break error,
        }
    };
    debug!(%address, %error, "connection closed");
    closed.store(true, Ordering::Release);
    fail_all(&waiters, &error);
}

async fn read_frame(read_half: &mut OwnedReadHalf) -> Result<Bytes> {
    let length = read_half.read_i32().await?;
    let length = usize::try_from(length).map_err(|_| Error::Protocol(oversized_frame_bytes(length.to_be_bytes())))?;
    if length > RESPONSE_FRAME_BYTES_MAX {
        return Err(Error::Protocol(oversized_frame(length)));
    }
    let mut frame = BytesMut::zeroed(length);
    read_half.read_exact(&mut frame).await?;
    Ok(frame.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{FetchRequest, MetadataRequest, ProduceRequest};

    #[test]
    fn addresses_need_a_port() {
        assert!(has_port("127.0.0.1:9092"));
        assert!(has_port("broker.example:9092"));
        assert!(has_port("[::1]:9092"));
        assert!(!has_port("localhost"));
        assert!(!has_port("localhost:"));
        assert!(!has_port(":9092"));
        assert!(!has_port("localhost:http"));
    }

    #[test]
    fn text_where_a_frame_length_belongs_names_the_protocol() {
        assert_eq!(oversized_frame_bytes(*b"HTTP"), "the answer starts with \"HTTP\"");
        assert_eq!(oversized_frame(0x7fff_ffff).split(' ').next(), Some("response"));
    }

    #[test]
    fn client_caps_versions_that_need_topic_ids() {
        assert_eq!(client_version_max(ProduceRequest::KEY), 12);
        assert_eq!(client_version_max(FetchRequest::KEY), 12);
        assert_eq!(client_version_max(MetadataRequest::KEY), 12);
        assert_eq!(client_version_max(ApiVersionsRequest::KEY), i16::MAX);
    }
}
