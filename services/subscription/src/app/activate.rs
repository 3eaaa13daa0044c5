//! Activating a PENDING subscription (`pending: true` at creation: a
//! contract agreed before it starts): its first period starts now, priced
//! now, and its first invoice is made and collected as at creation.

use recur_auth::CallContext;
use recur_error::{AppError, AppResult};

use super::mutate::{Changed, Plan};
use super::subscribe::Subscribed;
use super::{App, Idem};
use crate::domain::invoice::first_invoice;
use crate::domain::state::Action;
use crate::domain::{Event, SubscriptionEvent, SubscriptionState};
use crate::peers::QuoteInput;

impl App {
    pub async fn activate(&self, ctx: &CallContext, id: &str, idem: &Idem) -> AppResult<Subscribed> {
        let tenant = ctx.tenant_id.as_str();
        // A retry of an activation returns what it did.
        let changed = self
            .once(ctx, id, idem, async {
                let sub = self.subscription(tenant, id).await?;
                let plan = self.activation(ctx, sub, None).await?;
                self.commit(ctx, Action::Activate, idem, plan).await
            })
            .await?;
        Ok(changed.into())
    }

    /// What activating PENDING `sub` makes: its first period from
    /// `start_date` (`None`: today), priced then, and its first invoice.
    pub(crate) async fn activation(
        &self,
        ctx: &CallContext,
        mut sub: crate::domain::Subscription,
        start_date: Option<chrono::NaiveDate>,
    ) -> AppResult<Plan> {
        let tenant = ctx.tenant_id.as_str();
        let next = sub.state.after(Action::Activate).map_err(|r| AppError::failed_precondition(r.reason, r.message))?;
        let account = self.account_alone(tenant, &sub.account_id, "id").await?;
        let bill_group = self.bill_group(tenant, &sub.bill_group_id).await?;
        let quote = self
            .pricing
            .quote(
                ctx,
                &QuoteInput {
                    billing_day: bill_group.billing_day,
                    start_date: match start_date {
                        Some(d) => d.format("%Y-%m-%d").to_string(),
                        None => self.quote_today(ctx, &account).await?,
                    },
                    ..QuoteInput::of_contract(&sub, &account, false)
                },
            )
            .await
            // The contract was priced once; it must price again to start.
            .map_err(crate::peers::repriced)?;
        let offering = quote.offerings.first().ok_or_else(|| AppError::internal("quote without offering"))?;
        let now = self.now(tenant);
        let start = offering.period_start.ok_or_else(|| AppError::internal("quote without period"))?;
        sub.state = if offering.trial_end.is_some() { SubscriptionState::Trialing } else { next };
        sub.start_date =
            chrono::NaiveDate::parse_from_str(&quote.start_date, "%Y-%m-%d").map_err(AppError::internal)?;
        sub.billing_anchor = offering.anchor_or(sub.start_date);
        sub.current_period_start = start;
        sub.current_period_end = offering.period_end.ok_or_else(|| AppError::internal("quote without period"))?;
        sub.trial_start = offering.trial_end.map(|_| quote.start.unwrap_or(start));
        sub.trial_end = offering.trial_end;
        sub.next_billing_at = offering.next_billing_at;
        sub.recurring_amount = offering.recurring_amount;
        sub.activated_at = Some(now);
        sub.parked_reason.clear();
        sub.updated_at = now;
        let invoice = first_invoice(&sub, &bill_group, offering, now, self.due_days(ctx, &bill_group).await?);
        if let Some(inv) = &invoice
            && bill_group.can_charge_automatically()
            && !inv.amount_due().is_zero()
        {
            self.payments
                .check_method(ctx, &bill_group.gateway_customer_id, &bill_group.payment_method_id, "bill_group_id")
                .await
                .map_err(|e| AppError::failed_precondition(e.reason().to_string(), e.message().to_string()))?;
        }
        let events = vec![Event::new(
            SubscriptionEvent::SubscriptionActivated {
                subscription_id: sub.id.clone(),
                account_id: sub.account_id.clone(),
            },
            now,
        )];
        Ok(Plan::new(sub, invoice, events))
    }
}

impl From<Changed> for Subscribed {
    fn from(c: Changed) -> Subscribed {
        Subscribed { subscription: c.subscription, invoice: c.invoice, payment_id: c.payment_id }
    }
}
