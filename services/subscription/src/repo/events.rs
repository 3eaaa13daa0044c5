//! The event outbox.

macro_rules! store {
    ($repo:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl super::EventStore for $repo {
            async fn list_events(&self, tenant: &str, after: i64, limit: i64) -> Result<Vec<Event>, StorageError> {
                super::OUTBOX.sequence(&recur_storage::Pool::from(self.pool.clone()), tenant).await?;
                let found = sqlx::query_as::<_, rows::EventRow>(
                    "SELECT * FROM events WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
                )
                .bind(tenant)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows::all(found)
            }
        }
    };
}

pub(crate) use store;
