//! Invoices and their lines.

macro_rules! store {
    ($repo:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl super::InvoiceStore for $repo {
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
                let mut out = Vec::with_capacity(found.len());
                for r in found {
                    out.push(with_lines(&self.pool, tenant, Invoice::try_from(r)?).await?);
                }
                Ok(out)
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
                let mut out = Vec::with_capacity(found.len());
                for r in found {
                    out.push(with_lines(&self.pool, tenant, Invoice::try_from(r)?).await?);
                }
                Ok(out)
            }

            async fn record_payment(&self, tenant: &str, inv: &Invoice, events: &[Event]) -> Result<(), StorageError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE invoices SET status = $3, amount_paid = $4, paid_at = $5, payment_ids = $6, \
                     updated_at = $7 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(&inv.id)
                .bind(inv.status.as_str())
                .bind(Dec(inv.amount_paid))
                .bind(inv.paid_at)
                .bind(to_json(&inv.payment_ids)?)
                .bind(inv.updated_at)
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
