//! The payment ledger's storage: one trait, a Postgres and a SQLite
//! implementation generated from one body.

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use recur_storage::{Migration, Migrations, Pool, StorageError};

use crate::domain::{Customer, Payment, PaymentMethod};

pub use postgres::PgRepo;
pub use sqlite::SqliteRepo;

#[async_trait]
pub trait PaymentRepo: Send + Sync + 'static {
    /// Inserts a customer; with an idempotency key already used, returns the
    /// customer stored under it instead (and inserts nothing).
    async fn insert_customer(
        &self,
        tenant: &str,
        c: &Customer,
        idempotency_key: Option<&str>,
    ) -> Result<Customer, StorageError>;
    async fn get_customer(&self, tenant: &str, id: &str) -> Result<Option<Customer>, StorageError>;
    async fn set_default_payment_method(
        &self,
        tenant: &str,
        customer_id: &str,
        pm_id: &str,
    ) -> Result<(), StorageError>;

    /// Inserts a payment method, or returns the one already saved for the
    /// same provider method of the same customer.
    async fn insert_payment_method(&self, tenant: &str, pm: &PaymentMethod) -> Result<PaymentMethod, StorageError>;
    async fn get_payment_method(&self, tenant: &str, id: &str) -> Result<Option<PaymentMethod>, StorageError>;
    async fn list_payment_methods(&self, tenant: &str, customer_id: &str) -> Result<Vec<PaymentMethod>, StorageError>;

    /// Inserts a new payment; `Err(Unique)` when its idempotency key exists.
    async fn insert_payment(&self, tenant: &str, p: &Payment) -> Result<(), StorageError>;
    async fn get_payment(&self, tenant: &str, id: &str) -> Result<Option<Payment>, StorageError>;
    async fn get_payment_by_key(&self, tenant: &str, key: &str) -> Result<Option<Payment>, StorageError>;
    /// Records an attempt's outcome, but only over a PROCESSING payment, so a
    /// late answer never overwrites a settled one. Returns whether it did.
    async fn settle_payment(&self, tenant: &str, p: &Payment) -> Result<bool, StorageError>;
    async fn list_payments(
        &self,
        tenant: &str,
        customer_id: Option<&str>,
        invoice_id: Option<&str>,
        status: Option<&str>,
        after: Option<&recur_storage::page::Cursor>,
        limit: i64,
    ) -> Result<Vec<Payment>, StorageError>;
}

pub const MIGRATIONS: Migrations = Migrations {
    table: "payment_migrations",
    postgres: &[Migration { version: 1, name: "init", sql: include_str!("../../migrations/postgres/0001_init.sql") }],
    sqlite: &[Migration { version: 1, name: "init", sql: include_str!("../../migrations/sqlite/0001_init.sql") }],
};

pub async fn open(url: &str, max_connections: u32) -> Result<Arc<dyn PaymentRepo>, StorageError> {
    let pool = recur_storage::connect(url, "payment", max_connections).await?;
    recur_storage::migrate(&pool, &MIGRATIONS).await?;
    Ok(from_pool(pool))
}

pub fn from_pool(pool: Pool) -> Arc<dyn PaymentRepo> {
    match pool {
        Pool::Postgres(p) => Arc::new(PgRepo { pool: p }),
        Pool::Sqlite(p) => Arc::new(SqliteRepo { pool: p }),
    }
}

fn decode_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("payment row: {e}"))
}

macro_rules! sql_repo {
    ($repo:ident, $db:ty) => {
        use async_trait::async_trait;
        use recur_money::{Currency, Money};
        use recur_storage::{Dec, StorageError};
        use sqlx::{QueryBuilder, Row};

        use super::{decode_err, PaymentRepo};
        use crate::domain::{Customer, Payment, PaymentMethod};

        pub struct $repo {
            pub pool: sqlx::Pool<$db>,
        }

        type DbRow = <$db as sqlx::Database>::Row;

        fn customer_row(r: &DbRow) -> Result<Customer, StorageError> {
            Ok(Customer {
                id: r.try_get("id")?,
                provider: r.try_get("provider")?,
                provider_customer_id: r.try_get("provider_customer_id")?,
                account_id: r.try_get("account_id")?,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                reference: r.try_get("reference")?,
                default_payment_method_id: r.try_get("default_payment_method_id")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn method_row(r: &DbRow) -> Result<PaymentMethod, StorageError> {
            Ok(PaymentMethod {
                id: r.try_get("id")?,
                customer_id: r.try_get("customer_id")?,
                provider: r.try_get("provider")?,
                provider_payment_method_id: r.try_get("provider_payment_method_id")?,
                name: r.try_get("name")?,
                brand: r.try_get("brand")?,
                last4: r.try_get("last4")?,
                exp_month: r.try_get::<i32, _>("exp_month")?.max(0) as u32,
                exp_year: r.try_get::<i32, _>("exp_year")?.max(0) as u32,
                created_at: r.try_get("created_at")?,
            })
        }

        fn payment_row(r: &DbRow) -> Result<Payment, StorageError> {
            let code: String = r.try_get("currency")?;
            let currency = Currency::from_code(&code).ok_or_else(|| decode_err(format!("currency {code}")))?;
            Ok(Payment {
                id: r.try_get("id")?,
                customer_id: r.try_get("customer_id")?,
                payment_method_id: r.try_get("payment_method_id")?,
                amount: Money::new(r.try_get::<Dec, _>("amount")?.0, currency),
                amount_refunded: Money::new(r.try_get::<Dec, _>("amount_refunded")?.0, currency),
                status: r.try_get::<String, _>("status")?.parse().map_err(decode_err)?,
                invoice_id: r.try_get("invoice_id")?,
                description: r.try_get("description")?,
                provider: r.try_get("provider")?,
                provider_payment_id: r.try_get("provider_payment_id")?,
                decline_code: r.try_get("decline_code")?,
                failure_message: r.try_get("failure_message")?,
                action_url: r.try_get("action_url")?,
                attempt_count: r.try_get::<i32, _>("attempt_count")?.max(0) as u32,
                metadata: serde_json::from_str(&r.try_get::<String, _>("metadata")?).map_err(decode_err)?,
                idempotency_key: r.try_get("idempotency_key")?,
                request_hash: r.try_get("request_hash")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        #[async_trait]
        impl PaymentRepo for $repo {
            async fn insert_customer(
                &self,
                tenant: &str,
                c: &Customer,
                idempotency_key: Option<&str>,
            ) -> Result<Customer, StorageError> {
                let inserted = sqlx::query(
                    "INSERT INTO gateway_customers (tenant_id, id, provider, provider_customer_id, account_id, email, \
                     name, reference, default_payment_method_id, idempotency_key, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
                )
                .bind(tenant)
                .bind(&c.id)
                .bind(&c.provider)
                .bind(&c.provider_customer_id)
                .bind(&c.account_id)
                .bind(&c.email)
                .bind(&c.name)
                .bind(&c.reference)
                .bind(&c.default_payment_method_id)
                .bind(idempotency_key)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(c.clone());
                }
                let key = idempotency_key.ok_or_else(|| StorageError::Unique("gateway_customers".into()))?;
                let row = sqlx::query("SELECT * FROM gateway_customers WHERE tenant_id = $1 AND idempotency_key = $2")
                    .bind(tenant)
                    .bind(key)
                    .fetch_one(&self.pool)
                    .await?;
                customer_row(&row)
            }

            async fn get_customer(&self, tenant: &str, id: &str) -> Result<Option<Customer>, StorageError> {
                sqlx::query("SELECT * FROM gateway_customers WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(customer_row)
                    .transpose()
            }

            async fn set_default_payment_method(
                &self,
                tenant: &str,
                customer_id: &str,
                pm_id: &str,
            ) -> Result<(), StorageError> {
                sqlx::query("UPDATE gateway_customers SET default_payment_method_id = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(customer_id)
                    .bind(pm_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_payment_method(&self, tenant: &str, pm: &PaymentMethod) -> Result<PaymentMethod, StorageError> {
                let inserted = sqlx::query(
                    "INSERT INTO payment_methods (tenant_id, id, customer_id, provider, provider_payment_method_id, \
                     name, brand, last4, exp_month, exp_year, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                )
                .bind(tenant)
                .bind(&pm.id)
                .bind(&pm.customer_id)
                .bind(&pm.provider)
                .bind(&pm.provider_payment_method_id)
                .bind(&pm.name)
                .bind(&pm.brand)
                .bind(&pm.last4)
                .bind(pm.exp_month as i32)
                .bind(pm.exp_year as i32)
                .bind(pm.created_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(pm.clone());
                }
                let row = sqlx::query(
                    "SELECT * FROM payment_methods WHERE tenant_id = $1 AND customer_id = $2 \
                     AND provider_payment_method_id = $3",
                )
                .bind(tenant)
                .bind(&pm.customer_id)
                .bind(&pm.provider_payment_method_id)
                .fetch_one(&self.pool)
                .await?;
                method_row(&row)
            }

            async fn get_payment_method(&self, tenant: &str, id: &str) -> Result<Option<PaymentMethod>, StorageError> {
                sqlx::query("SELECT * FROM payment_methods WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(method_row)
                    .transpose()
            }

            async fn list_payment_methods(&self, tenant: &str, customer_id: &str) -> Result<Vec<PaymentMethod>, StorageError> {
                sqlx::query("SELECT * FROM payment_methods WHERE tenant_id = $1 AND customer_id = $2 ORDER BY created_at, id")
                    .bind(tenant)
                    .bind(customer_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(method_row)
                    .collect()
            }

            async fn insert_payment(&self, tenant: &str, p: &Payment) -> Result<(), StorageError> {
                sqlx::query(
                    "INSERT INTO payments (tenant_id, id, customer_id, payment_method_id, currency, amount, \
                     amount_refunded, status, invoice_id, description, provider, provider_payment_id, decline_code, \
                     failure_message, action_url, attempt_count, metadata, idempotency_key, request_hash, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                     $18, $19, $20, $21)",
                )
                .bind(tenant)
                .bind(&p.id)
                .bind(&p.customer_id)
                .bind(&p.payment_method_id)
                .bind(p.amount.currency().code())
                .bind(Dec(p.amount.amount()))
                .bind(Dec(p.amount_refunded.amount()))
                .bind(p.status.as_str())
                .bind(&p.invoice_id)
                .bind(&p.description)
                .bind(&p.provider)
                .bind(&p.provider_payment_id)
                .bind(&p.decline_code)
                .bind(&p.failure_message)
                .bind(&p.action_url)
                .bind(p.attempt_count as i32)
                .bind(serde_json::to_string(&p.metadata).map_err(decode_err)?)
                .bind(&p.idempotency_key)
                .bind(&p.request_hash)
                .bind(p.created_at)
                .bind(p.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_payment(&self, tenant: &str, id: &str) -> Result<Option<Payment>, StorageError> {
                sqlx::query("SELECT * FROM payments WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(payment_row)
                    .transpose()
            }

            async fn get_payment_by_key(&self, tenant: &str, key: &str) -> Result<Option<Payment>, StorageError> {
                sqlx::query("SELECT * FROM payments WHERE tenant_id = $1 AND idempotency_key = $2")
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(payment_row)
                    .transpose()
            }

            async fn settle_payment(&self, tenant: &str, p: &Payment) -> Result<bool, StorageError> {
                let n = sqlx::query(
                    "UPDATE payments SET status = $3, provider_payment_id = $4, decline_code = $5, \
                     failure_message = $6, action_url = $7, attempt_count = $8, updated_at = $9 \
                     WHERE tenant_id = $1 AND id = $2 AND status = 'processing'",
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
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn list_payments(
                &self,
                tenant: &str,
                customer_id: Option<&str>,
                invoice_id: Option<&str>,
                status: Option<&str>,
                after: Option<&recur_storage::page::Cursor>,
                limit: i64,
            ) -> Result<Vec<Payment>, StorageError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM payments WHERE tenant_id = ");
                qb.push_bind(tenant);
                if let Some(c) = customer_id {
                    qb.push(" AND customer_id = ").push_bind(c);
                }
                if let Some(i) = invoice_id {
                    qb.push(" AND invoice_id = ").push_bind(i);
                }
                if let Some(s) = status {
                    qb.push(" AND status = ").push_bind(s);
                }
                if let Some(c) = after {
                    qb.push(" AND (created_at, id) > (").push_bind(c.as_time()).push(", ").push_bind(c.id.as_str()).push(")");
                }
                qb.push(" ORDER BY created_at, id LIMIT ").push_bind(limit);
                qb.build().fetch_all(&self.pool).await?.iter().map(payment_row).collect()
            }
        }
    };
}

pub(crate) use sql_repo;
