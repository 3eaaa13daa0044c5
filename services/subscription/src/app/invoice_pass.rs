//! The invoices one pass of the billing clock took, worked on together.
//!
//! The plain case, which is nearly every invoice of a billing run, goes
//! set-wise: a renewal's DRAFT whose grace period has passed, on a bill
//! group that pays automatically, with no account credit to apply, is
//! finalized with the others in one transaction (numbered in one run after
//! it), then charged (the charges at once, each under the invoice's
//! gateway key), and the payments are recorded in one statement. The
//! invoices, their lines and bill groups are read in three statements.
//!
//! Anything else (a dunning retry, a final action, an invoice paid by
//! remittance, one whose account has credit, one a charge was tried for
//! before, one the pass no longer holds) is answered as left for the
//! one-by-one way ([`App::act_on_invoice`]'s), which does it as before.
//! The exactly-once rules are the same: each write is over the state the
//! invoice was read in, and a charge goes through the gateway under the
//! invoice's key, so a pass cut off anywhere and run again charges once.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use recur_auth::CallContext;
use recur_error::AppResult;
use rust_decimal::Decimal;

use super::App;
use super::collect::{Collected, charge_key};
use super::renew::{ClockAction, DueInvoice, is_permanent};
use crate::domain::renewal::finalize;
use crate::domain::{BillGroup, Event, Invoice, InvoiceStatus, SubscriptionEvent};
use crate::repo::InvoiceWrite;

/// How many charges of one group are at the gateway at once.
const CHARGING: usize = 32;

impl App {
    /// Does what was due for invoices `due` (`(id, due at)`) of `ctx`'s
    /// tenant, which a pass took until `leased`, the plain ones together
    /// (see the module docs). Appends what it did to `out`; answers the
    /// invoices left for the one-by-one way.
    pub(crate) async fn invoices_together(
        &self,
        ctx: &CallContext,
        due: &[DueInvoice],
        leased: DateTime<Utc>,
        out: &mut Vec<ClockAction>,
    ) -> AppResult<Vec<DueInvoice>> {
        let tenant = ctx.tenant_id.as_str();
        let ids: Vec<String> = due.iter().map(|(id, _)| id.clone()).collect();
        let when: HashMap<&str, DateTime<Utc>> = due.iter().map(|(id, at)| (id.as_str(), *at)).collect();
        let invoices = self.repo.get_invoices(tenant, &ids).await?;
        let groups: Vec<String> =
            invoices.iter().map(|i| i.bill_group_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let bill_groups: HashMap<String, BillGroup> =
            self.repo.get_bill_groups(tenant, &groups).await?.into_iter().map(|b| (b.id.clone(), b)).collect();
        let found: BTreeSet<&str> = invoices.iter().map(|i| i.id.as_str()).collect();
        // An id not found is the one-by-one way's to report.
        let mut rest: Vec<DueInvoice> = due.iter().filter(|(id, _)| !found.contains(id.as_str())).cloned().collect();
        let (mut drafts, mut to_charge) = (Vec::new(), Vec::new());
        for inv in invoices {
            let at = when[inv.id.as_str()];
            let automatic = bill_groups.get(&inv.bill_group_id).is_some_and(|b| b.can_charge_automatically());
            let held = inv.next_action_at == Some(leased);
            match inv.status {
                InvoiceStatus::Draft if held && automatic => drafts.push((inv, at)),
                InvoiceStatus::Open if held && automatic && first_charge(&inv) => to_charge.push((inv, at)),
                _ => rest.push((inv.id.clone(), at)),
            }
        }
        let finalized = Box::pin(self.finalize_together(ctx, drafts, &bill_groups, leased, out, &mut rest)).await?;
        to_charge.extend(finalized);
        Box::pin(self.charge_together(ctx, to_charge, &bill_groups, out, &mut rest)).await?;
        Ok(rest)
    }

    /// Finalizes `drafts` (each with when it was due) in one transaction,
    /// appending what it did to `out`; answers those to charge next (still
    /// held until `leased`). A draft whose account has credit, or whose
    /// usage could not be counted, goes to `rest`.
    async fn finalize_together(
        &self,
        ctx: &CallContext,
        drafts: Vec<(Invoice, DateTime<Utc>)>,
        bill_groups: &HashMap<String, BillGroup>,
        leased: DateTime<Utc>,
        out: &mut Vec<ClockAction>,
        rest: &mut Vec<DueInvoice>,
    ) -> AppResult<Vec<(Invoice, DateTime<Utc>)>> {
        let tenant = ctx.tenant_id.as_str();
        let mut balances: HashMap<String, Vec<(String, Decimal)>> = HashMap::new();
        let mut ready = Vec::with_capacity(drafts.len());
        for (mut inv, at) in drafts {
            let (was, read_at) = (inv.status, inv.updated_at);
            // Usage that came during the grace period counts.
            if let Err(e) = Box::pin(self.recount_usage(ctx, &mut inv)).await {
                tracing::debug!(invoice = %inv.id, error = %e, "usage recount left to the one-by-one way");
                rest.push((inv.id.clone(), at));
                continue;
            }
            if inv.amount > Decimal::ZERO {
                if !balances.contains_key(&inv.account_id) {
                    let b = self.credit_balances(tenant, &inv.account_id).await?;
                    balances.insert(inv.account_id.clone(), b);
                }
                let currency = inv.currency.code();
                if balances[&inv.account_id].iter().any(|(c, b)| c == currency && *b > Decimal::ZERO) {
                    // Credit is applied one invoice at a time.
                    rest.push((inv.id.clone(), at));
                    continue;
                }
            }
            let bill_group = &bill_groups[&inv.bill_group_id];
            finalize(&mut inv, Decimal::ZERO, at, true, self.due_days(ctx, bill_group).await?);
            if inv.status == InvoiceStatus::Open {
                // Collected next, still held (a crash in between leaves it
                // due when the lease ends).
                inv.next_action_at = Some(leased);
            }
            let mut events = vec![Event::new(
                SubscriptionEvent::InvoiceFinalized { invoice_id: inv.id.clone(), number: String::new() },
                at,
            )];
            if inv.status == InvoiceStatus::Paid {
                events.push(Event::new(
                    SubscriptionEvent::InvoicePaid { invoice_id: inv.id.clone(), payment_id: String::new() },
                    at,
                ));
            }
            ready.push((inv, was, read_at, events, at));
        }
        let writes: Vec<InvoiceWrite<'_>> = ready
            .iter()
            .map(|(inv, was, read_at, events, _)| InvoiceWrite {
                invoice: inv,
                was: *was,
                read_at: *read_at,
                credits: &[],
                events,
            })
            .collect();
        let written = self.repo.update_invoices(tenant, &writes).await?;
        drop(writes);
        let mut to_charge = Vec::new();
        for ((mut inv, _, _, _, at), written) in ready.into_iter().zip(written) {
            if !written {
                // Changed meanwhile (another run, a call): not this pass's.
                continue;
            }
            inv.number = self.repo.invoice_number(tenant, &inv.id).await?;
            out.push(action(at, "finalized", &inv));
            if inv.status == InvoiceStatus::Paid {
                out.push(action(at, "paid", &inv));
            } else if inv.status == InvoiceStatus::Open {
                to_charge.push((inv, at));
            }
        }
        Ok(to_charge)
    }

    /// Charges each of `invoices` (open, numbered, held by this pass, never
    /// charged) under its gateway key, several at once, and records the
    /// payments in one statement, appending what it did to `out`.
    async fn charge_together(
        &self,
        ctx: &CallContext,
        invoices: Vec<(Invoice, DateTime<Utc>)>,
        bill_groups: &HashMap<String, BillGroup>,
        out: &mut Vec<ClockAction>,
        rest: &mut Vec<DueInvoice>,
    ) -> AppResult<()> {
        use futures::StreamExt;
        let tenant = ctx.tenant_id.as_str();
        let mut numbered = Vec::with_capacity(invoices.len());
        for (mut inv, at) in invoices {
            if inv.number.is_empty() {
                // The charge names the number: every attempt sees the same.
                inv.number = self.repo.invoice_number(tenant, &inv.id).await?;
            }
            numbered.push((inv, at));
        }
        let charged: Vec<_> = futures::stream::iter(numbered)
            .map(|(inv, at)| async move {
                let bill_group = &bill_groups[&inv.bill_group_id];
                let charged = self.charge_invoice(ctx, bill_group, &inv, charge_key(&inv.id)).await;
                (inv, at, charged)
            })
            .buffer_unordered(CHARGING)
            .collect()
            .await;
        let mut done: Vec<(Collected, Vec<Event>, DateTime<Utc>)> = Vec::with_capacity(charged.len());
        for (inv, at, charged) in charged {
            match charged {
                Ok(payment) => {
                    let (collected, events) = self.paid_with(ctx, inv, payment, true).await?;
                    done.push((collected, events, at));
                }
                // Refused by the gateway as it stands, or not answered: the
                // one-by-one way says so (and leaves it open) or retries.
                Err(e) if is_permanent(&e) => rest.push((inv.id.clone(), at)),
                Err(e) => {
                    tracing::warn!(tenant = %tenant, invoice = %inv.id, error = %e, "charge failed; retried next pass");
                }
            }
        }
        let payments: Vec<(&Invoice, &[Event])> = done.iter().map(|(c, e, _)| (&c.invoice, e.as_slice())).collect();
        self.repo.record_payments(tenant, &payments).await?;
        drop(payments);
        let paid: Vec<String> = done
            .iter()
            .filter(|(c, _, _)| c.invoice.status == InvoiceStatus::Paid && !c.invoice.subscription_id.is_empty())
            .map(|(c, _, _)| c.invoice.subscription_id.clone())
            .collect();
        // A payment makes a PAST_DUE subscription ACTIVE again.
        let past_due: BTreeSet<String> = self.repo.past_due_among(tenant, &paid).await?.into_iter().collect();
        for (c, _, at) in done {
            let kind = if c.invoice.status == InvoiceStatus::Paid {
                if past_due.contains(&c.invoice.subscription_id) {
                    self.settled(ctx, &c.invoice).await?;
                }
                "paid"
            } else if c.failed {
                if !c.invoice.subscription_id.is_empty() {
                    let mut sub = self.subscription(tenant, &c.invoice.subscription_id).await?;
                    self.past_due(tenant, &mut sub, &c.invoice.id).await?;
                }
                "payment_failed"
            } else {
                "payment_pending"
            };
            let mut a = action(at, kind, &c.invoice);
            a.payment_id = c.payment_id;
            a.reason = c.decline_code;
            out.push(a);
        }
        Ok(())
    }
}

/// An open invoice the clock has not tried to charge yet, with something
/// due and nothing holding its collection back.
fn first_charge(inv: &Invoice) -> bool {
    inv.payment_ids.is_empty()
        && inv.attempt_count == 0
        && inv.first_failed_at.is_none()
        && inv.collection_paused.is_empty()
        && !inv.amount_due().is_zero()
}

fn action(at: DateTime<Utc>, kind: &'static str, inv: &Invoice) -> ClockAction {
    let mut a = ClockAction::new(at, kind, &inv.subscription_id);
    a.invoice_id = inv.id.clone();
    a
}
