//! The event list: a tenant's events in sequence order.

use recur_error::{AppResult, Violations};
use recur_storage::page;

use super::App;
use crate::domain::Event;

impl App {
    /// A page of `tenant`'s events after the sequence in `token`, and the
    /// next page's token.
    pub async fn list_events(&self, tenant: &str, page_size: i32, token: &str) -> AppResult<(Vec<Event>, String)> {
        let mut v = Violations::new();
        v.check(page_size >= 0, "page_size", "must not be negative");
        let after: i64 = if token.is_empty() {
            0
        } else {
            token.parse().ok().filter(|n: &i64| *n >= 0).unwrap_or_else(|| {
                v.add("page_token", "is not a token this API issued");
                0
            })
        };
        v.finish()?;
        let limit = page::page_size(page_size);
        let mut events = self.repo.list_events(tenant, after, limit + 1).await?;
        let next = if events.len() as i64 > limit {
            events.truncate(limit as usize);
            events.last().map(|e| e.sequence.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok((events, next))
    }
}
