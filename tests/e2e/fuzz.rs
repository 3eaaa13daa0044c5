//! A fuzz test driven by the descriptor set: every unary RPC of every
//! `recur.*` service gets about 20 generated requests (empty; typical
//! values; huge strings, one of 2 MB; negative and extreme integers; unknown
//! enum numbers; odd Unicode; decimal-looking strings in amount fields;
//! impossible dates; 8,000-character ids; 10,000-element lists; 100-key
//! maps; a random mix), encoded by hand from the input message's
//! descriptor and sent as raw unary gRPC calls over a real socket with a
//! valid token. Every request is well-formed protobuf, so the test fails on
//! any INTERNAL or UNKNOWN answer, any UNAVAILABLE (the all-in-one calls its
//! own port: a peer's error caused by the input must keep its code), any
//! answer slower than 2 s, a `grpc-message` of 1 KiB or more, error
//! metadata over 8 KiB (what grpc C-core clients refuse), and a panic.
//!
//! Ids in requests come partly from a small catalog, customer and sign-up
//! made first, partly from ids seen in earlier answers. Generation is
//! deterministic per seed (`RECUR_FUZZ_SEED`, printed with every failure);
//! `RECUR_FUZZ_ONLY=CatalogService/GetRate` limits a run to matching RPCs,
//! `RECUR_FUZZ_VERBOSE=1` prints every request and answer.
//! A run stops generating after 55 s per backend and says how many calls
//! it made.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use recur_e2e::raw::RawCodec;
use recur_e2e::{Bearer, TestApp, create_monthly_plan, on_both_backends, scan};
use recur_proto::catalog::v1 as cat;
use recur_proto::payment::v1 as pay;
use recur_proto::pricing::v1 as pricing;
use recur_proto::signup::v1 as su;
use tonic::Code;

/// Requests per RPC, in the order they are sent (every RPC gets the first
/// before any gets the second, so a run cut short by the deadline still
/// covers every RPC).
const CASES: [Case; 20] = [
    Case::Empty,
    Case::Typical,
    Case::Negative,
    Case::Extreme,
    Case::EnumHigh,
    Case::EnumNegative,
    Case::Unicode,
    Case::Decimal,
    Case::Dates,
    Case::LongIds,
    Case::Typical,
    Case::Decimal,
    Case::Unicode,
    Case::Dates,
    Case::Decimal,
    Case::BigMaps,
    Case::LongLists,
    Case::Huge,
    Case::Oversize,
    Case::Mixed,
];

/// When a run stops generating requests (setup included).
const RUN_BUDGET: Duration = Duration::from_secs(55);
/// The slowest acceptable answer.
const SLOW: Duration = Duration::from_secs(2);
/// The deadline each call is sent with (`grpc-timeout`).
const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// `grpc-message`, percent-encoded as sent, must stay under this.
const MAX_GRPC_MESSAGE: usize = 1024;
/// `grpc-message` plus `grpc-status-details-bin` as sent: grpc C-core's
/// default soft limit on metadata.
const MAX_ERROR_METADATA: usize = 8 * 1024;
/// Bytes of big values (huge strings, long lists, big maps) per request:
/// under the 1 MiB message limit, so field limits are what is exercised.
const BIG_BUDGET: usize = 900_000;
const HUGE_STRING: usize = 100 * 1024;
const OVERSIZE_STRING: usize = 2 * 1024 * 1024;
const LONG_ID: usize = 8000;
const LONG_LIST: usize = 10_000;
const BIG_MAP: usize = 100;
/// Nested messages deeper than this are left out.
const MAX_DEPTH: usize = 5;
const DEFAULT_SEED: u64 = 0x5EED_0012_F022_2024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    /// No field set.
    Empty,
    /// Every field at a value that looks valid.
    Typical,
    /// Integers at -1 and their minimum, amounts negative.
    Negative,
    /// Integers at their maximum, minimum and zero; amounts beyond any ceiling.
    Extreme,
    /// Enum numbers no enum defines: 99, 1000, i32::MAX.
    EnumHigh,
    /// Enum numbers -1 and i32::MIN.
    EnumNegative,
    /// RTL marks, emoji, combining characters, U+FFFF, U+10FFFF, ZWJ, controls.
    Unicode,
    /// `NaN`, `1e400`, `-0`, `0x10`, `1` and 30 zeros… in amount-like fields.
    Decimal,
    /// `2024-02-30`, `0000-00-00`… in date fields; extreme timestamps.
    Dates,
    /// 8,000-character ids, handles and codes.
    LongIds,
    /// Repeated fields of 10,000 elements.
    LongLists,
    /// Maps of 100 keys.
    BigMaps,
    /// Strings of 100 KB (a 30,000-deep document in a `document` field).
    Huge,
    /// One string of 2 MB: over the message-size limit of most RPCs.
    Oversize,
    /// Each value from a randomly chosen case.
    Mixed,
}

/// What [`Case::Mixed`] picks from for each value.
const MIXABLE: [Case; 12] = [
    Case::Typical,
    Case::Typical,
    Case::Negative,
    Case::Extreme,
    Case::EnumHigh,
    Case::EnumNegative,
    Case::Unicode,
    Case::Decimal,
    Case::Dates,
    Case::LongIds,
    Case::LongLists,
    Case::Huge,
];

// ---------------------------------------------------------------------------
// A deterministic PRNG (xorshift64, seeded through splitmix64).

struct Rng(u64);

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a: a stable hash of an RPC path for per-request seeds.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------
// The descriptor set.

struct Rpc {
    /// `/recur.catalog.v1.CatalogService/GetRate`
    path: String,
    /// `CatalogService/GetRate`
    label: String,
    /// Full name of the input message, without the leading dot.
    input: String,
}

struct Schema {
    messages: HashMap<String, DescriptorProto>,
    enums: HashMap<String, Vec<i32>>,
    /// Every field name of every Recur message: field-mask paths.
    field_names: Vec<String>,
    rpcs: Vec<Rpc>,
}

impl Schema {
    fn load() -> Schema {
        let set = FileDescriptorSet::decode(recur_proto::FILE_DESCRIPTOR_SET).expect("the descriptor set decodes");
        let mut s =
            Schema { messages: HashMap::new(), enums: HashMap::new(), field_names: Vec::new(), rpcs: Vec::new() };
        let mut names = HashSet::new();
        for file in &set.file {
            let package = file.package().to_string();
            for e in &file.enum_type {
                s.enums.insert(format!("{package}.{}", e.name()), e.value.iter().map(|v| v.number()).collect());
            }
            for m in &file.message_type {
                s.add_message(&package, m, package.starts_with("recur."), &mut names);
            }
            if !package.starts_with("recur.") {
                continue;
            }
            for svc in &file.service {
                for m in &svc.method {
                    // Every Recur RPC is unary; a streaming one would need a
                    // streaming call here.
                    assert!(
                        !m.client_streaming() && !m.server_streaming(),
                        "{}/{} streams: the fuzz test sends unary calls only",
                        svc.name(),
                        m.name()
                    );
                    s.rpcs.push(Rpc {
                        path: format!("/{package}.{}/{}", svc.name(), m.name()),
                        label: format!("{}/{}", svc.name(), m.name()),
                        input: m.input_type().trim_start_matches('.').to_string(),
                    });
                }
            }
        }
        s.field_names = names.into_iter().collect();
        s.field_names.sort();
        s
    }

    fn add_message(&mut self, scope: &str, m: &DescriptorProto, ours: bool, names: &mut HashSet<String>) {
        let name = format!("{scope}.{}", m.name());
        for e in &m.enum_type {
            self.enums.insert(format!("{name}.{}", e.name()), e.value.iter().map(|v| v.number()).collect());
        }
        for n in &m.nested_type {
            self.add_message(&name, n, ours, names);
        }
        if ours {
            names.extend(m.field.iter().map(|f| f.name().to_string()));
        }
        self.messages.insert(name, m.clone());
    }

    fn message(&self, type_name: &str) -> Option<&DescriptorProto> {
        self.messages.get(type_name.trim_start_matches('.'))
    }

    /// The entry type of a map field.
    fn map_entry(&self, f: &FieldDescriptorProto) -> Option<&DescriptorProto> {
        if f.r#type() != Type::Message || f.label() != Label::Repeated {
            return None;
        }
        self.message(f.type_name()).filter(|m| m.options.as_ref().is_some_and(|o| o.map_entry()))
    }
}

// ---------------------------------------------------------------------------
// Values, their encoding and a short rendering for failure reports.

struct Field {
    number: u32,
    name: String,
    value: Val,
}

enum Val {
    /// int32, int64, enum (negative numbers sign-extended to 10 bytes).
    Int(i64),
    /// uint32, uint64.
    UInt(u64),
    /// sint32, sint64 (zigzag).
    SInt(i64),
    Bool(bool),
    Fixed32(u32),
    Fixed64(u64),
    Str(String),
    Bytes(Vec<u8>),
    Msg(Vec<Field>),
    /// A repeated field: packed for numbers, one record per element else.
    List(Vec<Val>),
    /// A map field: one entry message (key 1, value 2) per pair.
    Map(Vec<(Val, Val)>),
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, number: u32, wire: u8) {
    put_varint(out, ((number as u64) << 3) | wire as u64);
}

fn put_len(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_tag(out, number, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn encode_message(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        encode_field(&mut out, f.number, &f.value);
    }
    out
}

/// The bare payload of a packable number (no tag).
fn packed_item(out: &mut Vec<u8>, v: &Val) -> bool {
    match v {
        Val::Int(i) => put_varint(out, *i as u64),
        Val::UInt(u) => put_varint(out, *u),
        Val::SInt(i) => put_varint(out, ((*i << 1) ^ (*i >> 63)) as u64),
        Val::Bool(b) => put_varint(out, *b as u64),
        Val::Fixed32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Val::Fixed64(x) => out.extend_from_slice(&x.to_le_bytes()),
        _ => return false,
    }
    true
}

fn encode_field(out: &mut Vec<u8>, number: u32, v: &Val) {
    match v {
        Val::Int(_) | Val::UInt(_) | Val::SInt(_) | Val::Bool(_) => {
            put_tag(out, number, 0);
            packed_item(out, v);
        }
        Val::Fixed32(x) => {
            put_tag(out, number, 5);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Val::Fixed64(x) => {
            put_tag(out, number, 1);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Val::Str(s) => put_len(out, number, s.as_bytes()),
        Val::Bytes(b) => put_len(out, number, b),
        Val::Msg(fields) => put_len(out, number, &encode_message(fields)),
        Val::List(items) => {
            let mut packed = Vec::new();
            if items.iter().all(|i| packed_item(&mut packed, i)) {
                if !items.is_empty() {
                    put_len(out, number, &packed);
                }
            } else {
                for i in items {
                    encode_field(out, number, i);
                }
            }
        }
        Val::Map(entries) => {
            for (k, v) in entries {
                let mut entry = Vec::new();
                encode_field(&mut entry, 1, k);
                encode_field(&mut entry, 2, v);
                put_len(out, number, &entry);
            }
        }
    }
}

fn encoded_len(v: &Val) -> usize {
    let mut out = Vec::new();
    encode_field(&mut out, 1, v);
    out.len()
}

/// A short, JSON-like rendering: long strings and lists are abridged.
fn render(fields: &[Field]) -> String {
    let mut out = String::new();
    render_message(&mut out, fields);
    if out.len() > 3000 {
        let mut cut = 3000;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn render_message(out: &mut String, fields: &[Field]) {
    out.push('{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&f.name);
        out.push_str(": ");
        render_val(out, &f.value);
    }
    out.push('}');
}

fn render_val(out: &mut String, v: &Val) {
    use std::fmt::Write;
    match v {
        Val::Int(i) | Val::SInt(i) => {
            let _ = write!(out, "{i}");
        }
        Val::UInt(u) | Val::Fixed64(u) => {
            let _ = write!(out, "{u}");
        }
        Val::Fixed32(x) => {
            let _ = write!(out, "{x}");
        }
        Val::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Val::Str(s) => render_text(out, s),
        Val::Bytes(b) => render_text(out, &String::from_utf8_lossy(b)),
        Val::Msg(fields) => render_message(out, fields),
        Val::List(items) => {
            out.push('[');
            for (i, item) in items.iter().take(3).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_val(out, item);
            }
            if items.len() > 3 {
                let _ = write!(out, ", … {} elements in all", items.len());
            }
            out.push(']');
        }
        Val::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().take(3).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_val(out, k);
                out.push_str(": ");
                render_val(out, v);
            }
            if entries.len() > 3 {
                let _ = write!(out, ", … {} keys in all", entries.len());
            }
            out.push('}');
        }
    }
}

fn render_text(out: &mut String, s: &str) {
    use std::fmt::Write;
    let n = s.chars().count();
    if n <= 60 {
        let _ = write!(out, "{s:?}");
    } else {
        let head: String = s.chars().take(24).collect();
        let _ = write!(out, "{head:?}…({n} chars)");
    }
}

// ---------------------------------------------------------------------------
// Ids and handles to aim requests at: made at setup, and seen in answers.

#[derive(Default)]
struct Pool {
    ids: BTreeMap<String, Vec<String>>,
    handles: Vec<String>,
}

impl Pool {
    /// Takes every `<prefix>_<16 base62>` id out of `text` (an answer's
    /// bytes or a response's debug rendering).
    fn harvest(&mut self, text: &[u8]) {
        let n = text.len();
        let mut i = 0;
        while i < n {
            let start = i;
            while i < n && text[i].is_ascii_lowercase() {
                i += 1;
            }
            let prefix_len = i - start;
            let boundary = start == 0 || !text[start - 1].is_ascii_alphanumeric();
            if boundary && (2..=4).contains(&prefix_len) && i < n && text[i] == b'_' {
                let body = i + 1;
                let mut j = body;
                while j < n && text[j].is_ascii_alphanumeric() {
                    j += 1;
                }
                if j - body == 16 {
                    let prefix = String::from_utf8_lossy(&text[start..i]).into_owned();
                    let id = String::from_utf8_lossy(&text[start..j]).into_owned();
                    let ids = self.ids.entry(prefix).or_default();
                    if ids.len() < 20 && !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                i = j.max(i + 1);
            } else if i == start {
                i += 1;
            }
        }
    }

    fn id(&self, rng: &mut Rng, prefix: Option<&str>) -> String {
        if let Some(ids) = prefix.and_then(|p| self.ids.get(p)).filter(|ids| !ids.is_empty()) {
            // The first of a kind half the time: the resources made at
            // setup, which belong together (a customer and its card).
            if rng.chance(50) {
                return ids[0].clone();
            }
            if !rng.chance(15) {
                return rng.pick(ids).clone();
            }
        }
        if rng.chance(50) {
            let all: Vec<&String> = self.ids.values().flatten().collect();
            if !all.is_empty() {
                return rng.pick(&all).to_string();
            }
        }
        // Well-formed, but no such resource.
        format!("{}_{}", prefix.unwrap_or("xyz"), "Fuzz0000NoSuchId")
    }
}

// ---------------------------------------------------------------------------
// What a string field holds, judged by its name.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// An id (`prod_…`), or an id-or-handle field such as `rate`.
    Id(Option<&'static str>),
    /// Handles, codes, custom ids, references, tags.
    Handle,
    Amount,
    Date,
    Currency,
    Email,
    Url,
    TimeZone,
    Country,
    State,
    Document,
    PaymentToken,
    Provider,
    OrderBy,
    PageToken,
    FieldPath,
    EventType,
    Phone,
    Text,
}

/// The id prefix of a resource named like `stem` (`bill_group`, `paymentmethod`…).
fn prefix_of(stem: &str) -> Option<&'static str> {
    let s = stem.replace('_', "");
    let table: [(&str, &str); 22] = [
        ("paymentmethod", "pm"),
        ("billgroup", "bg"),
        ("webhookendpoint", "we"),
        ("endpoint", "we"),
        ("setupintent", "seti"),
        ("signup", "cart"),
        ("session", "cart"),
        ("subscription", "sub"),
        ("contract", "sub"),
        ("invoiceline", "invl"),
        ("line", "invl"),
        ("invoice", "inv"),
        ("account", "acct"),
        ("contact", "cont"),
        ("coupon", "coup"),
        ("offering", "offr"),
        ("product", "prod"),
        ("customer", "cus"),
        ("refund", "rfnd"),
        ("payment", "pay"),
        ("event", "evt"),
        ("quote", "quot"),
    ];
    if s.ends_with("rate") || s == "rate" {
        return Some("rate");
    }
    table.iter().find(|(k, _)| s.ends_with(k) || s.contains(k)).map(|(_, p)| *p)
}

fn classify(message: &str, name: &str) -> Kind {
    let short = message.rsplit('.').next().unwrap_or(message).to_ascii_lowercase();
    let owner = short.trim_end_matches("request").trim_start_matches("get").trim_start_matches("list");
    match name {
        "id" => return Kind::Id(prefix_of(owner)),
        "offering" | "rate" | "coupon" => return Kind::Id(prefix_of(name)),
        "document" | "data_json" => return Kind::Document,
        "payment_token" => return Kind::PaymentToken,
        "provider" => return Kind::Provider,
        "order_by" => return Kind::OrderBy,
        "page_token" | "next_page_token" => return Kind::PageToken,
        "paths" | "changed_fields" => return Kind::FieldPath,
        "type" | "event_types" => return Kind::EventType,
        "time_zone" => return Kind::TimeZone,
        "country" => return Kind::Country,
        "state" => return Kind::State,
        "phone" => return Kind::Phone,
        _ => {}
    }
    if let Some(stem) = name.strip_suffix("_ids").or_else(|| name.strip_suffix("_id")) {
        return if stem == "custom" || stem == "provider_event" { Kind::Handle } else { Kind::Id(prefix_of(stem)) };
    }
    let amount_words = ["amount", "quantity", "price", "percent", "fee", "fraction", "up_to", "tax_rate"];
    if amount_words.iter().any(|w| name.contains(w)) {
        return Kind::Amount;
    }
    if name.contains("date") {
        return Kind::Date;
    }
    if name.contains("currency") {
        return Kind::Currency;
    }
    if name.contains("email") {
        return Kind::Email;
    }
    if name.contains("url") {
        return Kind::Url;
    }
    let handle_words = ["handle", "code", "tag", "reference", "idempotency_key", "custom_id"];
    if handle_words.iter().any(|w| name.contains(w)) {
        return Kind::Handle;
    }
    Kind::Text
}

const DECIMALS: &[&str] = &[
    "NaN",
    "nan",
    "1e400",
    "1e-400",
    "-0",
    "-0.00",
    "0x10",
    "1000000000000000000000000000000",
    "Infinity",
    "-Infinity",
    " 1 ",
    "1,000.00",
    "+1",
    ".5",
    "5.",
    "1_000",
    "\u{2212}1",
    "\u{0661}\u{0662}",
    "79228162514264337593543950336",
    "-79228162514264337593543950335",
    "0.00000000000000000000000000001",
    "92233720368547758.08",
    "1e3",
    "",
    "--1",
    "1.2.3",
];

const DATES: &[&str] = &[
    "2024-02-30",
    "0000-00-00",
    "9999-12-31T25:61:61Z",
    "2024-13-01",
    "-0001-01-01",
    "+275760-09-13",
    "99999-12-31",
    "1969-12-31T23:59:60Z",
    "2024-03-10T02:30:00",
    "2024-1-1",
    "2024-02-29",
    "9999-12-31",
    "0001-01-01",
    "today",
    "2024-02-30T00:00:00+99:00",
    "",
];

const ZONES: &[&str] = &["Mars/Olympus_Mons", "UTC+99", "../../etc/passwd", "America/New_York ", "Etc/GMT-14", ""];

const ODD: &[&str] = &[
    "\u{200F}\u{05E9}\u{05DC}\u{05D5}\u{05DD}\u{200E}",
    "\u{202E}fdp.exe",
    "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}",
    "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}",
    "e\u{0301}\u{0301}\u{0301}\u{0301}\u{0301}",
    "Z\u{0351}\u{0353}\u{0325}\u{0354}\u{0317}",
    "\u{FFFF}",
    "\u{10FFFF}",
    "a\u{200D}b",
    "\u{FEFF}",
    "\u{00A0}",
    "\u{2028}\u{2029}",
    "\u{FFFD}",
    "\u{0130}\u{00DF}\u{FB03}",
    "\u{216B}",
    "\u{0661}\u{0662}\u{0663}",
    "\u{1D7D9}\u{1D7D8}",
    "\t\r\n",
    "\u{7F}\u{1B}[31m",
    "%s%n{0}${x}",
    "'; DROP TABLE products; --",
];

/// Sandbox tokens a generated value may name: every one but `tok_timeout`,
/// which answers only after 120 s by design.
const TOKENS: &[&str] = &[
    "tok_visa",
    "tok_mastercard",
    "tok_amex",
    "tok_decline",
    "tok_insufficient_funds",
    "tok_expired_card",
    "tok_3ds_required",
    "tok_processing_error",
    "tok_unknown",
];

/// A small catalog document that applies.
const DOCUMENT: &str = "products:\n  - handle: fuzz-fee\n    name: Fuzz fee\n    kind: recurring\n";

// ---------------------------------------------------------------------------
// Generation.

struct Gen<'a> {
    schema: &'a Schema,
    pool: &'a Pool,
    rng: Rng,
    case: Case,
    /// Bytes left for big values.
    budget: usize,
    /// Whether the 2 MB string has been placed.
    oversized: bool,
    /// Inside the elements of a long list (no long lists or huge strings there).
    in_long_list: bool,
}

impl Gen<'_> {
    /// The case of the next value: [`Case::Mixed`] picks one per value.
    fn mode(&mut self) -> Case {
        if self.in_long_list {
            return Case::Typical;
        }
        match self.case {
            Case::Mixed => *self.rng.pick(&MIXABLE),
            c => c,
        }
    }

    fn take_budget(&mut self, n: usize) -> bool {
        if self.budget >= n {
            self.budget -= n;
            true
        } else {
            false
        }
    }

    fn message(&mut self, type_name: &str, depth: usize) -> Vec<Field> {
        let Some(d) = self.schema.message(type_name) else { return Vec::new() };
        let full = type_name.trim_start_matches('.').to_string();
        // One member of each real oneof (proto3 `optional` fields are
        // synthetic oneofs of one member: always set).
        let mut chosen: HashMap<i32, i32> = HashMap::new();
        for f in d.field.iter().filter(|f| f.oneof_index.is_some() && !f.proto3_optional()) {
            let o = f.oneof_index();
            let members = d.field.iter().filter(|g| g.oneof_index == Some(o)).count();
            if !chosen.contains_key(&o) || self.rng.below(members) == 0 {
                chosen.insert(o, f.number());
            }
        }
        let mut out = Vec::new();
        for f in &d.field {
            if f.oneof_index.is_some() && !f.proto3_optional() && chosen.get(&f.oneof_index()) != Some(&f.number()) {
                continue;
            }
            if self.case == Case::Mixed && self.rng.chance(25) {
                continue;
            }
            if f.r#type() == Type::Message && depth >= MAX_DEPTH {
                continue;
            }
            if let Some(value) = self.field(&full, f, depth) {
                out.push(Field { number: f.number() as u32, name: f.name().to_string(), value });
            }
        }
        out
    }

    fn field(&mut self, message: &str, f: &FieldDescriptorProto, depth: usize) -> Option<Val> {
        if f.label() != Label::Repeated {
            return self.one(message, f, depth);
        }
        if let Some(entry) = self.schema.map_entry(f) {
            let (Some(kf), Some(vf)) =
                (entry.field.iter().find(|g| g.number() == 1), entry.field.iter().find(|g| g.number() == 2))
            else {
                return None;
            };
            let entry_name = format!("{message}.{}", entry.name());
            let n = if self.mode() == Case::BigMaps { BIG_MAP } else { 1 + self.rng.below(2) };
            let mut entries = Vec::new();
            let mut seen = HashSet::new();
            for i in 0..n {
                let key = match self.one(&entry_name, kf, depth)? {
                    Val::Str(s) if n > 2 || !seen.insert(s.clone()) => Val::Str(format!("{s}{i}")),
                    k => k,
                };
                let value = self.one(&entry_name, vf, depth + 1)?;
                entries.push((key, value));
            }
            return Some(Val::Map(entries));
        }
        let long = !self.in_long_list && self.mode() == Case::LongLists;
        let n = if long { LONG_LIST } else { 1 + self.rng.below(2) };
        let mut items = Vec::new();
        let outer = self.in_long_list;
        self.in_long_list = long || outer;
        for i in 0..n {
            let Some(v) = self.one(message, f, depth) else { break };
            if long && !self.take_budget(encoded_len(&v)) {
                break;
            }
            // Distinct strings in a long list (codes, ids): repeated values
            // would be refused as duplicates before anything else is checked.
            let v = match v {
                Val::Str(s) if long => Val::Str(format!("{s}{i}")),
                v => v,
            };
            items.push(v);
        }
        self.in_long_list = outer;
        Some(Val::List(items))
    }

    fn one(&mut self, message: &str, f: &FieldDescriptorProto, depth: usize) -> Option<Val> {
        let name = f.name();
        Some(match f.r#type() {
            Type::String => Val::Str(self.string(message, name)),
            Type::Bytes => Val::Bytes(self.bytes(name)),
            Type::Bool => Val::Bool(self.rng.chance(50)),
            Type::Enum => Val::Int(self.enum_number(f.type_name()) as i64),
            Type::Int32 => Val::Int(self.int(message, name, i32::MIN as i64, i32::MAX as i64)),
            Type::Int64 => Val::Int(self.int(message, name, i64::MIN, i64::MAX)),
            Type::Sint32 => Val::SInt(self.int(message, name, i32::MIN as i64, i32::MAX as i64)),
            Type::Sint64 => Val::SInt(self.int(message, name, i64::MIN, i64::MAX)),
            Type::Sfixed32 => Val::Fixed32(self.int(message, name, i32::MIN as i64, i32::MAX as i64) as i32 as u32),
            Type::Sfixed64 => Val::Fixed64(self.int(message, name, i64::MIN, i64::MAX) as u64),
            Type::Uint32 => Val::UInt(self.int(message, name, 0, u32::MAX as i64) as u64),
            Type::Fixed32 => Val::Fixed32(self.int(message, name, 0, u32::MAX as i64) as u32),
            Type::Uint64 => Val::UInt(self.int(message, name, 0, i64::MAX) as u64),
            Type::Fixed64 => Val::Fixed64(self.int(message, name, 0, i64::MAX) as u64),
            Type::Float => Val::Fixed32(self.float().to_bits() as u32),
            Type::Double => Val::Fixed64(self.float().to_bits()),
            Type::Message => Val::Msg(self.message(f.type_name(), depth + 1)),
            Type::Group => return None,
        })
    }

    fn float(&mut self) -> f64 {
        match self.mode() {
            Case::Extreme => *self.rng.pick(&[f64::NAN, f64::INFINITY, f64::MAX, -0.0]),
            Case::Negative => -1.5,
            _ => 1.5,
        }
    }

    fn int(&mut self, message: &str, name: &str, min: i64, max: i64) -> i64 {
        let timestamp = message == "google.protobuf.Timestamp" || message == "google.protobuf.Duration";
        let mode = self.mode();
        match mode {
            Case::Negative if min < 0 => *self.rng.pick(&[-1, min, -86_400]),
            Case::Negative => max,
            Case::Extreme => *self.rng.pick(&[max, min, 0, max - 1]),
            Case::Dates if timestamp && name == "seconds" => {
                // Before year 1, after 9999, the epoch, and the ends of i64.
                *self.rng.pick(&[-62_135_596_801, 253_402_300_800, 0, -1, i64::MIN, i64::MAX])
            }
            Case::Dates if timestamp => *self.rng.pick(&[-1, 1_000_000_000, i32::MAX as i64, i32::MIN as i64]),
            _ if timestamp && name == "seconds" && message.ends_with("Duration") => {
                86_400 * (1 + self.rng.below(30) as i64)
            }
            _ if timestamp && name == "seconds" => 1_735_689_600 + (self.rng.below(400) as i64 - 200) * 86_400,
            _ if timestamp => 0,
            _ => match name {
                "page_size" => *self.rng.pick(&[1, 20, 200]),
                "exp_month" => 1 + self.rng.below(12) as i64,
                "exp_year" => 2030,
                "billing_day" => 1 + self.rng.below(28) as i64,
                "after_sequence" | "sequence" => self.rng.below(5) as i64,
                n if n.ends_with("_days") => 14,
                _ => 1 + self.rng.below(12) as i64,
            },
        }
    }

    fn enum_number(&mut self, type_name: &str) -> i32 {
        match self.mode() {
            Case::EnumHigh => *self.rng.pick(&[99, 1000, i32::MAX]),
            Case::EnumNegative => *self.rng.pick(&[-1, i32::MIN]),
            _ => {
                let values = self.schema.enums.get(type_name.trim_start_matches('.')).cloned().unwrap_or_default();
                let nonzero: Vec<i32> = values.iter().copied().filter(|v| *v != 0).collect();
                if nonzero.is_empty() || self.rng.chance(10) { 0 } else { *self.rng.pick(&nonzero) }
            }
        }
    }

    fn bytes(&mut self, name: &str) -> Vec<u8> {
        match self.mode() {
            Case::Huge if self.take_budget(HUGE_STRING) => vec![b'{'; HUGE_STRING],
            Case::Oversize if !self.oversized => {
                self.oversized = true;
                vec![b'x'; OVERSIZE_STRING]
            }
            Case::Unicode => self.rng.pick(ODD).as_bytes().to_vec(),
            _ if name == "payload" => {
                br#"{"id":"evt_fuzz","type":"payment_intent.succeeded","data":{"object":{}}}"#.to_vec()
            }
            _ => (0..16).map(|_| self.rng.next() as u8).collect(),
        }
    }

    fn typical(&mut self, kind: Kind) -> String {
        let r = &mut self.rng;
        match kind {
            Kind::Id(prefix) => self.pool.id(r, prefix),
            Kind::Handle => {
                if !self.pool.handles.is_empty() && r.chance(50) {
                    r.pick(&self.pool.handles).clone()
                } else {
                    format!("fuzz-{}", r.below(1000))
                }
            }
            Kind::Amount => r.pick(&["10.00", "1", "0.5", "12", "99.99"]).to_string(),
            Kind::Date => r.pick(&["2025-03-01", "2024-02-29", "2025-12-31"]).to_string(),
            Kind::Currency => r.pick(&["USD", "USD", "USD", "EUR", "JPY", "KWD", "usd", "XXX"]).to_string(),
            Kind::Email => format!("fuzz{}@example.com", r.below(1000)),
            Kind::Url => "https://shop.example/return?x=1".to_string(),
            Kind::TimeZone => r.pick(&["America/New_York", "UTC", "Asia/Tokyo"]).to_string(),
            Kind::Country => r.pick(&["US", "DE", "JP"]).to_string(),
            Kind::State => r.pick(&["CA", "NY", ""]).to_string(),
            Kind::Document => DOCUMENT.to_string(),
            Kind::PaymentToken => r.pick(TOKENS).to_string(),
            Kind::Provider => r.pick(&["sandbox", "stripe"]).to_string(),
            Kind::OrderBy => r.pick(&["create_time", "name", "name desc", "create_time asc"]).to_string(),
            Kind::PageToken => String::new(),
            Kind::FieldPath => r.pick(&self.schema.field_names).clone(),
            Kind::EventType => r.pick(&["payment.succeeded", "subscription.created", "invoice.paid"]).to_string(),
            Kind::Phone => "+1 415 555 0100".to_string(),
            Kind::Text => format!("Fuzz {}", r.below(1000)),
        }
    }

    fn string(&mut self, message: &str, name: &str) -> String {
        let kind = classify(message, name);
        let s = match self.mode() {
            Case::Oversize if !self.oversized => {
                self.oversized = true;
                "x".repeat(OVERSIZE_STRING)
            }
            Case::Huge if self.take_budget(HUGE_STRING) => {
                if kind == Kind::Document {
                    // A mapping nested 30,000 deep (180 KB): the shape whose
                    // parse time grows with the square of the depth.
                    format!("{}1{}", "{\"a\":".repeat(30_000), "}".repeat(30_000))
                } else {
                    let mut s = self.typical(kind);
                    s.push_str(&"x".repeat(HUGE_STRING.saturating_sub(s.len())));
                    s
                }
            }
            Case::LongIds if matches!(kind, Kind::Id(_) | Kind::Handle | Kind::PageToken) => match kind {
                Kind::Id(Some(p)) => format!("{p}_{}", "x".repeat(LONG_ID - p.len() - 1)),
                _ => "h".repeat(LONG_ID),
            },
            Case::Unicode => {
                let odd = *self.rng.pick(ODD);
                let typical = self.typical(kind);
                match self.rng.below(4) {
                    0 => odd.to_string(),
                    1 => format!("{typical}{odd}"),
                    2 => format!("{odd}{typical}"),
                    _ => odd.repeat(1 + self.rng.below(50)),
                }
            }
            Case::Decimal if kind == Kind::Amount || self.case == Case::Mixed => self.rng.pick(DECIMALS).to_string(),
            Case::Dates if kind == Kind::Date || self.case == Case::Mixed => self.rng.pick(DATES).to_string(),
            Case::Dates if kind == Kind::TimeZone => self.rng.pick(ZONES).to_string(),
            Case::Negative if kind == Kind::Amount => self.rng.pick(&["-10.00", "-0.01", "-1"]).to_string(),
            Case::Extreme if kind == Kind::Amount => self
                .rng
                .pick(&["79228162514264337593543950335", "92233720368547758.07", "0.0000000000000000000000000001"])
                .to_string(),
            _ => self.typical(kind),
        };
        // Never a sandbox token that is slow by design.
        s.replace("tok_timeout", "tok_visa")
    }
}

/// The request of `rpc` for case number `index`, with the seed it was made from.
fn generate(schema: &Schema, pool: &Pool, rpc: &Rpc, index: usize, base_seed: u64) -> (u64, Vec<Field>) {
    let seed = splitmix(base_seed ^ fnv(&rpc.path) ^ ((index as u64) << 40));
    let case = CASES[index];
    let mut g =
        Gen { schema, pool, rng: Rng::new(seed), case, budget: BIG_BUDGET, oversized: false, in_long_list: false };
    let fields = if case == Case::Empty { Vec::new() } else { g.message(&rpc.input, 0) };
    (seed, fields)
}

// ---------------------------------------------------------------------------
// Raw unary calls.

type RawClient =
    tonic::client::Grpc<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>>;

/// `grpc-message` as tonic sends it: percent-encoded.
fn grpc_message_len(message: &str) -> usize {
    message.bytes().map(|b| if !(0x20..0x7F).contains(&b) || b" \"#%<>`?{}".contains(&b) { 3 } else { 1 }).sum()
}

// ---------------------------------------------------------------------------
// Panics: a hook records every panic of this process (and writes it to the
// captured log); the log is searched for "panicked" too.

fn panics() -> &'static Mutex<Vec<String>> {
    static PANICS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    PANICS.get_or_init(|| Mutex::new(Vec::new()))
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
            let line = format!("thread '{thread}' {info}");
            tracing::error!(panic = %line, "fuzz panic hook");
            if let Ok(mut p) = panics().lock() {
                p.push(line);
            }
            previous(info);
        }));
    });
}

/// The length of this process's log now.
fn log_len() -> usize {
    std::fs::metadata(scan::log_file()).map(|m| m.len() as usize).unwrap_or(0)
}

/// Lines of this process's log after byte `from` that tell of a panic.
fn panic_lines_in_log(from: usize) -> Vec<String> {
    let log = std::fs::read(scan::log_file()).unwrap_or_default();
    String::from_utf8_lossy(log.get(from..).unwrap_or_default())
        .lines()
        // The hook's own lines are already in its list.
        .filter(|l| l.contains("panicked") && !l.contains("fuzz panic hook"))
        .map(|l| l.chars().take(400).collect())
        .collect()
}

// ---------------------------------------------------------------------------
// The run.

/// Resources to aim requests at, made as tenant `fuzz`.
async fn setup(app: &TestApp, pool: &mut Pool) {
    let mut c = app.clients("fuzz");
    // First a gateway customer with a card and a payment: the first ids of
    // their kinds, which typical requests name together.
    let customer = c
        .payments
        .create_customer(pay::CreateCustomerRequest { email: "fuzz@example.com".into(), ..Default::default() })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer");
    let attached = c
        .payments
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: customer.id.clone(),
            payment_token: "tok_visa".into(),
            ..Default::default()
        })
        .await
        .expect("attach");
    let paid = recur_e2e::pay::charge(&mut c, &customer.id, "10.00", "fuzz-setup").await;
    pool.harvest(format!("{customer:?} {attached:?} {paid:?}").as_bytes());

    let plan = create_monthly_plan(&mut c, "100", Some("8.25")).await;
    pool.harvest(format!("{} {} {}", plan.product_id, plan.offering_id, plan.rate_id).as_bytes());
    pool.handles.extend(["starter".to_string(), "FUZZ10".to_string()]);
    let coupon = c
        .catalog
        .create_coupon(cat::CreateCouponRequest {
            coupon: Some(cat::Coupon {
                code: "FUZZ10".into(),
                name: "Ten off".into(),
                discount_type: cat::DiscountType::Percent as i32,
                percent_off: "10".into(),
                duration: cat::CouponDuration::Once as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("create coupon");
    pool.harvest(format!("{coupon:?}").as_bytes());
    let quote = su::QuoteInput {
        offerings: vec![pricing::CartOffering {
            offering_id: plan.offering_id.clone(),
            rate_id: plan.rate_id.clone(),
            items: vec![pricing::CartItem {
                product_id: plan.product_id.clone(),
                quantity: "1".into(),
                custom_price: None,
            }],
        }],
        ..Default::default()
    };
    // A finalized sign-up (account, contact, bill group, contract,
    // invoice) and a pending one (session, setup intent).
    for action in [su::SignupAction::CreateAndFinalize, su::SignupAction::CreateWithPaymentMethod] {
        let signup = c
            .signup
            .create_signup(su::CreateSignupRequest {
                action: action as i32,
                customer: Some(su::CustomerInput {
                    account_name: "Fuzz Inc".into(),
                    name: "Fuzz Person".into(),
                    email: "fuzz@example.com".into(),
                    ..Default::default()
                }),
                quote: Some(quote.clone()),
                ..Default::default()
            })
            .await
            .expect("sign-up");
        pool.harvest(format!("{signup:?}").as_bytes());
    }
}

/// One answer that breaks a rule.
struct Failure {
    rpc: String,
    case: Case,
    seed: u64,
    rule: String,
    code: String,
    message: String,
    elapsed: Duration,
    request: String,
}

/// Runs the fuzz test against `app` (both backends run one after the other:
/// timings mean nothing on two cores shared by two runs).
async fn fuzz(app: &TestApp) {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    scan::log_file();
    install_panic_hook();
    let panics_before = panics().lock().map(|p| p.len()).unwrap_or(0);
    let log_before = log_len();
    let started = Instant::now();
    let seed = match std::env::var("RECUR_FUZZ_SEED") {
        Ok(s) if !s.trim().is_empty() => {
            let s = s.trim();
            s.strip_prefix("0x")
                .map_or_else(|| s.parse(), |h| u64::from_str_radix(h, 16))
                .expect("RECUR_FUZZ_SEED is a number (decimal or 0x…)")
        }
        _ => DEFAULT_SEED,
    };
    let only = std::env::var("RECUR_FUZZ_ONLY").unwrap_or_default();
    let verbose = std::env::var("RECUR_FUZZ_VERBOSE").is_ok_and(|v| v == "1");

    let schema = Schema::load();
    let rpcs: Vec<&Rpc> = schema.rpcs.iter().filter(|r| r.label.contains(only.as_str())).collect();
    if only.is_empty() {
        assert!(schema.rpcs.len() >= 78, "only {} RPCs in the descriptor set", schema.rpcs.len());
    }
    let mut pool = Pool::default();
    setup(app, &mut pool).await;

    let token = app.token("fuzz");
    let mut grpc: RawClient = tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(
        app.channel(),
        Bearer::new(&token),
    ))
    .max_decoding_message_size(64 * 1024 * 1024)
    .max_encoding_message_size(64 * 1024 * 1024);

    let mut failures: Vec<Failure> = Vec::new();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut calls_per_rpc: HashMap<&str, usize> = HashMap::new();
    let mut sent: HashSet<(usize, u64)> = HashSet::new();
    let mut calls = 0usize;
    let mut cut_short = false;
    let mut slowest = (Duration::ZERO, String::new());
    'cases: for (index, &case) in CASES.iter().enumerate() {
        for (r, rpc) in rpcs.iter().enumerate() {
            if started.elapsed() >= RUN_BUDGET {
                cut_short = true;
                break 'cases;
            }
            let (req_seed, fields) = generate(&schema, &pool, rpc, index, seed);
            let body = encode_message(&fields);
            // The same bytes again (a message with no fields, say) would
            // test nothing new.
            if !sent.insert((r, {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&body, &mut h);
                std::hash::Hasher::finish(&h)
            })) {
                continue;
            }
            let mut request = tonic::Request::new(bytes::Bytes::from(body));
            request.set_timeout(CALL_DEADLINE);
            let path: tonic::codegen::http::uri::PathAndQuery = rpc.path.parse().expect("an RPC path");
            let t = Instant::now();
            let answer = tokio::time::timeout(CALL_DEADLINE * 2, async {
                grpc.ready().await.map_err(|e| tonic::Status::unavailable(format!("channel not ready: {e}")))?;
                grpc.unary(request, path, RawCodec).await
            })
            .await;
            let elapsed = t.elapsed();
            calls += 1;
            *calls_per_rpc.entry(rpc.label.as_str()).or_default() += 1;
            if elapsed > slowest.0 {
                slowest = (elapsed, format!("{} ({case:?})", rpc.label));
            }
            let mut fail = |rule: String, code: &str, message: &str| {
                failures.push(Failure {
                    rpc: rpc.label.clone(),
                    case,
                    seed: req_seed,
                    rule,
                    code: code.to_string(),
                    message: message.chars().take(300).collect(),
                    elapsed,
                    request: render(&fields),
                });
            };
            let code = match &answer {
                Err(_) => {
                    fail(format!("no answer within {:?}", CALL_DEADLINE * 2), "-", "");
                    "NO ANSWER".to_string()
                }
                Ok(Ok(response)) => {
                    pool.harvest(response.get_ref());
                    "OK".to_string()
                }
                Ok(Err(status)) => {
                    let code = format!("{:?}", status.code());
                    match status.code() {
                        Code::Internal | Code::Unknown => {
                            fail("INTERNAL/UNKNOWN to a well-formed request".into(), &code, status.message())
                        }
                        Code::Unavailable => fail(
                            "UNAVAILABLE (a peer's error passed on as such, or a dropped connection)".into(),
                            &code,
                            status.message(),
                        ),
                        _ => {}
                    }
                    let message_len = grpc_message_len(status.message());
                    if message_len >= MAX_GRPC_MESSAGE {
                        fail(format!("grpc-message of {message_len} bytes (limit 1 KiB)"), &code, status.message());
                    }
                    let metadata_len = message_len + status.details().len().div_ceil(3) * 4;
                    if metadata_len > MAX_ERROR_METADATA {
                        fail(
                            format!("error metadata of {metadata_len} bytes (grpc-message + details; limit 8 KiB)"),
                            &code,
                            status.message(),
                        );
                    }
                    code
                }
            };
            if elapsed > SLOW {
                let message = match &answer {
                    Ok(Err(s)) => s.message().to_string(),
                    _ => String::new(),
                };
                fail(format!("answered in {elapsed:.2?} (limit 2 s)"), &code, &message);
            }
            if verbose {
                let message = match &answer {
                    Ok(Err(s)) => s.message().chars().take(160).collect(),
                    _ => String::new(),
                };
                println!(
                    "{} [{case:?} {req_seed:#x}] {code} {elapsed:.1?} {message:?}\n    {}",
                    rpc.label,
                    render(&fields)
                );
            }
            *codes.entry(code).or_default() += 1;
        }
    }
    let ran_for = started.elapsed();

    let mut panic_lines: Vec<String> = panics().lock().map(|p| p[panics_before..].to_vec()).unwrap_or_default();
    panic_lines.extend(panic_lines_in_log(log_before));

    println!(
        "fuzz on {:?}: seed {seed:#x}, {calls} calls over {} RPCs in {ran_for:.1?}{}; answers {codes:?}; slowest {:.2?} {}",
        app.backend,
        calls_per_rpc.len(),
        if cut_short { " (stopped at the 55 s budget before every case ran)" } else { "" },
        slowest.0,
        slowest.1,
    );
    for r in &rpcs {
        assert!(calls_per_rpc.contains_key(r.label.as_str()), "{} was never called (seed {seed:#x})", r.label);
    }
    if failures.is_empty() && panic_lines.is_empty() {
        return;
    }
    let mut report = format!(
        "fuzz on {:?} (RECUR_FUZZ_SEED={seed:#x}): {} failing answers of {calls}, {} panics\n",
        app.backend,
        failures.len(),
        panic_lines.len()
    );
    for p in &panic_lines {
        report.push_str(&format!("PANIC {p}\n"));
    }
    for f in &failures {
        report.push_str(&format!(
            "{} [{:?}, request seed {:#x}]: {} — {} {:?} after {:.2?}\n    request: {}\n",
            f.rpc, f.case, f.seed, f.rule, f.code, f.message, f.elapsed, f.request
        ));
    }
    panic!("{report}");
}

on_both_backends!(fuzz_every_rpc_sqlite, fuzz_every_rpc_postgres, fuzz);
