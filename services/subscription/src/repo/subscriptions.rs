//! Subscriptions.

macro_rules! store {
    ($repo:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl super::SubscriptionStore for $repo {
            async fn insert_subscription(
                &self,
                tenant: &str,
                s: &crate::domain::Subscription,
                invoice: Option<&Invoice>,
                idem: super::Idem<'_>,
                events: &[Event],
            ) -> Result<recur_storage::idem::Stored<crate::domain::Subscription>, StorageError> {
                use recur_storage::idem::Stored;
                if let Some(key) = idem.key
                    && let Some(existing) = super::SubscriptionStore::subscription_by_key(self, tenant, key).await?
                {
                    return Ok(existing);
                }
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO subscriptions (tenant_id, id, custom_id, account_id, bill_group_id, offering_id, \
                     rate_id, state, items, coupon_codes, currency, recurring_amount, start_date, anchor_day, \
                     anchor_month, metadata, cancel_at_period_end, current_period_start, current_period_end, \
                     trial_start, trial_end, next_billing_at, activated_at, canceled_at, expires_at, quote_id, \
                     idempotency_key, request_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                     $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, \
                     $28, $29, $30)",
                )
                .bind(tenant)
                .bind(&s.id)
                .bind(&s.custom_id)
                .bind(&s.account_id)
                .bind(&s.bill_group_id)
                .bind(&s.offering_id)
                .bind(&s.rate_id)
                .bind(s.state.as_str())
                .bind(to_json(&s.items)?)
                .bind(to_json(&s.coupon_codes)?)
                .bind(s.currency.code())
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
                .bind(&s.quote_id)
                .bind(idem.key)
                .bind(idem.hash)
                .bind(s.created_at)
                .bind(s.updated_at)
                .execute(&mut *tx)
                .await?;
                if let Some(inv) = invoice {
                    insert_invoice(&mut tx, tenant, inv).await?;
                }
                insert_events(&mut tx, tenant, events).await?;
                tx.commit().await?;
                Ok(Stored::created(s.clone(), idem.hash))
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

            async fn set_subscription_state(
                &self,
                tenant: &str,
                id: &str,
                state: crate::domain::SubscriptionState,
                at: chrono::DateTime<chrono::Utc>,
                event: &Event,
            ) -> Result<(), StorageError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("UPDATE subscriptions SET state = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
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
                    "UPDATE subscriptions SET state = 'canceled', canceled_at = $3, updated_at = $3 \
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
