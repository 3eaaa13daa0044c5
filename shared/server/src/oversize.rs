//! One answer for a request that is too large, wherever it is caught. The
//! request codec refuses a request over its RPC's limit (1 MiB; 4 MiB for
//! `ApplyCatalog`) with RESOURCE_EXHAUSTED `MESSAGE_TOO_LARGE`; tonic itself
//! refuses anything over its cap (4 MiB, the largest limit of any RPC)
//! before the codec sees it, with OUT_OF_RANGE. [`rewrite`] turns tonic's answer into the codec's, so a
//! caller gets the same code and reason for every oversized request.

use http::Response;

/// The text of tonic's refusal: "Error, decoded message length too large:
/// found {len} bytes, the limit is: {max} bytes".
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: found ";

/// `response` unchanged, or tonic's OUT_OF_RANGE for an oversized request
/// as RESOURCE_EXHAUSTED `MESSAGE_TOO_LARGE`.
pub fn rewrite(response: Response<tonic::body::Body>) -> Response<tonic::body::Body> {
    let headers = response.headers();
    if headers.get("grpc-status").and_then(|v| v.to_str().ok()) != Some("11") {
        return response;
    }
    let Some(message) = headers.get("grpc-message").and_then(|v| v.to_str().ok()) else { return response };
    let Some((len, max)) = parse(message) else { return response };
    recur_proto::codec::too_large(len, max).into_http()
}

/// The sizes in tonic's (percent-encoded) message.
fn parse(message: &str) -> Option<(usize, usize)> {
    let decoded = message.replace("%20", " ").replace("%3A", ":").replace("%2C", ",");
    let rest = decoded.strip_prefix(TONIC_TOO_LARGE)?;
    let (len, rest) = rest.split_once(" bytes")?;
    let max = rest.trim_start_matches(", the limit is: ").split_once(" bytes")?.0;
    Some((len.trim().parse().ok()?, max.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_refusal_becomes_message_too_large() {
        let tonic = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 10485776 bytes, the limit is: 4194304 bytes",
        );
        let response = rewrite(tonic.into_http());
        assert_eq!(response.headers().get("grpc-status").and_then(|v| v.to_str().ok()), Some("8"));
        let status = tonic::Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(recur_error::details(&status).reason, "MESSAGE_TOO_LARGE");
        assert!(status.message().contains("4194304"), "{}", status.message());

        let other = tonic::Status::out_of_range("page 9 is past the end");
        let response = rewrite(other.into_http());
        assert_eq!(response.headers().get("grpc-status").and_then(|v| v.to_str().ok()), Some("11"));
    }
}
