//! The limits of every request, declared once and enforced in one place: the
//! request codec ([`crate::codec`]) runs [`check_request`] on each request
//! message before any handler sees it, walking the encoded message by its
//! descriptor. A field added to a request later is bounded by its name
//! (see [`kind_of`]) without anyone remembering to list it.
//!
//! | what | limit |
//! |---|---|
//! | ids (`id`, `*_id`, `*_ids`) | 64 characters of `A–Z a–z 0–9 _ - .` |
//! | ids that also take a handle (catalog ids, `offering_id`, `rate_id`, `product_id`) | 100 of the same |
//! | handles, codes, references (`handle`, `code`, `coupon_codes`, `custom_id`, `*_code`, dates, enums as text, …) | 100 |
//! | names (`name`, `*_name`, `title`, address lines, `city`) | 255 |
//! | e-mail addresses | 254 |
//! | phone numbers | 32 |
//! | URLs (`url`, `*_url`) | 2,048 |
//! | decimal amounts and quantities | 40 |
//! | tokens and keys (`idempotency_key`, `payment_token`, `page_token`, provider ids, `event_id`) | 255 (page tokens 1,024) |
//! | free text (`description`, `notes`, `reason`, anything else) | 10,000 |
//! | `metadata` (any string map) | 50 keys; key 40, value 500 |
//! | repeated fields | `coupon_codes` and `coupon_usages` 20, `offerings` and `tags` 50, `items` 100, usage `records` 1,000, any other 100 |
//! | a whole request message | 1 MiB; `ApplyCatalog` 4 MiB |
//!
//! Lengths count characters (Unicode scalar values), not bytes. A catalog
//! document (`ApplyCatalogRequest.document`) is bounded only by its message.

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto};

use crate::fields::{descriptors, message_type, read_bytes, read_varint};

/// How a string field is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A Recur id: `prefix_random`.
    Id,
    /// An id or a catalog handle (`starter-monthly`).
    IdOrHandle,
    /// A handle, code or the tenant's own reference.
    Code,
    Name,
    Email,
    Phone,
    Url,
    /// A decimal amount or quantity as text (`"12.50"`).
    Decimal,
    /// An opaque token or key.
    Token,
    /// A page token.
    PageToken,
    /// Free text.
    Text,
    /// A whole document, bounded by its message only.
    Document,
}

impl Kind {
    /// The most characters a value of this kind may have.
    pub const fn max_chars(self) -> usize {
        match self {
            Kind::Id => 64,
            Kind::IdOrHandle | Kind::Code => 100,
            Kind::Name => 255,
            Kind::Email => 254,
            Kind::Phone => 32,
            Kind::Url => 2048,
            Kind::Decimal => 40,
            Kind::Token => 255,
            Kind::PageToken => 1024,
            Kind::Text => 10_000,
            Kind::Document => usize::MAX,
        }
    }

    /// Whether values are restricted to the id alphabet.
    const fn id_alphabet(self) -> bool {
        matches!(self, Kind::Id | Kind::IdOrHandle)
    }
}

/// The most entries of a string map (`metadata`), and the most characters
/// of its keys and values (Stripe's limits).
pub const MAP_ENTRIES: usize = 50;
pub const MAP_KEY_CHARS: usize = 40;
pub const MAP_VALUE_CHARS: usize = 500;

/// The largest request message by default, and for `ApplyCatalog`.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
pub const MAX_DOCUMENT_MESSAGE_BYTES: usize = 4 << 20;

/// The largest encoded request of the proto type `full_name`.
pub fn max_message_bytes(full_name: &str) -> usize {
    match full_name {
        "recur.catalog.v1.ApplyCatalogRequest" => MAX_DOCUMENT_MESSAGE_BYTES,
        _ => MAX_MESSAGE_BYTES,
    }
}

fn is_decimal_name(field: &str) -> bool {
    matches!(
        field,
        "amount"
            | "quantity"
            | "percent"
            | "percent_off"
            | "up_to"
            | "setup_fee"
            | "tax_rate"
            | "fraction"
            | "proration_fraction"
    ) || field.ends_with("_amount")
        || field.ends_with("_quantity")
}

/// The kind of the string field `field` of a message in proto package
/// `package` (a repeated field's elements share its kind).
pub fn kind_of(package: &str, field: &str) -> Kind {
    match field {
        "document" => Kind::Document,
        "description" | "notes" | "reason" | "failure_message" | "data_json" | "message" => Kind::Text,
        "email" | "contact_email" => Kind::Email,
        "phone" => Kind::Phone,
        "page_token" | "next_page_token" => Kind::PageToken,
        "idempotency_key"
        | "payment_token"
        | "signature"
        | "secret"
        | "event_id"
        | "gateway_customer_id"
        | "client_secret"
        | "publishable_key" => Kind::Token,
        "custom_id" | "handle" | "code" | "reference" | "tag" | "tags" | "coupon" | "coupon_codes" => Kind::Code,
        "offering" | "rate" | "offering_id" | "rate_id" | "product_id" | "offering_ids" | "product_ids" => {
            Kind::IdOrHandle
        }
        "id" if package == "recur.catalog.v1" => Kind::IdOrHandle,
        f if f.starts_with("provider_") => Kind::Token,
        f if f == "url" || f.ends_with("_url") => Kind::Url,
        f if is_decimal_name(f) => Kind::Decimal,
        f if f == "id" || f.ends_with("_id") || f.ends_with("_ids") => Kind::Id,
        f if f == "name" || f.ends_with("_name") || matches!(f, "title" | "line1" | "line2" | "city" | "brand") => {
            Kind::Name
        }
        f if f.ends_with("_code")
            || f.ends_with("_date")
            || f.ends_with("_types")
            || f.ends_with("_fields")
            || matches!(
                f,
                "country"
                    | "state"
                    | "postal_code"
                    | "time_zone"
                    | "order_by"
                    | "provider"
                    | "type"
                    | "status"
                    | "number"
                    | "last4"
                    | "tax_jurisdiction"
                    | "resource_type"
                    | "default_currency"
                    | "tenant_id"
            ) =>
        {
            Kind::Code
        }
        _ => Kind::Text,
    }
}

/// The most values a repeated field named `field` may hold.
pub fn max_items(field: &str) -> usize {
    match field {
        "coupon_codes" | "coupon_usages" => 20,
        "offerings" | "tags" => 50,
        "items" => 100,
        "records" => 1000,
        _ => 100,
    }
}

/// What is wrong with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// `NUL_CHARACTER`, `FIELD_TOO_LONG`, `INVALID_ID` or `TOO_MANY_VALUES`.
    pub reason: &'static str,
    /// The field's path, such as `quote.offerings[1].offering_id` or
    /// `metadata[note]`.
    pub field: String,
    /// The rule broken, with the limit.
    pub description: String,
}

/// At most this many violations are reported for one request.
const MAX_VIOLATIONS: usize = 10;

/// Checks an encoded request of the proto type `full_name` against every
/// limit (and for NUL characters in text). Empty when it is within them.
/// A message that does not parse yields nothing: the decoder refuses it.
pub fn check_request(full_name: &str, bytes: &[u8]) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(desc) = descriptors().get(full_name) else { return out };
    let package = package_of(full_name);
    let mut path = Vec::new();
    let _ = walk(bytes, desc, package, &mut path, &mut out);
    out
}

/// The package of a message's full name (`recur.catalog.v1` of
/// `recur.catalog.v1.GetRateRequest`; nested types included).
fn package_of(full_name: &str) -> &str {
    let mut end = 0;
    for (i, part) in full_name.split('.').enumerate() {
        if part.starts_with(|c: char| c.is_ascii_uppercase()) {
            break;
        }
        end += part.len() + usize::from(i > 0);
    }
    &full_name[..end]
}

/// A step of a field path, kept as parts until a violation needs the text.
enum Seg {
    Field(&'static str),
    Index(usize),
    Key(String),
}

fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Field(name) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(name);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
            Seg::Key(k) => s.push_str(&format!("[{k}]")),
        }
    }
    s
}

/// The first `max` characters of `s`, with an ellipsis when cut.
fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Characters of UTF-8 `bytes` (invalid UTF-8 is the decoder's to refuse).
fn char_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count()
}

fn in_id_alphabet(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

struct Malformed;

fn push(out: &mut Vec<Violation>, reason: &'static str, path: &[Seg], description: String) {
    if out.len() < MAX_VIOLATIONS {
        out.push(Violation { reason, field: render(path), description });
    }
}

/// Checks one text value at `path`.
fn check_text(bytes: &[u8], kind: Kind, path: &[Seg], out: &mut Vec<Violation>) {
    if bytes.contains(&0) {
        push(out, "NUL_CHARACTER", path, "contains a NUL character (U+0000)".into());
        return;
    }
    let max = kind.max_chars();
    // Fewer bytes than the limit are fewer characters too.
    if bytes.len() > max {
        let n = char_count(bytes);
        if n > max {
            push(out, "FIELD_TOO_LONG", path, format!("at most {max} characters (got {n})"));
            return;
        }
    }
    if kind.id_alphabet() && !in_id_alphabet(bytes) {
        push(
            out,
            "INVALID_ID",
            path,
            format!("an id or handle: at most {max} of the letters A-Z a-z, digits, '_', '-' and '.'"),
        );
    }
}

fn walk(
    buf: &[u8],
    desc: &'static DescriptorProto,
    package: &str,
    path: &mut Vec<Seg>,
    out: &mut Vec<Violation>,
) -> Result<(), Malformed> {
    let mut pos = 0;
    // How many values of each repeated field were seen so far.
    let mut seen: Vec<(i32, usize)> = Vec::new();
    while pos < buf.len() {
        if out.len() >= MAX_VIOLATIONS {
            return Ok(());
        }
        let tag = read_varint(buf, &mut pos).ok_or(Malformed)?;
        let number = i32::try_from(tag >> 3).map_err(|_| Malformed)?;
        let field: Option<&'static FieldDescriptorProto> = desc.field.iter().find(|f| f.number() == number);
        let wire = tag & 7;
        let repeated = field.is_some_and(|f| f.label() == Label::Repeated);
        // The index of this value among its field's values.
        let mut index = 0;
        if repeated {
            let count = match seen.iter_mut().find(|(n, _)| *n == number) {
                Some((_, c)) => c,
                None => {
                    seen.push((number, 0));
                    &mut seen.last_mut().ok_or(Malformed)?.1
                }
            };
            index = *count;
            *count += 1;
            if wire == 2 && field.is_some_and(|f| is_packable(f.r#type())) {
                // A packed run of numbers: count its values.
                let mut p = pos;
                let data = read_bytes(buf, &mut p).ok_or(Malformed)?;
                let n = packed_len(data, field.map(|f| f.r#type()));
                *count += n.saturating_sub(1);
            }
        }
        match wire {
            0 => {
                read_varint(buf, &mut pos).ok_or(Malformed)?;
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let data = read_bytes(buf, &mut pos).ok_or(Malformed)?;
                let Some(f) = field else { continue };
                let name: &'static str = f.name();
                match f.r#type() {
                    Type::Message => {
                        let Some(inner) = message_type(f) else { continue };
                        let is_map = inner.options.as_ref().is_some_and(|o| o.map_entry());
                        path.push(Seg::Field(name));
                        if is_map {
                            map_entry(data, inner, package, path, out)?;
                        } else {
                            if repeated {
                                path.push(Seg::Index(index));
                            }
                            let inner_package = package_of(f.type_name().trim_start_matches('.'));
                            walk(data, inner, inner_package, path, out)?;
                            if repeated {
                                path.pop();
                            }
                        }
                        path.pop();
                    }
                    Type::String => {
                        path.push(Seg::Field(name));
                        if repeated {
                            path.push(Seg::Index(index));
                        }
                        check_text(data, kind_of(package, name), path, out);
                        if repeated {
                            path.pop();
                        }
                        path.pop();
                    }
                    _ => {}
                }
            }
            _ => return Err(Malformed),
        }
    }
    if pos > buf.len() {
        return Err(Malformed);
    }
    for (number, count) in seen {
        let Some(f) = desc.field.iter().find(|f| f.number() == number) else { continue };
        let is_map = message_type(f).is_some_and(|m| m.options.as_ref().is_some_and(|o| o.map_entry()));
        let max = if is_map { MAP_ENTRIES } else { max_items(f.name()) };
        if count > max {
            path.push(Seg::Field(f.name()));
            let what = if is_map { "entries" } else { "values" };
            push(out, "TOO_MANY_VALUES", path, format!("at most {max} {what} (got {count})"));
            path.pop();
        }
    }
    Ok(())
}

fn is_packable(t: Type) -> bool {
    !matches!(t, Type::String | Type::Bytes | Type::Message | Type::Group)
}

/// How many values a packed run holds.
fn packed_len(data: &[u8], t: Option<Type>) -> usize {
    match t {
        Some(Type::Fixed64 | Type::Sfixed64 | Type::Double) => data.len() / 8,
        Some(Type::Fixed32 | Type::Sfixed32 | Type::Float) => data.len() / 4,
        _ => data.iter().filter(|&&b| b & 0x80 == 0).count(),
    }
}

/// One entry of a map field (key = 1, value = 2) at `path` (the map's).
fn map_entry(
    data: &[u8],
    entry: &'static DescriptorProto,
    package: &str,
    path: &mut Vec<Seg>,
    out: &mut Vec<Violation>,
) -> Result<(), Malformed> {
    let value_field = entry.field.iter().find(|f| f.number() == 2);
    let mut pos = 0;
    let mut key: &[u8] = &[];
    let mut value: Option<&[u8]> = None;
    while pos < data.len() {
        let tag = read_varint(data, &mut pos).ok_or(Malformed)?;
        match (tag >> 3, tag & 7) {
            (1, 2) => key = read_bytes(data, &mut pos).ok_or(Malformed)?,
            (2, 2) => value = Some(read_bytes(data, &mut pos).ok_or(Malformed)?),
            (_, 0) => {
                read_varint(data, &mut pos).ok_or(Malformed)?;
            }
            (_, 1) => pos += 8,
            (_, 5) => pos += 4,
            (_, 2) => {
                read_bytes(data, &mut pos).ok_or(Malformed)?;
            }
            _ => return Err(Malformed),
        }
    }
    let key_text = String::from_utf8_lossy(key);
    if key.contains(&0) {
        push(out, "NUL_CHARACTER", path, "a key contains a NUL character (U+0000)".into());
    } else if char_count(key) > MAP_KEY_CHARS {
        push(
            out,
            "FIELD_TOO_LONG",
            path,
            format!("keys are at most {MAP_KEY_CHARS} characters (key {:?})", excerpt(&key_text, MAP_KEY_CHARS)),
        );
        return Ok(());
    }
    let Some(value) = value else { return Ok(()) };
    path.push(Seg::Key(excerpt(&key_text, MAP_KEY_CHARS)));
    match value_field.map(|f| f.r#type()) {
        Some(Type::String) => {
            if value.contains(&0) {
                push(out, "NUL_CHARACTER", path, "contains a NUL character (U+0000)".into());
            } else if char_count(value) > MAP_VALUE_CHARS {
                push(out, "FIELD_TOO_LONG", path, format!("at most {MAP_VALUE_CHARS} characters"));
            }
        }
        Some(Type::Message) => {
            if let Some(inner) = value_field.and_then(message_type) {
                walk(value, inner, package, path, out)?;
            }
        }
        _ => {}
    }
    path.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::catalog::v1 as cat;
    use crate::payment::v1 as pb;
    use crate::pricing::v1 as pr;
    use crate::signup::v1 as su;

    fn check<M: Message + prost::Name>(m: &M) -> Vec<Violation> {
        check_request(&M::full_name(), &m.encode_to_vec())
    }

    #[test]
    fn package_of_a_message() {
        assert_eq!(package_of("recur.catalog.v1.GetRateRequest"), "recur.catalog.v1");
        assert_eq!(package_of("recur.catalog.v1.Rate.Nested"), "recur.catalog.v1");
    }

    #[test]
    fn a_long_id_is_refused_naming_the_limit() {
        let ok = cat::GetRateRequest { lookup: Some(cat::get_rate_request::Lookup::Id("starter-monthly".into())) };
        assert!(check(&ok).is_empty());
        let long = cat::GetRateRequest { lookup: Some(cat::get_rate_request::Lookup::Id("x".repeat(8000))) };
        let v = check(&long);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "id");
        assert_eq!(v[0].reason, "FIELD_TOO_LONG");
        assert!(v[0].description.contains("100"), "{}", v[0].description);
        let odd = cat::GetRateRequest { lookup: Some(cat::get_rate_request::Lookup::Id("rate_é".into())) };
        assert_eq!(check(&odd)[0].reason, "INVALID_ID");
        let pay = pb::GetPaymentRequest { id: "p".repeat(65) };
        assert!(check(&pay)[0].description.contains("64"));
    }

    #[test]
    fn repeated_fields_and_maps_are_bounded() {
        let mut quote = pr::QuoteRequest::default();
        quote.coupon_codes = (0..21).map(|i| format!("C{i}")).collect();
        let v = check(&quote);
        assert_eq!(v[0].field, "coupon_codes");
        assert_eq!(v[0].reason, "TOO_MANY_VALUES");
        quote.coupon_codes.truncate(20);
        assert!(check(&quote).is_empty());

        let mut charge = pb::ChargeRequest { customer_id: "cus_1".into(), ..Default::default() };
        charge.metadata = (0..51).map(|i| (format!("k{i}"), "v".to_string())).collect();
        assert_eq!(check(&charge)[0].field, "metadata");
        charge.metadata = [("k".repeat(41), "v".to_string())].into();
        assert_eq!(check(&charge)[0].field, "metadata");
        charge.metadata = [("note".to_string(), "v".repeat(501))].into();
        assert_eq!(check(&charge)[0].field, "metadata[note]");
        charge.metadata = [("note".to_string(), "v".repeat(500))].into();
        assert!(check(&charge).is_empty());
    }

    #[test]
    fn nested_paths_name_the_item() {
        let mut quote = su::QuoteInput::default();
        quote.offerings.push(pr::CartOffering { offering_id: "offr_1".into(), ..Default::default() });
        quote.offerings.push(pr::CartOffering {
            offering_id: "offr_2".into(),
            items: vec![pr::CartItem { product_id: "p".into(), quantity: "1".repeat(41), custom_price: None }],
            ..Default::default()
        });
        let req = su::CreateSignupRequest { quote: Some(quote), ..Default::default() };
        let v = check(&req);
        assert_eq!(v[0].field, "quote.offerings[1].items[0].quantity");
        assert!(v[0].description.contains("40"));
    }

    #[test]
    fn lengths_count_characters() {
        let name = cat::CreateProductRequest {
            product: Some(cat::Product { name: "é".repeat(255), ..Default::default() }),
            ..Default::default()
        };
        assert!(check(&name).is_empty(), "255 two-byte characters are 255 characters");
        let name = cat::CreateProductRequest {
            product: Some(cat::Product { name: "é".repeat(256), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(check(&name)[0].field, "product.name");
    }

    #[test]
    fn a_catalog_document_is_bounded_by_its_message_only() {
        let apply = cat::ApplyCatalogRequest { document: "a".repeat(2 << 20), ..Default::default() };
        assert!(check(&apply).is_empty());
        assert_eq!(max_message_bytes("recur.catalog.v1.ApplyCatalogRequest"), 4 << 20);
        assert_eq!(max_message_bytes("recur.catalog.v1.GetRateRequest"), 1 << 20);
    }

    #[test]
    fn packed_repeated_numbers_are_counted() {
        let settings = cat::UpdateTenantSettingsRequest {
            settings: Some(cat::TenantSettings {
                dunning: Some(cat::DunningSchedule { retry_offset_days: (0..101).collect(), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(check(&settings)[0].field, "settings.dunning.retry_offset_days");
    }

    #[test]
    fn kinds_by_name() {
        assert_eq!(kind_of("recur.payment.v1", "amount"), Kind::Decimal);
        assert_eq!(kind_of("recur.catalog.v1", "unit_amount"), Kind::Decimal);
        assert_eq!(kind_of("recur.catalog.v1", "id"), Kind::IdOrHandle);
        assert_eq!(kind_of("recur.subscription.v1", "id"), Kind::Id);
        assert_eq!(kind_of("recur.subscription.v1", "account_id"), Kind::Id);
        assert_eq!(kind_of("recur.subscription.v1", "custom_id"), Kind::Code);
        assert_eq!(kind_of("recur.payment.v1", "provider_payment_id"), Kind::Token);
        assert_eq!(kind_of("recur.payment.v1", "return_url"), Kind::Url);
        assert_eq!(kind_of("recur.payment.v1", "description"), Kind::Text);
        assert_eq!(kind_of("recur.signup.v1", "account_name"), Kind::Name);
        assert_eq!(kind_of("recur.common.v1", "currency_code"), Kind::Code);
    }
}
