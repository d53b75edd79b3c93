//! One client connection. Requests are read and run strictly in order and answered in
//! order; responses to requests that are already buffered are written together in one
//! write. A response that waits for an fsync (acks=all) is deferred: the connection reads
//! and runs the next requests meanwhile and holds their responses until it is written.
//!
//! Memory: a request that fits the read buffer uses it; a larger one first takes its
//! size from the listener's `queued.max.request.bytes` pool (waiting, and reading no
//! more from this client, until there is room) and gives it back once it has run. A
//! connection with nothing in flight that stays silent for `connections.max.idle.ms`
//! is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesOrdered, StreamExt};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use strom_broker::Caller;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::apis::{self, Deferred};
use crate::constants::{PIPELINED_RESPONSES_MAX, READ_BUFFER_BYTES};
use crate::context::{Context, Peer};
use crate::frame;
use crate::outbound::Outbound;

/// The listener's name in every caller's identity (one plaintext listener today).
const LISTENER_NAME: &str = "PLAINTEXT";

pub async fn serve(mut stream: TcpStream, peer: SocketAddr, context: Arc<Context>) {
    let _ = stream.set_nodelay(true);
    let mut input = BytesMut::with_capacity(READ_BUFFER_BYTES);
    // Responses ready to write. Every response in `waiting` comes after all of these.
    let mut output = Outbound::default();
    let mut waiting: FuturesOrdered<Deferred> = FuturesOrdered::new();
    let mut shutdown = context.shutdown.clone();
    let max = context.config.socket_request_max_bytes;
    let idle = Duration::from_millis(context.config.connections_max_idle_ms);
    // One timer for the connection's life, moved on only when it fires (not re-armed
    // for every request): the connection is idle when nothing happened since `last_event`.
    let mut last_event = Instant::now();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    // The share of `queued.max.request.bytes` taken for the large frame being read.
    let mut held: Option<OwnedSemaphorePermit> = None;
    // No authentication yet: every connection is the anonymous principal.
    let caller = Caller::anonymous(LISTENER_NAME, peer);
    loop {
        while waiting.len() < PIPELINED_RESPONSES_MAX {
            let request = match frame::parse(&mut input, max) {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "bad frame; closing connection");
                    return close(&mut stream, output, waiting).await;
                }
            };
            // Released once the request has run (its bytes are dropped by then).
            let _memory = held.take();
            let result = if waiting.is_empty() {
                handle(&context, &caller, request, &mut output).await
            } else {
                // Behind a deferred response: queue this one after it.
                let mut own = Outbound::default();
                let result = handle(&context, &caller, request, &mut own).await;
                if !own.is_empty() {
                    waiting.push_back(Box::pin(std::future::ready(Ok(own))));
                }
                result
            };
            // A request that ran long (a long-poll Fetch) was no idle time.
            last_event = Instant::now();
            match result {
                Ok(Some(deferred)) => {
                    // Its own task, so the wait (an fsync) starts now even while this
                    // connection is busy with a long request such as a long-poll Fetch.
                    let task = tokio::spawn(deferred);
                    waiting.push_back(Box::pin(async move {
                        task.await
                            .unwrap_or_else(|e| Err(format!("deferred response failed: {e}")))
                    }));
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(%peer, %reason, "closing connection");
                    return close(&mut stream, output, waiting).await;
                }
            }
            // Hold the response while more requests are already here.
            if output.len() >= READ_BUFFER_BYTES {
                break;
            }
        }
        if !output.is_empty() && (output.len() >= READ_BUFFER_BYTES || !frame_ready(&input) || !waiting.is_empty()) {
            if let Err(e) = output.write_to(&mut stream).await {
                tracing::debug!(%peer, error = %e, "write failed");
                return;
            }
        }
        if frame_ready(&input) && waiting.len() < PIPELINED_RESPONSES_MAX {
            continue;
        }
        // (A frame beyond socket.request.max.bytes is refused by the next parse instead.)
        let large = |total: &usize| *total > READ_BUFFER_BYTES && *total <= max.saturating_add(4);
        if let Some(total) = frame::pending(&input).filter(large) {
            if held.is_none() {
                let permits = u32::try_from(total).unwrap_or(u32::MAX);
                let acquire = context.request_memory.clone().acquire_many_owned(permits);
                tokio::select! {
                    permit = acquire => match permit {
                        Ok(permit) => held = Some(permit),
                        Err(_) => return,
                    },
                    _ = shutdown.changed() => return,
                }
            }
            input.reserve(total - input.len());
        } else if input.capacity() - input.len() < 1024 {
            input.reserve(READ_BUFFER_BYTES);
        }
        tokio::select! {
            read = stream.read_buf(&mut input), if waiting.len() < PIPELINED_RESPONSES_MAX => match read {
                Ok(0) => return close(&mut stream, output, waiting).await,
                Ok(_) => last_event = Instant::now(),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "read failed");
                    return;
                }
            },
            Some(done) = waiting.next(), if !waiting.is_empty() => match done {
                Ok(response) => {
                    output.append(response);
                    last_event = Instant::now();
                }
                Err(reason) => {
                    tracing::warn!(%peer, %reason, "closing connection");
                    return close(&mut stream, output, waiting).await;
                }
            },
            () = &mut idle_timer, if waiting.is_empty() => {
                let deadline = last_event + idle;
                if Instant::now() >= deadline {
                    tracing::debug!(%peer, "connections.max.idle.ms passed with nothing to do; closing connection");
                    return close(&mut stream, output, waiting).await;
                }
                idle_timer.as_mut().reset(deadline);
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Writes what is answered, waiting for deferred responses, before the connection closes.
async fn close(stream: &mut TcpStream, mut output: Outbound, mut waiting: FuturesOrdered<Deferred>) {
    while let Some(done) = waiting.next().await {
        match done {
            Ok(response) => output.append(response),
            Err(_) => break,
        }
    }
    let _ = output.write_to(stream).await;
}

fn frame_ready(input: &BytesMut) -> bool {
    match input.get(..4) {
        Some(len) => {
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            usize::try_from(len).is_ok_and(|len| input.len() >= 4 + len)
        }
        None => false,
    }
}

/// A request frame's prefix and header, decoded; the body is left in the frame.
pub(crate) enum Parsed {
    Request {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        header: RequestHeader,
    },
    /// An ApiVersions request of a version not served: answered in v0, not decoded.
    UnsupportedApiVersions { correlation_id: i32 },
}

/// Decodes the 8-byte prefix (API, version, correlation id), checks the API and
/// version are served and decodes the header at the API's header version, leaving the
/// body in `request`. An error closes the connection, as Kafka does.
pub(crate) fn parse_request(request: &mut Bytes) -> Result<Parsed, String> {
    let Some(prefix) = request.get(..8) else {
        return Err(format!("request of {} bytes is shorter than a header", request.len()));
    };
    let api_key_raw = i16::from_be_bytes([prefix[0], prefix[1]]);
    let version = i16::from_be_bytes([prefix[2], prefix[3]]);
    let correlation_id = i32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    let api_key = ApiKey::try_from(api_key_raw).map_err(|_| format!("unknown api key {api_key_raw}"))?;
    if !apis::is_supported(api_key, version) {
        if api_key == ApiKey::ApiVersions {
            return Ok(Parsed::UnsupportedApiVersions { correlation_id });
        }
        return Err(format!("unsupported version {version} of {api_key:?}"));
    }
    let header = RequestHeader::decode(request, api_key.request_header_version(version))
        .map_err(|e| format!("bad {api_key:?} header: {e}"))?;
    Ok(Parsed::Request {
        api_key,
        version,
        correlation_id,
        header,
    })
}

/// Decode one request, run it and append the framed response (if any) to `output`, or
/// return the response that finishes later. An error closes the connection, as Kafka
/// does for requests it cannot parse.
async fn handle(
    context: &Context,
    caller: &Caller,
    mut request: Bytes,
    output: &mut Outbound,
) -> Result<Option<Deferred>, String> {
    let (api_key, version, correlation_id, header) = match parse_request(&mut request)? {
        Parsed::Request {
            api_key,
            version,
            correlation_id,
            header,
        } => (api_key, version, correlation_id, header),
        Parsed::UnsupportedApiVersions { correlation_id } => {
            // The protocol's rule: answer in v0 with UNSUPPORTED_VERSION and our ranges.
            apis::api_versions::unsupported_version(correlation_id, output.buffer());
            return Ok(None);
        }
    };
    let peer = Peer {
        address: caller
            .client_address
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
        caller: caller.clone(),
        client_id: header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
    };
    let mut writer = apis::ResponseWriter {
        output,
        header: apis::ResponseHeader {
            correlation_id,
            api_key,
            version,
        },
        deferred: None,
    };
    apis::dispatch(context, &peer, api_key, version, request, &mut writer).await?;
    Ok(writer.deferred)
}
