//! The life of a subscription: its states, and which change is legal from
//! which state. An illegal one is refused with a reason naming the state
//! (`SUBSCRIPTION_CANCELED`, …) and changes nothing.
//!
//! ```text
//!            activate / start date            trial ends, paid
//!  PENDING ───────────────────────► TRIALING ─────────────────► ACTIVE ◄──┐
//!     │                                 │                        │  ▲     │ paid
//!     │ cancel                          │ cancel           unpaid│  │     │
//!     ▼                                 ▼                        ▼  │resume
//!  CANCELED ◄───────────────────────────┴──── cancel ──────── PAST_DUE  PAUSED
//!     │ reactivate → ACTIVE (a new period)                  ACTIVE ─pause─┘
//!  EXPIRED: a contract that ran out its term (final)
//! ```

recur_storage::stored_enum!(SubscriptionState {
    Pending => "pending",
    Trialing => "trialing",
    Active => "active",
    PastDue => "past_due",
    Paused => "paused",
    Canceled => "canceled",
    Expired => "expired",
});

/// What can be done to a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Activate,
    Change,
    Cancel,
    Pause,
    Resume,
    Reactivate,
    /// A payment of one of its invoices failed.
    PaymentFailed,
    /// Its open invoices are paid.
    PaymentSucceeded,
    /// The billing clock starts its next period (a trial's end included).
    Renew,
}

/// Why an action is not possible now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `SUBSCRIPTION_<STATE>`, the state that forbids it.
    pub reason: String,
    pub message: String,
}

impl SubscriptionState {
    /// The state after `action`, or why it is refused.
    pub fn after(self, action: Action) -> Result<SubscriptionState, Refusal> {
        use Action as A;
        use SubscriptionState as S;
        let next = match (self, action) {
            (S::Pending, A::Activate) => Some(S::Active),
            (S::Pending | S::Trialing | S::Active | S::PastDue | S::Paused, A::Cancel) => Some(S::Canceled),
            (S::Trialing | S::Active | S::PastDue, A::Change) => Some(self),
            (S::Pending, A::Change) => Some(S::Pending),
            (S::Active | S::Trialing, A::Pause) => Some(S::Paused),
            (S::Paused, A::Resume) => Some(S::Active),
            (S::Canceled, A::Reactivate) => Some(S::Active),
            (S::Active | S::Trialing | S::PastDue, A::PaymentFailed) => Some(S::PastDue),
            (S::PastDue, A::PaymentSucceeded) => Some(S::Active),
            (S::Active | S::Trialing, A::PaymentSucceeded) => Some(self),
            (S::Trialing, A::Renew) => Some(S::Active),
            (S::Active | S::PastDue, A::Renew) => Some(self),
            _ => None,
        };
        next.ok_or_else(|| Refusal {
            reason: format!("SUBSCRIPTION_{}", self.as_str().to_ascii_uppercase()),
            message: format!("a {} subscription cannot be {}", self.as_str().replace('_', " "), action.past_tense()),
        })
    }
}

impl Action {
    /// The action's name, as kept with an idempotency key.
    pub fn name(self) -> &'static str {
        match self {
            Action::Activate => "activate",
            Action::Change => "change",
            Action::Cancel => "cancel",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Reactivate => "reactivate",
            Action::PaymentFailed => "payment_failed",
            Action::PaymentSucceeded => "payment_succeeded",
            Action::Renew => "renew",
        }
    }

    fn past_tense(self) -> &'static str {
        match self {
            Action::Activate => "activated",
            Action::Change => "changed",
            Action::Cancel => "canceled",
            Action::Pause => "paused",
            Action::Resume => "resumed",
            Action::Reactivate => "reactivated",
            Action::PaymentFailed => "marked past due",
            Action::PaymentSucceeded => "marked paid",
            Action::Renew => "renewed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use SubscriptionState as S;

    #[test]
    fn legal_changes() {
        assert_eq!(S::Pending.after(A::Activate), Ok(S::Active));
        assert_eq!(S::Active.after(A::PaymentFailed), Ok(S::PastDue));
        assert_eq!(S::PastDue.after(A::PaymentSucceeded), Ok(S::Active));
        assert_eq!(S::Active.after(A::Pause), Ok(S::Paused));
        assert_eq!(S::Paused.after(A::Resume), Ok(S::Active));
        assert_eq!(S::Canceled.after(A::Reactivate), Ok(S::Active));
        assert_eq!(S::Trialing.after(A::Cancel), Ok(S::Canceled));
        assert_eq!(S::Trialing.after(A::Renew), Ok(S::Active));
        assert_eq!(S::PastDue.after(A::Renew), Ok(S::PastDue));
        assert!(S::Paused.after(A::Renew).is_err());
    }

    #[test]
    fn illegal_changes_name_the_state() {
        let r = S::Canceled.after(A::Change).expect_err("canceled");
        assert_eq!(r.reason, "SUBSCRIPTION_CANCELED");
        assert_eq!(r.message, "a canceled subscription cannot be changed");
        assert_eq!(S::Expired.after(A::Resume).expect_err("expired").reason, "SUBSCRIPTION_EXPIRED");
        assert_eq!(S::Pending.after(A::Pause).expect_err("pending").reason, "SUBSCRIPTION_PENDING");
        assert_eq!(S::Canceled.after(A::Cancel).expect_err("twice").reason, "SUBSCRIPTION_CANCELED");
        assert_eq!(S::Paused.after(A::Change).expect_err("paused").reason, "SUBSCRIPTION_PAUSED");
    }

    #[test]
    fn every_state_has_a_stored_text() {
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>(), Ok(*s));
        }
    }
}
