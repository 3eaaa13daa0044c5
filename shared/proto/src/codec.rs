//! The codec every generated Recur service and client uses: prost, plus a
//! check of each decoded message before any handler sees it.
//!
//! - A request (the input of an RPC) is checked against every limit of
//!   [`crate::limits`]: its size (RESOURCE_EXHAUSTED, `MESSAGE_TOO_LARGE`),
//!   and each field's length, alphabet and number of values
//!   (INVALID_ARGUMENT naming the field and the limit).
//! - Any message, responses included, is refused when a text field holds a
//!   NUL character (INVALID_ARGUMENT, `NUL_CHARACTER`): Postgres cannot
//!   store one, SQLite would, and no caller means to send one, so both
//!   backends refuse it alike at the door.

use std::marker::PhantomData;

use prost::{Message, Name};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// [`tonic_prost::ProstCodec`] with the text check on decoding.
#[derive(Debug, Clone)]
pub struct CheckedCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for CheckedCodec<T, U> {
    fn default() -> Self {
        CheckedCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for CheckedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder { _pd: PhantomData }
    }
}

/// Decodes `U` after checking its text fields.
#[derive(Debug)]
pub struct CheckedDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Name + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        use prost::bytes::Buf;
        let name = U::full_name();
        if buf.chunk().len() == buf.remaining() {
            check(&name, buf.chunk())?;
            return U::decode(buf).map(Some).map_err(parse_error);
        }
        // A message arrives in one contiguous buffer; should it not, the
        // check works on a copy.
        let bytes = buf.copy_to_bytes(buf.remaining());
        check(&name, &bytes)?;
        U::decode(bytes).map(Some).map_err(parse_error)
    }
}

/// Checks encoded message `bytes` of the proto type `name`.
fn check(name: &str, bytes: &[u8]) -> Result<(), Status> {
    if !is_request(name) {
        return match crate::fields::find_nul(name, bytes) {
            Some(field) => Err(refused(&field)),
            None => Ok(()),
        };
    }
    let max = crate::limits::max_message_bytes(name);
    if bytes.len() > max {
        return Err(too_large(bytes.len(), max));
    }
    let violations = crate::limits::check_request(name, bytes);
    if violations.is_empty() {
        return Ok(());
    }
    Err(over_limits(violations))
}

/// Whether proto type `name` is the input of an RPC (responses that Recur's
/// own clients decode are not bound by the request limits).
fn is_request(name: &str) -> bool {
    static INPUTS: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    INPUTS
        .get_or_init(|| {
            let set = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap_or_default();
            set.file
                .iter()
                .flat_map(|f| f.service.iter())
                .flat_map(|s| s.method.iter())
                .map(|m| m.input_type().trim_start_matches('.').to_string())
                .collect()
        })
        .contains(name)
}

/// A request larger than its RPC allows: RESOURCE_EXHAUSTED, as gRPC
/// libraries answer a message over their configured limit (never retried
/// with the same message: the reason says why).
pub fn too_large(len: usize, max: usize) -> Status {
    recur_error::AppError::new(
        tonic::Code::ResourceExhausted,
        "MESSAGE_TOO_LARGE",
        format!("the request is {len} bytes; this RPC takes at most {max} bytes"),
    )
    .with_metadata("limit_bytes", max.to_string())
    .into()
}

fn over_limits(violations: Vec<crate::limits::Violation>) -> Status {
    let reason = violations[0].reason;
    let message = match violations.as_slice() {
        [only] => format!("{}: {}", only.field, only.description),
        many => {
            format!("{} fields over their limits; the first, {}: {}", many.len(), many[0].field, many[0].description)
        }
    };
    let mut e = recur_error::AppError::new(tonic::Code::InvalidArgument, reason, message);
    for v in violations {
        e = e.with_field(v.field, v.description);
    }
    e.into()
}

/// As prost's codec: a message that does not parse is INTERNAL (the gRPC
/// status code guide).
fn parse_error(e: prost::DecodeError) -> Status {
    Status::internal(e.to_string())
}

fn refused(field: &str) -> Status {
    recur_error::AppError::new(
        tonic::Code::InvalidArgument,
        "NUL_CHARACTER",
        format!("{field}: text may not contain a NUL character (U+0000)"),
    )
    .with_field(field, "contains a NUL character (U+0000)")
    .into()
}
