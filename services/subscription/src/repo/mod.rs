//! The subscription service's storage: one trait, a Postgres and a SQLite
//! implementation generated from one body. Creates that carry an
//! idempotency key are unique per tenant and key, so a retried request finds
//! what the first one made instead of making it again.

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use recur_storage::{Migration, Migrations, Pool, StorageError};

use crate::domain::{Account, BillGroup, Contact, Event, Invoice, Stored, Subscription, SubscriptionState};

pub use postgres::PgRepo;
pub use sqlite::SqliteRepo;

/// Idempotency key and request fingerprint of a create.
#[derive(Clone, Copy, Debug)]
pub struct Idem<'a> {
    pub key: Option<&'a str>,
    pub hash: &'a str,
}

#[async_trait]
pub trait SubscriptionRepo: Send + Sync + 'static {
    async fn insert_account(
        &self,
        tenant: &str,
        account: &Account,
        contacts: &[Contact],
        idem: Idem<'_>,
        event: &Event,
    ) -> Result<Stored<(Account, Vec<Contact>)>, StorageError>;
    async fn get_account(&self, tenant: &str, id: &str) -> Result<Option<(Account, Vec<Contact>)>, StorageError>;
    async fn find_account(
        &self,
        tenant: &str,
        custom_id: Option<&str>,
        email: Option<&str>,
    ) -> Result<Option<String>, StorageError>;
    async fn list_accounts(
        &self,
        tenant: &str,
        after: Option<&recur_storage::page::Cursor>,
        limit: i64,
    ) -> Result<Vec<(Account, Vec<Contact>)>, StorageError>;

    async fn insert_bill_group(
        &self,
        tenant: &str,
        bg: &BillGroup,
        idem: Idem<'_>,
        event: &Event,
    ) -> Result<Stored<BillGroup>, StorageError>;
    async fn get_bill_group(&self, tenant: &str, id: &str) -> Result<Option<BillGroup>, StorageError>;

    /// Stores a new subscription with its first invoice (if any) and events,
    /// in one transaction.
    async fn insert_subscription(
        &self,
        tenant: &str,
        sub: &Subscription,
        invoice: Option<&Invoice>,
        idem: Idem<'_>,
        events: &[Event],
    ) -> Result<Stored<Subscription>, StorageError>;
    async fn get_subscription(&self, tenant: &str, id: &str) -> Result<Option<Subscription>, StorageError>;
    async fn set_subscription_state(
        &self,
        tenant: &str,
        id: &str,
        state: SubscriptionState,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<(), StorageError>;

    async fn get_invoice(&self, tenant: &str, id: &str) -> Result<Option<Invoice>, StorageError>;
    async fn invoices_of_subscription(&self, tenant: &str, subscription_id: &str)
    -> Result<Vec<Invoice>, StorageError>;
    /// Records a payment against an invoice (and marks it paid when it is),
    /// with its events, in one transaction.
    async fn record_payment(&self, tenant: &str, invoice: &Invoice, events: &[Event]) -> Result<(), StorageError>;

    async fn list_events(&self, tenant: &str, after_seq: i64, limit: i64) -> Result<Vec<Event>, StorageError>;
}

pub const MIGRATIONS: Migrations = Migrations {
    table: "subscription_migrations",
    postgres: &[Migration { version: 1, name: "init", sql: include_str!("../../migrations/postgres/0001_init.sql") }],
    sqlite: &[Migration { version: 1, name: "init", sql: include_str!("../../migrations/sqlite/0001_init.sql") }],
};

pub async fn open(url: &str, max_connections: u32) -> Result<Arc<dyn SubscriptionRepo>, StorageError> {
    let pool = recur_storage::connect(url, "subscription", max_connections).await?;
    recur_storage::migrate(&pool, &MIGRATIONS).await?;
    Ok(from_pool(pool))
}

pub fn from_pool(pool: Pool) -> Arc<dyn SubscriptionRepo> {
    match pool {
        Pool::Postgres(p) => Arc::new(PgRepo { pool: p }),
        Pool::Sqlite(p) => Arc::new(SqliteRepo { pool: p }),
    }
}

fn decode_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("subscription row: {e}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StorageError> {
    serde_json::to_string(v).map_err(decode_err)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StorageError> {
    serde_json::from_str(s).map_err(decode_err)
}

macro_rules! sql_repo {
    ($repo:ident, $db:ty) => {
        use std::str::FromStr;

        use async_trait::async_trait;
        use chrono::{DateTime, NaiveDate, Utc};
        use recur_money::Currency;
        use recur_storage::{Dec, StorageError};
        use sqlx::{QueryBuilder, Row};

        use super::{decode_err, from_json, to_json, Idem, SubscriptionRepo};
        use crate::domain::*;

        pub struct $repo {
            pub pool: sqlx::Pool<$db>,
        }

        type DbRow = <$db as sqlx::Database>::Row;
        type Tx<'c> = sqlx::Transaction<'c, $db>;

        fn parse<T: FromStr<Err = String>>(s: &str) -> Result<T, StorageError> {
            s.parse().map_err(decode_err)
        }

        fn currency(code: &str) -> Result<Currency, StorageError> {
            Currency::from_code(code).ok_or_else(|| decode_err(format!("currency {code}")))
        }

        fn dec(r: &DbRow, col: &str) -> Result<rust_decimal::Decimal, StorageError> {
            Ok(r.try_get::<Dec, _>(col)?.0)
        }

        fn account_row(r: &DbRow) -> Result<Account, StorageError> {
            Ok(Account {
                id: r.try_get("id")?,
                custom_id: r.try_get("custom_id")?,
                account_name: r.try_get("account_name")?,
                currency: r.try_get("currency")?,
                time_zone: r.try_get("time_zone")?,
                billing_address: from_json(&r.try_get::<String, _>("billing_address")?)?,
                tags: from_json(&r.try_get::<String, _>("tags")?)?,
                notes: r.try_get("notes")?,
                metadata: from_json(&r.try_get::<String, _>("metadata")?)?,
                tax_exempt: r.try_get("tax_exempt")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn contact_row(r: &DbRow) -> Result<Contact, StorageError> {
            Ok(Contact {
                id: r.try_get("id")?,
                account_id: r.try_get("account_id")?,
                name: r.try_get("name")?,
                first_name: r.try_get("first_name")?,
                last_name: r.try_get("last_name")?,
                title: r.try_get("title")?,
                email: r.try_get("email")?,
                phone: r.try_get("phone")?,
                address: from_json(&r.try_get::<String, _>("address")?)?,
                primary: r.try_get("is_primary")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn bill_group_row(r: &DbRow) -> Result<BillGroup, StorageError> {
            Ok(BillGroup {
                id: r.try_get("id")?,
                account_id: r.try_get("account_id")?,
                name: r.try_get("name")?,
                auto_email_invoice: r.try_get("auto_email_invoice")?,
                collect_automatically: r.try_get("collect_invoice_balance_automatically")?,
                payment_method_id: r.try_get("payment_method_id")?,
                gateway_customer_id: r.try_get("gateway_customer_id")?,
                billing_day: r.try_get::<i32, _>("billing_day")?.max(0) as u32,
                collection_method: parse(&r.try_get::<String, _>("collection_method")?)?,
                currency: r.try_get("currency")?,
                contact_id: r.try_get("contact_id")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn subscription_row(r: &DbRow) -> Result<Subscription, StorageError> {
            let start: String = r.try_get("start_date")?;
            Ok(Subscription {
                id: r.try_get("id")?,
                custom_id: r.try_get("custom_id")?,
                account_id: r.try_get("account_id")?,
                bill_group_id: r.try_get("bill_group_id")?,
                offering_id: r.try_get("offering_id")?,
                rate_id: r.try_get("rate_id")?,
                state: parse(&r.try_get::<String, _>("state")?)?,
                items: from_json(&r.try_get::<String, _>("items")?)?,
                coupon_codes: from_json(&r.try_get::<String, _>("coupon_codes")?)?,
                currency: currency(&r.try_get::<String, _>("currency")?)?,
                recurring_amount: dec(r, "recurring_amount")?,
                start_date: NaiveDate::parse_from_str(&start, "%Y-%m-%d").map_err(decode_err)?,
                metadata: from_json(&r.try_get::<String, _>("metadata")?)?,
                cancel_at_period_end: r.try_get("cancel_at_period_end")?,
                current_period_start: r.try_get("current_period_start")?,
                current_period_end: r.try_get("current_period_end")?,
                trial_start: r.try_get("trial_start")?,
                trial_end: r.try_get("trial_end")?,
                next_billing_at: r.try_get("next_billing_at")?,
                activated_at: r.try_get("activated_at")?,
                canceled_at: r.try_get("canceled_at")?,
                expires_at: r.try_get("expires_at")?,
                quote_id: r.try_get("quote_id")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn invoice_row(r: &DbRow) -> Result<Invoice, StorageError> {
            Ok(Invoice {
                id: r.try_get("id")?,
                number: r.try_get("number")?,
                account_id: r.try_get("account_id")?,
                bill_group_id: r.try_get("bill_group_id")?,
                subscription_id: r.try_get("subscription_id")?,
                status: parse(&r.try_get::<String, _>("status")?)?,
                currency: currency(&r.try_get::<String, _>("currency")?)?,
                lines: Vec::new(),
                amount_without_tax: dec(r, "amount_without_tax")?,
                discount: dec(r, "discount")?,
                tax: dec(r, "tax")?,
                amount: dec(r, "amount")?,
                amount_paid: dec(r, "amount_paid")?,
                period_start: r.try_get("period_start")?,
                period_end: r.try_get("period_end")?,
                issued_at: r.try_get("issued_at")?,
                due_at: r.try_get("due_at")?,
                paid_at: r.try_get("paid_at")?,
                payment_ids: from_json(&r.try_get::<String, _>("payment_ids")?)?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn line_row(r: &DbRow) -> Result<InvoiceLine, StorageError> {
            Ok(InvoiceLine {
                id: r.try_get("id")?,
                kind: parse(&r.try_get::<String, _>("kind")?)?,
                description: r.try_get("description")?,
                subscription_id: r.try_get("subscription_id")?,
                offering_id: r.try_get("offering_id")?,
                rate_id: r.try_get("rate_id")?,
                product_id: r.try_get("product_id")?,
                period_start: r.try_get("period_start")?,
                period_end: r.try_get("period_end")?,
                quantity: dec(r, "quantity")?,
                unit_amount: r.try_get("unit_amount")?,
                proration_fraction: r.try_get("proration_fraction")?,
                tiers: from_json(&r.try_get::<String, _>("tiers")?)?,
                amount_without_tax: dec(r, "amount_without_tax")?,
                discount: dec(r, "discount")?,
                tax: dec(r, "tax")?,
                tax_rate: r.try_get("tax_rate")?,
                amount: dec(r, "amount")?,
            })
        }

        fn event_row(r: &DbRow) -> Result<Event, StorageError> {
            Ok(Event {
                id: r.try_get("id")?,
                seq: r.try_get("seq")?,
                event_type: r.try_get("type")?,
                resource_id: r.try_get("resource_id")?,
                data_json: r.try_get("data_json")?,
                created_at: r.try_get("created_at")?,
            })
        }

        async fn insert_events(tx: &mut Tx<'_>, tenant: &str, events: &[Event]) -> Result<(), StorageError> {
            for e in events {
                sqlx::query(
                    "INSERT INTO events (tenant_id, id, type, resource_id, data_json, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(tenant)
                .bind(&e.id)
                .bind(&e.event_type)
                .bind(&e.resource_id)
                .bind(&e.data_json)
                .bind(e.created_at)
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        }

        async fn insert_invoice(tx: &mut Tx<'_>, tenant: &str, inv: &Invoice) -> Result<(), StorageError> {
            sqlx::query(
                "INSERT INTO invoices (tenant_id, id, number, account_id, bill_group_id, subscription_id, status, \
                 currency, amount_without_tax, discount, tax, amount, amount_paid, period_start, period_end, \
                 issued_at, due_at, paid_at, payment_ids, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, \
                 $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
            )
            .bind(tenant)
            .bind(&inv.id)
            .bind(&inv.number)
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
                sqlx::query(
                    "INSERT INTO invoice_lines (tenant_id, id, invoice_id, position, kind, description, \
                     subscription_id, offering_id, rate_id, product_id, period_start, period_end, quantity, \
                     unit_amount, proration_fraction, tiers, amount_without_tax, discount, tax, tax_rate, amount) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                     $20, $21)",
                )
                .bind(tenant)
                .bind(&l.id)
                .bind(&inv.id)
                .bind(position as i32)
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
            }
            Ok(())
        }

        impl $repo {
            async fn contacts_of(&self, tenant: &str, account_ids: &[&str]) -> Result<Vec<Contact>, StorageError> {
                if account_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM contacts WHERE tenant_id = ");
                qb.push_bind(tenant).push(" AND account_id IN (");
                let mut sep = qb.separated(", ");
                for id in account_ids {
                    sep.push_bind(*id);
                }
                qb.push(") ORDER BY created_at, id");
                qb.build().fetch_all(&self.pool).await?.iter().map(contact_row).collect()
            }

            async fn with_lines(&self, tenant: &str, mut inv: Invoice) -> Result<Invoice, StorageError> {
                inv.lines = sqlx::query("SELECT * FROM invoice_lines WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY position")
                    .bind(tenant)
                    .bind(&inv.id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(line_row)
                    .collect::<Result<_, _>>()?;
                Ok(inv)
            }
        }

        #[async_trait]
        impl SubscriptionRepo for $repo {
            async fn insert_account(
                &self,
                tenant: &str,
                a: &Account,
                contacts: &[Contact],
                idem: Idem<'_>,
                event: &Event,
            ) -> Result<Stored<(Account, Vec<Contact>)>, StorageError> {
                if let Some(key) = idem.key {
                    let existing = sqlx::query("SELECT * FROM accounts WHERE tenant_id = $1 AND idempotency_key = $2")
                        .bind(tenant)
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                    if let Some(row) = existing {
                        let account = account_row(&row)?;
                        let contacts = self.contacts_of(tenant, &[account.id.as_str()]).await?;
                        return Ok(Stored { value: (account, contacts), request_hash: row.try_get("request_hash")?, created: false });
                    }
                }
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO accounts (tenant_id, id, custom_id, account_name, currency, time_zone, \
                     billing_address, tags, notes, metadata, tax_exempt, idempotency_key, request_hash, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(tenant)
                .bind(&a.id)
                .bind(&a.custom_id)
                .bind(&a.account_name)
                .bind(&a.currency)
                .bind(&a.time_zone)
                .bind(to_json(&a.billing_address)?)
                .bind(to_json(&a.tags)?)
                .bind(&a.notes)
                .bind(to_json(&a.metadata)?)
                .bind(a.tax_exempt)
                .bind(idem.key)
                .bind(idem.hash)
                .bind(a.created_at)
                .bind(a.updated_at)
                .execute(&mut *tx)
                .await?;
                for c in contacts {
                    sqlx::query(
                        "INSERT INTO contacts (tenant_id, id, account_id, name, first_name, last_name, title, email, \
                         phone, address, is_primary, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    )
                    .bind(tenant)
                    .bind(&c.id)
                    .bind(&a.id)
                    .bind(&c.name)
                    .bind(&c.first_name)
                    .bind(&c.last_name)
                    .bind(&c.title)
                    .bind(&c.email)
                    .bind(&c.phone)
                    .bind(to_json(&c.address)?)
                    .bind(c.primary)
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .execute(&mut *tx)
                    .await?;
                }
                insert_events(&mut tx, tenant, std::slice::from_ref(event)).await?;
                tx.commit().await?;
                Ok(Stored { value: (a.clone(), contacts.to_vec()), request_hash: idem.hash.to_string(), created: true })
            }

            async fn get_account(&self, tenant: &str, id: &str) -> Result<Option<(Account, Vec<Contact>)>, StorageError> {
                let row = sqlx::query("SELECT * FROM accounts WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let account = account_row(&row)?;
                let contacts = self.contacts_of(tenant, &[account.id.as_str()]).await?;
                Ok(Some((account, contacts)))
            }

            async fn find_account(
                &self,
                tenant: &str,
                custom_id: Option<&str>,
                email: Option<&str>,
            ) -> Result<Option<String>, StorageError> {
                let row = match (custom_id, email) {
                    (Some(c), _) => {
                        sqlx::query("SELECT id FROM accounts WHERE tenant_id = $1 AND custom_id = $2")
                            .bind(tenant)
                            .bind(c)
                            .fetch_optional(&self.pool)
                            .await?
                    }
                    (None, Some(e)) => {
                        sqlx::query(
                            "SELECT account_id AS id FROM contacts WHERE tenant_id = $1 AND lower(email) = lower($2) \
                             ORDER BY created_at LIMIT 1",
                        )
                        .bind(tenant)
                        .bind(e)
                        .fetch_optional(&self.pool)
                        .await?
                    }
                    (None, None) => None,
                };
                row.map(|r| r.try_get::<String, _>("id")).transpose().map_err(StorageError::from)
            }

            async fn list_accounts(
                &self,
                tenant: &str,
                after: Option<&recur_storage::page::Cursor>,
                limit: i64,
            ) -> Result<Vec<(Account, Vec<Contact>)>, StorageError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM accounts WHERE tenant_id = ");
                qb.push_bind(tenant);
                if let Some(c) = after {
                    qb.push(" AND (created_at, id) > (").push_bind(c.as_time()).push(", ").push_bind(c.id.as_str()).push(")");
                }
                qb.push(" ORDER BY created_at, id LIMIT ").push_bind(limit);
                let accounts: Vec<Account> =
                    qb.build().fetch_all(&self.pool).await?.iter().map(account_row).collect::<Result<_, _>>()?;
                let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
                let contacts = self.contacts_of(tenant, &ids).await?;
                Ok(accounts
                    .into_iter()
                    .map(|a| {
                        let mine = contacts.iter().filter(|c| c.account_id == a.id).cloned().collect();
                        (a, mine)
                    })
                    .collect())
            }

            async fn insert_bill_group(
                &self,
                tenant: &str,
                bg: &BillGroup,
                idem: Idem<'_>,
                event: &Event,
            ) -> Result<Stored<BillGroup>, StorageError> {
                if let Some(key) = idem.key {
                    let existing = sqlx::query("SELECT * FROM bill_groups WHERE tenant_id = $1 AND idempotency_key = $2")
                        .bind(tenant)
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                    if let Some(row) = existing {
                        return Ok(Stored { value: bill_group_row(&row)?, request_hash: row.try_get("request_hash")?, created: false });
                    }
                }
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO bill_groups (tenant_id, id, account_id, name, auto_email_invoice, \
                     collect_invoice_balance_automatically, payment_method_id, gateway_customer_id, billing_day, \
                     collection_method, currency, contact_id, idempotency_key, request_hash, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(tenant)
                .bind(&bg.id)
                .bind(&bg.account_id)
                .bind(&bg.name)
                .bind(bg.auto_email_invoice)
                .bind(bg.collect_automatically)
                .bind(&bg.payment_method_id)
                .bind(&bg.gateway_customer_id)
                .bind(bg.billing_day as i32)
                .bind(bg.collection_method.as_str())
                .bind(&bg.currency)
                .bind(&bg.contact_id)
                .bind(idem.key)
                .bind(idem.hash)
                .bind(bg.created_at)
                .bind(bg.updated_at)
                .execute(&mut *tx)
                .await?;
                insert_events(&mut tx, tenant, std::slice::from_ref(event)).await?;
                tx.commit().await?;
                Ok(Stored { value: bg.clone(), request_hash: idem.hash.to_string(), created: true })
            }

            async fn get_bill_group(&self, tenant: &str, id: &str) -> Result<Option<BillGroup>, StorageError> {
                sqlx::query("SELECT * FROM bill_groups WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(bill_group_row)
                    .transpose()
            }

            async fn insert_subscription(
                &self,
                tenant: &str,
                s: &Subscription,
                invoice: Option<&Invoice>,
                idem: Idem<'_>,
                events: &[Event],
            ) -> Result<Stored<Subscription>, StorageError> {
                if let Some(key) = idem.key {
                    let existing = sqlx::query("SELECT * FROM subscriptions WHERE tenant_id = $1 AND idempotency_key = $2")
                        .bind(tenant)
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                    if let Some(row) = existing {
                        return Ok(Stored { value: subscription_row(&row)?, request_hash: row.try_get("request_hash")?, created: false });
                    }
                }
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO subscriptions (tenant_id, id, custom_id, account_id, bill_group_id, offering_id, \
                     rate_id, state, items, coupon_codes, currency, recurring_amount, start_date, metadata, \
                     cancel_at_period_end, current_period_start, current_period_end, trial_start, trial_end, \
                     next_billing_at, activated_at, canceled_at, expires_at, quote_id, idempotency_key, request_hash, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)",
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
                    // Invoice numbers are sequential per tenant, without gaps
                    // from rolled-back transactions.
                    let last: i64 = sqlx::query_scalar(
                        "INSERT INTO invoice_counters (tenant_id, last) VALUES ($1, 1) \
                         ON CONFLICT (tenant_id) DO UPDATE SET last = invoice_counters.last + 1 RETURNING last",
                    )
                    .bind(tenant)
                    .fetch_one(&mut *tx)
                    .await?;
                    let mut numbered = inv.clone();
                    numbered.number = format!("INV-{last:06}");
                    insert_invoice(&mut tx, tenant, &numbered).await?;
                }
                insert_events(&mut tx, tenant, events).await?;
                tx.commit().await?;
                Ok(Stored { value: s.clone(), request_hash: idem.hash.to_string(), created: true })
            }

            async fn get_subscription(&self, tenant: &str, id: &str) -> Result<Option<Subscription>, StorageError> {
                sqlx::query("SELECT * FROM subscriptions WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(subscription_row)
                    .transpose()
            }

            async fn set_subscription_state(
                &self,
                tenant: &str,
                id: &str,
                state: SubscriptionState,
                at: DateTime<Utc>,
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

            async fn get_invoice(&self, tenant: &str, id: &str) -> Result<Option<Invoice>, StorageError> {
                let row = sqlx::query("SELECT * FROM invoices WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(r) => Ok(Some(self.with_lines(tenant, invoice_row(&r)?).await?)),
                    None => Ok(None),
                }
            }

            async fn invoices_of_subscription(&self, tenant: &str, subscription_id: &str) -> Result<Vec<Invoice>, StorageError> {
                let rows = sqlx::query(
                    "SELECT * FROM invoices WHERE tenant_id = $1 AND subscription_id = $2 ORDER BY created_at, id",
                )
                .bind(tenant)
                .bind(subscription_id)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(self.with_lines(tenant, invoice_row(r)?).await?);
                }
                Ok(out)
            }

            async fn record_payment(&self, tenant: &str, inv: &Invoice, events: &[Event]) -> Result<(), StorageError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE invoices SET status = $3, amount_paid = $4, paid_at = $5, payment_ids = $6, updated_at = $7 \
                     WHERE tenant_id = $1 AND id = $2",
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

            async fn list_events(&self, tenant: &str, after_seq: i64, limit: i64) -> Result<Vec<Event>, StorageError> {
                sqlx::query("SELECT * FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
                    .bind(tenant)
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(event_row)
                    .collect()
            }
        }
    };
}

pub(crate) use sql_repo;
