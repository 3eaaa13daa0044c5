//! The payment ledger's storage: one trait, a Postgres and a SQLite
//! implementation generated from one body. The two writes on the charge
//! path (a new payment with its first attempt, after reading the customer
//! and card it is for; a settled payment with its attempt and its event) are
//! backend-specific: one round trip each on Postgres (data-modifying CTEs),
//! a read and short transactions on SQLite.
//!
//! The same pool also keeps the sandbox provider's books ([`SandboxStore`]).

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use recur_money::Money;
use recur_storage::{Migration, Migrations, Pool, StorageError};

use crate::domain::sandbox::SandboxStore;
use crate::domain::{Attempt, Customer, Payment, PaymentEvent, PaymentMethod, PaymentStatus, Refund, RefundStatus};

pub use postgres::PgRepo;

/// The payment events outbox (`recur_storage::outbox`).
pub const OUTBOX: recur_storage::outbox::Outbox =
    recur_storage::outbox::Outbox { events: "payment_events", counters: "payment_event_counters" };
pub use sqlite::SqliteRepo;

/// What became of a refund request against a payment's balance.
#[derive(Clone, Debug, PartialEq)]
pub enum Reservation {
    /// The refund is saved (pending) and its amount held on the payment.
    Reserved {
        refund: Refund,
        payment: Box<Payment>,
    },
    /// A refund already exists under this idempotency key.
    Existing(Refund),
    /// More than what is left.
    Exceeds {
        refundable: Money,
    },
    /// The payment is in a state that cannot be refunded.
    NotRefundable(PaymentStatus),
    /// The amount is not in the payment's currency (given here).
    CurrencyMismatch(recur_money::Currency),
    NoPayment,
}

/// What [`PaymentRepo::start_charge`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum ChargeStart {
    /// The payment (PROCESSING) and its first attempt are stored; the
    /// customer and the method it uses are what the provider call needs.
    Started(Customer, PaymentMethod),
    /// The idempotency key already holds this payment; nothing was written.
    Existing(Payment),
    /// No such customer, or no active method to charge (the one asked for,
    /// else the default) on one of the given providers; nothing was written.
    NoContext,
}

/// A provider's answer to a refund, to record.
#[derive(Clone, Debug, PartialEq)]
pub struct RefundResult {
    pub status: RefundStatus,
    pub provider_refund_id: String,
    pub failure_message: String,
    /// For a refund still pending: when to ask the provider again.
    pub next_check_at: Option<DateTime<Utc>>,
}

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
    async fn get_customer_by_key(&self, tenant: &str, key: &str) -> Result<Option<Customer>, StorageError>;
    async fn set_default_payment_method(
        &self,
        tenant: &str,
        customer_id: &str,
        pm_id: &str,
    ) -> Result<(), StorageError>;

    /// Inserts a payment method, or returns the one already saved for the
    /// same provider method of the same customer (restored if removed).
    async fn insert_payment_method(&self, tenant: &str, pm: &PaymentMethod) -> Result<PaymentMethod, StorageError>;
    /// A payment method, removed ones included.
    async fn get_payment_method(&self, tenant: &str, id: &str) -> Result<Option<PaymentMethod>, StorageError>;
    /// Marks a payment method removed; when it was the default, the newest
    /// remaining method becomes the default. Returns the customer as it
    /// now stands, or `None` when the customer has no such active method.
    async fn remove_payment_method(
        &self,
        tenant: &str,
        customer_id: &str,
        pm_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Customer>, StorageError>;
    /// A customer and its active payment methods (oldest first), in one
    /// read; `None` when there is no such customer.
    async fn customer_with_methods(
        &self,
        tenant: &str,
        customer_id: &str,
    ) -> Result<Option<(Customer, Vec<PaymentMethod>)>, StorageError>;
    /// A customer and the active payment method a charge would use (`pm_id`,
    /// else the default), in one read.
    async fn charge_context(
        &self,
        tenant: &str,
        customer_id: &str,
        pm_id: Option<&str>,
    ) -> Result<Option<(Customer, Option<PaymentMethod>)>, StorageError>;

    /// Inserts a new PROCESSING payment with its first attempt (pending),
    /// due for a check at `next_check_at` should nobody settle it. Returns
    /// the payment already stored under its idempotency key, if any (and
    /// then inserts nothing).
    async fn begin_payment(
        &self,
        tenant: &str,
        p: &Payment,
        started: &Attempt,
        next_check_at: DateTime<Utc>,
    ) -> Result<Option<Payment>, StorageError>;
    /// A new charge's read and first write at once: finds the customer and
    /// the method to charge (`pm_id`, else the default; active and on one
    /// of `providers`) and, when there is one, inserts `p` for them (its
    /// payment method and provider taken from the method found) with its
    /// first attempt, as [`PaymentRepo::begin_payment`] does.
    async fn start_charge(
        &self,
        tenant: &str,
        p: &Payment,
        pm_id: Option<&str>,
        started: &Attempt,
        next_check_at: DateTime<Utc>,
        providers: &[&str],
    ) -> Result<ChargeStart, StorageError>;
    async fn get_payment(&self, tenant: &str, id: &str) -> Result<Option<Payment>, StorageError>;
    async fn get_payment_by_key(&self, tenant: &str, key: &str) -> Result<Option<Payment>, StorageError>;
    async fn get_payment_by_provider_id(
        &self,
        tenant: &str,
        provider_payment_id: &str,
    ) -> Result<Option<Payment>, StorageError>;
    /// Moves a payment whose status is one of `from` to `p`'s status and
    /// fields, finishing `attempt` and writing `event`, all at once.
    /// Returns false (and changes nothing but the attempt) when the payment
    /// had already left `from`.
    async fn transition(
        &self,
        tenant: &str,
        p: &Payment,
        from: &[PaymentStatus],
        attempt: Option<&Attempt>,
        event: &PaymentEvent,
        next_check_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError>;
    /// Records an attempt that changed no status (timeout, provider still
    /// deciding), keeping what the provider said of the payment's id.
    async fn record_attempt(
        &self,
        tenant: &str,
        attempt: &Attempt,
        next_check_at: Option<DateTime<Utc>>,
    ) -> Result<(), StorageError>;
    /// Starts attempt `number` of a payment (the reconciler asking again);
    /// earlier attempts still pending (their process died) end as unknown.
    async fn start_attempt(&self, tenant: &str, attempt: &Attempt) -> Result<(), StorageError>;
    async fn list_attempts(&self, tenant: &str, payment_id: &str) -> Result<Vec<Attempt>, StorageError>;
    async fn list_payments(
        &self,
        tenant: &str,
        customer_id: Option<&str>,
        invoice_id: Option<&str>,
        status: Option<&str>,
        after: Option<&recur_storage::page::Cursor>,
        limit: i64,
    ) -> Result<Vec<Payment>, StorageError>;

    /// Payments (of every tenant) whose check is due at `now`, leased until
    /// `lease_until` so that other replicas skip them meanwhile.
    async fn claim_due_payments(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(String, Payment)>, StorageError>;
    /// Pending refunds whose check is due, leased likewise.
    async fn claim_due_refunds(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(String, Refund)>, StorageError>;

    /// Saves a pending refund and holds its amount on the payment, if the
    /// payment can give it. `amount` `None` takes what is left.
    async fn reserve_refund(
        &self,
        tenant: &str,
        refund: &Refund,
        amount: Option<Money>,
        next_check_at: DateTime<Utc>,
    ) -> Result<Reservation, StorageError>;
    /// Records the provider's answer to a pending refund: a success moves
    /// the held amount to refunded (and writes a `payment.refunded` event),
    /// a failure releases it. A refund no longer pending is left as is.
    async fn finish_refund(
        &self,
        tenant: &str,
        refund_id: &str,
        result: &RefundResult,
        now: DateTime<Utc>,
    ) -> Result<Option<(Refund, Payment)>, StorageError>;
    async fn get_refund(&self, tenant: &str, id: &str) -> Result<Option<Refund>, StorageError>;
    async fn get_refund_by_key(&self, tenant: &str, key: &str) -> Result<Option<Refund>, StorageError>;
    async fn get_refund_by_provider_id(&self, tenant: &str, id: &str) -> Result<Option<Refund>, StorageError>;
    async fn list_refunds(&self, tenant: &str, payment_id: &str) -> Result<Vec<Refund>, StorageError>;

    /// Events after `after_sequence`, in order. Events written since the
    /// last call are given their sequence numbers first, in commit order.
    async fn list_events(
        &self,
        tenant: &str,
        after_sequence: i64,
        limit: i64,
    ) -> Result<Vec<PaymentEvent>, StorageError>;

    /// Remembers a provider event; returns the payment id recorded with it
    /// when it was already seen.
    async fn record_webhook(
        &self,
        tenant: &str,
        provider: &str,
        event_id: &str,
        kind: &str,
        payment_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StorageError>;
}

pub const MIGRATIONS: Migrations = Migrations {
    table: "payment_migrations",
    postgres: &[
        Migration { version: 1, name: "init", sql: include_str!("../../migrations/postgres/0001_init.sql") },
        Migration { version: 2, name: "ledger", sql: include_str!("../../migrations/postgres/0002_ledger.sql") },
        // SQLite compares text byte by byte already (BINARY).
        Migration { version: 3, name: "byte-order keys", sql: recur_storage::BYTE_ORDER_KEYS },
    ],
    sqlite: &[
        Migration { version: 1, name: "init", sql: include_str!("../../migrations/sqlite/0001_init.sql") },
        Migration { version: 2, name: "ledger", sql: include_str!("../../migrations/sqlite/0002_ledger.sql") },
    ],
};

/// The ledger and the sandbox's books.
pub struct Stores {
    pub ledger: Arc<dyn PaymentRepo>,
    pub sandbox: Arc<dyn SandboxStore>,
    /// The ledger's pool, for upkeep ([`recur_storage::analyze_growing_tables`]).
    pub pool: Pool,
}

/// Opens the ledger. On Postgres the sandbox provider's books get a pool of
/// their own whose commits are asynchronous (`synchronous_commit = off`):
/// they stand in for a remote provider's records, not Recur's, and a lost
/// last write there only means the reconciler's replay charges the sandbox
/// afresh under the same key. Every ledger commit stays durable.
pub async fn open(url: &str, max_connections: u32) -> Result<Stores, StorageError> {
    let pool = recur_storage::connect(url, "payment", max_connections).await?;
    recur_storage::migrate(&pool, &MIGRATIONS).await?;
    let Pool::Postgres(ledger) = &pool else { return Ok(from_pool(pool)) };
    let options = (*ledger.connect_options()).clone().options([("synchronous_commit", "off")]);
    let sandbox = sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_lazy_with(options);
    Ok(Stores {
        ledger: Arc::new(PgRepo { pool: ledger.clone() }),
        sandbox: Arc::new(PgRepo { pool: sandbox }),
        pool: pool.clone(),
    })
}

pub fn from_pool(pool: Pool) -> Stores {
    match &pool {
        Pool::Postgres(p) => {
            let repo = Arc::new(PgRepo { pool: p.clone() });
            Stores { ledger: repo.clone(), sandbox: repo, pool }
        }
        Pool::Sqlite(p) => {
            let repo = Arc::new(SqliteRepo { pool: p.clone() });
            Stores { ledger: repo.clone(), sandbox: repo, pool }
        }
    }
}

fn decode_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("payment row: {e}"))
}

/// The body shared by both backends. `$begin` opens a write transaction
/// (SQLite takes its write lock at once); `$lock` locks the rows a
/// transaction reads before writing (Postgres); `$skip_locked` lets
/// replicas claim different rows.
macro_rules! sql_repo {
    ($repo:ident, $db:ty, begin = $begin:literal, lock = $lock:literal, skip_locked = $skip_locked:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use recur_money::{Currency, Money};
        use recur_storage::{Dec, StorageError};
        use sqlx::{QueryBuilder, Row};

        use super::{decode_err, ChargeStart, PaymentRepo, RefundResult, Reservation};
        use crate::domain::sandbox::{SandboxCharge, SandboxRefund, SandboxStore};
        use crate::domain::{
            Attempt, Customer, Payment, PaymentEvent, PaymentMethod, PaymentStatus, Refund, RefundStatus,
        };

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
                removed_at: r.try_get("removed_at")?,
            })
        }

        fn currency(code: &str) -> Result<Currency, StorageError> {
            Currency::from_code(code).ok_or_else(|| decode_err(format!("currency {code}")))
        }

        /// The columns of a new payment bound by [`bind_new_payment`], as
        /// $1 to $22 ([`NEW_PAYMENT_VALUES`]); each statement numbers what it
        /// adds (the method and provider, the attempt) from $23.
        const NEW_PAYMENT_COLUMNS: &str = "tenant_id, id, customer_id, currency, amount, amount_refunded, status, \
             invoice_id, description, provider_payment_id, decline_code, failure_message, action_url, attempt_count, \
             metadata, idempotency_key, request_hash, created_at, updated_at, refund_reserved, return_url, \
             next_check_at";
        const NEW_PAYMENT_VALUES: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20, $21, $22";

        type DbQuery<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>;

        /// Binds a new payment's [`NEW_PAYMENT_COLUMNS`].
        fn bind_new_payment<'q>(
            q: DbQuery<'q>,
            tenant: &'q str,
            p: &'q Payment,
            next_check_at: DateTime<Utc>,
        ) -> Result<DbQuery<'q>, StorageError> {
            Ok(q.bind(tenant)
                .bind(&p.id)
                .bind(&p.customer_id)
                .bind(p.amount.currency().code())
                .bind(Dec(p.amount.amount()))
                .bind(Dec(p.amount_refunded.amount()))
                .bind(p.status.as_str())
                .bind(&p.invoice_id)
                .bind(&p.description)
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
                .bind(Dec(p.refund_reserved.amount()))
                .bind(&p.return_url)
                .bind(next_check_at))
        }

        /// A customer (`c`) and the method a charge would use (`m`, maybe
        /// absent), as [`context_row`] reads them.
        const CONTEXT_COLUMNS: &str = "c.*, m.id AS m_id, m.provider AS m_provider, \
             m.provider_payment_method_id AS m_ppm, m.name AS m_name, m.brand AS m_brand, m.last4 AS m_last4, \
             m.exp_month AS m_exp_month, m.exp_year AS m_exp_year, m.created_at AS m_created_at";

        fn context_row(r: &DbRow) -> Result<(Customer, Option<PaymentMethod>), StorageError> {
            let customer = customer_row(r)?;
            let method = match r.try_get::<Option<String>, _>("m_id")? {
                None => None,
                Some(id) => Some(PaymentMethod {
                    id,
                    customer_id: customer.id.clone(),
                    provider: r.try_get("m_provider")?,
                    provider_payment_method_id: r.try_get("m_ppm")?,
                    name: r.try_get("m_name")?,
                    brand: r.try_get("m_brand")?,
                    last4: r.try_get("m_last4")?,
                    exp_month: r.try_get::<i32, _>("m_exp_month")?.max(0) as u32,
                    exp_year: r.try_get::<i32, _>("m_exp_year")?.max(0) as u32,
                    created_at: r.try_get("m_created_at")?,
                    removed_at: None,
                }),
            };
            Ok((customer, method))
        }

        fn payment_row(r: &DbRow) -> Result<Payment, StorageError> {
            let currency = currency(&r.try_get::<String, _>("currency")?)?;
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
                refund_reserved: Money::new(r.try_get::<Dec, _>("refund_reserved")?.0, currency),
                return_url: r.try_get("return_url")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn attempt_row(r: &DbRow) -> Result<Attempt, StorageError> {
            Ok(Attempt {
                payment_id: r.try_get("payment_id")?,
                number: r.try_get::<i32, _>("number")?.max(0) as u32,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
                outcome: r.try_get("outcome")?,
                provider_payment_id: r.try_get("provider_payment_id")?,
                decline_code: r.try_get("decline_code")?,
                message: r.try_get("message")?,
            })
        }

        fn refund_row(r: &DbRow) -> Result<Refund, StorageError> {
            let currency = currency(&r.try_get::<String, _>("currency")?)?;
            Ok(Refund {
                id: r.try_get("id")?,
                payment_id: r.try_get("payment_id")?,
                amount: Money::new(r.try_get::<Dec, _>("amount")?.0, currency),
                reason: r.try_get("reason")?,
                status: r.try_get::<String, _>("status")?.parse().map_err(decode_err)?,
                provider_refund_id: r.try_get("provider_refund_id")?,
                failure_message: r.try_get("failure_message")?,
                idempotency_key: r.try_get("idempotency_key")?,
                request_hash: r.try_get("request_hash")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn event_row(r: &DbRow) -> Result<PaymentEvent, StorageError> {
            Ok(PaymentEvent {
                id: r.try_get("id")?,
                sequence: r.try_get::<Option<i64>, _>("sequence")?.unwrap_or(0),
                kind: r.try_get("type")?,
                payment: serde_json::from_str(&r.try_get::<String, _>("payment")?).map_err(decode_err)?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn sandbox_row(r: &DbRow) -> Result<SandboxCharge, StorageError> {
            Ok(SandboxCharge {
                idempotency_key: r.try_get("idempotency_key")?,
                provider_payment_id: r.try_get("provider_payment_id")?,
                provider_payment_method_id: r.try_get("provider_payment_method_id")?,
                amount_minor: r.try_get("amount_minor")?,
                currency: r.try_get("currency")?,
                status: r.try_get("status")?,
                decline_code: r.try_get("decline_code")?,
                message: r.try_get("message")?,
                refunded_minor: r.try_get("refunded_minor")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn snapshot(p: &Payment) -> Result<String, StorageError> {
            serde_json::to_string(p).map_err(decode_err)
        }

        async fn insert_event<'c, E>(exec: E, tenant: &str, e: &PaymentEvent) -> Result<(), StorageError>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            sqlx::query(
                "INSERT INTO payment_events (tenant_id, id, type, payment_id, payment, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(tenant)
            .bind(&e.id)
            .bind(&e.kind)
            .bind(&e.payment.id)
            .bind(snapshot(&e.payment)?)
            .bind(e.created_at)
            .execute(exec)
            .await?;
            Ok(())
        }

        async fn update_payment_money<'c, E>(exec: E, tenant: &str, p: &Payment) -> Result<(), StorageError>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            sqlx::query(
                "UPDATE payments SET status = $3, amount_refunded = $4, refund_reserved = $5, updated_at = $6 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(&p.id)
            .bind(p.status.as_str())
            .bind(Dec(p.amount_refunded.amount()))
            .bind(Dec(p.refund_reserved.amount()))
            .bind(p.updated_at)
            .execute(exec)
            .await?;
            Ok(())
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

            async fn get_customer_by_key(&self, tenant: &str, key: &str) -> Result<Option<Customer>, StorageError> {
                sqlx::query("SELECT * FROM gateway_customers WHERE tenant_id = $1 AND idempotency_key = $2")
                    .bind(tenant)
                    .bind(key)
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
                sqlx::query(
                    "UPDATE gateway_customers SET default_payment_method_id = $3 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(customer_id)
                .bind(pm_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn insert_payment_method(
                &self,
                tenant: &str,
                pm: &PaymentMethod,
            ) -> Result<PaymentMethod, StorageError> {
                let row = sqlx::query(
                    "INSERT INTO payment_methods (tenant_id, id, customer_id, provider, provider_payment_method_id, \
                     name, brand, last4, exp_month, exp_year, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (tenant_id, customer_id, provider_payment_method_id) \
                     DO UPDATE SET removed_at = NULL RETURNING *",
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

            async fn remove_payment_method(
                &self,
                tenant: &str,
                customer_id: &str,
                pm_id: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Customer>, StorageError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let removed = sqlx::query(
                    "UPDATE payment_methods SET removed_at = $4 WHERE tenant_id = $1 AND customer_id = $2 \
                     AND id = $3 AND removed_at IS NULL",
                )
                .bind(tenant)
                .bind(customer_id)
                .bind(pm_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if removed == 0 {
                    return Ok(None);
                }
                sqlx::query(
                    "UPDATE gateway_customers SET updated_at = $4, default_payment_method_id = \
                     (SELECT id FROM payment_methods WHERE tenant_id = $1 AND customer_id = $2 \
                      AND removed_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 1) \
                     WHERE tenant_id = $1 AND id = $2 AND default_payment_method_id = $3",
                )
                .bind(tenant)
                .bind(customer_id)
                .bind(pm_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query("SELECT * FROM gateway_customers WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(customer_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                customer_row(&row).map(Some)
            }

            async fn customer_with_methods(
                &self,
                tenant: &str,
                customer_id: &str,
            ) -> Result<Option<(Customer, Vec<PaymentMethod>)>, StorageError> {
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    format!(
                        "SELECT {CONTEXT_COLUMNS} FROM gateway_customers c LEFT JOIN payment_methods m \
                         ON m.tenant_id = c.tenant_id AND m.customer_id = c.id AND m.removed_at IS NULL \
                         WHERE c.tenant_id = $1 AND c.id = $2 ORDER BY m.created_at, m.id"
                    )
                });
                let rows = sqlx::query(SQL.as_str()).bind(tenant).bind(customer_id).fetch_all(&self.pool).await?;
                let mut found: Option<(Customer, Vec<PaymentMethod>)> = None;
                for row in &rows {
                    let (customer, method) = context_row(row)?;
                    let (_, methods) = found.get_or_insert_with(|| (customer, Vec::new()));
                    methods.extend(method);
                }
                Ok(found)
            }

            async fn charge_context(
                &self,
                tenant: &str,
                customer_id: &str,
                pm_id: Option<&str>,
            ) -> Result<Option<(Customer, Option<PaymentMethod>)>, StorageError> {
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    format!(
                        "SELECT {CONTEXT_COLUMNS} FROM gateway_customers c LEFT JOIN payment_methods m \
                         ON m.tenant_id = c.tenant_id AND m.customer_id = c.id AND m.removed_at IS NULL \
                         AND m.id = COALESCE($3, c.default_payment_method_id) \
                         WHERE c.tenant_id = $1 AND c.id = $2"
                    )
                });
                let row = sqlx::query(SQL.as_str())
                .bind(tenant)
                .bind(customer_id)
                .bind(pm_id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(context_row).transpose()
            }

            async fn start_charge(
                &self,
                tenant: &str,
                p: &Payment,
                pm_id: Option<&str>,
                started: &Attempt,
                next_check_at: DateTime<Utc>,
                providers: &[&str],
            ) -> Result<ChargeStart, StorageError> {
                let Some((customer, method, inserted)) =
                    self.start_charge_rows(tenant, p, pm_id, started, next_check_at, providers).await?
                else {
                    return Ok(ChargeStart::NoContext);
                };
                if inserted {
                    return Ok(ChargeStart::Started(customer, method));
                }
                self.get_payment_by_key(tenant, &p.idempotency_key)
                    .await?
                    .ok_or_else(|| StorageError::Other("idempotency key conflict without a payment".into()))
                    .map(ChargeStart::Existing)
            }

            async fn begin_payment(
                &self,
                tenant: &str,
                p: &Payment,
                started: &Attempt,
                next_check_at: DateTime<Utc>,
            ) -> Result<Option<Payment>, StorageError> {
                if self.begin_payment_rows(tenant, p, started, next_check_at).await? {
                    return Ok(None);
                }
                self.get_payment_by_key(tenant, &p.idempotency_key)
                    .await?
                    .ok_or_else(|| StorageError::Other("idempotency key conflict without a payment".into()))
                    .map(Some)
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

            async fn get_payment_by_provider_id(
                &self,
                tenant: &str,
                provider_payment_id: &str,
            ) -> Result<Option<Payment>, StorageError> {
                sqlx::query(
                    "SELECT * FROM payments WHERE tenant_id = $1 AND provider_payment_id = $2 \
                     AND provider_payment_id <> '' ORDER BY created_at LIMIT 1",
                )
                .bind(tenant)
                .bind(provider_payment_id)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(payment_row)
                .transpose()
            }

            async fn transition(
                &self,
                tenant: &str,
                p: &Payment,
                from: &[PaymentStatus],
                attempt: Option<&Attempt>,
                event: &PaymentEvent,
                next_check_at: Option<DateTime<Utc>>,
            ) -> Result<bool, StorageError> {
                self.transition_rows(tenant, p, from, attempt, event, next_check_at).await
            }

            async fn record_attempt(
                &self,
                tenant: &str,
                a: &Attempt,
                next_check_at: Option<DateTime<Utc>>,
            ) -> Result<(), StorageError> {
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query(
                    "UPDATE payment_attempts SET finished_at = $4, outcome = $5, provider_payment_id = $6, \
                     decline_code = $7, message = $8 WHERE tenant_id = $1 AND payment_id = $2 AND number = $3",
                )
                .bind(tenant)
                .bind(&a.payment_id)
                .bind(a.number as i32)
                .bind(a.finished_at)
                .bind(&a.outcome)
                .bind(&a.provider_payment_id)
                .bind(&a.decline_code)
                .bind(&a.message)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE payments SET next_check_at = $3, provider_payment_id = CASE WHEN $4 = '' \
                     THEN provider_payment_id ELSE $4 END WHERE tenant_id = $1 AND id = $2 AND status = 'processing'",
                )
                .bind(tenant)
                .bind(&a.payment_id)
                .bind(next_check_at)
                .bind(&a.provider_payment_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn start_attempt(&self, tenant: &str, a: &Attempt) -> Result<(), StorageError> {
                let mut tx = self.pool.begin_with($begin).await?;
                // Attempts that never reported back (a crash mid-call) end
                // here: their outcome is unknown.
                sqlx::query(
                    "UPDATE payment_attempts SET outcome = 'unknown', finished_at = $3, \
                     message = 'no answer recorded (the process stopped mid-call)' \
                     WHERE tenant_id = $1 AND payment_id = $2 AND outcome = 'pending'",
                )
                .bind(tenant)
                .bind(&a.payment_id)
                .bind(a.started_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO payment_attempts (tenant_id, payment_id, number, started_at, outcome) \
                     VALUES ($1, $2, $3, $4, 'pending')",
                )
                .bind(tenant)
                .bind(&a.payment_id)
                .bind(a.number as i32)
                .bind(a.started_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE payments SET attempt_count = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(&a.payment_id)
                    .bind(a.number as i32)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_attempts(&self, tenant: &str, payment_id: &str) -> Result<Vec<Attempt>, StorageError> {
                sqlx::query("SELECT * FROM payment_attempts WHERE tenant_id = $1 AND payment_id = $2 ORDER BY number")
                    .bind(tenant)
                    .bind(payment_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(attempt_row)
                    .collect()
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
                    qb.push(" AND (created_at, id) > (")
                        .push_bind(c.as_time())
                        .push(", ")
                        .push_bind(c.id.as_str())
                        .push(")");
                }
                qb.push(" ORDER BY created_at, id LIMIT ").push_bind(limit);
                qb.build().fetch_all(&self.pool).await?.iter().map(payment_row).collect()
            }

            async fn claim_due_payments(
                &self,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<(String, Payment)>, StorageError> {
                let sql = concat!(
                    "UPDATE payments SET next_check_at = $2 WHERE (tenant_id, id) IN (SELECT tenant_id, id \
                     FROM payments WHERE next_check_at IS NOT NULL AND next_check_at <= $1 \
                     ORDER BY next_check_at LIMIT $3",
                    $skip_locked,
                    ") RETURNING *"
                );
                let rows = sqlx::query(sql).bind(now).bind(lease_until).bind(limit).fetch_all(&self.pool).await?;
                rows.iter().map(|r| Ok((r.try_get("tenant_id")?, payment_row(r)?))).collect()
            }

            async fn claim_due_refunds(
                &self,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<(String, Refund)>, StorageError> {
                let sql = concat!(
                    "UPDATE refunds SET next_check_at = $2 WHERE (tenant_id, id) IN (SELECT tenant_id, id \
                     FROM refunds WHERE next_check_at IS NOT NULL AND next_check_at <= $1 \
                     ORDER BY next_check_at LIMIT $3",
                    $skip_locked,
                    ") RETURNING *"
                );
                let rows = sqlx::query(sql).bind(now).bind(lease_until).bind(limit).fetch_all(&self.pool).await?;
                rows.iter().map(|r| Ok((r.try_get("tenant_id")?, refund_row(r)?))).collect()
            }

            async fn reserve_refund(
                &self,
                tenant: &str,
                refund: &Refund,
                amount: Option<Money>,
                next_check_at: DateTime<Utc>,
            ) -> Result<Reservation, StorageError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let row = sqlx::query(concat!("SELECT * FROM payments WHERE tenant_id = $1 AND id = $2", $lock))
                    .bind(tenant)
                    .bind(&refund.payment_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else { return Ok(Reservation::NoPayment) };
                let mut payment = payment_row(&row)?;
                let existing = sqlx::query("SELECT * FROM refunds WHERE tenant_id = $1 AND idempotency_key = $2")
                    .bind(tenant)
                    .bind(&refund.idempotency_key)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(r) = existing {
                    return Ok(Reservation::Existing(refund_row(&r)?));
                }
                if !matches!(payment.status, PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded) {
                    return Ok(Reservation::NotRefundable(payment.status));
                }
                if let Some(a) = amount
                    && a.currency() != payment.amount.currency()
                {
                    return Ok(Reservation::CurrencyMismatch(payment.amount.currency()));
                }
                let refundable = payment.refundable();
                let amount = amount.unwrap_or(refundable);
                if amount.is_zero() || amount.amount() > refundable.amount() {
                    return Ok(Reservation::Exceeds { refundable });
                }
                let mut saved = refund.clone();
                saved.amount = amount;
                let inserted = sqlx::query(
                    "INSERT INTO refunds (tenant_id, id, payment_id, currency, amount, reason, status, \
                     idempotency_key, request_hash, next_check_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(tenant)
                .bind(&saved.id)
                .bind(&saved.payment_id)
                .bind(amount.currency().code())
                .bind(Dec(amount.amount()))
                .bind(&saved.reason)
                .bind(saved.status.as_str())
                .bind(&saved.idempotency_key)
                .bind(&saved.request_hash)
                .bind(next_check_at)
                .bind(saved.created_at)
                .bind(saved.updated_at)
                .execute(&mut *tx)
                .await;
                if let Err(e) = inserted {
                    let e = StorageError::from(e);
                    drop(tx);
                    // The same key, racing on another payment: theirs stands.
                    if e.is_unique()
                        && let Some(r) = self.get_refund_by_key(tenant, &refund.idempotency_key).await?
                    {
                        return Ok(Reservation::Existing(r));
                    }
                    return Err(e);
                }
                payment.refund_reserved = Money::new(
                    payment.refund_reserved.amount() + amount.amount(),
                    payment.amount.currency(),
                );
                payment.updated_at = saved.updated_at;
                update_payment_money(&mut *tx, tenant, &payment).await?;
                tx.commit().await?;
                Ok(Reservation::Reserved { refund: saved, payment: Box::new(payment) })
            }

            async fn finish_refund(
                &self,
                tenant: &str,
                refund_id: &str,
                result: &RefundResult,
                now: DateTime<Utc>,
            ) -> Result<Option<(Refund, Payment)>, StorageError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let Some(row) = sqlx::query("SELECT * FROM refunds WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(refund_id)
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    return Ok(None);
                };
                let mut refund = refund_row(&row)?;
                let prow = sqlx::query(concat!("SELECT * FROM payments WHERE tenant_id = $1 AND id = $2", $lock))
                    .bind(tenant)
                    .bind(&refund.payment_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let mut payment = payment_row(&prow)?;
                // Read again under the payment's lock, which every finisher
                // takes first: a refund finished meanwhile (the webhook and
                // the caller racing) is not counted twice.
                let row = sqlx::query("SELECT * FROM refunds WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(refund_id)
                    .fetch_one(&mut *tx)
                    .await?;
                refund = refund_row(&row)?;
                if refund.status != RefundStatus::Pending {
                    tx.commit().await?;
                    return Ok(Some((refund, payment)));
                }
                let cur = payment.amount.currency();
                refund.status = result.status;
                if !result.provider_refund_id.is_empty() {
                    refund.provider_refund_id = result.provider_refund_id.clone();
                }
                refund.failure_message = result.failure_message.clone();
                refund.updated_at = now;
                let next_check = if result.status == RefundStatus::Pending { result.next_check_at } else { None };
                sqlx::query(
                    "UPDATE refunds SET status = $3, provider_refund_id = $4, failure_message = $5, \
                     next_check_at = $6, updated_at = $7 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(&refund.id)
                .bind(refund.status.as_str())
                .bind(&refund.provider_refund_id)
                .bind(&refund.failure_message)
                .bind(next_check)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if result.status != RefundStatus::Pending {
                    let amount = refund.amount.amount();
                    payment.refund_reserved = Money::new(payment.refund_reserved.amount() - amount, cur);
                    if result.status == RefundStatus::Succeeded {
                        payment.amount_refunded = Money::new(payment.amount_refunded.amount() + amount, cur);
                        payment.status = if payment.amount_refunded.amount() >= payment.amount.amount() {
                            PaymentStatus::Refunded
                        } else {
                            PaymentStatus::PartiallyRefunded
                        };
                    }
                    payment.updated_at = now;
                    update_payment_money(&mut *tx, tenant, &payment).await?;
                    if result.status == RefundStatus::Succeeded
                        && let Some(event) = PaymentEvent::for_status(&payment, now)
                    {
                        insert_event(&mut *tx, tenant, &event).await?;
                    }
                }
                tx.commit().await?;
                Ok(Some((refund, payment)))
            }

            async fn get_refund(&self, tenant: &str, id: &str) -> Result<Option<Refund>, StorageError> {
                sqlx::query("SELECT * FROM refunds WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(refund_row)
                    .transpose()
            }

            async fn get_refund_by_key(&self, tenant: &str, key: &str) -> Result<Option<Refund>, StorageError> {
                sqlx::query("SELECT * FROM refunds WHERE tenant_id = $1 AND idempotency_key = $2")
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(refund_row)
                    .transpose()
            }

            async fn get_refund_by_provider_id(&self, tenant: &str, id: &str) -> Result<Option<Refund>, StorageError> {
                sqlx::query(
                    "SELECT * FROM refunds WHERE tenant_id = $1 AND provider_refund_id = $2 \
                     AND provider_refund_id <> ''",
                )
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(refund_row)
                .transpose()
            }

            async fn list_refunds(&self, tenant: &str, payment_id: &str) -> Result<Vec<Refund>, StorageError> {
                sqlx::query("SELECT * FROM refunds WHERE tenant_id = $1 AND payment_id = $2 ORDER BY created_at, id")
                    .bind(tenant)
                    .bind(payment_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(refund_row)
                    .collect()
            }

            async fn list_events(
                &self,
                tenant: &str,
                after_sequence: i64,
                limit: i64,
            ) -> Result<Vec<PaymentEvent>, StorageError> {
                // Number what has committed since, after everything numbered
                // before: a reader never skips an event.
                super::OUTBOX.sequence(&recur_storage::Pool::from(self.pool.clone()), tenant).await?;
                sqlx::query(
                    "SELECT * FROM payment_events WHERE tenant_id = $1 AND sequence > $2 \
                     ORDER BY sequence LIMIT $3",
                )
                .bind(tenant)
                .bind(after_sequence)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(event_row)
                .collect()
            }

            async fn record_webhook(
                &self,
                tenant: &str,
                provider: &str,
                event_id: &str,
                kind: &str,
                payment_id: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<String>, StorageError> {
                let inserted = sqlx::query(
                    "INSERT INTO provider_webhook_events (tenant_id, provider, event_id, type, payment_id, \
                     received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(tenant)
                .bind(provider)
                .bind(event_id)
                .bind(kind)
                .bind(payment_id)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(None);
                }
                let seen: String = sqlx::query_scalar(
                    "SELECT payment_id FROM provider_webhook_events WHERE tenant_id = $1 AND provider = $2 \
                     AND event_id = $3",
                )
                .bind(tenant)
                .bind(provider)
                .bind(event_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(Some(seen))
            }
        }

        fn sandbox_err(e: impl std::fmt::Display) -> String {
            e.to_string()
        }

        #[async_trait]
        impl SandboxStore for $repo {
            async fn record_charge(&self, c: &SandboxCharge) -> Result<SandboxCharge, String> {
                let inserted = sqlx::query(
                    "INSERT INTO sandbox_charges (idempotency_key, provider_payment_id, provider_payment_method_id, \
                     amount_minor, currency, status, decline_code, message, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                )
                .bind(&c.idempotency_key)
                .bind(&c.provider_payment_id)
                .bind(&c.provider_payment_method_id)
                .bind(c.amount_minor)
                .bind(&c.currency)
                .bind(&c.status)
                .bind(&c.decline_code)
                .bind(&c.message)
                .bind(c.created_at)
                .execute(&self.pool)
                .await
                .map_err(sandbox_err)?
                .rows_affected();
                if inserted == 1 {
                    return Ok(c.clone());
                }
                let row = sqlx::query("SELECT * FROM sandbox_charges WHERE idempotency_key = $1")
                    .bind(&c.idempotency_key)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(sandbox_err)?;
                sandbox_row(&row).map_err(sandbox_err)
            }

            async fn get_charge(&self, provider_payment_id: &str) -> Result<Option<SandboxCharge>, String> {
                sqlx::query("SELECT * FROM sandbox_charges WHERE provider_payment_id = $1")
                    .bind(provider_payment_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(sandbox_err)?
                    .as_ref()
                    .map(sandbox_row)
                    .transpose()
                    .map_err(sandbox_err)
            }

            async fn complete_charge(
                &self,
                provider_payment_id: &str,
                status: &str,
                decline_code: &str,
                message: &str,
            ) -> Result<Option<SandboxCharge>, String> {
                sqlx::query(
                    "UPDATE sandbox_charges SET status = $2, decline_code = $3, message = $4 \
                     WHERE provider_payment_id = $1 AND status = 'requires_action'",
                )
                .bind(provider_payment_id)
                .bind(status)
                .bind(decline_code)
                .bind(message)
                .execute(&self.pool)
                .await
                .map_err(sandbox_err)?;
                self.get_charge(provider_payment_id).await
            }

            async fn refund(
                &self,
                idempotency_key: &str,
                provider_payment_id: &str,
                amount_minor: i64,
                now: DateTime<Utc>,
            ) -> Result<SandboxRefund, String> {
                let mut tx = self.pool.begin_with($begin).await.map_err(sandbox_err)?;
                let done: Option<String> =
                    sqlx::query_scalar("SELECT provider_refund_id FROM sandbox_refunds WHERE idempotency_key = $1")
                        .bind(idempotency_key)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(sandbox_err)?;
                if let Some(provider_refund_id) = done {
                    return Ok(SandboxRefund::Refunded { provider_refund_id });
                }
                let row =
                    sqlx::query(concat!("SELECT * FROM sandbox_charges WHERE provider_payment_id = $1", $lock))
                        .bind(provider_payment_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(sandbox_err)?;
                let Some(row) = row else { return Ok(SandboxRefund::UnknownCharge) };
                let charge = sandbox_row(&row).map_err(sandbox_err)?;
                if charge.status != "succeeded" {
                    return Ok(SandboxRefund::NotRefundable);
                }
                let left = charge.amount_minor - charge.refunded_minor;
                if amount_minor > left {
                    return Ok(SandboxRefund::TooLarge { refundable_minor: left });
                }
                let provider_refund_id = recur_id::new_id(recur_id::Kind::Refund).replacen("rfnd_", "re_", 1);
                sqlx::query(
                    "INSERT INTO sandbox_refunds (idempotency_key, provider_refund_id, provider_payment_id, \
                     amount_minor, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(idempotency_key)
                .bind(&provider_refund_id)
                .bind(provider_payment_id)
                .bind(amount_minor)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(sandbox_err)?;
                sqlx::query(
                    "UPDATE sandbox_charges SET refunded_minor = refunded_minor + $2 WHERE provider_payment_id = $1",
                )
                .bind(provider_payment_id)
                .bind(amount_minor)
                .execute(&mut *tx)
                .await
                .map_err(sandbox_err)?;
                tx.commit().await.map_err(sandbox_err)?;
                Ok(SandboxRefund::Refunded { provider_refund_id })
            }
        }
    };
}

pub(crate) use sql_repo;
