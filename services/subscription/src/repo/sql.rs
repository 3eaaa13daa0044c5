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

        /// Writes `events` (numbered later, when first listed).
        async fn insert_events(tx: &mut Tx<'_>, tenant: &str, events: &[Event]) -> Result<(), StorageError> {
            for e in events {
                sqlx::query(
                    "INSERT INTO events (tenant_id, id, type, resource_id, data_json, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(tenant)
                .bind(&e.id)
                .bind(e.event.type_name())
                .bind(e.event.resource_id())
                .bind(e.event.data_json())
                .bind(e.created_at)
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        }

        /// Writes an invoice and its lines, numbering it: numbers are
        /// sequential per tenant, without gaps from rolled-back
        /// transactions (the counter row is updated in the same one).
        async fn insert_invoice(tx: &mut Tx<'_>, tenant: &str, inv: &Invoice) -> Result<(), StorageError> {
            let last: i64 = sqlx::query_scalar(
                "INSERT INTO invoice_counters (tenant_id, last) VALUES ($1, 1) \
                 ON CONFLICT (tenant_id) DO UPDATE SET last = invoice_counters.last + 1 RETURNING last",
            )
            .bind(tenant)
            .fetch_one(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO invoices (tenant_id, id, number, account_id, bill_group_id, subscription_id, status, \
                 currency, amount_without_tax, discount, tax, amount, amount_paid, period_start, period_end, \
                 issued_at, due_at, paid_at, payment_ids, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, \
                 $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
            )
            .bind(tenant)
            .bind(&inv.id)
            .bind(format!("INV-{last:06}"))
            .bind(&inv.account_id)
            .bind(&inv.bill_group_id)
            .bind(&inv.subscription_id)
            .bind(inv.status.as_str())
            .bind(inv.currency.code())
            .bind(Dec(inv.amount_without_tax))
            .bind(Dec(inv.discount))
            .bind(Dec(inv.tax))
            .bind(Dec(inv.amount))
            .bind(Dec(inv.amount_paid))
            .bind(inv.period_start)
            .bind(inv.period_end)
            .bind(inv.issued_at)
            .bind(inv.due_at)
            .bind(inv.paid_at)
            .bind(to_json(&inv.payment_ids)?)
            .bind(inv.created_at)
            .bind(inv.updated_at)
            .execute(&mut **tx)
            .await?;
            for (position, l) in inv.lines.iter().enumerate() {
                insert_line(tx, tenant, &inv.id, position, l).await?;
            }
            Ok(())
        }

        async fn insert_line(
            tx: &mut Tx<'_>,
            tenant: &str,
            invoice_id: &str,
            position: usize,
            l: &InvoiceLine,
        ) -> Result<(), StorageError> {
            sqlx::query(
                "INSERT INTO invoice_lines (tenant_id, id, invoice_id, position, kind, description, \
                 subscription_id, offering_id, rate_id, product_id, period_start, period_end, quantity, \
                 unit_amount, proration_fraction, tiers, amount_without_tax, discount, tax, tax_rate, amount) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                 $20, $21)",
            )
            .bind(tenant)
            .bind(&l.id)
            .bind(invoice_id)
            .bind(i32::try_from(position).unwrap_or(i32::MAX))
            .bind(l.kind.as_str())
            .bind(&l.description)
            .bind(&l.subscription_id)
            .bind(&l.offering_id)
            .bind(&l.rate_id)
            .bind(&l.product_id)
            .bind(l.period_start)
            .bind(l.period_end)
            .bind(Dec(l.quantity))
            .bind(&l.unit_amount)
            .bind(&l.proration_fraction)
            .bind(to_json(&l.tiers)?)
            .bind(Dec(l.amount_without_tax))
            .bind(Dec(l.discount))
            .bind(Dec(l.tax))
            .bind(&l.tax_rate)
            .bind(Dec(l.amount))
            .execute(&mut **tx)
            .await?;
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
            qb.push_bind(tenant).push(" AND account_id IN (");
            let mut sep = qb.separated(", ");
            for id in account_ids {
                sep.push_bind(*id);
            }
            qb.push(") ORDER BY created_at, id");
            rows::all(qb.build_query_as::<ContactRow>().fetch_all(pool).await?)
        }

        /// `inv` with its lines, in order.
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
