//! Money in Recur is a `rust_decimal::Decimal` tied to an ISO 4217 currency.
//!
//! Unit prices may carry more places than the currency (0.0012 per API call);
//! every amount that is charged, invoiced or shown as a total is rounded here,
//! in [`Currency::round`], half-up (away from zero on a tie, the convention of
//! Kill Bill and Lago). Totals are sums of rounded lines, so they always add up.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// A currency Recur accepts, with its number of minor-unit places.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    minor_units: u32,
}

impl Currency {
    /// Looks up an ISO 4217 code (upper case, exactly as the standard spells it).
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES.iter().find(|(c, _)| *c == code).map(|&(code, minor_units)| Currency { code, minor_units })
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Places after the decimal point in the currency's minor unit (JPY 0, USD 2, KWD 3).
    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }

    /// The single rounding rule of Recur: half-up to the currency's minor units.
    pub fn round(&self, amount: Decimal) -> Decimal {
        let mut rounded = amount.round_dp_with_strategy(self.minor_units, RoundingStrategy::MidpointAwayFromZero);
        // Present every amount with exactly the currency's places ("100.00").
        rounded.rescale(self.minor_units);
        rounded
    }

    /// Whether `amount` needs no rounding in this currency.
    pub fn is_exact(&self, amount: Decimal) -> bool {
        amount.normalize().scale() <= self.minor_units
    }

    /// Zero, with the currency's scale.
    pub fn zero(&self) -> Money {
        Money::new(Decimal::ZERO, *self)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::from_code(&code).ok_or_else(|| serde::de::Error::custom(format!("unknown currency {code:?}")))
    }
}

/// An amount already rounded to its currency. The only way to make one is
/// through [`Money::new`], which rounds, so a `Money` never carries more
/// places than its currency allows.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Rounds `amount` half-up to the currency's minor units.
    pub fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount: currency.round(amount), currency }
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    /// Adds two amounts of the same currency; `None` when the currencies differ.
    pub fn checked_add(&self, other: Money) -> Option<Money> {
        (self.currency == other.currency).then(|| Money::new(self.amount + other.amount, self.currency))
    }

    /// Sums rounded lines. Because each line is already rounded, the sum is
    /// exact and needs no further rounding.
    pub fn sum<I: IntoIterator<Item = Money>>(currency: Currency, lines: I) -> Option<Money> {
        lines.into_iter().try_fold(currency.zero(), |acc, line| acc.checked_add(line))
    }

    /// The amount in minor units (cents for USD), as payment providers expect.
    pub fn minor_amount(&self) -> Option<i64> {
        let scaled = self.amount.checked_mul(Decimal::from(10_i64.pow(self.currency.minor_units)))?;
        i64::try_from(scaled.trunc()).ok()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency.code)
    }
}

/// A decimal as a plain string ("1375.65", "-0.0012"), keeping its scale,
/// written straight from its digits: several times faster than `Display`,
/// which matters when a response carries dozens of amounts. Zero is never
/// signed ("0.00", not "-0.00").
pub fn plain(d: Decimal) -> String {
    let scale = d.scale() as usize;
    let mut digits = [0u8; 40];
    let mut n = 0;
    let mut u = d.mantissa().unsigned_abs();
    loop {
        digits[n] = b'0' + (u % 10) as u8;
        u /= 10;
        n += 1;
        if u == 0 {
            break;
        }
    }
    while n <= scale {
        digits[n] = b'0';
        n += 1;
    }
    let mut out = String::with_capacity(n + 2);
    if d.is_sign_negative() && !d.is_zero() {
        out.push('-');
    }
    for i in (0..n).rev() {
        out.push(digits[i] as char);
        if i == scale && scale > 0 {
            out.push('.');
        }
    }
    out
}

/// Why a decimal string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("must be a decimal number such as \"12.50\"")]
    NotANumber,
    #[error("must not be negative")]
    Negative,
    #[error("must have at most {0} decimal places")]
    TooManyPlaces(u32),
    #[error("is too large")]
    TooLarge,
    #[error("has more significant digits than can be kept exactly (at most 28)")]
    TooManyDigits,
}

/// Most places after the point a decimal may have (`Decimal`'s largest scale).
pub const MAX_PLACES: u32 = 28;

/// Parses a plain decimal string ("12", "-3.50", "0.0012"). No exponent, no
/// whitespace, no thousands separators: what a caller sends is what is
/// stored, exactly: a string whose value (or places) `Decimal` could only
/// hold rounded is refused, never rounded. Zero is never negative.
pub fn parse_decimal(s: &str) -> Result<Decimal, DecimalError> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let valid_shape = !body.is_empty()
        && body.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        && body.bytes().filter(|&c| c == b'.').count() <= 1
        && !body.starts_with('.')
        && !body.ends_with('.');
    if !valid_shape {
        return Err(DecimalError::NotANumber);
    }
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if frac.len() > MAX_PLACES as usize {
        return Err(DecimalError::TooManyPlaces(MAX_PLACES));
    }
    // 29 digits is the most a 96-bit mantissa holds (79228162514264337593543950335).
    if int.trim_start_matches('0').len() > 29 {
        return Err(DecimalError::TooLarge);
    }
    let mut d = Decimal::from_str(s).map_err(|_| DecimalError::TooLarge)?;
    // `Decimal` rounds away places it cannot hold beside a long integer part.
    if d.scale() as usize != frac.len() {
        return Err(DecimalError::TooManyDigits);
    }
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    Ok(d)
}

/// Parses a decimal that must not be negative.
pub fn parse_non_negative(s: &str) -> Result<Decimal, DecimalError> {
    let d = parse_decimal(s)?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(DecimalError::Negative);
    }
    Ok(d)
}

/// Parses an amount in `currency` that must be exact in its minor units.
pub fn parse_amount(s: &str, currency: Currency) -> Result<Decimal, DecimalError> {
    let d = parse_decimal(s)?;
    if !currency.is_exact(d) {
        return Err(DecimalError::TooManyPlaces(currency.minor_units()));
    }
    Ok(d)
}

/// The default ceiling of a single charge, refund, invoice line or price, in
/// minor units of its currency: 999,999.99 USD, 99,999,999 JPY, 99,999.999
/// KWD (Stripe's limit for a charge).
pub const DEFAULT_CEILING_MINOR_UNITS: i64 = 99_999_999;
/// The largest ceiling a tenant may configure, in minor units
/// (9,999,999,999,999.99 USD): every amount under it fits a provider's
/// 64-bit minor units, and sums of thousands of lines stay far from
/// `Decimal`'s range.
pub const MAX_CEILING_MINOR_UNITS: i64 = 999_999_999_999_999;

impl Currency {
    /// The ceiling of `currency` when the tenant sets none:
    /// [`DEFAULT_CEILING_MINOR_UNITS`] of its minor units.
    pub fn default_ceiling(&self) -> Money {
        Money::new(Decimal::new(DEFAULT_CEILING_MINOR_UNITS, self.minor_units), *self)
    }

    /// The largest ceiling a tenant may set ([`MAX_CEILING_MINOR_UNITS`]).
    pub fn max_ceiling(&self) -> Money {
        Money::new(Decimal::new(MAX_CEILING_MINOR_UNITS, self.minor_units), *self)
    }
}

/// An amount above its ceiling: refused as INVALID_ARGUMENT
/// `AMOUNT_TOO_LARGE`, naming the field and the ceiling
/// ("amount: at most 999999.99 USD").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: at most {ceiling}")]
pub struct AmountTooLarge {
    /// Path of the offending field in the request.
    pub field: String,
    pub ceiling: Money,
}

/// The `ErrorInfo` reason of an amount above its ceiling.
pub const AMOUNT_TOO_LARGE: &str = "AMOUNT_TOO_LARGE";

impl AmountTooLarge {
    /// What the field violation says.
    pub fn description(&self) -> String {
        format!("at most {}", self.ceiling)
    }

    /// INVALID_ARGUMENT `AMOUNT_TOO_LARGE` with every violation in `errors`
    /// (the first one's message when there is one).
    pub fn into_error(errors: Vec<AmountTooLarge>) -> recur_error::AppError {
        let message = match errors.as_slice() {
            [only] => only.to_string(),
            many => format!("{} amounts are too large", many.len()),
        };
        let mut e = recur_error::AppError::new(tonic::Code::InvalidArgument, AMOUNT_TOO_LARGE, message);
        if let Some(first) = errors.first() {
            e = e
                .with_metadata("max_amount", plain(first.ceiling.amount()))
                .with_metadata("currency_code", first.ceiling.currency().code());
        }
        for x in &errors {
            e = e.with_field(x.field.clone(), x.description());
        }
        e
    }
}

impl From<AmountTooLarge> for recur_error::AppError {
    fn from(e: AmountTooLarge) -> recur_error::AppError {
        AmountTooLarge::into_error(vec![e])
    }
}

/// `Ok` when `amount` (in `ceiling`'s currency) is at most `ceiling`. Credits
/// count by their size: a line of -10^20 is as absurd as one of 10^20.
pub fn check_ceiling(field: &str, amount: Decimal, ceiling: Money) -> Result<(), AmountTooLarge> {
    if amount.abs() <= ceiling.amount() { Ok(()) } else { Err(AmountTooLarge { field: field.to_string(), ceiling }) }
}

/// Why a configured ceiling was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CeilingError {
    #[error("unknown ISO 4217 currency {0:?}")]
    UnknownCurrency(String),
    #[error("{0}")]
    Amount(DecimalError),
    #[error("must be greater than zero")]
    NotPositive,
    #[error("must be at most {0}")]
    AboveMaximum(Money),
}

/// Per-currency ceilings of a tenant; a currency not listed has its
/// [`Currency::default_ceiling`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ceilings(std::collections::BTreeMap<&'static str, Money>);

impl Ceilings {
    /// No currency listed: every one at its default.
    pub fn new() -> Ceilings {
        Ceilings::default()
    }

    /// Reads one configured ceiling: a positive decimal exact in the
    /// currency's minor units, at most [`Currency::max_ceiling`].
    pub fn parse_one(code: &str, amount: &str) -> Result<Money, CeilingError> {
        let currency = Currency::from_code(code).ok_or_else(|| CeilingError::UnknownCurrency(code.to_string()))?;
        let d = parse_amount(amount, currency).map_err(CeilingError::Amount)?;
        if d <= Decimal::ZERO {
            return Err(CeilingError::NotPositive);
        }
        let max = currency.max_ceiling();
        if d > max.amount() {
            return Err(CeilingError::AboveMaximum(max));
        }
        Ok(Money::new(d, currency))
    }

    /// Reads `currency code → amount` entries, every problem at once:
    /// `Err` lists each refused entry's code and why.
    pub fn parse<'a, I>(entries: I) -> Result<Ceilings, Vec<(String, CeilingError)>>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut out = Ceilings::new();
        let mut errors = Vec::new();
        for (code, amount) in entries {
            match Ceilings::parse_one(code, amount) {
                Ok(m) => out.set(m),
                Err(e) => errors.push((code.to_string(), e)),
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }

    /// Like [`Ceilings::parse`] for values validated when they were stored:
    /// an entry that cannot be read is left out (its currency keeps the
    /// default) rather than failing the caller.
    pub fn lenient<'a, I>(entries: I) -> Ceilings
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut out = Ceilings::new();
        for (code, amount) in entries {
            if let Ok(m) = Ceilings::parse_one(code, amount) {
                out.set(m);
            }
        }
        out
    }

    /// Sets the ceiling of `ceiling`'s currency.
    pub fn set(&mut self, ceiling: Money) {
        self.0.insert(ceiling.currency().code(), ceiling);
    }

    /// The configured ceiling of `currency`, if any.
    pub fn configured(&self, currency: Currency) -> Option<Money> {
        self.0.get(currency.code()).copied()
    }

    /// The ceiling of `currency`: configured, else the default.
    pub fn of(&self, currency: Currency) -> Money {
        self.configured(currency).unwrap_or_else(|| currency.default_ceiling())
    }

    /// `self`'s ceilings, and `fallback`'s for currencies `self` leaves out.
    pub fn or(&self, fallback: &Ceilings) -> Ceilings {
        let mut out = fallback.clone();
        out.0.extend(self.0.iter().map(|(k, v)| (*k, *v)));
        out
    }

    /// Checks `amount` in `currency` against the currency's ceiling.
    pub fn check(&self, field: &str, amount: Decimal, currency: Currency) -> Result<(), AmountTooLarge> {
        check_ceiling(field, amount, self.of(currency))
    }

    /// The configured ceilings, by currency code.
    pub fn iter(&self) -> impl Iterator<Item = Money> + '_ {
        self.0.values().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// ISO 4217 active codes and their minor units (list of 2024). Funds codes and
/// precious metals without a minor unit are left out on purpose.
#[rustfmt::skip]
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2),
    ("AUD", 2), ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2),
    ("BHD", 3), ("BIF", 0), ("BMD", 2), ("BND", 2), ("BOB", 2), ("BRL", 2), ("BSD", 2),
    ("BTN", 2), ("BWP", 2), ("BYN", 2), ("BZD", 2), ("CAD", 2), ("CDF", 2), ("CHF", 2),
    ("CLF", 4), ("CLP", 0), ("CNY", 2), ("COP", 2), ("CRC", 2), ("CUP", 2), ("CVE", 2),
    ("CZK", 2), ("DJF", 0), ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2),
    ("ETB", 2), ("EUR", 2), ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2),
    ("GIP", 2), ("GMD", 2), ("GNF", 0), ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2),
    ("HTG", 2), ("HUF", 2), ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2),
    ("ISK", 0), ("JMD", 2), ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2),
    ("KMF", 0), ("KPW", 2), ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2),
    ("LBP", 2), ("LKR", 2), ("LRD", 2), ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2),
    ("MGA", 2), ("MKD", 2), ("MMK", 2), ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2),
    ("MVR", 2), ("MWK", 2), ("MXN", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2),
    ("NIO", 2), ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2),
    ("PGK", 2), ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2),
    ("RSD", 2), ("RUB", 2), ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2),
    ("SEK", 2), ("SGD", 2), ("SHP", 2), ("SLE", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2),
    ("STN", 2), ("SVC", 2), ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2),
    ("TND", 3), ("TOP", 2), ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2),
    ("UGX", 0), ("USD", 2), ("UYU", 2), ("UYW", 4), ("UZS", 2), ("VES", 2), ("VND", 0),
    ("VUV", 0), ("WST", 2), ("XAF", 0), ("XCD", 2), ("XOF", 0), ("XPF", 0), ("YER", 2),
    ("ZAR", 2), ("ZMW", 2), ("ZWG", 2),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test literal")
    }

    fn cur(code: &str) -> Currency {
        Currency::from_code(code).expect("known currency")
    }

    #[test]
    fn rounds_half_up_per_currency() {
        // (currency, raw amount, expected rounded amount as the currency shows it)
        let cases = [
            ("JPY", "100.4", "100"),
            ("JPY", "100.5", "101"),
            ("JPY", "-100.5", "-101"),
            ("JPY", "99.49999", "99"),
            ("USD", "10.004", "10.00"),
            ("USD", "10.005", "10.01"),
            ("USD", "10.015", "10.02"),
            ("USD", "-10.005", "-10.01"),
            ("USD", "0.0012", "0.00"),
            ("USD", "7", "7.00"),
            ("USD", "33.333333", "33.33"),
            ("KWD", "1.0004", "1.000"),
            ("KWD", "1.0005", "1.001"),
            ("KWD", "2.99951", "3.000"),
            ("KWD", "-0.0005", "-0.001"),
        ];
        for (code, raw, want) in cases {
            let got = cur(code).round(d(raw));
            assert_eq!(got.to_string(), want, "{code} {raw}");
        }
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(cur("JPY").minor_units(), 0);
        assert_eq!(cur("USD").minor_units(), 2);
        assert_eq!(cur("EUR").minor_units(), 2);
        assert_eq!(cur("KWD").minor_units(), 3);
        assert_eq!(cur("CLF").minor_units(), 4);
        assert!(Currency::from_code("usd").is_none(), "codes are upper case");
        assert!(Currency::from_code("XXX").is_none());
    }

    #[test]
    fn money_sums_rounded_lines_exactly() {
        let usd = cur("USD");
        // Three thirds of 100.00 each round to 33.33; the total is their sum,
        // 99.99, never a separately rounded 100.00.
        let third = Money::new(d("100") / d("3"), usd);
        let total = Money::sum(usd, [third, third, third]).expect("same currency");
        assert_eq!(total.amount().to_string(), "99.99");
        assert!(third.checked_add(Money::new(d("1"), cur("EUR"))).is_none());
    }

    #[test]
    fn minor_amount_in_cents() {
        assert_eq!(Money::new(d("12.34"), cur("USD")).minor_amount(), Some(1234));
        assert_eq!(Money::new(d("500"), cur("JPY")).minor_amount(), Some(500));
        assert_eq!(Money::new(d("1.234"), cur("KWD")).minor_amount(), Some(1234));
        // Too large for minor units: no answer, and no overflow panic.
        assert_eq!(Money::new(d("79228162514264337593543950335"), cur("USD")).minor_amount(), None);
        assert_eq!(Money::new(d("92233720368547758.08"), cur("USD")).minor_amount(), None);
    }

    #[test]
    fn plain_strings_match_display() {
        for s in [
            "0",
            "0.00",
            "1",
            "-1",
            "12.50",
            "0.0012",
            "-0.0012",
            "1375.65",
            "100",
            "123456789.123456789",
            "0.1",
            "-10.005",
        ] {
            assert_eq!(plain(d(s)), d(s).to_string(), "{s}");
        }
        assert_eq!(plain(-d("0.00")), "0.00", "no negative zero");
        assert_eq!(plain(Decimal::MAX), Decimal::MAX.to_string());
        assert_eq!(plain(Decimal::MIN), Decimal::MIN.to_string());
        assert_eq!(plain(Decimal::new(5, 28)), Decimal::new(5, 28).to_string());
    }

    #[test]
    fn parses_plain_decimals_only() {
        assert_eq!(parse_decimal("12.50"), Ok(d("12.50")));
        assert_eq!(parse_decimal("-3"), Ok(d("-3")));
        assert_eq!(parse_decimal("0.0012"), Ok(d("0.0012")));
        for bad in ["", "abc", "1e3", " 1", "1 ", "1.2.3", ".5", "5.", "+1", "--1", "1,000", "NaN"] {
            assert_eq!(parse_decimal(bad), Err(DecimalError::NotANumber), "{bad:?}");
        }
        assert_eq!(parse_non_negative("-0.01"), Err(DecimalError::Negative));
        assert_eq!(parse_non_negative("-0"), Ok(d("0")));
        assert_eq!(parse_amount("1.005", cur("USD")), Err(DecimalError::TooManyPlaces(2)));
        assert_eq!(parse_amount("1.50", cur("USD")), Ok(d("1.50")));
        assert_eq!(parse_amount("1.0", cur("JPY")), Ok(d("1.0")));
        assert_eq!(parse_amount("1.5", cur("JPY")), Err(DecimalError::TooManyPlaces(0)));
    }

    #[test]
    fn refuses_what_decimal_would_round() {
        assert_eq!(parse_decimal(&format!("1{}", "0".repeat(30))), Err(DecimalError::TooLarge));
        assert_eq!(parse_decimal("79228162514264337593543950336"), Err(DecimalError::TooLarge));
        assert_eq!(parse_decimal("79228162514264337593543950335"), Ok(Decimal::MAX));
        assert_eq!(parse_decimal("0.00000000000000000000000000001"), Err(DecimalError::TooManyPlaces(28)));
        assert_eq!(parse_decimal("1234567890123456789012345678.12"), Err(DecimalError::TooManyDigits));
        assert_eq!(parse_decimal("0.0000000000000000000000000001"), Ok(Decimal::new(1, 28)));
        assert_eq!(parse_decimal(&format!("{}1", "0".repeat(100))), Ok(Decimal::ONE), "leading zeros are harmless");
        let zero = parse_decimal("-0.00").expect("zero");
        assert!(!zero.is_sign_negative(), "zero is never negative");
        assert_eq!(plain(zero), "0.00");
    }

    #[test]
    fn default_ceilings_are_99999999_minor_units() {
        assert_eq!(cur("USD").default_ceiling().to_string(), "999999.99 USD");
        assert_eq!(cur("JPY").default_ceiling().to_string(), "99999999 JPY");
        assert_eq!(cur("KWD").default_ceiling().to_string(), "99999.999 KWD");
        assert_eq!(cur("USD").default_ceiling().minor_amount(), Some(DEFAULT_CEILING_MINOR_UNITS));
        // Every ceiling a tenant may set fits a provider's 64-bit minor units.
        assert_eq!(cur("CLF").max_ceiling().minor_amount(), Some(MAX_CEILING_MINOR_UNITS));
    }

    #[test]
    fn ceilings_check_amounts() {
        let usd = cur("USD");
        assert_eq!(check_ceiling("amount", d("999999.99"), usd.default_ceiling()), Ok(()));
        let err = check_ceiling("amount", d("1000000.00"), usd.default_ceiling()).expect_err("too large");
        assert_eq!(err.to_string(), "amount: at most 999999.99 USD");
        assert!(check_ceiling("x", d("-1000000"), usd.default_ceiling()).is_err(), "credits count by size");

        let c = Ceilings::parse([("USD", "5000.00"), ("JPY", "100000")]).expect("valid");
        assert_eq!(c.of(usd).to_string(), "5000.00 USD");
        assert_eq!(c.of(cur("EUR")), cur("EUR").default_ceiling(), "unlisted currencies keep the default");
        assert!(c.check("a", d("5000.01"), usd).is_err());
        assert!(c.check("a", d("5000.00"), usd).is_ok());
        let fallback = Ceilings::parse([("EUR", "10.00"), ("USD", "1.00")]).expect("valid");
        assert_eq!(c.or(&fallback).of(cur("EUR")).to_string(), "10.00 EUR");
        assert_eq!(c.or(&fallback).of(usd).to_string(), "5000.00 USD");

        let errs = Ceilings::parse([
            ("usd", "1"),
            ("USD", "0"),
            ("USD", "-5"),
            ("JPY", "1.5"),
            ("USD", "NaN"),
            ("USD", "10000000000000.00"),
        ])
        .expect_err("all refused");
        let why: Vec<String> = errs.iter().map(|(_, e)| e.to_string()).collect();
        assert_eq!(
            why,
            [
                "unknown ISO 4217 currency \"usd\"",
                "must be greater than zero",
                "must be greater than zero",
                "must have at most 0 decimal places",
                "must be a decimal number such as \"12.50\"",
                "must be at most 9999999999999.99 USD",
            ]
        );
        assert_eq!(Ceilings::lenient([("USD", "x"), ("EUR", "1.00")]).iter().count(), 1);
    }

    #[test]
    fn too_large_is_invalid_argument_naming_the_field() {
        let e: recur_error::AppError =
            check_ceiling("offerings[0].items[1].quantity", d("1000"), Money::new(d("10"), cur("USD")))
                .expect_err("too large")
                .into();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(e.reason(), "AMOUNT_TOO_LARGE");
        assert_eq!(e.message(), "offerings[0].items[1].quantity: at most 10.00 USD");
        assert_eq!(e.violations()[0].field, "offerings[0].items[1].quantity");
        assert_eq!(e.metadata("max_amount"), Some("10.00"));
        assert_eq!(e.metadata("currency_code"), Some("USD"));
    }
}
