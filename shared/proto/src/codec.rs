//! The codec every generated Recur service and client uses: prost, plus a
//! check of each decoded message's text before any handler sees it. A text
//! field holding a NUL character is refused with INVALID_ARGUMENT naming the
//! field: Postgres cannot store one, SQLite would, and no caller means to
//! send one, so both backends refuse it alike at the door.

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
            if let Some(field) = crate::fields::find_nul(&name, buf.chunk()) {
                return Err(refused(&field));
            }
            return U::decode(buf).map(Some).map_err(parse_error);
        }
        // A message arrives in one contiguous buffer; should it not, the
        // check works on a copy.
        let bytes = buf.copy_to_bytes(buf.remaining());
        if let Some(field) = crate::fields::find_nul(&name, &bytes) {
            return Err(refused(&field));
        }
        U::decode(bytes).map(Some).map_err(parse_error)
    }
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
