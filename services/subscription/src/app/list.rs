//! Listing and searching subscriptions (Maxio's list: states, account,
//! offering, product, rate, coupon, metadata, a date field within a date or
//! datetime range, sorted by a field either way) and invoices, in keyset
//! pages that stay correct while rows change.

use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, Utc};
use recur_auth::CallContext;
use recur_error::{AppResult, Violations};
use recur_storage::page::{self, Cursor};

use super::App;
use crate::domain::{Invoice, InvoiceStatus, Metadata, Subscription, SubscriptionState};
use crate::repo::{InvoiceQuery, SubscriptionOrder, SubscriptionQuery, TimeColumn, missing_time};

/// A ListSubscriptions request in domain terms.
#[derive(Clone, Debug)]
pub struct ListInput {
    pub page_size: i32,
    pub page_token: String,
    /// `None`: a state the API does not know.
    pub states: Vec<Option<SubscriptionState>>,
    pub account_id: String,
    pub offering_id: String,
    pub product_id: String,
    pub rate_id: String,
    /// A coupon's id (`coup_…`) or code.
    pub coupon: String,
    /// `Ok(None)`: no date field; `Err(())`: one the API does not know.
    pub date_field: Result<Option<TimeColumn>, ()>,
    /// Inclusive dates (YYYY-MM-DD) in the tenant's time zone.
    pub start_date: String,
    pub end_date: String,
    /// Exact instants; they win over the dates.
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub metadata: Metadata,
    /// `Err(())`: a sort the API does not know.
    pub order: Result<SubscriptionOrder, ()>,
    pub descending: bool,
}

/// A ListInvoices request in domain terms.
#[derive(Clone, Debug)]
pub struct InvoiceListInput {
    pub page_size: i32,
    pub page_token: String,
    pub account_id: String,
    pub subscription_id: String,
    /// `Ok(None)`: any status; `Err(())`: one the API does not know.
    pub status: Result<Option<InvoiceStatus>, ()>,
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn date(v: &mut Violations, field: &str, raw: &str) -> Option<NaiveDate> {
    if raw.is_empty() {
        return None;
    }
    let d = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok();
    v.check(d.is_some(), field, "must be a date as YYYY-MM-DD");
    d
}

/// Midnight at the start of `d` in `tz`.
fn local_midnight(d: NaiveDate, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    use chrono::TimeZone;
    let t = d.and_hms_opt(0, 0, 0)?;
    tz.from_local_datetime(&t).earliest().map(|t| t.with_timezone(&Utc))
}

/// The position of a row in `order`, for the next page's token.
fn cursor(s: &Subscription, order: SubscriptionOrder) -> Cursor {
    let time = |c: TimeColumn| match c {
        TimeColumn::CreatedAt => Some(s.created_at),
        TimeColumn::UpdatedAt => Some(s.updated_at),
        TimeColumn::ActivatedAt => s.activated_at,
        TimeColumn::CanceledAt => s.canceled_at,
        TimeColumn::CurrentPeriodStart => Some(s.current_period_start),
        TimeColumn::CurrentPeriodEnd => Some(s.current_period_end),
        TimeColumn::TrialStart => s.trial_start,
        TimeColumn::TrialEnd => s.trial_end,
        TimeColumn::ExpiresAt => s.expires_at,
        TimeColumn::NextBillingAt => s.next_billing_at,
    };
    match order {
        SubscriptionOrder::Time(c) => Cursor::time(time(c).unwrap_or_else(missing_time), s.id.clone()),
        SubscriptionOrder::Id => Cursor::text(s.id.clone(), s.id.clone()),
    }
}

impl App {
    /// A page of `ctx`'s subscriptions matching `r`, and the next page's token.
    pub async fn list_subscriptions(&self, ctx: &CallContext, r: &ListInput) -> AppResult<(Vec<Subscription>, String)> {
        let mut v = Violations::new();
        v.check(r.page_size >= 0, "page_size", "must not be negative");
        let mut states = Vec::new();
        for (i, s) in r.states.iter().enumerate() {
            match s {
                Some(s) => states.push(*s),
                None => v.add(format!("states[{i}]"), "unknown state"),
            }
        }
        let order = r.order.unwrap_or_else(|_| {
            v.add("sort", "unknown sort");
            SubscriptionOrder::Time(TimeColumn::CreatedAt)
        });
        let after = match order {
            SubscriptionOrder::Time(_) => {
                Cursor::decode_time(&r.page_token).map(|c| c.map(|(t, id)| Cursor::time(t, id)))
            }
            SubscriptionOrder::Id => match Cursor::decode(&r.page_token) {
                Ok(None) => Ok(None),
                Ok(Some(c)) if matches!(c.value, page::SortValue::Text(_)) => Ok(Some(c)),
                _ => Err(page::BadPageToken),
            },
        }
        .unwrap_or_else(|_| {
            v.add("page_token", "is not a token this API issued for this sort");
            None
        });
        let column = r.date_field.unwrap_or_else(|_| {
            v.add("date_field", "unknown date field");
            None
        });
        let start_date = date(&mut v, "start_date", &r.start_date);
        let end_date = date(&mut v, "end_date", &r.end_date);
        let ranged = start_date.is_some() || end_date.is_some() || r.start_time.is_some() || r.end_time.is_some();
        v.check(!ranged || column.is_some(), "date_field", "is required with a date or time range");
        if let (Some(a), Some(b)) = (start_date, end_date) {
            v.check(a <= b, "end_date", "must not be before start_date");
        }
        if let (Some(a), Some(b)) = (r.start_time, r.end_time) {
            v.check(a <= b, "end_time", "must not be before start_time");
        }
        v.finish()?;

        let time_range = match column {
            None => None,
            Some(c) => {
                let (from, to) = if r.start_time.is_some() || r.end_time.is_some() {
                    (r.start_time, r.end_time)
                } else if start_date.is_some() || end_date.is_some() {
                    // Whole days in the tenant's time zone, both ends inclusive.
                    let tz = self.catalog.time_zone(ctx).await?;
                    let tz = chrono_tz::Tz::from_str(&tz).unwrap_or(chrono_tz::UTC);
                    let from = start_date.and_then(|d| local_midnight(d, tz));
                    let to = end_date
                        .and_then(|d| d.checked_add_days(Days::new(1)))
                        .and_then(|d| local_midnight(d, tz))
                        .map(|t| t - chrono::Duration::microseconds(1));
                    (from, to)
                } else {
                    (None, None)
                };
                Some((c, from, to))
            }
        };
        let coupon_code = if r.coupon.is_empty() {
            None
        } else if recur_id::looks_like_id(&r.coupon) {
            // Subscriptions keep the codes they were sold with.
            match self.catalog.coupon_code(ctx, &r.coupon).await? {
                Some(code) => Some(code),
                None => return Ok((Vec::new(), String::new())),
            }
        } else {
            Some(r.coupon.clone())
        };
        let limit = page::page_size(r.page_size);
        let q = SubscriptionQuery {
            states,
            account_id: some(&r.account_id),
            offering_id: some(&r.offering_id),
            rate_id: some(&r.rate_id),
            product_id: some(&r.product_id),
            coupon_code,
            metadata: r.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            time_range,
            order,
            descending: r.descending,
            after,
            limit: limit + 1,
        };
        let rows = self.repo.list_subscriptions(&ctx.tenant_id, &q).await?;
        Ok(page::finish(rows, limit, |s| cursor(s, order)))
    }

    /// A page of `tenant`'s invoices matching `r`, oldest first.
    pub async fn list_invoices(&self, tenant: &str, r: &InvoiceListInput) -> AppResult<(Vec<Invoice>, String)> {
        let mut v = Violations::new();
        v.check(r.page_size >= 0, "page_size", "must not be negative");
        let status = r.status.unwrap_or_else(|_| {
            v.add("status", "unknown status");
            None
        });
        let after =
            Cursor::decode_time(&r.page_token).map(|c| c.map(|(t, id)| Cursor::time(t, id))).unwrap_or_else(|_| {
                v.add("page_token", "is not a token this API issued");
                None
            });
        v.finish()?;
        let limit = page::page_size(r.page_size);
        let q = InvoiceQuery {
            account_id: some(&r.account_id),
            subscription_id: some(&r.subscription_id),
            status,
            after,
            limit: limit + 1,
        };
        let rows = self.repo.list_invoices(tenant, &q).await?;
        Ok(page::finish(rows, limit, |i| Cursor::time(i.created_at, i.id.clone())))
    }
}
