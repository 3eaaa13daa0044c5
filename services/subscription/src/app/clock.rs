//! The tenants' clocks: the injected clock, except for a tenant in test
//! mode, whose time stands still until AdvanceClock moves it. Every use
//! case reads its `now` through [`App::now`].
//!
//! The test clocks are kept in the database (`test_clocks`) and mirrored
//! here; [`App::refresh_test_clocks`] reloads the mirror (at start, after
//! each change, and every second in the background), so replicas agree
//! within that second.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use chrono::{DateTime, Utc};
use recur_error::AppResult;

use super::App;

/// The tenants in test mode and their times.
#[derive(Debug, Default)]
pub struct TestClocks {
    times: RwLock<HashMap<String, DateTime<Utc>>>,
}

impl TestClocks {
    pub fn get(&self, tenant: &str) -> Option<DateTime<Utc>> {
        self.times.read().unwrap_or_else(PoisonError::into_inner).get(tenant).copied()
    }

    pub fn set(&self, tenant: &str, at: DateTime<Utc>) {
        self.times.write().unwrap_or_else(PoisonError::into_inner).insert(tenant.to_string(), at);
    }

    fn replace(&self, all: Vec<(String, DateTime<Utc>)>) {
        *self.times.write().unwrap_or_else(PoisonError::into_inner) = all.into_iter().collect();
    }
}

impl App {
    /// The tenant's time now: its test clock in test mode, else the
    /// injected clock (at the microsecond storage keeps).
    pub fn now(&self, tenant: &str) -> DateTime<Utc> {
        self.test_clocks.get(tenant).unwrap_or_else(|| self.clock.now_micros())
    }

    /// Whether `tenant` is in test mode.
    pub fn in_test_mode(&self, tenant: &str) -> bool {
        self.test_clocks.get(tenant).is_some()
    }

    /// Reloads the test clocks from the database.
    pub async fn refresh_test_clocks(&self) -> AppResult<()> {
        let all = self.repo.test_clocks().await?;
        self.test_clocks.replace(all);
        Ok(())
    }
}

impl App {
    /// The start date to quote a contract of `account` starting today
    /// with: empty (pricing's today) unless the tenant is in test mode,
    /// where today is the local date of its clock in the account's (else
    /// the tenant's) time zone.
    pub(crate) async fn quote_today(
        &self,
        ctx: &recur_auth::CallContext,
        account: &crate::domain::Account,
    ) -> AppResult<String> {
        let Some(now) = self.test_clocks.get(&ctx.tenant_id) else { return Ok(String::new()) };
        let tenant_zone = if account.time_zone.is_empty() { self.catalog.time_zone(ctx).await? } else { String::new() };
        let tz = account.tz(&tenant_zone);
        Ok(recur_period::local_date(now, tz).format("%Y-%m-%d").to_string())
    }
}

/// How far one AdvanceClock may move a clock (10 years): its work is
/// bounded, and done within one call.
const MAX_ADVANCE_DAYS: i64 = 3653;

/// Most steps one AdvanceClock takes (a step: everything due at one time).
const MAX_STEPS: usize = 100_000;

impl App {
    /// Puts the caller's tenant in test mode at `start` (default: now).
    /// Its time then moves only by [`App::advance_clock`]; its due work is
    /// left to that too. Again for a tenant already in test mode: its clock
    /// as it is.
    pub async fn enable_test_mode(
        &self,
        ctx: &recur_auth::CallContext,
        start: Option<DateTime<Utc>>,
    ) -> AppResult<DateTime<Utc>> {
        let tenant = ctx.tenant_id.as_str();
        let wall = self.clock.now_micros();
        let start = recur_clock::to_micros(start.unwrap_or(wall));
        self.repo.start_test_clock(tenant, start, wall).await?;
        self.refresh_test_clocks().await?;
        Ok(self.now(tenant))
    }

    /// Moves test-mode tenant's clock to `to`, doing on the way everything
    /// that falls due, one due time after another in time order; answers
    /// the clock's time and what was done. FAILED_PRECONDITION
    /// `NOT_TEST_MODE` outside test mode; INVALID_ARGUMENT for a time before
    /// the clock's (it never goes back) or more than 10 years after it.
    pub async fn advance_clock(
        &self,
        ctx: &recur_auth::CallContext,
        to: DateTime<Utc>,
    ) -> AppResult<(DateTime<Utc>, Vec<super::renew::ClockAction>)> {
        use recur_error::AppError;
        let tenant = ctx.tenant_id.as_str();
        self.refresh_test_clocks().await?;
        let Some(current) = self.test_clocks.get(tenant) else {
            return Err(AppError::failed_precondition(
                "NOT_TEST_MODE",
                "the tenant is not in test mode; EnableTestMode first",
            ));
        };
        let to = recur_clock::to_micros(to);
        if to < current {
            return Err(AppError::invalid("to", "is before the tenant's clock; a test clock never goes back"));
        }
        if to - current > chrono::Duration::days(MAX_ADVANCE_DAYS) {
            return Err(AppError::invalid("to", "is more than 10 years after the tenant's clock; advance in steps"));
        }
        let wall = self.clock.now_micros();
        // What the gateway settled since the clock last moved comes first.
        let mut out = Box::pin(self.follow_tenant_payments(ctx)).await?;
        // A time at which a step did nothing: what is left due there waits
        // for something else (a payment the gateway has not settled).
        let mut stalled: Option<DateTime<Utc>> = None;
        for _ in 0..MAX_STEPS {
            let Some(due) = self.repo.next_due(tenant).await?.filter(|t| *t <= to) else { break };
            let step = due.max(current);
            self.move_clock(tenant, step, wall).await?;
            let before = out.len();
            out.extend(Box::pin(self.run_tenant_clock(ctx, step)).await?);
            if out.len() == before {
                if stalled == Some(step) {
                    break;
                }
                stalled = Some(step);
            }
        }
        self.move_clock(tenant, to, wall).await?;
        Ok((to, out))
    }

    async fn move_clock(&self, tenant: &str, at: DateTime<Utc>, wall: DateTime<Utc>) -> AppResult<()> {
        if !self.repo.move_test_clock(tenant, at, wall).await? {
            return Err(recur_error::AppError::aborted(
                "CLOCK_MOVED",
                "the tenant's clock was moved past this time meanwhile; read it again",
            ));
        }
        self.test_clocks.set(tenant, at);
        Ok(())
    }
}
