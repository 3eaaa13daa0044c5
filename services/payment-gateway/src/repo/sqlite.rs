//! The payment repository on SQLite: the charge path's writes are short
//! transactions that take the write lock at once.

use std::sync::LazyLock;

super::sql_repo!(SqliteRepo, sqlx::Sqlite, begin = "BEGIN IMMEDIATE", lock = "", skip_locked = "");

impl SqliteRepo {
    /// The charge's context, then its payment and first attempt (unless
    /// the key is taken): `None` when there is nothing to charge.
    async fn start_charge_rows(
        &self,
        tenant: &str,
        p: &Payment,
        pm_id: Option<&str>,
        a: &Attempt,
        next_check_at: DateTime<Utc>,
        providers: &[&str],
    ) -> Result<Option<(Customer, PaymentMethod, bool)>, StorageError> {
        let Some((customer, Some(method))) = self.charge_context(tenant, &p.customer_id, pm_id).await? else {
            return Ok(None);
        };
        if !providers.contains(&method.provider.as_str()) {
            return Ok(None);
        }
        let p = Payment { payment_method_id: method.id.clone(), provider: method.provider.clone(), ..p.clone() };
        let inserted = self.begin_payment_rows(tenant, &p, a, next_check_at).await?;
        Ok(Some((customer, method, inserted)))
    }

    /// Inserts the payment and its first attempt; false on a key conflict.
    async fn begin_payment_rows(
        &self,
        tenant: &str,
        p: &Payment,
        a: &Attempt,
        next_check_at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO payments ({NEW_PAYMENT_COLUMNS}, payment_method_id, provider) \
                 VALUES ({NEW_PAYMENT_VALUES}, $23, $24) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING"
            )
        });
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = bind_new_payment(sqlx::query(SQL.as_str()), tenant, p, next_check_at)?
            .bind(&p.payment_method_id)
            .bind(&p.provider)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO payment_attempts (tenant_id, payment_id, number, started_at, outcome) \
             VALUES ($1, $2, $3, $4, 'pending')",
        )
        .bind(tenant)
        .bind(&p.id)
        .bind(a.number as i32)
        .bind(a.started_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn transition_rows(
        &self,
        tenant: &str,
        p: &Payment,
        from: &[PaymentStatus],
        attempt: Option<&Attempt>,
        event: &PaymentEvent,
        next_check_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(a) = attempt {
            sqlx::query(
                "UPDATE payment_attempts SET finished_at = $4, outcome = $5, provider_payment_id = $6, \
                 decline_code = $7, message = $8 WHERE tenant_id = $1 AND payment_id = $2 AND number = $3",
            )
            .bind(tenant)
            .bind(&p.id)
            .bind(a.number as i32)
            .bind(a.finished_at)
            .bind(&a.outcome)
            .bind(&a.provider_payment_id)
            .bind(&a.decline_code)
            .bind(&a.message)
            .execute(&mut *tx)
            .await?;
        }
        // The statuses come from the enum, never from input.
        let from = from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let moved = sqlx::query(&format!(
            "UPDATE payments SET status = $3, provider_payment_id = $4, decline_code = $5, failure_message = $6, \
             action_url = $7, attempt_count = $8, updated_at = $9, next_check_at = $10 \
             WHERE tenant_id = $1 AND id = $2 AND status IN ({from})"
        ))
        .bind(tenant)
        .bind(&p.id)
        .bind(p.status.as_str())
        .bind(&p.provider_payment_id)
        .bind(&p.decline_code)
        .bind(&p.failure_message)
        .bind(&p.action_url)
        .bind(p.attempt_count as i32)
        .bind(p.updated_at)
        .bind(next_check_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 1 {
            insert_event(&mut *tx, tenant, event).await?;
        }
        tx.commit().await?;
        Ok(moved == 1)
    }
}
