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
//! At a period's end the billing clock bills its in-arrears items
//! ([`App::arrears_lines`]: METERED products at their aggregate, rated by
//! pricing), counts them again when the draft is finalized
//! ([`App::recount_usage`]), and [`App::usage_summary`] shows the running
//! period.

use chrono::{DateTime, Duration, Utc};
use recur_auth::CallContext;
use recur_error::{AppError, AppResult};
use rust_decimal::Decimal;

use super::App;
use crate::domain::usage::{ClosedPeriod, RatedUsage, arrears_line, rerated};
use crate::domain::{
    Account, CouponLeft, Invoice, InvoiceLine, InvoiceReason, InvoiceStatus, LineKind, Metadata, Subscription,
    UsageEvent,
};
use crate::peers::UsageQuestion;

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
    /// start, or an earlier period's while an invoice billing that
    /// period's usage is still a draft (the grace period): a renewal's (the
    /// previous period) or a last period's (`period_close`).
    async fn earliest_billed(&self, tenant: &str, sub: &crate::domain::Subscription) -> AppResult<DateTime<Utc>> {
        let invoices = self.repo.invoices_of_subscription(tenant, &sub.id).await?;
        let drafts = invoices.iter().filter(|i| {
            i.status == InvoiceStatus::Draft
                && matches!(i.reason, InvoiceReason::SubscriptionCycle | InvoiceReason::PeriodClose)
        });
        // Its usage lines say which period a draft still counts.
        let counted = drafts
            .clone()
            .flat_map(|i| i.lines.iter())
            .filter(|l| l.kind == LineKind::Usage)
            .filter_map(|l| l.period_start)
            .min();
        // A renewal's draft without usage lines: the period before it.
        let previous = drafts
            .filter(|d| {
                d.reason == InvoiceReason::SubscriptionCycle && d.period_start == Some(sub.current_period_start)
            })
            .flat_map(|d| invoices.iter().filter(move |i| i.period_end == d.period_start))
            .filter_map(|i| i.period_start)
            .min();
        Ok([counted, previous, Some(sub.current_period_start)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(sub.current_period_start))
    }
}

impl App {
    /// The in-arrears lines of contract `sub` (as it was during the period)
    /// over `start..end`: each METERED product at its aggregate, and on a
    /// rate billed in arrears each licensed product at its quantity, rated
    /// by pricing and taxed where `account` is. `fixed_left` is what each
    /// FIXED_AMOUNT coupon has left for them on their invoice (`None`:
    /// their whole amounts); the licensed lines take from it first, then
    /// the METERED ones, each in the rate's order. Answers the lines (in
    /// the rate's order) and what the coupons had left for the METERED
    /// ones (kept on the invoice, for a recount).
    pub(crate) async fn arrears_lines(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        account: &Account,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        (coupon_periods, fixed_left): (&[(String, i64)], CouponLeft),
    ) -> AppResult<(Vec<InvoiceLine>, CouponLeft)> {
        let billed = self.catalog.arrears_items(ctx, &sub.rate_id).await.map_err(crate::peers::repriced)?;
        let mut rating = Rating {
            whole: self.whole_period(ctx, sub, account, &billed, (start, end)).await?,
            coupons: coupons_in_force(sub, coupon_periods, 0),
            fixed: fixed_left,
        };
        let mut rated_items = vec![None; billed.len()];
        let mut for_metered: CouponLeft = None;
        // Licensed items first, then the metered ones (whose share a
        // recount gives again from what is left for them).
        for metered in [false, true] {
            if metered {
                for_metered = rating.fixed.clone();
            }
            for (k, item) in billed.iter().enumerate().filter(|(_, i)| i.meter.is_some() == metered) {
                let got = self.arrears_item(ctx, sub, account, item, (start, end), &rating).await?;
                if let Some((_, _, rated)) = &got {
                    rating.took(rated);
                }
                rated_items[k] = got;
            }
        }
        let mut lines = Vec::new();
        for (item, got) in billed.iter().zip(rated_items) {
            let Some((quantity, _, rated)) = got else { continue };
            let period = ClosedPeriod {
                subscription_id: &sub.id,
                offering_id: &sub.offering_id,
                rate_id: &sub.rate_id,
                start,
                end,
            };
            lines.push(arrears_line(period, item, quantity, rated));
        }
        Ok((lines, for_metered))
    }

    /// Draft `inv`'s usage lines counted again (usage that came during the
    /// grace period) and the invoice totaled again. When any changed, every
    /// usage line is rated again, in order, so the FIXED_AMOUNT coupons'
    /// shares follow from what they had left for them when the draft was
    /// made.
    pub(crate) async fn recount_usage(&self, ctx: &CallContext, inv: &mut Invoice) -> AppResult<()> {
        let tenant = ctx.tenant_id.as_str();
        // Each metered line's count now.
        let mut counted = Vec::new();
        for (k, line) in inv.lines.iter().enumerate().filter(|(_, l)| l.kind == LineKind::Usage) {
            let (Some(start), Some(end)) = (line.period_start, line.period_end) else { continue };
            let billed = self.catalog.arrears_items(ctx, &line.rate_id).await.map_err(crate::peers::repriced)?;
            let Some(meter) = billed.iter().find(|i| i.product_id == line.product_id).and_then(|i| i.meter.clone())
            else {
                continue;
            };
            let quantity = self
                .repo
                .aggregate_usage(tenant, &inv.subscription_id, &line.product_id, &meter, start, end)
                .await?
                .value();
            counted.push((k, quantity, (start, end)));
        }
        if counted.iter().all(|(k, quantity, _)| inv.lines[*k].quantity == *quantity) {
            return Ok(());
        }
        // The contract and account are read only when a line changed.
        let sub = self.subscription(tenant, &inv.subscription_id).await?;
        let account = self.account_alone(tenant, &inv.account_id, "account_id").await?;
        // The coupons as they were when the draft was made (a renewal's or
        // a last part's draft counts itself among them now).
        let mine = i64::from(matches!(
            inv.reason,
            crate::domain::InvoiceReason::SubscriptionCycle | crate::domain::InvoiceReason::PeriodClose
        ));
        let periods = self.coupon_periods_of(tenant, &sub).await?;
        let mut rating = Rating {
            whole: None,
            coupons: coupons_in_force(&sub, &periods, mine),
            fixed: inv.usage_coupon_left.clone(),
        };
        for (k, quantity, period) in counted {
            let line = &inv.lines[k];
            let held = sub
                .items
                .iter()
                .find(|i| i.product_id == line.product_id)
                .cloned()
                .unwrap_or_else(|| crate::domain::Item::new(line.product_id.clone(), quantity));
            let rated = self
                .rate_arrears(ctx, &account, (&line.rate_id, inv.currency), (&held, quantity), period, &rating)
                .await?;
            rating.took(&rated);
            inv.lines[k] = rerated(line, quantity, rated);
        }
        inv.total_lines();
        Ok(())
    }

    /// `sub`'s coupons as a quote of its next invoice takes them: each with
    /// the invoices it has been in force for (`(code, 0, invoices)`).
    pub(crate) async fn coupon_usages_of(
        &self,
        tenant: &str,
        sub: &Subscription,
    ) -> AppResult<Vec<(String, i32, i32)>> {
        Ok(quote_usages(&self.coupon_periods_of(tenant, sub).await?))
    }

    /// How many invoices each of `sub`'s coupons has been in force for
    /// (nothing read for a contract without coupons).
    pub(crate) async fn coupon_periods_of(&self, tenant: &str, sub: &Subscription) -> AppResult<Vec<(String, i64)>> {
        if sub.coupon_codes.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.repo.coupon_periods(tenant, &sub.id).await?)
    }

    /// The whole period (and the time zone its days are counted in) that
    /// `start..end` of contract `sub` is only part of, when a per-period
    /// item of `billed` is to be prorated over it; see
    /// [`crate::domain::usage::full_period`].
    async fn whole_period(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        account: &Account,
        billed: &[crate::domain::usage::ArrearsItem],
        (start, end): (DateTime<Utc>, DateTime<Utc>),
    ) -> AppResult<WholePeriod> {
        if billed.iter().all(|i| i.meter.is_some()) {
            return Ok(None);
        }
        let period = self.catalog.rate_terms(ctx, &sub.rate_id).await.map_err(crate::peers::repriced)?.period;
        let zone = account.zone(&self.catalog.policy(ctx).await?.time_zone).to_string();
        let tz = account.tz(&zone);
        Ok(crate::domain::usage::full_period(sub, period, tz, (start, end)).map(|p| (p, zone)))
    }

    /// What in-arrears `item` of contract `sub` comes to over `start..end`:
    /// its quantity (a METERED product's aggregate, else the contract's),
    /// the usage events counted, and its price (a per-period item prorated
    /// over part of `whole`); `None` when the contract does not hold the
    /// product.
    async fn arrears_item(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        account: &Account,
        item: &crate::domain::usage::ArrearsItem,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        rating: &Rating,
    ) -> AppResult<Option<(Decimal, u64, RatedUsage)>> {
        let Some(held) = sub.items.iter().find(|i| i.product_id == item.product_id) else { return Ok(None) };
        let (quantity, events) = match &item.meter {
            Some(m) => {
                let a = self.repo.aggregate_usage(&ctx.tenant_id, &sub.id, &item.product_id, m, start, end).await?;
                (a.value(), a.events())
            }
            None => (held.quantity, 0),
        };
        let unprorated;
        let rating = if item.meter.is_some() && rating.whole.is_some() {
            unprorated = Rating { whole: None, coupons: rating.coupons.clone(), fixed: rating.fixed.clone() };
            &unprorated
        } else {
            rating
        };
        let rated = self
            .rate_arrears(ctx, account, (&sub.rate_id, sub.currency), (held, quantity), (start, end), rating)
            .await?;
        Ok(Some((quantity, events, rated)))
    }

    /// What pricing says `quantity` of contract item `held` costs on rate
    /// `rate_id` over a period (its custom price, if it has one; prorated
    /// over part of `whole`, when given).
    async fn rate_arrears(
        &self,
        ctx: &CallContext,
        account: &Account,
        (rate_id, currency): (&str, recur_money::Currency),
        (held, quantity): (&crate::domain::Item, Decimal),
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        Rating { whole, coupons, fixed }: &Rating,
    ) -> AppResult<RatedUsage> {
        let q = UsageQuestion {
            rate_id: rate_id.to_string(),
            product_id: held.product_id.clone(),
            quantity,
            period_start: start,
            period_end: end,
            tax_address: account.billing_address.clone(),
            tax_exempt: account.tax_exempt,
            compute_tax: !account.billing_address.country.is_empty(),
            custom_price: held.custom_price.clone(),
            full_period: whole.as_ref().map(|(p, _)| *p),
            time_zone: whole.as_ref().map(|(_, z)| z.clone()).unwrap_or_default(),
            coupons: coupons.clone(),
            // Only the contract's coupons as they are now (one removed since
            // a draft was made has nothing left to take).
            fixed_left: fixed
                .iter()
                .flatten()
                .filter(|(code, _)| coupons.iter().any(|(c, _)| c == code))
                .map(|(code, a)| (code.clone(), recur_money::Money::new(*a, currency)))
                .collect(),
            whole_fixed: fixed.is_none(),
        };
        self.pricing.rate_usage(ctx, &q).await.map_err(crate::peers::repriced)
    }
}

/// The whole period a closed part belongs to and the time zone its days
/// are counted in, when a per-period item is prorated over the part.
type WholePeriod = Option<((DateTime<Utc>, DateTime<Utc>), String)>;

/// How a contract's in-arrears lines are rated beside their quantities:
/// over part of a whole period (a per-period item prorated), with the
/// contract's coupons (code, invoices each has been in force for), and
/// what each FIXED_AMOUNT coupon has left for the invoice's next line
/// (`None`: its whole amount).
struct Rating {
    whole: WholePeriod,
    coupons: Vec<(String, i32)>,
    fixed: CouponLeft,
}

impl Rating {
    /// What the FIXED_AMOUNT coupons have left after line `rated`.
    fn took(&mut self, rated: &RatedUsage) {
        self.fixed = Some(rated.fixed_left.clone());
    }
}

/// Coupon periods (`(code, invoices in force)`) as a quote takes them:
/// `(code, times redeemed: 0, periods applied)`.
pub(crate) fn quote_usages(periods: &[(String, i64)]) -> Vec<(String, i32, i32)> {
    periods.iter().map(|(code, n)| (code.clone(), 0, i32::try_from(*n).unwrap_or(i32::MAX))).collect()
}

/// `sub`'s coupon codes, each with the renewal and start invoices made
/// since it was redeemed (`periods`, less `mine` for an invoice that counts
/// itself there).
fn coupons_in_force(sub: &Subscription, periods: &[(String, i64)], mine: i64) -> Vec<(String, i32)> {
    sub.coupon_codes
        .iter()
        .map(|code| {
            let n = periods.iter().find(|(c, _)| c == code).map(|(_, n)| (*n - mine).max(0)).unwrap_or(0);
            (code.clone(), i32::try_from(n).unwrap_or(i32::MAX))
        })
        .collect()
}

/// One in-arrears product of a period so far.
#[derive(Clone, Debug)]
pub struct SummaryLine {
    pub item: crate::domain::usage::ArrearsItem,
    pub quantity: Decimal,
    pub events: u64,
    pub rated: RatedUsage,
}

/// The current period's in-arrears products so far.
#[derive(Clone, Debug)]
pub struct UsageSummary {
    pub subscription: Subscription,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub lines: Vec<SummaryLine>,
}

impl App {
    /// Subscription `id`'s current period so far: each in-arrears product's
    /// running aggregate (or quantity) and what it would cost if the period
    /// closed now.
    pub async fn usage_summary(&self, ctx: &CallContext, id: &str) -> AppResult<UsageSummary> {
        if id.is_empty() {
            return Err(AppError::invalid("subscription_id", "is required"));
        }
        let tenant = ctx.tenant_id.as_str();
        let sub = self.subscription(tenant, id).await?;
        let account = self.account_alone(tenant, &sub.account_id, "subscription_id").await?;
        let (start, end) = (sub.current_period_start, sub.current_period_end);
        let billed = self.catalog.arrears_items(ctx, &sub.rate_id).await.map_err(crate::peers::repriced)?;
        let periods = self.coupon_periods_of(tenant, &sub).await?;
        // A FIXED_AMOUNT coupon's share is known when the invoice is made
        // (it depends on the invoice's other lines): none is shown here.
        let rating = Rating {
            whole: self.whole_period(ctx, &sub, &account, &billed, (start, end)).await?,
            coupons: coupons_in_force(&sub, &periods, 0),
            fixed: Some(Vec::new()),
        };
        let mut lines = Vec::new();
        for item in billed.iter() {
            let summed = self.arrears_item(ctx, &sub, &account, item, (start, end), &rating).await?;
            if let Some((quantity, events, rated)) = summed {
                lines.push(SummaryLine { item: item.clone(), quantity, events, rated });
            }
        }
        Ok(UsageSummary { subscription: sub, period_start: start, period_end: end, lines })
    }
}
