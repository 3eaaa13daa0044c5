//! Usage events: inserted once per tenant and event id.

macro_rules! store {
    ($repo:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl super::UsageStore for $repo {
            async fn insert_usage(
                &self,
                tenant: &str,
                events: &[crate::domain::UsageEvent],
            ) -> Result<Vec<String>, StorageError> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                let mut rows = Vec::with_capacity(events.len());
                for e in events {
                    rows.push((e, super::rows::to_json(&e.properties)?));
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO usage_events (tenant_id, event_id, subscription_id, product_id, quantity, \
                     event_time, properties, created_at) ",
                );
                qb.push_values(rows, |mut row, (e, properties)| {
                    row.push_bind(tenant.to_string())
                        .push_bind(e.event_id.clone())
                        .push_bind(e.subscription_id.clone())
                        .push_bind(e.product_id.clone())
                        .push_bind(recur_storage::Dec(e.quantity))
                        .push_bind(e.event_time)
                        .push_bind(properties)
                        .push_bind(e.created_at);
                });
                qb.push(" ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id");
                Ok(qb.build_query_scalar::<String>().fetch_all(&self.pool).await?)
            }

            async fn usage_count(&self, tenant: &str, subscription_id: &str) -> Result<i64, StorageError> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM usage_events WHERE tenant_id = $1 AND subscription_id = $2",
                )
                .bind(tenant)
                .bind(subscription_id)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn aggregate_usage(
                &self,
                tenant: &str,
                subscription_id: &str,
                product_id: &str,
                meter: &crate::domain::usage::Meter,
                start: chrono::DateTime<chrono::Utc>,
                end: chrono::DateTime<chrono::Utc>,
            ) -> Result<crate::domain::usage::Aggregate, StorageError> {
                use crate::domain::usage::{Aggregate, Aggregation};
                use futures::TryStreamExt;
                let unique = meter.aggregation == Aggregation::UniqueCount;
                // Only UNIQUE_COUNT reads the properties.
                let sql = if unique {
                    "SELECT quantity, event_time, event_id, properties FROM usage_events \
                     WHERE tenant_id = $1 AND subscription_id = $2 AND product_id = $3 \
                     AND event_time >= $4 AND event_time < $5"
                } else {
                    "SELECT quantity, event_time, event_id, '' AS properties FROM usage_events \
                     WHERE tenant_id = $1 AND subscription_id = $2 AND product_id = $3 \
                     AND event_time >= $4 AND event_time < $5"
                };
                let mut rows = sqlx::query_as::<_, super::rows::UsageRow>(sql)
                    .bind(tenant)
                    .bind(subscription_id)
                    .bind(product_id)
                    .bind(start)
                    .bind(end)
                    .fetch(&self.pool);
                let mut total = Aggregate::new(meter.aggregation);
                while let Some(row) = rows.try_next().await? {
                    let properties: crate::domain::Metadata =
                        if unique { super::rows::from_json(&row.properties)? } else { Default::default() };
                    let value = properties.get(&meter.property).map(String::as_str);
                    total.add(row.quantity.0, row.event_time, &row.event_id, value);
                }
                Ok(total)
            }
        }
    };
}

pub(crate) use store;
