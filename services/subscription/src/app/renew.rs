//! The billing clock: what becomes due without anyone calling an RPC.
//!
//! - **Subscriptions** whose next billing time has come
//!   ([`App::bill_subscription`]): a later start begins, a trial ends, a
//!   period renews (a scheduled change applied, coupons counted per period,
//!   one-off charges waiting for it added), a cancellation or pause
//!   scheduled for the period end takes effect, a pause ends by itself. A
//!   subscription several periods behind gets one invoice per missed
//!   period, in order, each dated at its own period's start.
//! - **Invoices** whose next action has come ([`App::act_on_invoice`]): a
//!   renewal's DRAFT is finalized once the tenant's grace period has passed
//!   (the account's credit applied, numbered), then collected; an unpaid
//!   one follows dunning (`domain::dunning`): a declined charge retried on
//!   the tenant's schedule, an invoice the customer pays found overdue at
//!   its due date, the final action when the schedule is used up.
//!
//! A background pass ([`App::run_clock`]) leases its due subscriptions in
//! one statement, plans their renewals several at once and writes each
//! tenant's renewals in one transaction (a savepoint each); what else is
//! due goes one by one. It takes its due invoices in one statement too.
//!
//! Exactly once: each step is written over the subscription's version, and
//! the database keeps one renewal invoice per subscription and period (a
//! unique index), so a step that lost a race or is re-run after a crash
//! writes nothing twice; collection goes through the gateway under the
//! invoice's key, so it charges once. A step refused for a reason a retry
//! does not fix (its rate cannot be priced) parks the subscription with the
//! reason and an event; the others go on.

use chrono::{DateTime, Duration, Utc};
use recur_auth::CallContext;
use recur_error::{AppError, AppResult};
use tonic::Code;

use super::mutate::Plan;
use super::{App, Idem};
use crate::domain::lifecycle::Terms;
use crate::domain::renewal::{Due, closing_invoice, cycle_invoice, due_step, finalize, next_period};
use crate::domain::state::Action;
use crate::domain::{Event, Invoice, InvoiceStatus, Subscription, SubscriptionEvent, SubscriptionState};
use crate::peers::QuoteInput;

/// How long a renewal's invoice stays DRAFT (late usage for the closed
/// period still counts) before it is finalized and collected, unless the
/// tenant says otherwise (`subscription_defaults.invoice_grace_period`).
pub const GRACE_PERIOD: Duration = Duration::hours(1);

/// Most periods one subscription is caught up by in one pass.
const MAX_CATCH_UP: usize = 400;

/// One thing the clock did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockAction {
    pub at: DateTime<Utc>,
    /// `activated`, `trial_ended`, `renewed`, `canceled`, `paused`,
    /// `resumed`, `parked`, `finalized`, `paid`, `payment_failed`,
    /// `payment_pending`, `overdue`, `dunning_ended`.
    pub kind: &'static str,
    pub subscription_id: String,
    pub invoice_id: String,
    pub payment_id: String,
    pub reason: String,
}

impl ClockAction {
    pub(crate) fn new(at: DateTime<Utc>, kind: &'static str, subscription_id: &str) -> ClockAction {
        ClockAction {
            at,
            kind,
            subscription_id: subscription_id.to_string(),
            invoice_id: String::new(),
            payment_id: String::new(),
            reason: String::new(),
        }
    }
}

/// Whether a refusal will not go away by itself: the subscription is
/// parked rather than retried.
pub(crate) fn is_permanent(e: &AppError) -> bool {
    matches!(e.code(), Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound | Code::OutOfRange)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl App {
    /// Does, in order, everything due for subscription `id` up to `now`
    /// (see the module docs), appending what it did to `out`. An error is
    /// transient (the next run tries again); a permanent refusal parks the
    /// subscription and is answered as a `parked` action.
    pub async fn bill_subscription(
        &self,
        ctx: &CallContext,
        id: &str,
        now: DateTime<Utc>,
        out: &mut Vec<ClockAction>,
    ) -> AppResult<()> {
        let tenant = ctx.tenant_id.as_str();
        // A renewal answers the subscription as it stored it: the next
        // period's check needs no read.
        let mut renewed: Option<Subscription> = None;
        for _ in 0..MAX_CATCH_UP {
            let sub = match renewed.take() {
                Some(sub) => sub,
                None => self.subscription(tenant, id).await?,
            };
            if !sub.parked_reason.is_empty() {
                return Ok(());
            }
            let Some(at) = sub.next_billing_at.filter(|t| *t <= now) else { return Ok(()) };
            let Some(step) = due_step(&sub) else {
                // Nothing to do at that time (a state that does not bill):
                // the time is cleared, so the clock stops finding it.
                let mut next = sub.clone();
                next.next_billing_at = None;
                Box::pin(self.commit(ctx, Action::Renew, &Idem::default(), Plan::new(next, None, Vec::new()))).await?;
                return Ok(());
            };
            let version = sub.version;
            match Box::pin(self.do_step(ctx, sub, step, at)).await {
                Ok((action, stored)) => {
                    out.push(action);
                    renewed = stored;
                }
                Err(e) if is_permanent(&e) => {
                    let reason = e.reason().to_string();
                    let event = Event::new(
                        SubscriptionEvent::SubscriptionParked {
                            subscription_id: id.to_string(),
                            reason: reason.clone(),
                            message: e.message().to_string(),
                        },
                        at,
                    );
                    if self.repo.park_subscription(tenant, id, version, &reason, at, &event).await? {
                        let mut a = ClockAction::new(at, "parked", id);
                        a.reason = reason;
                        out.push(a);
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn do_step(
        &self,
        ctx: &CallContext,
        sub: Subscription,
        step: Due,
        at: DateTime<Utc>,
    ) -> AppResult<(ClockAction, Option<Subscription>)> {
        let none = Idem::default();
        let id = sub.id.clone();
        let (kind, changed) = match step {
            Due::Activate => {
                let start = sub.start_date;
                let plan = Box::pin(self.activation(ctx, sub, Some(start))).await?;
                ("activated", Box::pin(self.commit(ctx, Action::Activate, &none, plan)).await?)
            }
            Due::Resume => ("resumed", Box::pin(self.resume(ctx, &id, &none)).await?),
            Due::Cancel => {
                let closing = Box::pin(self.closing_or_none(ctx, &sub, at)).await?;
                let mut next = sub.clone();
                crate::domain::lifecycle::end_now(&mut next, SubscriptionState::Canceled, at);
                let reason =
                    if sub.cancel_reason.is_empty() { "end_of_term".into() } else { sub.cancel_reason.clone() };
                let event =
                    Event::new(SubscriptionEvent::SubscriptionCanceled { subscription_id: id.clone(), reason }, at);
                (
                    "canceled",
                    Box::pin(self.commit(ctx, Action::Cancel, &none, Plan::new(next, closing, vec![event]))).await?,
                )
            }
            Due::Pause => {
                let closing = Box::pin(self.closing_or_none(ctx, &sub, at)).await?;
                let mut next = sub.clone();
                next.state = SubscriptionState::Paused;
                next.next_billing_at = next.resume_at;
                next.scheduled_change = None;
                next.updated_at = at;
                let event = Event::new(
                    SubscriptionEvent::SubscriptionPaused {
                        subscription_id: id.clone(),
                        pause_at: rfc3339(at),
                        resume_at: next.resume_at.map(rfc3339).unwrap_or_default(),
                    },
                    at,
                );
                (
                    "paused",
                    Box::pin(self.commit(ctx, Action::Pause, &none, Plan::new(next, closing, vec![event]))).await?,
                )
            }
            Due::Renew => {
                let kind = renewal_kind(&sub);
                let plan = Box::pin(self.renewal(ctx, &sub, at)).await?;
                (kind, Box::pin(self.commit(ctx, Action::Renew, &none, plan)).await?)
            }
        };
        let mut a = ClockAction::new(at, kind, &id);
        a.invoice_id = changed.invoice.map(|i| i.id).unwrap_or_default();
        a.payment_id = changed.payment_id;
        // A renewal's invoice is a draft, charged later: the subscription
        // is as the renewal stored it (other steps may charge, and change
        // it again).
        let stored = (step == Due::Renew).then_some(changed.subscription);
        Ok((a, stored))
    }

    /// The renewal of `sub` at `at`: its next period and that period's
    /// draft invoice.
    pub(crate) async fn renewal(&self, ctx: &CallContext, sub: &Subscription, at: DateTime<Utc>) -> AppResult<Plan> {
        let tenant = ctx.tenant_id.as_str();
        let known = Known {
            account: self.account_alone(tenant, &sub.account_id, "id").await?,
            bill_group: self.bill_group(tenant, &sub.bill_group_id).await?,
            coupon_periods: self.repo.coupon_periods(tenant, &sub.id).await?,
            pending: self.repo.pending_charges(tenant, &sub.id).await?,
        };
        Box::pin(self.renewal_with(ctx, sub, at, known)).await
    }

    /// [`Self::renewal`] with what it reads already read.
    async fn renewal_with(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        at: DateTime<Utc>,
        known: Known,
    ) -> AppResult<Plan> {
        let Known { account, bill_group, coupon_periods, pending } = known;
        let policy = self.catalog.policy(ctx).await?;
        let rate_id = sub.scheduled_change.as_ref().map(|c| c.rate_id.as_str()).unwrap_or(&sub.rate_id);
        let rate = self.catalog.rate_terms(ctx, rate_id).await.map_err(crate::peers::repriced)?;
        let zone = account.zone(&policy.time_zone);
        let tz = account.tz(&policy.time_zone);
        let terms = Terms { period: rate.period, notice_days: rate.notice_days, tz, mode: policy.proration };
        let next =
            next_period(sub, &terms, at).ok_or_else(|| AppError::internal("renewal of a state that does not renew"))?;
        // Each coupon knows how many periods it has discounted already
        // (ONCE, REPEATING and FOREVER are pricing's to apply).
        let usages = super::usage::quote_usages(&coupon_periods);
        let quote = self
            .pricing
            .quote(
                ctx,
                &QuoteInput {
                    start_date: recur_period::local_date(next.current_period_start, tz).format("%Y-%m-%d").to_string(),
                    coupon_usages: usages,
                    time_zone: zone.to_string(),
                    ..QuoteInput::of_contract(&next, &account, true)
                },
            )
            .await
            .map_err(crate::peers::repriced)?;
        let offering = quote.offerings.first().ok_or_else(|| AppError::internal("quote without offering"))?;
        let mut next = next;
        next.recurring_amount = offering.recurring_amount;
        // The in-arrears lines take what the in-advance lines left of each
        // FIXED_AMOUNT coupon.
        let (arrears, coupon_left) = match crate::domain::usage::closed_period(sub, next.current_period_start) {
            Some(closed) => {
                let fixed = Some(quote.fixed_left.clone());
                self.arrears_lines(ctx, sub, &account, closed, (&coupon_periods, fixed)).await?
            }
            None => (Vec::new(), Some(Vec::new())),
        };
        let mut invoice = cycle_invoice(&next, &bill_group, offering, arrears, &pending, at, at + policy.grace);
        if let Some(inv) = invoice.as_mut() {
            inv.usage_coupon_left = coupon_left;
        }
        let event = Event::new(
            SubscriptionEvent::SubscriptionRenewed {
                subscription_id: sub.id.clone(),
                period_start: rfc3339(next.current_period_start),
                period_end: rfc3339(next.current_period_end),
                invoice_id: invoice.as_ref().map(|i| i.id.clone()).unwrap_or_default(),
            },
            at,
        );
        Ok(Plan::new(next, invoice, vec![event]))
    }

    /// [`Self::closing`], except that a refusal a retry does not fix (the
    /// rate cannot be rated) does not hold up the cancellation or pause:
    /// it goes ahead without that invoice, and says so in the log.
    pub(crate) async fn closing_or_none(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        at: DateTime<Utc>,
    ) -> AppResult<Option<Invoice>> {
        match self.closing(ctx, sub, at).await {
            Err(e) if is_permanent(&e) => {
                tracing::warn!(subscription = %sub.id, error = %e, "last period's usage not invoiced");
                Ok(None)
            }
            other => other,
        }
    }

    /// The invoice of `sub`'s in-arrears items for the period that closes
    /// at `at` without a next one (a cancellation or pause at its end).
    async fn closing(&self, ctx: &CallContext, sub: &Subscription, at: DateTime<Utc>) -> AppResult<Option<Invoice>> {
        let Some(closed) = crate::domain::usage::closed_period(sub, at) else { return Ok(None) };
        let tenant = ctx.tenant_id.as_str();
        let account = self.account_alone(tenant, &sub.account_id, "id").await?;
        let periods = self.coupon_periods_of(tenant, sub).await?;
        // No in-advance lines: each FIXED_AMOUNT coupon in force has its
        // whole amount for them.
        let (arrears, coupon_left) = self.arrears_lines(ctx, sub, &account, closed, (&periods, None)).await?;
        if arrears.is_empty() {
            return Ok(None);
        }
        let bill_group = self.bill_group(tenant, &sub.bill_group_id).await?;
        let grace = self.catalog.policy(ctx).await?.grace;
        let mut invoice = closing_invoice(sub, &bill_group, arrears, at, at + grace);
        if let Some(inv) = invoice.as_mut() {
            inv.usage_coupon_left = coupon_left;
        }
        Ok(invoice)
    }

    /// Does what is due at `now` for invoice `id`: finalizes a draft whose
    /// grace period has passed, collects a final one waiting to be charged.
    pub async fn act_on_invoice(
        &self,
        ctx: &CallContext,
        id: &str,
        now: DateTime<Utc>,
        out: &mut Vec<ClockAction>,
    ) -> AppResult<()> {
        let tenant = ctx.tenant_id.as_str();
        let mut inv = self.invoice(tenant, id).await?;
        let Some(at) = inv.next_action_at.filter(|t| *t <= now) else { return Ok(()) };
        if !matches!(inv.status, InvoiceStatus::Draft | InvoiceStatus::Open) {
            // Settled meanwhile (paid, voided): nothing left for the clock.
            return self.stop_collecting(tenant, inv).await;
        }
        // This run's until the lease ends (then, should it have died, the
        // next run's): no two runs finalize or charge it at once.
        let leased = now + self.lease;
        if !self.repo.take_invoice(tenant, id, at, leased).await? {
            return Ok(());
        }
        inv.next_action_at = Some(leased);
        Box::pin(self.act_on_taken(ctx, inv, at, out)).await
    }

    /// Does what was due at `at` for invoice `id`, which a pass of the
    /// clock took (with others) until `leased`.
    async fn act_on_claimed(
        &self,
        ctx: &CallContext,
        id: &str,
        at: DateTime<Utc>,
        leased: DateTime<Utc>,
        out: &mut Vec<ClockAction>,
    ) -> AppResult<()> {
        let tenant = ctx.tenant_id.as_str();
        let inv = self.invoice(tenant, id).await?;
        if inv.next_action_at != Some(leased) {
            // Taken by another run since (this one's lease ran out).
            return Ok(());
        }
        if !matches!(inv.status, InvoiceStatus::Draft | InvoiceStatus::Open) {
            return self.stop_collecting(tenant, inv).await;
        }
        Box::pin(self.act_on_taken(ctx, inv, at, out)).await
    }

    /// Does what was due at `at` for invoice `inv`, which this run has
    /// taken (its `next_action_at` the lease's end).
    async fn act_on_taken(
        &self,
        ctx: &CallContext,
        mut inv: crate::domain::Invoice,
        at: DateTime<Utc>,
        out: &mut Vec<ClockAction>,
    ) -> AppResult<()> {
        let tenant = ctx.tenant_id.as_str();
        let leased = inv.next_action_at;
        let bill_group = self.bill_group(tenant, &inv.bill_group_id).await?;
        if inv.status == InvoiceStatus::Draft {
            let (was, read_at) = (inv.status, inv.updated_at);
            // Usage that came during the grace period counts.
            Box::pin(self.recount_usage(ctx, &mut inv)).await?;
            let credit = if inv.amount > rust_decimal::Decimal::ZERO {
                self.credit_balance(tenant, &inv.account_id, inv.currency.code()).await?
            } else {
                rust_decimal::Decimal::ZERO
            };
            let auto = bill_group.can_charge_automatically();
            finalize(&mut inv, credit, at, auto, self.due_days(ctx, &bill_group).await?);
            if auto && inv.status == InvoiceStatus::Open {
                // Collected next, still leased (a crash in between leaves it
                // due when the lease ends).
                inv.next_action_at = leased;
            } else if inv.status == InvoiceStatus::Open {
                // Paid by the customer: overdue if not paid by its due date.
                inv.next_action_at = inv.due_at;
            }
            let mut events = vec![Event::new(
                SubscriptionEvent::InvoiceFinalized { invoice_id: inv.id.clone(), number: String::new() },
                at,
            )];
            let mut credits = Vec::new();
            if let Some(e) = super::mutate::credit_of(&inv) {
                events.push(super::mutate::credit_event(&e, at));
                credits.push(e);
            }
            if inv.status == InvoiceStatus::Paid {
                events.push(Event::new(
                    SubscriptionEvent::InvoicePaid { invoice_id: inv.id.clone(), payment_id: String::new() },
                    at,
                ));
            }
            if !self.repo.update_invoice(tenant, &inv, was, read_at, &credits, &events).await? {
                // Another run finalized it meanwhile.
                return Ok(());
            }
            inv.number = self.repo.invoice_number(tenant, &inv.id).await?;
            let mut a = ClockAction::new(at, "finalized", &inv.subscription_id);
            a.invoice_id = inv.id.clone();
            out.push(a);
            if inv.status == InvoiceStatus::Paid {
                let mut a = ClockAction::new(at, "paid", &inv.subscription_id);
                a.invoice_id = inv.id.clone();
                out.push(a);
            }
        }
        if inv.status != InvoiceStatus::Open || inv.next_action_at.is_none() {
            return Ok(());
        }
        Box::pin(self.collect_due(ctx, inv, &bill_group, at, out)).await
    }

    /// The next step of collecting open invoice `inv` (taken by this run),
    /// due at `at`: the final action once the dunning schedule is used up;
    /// else a charge (the first, or a retry under its own key) on a bill
    /// group that pays automatically, or, for one paid by remittance, the
    /// next overdue step, charging nothing.
    async fn collect_due(
        &self,
        ctx: &CallContext,
        mut inv: crate::domain::Invoice,
        bill_group: &crate::domain::BillGroup,
        at: DateTime<Utc>,
        out: &mut Vec<ClockAction>,
    ) -> AppResult<()> {
        use crate::domain::dunning::{Next, after_failure};
        let tenant = ctx.tenant_id.as_str();
        let invoice_id = inv.id.clone();
        let policy = self.catalog.policy(ctx).await?;
        if let Some(first) = inv.first_failed_at
            && after_failure(&policy.dunning, inv.attempt_count, first, false) == Next::Final
        {
            return Box::pin(self.final_action(ctx, inv, &policy, at, out)).await;
        }
        if inv.amount_due().is_zero() || !inv.collection_paused.is_empty() {
            return self.stop_collecting(tenant, inv).await;
        }
        // A one-off charge's invoice belongs to no subscription.
        let mut sub = match inv.subscription_id.as_str() {
            "" => None,
            id => Some(self.subscription(tenant, id).await?),
        };
        if !bill_group.can_charge_automatically() {
            // Not paid by its due date (remittance, or nothing to charge it
            // to): overdue, then the schedule's steps, charging nothing.
            let (was, read_at) = (inv.status, inv.updated_at);
            let first_time = inv.attempt_count == 0;
            crate::app::collect::schedule_retry(&mut inv, &policy.dunning, "", at);
            inv.updated_at = at;
            let events = if first_time {
                vec![Event::new(SubscriptionEvent::InvoiceOverdue { invoice_id: invoice_id.clone() }, at)]
            } else {
                Vec::new()
            };
            if !self.repo.update_invoice(tenant, &inv, was, read_at, &[], &events).await? {
                return Ok(());
            }
            if first_time && let Some(sub) = sub.as_mut() {
                self.past_due(tenant, sub, &invoice_id).await?;
            }
            let mut a = ClockAction::new(at, "overdue", &inv.subscription_id);
            a.invoice_id = invoice_id;
            out.push(a);
            return Ok(());
        }
        // Each attempt has its own key at the gateway; a run cut off and
        // re-run makes the same attempt again, answered with its payment.
        let key = match inv.payment_ids.len() {
            0 => super::collect::charge_key(&inv.id),
            n => format!("{}:attempt:{}", super::collect::charge_key(&inv.id), n + 1),
        };
        let collected = match Box::pin(self.collect_with(ctx, bill_group, inv.clone(), key, true)).await {
            Ok(c) => c,
            Err(e) if is_permanent(&e) => {
                // Refused by the gateway as it stands (the method is gone):
                // left open, not charged again until something changes.
                let mut a = ClockAction::new(at, "payment_failed", &inv.subscription_id);
                a.invoice_id = invoice_id;
                a.reason = e.reason().to_string();
                out.push(a);
                return self.stop_collecting(tenant, inv).await;
            }
            Err(e) => return Err(e),
        };
        let kind = if collected.invoice.status == InvoiceStatus::Paid {
            self.settled(ctx, &collected.invoice).await?;
            "paid"
        } else if collected.failed {
            if let Some(sub) = sub.as_mut() {
                self.past_due(tenant, sub, &invoice_id).await?;
            }
            "payment_failed"
        } else {
            "payment_pending"
        };
        let mut a = ClockAction::new(at, kind, &inv.subscription_id);
        a.invoice_id = invoice_id;
        a.payment_id = collected.payment_id;
        a.reason = collected.decline_code;
        out.push(a);
        Ok(())
    }

    /// The tenant's final dunning action for `inv`, whose schedule is used
    /// up: cancel its subscription, or mark the invoice uncollectible (the
    /// subscription goes on, ACTIVE again), or leave it past due. Either
    /// way the clock is done with the invoice.
    async fn final_action(
        &self,
        ctx: &CallContext,
        inv: crate::domain::Invoice,
        policy: &crate::peers::Policy,
        at: DateTime<Utc>,
        out: &mut Vec<ClockAction>,
    ) -> AppResult<()> {
        use crate::domain::dunning::FinalAction;
        let tenant = ctx.tenant_id.as_str();
        let mut a = ClockAction::new(at, "dunning_ended", &inv.subscription_id);
        a.invoice_id = inv.id.clone();
        match policy.dunning.final_action {
            FinalAction::CancelSubscription => {
                a.reason = "subscription_canceled".into();
                self.stop_collecting(tenant, inv.clone()).await?;
                let sub = match inv.subscription_id.as_str() {
                    "" => None,
                    id => Some(self.subscription(tenant, id).await?),
                };
                if let Some(sub) = sub
                    && sub.state.after(Action::Cancel).is_ok()
                {
                    let mut next = sub.clone();
                    crate::domain::lifecycle::end_now(&mut next, SubscriptionState::Canceled, at);
                    next.cancel_reason = "unpaid".into();
                    let event = Event::new(
                        SubscriptionEvent::SubscriptionCanceled {
                            subscription_id: sub.id.clone(),
                            reason: "unpaid".into(),
                        },
                        at,
                    );
                    // The usage of the period so far is billed.
                    let closing = Box::pin(self.closing_or_none(ctx, &sub, at)).await?;
                    let plan = Plan::new(next, None, vec![event]).closing(closing);
                    Box::pin(self.commit(ctx, Action::Cancel, &Idem::default(), plan)).await?;
                }
            }
            FinalAction::MarkUncollectible => {
                a.reason = "invoice_uncollectible".into();
                let closed = self.close_invoice(ctx, &inv.id, false).await?;
                self.settled(ctx, &closed).await?;
            }
            FinalAction::LeavePastDue => {
                a.reason = "left_past_due".into();
                self.stop_collecting(tenant, inv).await?;
            }
        }
        out.push(a);
        Ok(())
    }

    /// Collects at once the open invoices of `bill_group` that dunning is
    /// retrying or that a hard decline paused: its payment method changed.
    pub async fn retry_open_invoices(&self, ctx: &CallContext, bill_group: &crate::domain::BillGroup) -> AppResult<()> {
        let tenant = ctx.tenant_id.as_str();
        if !bill_group.can_charge_automatically() {
            return Ok(());
        }
        let q = crate::repo::InvoiceQuery {
            account_id: Some(bill_group.account_id.clone()),
            subscription_id: None,
            status: Some(InvoiceStatus::Open),
            after: None,
            limit: 200,
        };
        let now = self.now(tenant);
        let mut out = Vec::new();
        for mut inv in self.repo.list_invoices(tenant, &q).await? {
            let waiting = inv.collection_paused == super::collect::PAYMENT_PENDING;
            if inv.bill_group_id != bill_group.id
                || waiting
                || (inv.attempt_count == 0 && inv.collection_paused.is_empty())
            {
                continue;
            }
            let (was, read_at) = (inv.status, inv.updated_at);
            inv.collection_paused.clear();
            inv.next_action_at = Some(now);
            if self.repo.update_invoice(tenant, &inv, was, read_at, &[], &[]).await? {
                Box::pin(self.act_on_invoice(ctx, &inv.id, now, &mut out)).await?;
            }
        }
        Ok(())
    }

    /// Leaves open invoice `inv` to be paid by other means: nothing more for
    /// the clock to do with it.
    async fn stop_collecting(&self, tenant: &str, mut inv: crate::domain::Invoice) -> AppResult<()> {
        let (was, read_at) = (inv.status, inv.updated_at);
        inv.next_action_at = None;
        self.repo.update_invoice(tenant, &inv, was, read_at, &[], &[]).await?;
        Ok(())
    }

    /// One pass of the clock over every tenant not in test mode, at the
    /// injected clock's time: up to `limit` due subscriptions leased to
    /// `owner` (other replicas skip them), then up to `limit` due
    /// invoices. Answers what it did; a subscription or invoice that failed
    /// transiently is left for the next pass.
    pub async fn run_clock(&self, owner: &str, limit: i64) -> AppResult<Vec<ClockAction>> {
        let now = self.clock.now_micros();
        let claimed = self
            .repo
            .claim_due(&crate::repo::DueQuery {
                tenant: None,
                due: now,
                owner,
                wall_now: now,
                lease_until: now + self.lease,
                limit,
            })
            .await?;
        // Subscriptions are independent: their renewals are planned several
        // at once and written together; their leases are given up together
        // at the end.
        // How long each half took, for the log.
        let t0 = std::time::Instant::now();
        let nclaimed = claimed.len();
        let mut out = Box::pin(self.renew_claimed(claimed.clone(), now)).await;
        let t1 = t0.elapsed();
        if let Err(e) = self.repo.release_leases(owner, &claimed).await {
            tracing::warn!(error = %e, "leases kept until they end");
        }
        // Due invoices taken in one statement, this run's until the lease
        // ends (then, should it have died, the next run's).
        // The lease runs from when they are taken (the renewals before may
        // have taken a while).
        let leased = self.clock.now_micros() + self.lease;
        let due = self.repo.claim_invoices(now, leased, limit).await?;
        let invoiced = Box::pin(self.act_on_claimed_invoices(due, leased)).await;
        let ninv = invoiced.len();
        let t2 = t0.elapsed();
        out.extend(invoiced);
        out.extend(self.follow_all_payments().await?);
        if nclaimed + ninv > 0 {
            tracing::debug!(
                subscriptions = nclaimed,
                renewing_ms = t1.as_millis() as u64,
                invoice_actions = ninv,
                invoicing_ms = (t2 - t1).as_millis() as u64,
                "clock pass"
            );
        }
        Ok(out)
    }

    /// The work of the invoices a pass claimed (`(tenant, id, due at)`),
    /// held until `leased`: each tenant's in groups, the plain ones of a
    /// group together (`invoice_pass`), the rest one by one.
    async fn act_on_claimed_invoices(
        &self,
        due: Vec<(String, String, DateTime<Utc>)>,
        leased: DateTime<Utc>,
    ) -> Vec<ClockAction> {
        use futures::StreamExt;
        let mut by_tenant: std::collections::BTreeMap<String, Vec<DueInvoice>> = Default::default();
        for (tenant, id, at) in due {
            by_tenant.entry(tenant).or_default().push((id, at));
        }
        let groups: Vec<(String, Vec<DueInvoice>)> = by_tenant
            .into_iter()
            .flat_map(|(tenant, items)| {
                items.chunks(INVOICE_GROUP).map(|c| (tenant.clone(), c.to_vec())).collect::<Vec<_>>()
            })
            .collect();
        let worked: Vec<(String, Vec<ClockAction>, Vec<DueInvoice>)> = futures::stream::iter(groups)
            .map(|(tenant, items)| async move {
                let ctx = self.peer_context(&tenant);
                let mut done = Vec::new();
                let rest = match Box::pin(self.invoices_together(&ctx, &items, leased, &mut done)).await {
                    Ok(rest) => rest,
                    Err(e) => {
                        // Each is looked at again one by one: what the group
                        // wrote is seen there and not done twice.
                        tracing::warn!(tenant = %tenant, error = %e, "invoices together failed; one by one");
                        items
                    }
                };
                (tenant, done, rest)
            })
            .buffer_unordered(WRITERS)
            .collect()
            .await;
        let mut out = Vec::new();
        let mut one_by_one = Vec::new();
        for (tenant, done, rest) in worked {
            out.extend(done);
            one_by_one.extend(rest.into_iter().map(|(id, at)| (tenant.clone(), id, at)));
        }
        let rest = at_once(one_by_one, |(tenant, id, at)| async move {
            let ctx = self.peer_context(&tenant);
            let mut done = Vec::new();
            if let Err(e) = Box::pin(self.act_on_claimed(&ctx, &id, at, leased, &mut done)).await {
                tracing::warn!(tenant = %tenant, invoice = %id, error = %e, "invoice step failed; retried next pass");
            }
            done
        })
        .await;
        out.extend(rest);
        out
    }

    /// The work of the subscriptions a pass claimed, due by `now`: each
    /// one's renewal planned (several at once), then each tenant's
    /// renewals written in one transaction (a savepoint each, so one that
    /// lost a race undoes only itself); what else is due (a start, a
    /// cancellation or pause, the next of several missed periods, a plan
    /// that failed) one by one, as [`Self::bill_subscription`] does it.
    async fn renew_claimed(&self, claimed: Vec<(String, String)>, now: DateTime<Utc>) -> Vec<ClockAction> {
        use futures::StreamExt;
        let mut claimed_by_tenant: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (tenant, id) in claimed {
            claimed_by_tenant.entry(tenant).or_default().push(id);
        }
        let mut planned: Vec<(String, String, AppResult<Option<Renewal>>)> = Vec::new();
        for (tenant, ids) in claimed_by_tenant {
            match Box::pin(self.plan_renewals(&tenant, &ids, now)).await {
                Ok(plans) => planned.extend(plans.into_iter().map(|(id, plan)| (tenant.clone(), id, plan))),
                Err(e) => {
                    // Their reads failed: each is tried the one-by-one way.
                    tracing::warn!(tenant = %tenant, error = %e, "renewal reads failed; one by one");
                    let e = || Err(AppError::unavailable("RENEWAL_READS_FAILED", "the renewal reads failed"));
                    planned.extend(ids.into_iter().map(|id| (tenant.clone(), id, e())));
                }
            }
        }
        let mut by_tenant: std::collections::BTreeMap<String, Vec<Renewal>> = Default::default();
        let mut one_by_one = Vec::new();
        for (tenant, id, plan) in planned {
            match plan {
                Ok(Some(r)) => by_tenant.entry(tenant).or_default().push(r),
                // Nothing plain to renew, or a refusal: the one-by-one way
                // does what is due (and parks what cannot be priced).
                Ok(None) | Err(_) => one_by_one.push((tenant, id)),
            }
        }
        // A tenant's renewals in groups, each group one transaction, several
        // groups at once.
        let mut groups = Vec::new();
        for (tenant, mut renewals) in by_tenant {
            while !renewals.is_empty() {
                let rest = renewals.split_off(renewals.len().min(WRITE_GROUP));
                groups.push((tenant.clone(), std::mem::replace(&mut renewals, rest)));
            }
        }
        let written: Vec<(String, AppResult<Written>)> = futures::stream::iter(groups)
            .map(|(tenant, renewals)| async move {
                let ctx = self.peer_context(&tenant);
                let written = Box::pin(self.commit_renewals(&ctx, renewals, now)).await;
                (tenant, written)
            })
            .buffer_unordered(WRITERS)
            .collect()
            .await;
        let mut out = Vec::new();
        for (tenant, w) in written {
            match w {
                Ok(w) => {
                    out.extend(w.done);
                    one_by_one.extend(w.behind.into_iter().map(|id| (tenant.clone(), id)));
                }
                Err(e) => tracing::warn!(tenant = %tenant, error = %e, "renewals failed; retried next pass"),
            }
        }
        let rest = at_once(one_by_one, |(tenant, id)| async move {
            let ctx = self.peer_context(&tenant);
            let mut done = Vec::new();
            match Box::pin(self.bill_subscription(&ctx, &id, now, &mut done)).await {
                Ok(()) => {}
                // Another run's change (a lease that ran out under load):
                // it did the work or the next pass does.
                Err(e) if e.code() == Code::Aborted => {
                    tracing::debug!(tenant = %tenant, subscription = %id, error = %e, "renewal raced another run");
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant, subscription = %id, error = %e, "renewal failed; retried next pass")
                }
            }
            done
        })
        .await;
        out.extend(rest);
        out
    }

    /// The renewals of subscriptions `ids` of `tenant` (read, with their
    /// accounts, bill groups, coupons and waiting one-off charges, in five
    /// statements however many), planned several at once: each one's
    /// renewal when that is what is due by `now` (not parked, its next
    /// billing time come, a period to renew), `None` otherwise.
    async fn plan_renewals(
        &self,
        tenant: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> AppResult<Vec<(String, AppResult<Option<Renewal>>)>> {
        use futures::StreamExt;
        use std::collections::{BTreeSet, HashMap};
        let subs: HashMap<String, Subscription> =
            self.repo.get_subscriptions(tenant, ids).await?.into_iter().map(|s| (s.id.clone(), s)).collect();
        let due: Vec<Subscription> = ids
            .iter()
            .filter_map(|id| subs.get(id))
            .filter(|s| s.next_billing_at.is_some_and(|t| t <= now) && s.parked_reason.is_empty())
            .filter(|s| due_step(s) == Some(Due::Renew))
            .cloned()
            .collect();
        let account_ids: Vec<String> =
            due.iter().map(|s| s.account_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let bill_group_ids: Vec<String> =
            due.iter().map(|s| s.bill_group_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let due_ids: Vec<String> = due.iter().map(|s| s.id.clone()).collect();
        let accounts: HashMap<String, crate::domain::Account> =
            self.repo.get_accounts_alone(tenant, &account_ids).await?.into_iter().map(|a| (a.id.clone(), a)).collect();
        let bill_groups: HashMap<String, crate::domain::BillGroup> =
            self.repo.get_bill_groups(tenant, &bill_group_ids).await?.into_iter().map(|b| (b.id.clone(), b)).collect();
        let mut coupons: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for (sub, code, n) in self.repo.coupon_periods_of(tenant, &due_ids).await? {
            coupons.entry(sub).or_default().push((code, n));
        }
        let mut pending: HashMap<String, Vec<crate::domain::PendingCharge>> = HashMap::new();
        for c in self.repo.pending_charges_of(tenant, &due_ids).await? {
            pending.entry(c.subscription_id.clone()).or_default().push(c);
        }
        let ctx = self.peer_context(tenant);
        let ctx = &ctx;
        let mut planned: Vec<(String, AppResult<Option<Renewal>>)> =
            ids.iter().filter(|id| !due_ids.contains(id)).map(|id| (id.clone(), Ok(None))).collect();
        let mut work = Vec::with_capacity(due.len());
        for sub in due {
            let (Some(account), Some(bill_group)) =
                (accounts.get(&sub.account_id), bill_groups.get(&sub.bill_group_id))
            else {
                // The one-by-one way says what is missing.
                planned.push((sub.id.clone(), Ok(None)));
                continue;
            };
            let known = Known {
                account: account.clone(),
                bill_group: bill_group.clone(),
                coupon_periods: coupons.remove(&sub.id).unwrap_or_default(),
                pending: pending.remove(&sub.id).unwrap_or_default(),
            };
            work.push((sub, known));
        }
        let plans: Vec<(String, AppResult<Option<Renewal>>)> = futures::stream::iter(work)
            .map(|(sub, known)| async move {
                let Some(at) = sub.next_billing_at else { return (sub.id.clone(), Ok(None)) };
                let plan = Box::pin(self.renewal_with(ctx, &sub, at, known)).await.map(|plan| {
                    let lists_unchanged = same_lists(&sub, &plan.sub);
                    Some(Renewal { id: sub.id.clone(), plan, at, kind: renewal_kind(&sub), lists_unchanged })
                });
                (sub.id.clone(), plan)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        planned.extend(plans);
        Ok(planned)
    }

    /// Writes one tenant's `renewals` in one transaction: what was renewed,
    /// and the subscriptions still behind `now` (another missed period due).
    async fn commit_renewals(
        &self,
        ctx: &CallContext,
        renewals: Vec<Renewal>,
        now: DateTime<Utc>,
    ) -> AppResult<Written> {
        let tenant = ctx.tenant_id.as_str();
        let mut prepared = Vec::with_capacity(renewals.len());
        for mut r in renewals {
            let credits = self.prepare(tenant, Action::Renew, &mut r.plan).await?;
            prepared.push((r, credits));
        }
        let none = Idem::default();
        let changes: Vec<crate::repo::Change<'_>> = prepared
            .iter()
            .map(|(r, credits)| crate::repo::Change {
                sub: &r.plan.sub,
                action: Action::Renew.name(),
                idem: none.as_repo(),
                invoice: r.plan.invoice.as_ref(),
                closing: r.plan.closing.as_ref(),
                credits,
                redeem: &r.plan.redeem,
                release: &r.plan.release,
                events: &r.plan.events,
                lists_unchanged: r.lists_unchanged,
            })
            .collect();
        let saved = self.repo.save_subscriptions(tenant, &changes).await?;
        let (mut out, mut behind) = (Vec::new(), Vec::new());
        for ((r, _), result) in prepared.iter().zip(saved) {
            match result {
                Ok(true) => {
                    let mut a = ClockAction::new(r.at, r.kind, &r.id);
                    a.invoice_id = r.plan.invoice.as_ref().map(|i| i.id.clone()).unwrap_or_default();
                    out.push(a);
                    if r.plan.sub.next_billing_at.is_some_and(|t| t <= now) {
                        behind.push(r.id.clone());
                    }
                }
                // Another run's change came first (it did the work, or the
                // next pass does), or the period is invoiced already.
                Ok(false) => tracing::debug!(tenant = %tenant, subscription = %r.id, "renewal raced another run"),
                Err(e) => {
                    tracing::debug!(tenant = %tenant, subscription = %r.id, error = %e, "period invoiced already")
                }
            }
        }
        Ok(Written { done: out, behind })
    }

    /// Everything due for test-mode `tenant` up to its clock's time `now`,
    /// in time order.
    pub async fn run_tenant_clock(&self, ctx: &CallContext, now: DateTime<Utc>) -> AppResult<Vec<ClockAction>> {
        let tenant = ctx.tenant_id.as_str();
        let wall = self.clock.now_micros();
        let mut out = Vec::new();
        // Subscriptions first: a renewal's draft is finalized in the same
        // pass only when its grace period has passed too.
        loop {
            let claimed = self
                .repo
                .claim_due(&crate::repo::DueQuery {
                    tenant: Some(tenant),
                    due: now,
                    owner: TEST_CLOCK_OWNER,
                    wall_now: wall,
                    lease_until: wall + self.lease,
                    limit: 500,
                })
                .await?;
            let mut progressed = false;
            for (_, id) in &claimed {
                let before = out.len();
                let result = Box::pin(self.bill_subscription(ctx, id, now, &mut out)).await;
                self.repo.release_leases(TEST_CLOCK_OWNER, &[(tenant.to_string(), id.clone())]).await?;
                result?;
                progressed |= out.len() > before;
            }
            if claimed.is_empty() || !progressed {
                break;
            }
        }
        for (_, id) in self.repo.invoices_due(Some(tenant), now, 10_000).await? {
            Box::pin(self.act_on_invoice(ctx, &id, now, &mut out)).await?;
        }
        out.extend(Box::pin(self.follow_tenant_payments(ctx)).await?);
        Ok(out)
    }

    /// A context to call the peers on `tenant`'s behalf with (a token this
    /// process mints for it).
    pub fn peer_context(&self, tenant: &str) -> CallContext {
        let bearer = match &self.peer_key {
            Some(key) => key.mint(tenant, self.clock.now(), Duration::minutes(5)),
            None => String::new(),
        };
        let peer_proof = self.peer_key.as_ref().map(|k| k.peer_proof(&bearer)).unwrap_or_default();
        CallContext { tenant_id: tenant.to_string(), bearer, deadline: None, peer_proof }
    }
}

/// What the clock calls `sub`'s renewal: a trial's end, or a renewal.
fn renewal_kind(sub: &Subscription) -> &'static str {
    if sub.state == SubscriptionState::Trialing { "trial_ended" } else { "renewed" }
}

/// What a renewal reads besides the subscription.
struct Known {
    account: crate::domain::Account,
    bill_group: crate::domain::BillGroup,
    /// How many periods each coupon has discounted already.
    coupon_periods: Vec<(String, i64)>,
    /// One-off charges waiting for the next invoice.
    pending: Vec<crate::domain::PendingCharge>,
}

/// A subscription's renewal as a pass plans it: the plan, when it was due
/// and what the clock calls it (`renewed`, `trial_ended`).
struct Renewal {
    id: String,
    plan: Plan,
    at: DateTime<Utc>,
    kind: &'static str,
    /// The renewal keeps the subscription's products and coupon codes.
    lists_unchanged: bool,
}

/// Whether `after` has the products and coupon codes `before` had (the
/// rows listings filter on stay).
fn same_lists(before: &Subscription, after: &Subscription) -> bool {
    let products =
        |s: &Subscription| s.items.iter().map(|i| i.product_id.clone()).collect::<std::collections::BTreeSet<_>>();
    let codes = |s: &Subscription| s.coupon_codes.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    products(before) == products(after) && codes(before) == codes(after)
}

/// What a transaction of renewals did: the renewals, and the subscriptions
/// still behind (another missed period due).
struct Written {
    done: Vec<ClockAction>,
    behind: Vec<String>,
}

/// How long a run holds the subscriptions it claimed unless configured
/// (`RECUR_BILLING_CLOCK_LEASE_MS`); one that died is taken over after it.
pub const LEASE: Duration = Duration::seconds(60);

/// `work` on every item of `items`, [`CONCURRENCY`] at a time; what they
/// did, together.
async fn at_once<T, F, Fut>(items: Vec<T>, work: F) -> Vec<ClockAction>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Vec<ClockAction>>,
{
    use futures::StreamExt;
    futures::stream::iter(items).map(work).buffer_unordered(CONCURRENCY).flat_map(futures::stream::iter).collect().await
}

/// How many renewals one transaction of a pass writes, and how many such
/// transactions run at once.
const WRITE_GROUP: usize = 8;
const WRITERS: usize = 8;

/// An invoice a pass took: its id and when its next action was due.
pub(crate) type DueInvoice = (String, DateTime<Utc>);

/// Most invoices of one tenant a pass works on together.
const INVOICE_GROUP: usize = 100;

/// How many subscriptions (and invoices) one run works on at once.
const CONCURRENCY: usize = 32;

/// The lease owner of AdvanceClock's runs.
const TEST_CLOCK_OWNER: &str = "test-clock";
