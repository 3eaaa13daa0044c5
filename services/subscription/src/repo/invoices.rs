//! Invoices and their lines.

macro_rules! store {
    ($repo:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl super::InvoiceStore for $repo {
            async fn number_invoices(&self, tenant: &str) -> Result<(), StorageError> {
                number_invoices(&self.pool, &self.numbering, tenant).await
            }

            async fn invoice_number(&self, tenant: &str, id: &str) -> Result<String, StorageError> {
                if let Some(number) = self.numbering.take(tenant, id) {
                    return Ok(number);
                }
                let read = || async {
                    let row: Option<(String, String)> =
                        sqlx::query_as("SELECT number, status FROM invoices WHERE tenant_id = $1 AND id = $2")
                            .bind(tenant)
                            .bind(id)
                            .fetch_optional(&self.pool)
                            .await?;
                    Ok::<_, StorageError>(row.unwrap_or_default())
                };
                let (number, status) = read().await?;
                if !number.is_empty() || status.is_empty() || status == "draft" {
                    return Ok(number);
                }
                // Finalized, but its numbering not seen yet (another call's,
                // still running, or one cut short): finish it.
                number_invoices(&self.pool, &self.numbering, tenant).await?;
                Ok(read().await?.0)
            }

            async fn get_invoice(&self, tenant: &str, id: &str) -> Result<Option<Invoice>, StorageError> {
                let row =
                    sqlx::query_as::<_, rows::InvoiceRow>("SELECT * FROM invoices WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                match row {
                    Some(r) => Ok(Some(with_lines(&self.pool, tenant, Invoice::try_from(r)?).await?)),
                    None => Ok(None),
                }
            }

            async fn list_invoices(&self, tenant: &str, q: &super::InvoiceQuery) -> Result<Vec<Invoice>, StorageError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM invoices WHERE tenant_id = ");
                qb.push_bind(tenant);
                if let Some(a) = &q.account_id {
                    qb.push(" AND account_id = ").push_bind(a.clone());
                }
                if let Some(sid) = &q.subscription_id {
                    qb.push(" AND subscription_id = ").push_bind(sid.clone());
                }
                if let Some(st) = q.status {
                    qb.push(" AND status = ").push_bind(st.as_str());
                }
                if let Some(after) = &q.after {
                    qb.push(" AND (created_at, id) > (")
                        .push_bind(after.as_time())
                        .push(", ")
                        .push_bind(after.id.clone())
                        .push(")");
                }
                qb.push(" ORDER BY created_at, id LIMIT ").push_bind(q.limit);
                let found = qb.build_query_as::<rows::InvoiceRow>().fetch_all(&self.pool).await?;
                with_lines_all(&self.pool, tenant, rows::all(found)?).await
            }

            async fn invoices_of_subscription(
                &self,
                tenant: &str,
                subscription_id: &str,
            ) -> Result<Vec<Invoice>, StorageError> {
                let found = sqlx::query_as::<_, rows::InvoiceRow>(
                    "SELECT * FROM invoices WHERE tenant_id = $1 AND subscription_id = $2 ORDER BY created_at, id",
                )
                .bind(tenant)
                .bind(subscription_id)
                .fetch_all(&self.pool)
                .await?;
                with_lines_all(&self.pool, tenant, rows::all(found)?).await
            }

            async fn get_invoices(&self, tenant: &str, ids: &[String]) -> Result<Vec<Invoice>, StorageError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM invoices WHERE tenant_id = ");
                qb.push_bind(tenant).push(" AND id");
                recur_storage::push_in(&mut qb, ids);
                let found = qb.build_query_as::<rows::InvoiceRow>().fetch_all(&self.pool).await?;
                with_lines_all(&self.pool, tenant, rows::all(found)?).await
            }

            async fn record_payment(&self, tenant: &str, inv: &Invoice, events: &[Event]) -> Result<(), StorageError> {
                self.record_payments(tenant, &[(inv, events)]).await
            }

            async fn record_payments(
                &self,
                tenant: &str,
                payments: &[(&Invoice, &[Event])],
            ) -> Result<(), StorageError> {
                // One statement on Postgres, one transaction on SQLite.
                let mut w = Writes::new();
                let mut events = Vec::new();
                for (inv, evs) in payments {
                    add_payment(&mut w, tenant, inv)?;
                    events.extend_from_slice(evs);
                }
                add_events(&mut w, tenant, &events);
                if w.is_empty() {
                    return Ok(());
                }
                w.execute(&self.pool).await?;
                Ok(())
            }

            async fn update_invoice(
                &self,
                tenant: &str,
                inv: &Invoice,
                was: crate::domain::InvoiceStatus,
                read_at: chrono::DateTime<chrono::Utc>,
                credits: &[crate::domain::CreditEntry],
                events: &[Event],
            ) -> Result<bool, StorageError> {
                let mut tx = self.pool.begin().await?;
                let w = super::InvoiceWrite { invoice: inv, was, read_at, credits, events };
                if !update_invoice_in(&mut tx, tenant, &w).await? || !move_credit(&mut tx, tenant, credits).await? {
                    return Ok(false);
                }
                insert_events(&mut tx, tenant, events).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn update_invoices(
                &self,
                tenant: &str,
                writes: &[super::InvoiceWrite<'_>],
            ) -> Result<Vec<bool>, StorageError> {
                use sqlx::Acquire;
                let mut tx = self.pool.begin().await?;
                let (mut out, mut events, mut finalized) = (Vec::with_capacity(writes.len()), Vec::new(), false);
                // On Postgres, writes that move no credit go in one
                // statement (a round trip instead of one per invoice).
                let at_once =
                    <$db as sqlx::Database>::NAME == "PostgreSQL" && writes.iter().all(|w| w.credits.is_empty());
                let written_at_once =
                    if at_once { update_invoices_at_once(&mut tx, tenant, writes).await? } else { Vec::new() };
                for (i, w) in writes.iter().enumerate() {
                    let written = if at_once {
                        written_at_once[i]
                    } else if w.credits.is_empty() {
                        update_invoice_in(&mut tx, tenant, w).await?
                    } else {
                        // A credit it consumes may be gone: that undoes
                        // only this one.
                        let mut one = (&mut tx).begin().await?;
                        let written = update_invoice_in(&mut one, tenant, w).await?
                            && move_credit(&mut one, tenant, w.credits).await?;
                        if written {
                            one.commit().await?
                        } else {
                            one.rollback().await?
                        }
                        written
                    };
                    if written {
                        events.extend_from_slice(w.events);
                        finalized |= w.was == crate::domain::InvoiceStatus::Draft
                            && w.invoice.status != crate::domain::InvoiceStatus::Draft;
                    }
                    out.push(written);
                }
                insert_events(&mut tx, tenant, &events).await?;
                tx.commit().await?;
                if finalized {
                    number_invoices(&self.pool, &self.numbering, tenant).await?;
                }
                Ok(out)
            }

            async fn insert_invoice_once(
                &self,
                tenant: &str,
                inv: &Invoice,
                idem: super::Idem<'_>,
                events: &[Event],
            ) -> Result<recur_storage::idem::Stored<String>, StorageError> {
                use recur_storage::idem::Stored;
                if let Some(key) = idem.key {
                    let found: Option<(String, String)> = sqlx::query_as(
                        "SELECT id, request_hash FROM invoices WHERE tenant_id = $1 AND idempotency_key = $2",
                    )
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some((id, hash)) = found {
                        return Ok(Stored::existing(id, hash));
                    }
                }
                let mut tx = self.pool.begin().await?;
                insert_invoice(&mut tx, tenant, inv).await?;
                if let Some(key) = idem.key {
                    sqlx::query(
                        "UPDATE invoices SET idempotency_key = $3, request_hash = $4 WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(&inv.id)
                    .bind(key)
                    .bind(idem.hash)
                    .execute(&mut *tx)
                    .await?;
                }
                insert_events(&mut tx, tenant, events).await?;
                tx.commit().await?;
                number_invoices(&self.pool, &self.numbering, tenant).await?;
                Ok(Stored::created(inv.id.clone(), idem.hash))
            }

            async fn insert_pending_charge(
                &self,
                tenant: &str,
                c: &crate::domain::PendingCharge,
                idem: super::Idem<'_>,
            ) -> Result<recur_storage::idem::Stored<crate::domain::PendingCharge>, StorageError> {
                use recur_storage::idem::Stored;
                if let Some(key) = idem.key {
                    let found = sqlx::query_as::<_, rows::PendingChargeRow>(
                        "SELECT * FROM pending_charges WHERE tenant_id = $1 AND idempotency_key = $2",
                    )
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = found {
                        let hash = row.request_hash.clone();
                        return Ok(Stored::existing(row.try_into()?, hash));
                    }
                }
                sqlx::query(
                    "INSERT INTO pending_charges (tenant_id, id, account_id, subscription_id, product_id, \
                     description, quantity, unit_amount, amount, currency, idempotency_key, request_hash, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(tenant)
                .bind(&c.id)
                .bind(&c.account_id)
                .bind(&c.subscription_id)
                .bind(&c.product_id)
                .bind(&c.description)
                .bind(Dec(c.quantity))
                .bind(&c.unit_amount)
                .bind(Dec(c.amount))
                .bind(c.currency.code())
                .bind(idem.key)
                .bind(idem.hash)
                .bind(c.created_at)
                .execute(&self.pool)
                .await?;
                Ok(Stored::created(c.clone(), idem.hash))
            }

            async fn pending_charges_of(
                &self,
                tenant: &str,
                ids: &[String],
            ) -> Result<Vec<crate::domain::PendingCharge>, StorageError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM pending_charges WHERE tenant_id = ");
                qb.push_bind(tenant).push(" AND invoice_id IS NULL AND subscription_id");
                recur_storage::push_in(&mut qb, ids);
                qb.push(" ORDER BY created_at, id");
                rows::all(qb.build_query_as::<rows::PendingChargeRow>().fetch_all(&self.pool).await?)
            }

            async fn pending_charges(
                &self,
                tenant: &str,
                subscription_id: &str,
            ) -> Result<Vec<crate::domain::PendingCharge>, StorageError> {
                rows::all(
                    sqlx::query_as::<_, rows::PendingChargeRow>(
                        "SELECT * FROM pending_charges WHERE tenant_id = $1 AND subscription_id = $2 \
                         AND invoice_id IS NULL ORDER BY created_at, id",
                    )
                    .bind(tenant)
                    .bind(subscription_id)
                    .fetch_all(&self.pool)
                    .await?,
                )
            }

            async fn credit_balances(
                &self,
                tenant: &str,
                account_id: &str,
            ) -> Result<Vec<(String, rust_decimal::Decimal)>, StorageError> {
                let rows: Vec<(String, Dec)> = sqlx::query_as(
                    "SELECT currency, balance FROM credit_balances WHERE tenant_id = $1 AND account_id = $2 \
                     ORDER BY currency",
                )
                .bind(tenant)
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(c, b)| (c, b.0)).collect())
            }
        }
    };
}

pub(crate) use store;
