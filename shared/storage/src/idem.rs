//! Creates that carry an idempotency key: the key is unique per tenant in
//! the database (a unique index, not only a check in code), the request's
//! fingerprint is stored beside it, and a repeated key returns what the
//! first request made, or is refused when it came with another request.

use std::future::Future;

use recur_error::AppError;

use crate::StorageError;

/// What an insert under an idempotency key found.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored<T> {
    pub value: T,
    /// Fingerprint of the request that created it.
    pub request_hash: String,
    /// False when the key had been used before and the earlier value is
    /// returned (nothing was written).
    pub created: bool,
}

impl<T> Stored<T> {
    /// A value this call created.
    pub fn created(value: T, request_hash: &str) -> Stored<T> {
        Stored { value, request_hash: request_hash.to_string(), created: true }
    }

    /// A value an earlier call with the same key created.
    pub fn existing(value: T, request_hash: String) -> Stored<T> {
        Stored { value, request_hash, created: false }
    }
}

/// Runs `insert` (which returns the stored value when the key is already
/// taken). When it fails on a unique index while a key was given, a
/// concurrent request with the same key won the race: running it once more
/// finds what that request stored.
pub async fn insert_once<T, F, Fut>(has_key: bool, insert: F) -> Result<Stored<T>, StorageError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Stored<T>, StorageError>>,
{
    match insert().await {
        Err(e) if e.is_unique() && has_key => insert().await,
        other => other,
    }
}

/// The stored value and whether this call created it; FAILED_PRECONDITION
/// `IDEMPOTENCY_KEY_REUSED` when the key was used for a different request.
pub fn check_replay<T>(stored: Stored<T>, hash: &str) -> Result<(T, bool), AppError> {
    if !stored.created && stored.request_hash != hash {
        return Err(AppError::failed_precondition(
            "IDEMPOTENCY_KEY_REUSED",
            "this idempotency key was used for a different request",
        ));
    }
    Ok((stored.value, stored.created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_returns_the_value_and_another_request_is_refused() {
        assert_eq!(check_replay(Stored::created(1, "h"), "h"), Ok((1, true)));
        assert_eq!(check_replay(Stored::existing(1, "h".into()), "h"), Ok((1, false)));
        let err = check_replay(Stored::existing(1, "h".into()), "other").expect_err("reused");
        assert_eq!(err.reason(), "IDEMPOTENCY_KEY_REUSED");
    }

    #[tokio::test]
    async fn a_lost_race_on_the_key_reads_the_winner() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let stored =
            insert_once(true, || {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if n == 0 { Err(StorageError::Unique("key".into())) } else { Ok(Stored::existing(7, "h".into())) }
                }
            })
            .await;
        assert_eq!(stored.ok().map(|s| s.value), Some(7));
        let no_key = insert_once(false, || async { Err::<Stored<i32>, _>(StorageError::Unique("custom_id".into())) });
        assert!(no_key.await.is_err_and(|e| e.is_unique()), "without a key the conflict is the caller's");
    }
}
