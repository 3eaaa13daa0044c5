//! What the billing clock reads and writes beside the aggregates: leases on
//! due subscriptions, parked subscriptions, invoices the clock acts on,
//! coupon periods, and the tenants' test clocks.

macro_rules! store {
    ($repo:ident, $db:ty, $lock:literal) => {
        #[async_trait::async_trait]
        impl super::ClockStore for $repo {
            async fn claim_due(&self, q: &super::DueQuery<'_>) -> Result<Vec<(String, String)>, StorageError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE subscriptions SET lease_owner = ");
                qb.push_bind(q.owner.to_string())
                    .push(", lease_until = ")
                    .push_bind(q.lease_until)
                    .push(" WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM subscriptions WHERE next_billing_at <= ")
                    .push_bind(q.due)
                    .push(" AND next_billing_at IS NOT NULL AND parked_reason = ''");
                match q.tenant {
                    Some(t) => {
                        qb.push(" AND tenant_id = ").push_bind(t.to_string());
                    }
                    None => {
                        qb.push(" AND tenant_id NOT IN (SELECT tenant_id FROM test_clocks)");
                    }
                }
                qb.push(" AND (lease_until IS NULL OR lease_until < ")
                    .push_bind(q.wall_now)
                    .push(" OR lease_owner = ")
                    .push_bind(q.owner.to_string())
                    .push(") ORDER BY next_billing_at, tenant_id, id LIMIT ")
                    .push_bind(q.limit)
                    .push($lock)
                    .push(") RETURNING tenant_id, id");
                let mut claimed = qb.build_query_as::<(String, String)>().fetch_all(&self.pool).await?;
                claimed.sort_unstable();
                Ok(claimed)
            }

            async fn release_leases(&self, owner: &str, items: &[(String, String)]) -> Result<(), StorageError> {
                if items.is_empty() {
                    return Ok(());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE subscriptions SET lease_owner = '', lease_until = NULL WHERE lease_owner = ",
                );
                qb.push_bind(owner.to_string()).push(" AND (tenant_id, id) IN (");
                let mut sep = qb.separated(", ");
                for (tenant, id) in items {
                    sep.push("(").push_bind_unseparated(tenant.clone()).push_unseparated(", ");
                    sep.push_bind_unseparated(id.clone()).push_unseparated(")");
                }
                qb.push(")");
                qb.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn park_subscription(
                &self,
                tenant: &str,
                id: &str,
                version: i64,
                reason: &str,
                at: chrono::DateTime<chrono::Utc>,
                event: &Event,
            ) -> Result<bool, StorageError> {
                let mut tx = self.pool.begin().await?;
                let changed = sqlx::query(
                    "UPDATE subscriptions SET parked_reason = $4, updated_at = $5, version = version + 1, \
                     lease_owner = '', lease_until = NULL \
                     WHERE tenant_id = $1 AND id = $2 AND version = $3",
                )
                .bind(tenant)
                .bind(id)
                .bind(version)
                .bind(reason)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Ok(false);
                }
                insert_events(&mut tx, tenant, std::slice::from_ref(event)).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn invoices_due(
                &self,
                tenant: Option<&str>,
                due: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> Result<Vec<(String, String)>, StorageError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT tenant_id, id FROM invoices WHERE next_action_at IS NOT NULL AND next_action_at <= ",
                );
                qb.push_bind(due);
                match tenant {
                    Some(t) => {
                        qb.push(" AND tenant_id = ").push_bind(t.to_string());
                    }
                    None => {
                        qb.push(" AND tenant_id NOT IN (SELECT tenant_id FROM test_clocks)");
                    }
                }
                qb.push(" ORDER BY next_action_at, tenant_id, id LIMIT ").push_bind(limit);
                Ok(qb.build_query_as::<(String, String)>().fetch_all(&self.pool).await?)
            }

            async fn claim_invoices(
                &self,
                due: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> Result<Vec<(String, String, chrono::DateTime<chrono::Utc>)>, StorageError> {
                // `claimed_due` keeps the time each was due (the SET reads
                // the row as it was).
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE invoices SET claimed_due = next_action_at, next_action_at = ",
                );
                qb.push_bind(until)
                    .push(
                        " WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM invoices \
                         WHERE next_action_at IS NOT NULL AND next_action_at <= ",
                    )
                    .push_bind(due)
                    .push(" AND tenant_id NOT IN (SELECT tenant_id FROM test_clocks)")
                    .push(" ORDER BY next_action_at, tenant_id, id LIMIT ")
                    .push_bind(limit)
                    .push($lock)
                    .push(") RETURNING tenant_id, id, claimed_due");
                let mut claimed = qb
                    .build_query_as::<(String, String, chrono::DateTime<chrono::Utc>)>()
                    .fetch_all(&self.pool)
                    .await?;
                claimed.sort_unstable_by(|a, b| (a.2, &a.0, &a.1).cmp(&(b.2, &b.0, &b.1)));
                Ok(claimed)
            }

            async fn take_invoice(
                &self,
                tenant: &str,
                id: &str,
                seen: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, StorageError> {
                let done = sqlx::query(
                    "UPDATE invoices SET next_action_at = $4 WHERE tenant_id = $1 AND id = $2 AND next_action_at = $3",
                )
                .bind(tenant)
                .bind(id)
                .bind(seen)
                .bind(until)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(done == 1)
            }

            async fn coupon_periods(
                &self,
                tenant: &str,
                subscription_id: &str,
            ) -> Result<Vec<(String, i64)>, StorageError> {
                Ok(sqlx::query_as::<_, (String, i64)>(
                    "SELECT r.code, COUNT(i.id) FROM coupon_redemptions r \
                     LEFT JOIN invoices i ON i.tenant_id = r.tenant_id AND i.subscription_id = r.subscription_id \
                     AND i.billing_reason IN ('subscription_create', 'subscription_cycle', 'period_close') \
                     AND i.status <> 'void' AND i.created_at >= r.created_at \
                     WHERE r.tenant_id = $1 AND r.subscription_id = $2 GROUP BY r.code ORDER BY r.code",
                )
                .bind(tenant)
                .bind(subscription_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn coupon_periods_of(
                &self,
                tenant: &str,
                ids: &[String],
            ) -> Result<Vec<(String, String, i64)>, StorageError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT r.subscription_id, r.code, COUNT(i.id) FROM coupon_redemptions r \
                     LEFT JOIN invoices i ON i.tenant_id = r.tenant_id AND i.subscription_id = r.subscription_id \
                     AND i.billing_reason IN ('subscription_create', 'subscription_cycle', 'period_close') \
                     AND i.status <> 'void' AND i.created_at >= r.created_at \
                     WHERE r.tenant_id = ",
                );
                qb.push_bind(tenant).push(" AND r.subscription_id");
                recur_storage::push_in(&mut qb, ids);
                qb.push(" GROUP BY r.subscription_id, r.code ORDER BY r.subscription_id, r.code");
                Ok(qb.build_query_as::<(String, String, i64)>().fetch_all(&self.pool).await?)
            }

            async fn next_due(&self, tenant: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, StorageError> {
                let sub: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
                    "SELECT next_billing_at FROM subscriptions WHERE tenant_id = $1 AND next_billing_at IS NOT NULL \
                     AND parked_reason = '' ORDER BY next_billing_at LIMIT 1",
                )
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
                let inv: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
                    "SELECT next_action_at FROM invoices WHERE tenant_id = $1 AND next_action_at IS NOT NULL \
                     ORDER BY next_action_at LIMIT 1",
                )
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match (sub, inv) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                })
            }

            async fn tenants_awaiting_payments(
                &self,
                only: Option<&str>,
                limit: i64,
            ) -> Result<Vec<String>, StorageError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT DISTINCT tenant_id FROM invoices WHERE status = 'open' \
                     AND collection_paused = 'payment_pending'",
                );
                if let Some(t) = only {
                    qb.push(" AND tenant_id = ").push_bind(t.to_string());
                }
                qb.push(" ORDER BY tenant_id LIMIT ").push_bind(limit);
                Ok(qb.build_query_scalar::<String>().fetch_all(&self.pool).await?)
            }

            async fn payment_cursor(&self, tenant: &str) -> Result<i64, StorageError> {
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT last_sequence FROM payment_cursors WHERE tenant_id = $1")
                        .bind(tenant)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(found.unwrap_or(0))
            }

            async fn set_payment_cursor(
                &self,
                tenant: &str,
                sequence: i64,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), StorageError> {
                sqlx::query(
                    "INSERT INTO payment_cursors (tenant_id, last_sequence, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id) DO UPDATE SET last_sequence = EXCLUDED.last_sequence, \
                     updated_at = EXCLUDED.updated_at WHERE payment_cursors.last_sequence < EXCLUDED.last_sequence",
                )
                .bind(tenant)
                .bind(sequence)
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn test_clocks(&self) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>, StorageError> {
                Ok(sqlx::query_as::<_, (String, chrono::DateTime<chrono::Utc>)>(
                    "SELECT tenant_id, clock_time FROM test_clocks ORDER BY tenant_id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn start_test_clock(
                &self,
                tenant: &str,
                at: chrono::DateTime<chrono::Utc>,
                wall: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, StorageError> {
                let done = sqlx::query(
                    "INSERT INTO test_clocks (tenant_id, clock_time, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id) DO NOTHING",
                )
                .bind(tenant)
                .bind(at)
                .bind(wall)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(done == 1)
            }

            async fn move_test_clock(
                &self,
                tenant: &str,
                at: chrono::DateTime<chrono::Utc>,
                wall: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, StorageError> {
                let done = sqlx::query(
                    "UPDATE test_clocks SET clock_time = $2, updated_at = $3 WHERE tenant_id = $1 AND clock_time <= $2",
                )
                .bind(tenant)
                .bind(at)
                .bind(wall)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(done == 1)
            }
        }
    };
}

pub(crate) use store;
