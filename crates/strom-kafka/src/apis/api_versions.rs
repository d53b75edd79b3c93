//! ApiVersions: the table of served APIs, and the v0 fallback answer for a version
//! of ApiVersions itself that the broker does not serve.

use bytes::{BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Encodable;

use super::{advertised_range, SUPPORTED};

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            let (min, max) = advertised_range(*key, *min, *max);
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub fn handle(_request: ApiVersionsRequest) -> ApiVersionsResponse {
    // Default-valued tagged fields are left at their defaults so the codec omits them
    // (librdkafka 2.0.2 misreads them otherwise).
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys())
}

/// Append a framed v0 ApiVersions response carrying UNSUPPORTED_VERSION.
pub fn unsupported_version(correlation_id: i32, output: &mut BytesMut) {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    let mut body = BytesMut::new();
    if response.encode(&mut body, 0).is_err() {
        return;
    }
    output.put_i32(4 + body.len() as i32);
    output.put_i32(correlation_id);
    output.extend_from_slice(&body);
}
