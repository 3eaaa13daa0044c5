//! Canceling, reactivating, pausing and resuming a subscription (the rules
//! are in `domain::lifecycle`; every change is written by `mutate`).
//!
//! - Cancel: IMMEDIATE ends it now (the unused paid part credited to the
//!   account when the tenant says so; the usage and in-arrears items of the
//!   period so far invoiced, as at a period end), END_OF_TERM at the period end,
//!   WITH_NOTICE at the first period end at least the rate's notice period
//!   away. Reactivate undoes a scheduled cancellation, or starts a
//!   CANCELED subscription again in a new period, invoiced as a new start.
//! - Pause: now (no invoices while PAUSED; the unused paid part of the
//!   period is credited, so the paused time is not paid for, and the
//!   period's usage and in-arrears items so far are invoiced) or at the
//!   period end; Resume starts a new period on the day it resumes.

use chrono::DateTime;
use recur_auth::CallContext;
use recur_error::{AppError, AppResult};

use super::mutate::{Changed, Plan, refused};
use super::{App, Idem};
use crate::domain::invoice::{adjustment_invoice, first_invoice};
use crate::domain::lifecycle::{self, CancelTiming, Terms};
use crate::domain::state::Action;
use crate::domain::{Event, Invoice, Subscription, SubscriptionEvent, SubscriptionState};
use crate::peers::QuoteInput;

fn rfc3339(t: Option<DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
}

impl App {
    /// The terms the rules of `sub` need: its rate's period and notice, the
    /// account's time zone, the tenant's proration mode.
    async fn terms(&self, ctx: &CallContext, sub: &Subscription) -> AppResult<(Terms, crate::peers::Policy)> {
        let policy = self.catalog.policy(ctx).await?;
        let rate = self.catalog.rate_terms(ctx, &sub.rate_id).await?;
        let account = self.account_alone(&ctx.tenant_id, &sub.account_id, "id").await?;
        let tz = account.tz(&policy.time_zone);
        Ok((Terms { period: rate.period, notice_days: rate.notice_days, tz, mode: policy.proration }, policy))
    }

    /// A credit note for the unused paid part of `sub`'s period at `now`.
    async fn unused_credit(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        terms: &Terms,
        due_days: u32,
        what: &str,
    ) -> AppResult<Option<Invoice>> {
        let tenant = ctx.tenant_id.as_str();
        let now = self.now(tenant);
        let invoices = self.repo.invoices_of_subscription(tenant, &sub.id).await?;
        let lines = lifecycle::unused_credit_lines(sub, &invoices, now, terms, sub.currency, what);
        if lines.is_empty() {
            return Ok(None);
        }
        let bill_group = self.bill_group(tenant, &sub.bill_group_id).await?;
        Ok(adjustment_invoice(sub, &bill_group, lines, now, due_days))
    }

    pub async fn cancel(
        &self,
        ctx: &CallContext,
        id: &str,
        timing: CancelTiming,
        reason: &str,
        comment: &str,
        idem: &Idem,
    ) -> AppResult<Changed> {
        self.once(ctx, id, idem, async {
            let sub = self.subscription(&ctx.tenant_id, id).await?;
            sub.state.after(Action::Cancel).map_err(refused)?;
            let (terms, policy) = self.terms(ctx, &sub).await?;
            let now = self.now(&ctx.tenant_id);
            let next = lifecycle::cancel(&sub, timing, &terms, now, reason, comment).map_err(refused)?;
            let (mut invoice, mut closing) = (None, None);
            let event = if next.state == SubscriptionState::Canceled {
                if policy.credit_unused_on_cancel {
                    invoice = self.unused_credit(ctx, &sub, &terms, policy.invoice_due_days, "Unused time").await?;
                }
                // The usage and in-arrears items of the period so far.
                closing = Box::pin(self.closing_or_none(ctx, &sub, now)).await?;
                SubscriptionEvent::SubscriptionCanceled { subscription_id: sub.id.clone(), reason: reason.to_string() }
            } else {
                SubscriptionEvent::SubscriptionCancellationScheduled {
                    subscription_id: sub.id.clone(),
                    expires_at: rfc3339(next.expires_at),
                    reason: reason.to_string(),
                }
            };
            let plan = Plan::new(next, invoice, vec![Event::new(event, now)]).closing(closing);
            self.commit(ctx, Action::Cancel, idem, plan).await
        })
        .await
    }

    pub async fn reactivate(&self, ctx: &CallContext, id: &str, idem: &Idem) -> AppResult<Changed> {
        self.once(ctx, id, idem, async {
            let sub = self.subscription(&ctx.tenant_id, id).await?;
            let now = self.now(&ctx.tenant_id);
            let event = Event::new(SubscriptionEvent::SubscriptionReactivated { subscription_id: sub.id.clone() }, now);
            if let Some(next) = lifecycle::undo_cancellation(&sub, now) {
                return self.commit(ctx, Action::Reactivate, idem, Plan::new(next, None, vec![event])).await;
            }
            let state = sub.state.after(Action::Reactivate).map_err(refused)?;
            let (mut next, invoice) = self.continue_contract(ctx, &sub, state).await?;
            next.canceled_at = None;
            next.expires_at = None;
            next.cancel_reason.clear();
            next.cancel_comment.clear();
            self.commit(ctx, Action::Reactivate, idem, Plan::new(next, invoice, vec![event])).await
        })
        .await
    }

    pub async fn pause(
        &self,
        ctx: &CallContext,
        id: &str,
        at_period_end: bool,
        resume_at: Option<DateTime<chrono::Utc>>,
        idem: &Idem,
    ) -> AppResult<Changed> {
        self.once(ctx, id, idem, async {
            let sub = self.subscription(&ctx.tenant_id, id).await?;
            let now = self.now(&ctx.tenant_id);
            let next = lifecycle::pause(&sub, at_period_end, resume_at, now).map_err(refused)?;
            if let Some(r) = resume_at
                && next.paused_at.is_some_and(|p| r <= p)
            {
                return Err(AppError::invalid("resume_time", "must come after the pause begins"));
            }
            let (mut invoice, mut closing) = (None, None);
            if next.state == SubscriptionState::Paused {
                let (terms, policy) = self.terms(ctx, &sub).await?;
                invoice = self.unused_credit(ctx, &sub, &terms, policy.invoice_due_days, "Paused").await?;
                // The usage and in-arrears items of the period so far.
                closing = Box::pin(self.closing_or_none(ctx, &sub, now)).await?;
            }
            let event = Event::new(
                SubscriptionEvent::SubscriptionPaused {
                    subscription_id: sub.id.clone(),
                    pause_at: rfc3339(next.paused_at),
                    resume_at: rfc3339(next.resume_at),
                },
                now,
            );
            self.commit(ctx, Action::Pause, idem, Plan::new(next, invoice, vec![event]).closing(closing)).await
        })
        .await
    }

    pub async fn resume(&self, ctx: &CallContext, id: &str, idem: &Idem) -> AppResult<Changed> {
        self.once(ctx, id, idem, async {
            let sub = self.subscription(&ctx.tenant_id, id).await?;
            let now = self.now(&ctx.tenant_id);
            let event = Event::new(SubscriptionEvent::SubscriptionResumed { subscription_id: sub.id.clone() }, now);
            if lifecycle::pause_scheduled(&sub) {
                // A pause that has not begun is dropped.
                let mut next = sub.clone();
                next.paused_at = None;
                next.resume_at = None;
                next.updated_at = now;
                return self.commit(ctx, Action::Resume, idem, Plan::new(next, None, vec![event])).await;
            }
            let state = sub.state.after(Action::Resume).map_err(refused)?;
            let (mut next, invoice) = self.continue_contract(ctx, &sub, state).await?;
            next.paused_at = None;
            next.resume_at = None;
            self.commit(ctx, Action::Resume, idem, Plan::new(next, invoice, vec![event])).await
        })
        .await
    }

    /// `sub` going on from today in `state`: a new period priced now (no
    /// trial or setup fee again) and anchored on today, with its invoice.
    /// Whatever will be charged is checked to be chargeable first.
    pub(crate) async fn continue_contract(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        state: SubscriptionState,
    ) -> AppResult<(Subscription, Option<Invoice>)> {
        let tenant = ctx.tenant_id.as_str();
        let account = self.account_alone(tenant, &sub.account_id, "id").await?;
        let bill_group = self.bill_group(tenant, &sub.bill_group_id).await?;
        let quote = self
            .pricing
            .quote(
                ctx,
                &QuoteInput {
                    start_date: self.quote_today(ctx, &account).await?,
                    // A coupon spent on the invoices before is spent.
                    coupon_usages: self.coupon_usages_of(tenant, sub).await?,
                    ..QuoteInput::of_contract(sub, &account, true)
                },
            )
            .await
            // The contract was priced before; it must price again.
            .map_err(crate::peers::repriced)?;
        let offering = quote.offerings.first().ok_or_else(|| AppError::internal("quote without offering"))?;
        let now = self.now(tenant);
        let missing = || AppError::internal("quote without period");
        let today = chrono::NaiveDate::parse_from_str(&quote.start_date, "%Y-%m-%d").map_err(AppError::internal)?;
        let mut next = sub.clone();
        next.state = state;
        next.billing_anchor = offering.anchor_or(today);
        next.current_period_start = offering.period_start.ok_or_else(missing)?;
        next.current_period_end = offering.period_end.ok_or_else(missing)?;
        next.next_billing_at = offering.next_billing_at;
        next.recurring_amount = offering.recurring_amount;
        next.trial_start = None;
        next.trial_end = None;
        next.scheduled_change = None;
        next.updated_at = now;
        let invoice = first_invoice(&next, &bill_group, offering, now, self.due_days(ctx, &bill_group).await?);
        if let Some(inv) = &invoice
            && bill_group.can_charge_automatically()
            && !inv.amount_due().is_zero()
        {
            self.payments
                .check_method(ctx, &bill_group.gateway_customer_id, &bill_group.payment_method_id, "bill_group_id")
                .await
                .map_err(|e| AppError::failed_precondition(e.reason().to_string(), e.message().to_string()))?;
        }
        Ok((next, invoice))
    }
}
