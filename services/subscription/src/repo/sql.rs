//! Statements more than one aggregate writes (events, invoices) or reads
//! (contacts, invoice lines), expanded in each backend module.

macro_rules! helpers {
    ($db:ty) => {
        #[allow(unused_imports)]
        use recur_storage::{Dec, StorageError};
        #[allow(unused_imports)]
        use crate::domain::{Contact, Event, Invoice, InvoiceLine};
        #[allow(unused_imports)]
        use super::rows::{self, ContactRow, InvoiceLineRow, to_json};

        type Tx<'c> = sqlx::Transaction<'c, $db>;

        type Writes<'a> = recur_storage::Writes<'a, $db>;

        /// Writes `events` (numbered later, when first listed), in one
        /// statement of the caller's transaction.
        async fn insert_events(tx: &mut Tx<'_>, tenant: &str, events: &[Event]) -> Result<(), StorageError> {
            let mut w = Writes::new();
            add_events(&mut w, tenant, events);
            w.execute_in(&mut **tx).await?;
            Ok(())
        }

        /// Adds the statement writing `events` to `w`.
        fn add_events(w: &mut Writes<'_>, tenant: &str, events: &[Event]) {
            if events.is_empty() {
                return;
            }
            let rows: Vec<_> = events
                .iter()
                .map(|e| {
                    (
                        e.id.clone(),
                        e.event.type_name(),
                        e.event.resource_id().to_string(),
                        e.event.data_json(),
                        e.created_at,
                    )
                })
                .collect();
            let tenant = tenant.to_string();
            w.add(move |qb| {
                qb.push("INSERT INTO events (tenant_id, id, type, resource_id, data_json, created_at) ");
                qb.push_values(rows, |mut row, (id, kind, resource, data, at)| {
                    row.push_bind(tenant.clone())
                        .push_bind(id)
                        .push_bind(kind)
                        .push_bind(resource)
                        .push_bind(data)
                        .push_bind(at);
                });
            });
        }

        /// Writes an invoice and its lines, not numbered yet: the caller
        /// numbers it with [`number_invoices`] once its transaction committed.
        async fn insert_invoice(tx: &mut Tx<'_>, tenant: &str, inv: &Invoice) -> Result<(), StorageError> {
            let mut w = Writes::new();
            add_invoice(&mut w, tenant, inv)?;
            w.execute_in(&mut **tx).await?;
            Ok(())
        }

        /// Adds the statements writing an invoice and its lines (not
        /// numbered yet) to `w`.
        fn add_invoice(w: &mut Writes<'_>, tenant: &str, inv: &Invoice) -> Result<(), StorageError> {
            let tenant = tenant.to_string();
            // The header and the lines are each copied once.
            let (t, mut i, payment_ids) = (tenant.clone(), inv.clone(), to_json(&inv.payment_ids)?);
            let coupon_left = super::rows::coupon_left_text(&inv.usage_coupon_left)?;
            let invoice_lines = std::mem::take(&mut i.lines);
            w.add(move |qb| {
                qb.push(
                    "INSERT INTO invoices (tenant_id, id, number, account_id, bill_group_id, subscription_id, \
                     status, currency, amount_without_tax, discount, tax, amount, amount_paid, period_start, \
                     period_end, issued_at, due_at, paid_at, payment_ids, created_at, updated_at, credit_applied, \
                     billing_reason, next_action_at, usage_coupon_left) ",
                );
                qb.push_values([()], |mut row, ()| {
                    row.push_bind(t.clone())
                        .push_bind(i.id.clone())
                        .push_bind(String::new())
                        .push_bind(i.account_id.clone())
                        .push_bind(i.bill_group_id.clone())
                        .push_bind(i.subscription_id.clone())
                        .push_bind(i.status.as_str())
                        .push_bind(i.currency.code())
                        .push_bind(Dec(i.amount_without_tax))
                        .push_bind(Dec(i.discount))
                        .push_bind(Dec(i.tax))
                        .push_bind(Dec(i.amount))
                        .push_bind(Dec(i.amount_paid))
                        .push_bind(i.period_start)
                        .push_bind(i.period_end)
                        .push_bind(i.issued_at)
                        .push_bind(i.due_at)
                        .push_bind(i.paid_at)
                        .push_bind(payment_ids.clone())
                        .push_bind(i.created_at)
                        .push_bind(i.updated_at)
                        .push_bind(Dec(i.credit_applied))
                        .push_bind(i.reason.as_str())
                        .push_bind(i.next_action_at)
                        .push_bind(coupon_left.clone());
                });
            });
            if invoice_lines.is_empty() {
                return Ok(());
            }
            // One-off charges waiting for this invoice are billed by it: the
            // line keeps the charge's id.
            let charges: Vec<String> =
                invoice_lines.iter().filter(|l| l.kind == crate::domain::LineKind::OneOff).map(|l| l.id.clone()).collect();
            if !charges.is_empty() && inv.reason == crate::domain::InvoiceReason::SubscriptionCycle {
                let (t, invoice_id) = (tenant.clone(), inv.id.clone());
                w.add(move |qb| {
                    qb.push("UPDATE pending_charges SET invoice_id = ")
                        .push_bind(invoice_id)
                        .push(" WHERE tenant_id = ")
                        .push_bind(t)
                        .push(" AND invoice_id IS NULL AND id IN (");
                    let mut sep = qb.separated(", ");
                    for c in charges {
                        sep.push_bind(c);
                    }
                    qb.push(")");
                });
            }
            let mut lines = Vec::with_capacity(invoice_lines.len());
            for (position, l) in invoice_lines.into_iter().enumerate() {
                let tiers = to_json(&l.tiers)?;
                lines.push((i32::try_from(position).unwrap_or(i32::MAX), l, tiers));
            }
            let invoice_id = inv.id.clone();
            w.add(move |qb| {
                qb.push(
                    "INSERT INTO invoice_lines (tenant_id, id, invoice_id, position, kind, description, \
                     subscription_id, offering_id, rate_id, product_id, period_start, period_end, quantity, \
                     unit_amount, proration_fraction, tiers, amount_without_tax, discount, tax, tax_rate, amount) ",
                );
                qb.push_values(lines, |mut row, (position, l, tiers)| {
                    row.push_bind(tenant.clone())
                        .push_bind(l.id)
                        .push_bind(invoice_id.clone())
                        .push_bind(position)
                        .push_bind(l.kind.as_str())
                        .push_bind(l.description)
                        .push_bind(l.subscription_id)
                        .push_bind(l.offering_id)
                        .push_bind(l.rate_id)
                        .push_bind(l.product_id)
                        .push_bind(l.period_start)
                        .push_bind(l.period_end)
                        .push_bind(Dec(l.quantity))
                        .push_bind(l.unit_amount)
                        .push_bind(l.proration_fraction)
                        .push_bind(tiers)
                        .push_bind(Dec(l.amount_without_tax))
                        .push_bind(Dec(l.discount))
                        .push_bind(Dec(l.tax))
                        .push_bind(l.tax_rate)
                        .push_bind(Dec(l.amount));
                });
            });
            Ok(())
        }

        /// Gives every finalized invoice of the tenant that has no number
        /// yet its number, after the transaction that wrote it committed:
        /// numbers are sequential per tenant and without gaps (the counter
        /// and the numbers move in one transaction), in the order the
        /// invoices were finalized. One numbering runs per tenant at a time
        /// (a transaction-scoped advisory lock on Postgres, the write lock on
        /// SQLite) and numbers everything waiting; calls of one process wait
        /// for each other's runs in memory ([`super::numbering`]), so under
        /// load one run numbers the invoices of many calls. A crash between
        /// an invoice's commit and its numbering leaves it to the tenant's
        /// next numbering.
        async fn number_invoices(
            pool: &sqlx::Pool<$db>,
            numbering: &super::numbering::Numbering,
            tenant: &str,
        ) -> Result<(), StorageError> {
            numbering
                .after_commit(tenant, || async {
                    // A run numbers at most a thousand; a longer queue takes more.
                    let mut numbered = Vec::new();
                    loop {
                        let some = number_some_invoices(pool, tenant).await?;
                        let more = some.len() == 1000;
                        numbered.extend(some);
                        if !more {
                            return Ok(numbered);
                        }
                    }
                })
                .await
        }

        /// One run of [`number_invoices`]: the invoices it numbered, with
        /// their numbers.
        async fn number_some_invoices(
            pool: &sqlx::Pool<$db>,
            tenant: &str,
        ) -> Result<Vec<(String, String)>, StorageError> {
            let mut tx = recur_storage::begin_locking(pool).await?;
            if <$db as sqlx::Database>::NAME != "SQLite" {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(format!("recur.invoice-numbers.{tenant}"))
                    .execute(&mut *tx)
                    .await?;
            }
            let waiting: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM invoices WHERE tenant_id = $1 AND number = '' AND status <> 'draft' \
                 ORDER BY created_at, id LIMIT 1000",
            )
            .bind(tenant)
            .fetch_all(&mut *tx)
            .await?;
            if waiting.is_empty() {
                tx.commit().await?;
                return Ok(Vec::new());
            }
            let count = waiting.len() as i64;
            let last: i64 = sqlx::query_scalar(
                "INSERT INTO invoice_counters (tenant_id, last) VALUES ($1, $2) \
                 ON CONFLICT (tenant_id) DO UPDATE SET last = invoice_counters.last + $2 RETURNING last",
            )
            .bind(tenant)
            .bind(count)
            .fetch_one(&mut *tx)
            .await?;
            let numbered: Vec<(String, String)> =
                (last - count + 1..).zip(waiting).map(|(n, id)| (id, format!("INV-{n:06}"))).collect();
            // One statement for the run: number = CASE id WHEN … THEN … END.
            let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE invoices SET number = CASE id");
            for (id, number) in &numbered {
                qb.push(" WHEN ").push_bind(id.clone()).push(" THEN ").push_bind(number.clone());
            }
            qb.push(" END WHERE tenant_id = ").push_bind(tenant.to_string()).push(" AND id IN (");
            let mut ids = qb.separated(", ");
            for (id, _) in &numbered {
                ids.push_bind(id.clone());
            }
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(numbered)
        }

        /// Moves account credit by `entries`, in the caller's transaction.
        /// `Ok(false)` when a balance would go below zero (it changed since
        /// it was read): the caller rolls back. A source already recorded is
        /// a unique violation.
        async fn move_credit(
            tx: &mut Tx<'_>,
            tenant: &str,
            entries: &[crate::domain::CreditEntry],
        ) -> Result<bool, StorageError> {
            for e in entries {
                sqlx::query(
                    "INSERT INTO credit_entries (tenant_id, id, account_id, currency, amount, source, \
                     subscription_id, invoice_id, description, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(tenant)
                .bind(&e.id)
                .bind(&e.account_id)
                .bind(e.currency.code())
                .bind(Dec(e.amount))
                .bind(&e.source)
                .bind(&e.subscription_id)
                .bind(&e.invoice_id)
                .bind(&e.description)
                .bind(e.created_at)
                .execute(&mut **tx)
                .await?;
                // The row exists before it is locked, so two first movements
                // of one balance wait for each other instead of both
                // inserting over a balance of zero.
                sqlx::query(
                    "INSERT INTO credit_balances (tenant_id, account_id, currency, balance, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, account_id, currency) DO NOTHING",
                )
                .bind(tenant)
                .bind(&e.account_id)
                .bind(e.currency.code())
                .bind(Dec(rust_decimal::Decimal::ZERO))
                .bind(e.created_at)
                .execute(&mut **tx)
                .await?;
                let balance: Option<Dec> = sqlx::query_scalar(&format!(
                    "SELECT balance FROM credit_balances WHERE tenant_id = $1 AND account_id = $2 AND currency = $3{}",
                    recur_storage::for_update::<$db>()
                ))
                .bind(tenant)
                .bind(&e.account_id)
                .bind(e.currency.code())
                .fetch_optional(&mut **tx)
                .await?;
                let after = balance.map(|b| b.0).unwrap_or_default() + e.amount;
                if after.is_sign_negative() && !after.is_zero() {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE credit_balances SET balance = $4, updated_at = $5 \
                     WHERE tenant_id = $1 AND account_id = $2 AND currency = $3",
                )
                .bind(tenant)
                .bind(&e.account_id)
                .bind(e.currency.code())
                .bind(Dec(after))
                .bind(e.created_at)
                .execute(&mut **tx)
                .await?;
            }
            Ok(true)
        }

        /// Redeems `redeem` for subscription `s` (each coupon's count raised
        /// only while under its limit, `Refused` `COUPON_EXHAUSTED` past it)
        /// and releases `release` (the subscription no longer holds them;
        /// their count stays), in the caller's transaction.
        async fn redeem_coupons(
            tx: &mut Tx<'_>,
            tenant: &str,
            s: &crate::domain::Subscription,
            redeem: &[super::Redemption],
            release: &[String],
        ) -> Result<(), StorageError> {
            for r in redeem {
                let raised: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO coupon_counters (tenant_id, code, redeemed) VALUES ($1, $2, 1) \
                     ON CONFLICT (tenant_id, code) DO UPDATE SET redeemed = coupon_counters.redeemed + 1 \
                     WHERE $3 = 0 OR coupon_counters.redeemed < $3 RETURNING redeemed",
                )
                .bind(tenant)
                .bind(&r.code)
                .bind(r.max_redemptions)
                .fetch_optional(&mut **tx)
                .await?;
                if raised.is_none_or(|n| r.max_redemptions > 0 && n > r.max_redemptions) {
                    return Err(StorageError::Refused {
                        reason: "COUPON_EXHAUSTED".into(),
                        message: format!("coupon {} was redeemed as often as it may be", r.code),
                    });
                }
                sqlx::query(
                    "INSERT INTO coupon_redemptions (tenant_id, code, subscription_id, account_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(tenant)
                .bind(&r.code)
                .bind(&s.id)
                .bind(&s.account_id)
                .bind(s.updated_at)
                .execute(&mut **tx)
                .await?;
            }
            for code in release {
                sqlx::query(
                    "DELETE FROM coupon_redemptions WHERE tenant_id = $1 AND subscription_id = $2 AND code = $3",
                )
                .bind(tenant)
                .bind(&s.id)
                .bind(code)
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        }

        /// The contacts of `account_ids`, oldest first.
        async fn contacts_of(
            pool: &sqlx::Pool<$db>,
            tenant: &str,
            account_ids: &[&str],
        ) -> Result<Vec<Contact>, StorageError> {
            if account_ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM contacts WHERE tenant_id = ");
            qb.push_bind(tenant).push(" AND account_id");
            recur_storage::push_in(&mut qb, account_ids.iter().copied());
            qb.push(" ORDER BY created_at, id");
            rows::all(qb.build_query_as::<ContactRow>().fetch_all(pool).await?)
        }

        /// `inv` with its lines, in order.
        /// Gives each of `invs` its lines, read in one statement.
        async fn with_lines_all(
            pool: &sqlx::Pool<$db>,
            tenant: &str,
            mut invs: Vec<Invoice>,
        ) -> Result<Vec<Invoice>, StorageError> {
            if invs.is_empty() {
                return Ok(invs);
            }
            let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM invoice_lines WHERE tenant_id = ");
            qb.push_bind(tenant).push(" AND invoice_id");
            recur_storage::push_in(&mut qb, invs.iter().map(|i| i.id.clone()));
            qb.push(" ORDER BY invoice_id, position");
            let found = qb.build_query_as::<rows::OwnedLineRow>().fetch_all(pool).await?;
            let mut by_invoice: std::collections::HashMap<String, Vec<InvoiceLine>> = Default::default();
            for r in found {
                by_invoice.entry(r.invoice_id).or_default().push(InvoiceLine::try_from(r.line)?);
            }
            for inv in &mut invs {
                inv.lines = by_invoice.remove(&inv.id).unwrap_or_default();
            }
            Ok(invs)
        }

        /// Writes `w`'s invoice over the status and update time it was read
        /// with (a finalized draft's recounted usage lines too), in the
        /// caller's transaction; false when it changed meanwhile.
        async fn update_invoice_in(
            tx: &mut Tx<'_>,
            tenant: &str,
            w: &super::InvoiceWrite<'_>,
        ) -> Result<bool, StorageError> {
            let inv = w.invoice;
            let changed = sqlx::query(
                "UPDATE invoices SET status = $3, amount_paid = $4, credit_applied = $5, paid_at = $6, \
                 payment_ids = $7, updated_at = $8, issued_at = $11, due_at = $12, next_action_at = $13, \
                 attempt_count = $14, first_failed_at = $15, collection_paused = $16, \
                 amount_without_tax = $17, discount = $18, tax = $19, amount = $20 \
                 WHERE tenant_id = $1 AND id = $2 AND status = $9 AND updated_at = $10",
            )
            .bind(tenant)
            .bind(&inv.id)
            .bind(inv.status.as_str())
            .bind(Dec(inv.amount_paid))
            .bind(Dec(inv.credit_applied))
            .bind(inv.paid_at)
            .bind(to_json(&inv.payment_ids)?)
            .bind(inv.updated_at)
            .bind(w.was.as_str())
            .bind(w.read_at)
            .bind(inv.issued_at)
            .bind(inv.due_at)
            .bind(inv.next_action_at)
            .bind(i32::try_from(inv.attempt_count).unwrap_or(i32::MAX))
            .bind(inv.first_failed_at)
            .bind(&inv.collection_paused)
            .bind(Dec(inv.amount_without_tax))
            .bind(Dec(inv.discount))
            .bind(Dec(inv.tax))
            .bind(Dec(inv.amount))
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Ok(false);
            }
            if w.was == crate::domain::InvoiceStatus::Draft {
                // A draft's usage lines are counted again when it is
                // finalized (usage that came during the grace period).
                for l in inv.lines.iter().filter(|l| l.kind == crate::domain::LineKind::Usage) {
                    sqlx::query(
                        "UPDATE invoice_lines SET quantity = $3, unit_amount = $4, tiers = $5, \
                         amount_without_tax = $6, tax = $7, tax_rate = $8, amount = $9, discount = $10 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(&l.id)
                    .bind(Dec(l.quantity))
                    .bind(&l.unit_amount)
                    .bind(to_json(&l.tiers)?)
                    .bind(Dec(l.amount_without_tax))
                    .bind(Dec(l.tax))
                    .bind(&l.tax_rate)
                    .bind(Dec(l.amount))
                    .bind(Dec(l.discount))
                    .execute(&mut **tx)
                    .await?;
                }
            }
            Ok(true)
        }

        /// [`update_invoice_in`] for every one of `writes` (none with
        /// credit to move) in one statement, each invoice's update a
        /// data-modifying `WITH` part over the state it was read in, its
        /// recounted usage lines written only when it is; answers which
        /// were written. Postgres only (SQLite has no data-modifying
        /// `WITH`).
        async fn update_invoices_at_once(
            tx: &mut Tx<'_>,
            tenant: &str,
            writes: &[super::InvoiceWrite<'_>],
        ) -> Result<Vec<bool>, StorageError> {
            if writes.is_empty() {
                return Ok(Vec::new());
            }
            let mut qb = sqlx::QueryBuilder::<$db>::new("");
            for (k, w) in writes.iter().enumerate() {
                let inv = w.invoice;
                qb.push(if k == 0 { "WITH " } else { ", " });
                qb.push(format!("u{k} AS (UPDATE invoices SET status = "));
                qb.push_bind(inv.status.as_str());
                qb.push(", amount_paid = ").push_bind(Dec(inv.amount_paid));
                qb.push(", credit_applied = ").push_bind(Dec(inv.credit_applied));
                qb.push(", paid_at = ").push_bind(inv.paid_at);
                qb.push(", payment_ids = ").push_bind(to_json(&inv.payment_ids)?);
                qb.push(", updated_at = ").push_bind(inv.updated_at);
                qb.push(", issued_at = ").push_bind(inv.issued_at);
                qb.push(", due_at = ").push_bind(inv.due_at);
                qb.push(", next_action_at = ").push_bind(inv.next_action_at);
                qb.push(", attempt_count = ").push_bind(i32::try_from(inv.attempt_count).unwrap_or(i32::MAX));
                qb.push(", first_failed_at = ").push_bind(inv.first_failed_at);
                qb.push(", collection_paused = ").push_bind(inv.collection_paused.clone());
                qb.push(", amount_without_tax = ").push_bind(Dec(inv.amount_without_tax));
                qb.push(", discount = ").push_bind(Dec(inv.discount));
                qb.push(", tax = ").push_bind(Dec(inv.tax));
                qb.push(", amount = ").push_bind(Dec(inv.amount));
                qb.push(" WHERE tenant_id = ").push_bind(tenant.to_string());
                qb.push(" AND id = ").push_bind(inv.id.clone());
                qb.push(" AND status = ").push_bind(w.was.as_str());
                qb.push(" AND updated_at = ").push_bind(w.read_at);
                qb.push(" RETURNING id)");
                if w.was != crate::domain::InvoiceStatus::Draft {
                    continue;
                }
                // A draft's usage lines, counted again, with it.
                for (j, l) in inv.lines.iter().filter(|l| l.kind == crate::domain::LineKind::Usage).enumerate() {
                    qb.push(format!(", l{k}_{j} AS (UPDATE invoice_lines SET quantity = "));
                    qb.push_bind(Dec(l.quantity));
                    qb.push(", unit_amount = ").push_bind(l.unit_amount.clone());
                    qb.push(", tiers = ").push_bind(to_json(&l.tiers)?);
                    qb.push(", amount_without_tax = ").push_bind(Dec(l.amount_without_tax));
                    qb.push(", tax = ").push_bind(Dec(l.tax));
                    qb.push(", tax_rate = ").push_bind(l.tax_rate.clone());
                    qb.push(", amount = ").push_bind(Dec(l.amount));
                    qb.push(", discount = ").push_bind(Dec(l.discount));
                    qb.push(" WHERE tenant_id = ").push_bind(tenant.to_string());
                    qb.push(" AND id = ").push_bind(l.id.clone());
                    qb.push(format!(" AND EXISTS (SELECT 1 FROM u{k}))"));
                }
            }
            for k in 0..writes.len() {
                qb.push(if k == 0 { " SELECT id FROM " } else { " UNION ALL SELECT id FROM " });
                qb.push(format!("u{k}"));
            }
            // Its text differs with every batch's shape: not kept as a
            // prepared statement (a cache of them would only grow).
            let written: std::collections::HashSet<String> =
                qb.build_query_scalar::<String>().persistent(false).fetch_all(&mut **tx).await?.into_iter().collect();
            Ok(writes.iter().map(|w| written.contains(&w.invoice.id)).collect())
        }

        /// Adds the statement recording a payment on `inv` (its status,
        /// amount paid, payments, dunning state) to `w`.
        fn add_payment(w: &mut Writes<'_>, tenant: &str, inv: &Invoice) -> Result<(), StorageError> {
            let (t, id, status, paid, paid_at, payment_ids, at, next_action) = (
                tenant.to_string(),
                inv.id.clone(),
                inv.status.as_str(),
                Dec(inv.amount_paid),
                inv.paid_at,
                to_json(&inv.payment_ids)?,
                inv.updated_at,
                inv.next_action_at,
            );
            let (attempts, first_failed, paused) = (
                i32::try_from(inv.attempt_count).unwrap_or(i32::MAX),
                inv.first_failed_at,
                inv.collection_paused.clone(),
            );
            w.add(move |qb| {
                qb.push("UPDATE invoices SET status = ")
                    .push_bind(status)
                    .push(", amount_paid = ")
                    .push_bind(paid)
                    .push(", paid_at = ")
                    .push_bind(paid_at)
                    .push(", payment_ids = ")
                    .push_bind(payment_ids)
                    .push(", updated_at = ")
                    .push_bind(at)
                    .push(", next_action_at = ")
                    .push_bind(next_action)
                    .push(", attempt_count = ")
                    .push_bind(attempts)
                    .push(", first_failed_at = ")
                    .push_bind(first_failed)
                    .push(", collection_paused = ")
                    .push_bind(paused)
                    .push(" WHERE tenant_id = ")
                    .push_bind(t)
                    .push(" AND id = ")
                    .push_bind(id);
            });
            Ok(())
        }

        async fn with_lines(pool: &sqlx::Pool<$db>, tenant: &str, mut inv: Invoice) -> Result<Invoice, StorageError> {
            let lines = sqlx::query_as::<_, InvoiceLineRow>(
                "SELECT * FROM invoice_lines WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY position",
            )
            .bind(tenant)
            .bind(&inv.id)
            .fetch_all(pool)
            .await?;
            inv.lines = rows::all(lines)?;
            Ok(inv)
        }
    };
}

pub(crate) use helpers;
