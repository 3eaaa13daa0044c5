//! Time in the billing-clock tests: dates, wire timestamps and money, and a
//! tenant's test clock (put in test mode, advanced).

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use recur_proto::subscription::v1 as sub;
use rust_decimal::Decimal;

use crate::Clients;

/// `y-m-d` at `h` o'clock UTC.
pub fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("date")
}

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

/// A timestamp that must be there.
pub fn time(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().expect("timestamp");
    DateTime::from_timestamp(t.seconds, t.nanos as u32).expect("valid")
}

/// An amount of money that must be there.
pub fn amount(m: &Option<recur_proto::common::v1::Money>) -> Decimal {
    Decimal::from_str(&m.as_ref().expect("money").amount).expect("decimal")
}

/// Puts the caller's tenant in test mode at `start`; answers its time.
pub async fn enable(c: &mut Clients, start: DateTime<Utc>) -> DateTime<Utc> {
    let r = c.clock.enable_test_mode(sub::EnableTestModeRequest { start_time: Some(ts(start)) }).await;
    time(&r.expect("test mode").into_inner().clock.expect("clock").now)
}

/// Moves the caller's test clock to `to`, doing all that falls due.
pub async fn advance(c: &mut Clients, to: DateTime<Utc>) -> sub::AdvanceClockResponse {
    c.clock
        .advance_clock(sub::AdvanceClockRequest { target: Some(sub::advance_clock_request::Target::To(ts(to))) })
        .await
        .expect("advance")
        .into_inner()
}
