//! The catalog's storage: one trait, a Postgres and a SQLite implementation.
//! Both are generated from the one body in [`sql_repo!`], so they cannot
//! drift apart; what differs between the backends lives in the migrations
//! (and in the collation that makes name ordering byte order on both).

pub mod cache;
mod postgres;
mod sqlite;

use async_trait::async_trait;
use recur_storage::{Migration, Migrations, Pool, StorageError};

use crate::domain::{
    CatalogOp, Coupon, CouponFilter, Lookup, Offering, OfferingFilter, PageQuery, Product, ProductFilter, Rate,
    RateFilter, Snapshot, TenantSettings,
};

pub use postgres::PgRepo;
pub use sqlite::SqliteRepo;

#[async_trait]
pub trait CatalogRepo: Send + Sync + 'static {
    async fn get_product(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Product>, StorageError>;
    async fn list_products(
        &self,
        tenant: &str,
        filter: &ProductFilter,
        page: &PageQuery,
    ) -> Result<Vec<Product>, StorageError>;

    async fn get_offering(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Offering>, StorageError>;
    async fn list_offerings(
        &self,
        tenant: &str,
        filter: &OfferingFilter,
        page: &PageQuery,
    ) -> Result<Vec<Offering>, StorageError>;

    /// A rate by id, or by handle: the active version, else the latest.
    async fn get_rate(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Rate>, StorageError>;
    async fn list_rates(&self, tenant: &str, filter: &RateFilter, page: &PageQuery) -> Result<Vec<Rate>, StorageError>;

    async fn get_coupon(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Coupon>, StorageError>;
    async fn list_coupons(
        &self,
        tenant: &str,
        filter: &CouponFilter,
        page: &PageQuery,
    ) -> Result<Vec<Coupon>, StorageError>;

    /// Applies every write in one transaction: all of them or none.
    async fn apply(&self, tenant: &str, ops: &[CatalogOp]) -> Result<(), StorageError>;
    /// The whole catalog of a tenant (every status, every version).
    async fn snapshot(&self, tenant: &str) -> Result<Snapshot, StorageError>;

    async fn get_settings(&self, tenant: &str) -> Result<Option<TenantSettings>, StorageError>;
    async fn put_settings(&self, tenant: &str, s: &TenantSettings) -> Result<(), StorageError>;
}

pub const MIGRATIONS: Migrations = Migrations {
    table: "catalog_migrations",
    postgres: &[
        Migration { version: 1, name: "init", sql: include_str!("../../migrations/postgres/0001_init.sql") },
        Migration { version: 2, name: "coupons", sql: include_str!("../../migrations/postgres/0002_coupons.sql") },
        Migration {
            version: 3,
            name: "usage_aggregation",
            sql: include_str!("../../migrations/postgres/0003_usage_aggregation.sql"),
        },
    ],
    sqlite: &[
        Migration { version: 1, name: "init", sql: include_str!("../../migrations/sqlite/0001_init.sql") },
        Migration { version: 2, name: "coupons", sql: include_str!("../../migrations/sqlite/0002_coupons.sql") },
        Migration {
            version: 3,
            name: "usage_aggregation",
            sql: include_str!("../../migrations/sqlite/0003_usage_aggregation.sql"),
        },
    ],
};

/// Connects, migrates, and returns the repository for the pool's backend.
pub async fn open(url: &str, max_connections: u32) -> Result<std::sync::Arc<dyn CatalogRepo>, StorageError> {
    Ok(from_pool(open_pool(url, max_connections).await?))
}

/// The service's pool at `url`, migrated.
pub async fn open_pool(url: &str, max_connections: u32) -> Result<Pool, StorageError> {
    let pool = recur_storage::connect(url, "catalog", max_connections).await?;
    recur_storage::migrate(&pool, &MIGRATIONS).await?;
    Ok(pool)
}

pub fn from_pool(pool: Pool) -> std::sync::Arc<dyn CatalogRepo> {
    match pool {
        Pool::Postgres(p) => std::sync::Arc::new(PgRepo { pool: p }),
        Pool::Sqlite(p) => std::sync::Arc::new(SqliteRepo { pool: p }),
    }
}

fn decode_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("catalog row: {e}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StorageError> {
    serde_json::to_string(v).map_err(decode_err)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StorageError> {
    serde_json::from_str(s).map_err(decode_err)
}

/// The repository body, for one backend type. `$collate` makes text order
/// byte order, so both backends list names identically.
macro_rules! sql_repo {
    ($repo:ident, $db:ty, $collate:literal) => {
        use std::str::FromStr;

        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use recur_storage::page::SortValue;
        use recur_storage::{Dec, StorageError};
        use sqlx::{Executor, QueryBuilder, Row};

        use super::{decode_err, from_json, to_json, CatalogRepo};
        use crate::domain::*;

        pub struct $repo {
            pub pool: sqlx::Pool<$db>,
        }

        type DbRow = <$db as sqlx::Database>::Row;

        fn opt_dec(r: &DbRow, col: &str) -> Result<Option<rust_decimal::Decimal>, StorageError> {
            Ok(r.try_get::<Option<Dec>, _>(col)?.map(|d| d.0))
        }

        fn parse<T: FromStr<Err = String>>(s: &str) -> Result<T, StorageError> {
            s.parse().map_err(decode_err)
        }

        fn product_row(r: &DbRow) -> Result<Product, StorageError> {
            Ok(Product {
                id: r.try_get("id")?,
                handle: r.try_get("handle")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                kind: parse(&r.try_get::<String, _>("kind")?)?,
                unit_name: r.try_get("unit_name")?,
                tax_code: r.try_get("tax_code")?,
                min_quantity: opt_dec(r, "min_quantity")?,
                max_quantity: opt_dec(r, "max_quantity")?,
                default_quantity: opt_dec(r, "default_quantity")?,
                aggregation: r.try_get::<Option<String>, _>("aggregation")?.map(|a| parse(&a)).transpose()?,
                aggregation_property: r.try_get("aggregation_property")?,
                status: parse(&r.try_get::<String, _>("status")?)?,
                metadata: from_json(&r.try_get::<String, _>("metadata")?)?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn offering_row(r: &DbRow) -> Result<Offering, StorageError> {
            Ok(Offering {
                id: r.try_get("id")?,
                handle: r.try_get("handle")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                product_ids: Vec::new(),
                status: parse(&r.try_get::<String, _>("status")?)?,
                metadata: from_json(&r.try_get::<String, _>("metadata")?)?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn rate_row(r: &DbRow) -> Result<Rate, StorageError> {
            let currency: String = r.try_get("currency")?;
            let count = |col: &str| -> Result<u32, StorageError> {
                u32::try_from(r.try_get::<i32, _>(col)?).map_err(decode_err)
            };
            Ok(Rate {
                id: r.try_get("id")?,
                handle: r.try_get("handle")?,
                offering_id: r.try_get("offering_id")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                currency: recur_money::Currency::from_code(&currency)
                    .ok_or_else(|| decode_err(format!("currency {currency}")))?,
                billing_period: BillingPeriod {
                    unit: parse(&r.try_get::<String, _>("period_unit")?)?,
                    count: count("period_count")?,
                },
                timing: parse(&r.try_get::<String, _>("timing")?)?,
                trial_days: count("trial_days")?,
                contract_term_periods: count("contract_term_periods")?,
                auto_renew: r.try_get("auto_renew")?,
                notice_period_days: count("notice_period_days")?,
                setup_fee: opt_dec(r, "setup_fee")?,
                prices: from_json(&r.try_get::<String, _>("prices")?)?,
                status: parse(&r.try_get::<String, _>("status")?)?,
                metadata: from_json(&r.try_get::<String, _>("metadata")?)?,
                version: count("version")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn coupon_row(r: &DbRow) -> Result<Coupon, StorageError> {
            let amounts: std::collections::BTreeMap<String, String> = from_json(&r.try_get::<String, _>("amounts_off")?)?;
            Ok(Coupon {
                id: r.try_get("id")?,
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                discount_type: parse(&r.try_get::<String, _>("discount_type")?)?,
                percent_off: opt_dec(r, "percent_off")?,
                amounts_off: amounts
                    .into_iter()
                    .map(|(k, v)| rust_decimal::Decimal::from_str(&v).map(|d| (k, d)).map_err(decode_err))
                    .collect::<Result<_, _>>()?,
                duration: parse(&r.try_get::<String, _>("duration")?)?,
                duration_periods: r.try_get::<i32, _>("duration_periods")?.max(0) as u32,
                offering_ids: from_json(&r.try_get::<String, _>("offering_ids")?)?,
                product_ids: from_json(&r.try_get::<String, _>("product_ids")?)?,
                max_redemptions: r.try_get::<i32, _>("max_redemptions")?.max(0) as u32,
                redeem_by: r.try_get("redeem_by")?,
                status: parse(&r.try_get::<String, _>("status")?)?,
                metadata: from_json(&r.try_get::<String, _>("metadata")?)?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        /// Appends the keyset condition, order and limit of a page. `name`
        /// is the column a name ordering sorts by.
        fn push_page<'a>(qb: &mut QueryBuilder<'a, $db>, page: &'a PageQuery, name: &str) {
            let (col, cmp) = match page.order {
                Order::CreateTime => ("created_at".to_string(), if page.descending { "<" } else { ">" }),
                Order::Name => (format!("{name} COLLATE {}", $collate), if page.descending { "<" } else { ">" }),
            };
            if let Some(c) = &page.after {
                qb.push(format!(" AND ({col}, id) {cmp} ("));
                match &c.value {
                    SortValue::Time(t) => qb.push_bind(*t),
                    SortValue::Text(s) => qb.push_bind(s.as_str()),
                };
                qb.push(", ").push_bind(c.id.as_str()).push(")");
            }
            let dir = if page.descending { "DESC" } else { "ASC" };
            qb.push(format!(" ORDER BY {col} {dir}, id {dir} LIMIT ")).push_bind(page.limit);
        }

        fn lookup_sql<'a>(qb: &mut QueryBuilder<'a, $db>, key: Lookup<'a>, handle_col: &str) {
            match key {
                Lookup::Id(id) => {
                    qb.push(" AND id = ").push_bind(id);
                }
                Lookup::Handle(h) => {
                    qb.push(format!(" AND {handle_col} = ")).push_bind(h);
                }
            }
        }

        async fn attach_products<'c, E: Executor<'c, Database = $db>>(
            e: E,
            tenant: &str,
            offerings: &mut [Offering],
        ) -> Result<(), StorageError> {
            if offerings.is_empty() {
                return Ok(());
            }
            let mut qb = QueryBuilder::<$db>::new(
                "SELECT offering_id, product_id FROM offering_products WHERE tenant_id = ",
            );
            qb.push_bind(tenant).push(" AND offering_id");
            recur_storage::push_in(&mut qb, offerings.iter().map(|o| o.id.clone()));
            qb.push(" ORDER BY offering_id, position");
            let rows = qb.build().fetch_all(e).await?;
            for row in rows {
                let offering_id: String = row.try_get("offering_id")?;
                let product_id: String = row.try_get("product_id")?;
                if let Some(o) = offerings.iter_mut().find(|o| o.id == offering_id) {
                    o.product_ids.push(product_id);
                }
            }
            Ok(())
        }

        async fn insert_product<'c, E: Executor<'c, Database = $db>>(e: E, tenant: &str, p: &Product) -> Result<(), StorageError> {
            sqlx::query(
                "INSERT INTO products (tenant_id, id, handle, name, description, kind, unit_name, tax_code, \
                 min_quantity, max_quantity, default_quantity, status, metadata, created_at, updated_at, \
                 aggregation, aggregation_property) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(tenant)
            .bind(&p.id)
            .bind(&p.handle)
            .bind(&p.name)
            .bind(&p.description)
            .bind(p.kind.as_str())
            .bind(&p.unit_name)
            .bind(&p.tax_code)
            .bind(p.min_quantity.map(Dec))
            .bind(p.max_quantity.map(Dec))
            .bind(p.default_quantity.map(Dec))
            .bind(p.status.as_str())
            .bind(to_json(&p.metadata)?)
            .bind(p.created_at)
            .bind(p.updated_at)
            .bind(p.aggregation.map(|a| a.as_str()))
            .bind(&p.aggregation_property)
            .execute(e)
            .await?;
            Ok(())
        }

        async fn update_product<'c, E: Executor<'c, Database = $db>>(e: E, tenant: &str, p: &Product) -> Result<(), StorageError> {
            sqlx::query(
                "UPDATE products SET handle = $3, name = $4, description = $5, unit_name = $6, tax_code = $7, \
                 min_quantity = $8, max_quantity = $9, default_quantity = $10, status = $11, metadata = $12, \
                 updated_at = $13 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(&p.id)
            .bind(&p.handle)
            .bind(&p.name)
            .bind(&p.description)
            .bind(&p.unit_name)
            .bind(&p.tax_code)
            .bind(p.min_quantity.map(Dec))
            .bind(p.max_quantity.map(Dec))
            .bind(p.default_quantity.map(Dec))
            .bind(p.status.as_str())
            .bind(to_json(&p.metadata)?)
            .bind(p.updated_at)
            .execute(e)
            .await?;
            Ok(())
        }

        async fn insert_offering_row<'c, E: Executor<'c, Database = $db>>(e: E, tenant: &str, o: &Offering) -> Result<(), StorageError> {
            sqlx::query(
                "INSERT INTO offerings (tenant_id, id, handle, name, description, status, metadata, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(tenant)
            .bind(&o.id)
            .bind(&o.handle)
            .bind(&o.name)
            .bind(&o.description)
            .bind(o.status.as_str())
            .bind(to_json(&o.metadata)?)
            .bind(o.created_at)
            .bind(o.updated_at)
            .execute(e)
            .await?;
            Ok(())
        }

        async fn update_offering_row<'c, E: Executor<'c, Database = $db>>(e: E, tenant: &str, o: &Offering) -> Result<(), StorageError> {
            sqlx::query(
                "UPDATE offerings SET handle = $3, name = $4, description = $5, status = $6, metadata = $7, \
                 updated_at = $8 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(&o.id)
            .bind(&o.handle)
            .bind(&o.name)
            .bind(&o.description)
            .bind(o.status.as_str())
            .bind(to_json(&o.metadata)?)
            .bind(o.updated_at)
            .execute(e)
            .await?;
            Ok(())
        }

        async fn insert_rate<'c, E: Executor<'c, Database = $db>>(e: E, tenant: &str, r: &Rate) -> Result<(), StorageError> {
            sqlx::query(
                "INSERT INTO rates (tenant_id, id, handle, offering_id, name, description, currency, \
                 period_unit, period_count, timing, trial_days, contract_term_periods, auto_renew, \
                 notice_period_days, setup_fee, prices, status, metadata, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                 $19, $20, $21)",
            )
            .bind(tenant)
            .bind(&r.id)
            .bind(&r.handle)
            .bind(&r.offering_id)
            .bind(&r.name)
            .bind(&r.description)
            .bind(r.currency.code())
            .bind(r.billing_period.unit.as_str())
            .bind(r.billing_period.count as i32)
            .bind(r.timing.as_str())
            .bind(r.trial_days as i32)
            .bind(r.contract_term_periods as i32)
            .bind(r.auto_renew)
            .bind(r.notice_period_days as i32)
            .bind(r.setup_fee.map(Dec))
            .bind(to_json(&r.prices)?)
            .bind(r.status.as_str())
            .bind(to_json(&r.metadata)?)
            .bind(r.version as i32)
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(e)
            .await?;
            Ok(())
        }

        async fn update_rate<'c, E: Executor<'c, Database = $db>>(e: E, tenant: &str, r: &Rate) -> Result<(), StorageError> {
            sqlx::query(
                "UPDATE rates SET name = $3, description = $4, metadata = $5, status = $6, updated_at = $7 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(&r.id)
            .bind(&r.name)
            .bind(&r.description)
            .bind(to_json(&r.metadata)?)
            .bind(r.status.as_str())
            .bind(r.updated_at)
            .execute(e)
            .await?;
            Ok(())
        }

        async fn insert_coupon<'c, E: Executor<'c, Database = $db>>(e: E, tenant: &str, c: &Coupon) -> Result<(), StorageError> {
            let amounts: std::collections::BTreeMap<&String, String> =
                c.amounts_off.iter().map(|(k, v)| (k, v.to_string())).collect();
            sqlx::query(
                "INSERT INTO coupons (tenant_id, id, code, name, discount_type, percent_off, amounts_off, duration, \
                 duration_periods, offering_ids, product_ids, max_redemptions, redeem_by, status, metadata, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17)",
            )
            .bind(tenant)
            .bind(&c.id)
            .bind(&c.code)
            .bind(&c.name)
            .bind(c.discount_type.as_str())
            .bind(c.percent_off.map(Dec))
            .bind(to_json(&amounts)?)
            .bind(c.duration.as_str())
            .bind(c.duration_periods as i32)
            .bind(to_json(&c.offering_ids)?)
            .bind(to_json(&c.product_ids)?)
            .bind(c.max_redemptions as i32)
            .bind(c.redeem_by)
            .bind(c.status.as_str())
            .bind(to_json(&c.metadata)?)
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(e)
            .await?;
            Ok(())
        }

        async fn update_coupon<'c, E: Executor<'c, Database = $db>>(e: E, tenant: &str, c: &Coupon) -> Result<(), StorageError> {
            sqlx::query(
                "UPDATE coupons SET name = $3, max_redemptions = $4, redeem_by = $5, status = $6, metadata = $7, \
                 updated_at = $8 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(&c.id)
            .bind(&c.name)
            .bind(c.max_redemptions as i32)
            .bind(c.redeem_by)
            .bind(c.status.as_str())
            .bind(to_json(&c.metadata)?)
            .bind(c.updated_at)
            .execute(e)
            .await?;
            Ok(())
        }

        #[async_trait]
        impl CatalogRepo for $repo {
            async fn get_product(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Product>, StorageError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM products WHERE tenant_id = ");
                qb.push_bind(tenant);
                lookup_sql(&mut qb, key, "handle");
                qb.build().fetch_optional(&self.pool).await?.as_ref().map(product_row).transpose()
            }

            async fn list_products(
                &self,
                tenant: &str,
                filter: &ProductFilter,
                page: &PageQuery,
            ) -> Result<Vec<Product>, StorageError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM products WHERE tenant_id = ");
                qb.push_bind(tenant);
                if let Some(s) = filter.status {
                    qb.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(k) = filter.kind {
                    qb.push(" AND kind = ").push_bind(k.as_str());
                }
                push_page(&mut qb, page, "name");
                qb.build().fetch_all(&self.pool).await?.iter().map(product_row).collect()
            }

            async fn get_offering(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Offering>, StorageError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM offerings WHERE tenant_id = ");
                qb.push_bind(tenant);
                lookup_sql(&mut qb, key, "handle");
                let Some(row) = qb.build().fetch_optional(&self.pool).await? else {
                    return Ok(None);
                };
                let mut found = [offering_row(&row)?];
                attach_products(&self.pool, tenant, &mut found).await?;
                let [o] = found;
                Ok(Some(o))
            }

            async fn list_offerings(
                &self,
                tenant: &str,
                filter: &OfferingFilter,
                page: &PageQuery,
            ) -> Result<Vec<Offering>, StorageError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM offerings WHERE tenant_id = ");
                qb.push_bind(tenant);
                if let Some(s) = filter.status {
                    qb.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(p) = &filter.product_id {
                    qb.push(" AND id IN (SELECT offering_id FROM offering_products WHERE tenant_id = ")
                        .push_bind(tenant)
                        .push(" AND product_id = ")
                        .push_bind(p.as_str())
                        .push(")");
                }
                push_page(&mut qb, page, "name");
                let mut offerings: Vec<Offering> =
                    qb.build().fetch_all(&self.pool).await?.iter().map(offering_row).collect::<Result<_, _>>()?;
                attach_products(&self.pool, tenant, &mut offerings).await?;
                Ok(offerings)
            }

            async fn get_rate(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Rate>, StorageError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM rates WHERE tenant_id = ");
                qb.push_bind(tenant);
                lookup_sql(&mut qb, key, "handle");
                qb.push(" ORDER BY CASE WHEN status = 'active' THEN 0 ELSE 1 END, version DESC LIMIT 1");
                qb.build().fetch_optional(&self.pool).await?.as_ref().map(rate_row).transpose()
            }

            async fn list_rates(
                &self,
                tenant: &str,
                filter: &RateFilter,
                page: &PageQuery,
            ) -> Result<Vec<Rate>, StorageError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM rates WHERE tenant_id = ");
                qb.push_bind(tenant);
                if let Some(s) = filter.status {
                    qb.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(o) = &filter.offering_id {
                    qb.push(" AND offering_id = ").push_bind(o.as_str());
                }
                if let Some(c) = &filter.currency {
                    qb.push(" AND currency = ").push_bind(c.as_str());
                }
                push_page(&mut qb, page, "name");
                qb.build().fetch_all(&self.pool).await?.iter().map(rate_row).collect()
            }

            async fn get_coupon(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Coupon>, StorageError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM coupons WHERE tenant_id = ");
                qb.push_bind(tenant);
                lookup_sql(&mut qb, key, "code");
                qb.build().fetch_optional(&self.pool).await?.as_ref().map(coupon_row).transpose()
            }

            async fn list_coupons(
                &self,
                tenant: &str,
                filter: &CouponFilter,
                page: &PageQuery,
            ) -> Result<Vec<Coupon>, StorageError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM coupons WHERE tenant_id = ");
                qb.push_bind(tenant);
                if let Some(s) = filter.status {
                    qb.push(" AND status = ").push_bind(s.as_str());
                }
                push_page(&mut qb, page, "code");
                qb.build().fetch_all(&self.pool).await?.iter().map(coupon_row).collect()
            }

            async fn apply(&self, tenant: &str, ops: &[CatalogOp]) -> Result<(), StorageError> {
                let mut tx = self.pool.begin().await?;
                for op in ops {
                    match op {
                        CatalogOp::InsertProduct(p) => insert_product(&mut *tx, tenant, p).await?,
                        CatalogOp::UpdateProduct(p) => update_product(&mut *tx, tenant, p).await?,
                        CatalogOp::InsertOffering(o) | CatalogOp::UpdateOffering(o) => {
                            if matches!(op, CatalogOp::InsertOffering(_)) {
                                insert_offering_row(&mut *tx, tenant, o).await?;
                            } else {
                                update_offering_row(&mut *tx, tenant, o).await?;
                                sqlx::query("DELETE FROM offering_products WHERE tenant_id = $1 AND offering_id = $2")
                                    .bind(tenant)
                                    .bind(&o.id)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                            for (position, product_id) in o.product_ids.iter().enumerate() {
                                sqlx::query(
                                    "INSERT INTO offering_products (tenant_id, offering_id, product_id, position) \
                                     VALUES ($1, $2, $3, $4)",
                                )
                                .bind(tenant)
                                .bind(&o.id)
                                .bind(product_id)
                                .bind(position as i32)
                                .execute(&mut *tx)
                                .await?;
                            }
                        }
                        CatalogOp::InsertRate(r) => insert_rate(&mut *tx, tenant, r).await?,
                        CatalogOp::UpdateRate(r) => update_rate(&mut *tx, tenant, r).await?,
                        CatalogOp::InsertCoupon(c) => insert_coupon(&mut *tx, tenant, c).await?,
                        CatalogOp::UpdateCoupon(c) => update_coupon(&mut *tx, tenant, c).await?,
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn snapshot(&self, tenant: &str) -> Result<Snapshot, StorageError> {
                let all = |table: &str| format!("SELECT * FROM {table} WHERE tenant_id = $1 ORDER BY created_at, id");
                let products = sqlx::query(&all("products")).bind(tenant).fetch_all(&self.pool).await?;
                let offerings = sqlx::query(&all("offerings")).bind(tenant).fetch_all(&self.pool).await?;
                let rates = sqlx::query(&all("rates")).bind(tenant).fetch_all(&self.pool).await?;
                let coupons = sqlx::query(&all("coupons")).bind(tenant).fetch_all(&self.pool).await?;
                let mut offerings: Vec<Offering> = offerings.iter().map(offering_row).collect::<Result<_, _>>()?;
                attach_products(&self.pool, tenant, &mut offerings).await?;
                Ok(Snapshot {
                    products: products.iter().map(product_row).collect::<Result<_, _>>()?,
                    offerings,
                    rates: rates.iter().map(rate_row).collect::<Result<_, _>>()?,
                    coupons: coupons.iter().map(coupon_row).collect::<Result<_, _>>()?,
                })
            }

            async fn get_settings(&self, tenant: &str) -> Result<Option<TenantSettings>, StorageError> {
                let row = sqlx::query("SELECT settings, updated_at FROM tenant_settings WHERE tenant_id = $1")
                    .bind(tenant)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let mut s: TenantSettings = from_json(&row.try_get::<String, _>("settings")?)?;
                s.updated_at = Some(row.try_get::<DateTime<Utc>, _>("updated_at")?);
                Ok(Some(s))
            }

            async fn put_settings(&self, tenant: &str, s: &TenantSettings) -> Result<(), StorageError> {
                let updated_at = s.updated_at.ok_or_else(|| decode_err("settings without update time"))?;
                sqlx::query(
                    "INSERT INTO tenant_settings (tenant_id, settings, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings, \
                     updated_at = excluded.updated_at",
                )
                .bind(tenant)
                .bind(to_json(s)?)
                .bind(updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use sql_repo;
