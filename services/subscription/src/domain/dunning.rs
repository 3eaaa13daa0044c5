//! Dunning: what follows an invoice that was not paid. A declined charge
//! is retried on the tenant's schedule (days after the first failure, e.g.
//! 1, 3, 7); a REMITTANCE invoice not paid by its due date is overdue and
//! follows the same schedule without being charged. When the schedule is
//! used up, the tenant's final action is taken: cancel the subscription,
//! mark the invoice uncollectible (the subscription goes on), or leave it
//! past due. A hard decline (the card is lost, stolen, expired…) is not
//! retried until the bill group's payment method changes.

use chrono::{DateTime, Duration, Utc};

/// The tenant's schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dunning {
    /// Days after the first failure at which payment is tried again,
    /// ascending.
    pub retry_days: Vec<u32>,
    pub final_action: FinalAction,
}

impl Default for Dunning {
    /// The catalog's default: three retries over a week, then cancel.
    fn default() -> Dunning {
        Dunning { retry_days: vec![1, 3, 7], final_action: FinalAction::CancelSubscription }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalAction {
    CancelSubscription,
    MarkUncollectible,
    LeavePastDue,
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again then.
    RetryAt(DateTime<Utc>),
    /// The schedule is used up: take the final action (now).
    Final,
    /// A hard decline: wait for another payment method.
    Stop,
}

/// What follows the `attempts`-th failed attempt (1: the first), the first
/// of which failed at `first_failed`.
pub fn after_failure(d: &Dunning, attempts: u32, first_failed: DateTime<Utc>, hard: bool) -> Next {
    if hard {
        return Next::Stop;
    }
    let retries_done = attempts.saturating_sub(1) as usize;
    match d.retry_days.get(retries_done) {
        Some(days) => Next::RetryAt(first_failed + Duration::days(i64::from(*days))),
        None => Next::Final,
    }
}

/// Whether a decline code says retrying the same card cannot succeed (as
/// Stripe's "do not try again" codes).
pub fn is_hard_decline(code: &str) -> bool {
    matches!(
        code,
        "lost_card"
            | "stolen_card"
            | "pickup_card"
            | "expired_card"
            | "fraudulent"
            | "restricted_card"
            | "invalid_account"
            | "incorrect_number"
            | "invalid_number"
            | "card_not_supported"
            | "do_not_try_again"
            | "revocation_of_authorization"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_from_the_first_failure_then_the_final_action() {
        let first = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        let d = Dunning::default();
        assert_eq!(after_failure(&d, 1, first, false), Next::RetryAt(first + Duration::days(1)));
        assert_eq!(after_failure(&d, 2, first, false), Next::RetryAt(first + Duration::days(3)));
        assert_eq!(after_failure(&d, 3, first, false), Next::RetryAt(first + Duration::days(7)));
        assert_eq!(after_failure(&d, 4, first, false), Next::Final);
        assert_eq!(after_failure(&d, 1, first, true), Next::Stop);
        let none = Dunning { retry_days: vec![], final_action: FinalAction::LeavePastDue };
        assert_eq!(after_failure(&none, 1, first, false), Next::Final);
        assert!(is_hard_decline("stolen_card") && !is_hard_decline("insufficient_funds"));
    }
}
