//! Subscriptions.

macro_rules! store {
    ($repo:ident, $db:ty) => {
        /// Writes the rows listings filter on beside a subscription: its
        /// products and coupon codes, and (`with_metadata`) its metadata.
        async fn side_tables(
            tx: &mut Tx<'_>,
            tenant: &str,
            s: &crate::domain::Subscription,
            with_metadata: bool,
        ) -> Result<(), StorageError> {
            let mut w = Writes::new();
            add_side_tables(&mut w, tenant, s, with_metadata);
            w.execute_in(&mut **tx).await?;
            Ok(())
        }

        /// Adds the statements of [`side_tables`] to `w`.
        fn add_side_tables(w: &mut Writes<'_>, tenant: &str, s: &crate::domain::Subscription, with_metadata: bool) {
            let mut products: Vec<String> = s.items.iter().map(|i| i.product_id.clone()).collect();
            products.sort_unstable();
            products.dedup();
            let mut codes: Vec<String> = s.coupon_codes.clone();
            codes.sort_unstable();
            codes.dedup();
            let metadata: Vec<(String, String)> =
                if with_metadata { s.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect() } else { Vec::new() };
            for (table, column, values) in
                [("subscription_products", "product_id", products), ("subscription_coupons", "code", codes)]
            {
                if values.is_empty() {
                    continue;
                }
                let (tenant, id) = (tenant.to_string(), s.id.clone());
                w.add(move |qb| {
                    qb.push(format_args!("INSERT INTO {table} (tenant_id, subscription_id, {column}) "));
                    qb.push_values(values, |mut row, v| {
                        row.push_bind(tenant.clone()).push_bind(id.clone()).push_bind(v);
                    });
                });
            }
            if !metadata.is_empty() {
                let (tenant, id) = (tenant.to_string(), s.id.clone());
                w.add(move |qb| {
                    qb.push("INSERT INTO subscription_metadata (tenant_id, subscription_id, key, value) ");
                    qb.push_values(metadata, |mut row, (k, v)| {
                        row.push_bind(tenant.clone()).push_bind(id.clone()).push_bind(k).push_bind(v);
                    });
                });
            }
        }

        /// Writes change `c` in the caller's transaction: the subscription
        /// over the version it was read at (`Ok(false)`: it changed
        /// meanwhile; the caller rolls back), the rows listings filter on,
        /// coupons, the idempotency key, the invoice, credit and events.
        async fn save_in(tx: &mut Tx<'_>, tenant: &str, c: &super::Change<'_>) -> Result<bool, StorageError> {
            let s = c.sub;
            let scheduled = match &s.scheduled_change {
                Some(change) => to_json(change)?,
                None => String::new(),
            };
            let changed = sqlx::query(
                "UPDATE subscriptions SET state = $4, offering_id = $5, rate_id = $6, items = $7, \
                 coupon_codes = $8, recurring_amount = $9, start_date = $10, anchor_day = $11, \
                 anchor_month = $12, metadata = $13, cancel_at_period_end = $14, current_period_start = $15, \
                 current_period_end = $16, trial_start = $17, trial_end = $18, next_billing_at = $19, \
                 activated_at = $20, canceled_at = $21, expires_at = $22, paused_at = $23, resume_at = $24, \
                 cancel_reason = $25, cancel_comment = $26, scheduled_change = $27, \
                 previous_billing_at = $28, updated_at = $29, parked_reason = $30, version = version + 1 \
                 WHERE tenant_id = $1 AND id = $2 AND version = $3",
            )
            .bind(tenant)
            .bind(&s.id)
            .bind(s.version)
            .bind(s.state.as_str())
            .bind(&s.offering_id)
            .bind(&s.rate_id)
            .bind(to_json(&s.items)?)
            .bind(to_json(&s.coupon_codes)?)
            .bind(Dec(s.recurring_amount))
            .bind(s.start_date.format("%Y-%m-%d").to_string())
            .bind(i32::try_from(s.billing_anchor.day).unwrap_or(0))
            .bind(i32::try_from(s.billing_anchor.month).unwrap_or(0))
            .bind(to_json(&s.metadata)?)
            .bind(s.cancel_at_period_end)
            .bind(s.current_period_start)
            .bind(s.current_period_end)
            .bind(s.trial_start)
            .bind(s.trial_end)
            .bind(s.next_billing_at)
            .bind(s.activated_at)
            .bind(s.canceled_at)
            .bind(s.expires_at)
            .bind(s.paused_at)
            .bind(s.resume_at)
            .bind(&s.cancel_reason)
            .bind(&s.cancel_comment)
            .bind(scheduled)
            .bind(s.previous_billing_at)
            .bind(s.updated_at)
            .bind(&s.parked_reason)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Ok(false);
            }
            // What listings filter on follows the row (unless the change
            // kept its products and coupons).
            if !c.lists_unchanged {
                sqlx::query("DELETE FROM subscription_products WHERE tenant_id = $1 AND subscription_id = $2")
                    .bind(tenant)
                    .bind(&s.id)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM subscription_coupons WHERE tenant_id = $1 AND subscription_id = $2")
                    .bind(tenant)
                    .bind(&s.id)
                    .execute(&mut **tx)
                    .await?;
                side_tables(tx, tenant, s, false).await?;
            }
            redeem_coupons(tx, tenant, s, c.redeem, c.release).await?;
            if let Some(key) = c.idem.key {
                sqlx::query(
                    "INSERT INTO subscription_mutations (tenant_id, idempotency_key, request_hash, \
                     subscription_id, action, created_at, invoice_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(tenant)
                .bind(key)
                .bind(c.idem.hash)
                .bind(&s.id)
                .bind(c.action)
                .bind(s.updated_at.to_rfc3339())
                .bind(c.invoice.map(|i| i.id.as_str()).unwrap_or_default())
                .execute(&mut **tx)
                .await?;
            }
            // The invoice, its lines and the events in one round trip.
            let mut w = Writes::new();
            for inv in c.invoice.into_iter().chain(c.closing) {
                add_invoice(&mut w, tenant, inv)?;
            }
            add_events(&mut w, tenant, c.events);
            w.execute_in(&mut **tx).await?;
            move_credit(tx, tenant, c.credits).await
        }

        #[async_trait::async_trait]
        impl super::SubscriptionStore for $repo {
            async fn insert_subscription(
                &self,
                tenant: &str,
                s: &crate::domain::Subscription,
                invoice: Option<&Invoice>,
                idem: super::Idem<'_>,
                redeem: &[super::Redemption],
                events: &[Event],
            ) -> Result<recur_storage::idem::Stored<crate::domain::Subscription>, StorageError> {
                use recur_storage::idem::Stored;
                // One statement on Postgres (one transaction on SQLite):
                // the subscription, what listings filter on, its first
                // invoice and its events; coupon redemptions, which the
                // database may refuse, follow in the same transaction.
                let mut w = Writes::new();
                let (t, row) = (tenant.to_string(), s.clone());
                let (items, codes, metadata) = (to_json(&s.items)?, to_json(&s.coupon_codes)?, to_json(&s.metadata)?);
                let (key, hash) = (idem.key.map(str::to_string), idem.hash.to_string());
                w.add(move |qb| {
                    qb.push(
                        "INSERT INTO subscriptions (tenant_id, id, custom_id, account_id, bill_group_id, \
                         offering_id, rate_id, state, items, coupon_codes, currency, recurring_amount, start_date, \
                         anchor_day, anchor_month, metadata, cancel_at_period_end, current_period_start, \
                         current_period_end, trial_start, trial_end, next_billing_at, activated_at, canceled_at, \
                         expires_at, quote_id, idempotency_key, request_hash, created_at, updated_at, \
                         previous_billing_at) ",
                    );
                    qb.push_values([()], |mut r, ()| {
                        r.push_bind(t.clone())
                            .push_bind(row.id.clone())
                            .push_bind(row.custom_id.clone())
                            .push_bind(row.account_id.clone())
                            .push_bind(row.bill_group_id.clone())
                            .push_bind(row.offering_id.clone())
                            .push_bind(row.rate_id.clone())
                            .push_bind(row.state.as_str())
                            .push_bind(items.clone())
                            .push_bind(codes.clone())
                            .push_bind(row.currency.code())
                            .push_bind(Dec(row.recurring_amount))
                            .push_bind(row.start_date.format("%Y-%m-%d").to_string())
                            .push_bind(i32::try_from(row.billing_anchor.day).unwrap_or(0))
                            .push_bind(i32::try_from(row.billing_anchor.month).unwrap_or(0))
                            .push_bind(metadata.clone())
                            .push_bind(row.cancel_at_period_end)
                            .push_bind(row.current_period_start)
                            .push_bind(row.current_period_end)
                            .push_bind(row.trial_start)
                            .push_bind(row.trial_end)
                            .push_bind(row.next_billing_at)
                            .push_bind(row.activated_at)
                            .push_bind(row.canceled_at)
                            .push_bind(row.expires_at)
                            .push_bind(row.quote_id.clone())
                            .push_bind(key.clone())
                            .push_bind(hash.clone())
                            .push_bind(row.created_at)
                            .push_bind(row.updated_at)
                            .push_bind(row.previous_billing_at);
                    });
                });
                add_side_tables(&mut w, tenant, s, true);
                if let Some(inv) = invoice {
                    add_invoice(&mut w, tenant, inv)?;
                }
                add_events(&mut w, tenant, events);
                let written = if redeem.is_empty() {
                    w.execute(&self.pool).await.map_err(StorageError::from)
                } else {
                    let mut tx = self.pool.begin().await?;
                    match w.execute_in(&mut tx).await {
                        Ok(()) => {
                            redeem_coupons(&mut tx, tenant, s, redeem, &[]).await?;
                            tx.commit().await.map_err(StorageError::from)
                        }
                        Err(e) => Err(e.into()),
                    }
                };
                if let Err(e) = written {
                    // A key used before: what it stored (looked up only
                    // then, as callers look before they insert).
                    if e.is_unique()
                        && let Some(key) = idem.key
                        && let Some(existing) = super::SubscriptionStore::subscription_by_key(self, tenant, key).await?
                    {
                        return Ok(existing);
                    }
                    return Err(e);
                }
                if invoice.is_some() {
                    number_invoices(&self.pool, &self.numbering, tenant).await?;
                }
                Ok(Stored::created(s.clone(), idem.hash))
            }

            async fn list_subscriptions(
                &self,
                tenant: &str,
                q: &super::SubscriptionQuery,
            ) -> Result<Vec<crate::domain::Subscription>, StorageError> {
                use super::{SubscriptionOrder, missing_time};
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM subscriptions WHERE tenant_id = ");
                qb.push_bind(tenant);
                if !q.states.is_empty() {
                    qb.push(" AND state");
                    recur_storage::push_in(&mut qb, q.states.iter().map(|st| st.as_str()));
                }
                for (column, value) in [("account_id", &q.account_id), ("offering_id", &q.offering_id), ("rate_id", &q.rate_id)] {
                    if let Some(v) = value {
                        qb.push(format!(" AND {column} = ")).push_bind(v.clone());
                    }
                }
                if let Some(p) = &q.product_id {
                    qb.push(" AND id IN (SELECT subscription_id FROM subscription_products WHERE tenant_id = ")
                        .push_bind(tenant)
                        .push(" AND product_id = ")
                        .push_bind(p.clone())
                        .push(")");
                }
                if let Some(c) = &q.coupon_code {
                    qb.push(" AND id IN (SELECT subscription_id FROM subscription_coupons WHERE tenant_id = ")
                        .push_bind(tenant)
                        .push(" AND code = ")
                        .push_bind(c.clone())
                        .push(")");
                }
                for (k, v) in &q.metadata {
                    qb.push(" AND id IN (SELECT subscription_id FROM subscription_metadata WHERE tenant_id = ")
                        .push_bind(tenant)
                        .push(" AND key = ")
                        .push_bind(k.clone())
                        .push(" AND value = ")
                        .push_bind(v.clone())
                        .push(")");
                }
                if let Some((column, from, to)) = &q.time_range {
                    let c = column.column();
                    if let Some(from) = from {
                        qb.push(format!(" AND {c} >= ")).push_bind(*from);
                    }
                    if let Some(to) = to {
                        qb.push(format!(" AND {c} <= ")).push_bind(*to);
                    }
                    if from.is_none() && to.is_none() {
                        qb.push(format!(" AND {c} IS NOT NULL"));
                    }
                }
                let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
                match q.order {
                    SubscriptionOrder::Time(column) if !column.nullable() => {
                        // A plain column: the (tenant_id, column, id) index
                        // gives the order.
                        let c = column.column();
                        if let Some(after) = &q.after {
                            qb.push(format!(" AND ({c}, id) {cmp} ("))
                                .push_bind(after.as_time().unwrap_or_default())
                                .push(", ")
                                .push_bind(after.id.clone())
                                .push(")");
                        }
                        qb.push(format!(" ORDER BY {c} {dir}, id {dir}"));
                    }
                    SubscriptionOrder::Time(column) => {
                        let key = format!("COALESCE({}, ", column.column());
                        if let Some(after) = &q.after {
                            qb.push(" AND (")
                                .push(&key)
                                .push_bind(missing_time())
                                .push("), id) ")
                                .push(cmp)
                                .push(" (")
                                .push_bind(after.as_time().unwrap_or_default())
                                .push(", ")
                                .push_bind(after.id.clone())
                                .push(")");
                        }
                        qb.push(" ORDER BY ").push(&key).push_bind(missing_time()).push(format!(") {dir}, id {dir}"));
                    }
                    SubscriptionOrder::Id => {
                        if let Some(after) = &q.after {
                            qb.push(format!(" AND id {cmp} ")).push_bind(after.id.clone());
                        }
                        qb.push(format!(" ORDER BY id {dir}"));
                    }
                }
                qb.push(" LIMIT ").push_bind(q.limit);
                rows::all(qb.build_query_as::<rows::SubscriptionRow>().fetch_all(&self.pool).await?)
            }

            async fn save_subscription(&self, tenant: &str, c: &super::Change<'_>) -> Result<bool, StorageError> {
                let mut tx = self.pool.begin().await?;
                if !save_in(&mut tx, tenant, c).await? {
                    return Ok(false);
                }
                tx.commit().await?;
                // A draft (a renewal's, in its grace period) is numbered
                // when it is finalized.
                if c.invoice.is_some_and(|i| i.status != crate::domain::InvoiceStatus::Draft) {
                    number_invoices(&self.pool, &self.numbering, tenant).await?;
                }
                Ok(true)
            }

            async fn save_subscriptions(
                &self,
                tenant: &str,
                changes: &[super::Change<'_>],
            ) -> Result<Vec<Result<bool, StorageError>>, StorageError> {
                use sqlx::Acquire;
                let mut tx = self.pool.begin().await?;
                let mut saved = Vec::with_capacity(changes.len());
                for c in changes {
                    // Each in its own savepoint: one that lost a race (or
                    // whose period is invoiced already) undoes only itself.
                    let mut one = (&mut tx).begin().await?;
                    match save_in(&mut one, tenant, c).await {
                        Ok(true) => {
                            one.commit().await?;
                            saved.push(Ok(true));
                        }
                        Ok(false) => {
                            one.rollback().await?;
                            saved.push(Ok(false));
                        }
                        Err(e) if e.is_unique() => {
                            one.rollback().await?;
                            saved.push(Err(e));
                        }
                        Err(e) => return Err(e),
                    }
                }
                tx.commit().await?;
                if changes.iter().zip(&saved).any(|(c, s)| {
                    matches!(s, Ok(true)) && c.invoice.is_some_and(|i| i.status != crate::domain::InvoiceStatus::Draft)
                }) {
                    number_invoices(&self.pool, &self.numbering, tenant).await?;
                }
                Ok(saved)
            }

            async fn redemptions(&self, tenant: &str, codes: &[String]) -> Result<Vec<(String, i64)>, StorageError> {
                if codes.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb =
                    sqlx::QueryBuilder::<$db>::new("SELECT code, redeemed FROM coupon_counters WHERE tenant_id = ");
                qb.push_bind(tenant).push(" AND code");
                recur_storage::push_in(&mut qb, codes);
                Ok(qb.build_query_as::<(String, i64)>().fetch_all(&self.pool).await?)
            }

            async fn mutation_by_key(
                &self,
                tenant: &str,
                key: &str,
            ) -> Result<Option<super::MutationKey>, StorageError> {
                let row: Option<(String, String, String)> = sqlx::query_as(
                    "SELECT subscription_id, request_hash, invoice_id FROM subscription_mutations \
                     WHERE tenant_id = $1 AND idempotency_key = $2",
                )
                .bind(tenant)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(subscription_id, request_hash, invoice_id)| super::MutationKey {
                    subscription_id,
                    request_hash,
                    invoice_id,
                }))
            }

            async fn subscription_by_key(
                &self,
                tenant: &str,
                key: &str,
            ) -> Result<Option<recur_storage::idem::Stored<crate::domain::Subscription>>, StorageError> {
                let row = sqlx::query_as::<_, rows::SubscriptionRow>(
                    "SELECT * FROM subscriptions WHERE tenant_id = $1 AND idempotency_key = $2",
                )
                .bind(tenant)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let hash = row.request_hash.clone();
                Ok(Some(recur_storage::idem::Stored::existing(crate::domain::Subscription::try_from(row)?, hash)))
            }

            async fn get_subscription(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<crate::domain::Subscription>, StorageError> {
                sqlx::query_as::<_, rows::SubscriptionRow>(
                    "SELECT * FROM subscriptions WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(crate::domain::Subscription::try_from)
                .transpose()
            }

            async fn get_subscriptions(
                &self,
                tenant: &str,
                ids: &[String],
            ) -> Result<Vec<crate::domain::Subscription>, StorageError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM subscriptions WHERE tenant_id = ");
                qb.push_bind(tenant).push(" AND id");
                recur_storage::push_in(&mut qb, ids);
                rows::all(qb.build_query_as::<rows::SubscriptionRow>().fetch_all(&self.pool).await?)
            }

            async fn past_due_among(&self, tenant: &str, ids: &[String]) -> Result<Vec<String>, StorageError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT id FROM subscriptions WHERE tenant_id = ");
                qb.push_bind(tenant).push(" AND state = 'past_due' AND id");
                recur_storage::push_in(&mut qb, ids);
                Ok(qb.build_query_scalar::<String>().fetch_all(&self.pool).await?)
            }

            async fn set_subscription_state(
                &self,
                tenant: &str,
                id: &str,
                state: crate::domain::SubscriptionState,
                at: chrono::DateTime<chrono::Utc>,
                event: &Event,
            ) -> Result<(), StorageError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("UPDATE subscriptions SET state = $3, updated_at = $4, version = version + 1 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .bind(state.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                insert_events(&mut tx, tenant, std::slice::from_ref(event)).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn void_and_cancel(
                &self,
                tenant: &str,
                id: &str,
                invoice_id: &str,
                at: chrono::DateTime<chrono::Utc>,
                events: &[Event],
            ) -> Result<(), StorageError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE invoices SET status = 'void', updated_at = $3 WHERE tenant_id = $1 AND id = $2 \
                     AND status = 'open'",
                )
                .bind(tenant)
                .bind(invoice_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE subscriptions SET state = 'canceled', canceled_at = $3, expires_at = $3, updated_at = $3, \
                     next_billing_at = NULL, version = version + 1 \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                insert_events(&mut tx, tenant, events).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use store;
