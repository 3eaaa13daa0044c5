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
