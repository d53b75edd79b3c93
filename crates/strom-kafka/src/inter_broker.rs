//! Framing shared by the inter-broker clients (replica fetches, transaction markers):
//! a request encoded with its header and length prefix, and a response checked against
//! the correlation id it answers.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The frame of `request` (`api_key` at `version`), length prefix included.
pub(crate) fn encode_request<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    client_id: &'static str,
    request: &R,
    correlation_id: i32,
) -> Result<BytesMut, String> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    let encoded = header
        .encode(&mut frame, api_key.request_header_version(version))
        .and_then(|_| request.encode(&mut frame, version));
    encoded.map_err(|e| format!("could not encode the request: {e}"))?;
    let length = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    Ok(frame)
}

/// The response in `body` (a frame without its length prefix), which must answer
/// `correlation_id` and hold nothing after the response.
pub(crate) fn decode_response<R: Decodable>(
    api_key: ApiKey,
    version: i16,
    mut body: Bytes,
    correlation_id: i32,
) -> Result<R, String> {
    let header = ResponseHeader::decode(&mut body, api_key.response_header_version(version))
        .map_err(|e| format!("bad response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "answer to request {} where {correlation_id} was sent",
            header.correlation_id
        ));
    }
    let response = R::decode(&mut body, version).map_err(|e| format!("bad response: {e}"))?;
    if body.has_remaining() {
        return Err(format!("{} bytes after the response", body.remaining()));
    }
    Ok(response)
}
