//! One error type for every Recur service. It carries the gRPC code, an
//! `ErrorInfo` reason in UPPER_SNAKE_CASE and, for invalid input, the
//! `BadRequest` field violations, and turns into a `tonic::Status` with those
//! details attached. Bad input is never INTERNAL; INTERNAL hides its cause
//! from the caller and logs it instead.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every Recur error.
pub const DOMAIN: &str = "recur.dev";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the offending field in the request, for example
    /// `quote.offerings[0].items[1].quantity`.
    pub field: String,
    pub description: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct AppError {
    code: Code,
    reason: Cow<'static, str>,
    message: String,
    violations: Vec<FieldViolation>,
    metadata: Vec<(String, String)>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        AppError { code, reason: reason.into(), message: message.into(), violations: Vec::new(), metadata: Vec::new() }
    }

    /// INVALID_ARGUMENT naming one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Violations::one(field, description).into_error()
    }

    /// NOT_FOUND for a resource kind ("subscription") and the id asked for.
    /// Another tenant's resource is reported exactly like a missing one.
    pub fn not_found(resource: &str, id: &str) -> Self {
        AppError::new(
            Code::NotFound,
            format!("{}_NOT_FOUND", resource.to_ascii_uppercase().replace([' ', '-'], "_")),
            format!("{resource} {:?} not found", excerpt(id)),
        )
        .with_metadata("resource", resource)
    }

    pub fn already_exists(reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        AppError::new(Code::AlreadyExists, reason, message)
    }

    pub fn failed_precondition(reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        AppError::new(Code::FailedPrecondition, reason, message)
    }

    pub fn aborted(reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        AppError::new(Code::Aborted, reason, message)
    }

    pub fn unavailable(reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        AppError::new(Code::Unavailable, reason, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        AppError::new(Code::Unauthenticated, "UNAUTHENTICATED", message)
    }

    /// A fault of Recur itself. The cause is logged; the caller sees a
    /// generic message, never internals.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        AppError::new(Code::Internal, "INTERNAL", "internal error")
    }

    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Adds a field violation to any error (ALREADY_EXISTS naming the handle,
    /// FAILED_PRECONDITION naming the archived rate, …).
    pub fn with_field(mut self, field: impl Into<String>, description: impl Into<String>) -> Self {
        self.violations.push(FieldViolation { field: field.into(), description: description.into() });
        self
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Rebuilds an error from a status a peer service returned, keeping its
    /// code, reason, violations and metadata. A peer that could not be reached
    /// (or broke) becomes UNAVAILABLE, since the caller's input was not at fault.
    pub fn from_peer(peer: &str, status: &Status) -> Self {
        let details = status.get_error_details();
        let (reason, metadata) = match details.error_info() {
            Some(info) => (info.reason.clone(), info.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            None => (String::new(), Vec::new()),
        };
        let violations = details
            .bad_request()
            .map(|br| {
                br.field_violations
                    .iter()
                    .map(|v| FieldViolation { field: v.field.clone(), description: v.description.clone() })
                    .collect()
            })
            .unwrap_or_default();
        match status.code() {
            // A request too large for the peer came from the caller.
            Code::ResourceExhausted if reason == "MESSAGE_TOO_LARGE" => AppError {
                code: Code::ResourceExhausted,
                reason: Cow::Owned(reason),
                message: status.message().to_string(),
                violations,
                metadata,
            },
            Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Unimplemented
            | Code::DataLoss
            | Code::Unauthenticated
            | Code::PermissionDenied => {
                let code =
                    if status.code() == Code::DeadlineExceeded { Code::DeadlineExceeded } else { Code::Unavailable };
                AppError::new(code, "DEPENDENCY_UNAVAILABLE", format!("{peer} failed: {}", status.message()))
                    .with_metadata("peer", peer)
            }
            code => AppError {
                code,
                reason: if reason.is_empty() { Cow::Borrowed("PEER_ERROR") } else { Cow::Owned(reason) },
                message: status.message().to_string(),
                violations,
                metadata,
            },
        }
    }

    /// Re-roots the field paths of a peer's violations in the caller's
    /// request: `offerings[0].rate_id` under `quote` becomes
    /// `quote.offerings[0].rate_id`.
    pub fn prefix_fields(self, prefix: &str) -> Self {
        self.map_fields(|f| if f.is_empty() { prefix.to_string() } else { format!("{prefix}.{f}") })
    }

    /// Rewrites every violation's field path (a peer's request shape to the
    /// caller's).
    pub fn map_fields(mut self, f: impl Fn(&str) -> String) -> Self {
        for v in &mut self.violations {
            v.field = f(&v.field);
        }
        self
    }

    /// Turns a NOT_FOUND (or FAILED_PRECONDITION) about something the caller
    /// referenced into INVALID_ARGUMENT on that reference.
    pub fn into_invalid_reference(self) -> Self {
        if matches!(self.code, Code::NotFound) { AppError { code: Code::InvalidArgument, ..self } } else { self }
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}: {}", self.code, self.reason, self.message)?;
        for v in &self.violations {
            write!(f, " [{}: {}]", v.field, v.description)?;
        }
        Ok(())
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for AppError {}

/// How many characters of a caller's input an error quotes.
pub const QUOTE_CHARS: usize = 100;

/// The first [`QUOTE_CHARS`] characters of `input`, with an ellipsis when
/// cut: what an error message may quote of a caller's input.
pub fn excerpt(input: &str) -> Cow<'_, str> {
    cut(input, QUOTE_CHARS)
}

/// `s` cut to `max` characters, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((at, _)) => Cow::Owned(format!("{}…", &s[..at])),
        None => Cow::Borrowed(s),
    }
}

/// The most bytes `grpc-message` may take, percent-encoded as the gRPC
/// protocol sends it. Everything an error carries is bounded, so a status
/// stays far below the header limits of every gRPC implementation (8 KiB
/// in grpc-core), whatever the caller sent.
pub const MAX_MESSAGE_BYTES: usize = 1000;
/// The most violations, and characters of a field path, a violation's
/// description or a metadata value, a status carries; and the bytes all
/// its violations may take together.
const MAX_VIOLATIONS: usize = 20;
const MAX_FIELD_CHARS: usize = 150;
const MAX_DESCRIPTION_CHARS: usize = 200;
const MAX_METADATA_CHARS: usize = 200;
const MAX_METADATA_ENTRIES: usize = 8;
const VIOLATION_BYTES: usize = 2048;

/// `message` cut so that its percent-encoded form (as `grpc-message`
/// carries it: printable ASCII but `%` as is, every other byte as `%XX`)
/// fits in [`MAX_MESSAGE_BYTES`].
pub fn fit_message(message: &str) -> Cow<'_, str> {
    let encoded = |c: char| if c.is_ascii() && (' '..='~').contains(&c) && c != '%' { 1 } else { 3 * c.len_utf8() };
    let budget = MAX_MESSAGE_BYTES - 3 * '…'.len_utf8();
    let mut used = 0;
    for (at, c) in message.char_indices() {
        used += encoded(c);
        if used > budget {
            let total: usize = message[at..].chars().map(encoded).sum::<usize>() + used - encoded(c);
            if total <= MAX_MESSAGE_BYTES {
                return Cow::Borrowed(message);
            }
            return Cow::Owned(format!("{}…", &message[..at]));
        }
    }
    Cow::Borrowed(message)
}

impl From<AppError> for Status {
    fn from(e: AppError) -> Status {
        let mut details = ErrorDetails::new();
        let metadata: HashMap<String, String> = e
            .metadata
            .into_iter()
            .take(MAX_METADATA_ENTRIES)
            .map(|(k, v)| (cut(&k, 64).into_owned(), cut(&v, MAX_METADATA_CHARS).into_owned()))
            .collect();
        details.set_error_info(e.reason.into_owned(), DOMAIN, metadata);
        if !e.violations.is_empty() {
            let mut used = 0;
            let mut kept = Vec::new();
            for v in e.violations.into_iter().take(MAX_VIOLATIONS) {
                let field = cut(&v.field, MAX_FIELD_CHARS).into_owned();
                let description = cut(&v.description, MAX_DESCRIPTION_CHARS).into_owned();
                used += field.len() + description.len();
                // The first violation is always kept.
                if used > VIOLATION_BYTES && !kept.is_empty() {
                    break;
                }
                kept.push(tonic_types::FieldViolation::new(field, description));
            }
            details.set_bad_request(kept);
        }
        Status::with_error_details(e.code, fit_message(&e.message).into_owned(), details)
    }
}

/// Collects every problem with a request before answering, so a caller sees
/// all of them at once.
#[derive(Default, Debug)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Violations(Vec::new())
    }

    pub fn one(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut v = Violations::new();
        v.add(field, description);
        v
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation { field: field.into(), description: description.into() });
    }

    /// Adds a violation when `ok` is false.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, description: impl Into<String>) {
        if !ok {
            self.add(field, description);
        }
    }

    /// How many violations there are so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_error(self) -> AppError {
        let message = match self.0.as_slice() {
            [only] => format!("{}: {}", only.field, only.description),
            many => format!("{} invalid fields", many.len()),
        };
        AppError {
            code: Code::InvalidArgument,
            reason: Cow::Borrowed("INVALID_ARGUMENT"),
            message,
            violations: self.0,
            metadata: Vec::new(),
        }
    }

    /// `Ok(())` when nothing was wrong, else INVALID_ARGUMENT with every violation.
    pub fn finish(self) -> AppResult<()> {
        if self.0.is_empty() { Ok(()) } else { Err(self.into_error()) }
    }
}

/// Reads the details of a Recur status, for callers and tests.
pub struct StatusDetails {
    pub reason: String,
    pub metadata: HashMap<String, String>,
    /// The fields named by `BadRequest` violations, in order.
    pub fields: Vec<String>,
    pub violations: Vec<FieldViolation>,
}

pub fn details(status: &Status) -> StatusDetails {
    let d = status.get_error_details();
    StatusDetails {
        reason: d.error_info().map(|i| i.reason.clone()).unwrap_or_default(),
        metadata: d.error_info().map(|i| i.metadata.clone()).unwrap_or_default(),
        fields: d
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default(),
        violations: d
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| FieldViolation { field: v.field.clone(), description: v.description.clone() })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_carries_reason_and_fields() {
        let mut v = Violations::new();
        v.add("customer.email", "is required");
        v.check(false, "quote.offerings[0].items[0].quantity", "must not be negative");
        v.check(true, "ignored", "never added");
        let status: Status = v.finish().expect_err("two violations").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let d = details(&status);
        assert_eq!(d.reason, "INVALID_ARGUMENT");
        assert_eq!(d.fields, vec!["customer.email", "quote.offerings[0].items[0].quantity"]);
    }

    #[test]
    fn not_found_names_the_resource() {
        let status: Status = AppError::not_found("subscription", "sub_x").into();
        assert_eq!(status.code(), Code::NotFound);
        let d = details(&status);
        assert_eq!(d.reason, "SUBSCRIPTION_NOT_FOUND");
        assert_eq!(d.metadata.get("resource").map(String::as_str), Some("subscription"));
    }

    #[test]
    fn errors_stay_small_whatever_the_input() {
        let huge = "x".repeat(8000);
        let status: Status = AppError::not_found("rate", &huge).into();
        assert!(status.message().len() < 150, "{}", status.message().len());
        assert!(status.message().contains('…'));

        let mut v = Violations::new();
        for i in 0..100 {
            v.add(format!("items[{i}].{huge}"), huge.clone());
        }
        let status: Status = v.into_error().with_metadata("input", huge.clone()).into();
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        let d = details(&status);
        assert!(!d.violations.is_empty() && d.violations.len() <= MAX_VIOLATIONS);
        assert!(d.violations.iter().all(|v| v.field.chars().count() <= MAX_FIELD_CHARS + 1));
        assert!(d.metadata["input"].chars().count() <= MAX_METADATA_CHARS + 1);
        // The whole status, as the headers carry it (the details in base64),
        // stays well under grpc-core's 8 KiB.
        let on_wire = status.details().len() * 4 / 3 + status.message().len();
        assert!(on_wire < 6 * 1024, "{on_wire}");

        // Non-ASCII text takes three bytes per byte on the wire.
        let message = "é".repeat(5000);
        let fitted = fit_message(&message);
        let wire: usize = fitted.chars().map(|c| if c.is_ascii() { 1 } else { 3 * c.len_utf8() }).sum();
        assert!(wire <= MAX_MESSAGE_BYTES, "{wire}");
        assert_eq!(fit_message("short"), "short");
    }

    #[test]
    fn internal_hides_the_cause() {
        let status: Status = AppError::internal("disk on fire at /var/lib/x").into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("disk"));
    }

    #[test]
    fn peer_errors_keep_their_details_and_can_be_re_rooted() {
        let peer: Status =
            AppError::not_found("offering", "offr_x").with_field("offerings[0].offering_id", "no such offering").into();
        let e = AppError::from_peer("pricing", &peer).prefix_fields("quote").into_invalid_reference();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.reason(), "OFFERING_NOT_FOUND");
        assert_eq!(e.violations()[0].field, "quote.offerings[0].offering_id");

        let down = Status::unavailable("connection refused");
        let e = AppError::from_peer("pricing", &down);
        assert_eq!(e.code(), Code::Unavailable);
        assert_eq!(e.reason(), "DEPENDENCY_UNAVAILABLE");
    }
}
