//! Recording usage (RecordUsage): batches of up to 1,000 events for a
//! subscription's products. Each event is judged on its own — a refused
//! event does not fail the batch:
//!
//! - an event id the tenant used before (in this batch or an earlier one)
//!   is a duplicate and counted once (the database's key on tenant and
//!   event id decides, also between concurrent calls);
//! - an event more than 5 minutes in the future (the tenant's clock) is
//!   refused (`FUTURE_EVENT`), as is one before the period that can still
//!   be billed (`LATE_EVENT`): the current period, or the one before it
//!   while its renewal invoice is still a draft (the grace period);
//! - a quantity that is not a non-negative decimal (`INVALID_QUANTITY`), a
//!   product the subscription does not have (`PRODUCT_NOT_ON_SUBSCRIPTION`)
//!   and an event without id (`EVENT_ID_REQUIRED`) are refused.
//!
//! Rating the period's usage at its end is not done yet (issue 14).

use chrono::{DateTime, Duration, Utc};
use recur_auth::CallContext;
use recur_error::{AppError, AppResult};
use rust_decimal::Decimal;

use super::App;
use crate::domain::{InvoiceReason, InvoiceStatus, Metadata, UsageEvent};

/// How far ahead of the tenant's clock an event may be.
const FUTURE_SLACK: Duration = Duration::minutes(5);

/// An event as the caller gave it.
#[derive(Clone, Debug, Default)]
pub struct UsageInput {
    pub event_id: String,
    pub product_id: String,
    pub quantity: String,
    pub event_time: Option<DateTime<Utc>>,
    pub properties: Metadata,
}

/// What became of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageStatus {
    Accepted,
    Duplicate,
    Refused { reason: &'static str, message: String },
}

/// Whose usage a batch is: one subscription's, or an account's (each event
/// goes to the account's live subscription with its product).
#[derive(Clone, Debug)]
pub enum UsageTarget {
    Subscription(String),
    Account(String),
}

impl App {
    pub async fn record_usage(
        &self,
        ctx: &CallContext,
        target: &UsageTarget,
        records: &[UsageInput],
    ) -> AppResult<Vec<UsageStatus>> {
        let tenant = ctx.tenant_id.as_str();
        let subs = match target {
            UsageTarget::Subscription(id) if id.is_empty() => {
                return Err(AppError::invalid("subscription_id", "give subscription_id or account_id"));
            }
            UsageTarget::Subscription(id) => vec![self.subscription(tenant, id).await?],
            UsageTarget::Account(id) => {
                self.account_alone(tenant, id, "account_id").await?;
                self.live_subscriptions(tenant, id).await?
            }
        };
        let now = self.now(tenant);
        let mut earliest = std::collections::HashMap::new();
        for sub in &subs {
            earliest.insert(sub.id.clone(), self.earliest_billed(tenant, sub).await?);
        }
        let mut status = Vec::with_capacity(records.len());
        let mut fresh: Vec<UsageEvent> = Vec::with_capacity(records.len());
        let mut seen = std::collections::HashSet::with_capacity(records.len());
        for r in records {
            let refuse = |reason: &'static str, message: String| UsageStatus::Refused { reason, message };
            let at = r.event_time.map(recur_clock::to_micros).unwrap_or(now);
            let quantity = recur_money::parse_decimal(&r.quantity).ok().filter(|q| *q >= Decimal::ZERO);
            // The oldest live subscription with the product takes it.
            let sub = subs.iter().find(|s| s.items.iter().any(|i| i.product_id == r.product_id));
            let verdict = match sub {
                _ if r.event_id.is_empty() => {
                    refuse("EVENT_ID_REQUIRED", "every event needs its id, so a repeat is counted once".into())
                }
                None => {
                    refuse("PRODUCT_NOT_ON_SUBSCRIPTION", format!("no subscription has product {:?}", r.product_id))
                }
                Some(_) if quantity.is_none() => {
                    refuse("INVALID_QUANTITY", "the quantity must be a decimal of 0 or more".into())
                }
                Some(_) if at > now + FUTURE_SLACK => {
                    refuse("FUTURE_EVENT", "the event is more than 5 minutes in the future".into())
                }
                Some(s) if earliest.get(&s.id).is_some_and(|e| at < *e) => {
                    refuse("LATE_EVENT", "the event is before the period that can still be billed".into())
                }
                Some(_) if !seen.insert(r.event_id.clone()) => UsageStatus::Duplicate,
                Some(s) => {
                    fresh.push(UsageEvent {
                        event_id: r.event_id.clone(),
                        subscription_id: s.id.clone(),
                        product_id: r.product_id.clone(),
                        quantity: quantity.unwrap_or_default(),
                        event_time: at,
                        properties: r.properties.clone(),
                        created_at: now,
                    });
                    UsageStatus::Accepted
                }
            };
            status.push(verdict);
        }
        let stored: std::collections::HashSet<String> =
            self.repo.insert_usage(tenant, &fresh).await?.into_iter().collect();
        // An id stored before this call: a duplicate after all. Within the
        // batch the first record with an id counts; later ones are
        // duplicates already.
        let mut first = std::collections::HashSet::new();
        for (r, s) in records.iter().zip(status.iter_mut()) {
            if *s == UsageStatus::Accepted && first.insert(r.event_id.clone()) && !stored.contains(&r.event_id) {
                *s = UsageStatus::Duplicate;
            }
        }
        Ok(status)
    }

    /// The account's subscriptions that are billed (active, trialing, past
    /// due), oldest first.
    async fn live_subscriptions(&self, tenant: &str, account_id: &str) -> AppResult<Vec<crate::domain::Subscription>> {
        use crate::domain::SubscriptionState as S;
        let q = crate::repo::SubscriptionQuery {
            states: vec![S::Active, S::Trialing, S::PastDue],
            account_id: Some(account_id.to_string()),
            offering_id: None,
            rate_id: None,
            product_id: None,
            coupon_code: None,
            metadata: Vec::new(),
            time_range: None,
            order: crate::repo::SubscriptionOrder::Time(crate::repo::TimeColumn::CreatedAt),
            descending: false,
            after: None,
            limit: 200,
        };
        Ok(self.repo.list_subscriptions(tenant, &q).await?)
    }

    /// The earliest time `sub` still bills usage for: its current period's
    /// start, or the previous period's while that period's renewal invoice
    /// is a draft (the grace period).
    async fn earliest_billed(&self, tenant: &str, sub: &crate::domain::Subscription) -> AppResult<DateTime<Utc>> {
        let invoices = self.repo.invoices_of_subscription(tenant, &sub.id).await?;
        let draft = invoices.iter().find(|i| {
            i.reason == InvoiceReason::SubscriptionCycle
                && i.status == InvoiceStatus::Draft
                && i.period_start == Some(sub.current_period_start)
        });
        let previous = draft.and_then(|d| {
            invoices.iter().filter(|i| i.period_end == d.period_start).filter_map(|i| i.period_start).min()
        });
        Ok(previous.unwrap_or(sub.current_period_start))
    }
}
