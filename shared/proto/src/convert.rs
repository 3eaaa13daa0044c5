//! Conversions between wire types and domain values that every service needs:
//! timestamps, money and addresses.

use chrono::{DateTime, Utc};
use recur_money::{Currency, DecimalError, Money};
use rust_decimal::Decimal;

use crate::common::v1 as pb;

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub fn opt_timestamp(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(timestamp)
}

/// `None` for a timestamp outside chrono's range or with invalid nanos.
pub fn from_timestamp(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    DateTime::from_timestamp(ts.seconds, nanos)
}

/// A rounded amount on the wire.
pub fn money(m: Money) -> pb::Money {
    pb::Money { currency_code: m.currency().code().to_string(), amount: recur_money::plain(m.amount()) }
}

/// `amount` rounded to `currency`, on the wire. Amounts that are already
/// exact in the currency (every line and total the engine makes) skip the
/// rounding; only their scale is padded ("12.5" → "12.50").
pub fn money_of(amount: Decimal, currency: Currency) -> pb::Money {
    if amount.scale() == currency.minor_units() {
        return pb::Money { currency_code: currency.code().to_string(), amount: recur_money::plain(amount) };
    }
    money(Money::new(amount, currency))
}

/// Why a wire `Money` was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum MoneyError {
    /// The problem is in `currency_code`.
    Currency(String),
    /// The problem is in `amount`.
    Amount(DecimalError),
}

/// Reads a wire `Money`: a known currency and an amount exact in it.
pub fn parse_money(m: &pb::Money) -> Result<Money, MoneyError> {
    let currency = Currency::from_code(&m.currency_code)
        .ok_or_else(|| MoneyError::Currency(format!("unknown currency {:?}", m.currency_code)))?;
    let amount = recur_money::parse_amount(&m.amount, currency).map_err(MoneyError::Amount)?;
    Ok(Money::new(amount, currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_000).expect("valid");
        assert_eq!(from_timestamp(&timestamp(t)), Some(t));
        assert_eq!(from_timestamp(&prost_types::Timestamp { seconds: 0, nanos: -1 }), None);
    }

    #[test]
    fn money_parses_exactly() {
        let m = parse_money(&pb::Money { currency_code: "USD".into(), amount: "12.50".into() }).expect("valid");
        assert_eq!(money(m).amount, "12.50");
        assert!(matches!(
            parse_money(&pb::Money { currency_code: "usd".into(), amount: "1".into() }),
            Err(MoneyError::Currency(_))
        ));
        assert_eq!(
            parse_money(&pb::Money { currency_code: "JPY".into(), amount: "1.5".into() }),
            Err(MoneyError::Amount(DecimalError::TooManyPlaces(0)))
        );
    }
}

/// A wire address as every service keeps it (absent: all empty).
pub fn address_in(a: Option<&pb::Address>) -> recur_contact::Address {
    a.map(|a| recur_contact::Address {
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        state: a.state.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.clone(),
    })
    .unwrap_or_default()
}

/// An address on the wire.
pub fn address_pb(a: &recur_contact::Address) -> pb::Address {
    pb::Address {
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        state: a.state.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.clone(),
    }
}
