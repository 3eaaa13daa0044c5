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

impl App {
    pub async fn record_usage(
        &self,
        ctx: &CallContext,
        subscription_id: &str,
        records: &[UsageInput],
    ) -> AppResult<Vec<UsageStatus>> {
        let tenant = ctx.tenant_id.as_str();
        if subscription_id.is_empty() {
            return Err(AppError::invalid("subscription_id", "is required"));
        }
        let sub = self.subscription(tenant, subscription_id).await?;
        let now = self.now(tenant);
        // The earliest time still billed: the current period's start, or
        // the previous period's while its invoice is a draft.
        let mut earliest = sub.current_period_start;
        let invoices = self.repo.invoices_of_subscription(tenant, &sub.id).await?;
        if let Some(draft) = invoices.iter().find(|i| {
            i.reason == InvoiceReason::SubscriptionCycle
                && i.status == InvoiceStatus::Draft
                && i.period_start == Some(sub.current_period_start)
        }) && let Some(start) = invoices
            .iter()
            .filter_map(|i| i.period_end.filter(|e| Some(*e) == draft.period_start).and(i.period_start))
            .min()
        {
            earliest = start;
        }
        let mut status = Vec::with_capacity(records.len());
        let mut fresh: Vec<UsageEvent> = Vec::with_capacity(records.len());
        let mut seen = std::collections::HashSet::with_capacity(records.len());
        for r in records {
            let refuse = |reason: &'static str, message: String| UsageStatus::Refused { reason, message };
            let at = r.event_time.map(recur_clock::to_micros).unwrap_or(now);
            let quantity = recur_money::parse_decimal(&r.quantity).ok().filter(|q| *q >= Decimal::ZERO);
            let verdict = if r.event_id.is_empty() {
                refuse("EVENT_ID_REQUIRED", "every event needs its id, so a repeat is counted once".into())
            } else if !sub.items.iter().any(|i| i.product_id == r.product_id) {
                refuse("PRODUCT_NOT_ON_SUBSCRIPTION", format!("the subscription has no product {:?}", r.product_id))
            } else if quantity.is_none() {
                refuse("INVALID_QUANTITY", "the quantity must be a decimal of 0 or more".into())
            } else if at > now + FUTURE_SLACK {
                refuse("FUTURE_EVENT", "the event is more than 5 minutes in the future".into())
            } else if at < earliest {
                refuse("LATE_EVENT", "the event is before the period that can still be billed".into())
            } else if !seen.insert(r.event_id.clone()) {
                UsageStatus::Duplicate
            } else {
                fresh.push(UsageEvent {
                    event_id: r.event_id.clone(),
                    subscription_id: sub.id.clone(),
                    product_id: r.product_id.clone(),
                    quantity: quantity.unwrap_or_default(),
                    event_time: at,
                    properties: r.properties.clone(),
                    created_at: now,
                });
                UsageStatus::Accepted
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
}
