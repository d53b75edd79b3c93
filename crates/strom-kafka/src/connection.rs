//! One client connection. Requests are read and answered strictly in order, so
//! pipelined requests get their responses in order; responses to requests that are
//! already buffered are written together in one write.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::apis;
use crate::constants::READ_BUFFER_BYTES;
use crate::frame;
use crate::server::{Context, Peer};

pub async fn serve(mut stream: TcpStream, peer: SocketAddr, context: Arc<Context>) {
    let _ = stream.set_nodelay(true);
    let mut input = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut output = BytesMut::new();
    let mut shutdown = context.shutdown.clone();
    let max = context.config.socket_request_max_bytes;
    loop {
        match frame::parse(&mut input, max) {
            Ok(Some(request)) => match handle(&context, peer, request, &mut output).await {
                Ok(()) => {
                    // Hold the response while more requests are already here.
                    if output.len() >= READ_BUFFER_BYTES || !frame_ready(&input) {
                        if let Err(e) = stream.write_all(&output).await {
                            tracing::debug!(%peer, error = %e, "write failed");
                            return;
                        }
                        output.clear();
                    }
                }
                Err(reason) => {
                    tracing::warn!(%peer, %reason, "closing connection");
                    let _ = stream.write_all(&output).await;
                    return;
                }
            },
            Ok(None) => {
                if input.capacity() - input.len() < 1024 {
                    input.reserve(READ_BUFFER_BYTES);
                }
                let read = tokio::select! {
                    read = stream.read_buf(&mut input) => read,
                    _ = shutdown.changed() => return,
                };
                match read {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "read failed");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "bad frame; closing connection");
                return;
            }
        }
    }
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

/// Decode one request, run it and append the framed response (if any) to `output`.
/// An error closes the connection, as Kafka does for requests it cannot parse.
async fn handle(
    context: &Context,
    address: SocketAddr,
    mut request: Bytes,
    output: &mut BytesMut,
) -> Result<(), String> {
    let Some(prefix) = request.get(..8) else {
        return Err(format!("request of {} bytes is shorter than a header", request.len()));
    };
    let api_key_raw = i16::from_be_bytes([prefix[0], prefix[1]]);
    let version = i16::from_be_bytes([prefix[2], prefix[3]]);
    let correlation_id = i32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    let api_key = ApiKey::try_from(api_key_raw).map_err(|_| format!("unknown api key {api_key_raw}"))?;
    if !apis::is_supported(api_key, version) {
        if api_key == ApiKey::ApiVersions {
            // The protocol's rule: answer in v0 with UNSUPPORTED_VERSION and our ranges.
            apis::api_versions::unsupported_version(correlation_id, output);
            return Ok(());
        }
        return Err(format!("unsupported version {version} of {api_key:?}"));
    }
    let header = RequestHeader::decode(&mut request, api_key.request_header_version(version))
        .map_err(|e| format!("bad {api_key:?} header: {e}"))?;
    let peer = Peer {
        address,
        client_id: header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
    };
    let mut writer = apis::ResponseWriter {
        output,
        correlation_id,
        api_key,
        version,
    };
    apis::dispatch(context, &peer, api_key, version, request, &mut writer).await
}
