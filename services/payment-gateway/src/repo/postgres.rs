//! The payment repository on Postgres. The charge path's two writes are one
//! statement each (data-modifying CTEs; the first also reads what the
//! charge needs), so a charge costs two round trips and two commits.

use std::sync::LazyLock;

super::sql_repo!(
    PgRepo,
    sqlx::Postgres,
    begin = "BEGIN",
    lock = " FOR UPDATE",
    skip_locked = " FOR UPDATE SKIP LOCKED"
);

impl PgRepo {
    /// The charge's context read and its payment and first attempt inserted
    /// (unless the key is taken), in one statement: `None` when there is
    /// nothing to charge.
    async fn start_charge_rows(
        &self,
        tenant: &str,
        p: &Payment,
        pm_id: Option<&str>,
        a: &Attempt,
        next_check_at: DateTime<Utc>,
        providers: &[&str],
    ) -> Result<Option<(Customer, PaymentMethod, bool)>, StorageError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH ctx AS (SELECT {CONTEXT_COLUMNS} FROM gateway_customers c JOIN payment_methods m \
                 ON m.tenant_id = c.tenant_id AND m.customer_id = c.id AND m.removed_at IS NULL \
                 AND m.id = COALESCE($23, c.default_payment_method_id) \
                 WHERE c.tenant_id = $1 AND c.id = $3 AND m.provider = ANY($24)), \
                 p AS (INSERT INTO payments ({NEW_PAYMENT_COLUMNS}, payment_method_id, provider) \
                 SELECT {NEW_PAYMENT_VALUES}, ctx.m_id, ctx.m_provider FROM ctx \
                 ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id), \
                 a AS (INSERT INTO payment_attempts (tenant_id, payment_id, number, started_at, outcome) \
                 SELECT $1, id, $25, $26, 'pending' FROM p) \
                 SELECT ctx.*, EXISTS (SELECT 1 FROM p) AS started FROM ctx"
            )
        });
        let row = bind_new_payment(sqlx::query(SQL.as_str()), tenant, p, next_check_at)?
            .bind(pm_id)
            .bind(providers)
            .bind(a.number as i32)
            .bind(a.started_at)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let (customer, method) = context_row(&r)?;
        let method = method.ok_or_else(|| StorageError::Other("charge context without its method".into()))?;
        Ok(Some((customer, method, r.try_get("started")?)))
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
                "WITH p AS (INSERT INTO payments ({NEW_PAYMENT_COLUMNS}, payment_method_id, provider) \
                 VALUES ({NEW_PAYMENT_VALUES}, $23, $24) \
                 ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id) \
                 INSERT INTO payment_attempts (tenant_id, payment_id, number, started_at, outcome) \
                 SELECT $1, id, $25, $26, 'pending' FROM p"
            )
        });
        let n = bind_new_payment(sqlx::query(SQL.as_str()), tenant, p, next_check_at)?
            .bind(&p.payment_method_id)
            .bind(&p.provider)
            .bind(a.number as i32)
            .bind(a.started_at)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// The payment moved, the attempt finished and the event written: one
    /// statement.
    async fn transition_rows(
        &self,
        tenant: &str,
        p: &Payment,
        from: &[PaymentStatus],
        attempt: Option<&Attempt>,
        event: &PaymentEvent,
        next_check_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError> {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let n = sqlx::query(
            "WITH u AS (UPDATE payments SET status = $3, provider_payment_id = $4, decline_code = $5, \
             failure_message = $6, action_url = $7, attempt_count = $8, updated_at = $9, next_check_at = $10 \
             WHERE tenant_id = $1 AND id = $2 AND status = ANY($11) RETURNING id), \
             a AS (UPDATE payment_attempts SET finished_at = $13, outcome = $14, provider_payment_id = $15, \
             decline_code = $16, message = $17 WHERE tenant_id = $1 AND payment_id = $2 AND number = $12) \
             INSERT INTO payment_events (tenant_id, id, type, payment_id, payment, created_at) \
             SELECT $1, $18, $19, u.id, $20, $21 FROM u",
        )
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
        .bind(&from)
        .bind(attempt.map(|a| a.number as i32).unwrap_or(-1))
        .bind(attempt.and_then(|a| a.finished_at))
        .bind(attempt.map(|a| a.outcome.as_str()).unwrap_or_default())
        .bind(attempt.map(|a| a.provider_payment_id.as_str()).unwrap_or_default())
        .bind(attempt.map(|a| a.decline_code.as_str()).unwrap_or_default())
        .bind(attempt.map(|a| a.message.as_str()).unwrap_or_default())
        .bind(&event.id)
        .bind(&event.kind)
        .bind(snapshot(&event.payment)?)
        .bind(event.created_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}
