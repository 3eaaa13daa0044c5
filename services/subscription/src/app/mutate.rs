//! How every change of a stored subscription is made, once: a retry under
//! the same idempotency key answers with what the first call did; the
//! change is written over the version it read (a change that lost a race is
//! ABORTED, retryable, and wrote nothing), with its invoice, credit and
//! events in the same transaction; an invoice with something due is then
//! collected.

use recur_auth::CallContext;
use recur_error::{AppError, AppResult};
use recur_storage::idem::{Stored, check_replay};
use rust_decimal::Decimal;

use super::{App, Idem};
use crate::domain::state::{Action, Refusal};
use crate::domain::{CreditEntry, Event, Invoice, InvoiceStatus, Subscription, SubscriptionEvent};
use crate::repo::{Change, Redemption};

/// What a change did: the subscription after it, the invoice it made (a
/// charge, collected when the bill group pays automatically, or a credit
/// note), the payment that collected it, and what it credited.
#[derive(Clone, Debug)]
pub struct Changed {
    pub subscription: Subscription,
    pub invoice: Option<Invoice>,
    pub payment_id: String,
    pub credited: Decimal,
}

/// What a use case decided: the subscription as it is to be (its `version`
/// the one it was read at) and what comes with it.
#[derive(Clone, Debug)]
pub struct Plan {
    pub sub: Subscription,
    pub invoice: Option<Invoice>,
    /// A change that ends a period before its end (an immediate
    /// cancellation, pause or change to another period): the DRAFT of that
    /// part's usage and in-arrears items, finalized after the grace period.
    pub closing: Option<Invoice>,
    pub events: Vec<Event>,
    /// Coupons redeemed, and codes given up.
    pub redeem: Vec<Redemption>,
    pub release: Vec<String>,
}

impl Plan {
    pub fn new(sub: Subscription, invoice: Option<Invoice>, events: Vec<Event>) -> Plan {
        Plan { sub, invoice, closing: None, events, redeem: Vec::new(), release: Vec::new() }
    }

    /// The plan with `closing`, the invoice of the part of the period it
    /// ends (see [`Plan::closing`]).
    pub fn closing(mut self, closing: Option<Invoice>) -> Plan {
        self.closing = closing;
        self
    }
}

pub fn refused(r: Refusal) -> AppError {
    AppError::failed_precondition(r.reason, r.message)
}

/// The credit an invoice moves: a credit note grants what it credits; a
/// charge consumes the credit applied to it.
pub(crate) fn credit_of(inv: &Invoice) -> Option<CreditEntry> {
    let amount = if inv.amount < Decimal::ZERO { -inv.amount } else { -inv.credit_applied };
    if amount.is_zero() {
        return None;
    }
    let mut e = CreditEntry::new(&inv.account_id, inv.currency, amount, format!("invoice:{}", inv.id), inv.created_at);
    e.subscription_id = inv.subscription_id.clone();
    e.invoice_id = inv.id.clone();
    e.description = if amount > Decimal::ZERO { "credit note".into() } else { "applied to invoice".into() };
    Some(e)
}

/// The event of credit movement `e`.
pub(crate) fn credit_event(e: &CreditEntry, at: chrono::DateTime<chrono::Utc>) -> Event {
    Event::new(
        SubscriptionEvent::AccountCreditChanged {
            account_id: e.account_id.clone(),
            amount: e.amount.to_string(),
            currency: e.currency.code().to_string(),
            source: e.source.clone(),
        },
        at,
    )
}

impl App {
    /// The answer to a retry of a change made under `idem`'s key to
    /// subscription `id`, if there was one.
    /// Mutation `mutate` of subscription `id` under `idem`, once: a call
    /// under a key used before answers what that call did, also when that
    /// call commits while this one runs (which then refuses, the state
    /// having moved on: the first call's answer is given instead).
    pub(crate) async fn once(
        &self,
        ctx: &CallContext,
        id: &str,
        idem: &Idem,
        mutate: impl std::future::Future<Output = AppResult<Changed>>,
    ) -> AppResult<Changed> {
        if let Some(done) = self.replayed(ctx, id, idem).await? {
            return Ok(done);
        }
        match mutate.await {
            // The refusal stands unless the key's first call did it.
            Err(e) if idem.key.is_some() => match self.replayed(ctx, id, idem).await {
                Ok(Some(done)) => Ok(done),
                _ => Err(e),
            },
            other => other,
        }
    }

    pub(crate) async fn replayed(&self, ctx: &CallContext, id: &str, idem: &Idem) -> AppResult<Option<Changed>> {
        let tenant = ctx.tenant_id.as_str();
        let Some(key) = &idem.key else { return Ok(None) };
        let Some(m) = self.repo.mutation_by_key(tenant, key).await? else { return Ok(None) };
        check_replay(Stored::existing((), m.request_hash.clone()), &idem.hash)?;
        if m.subscription_id != id {
            return Err(AppError::failed_precondition(
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency key was used for a different request",
            ));
        }
        let sub = self.subscription(tenant, id).await?;
        let invoice = if m.invoice_id.is_empty() { None } else { Some(self.invoice(tenant, &m.invoice_id).await?) };
        // The first call may have stopped before collecting: collect now
        // (the gateway answers the invoice's key with the same payment).
        Ok(Some(self.collect_change(ctx, sub, invoice).await?))
    }

    /// What writing `plan` as change `action` takes besides the plan: an
    /// un-parked subscription (any change but a renewal), the account's
    /// credit consumed by (or given by) its invoice, and the invoice's
    /// events. Answers the credit entries to write with it.
    pub(crate) async fn prepare(&self, tenant: &str, action: Action, plan: &mut Plan) -> AppResult<Vec<CreditEntry>> {
        if action != Action::Renew {
            // A change of a parked subscription is what un-parks it.
            plan.sub.parked_reason.clear();
        }
        let mut credits = Vec::new();
        if let Some(inv) = &mut plan.invoice {
            // A charge consumes the account's credit before anything is
            // charged (a draft when it is finalized).
            if inv.amount > Decimal::ZERO && inv.status != InvoiceStatus::Draft {
                let balance = self.credit_balance(tenant, &inv.account_id, inv.currency.code()).await?;
                inv.apply_credit(balance);
                if inv.amount_due().is_zero() && inv.status == InvoiceStatus::Open {
                    inv.status = InvoiceStatus::Paid;
                    inv.paid_at = Some(inv.created_at);
                }
            }
            if let Some(e) = credit_of(inv) {
                plan.events.push(credit_event(&e, inv.created_at));
                credits.push(e);
            }
            plan.events.push(Event::new(
                SubscriptionEvent::InvoiceCreated { invoice_id: inv.id.clone(), amount: inv.amount.to_string() },
                inv.created_at,
            ));
        }
        if let Some(inv) = &plan.closing {
            plan.events.push(Event::new(
                SubscriptionEvent::InvoiceCreated { invoice_id: inv.id.clone(), amount: inv.amount.to_string() },
                inv.created_at,
            ));
        }
        Ok(credits)
    }

    /// Writes `plan` as change `action` of the subscription; see the
    /// module docs.
    pub(crate) async fn commit(
        &self,
        ctx: &CallContext,
        action: Action,
        idem: &Idem,
        mut plan: Plan,
    ) -> AppResult<Changed> {
        let tenant = ctx.tenant_id.as_str();
        let credits = self.prepare(tenant, action, &mut plan).await?;
        let change = Change {
            sub: &plan.sub,
            action: action.name(),
            idem: idem.as_repo(),
            invoice: plan.invoice.as_ref(),
            closing: plan.closing.as_ref(),
            credits: &credits,
            redeem: &plan.redeem,
            release: &plan.release,
            events: &plan.events,
            lists_unchanged: false,
        };
        let saved = match self.repo.save_subscription(tenant, &change).await {
            Ok(saved) => saved,
            // The same key, at the same moment, on another call: its answer.
            Err(e) if e.is_unique() && idem.key.is_some() => false,
            // A coupon redeemed meanwhile by another change of this one.
            Err(e) if e.is_unique() => {
                return Err(AppError::aborted("CONCURRENT_CHANGE", "the subscription changed meanwhile; retry"));
            }
            Err(e) => return Err(e.into()),
        };
        if !saved {
            if let Some(done) = self.replayed(ctx, &plan.sub.id, idem).await? {
                return Ok(done);
            }
            // An activation that lost: what it is now says why.
            let now = self.subscription(tenant, &plan.sub.id).await?;
            if action == Action::Activate
                && let Err(r) = now.state.after(action)
            {
                return Err(refused(r));
            }
            return Err(AppError::aborted(
                "CONCURRENT_CHANGE",
                "the subscription changed while this change was made; read it again and retry",
            ));
        }
        let mut sub = plan.sub;
        sub.version += 1;
        // As stored: with the number it was given (a draft has none).
        let invoice = match plan.invoice {
            Some(inv) if inv.status == InvoiceStatus::Draft => Some(inv),
            Some(inv) => Some(self.invoice(tenant, &inv.id).await?),
            None => None,
        };
        self.collect_change(ctx, sub, invoice).await
    }

    /// Collects `invoice` of a change when it is OPEN on a bill group that
    /// pays automatically; a declined charge leaves the invoice open and the
    /// subscription PAST_DUE.
    pub(crate) async fn collect_change(
        &self,
        ctx: &CallContext,
        mut sub: Subscription,
        invoice: Option<Invoice>,
    ) -> AppResult<Changed> {
        let tenant = ctx.tenant_id.as_str();
        let Some(inv) = invoice else {
            return Ok(Changed {
                subscription: sub,
                invoice: None,
                payment_id: String::new(),
                credited: Decimal::ZERO,
            });
        };
        let credited = if inv.amount < Decimal::ZERO { -inv.amount } else { Decimal::ZERO };
        let bill_group = self.bill_group(tenant, &inv.bill_group_id).await?;
        if inv.status != InvoiceStatus::Open || !bill_group.can_charge_automatically() || inv.amount_due().is_zero() {
            let payment_id = inv.payment_ids.last().cloned().unwrap_or_default();
            return Ok(Changed { subscription: sub, invoice: Some(inv), payment_id, credited });
        }
        let collected = self.collect(ctx, &bill_group, inv).await?;
        if collected.failed {
            self.past_due(tenant, &mut sub, &collected.invoice.id).await?;
        }
        Ok(Changed { subscription: sub, invoice: Some(collected.invoice), payment_id: collected.payment_id, credited })
    }

    /// `sub` PAST_DUE for unpaid invoice `invoice_id` (with its event),
    /// when its state allows and it is not already.
    pub(crate) async fn past_due(&self, tenant: &str, sub: &mut Subscription, invoice_id: &str) -> AppResult<()> {
        let Ok(next) = sub.state.after(Action::PaymentFailed) else { return Ok(()) };
        if next == sub.state {
            return Ok(());
        }
        let at = self.now(tenant);
        let event = Event::new(
            SubscriptionEvent::SubscriptionPastDue {
                subscription_id: sub.id.clone(),
                invoice_id: invoice_id.to_string(),
            },
            at,
        );
        self.repo.set_subscription_state(tenant, &sub.id, next, at, &event).await?;
        sub.state = next;
        sub.updated_at = at;
        sub.version += 1;
        Ok(())
    }

    /// The days an invoice of `bill_group` is due after it is issued: the
    /// tenant's terms for remittance (the catalog is asked only then).
    pub(crate) async fn due_days(&self, ctx: &CallContext, bill_group: &crate::domain::BillGroup) -> AppResult<u32> {
        if bill_group.can_charge_automatically() {
            return Ok(0);
        }
        Ok(self.catalog.policy(ctx).await?.invoice_due_days)
    }

    /// The account's credit balances, per currency.
    pub async fn credit_balances(&self, tenant: &str, account_id: &str) -> AppResult<Vec<(String, Decimal)>> {
        Ok(self.repo.credit_balances(tenant, account_id).await?)
    }

    /// The account's credit balance in `currency`.
    pub async fn credit_balance(&self, tenant: &str, account_id: &str, currency: &str) -> AppResult<Decimal> {
        Ok(self
            .repo
            .credit_balances(tenant, account_id)
            .await?
            .into_iter()
            .find(|(c, _)| c == currency)
            .map(|(_, b)| b)
            .unwrap_or_default())
    }
}
