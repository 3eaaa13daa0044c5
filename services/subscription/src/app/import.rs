//! Importing a subscription billed elsewhere until now (seed 002's import):
//! priced as any contract (so its items, coupons and recurring amount are
//! checked), but stored ACTIVE in the period from its `previous_billing_at`
//! (or now) to its `next_billing_at`, anchored on the next billing day,
//! with no invoice and no charge; its next invoice comes on
//! `next_billing_at`. The events are the ones of any new subscription
//! (`subscription.created`); nothing is invoiced or paid.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use recur_auth::CallContext;
use recur_error::{AppError, AppResult, Violations};
use recur_period::{Unit, local_date};
use recur_storage::idem::{check_replay, insert_once};
use std::str::FromStr;

use super::subscribe::custom_id_taken;
use super::{App, Idem};
use crate::domain::{BillingAnchor, Event, Metadata, Subscription, SubscriptionEvent, SubscriptionState};
use crate::peers::QuoteInput;

#[derive(Clone, Debug, Default)]
pub struct ImportInput {
    pub account_id: String,
    pub bill_group_id: String,
    pub offering: String,
    pub rate: String,
    pub items: Vec<(String, String)>,
    /// Product (as in `items`) → the price agreed for it.
    pub custom_prices: Vec<(String, crate::domain::CustomPrice)>,
    pub previous_billing_at: Option<DateTime<Utc>>,
    pub next_billing_at: Option<DateTime<Utc>>,
    pub coupon_codes: Vec<String>,
    pub metadata: Metadata,
    pub custom_id: String,
}

impl App {
    pub async fn import(&self, ctx: &CallContext, r: &ImportInput, idem: &Idem) -> AppResult<Subscription> {
        let tenant = ctx.tenant_id.as_str();
        let now = self.now(tenant);
        let mut v = Violations::new();
        v.check(!r.account_id.is_empty(), "account_id", "is required");
        v.check(!r.bill_group_id.is_empty(), "bill_group_id", "is required");
        v.check(!r.offering.is_empty(), "offering", "is required");
        v.check(!r.rate.is_empty(), "rate", "is required");
        v.check(r.next_billing_at.is_some(), "next_billing_time", "is required");
        if let Some(next) = r.next_billing_at {
            v.check(next > now, "next_billing_time", "must be in the future");
            if let Some(prev) = r.previous_billing_at {
                v.check(prev < next, "previous_billing_time", "must come before next_billing_time");
                v.check(prev <= now, "previous_billing_time", "must not be in the future");
            }
        }
        for (i, (product, _)) in r.items.iter().enumerate() {
            v.check(!product.is_empty(), format!("items[{i}].product_id"), "is required");
        }
        v.finish()?;
        let Some(next_billing_at) = r.next_billing_at else { return Err(AppError::internal("validated next billing")) };

        if let Some(key) = &idem.key
            && let Some(stored) = self.repo.subscription_by_key(tenant, key).await?
        {
            return Ok(check_replay(stored, &idem.hash)?.0);
        }
        let account =
            self.account_alone(tenant, &r.account_id, "account_id").await.map_err(AppError::into_invalid_reference)?;
        let bill_group = self.bill_group_of(tenant, &account.id, &r.bill_group_id).await?;
        let policy = self.catalog.policy(ctx).await?;
        let zone = account.zone(&policy.time_zone).to_string();
        let tz = Tz::from_str(&zone).unwrap_or(chrono_tz::UTC);
        let started = r.previous_billing_at.unwrap_or(now);
        let quote = self
            .pricing
            .quote(
                ctx,
                &QuoteInput {
                    offering: r.offering.clone(),
                    rate: r.rate.clone(),
                    items: r.items.clone(),
                    coupon_codes: r.coupon_codes.clone(),
                    tax_address: account.billing_address.clone(),
                    tax_exempt: account.tax_exempt,
                    compute_tax: !account.billing_address.country.is_empty(),
                    start_date: self.quote_today(ctx, &account).await?,
                    time_zone: zone,
                    // Going on from elsewhere: no trial or setup fee again.
                    continuation: true,
                    coupon_usages: Vec::new(),
                    custom_prices: r.custom_prices.clone(),
                    billing_day: 0,
                },
            )
            .await?;
        let offering = quote.offerings.first().ok_or_else(|| AppError::internal("quote without offering"))?;
        let rate = self.catalog.rate_terms(ctx, &offering.rate_id).await?;
        let mut items = offering.contract_items();
        self.attach_custom_prices(ctx, &mut items, &r.custom_prices).await?;
        let sub = Subscription {
            id: recur_id::new_id(recur_id::Kind::Subscription),
            custom_id: (!r.custom_id.is_empty()).then(|| r.custom_id.clone()),
            account_id: account.id.clone(),
            bill_group_id: bill_group.id.clone(),
            offering_id: offering.offering_id.clone(),
            rate_id: offering.rate_id.clone(),
            state: SubscriptionState::Active,
            items,
            coupon_codes: r.coupon_codes.clone(),
            currency: quote.currency,
            recurring_amount: offering.recurring_amount,
            start_date: local_date(started, tz),
            // The next billing day is the day periods keep.
            billing_anchor: BillingAnchor::of(local_date(next_billing_at, tz), rate.period.unit == Unit::Year),
            metadata: r.metadata.clone(),
            cancel_at_period_end: false,
            current_period_start: started,
            current_period_end: next_billing_at,
            trial_start: None,
            trial_end: None,
            next_billing_at: Some(next_billing_at),
            activated_at: Some(started),
            canceled_at: None,
            expires_at: None,
            quote_id: String::new(),
            scheduled_change: None,
            paused_at: None,
            resume_at: None,
            cancel_reason: String::new(),
            cancel_comment: String::new(),
            previous_billing_at: r.previous_billing_at,
            parked_reason: String::new(),
            version: 0,
            created_at: now,
            updated_at: now,
        };
        let events = vec![Event::new(
            SubscriptionEvent::SubscriptionCreated {
                subscription_id: sub.id.clone(),
                account_id: sub.account_id.clone(),
                state: sub.state.as_str().to_string(),
            },
            now,
        )];
        let stored = insert_once(idem.key.is_some(), || {
            self.repo.insert_subscription(tenant, &sub, None, idem.as_repo(), &[], &events)
        })
        .await
        .map_err(custom_id_taken)?;
        Ok(check_replay(stored, &idem.hash)?.0)
    }
}
