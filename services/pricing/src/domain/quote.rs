//! Assembling a quote: each line rated, rounded once to the currency, taxed;
//! every total is the sum of its rounded lines.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use recur_money::Currency;
use rust_decimal::Decimal;

use super::coupon::{CouponSpec, Discountable, LineDiscount, allocate};
use super::period::{Anchor, Period, Unit, local_midnight, next_start};
use super::rating::{PriceSpec, Rated, rate};
use super::tax::{TaxRule, taxed};

/// When a line is charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Billing {
    /// At the start of each period.
    InAdvance,
    /// At the end of each period (in-arrears rates, metered usage).
    InArrears,
    /// Once, on the first invoice.
    OneTime,
}

#[derive(Clone, Debug)]
pub struct CartLine {
    pub product_id: String,
    pub name: String,
    pub billing: Billing,
    pub quantity: Decimal,
    pub price: PriceSpec,
}

#[derive(Clone, Debug)]
pub struct RateTerms {
    pub rate_id: String,
    pub currency: Currency,
    pub period: Period,
    pub trial_days: u32,
    pub setup_fee: Option<Decimal>,
}

#[derive(Clone, Debug)]
pub struct CartOffering {
    pub offering_id: String,
    pub rate: RateTerms,
    pub lines: Vec<CartLine>,
}

#[derive(Clone, Debug)]
pub struct QuoteInput {
    pub offerings: Vec<CartOffering>,
    pub start_date: NaiveDate,
    pub tz: Tz,
    pub tax: Option<TaxRule>,
    /// Applied in this order.
    pub coupons: Vec<CouponSpec>,
    /// Calendar billing: monthly periods start on this day (1-31).
    pub billing_day: Option<u32>,
    /// How a first period shortened by the billing day is prorated.
    pub by_second: bool,
}

/// A line's amounts, each already rounded to the currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amounts {
    pub without_tax: Decimal,
    pub discount: Decimal,
    pub tax: Decimal,
    pub amount: Decimal,
}

impl Amounts {
    fn add(self, other: Amounts) -> Amounts {
        Amounts {
            without_tax: self.without_tax + other.without_tax,
            discount: self.discount + other.discount,
            tax: self.tax + other.tax,
            amount: self.amount + other.amount,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    Product,
    SetupFee,
}

#[derive(Clone, Debug)]
pub struct QuotedItem {
    pub kind: ItemKind,
    pub product_id: String,
    pub description: String,
    pub quantity: Decimal,
    pub billing: Billing,
    /// Charged now (first invoice).
    pub now: Amounts,
    /// Charged for each following full period.
    pub recurring: Amounts,
    pub rated: Rated,
    /// The price the line was rated with (`None` for a setup fee).
    pub price: Option<PriceSpec>,
    /// Codes of the coupons that discount this line now.
    pub coupon_codes: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct QuotedOffering {
    pub offering_id: String,
    pub rate_id: String,
    pub items: Vec<QuotedItem>,
    pub now: Amounts,
    pub recurring: Amounts,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub trial_end: Option<DateTime<Utc>>,
    pub next_billing: DateTime<Utc>,
    /// The anchor a contract made from this quote keeps: the first billed
    /// period's start (the trial's end when there is one), or the billing
    /// day.
    pub anchor: Anchor,
    /// The part of a whole period the first one is (1 unless a billing day
    /// shortened it).
    pub first_fraction: Decimal,
}

#[derive(Clone, Debug)]
pub struct Quote {
    /// Midnight of the start date in the account's time zone.
    pub start: DateTime<Utc>,
    pub currency: Currency,
    pub offerings: Vec<QuotedOffering>,
    pub now: Amounts,
    pub recurring: Amounts,
    pub tax: Option<TaxRule>,
    /// Each fixed-amount coupon discounting this invoice, with what of its
    /// amount the lines left (for the invoice's in-arrears lines).
    pub fixed_left: Vec<(String, Decimal)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum QuoteError {
    /// Offerings priced in different currencies cannot share a cart.
    MixedCurrencies { offering_index: usize },
    /// A date computation left the calendar (absurd periods or start dates).
    OutOfRange { offering_index: usize },
}

/// A line before discounts and tax: what it costs in full, and whether it
/// is charged now and in each following period.
struct Draft {
    offering: usize,
    kind: ItemKind,
    product_id: String,
    description: String,
    quantity: Decimal,
    billing: Billing,
    full: Decimal,
    /// What the first period charges: `full`, or prorated when a billing
    /// day shortened it.
    first: Decimal,
    now: bool,
    recurring: bool,
    rated: Rated,
    price: Option<PriceSpec>,
}

/// The first period of calendar billing on `day`: from `start` to the next
/// such day (none when `start` is on it), anchored there, and the part of
/// the whole period ending then that it is: whole days in `tz`, or seconds.
fn calendar_period(
    start: NaiveDate,
    day: u32,
    period: Period,
    tz: Tz,
    by_second: bool,
) -> Option<(Anchor, NaiveDate, Decimal)> {
    use super::period::nth_after;
    let anchor = Anchor::new(day, 0)?;
    let month = Period { unit: super::period::Unit::Month, count: 1 };
    let this_month = nth_after(start.with_day(1)?, anchor, month, 0)?;
    if this_month == start {
        return Some((anchor, next_start(start, anchor, period)?, Decimal::ONE));
    }
    let end = if this_month > start { this_month } else { nth_after(start.with_day(1)?, anchor, month, 1)? };
    let whole_start =
        nth_after(end.checked_sub_months(chrono::Months::new(period.count))?.with_day(1)?, anchor, month, 0)?;
    let (part, whole) = if by_second {
        let at = |d: NaiveDate| local_midnight(d, tz);
        ((at(end) - at(start)).num_seconds(), (at(end) - at(whole_start)).num_seconds())
    } else {
        ((end - start).num_days(), (end - whole_start).num_days())
    };
    if whole <= 0 {
        return None;
    }
    Some((anchor, end, Decimal::from(part) / Decimal::from(whole)))
}

/// Prices a cart.
pub fn quote(input: &QuoteInput) -> Result<Quote, QuoteError> {
    let currency = input
        .offerings
        .first()
        .map(|o| o.rate.currency)
        .unwrap_or_else(|| Currency::from_code("USD").unwrap_or_else(|| unreachable!("USD is a known currency")));
    let tax = input.tax.as_ref();

    // 1. Periods, and every line rated and rounded once.
    let mut periods = Vec::with_capacity(input.offerings.len());
    let mut drafts: Vec<Draft> = Vec::new();
    for (index, o) in input.offerings.iter().enumerate() {
        if o.rate.currency != currency {
            return Err(QuoteError::MixedCurrencies { offering_index: index });
        }
        let out_of_range = || QuoteError::OutOfRange { offering_index: index };
        // A trial shifts the first billed period to start when it ends, and
        // the contract is anchored there (as Stripe anchors at the trial's
        // end): a 14-day trial from Jan 17 bills on the 31st of each month.
        // Anchoring on the start date instead would make the first billed
        // period a stub of two weeks.
        let first_billed =
            input.start_date.checked_add_days(Days::new(u64::from(o.rate.trial_days))).ok_or_else(out_of_range)?;
        let (anchor, first_end, fraction) = match input.billing_day.filter(|_| o.rate.period.unit == Unit::Month) {
            Some(day) => {
                calendar_period(first_billed, day, o.rate.period, input.tz, input.by_second).ok_or_else(out_of_range)?
            }
            None => {
                let anchor = Anchor::of(first_billed, o.rate.period);
                (anchor, next_start(first_billed, anchor, o.rate.period).ok_or_else(out_of_range)?, Decimal::ONE)
            }
        };
        let in_trial = o.rate.trial_days > 0;
        periods.push((
            local_midnight(first_billed, input.tz),
            local_midnight(first_end, input.tz),
            in_trial,
            anchor,
            fraction,
        ));
        for line in &o.lines {
            let rated = rate(&line.price, line.quantity);
            drafts.push(Draft {
                offering: index,
                kind: ItemKind::Product,
                product_id: line.product_id.clone(),
                description: line.name.clone(),
                quantity: line.quantity,
                billing: line.billing,
                full: currency.round(rated.amount),
                first: if line.billing == Billing::InAdvance && fraction != Decimal::ONE {
                    currency.round(rated.amount * fraction)
                } else {
                    currency.round(rated.amount)
                },
                now: match line.billing {
                    Billing::OneTime => true,
                    Billing::InAdvance => !in_trial,
                    Billing::InArrears => false,
                },
                recurring: line.billing != Billing::OneTime,
                rated,
                price: Some(line.price.clone()),
            });
        }
        if let Some(fee) = o.rate.setup_fee.filter(|f| !f.is_zero()) {
            drafts.push(Draft {
                offering: index,
                kind: ItemKind::SetupFee,
                product_id: String::new(),
                description: "Setup fee".into(),
                quantity: Decimal::ONE,
                billing: Billing::OneTime,
                full: currency.round(fee),
                first: currency.round(fee),
                now: true,
                recurring: false,
                rated: Rated { amount: fee, tiers: Vec::new() },
                price: None,
            });
        }
    }

    // 2. Discounts: on this invoice, then on the next period's. A coupon's
    // first period is the first invoice it actually discounts.
    let discountable = |include: &dyn Fn(&Draft) -> bool| -> Vec<Discountable<'_>> {
        drafts
            .iter()
            .map(|d| Discountable {
                offering_id: &input.offerings[d.offering].offering_id,
                product_id: (d.kind == ItemKind::Product).then_some(d.product_id.as_str()),
                base: if include(d) { d.full } else { Decimal::ZERO },
            })
            .collect()
    };
    // This invoice's lines are the first period's (prorated) amounts.
    let discountable_now = || -> Vec<Discountable<'_>> {
        drafts
            .iter()
            .map(|d| Discountable {
                offering_id: &input.offerings[d.offering].offering_id,
                product_id: (d.kind == ItemKind::Product).then_some(d.product_id.as_str()),
                base: if d.now { d.first } else { Decimal::ZERO },
            })
            .collect()
    };
    let now_coupons: Vec<&CouponSpec> = input.coupons.iter().filter(|c| c.active_in(0)).collect();
    let now_discounts = allocate(&discountable_now(), &now_coupons, currency);
    let fixed_left = super::coupon::fixed_left(&now_discounts, &now_coupons, currency);
    let used_now = |code: &str| now_discounts.iter().any(|l| l.codes.iter().any(|c| c == code));
    let next_coupons: Vec<&CouponSpec> =
        input.coupons.iter().filter(|c| c.active_in(if used_now(&c.code) { 1 } else { 0 })).collect();
    let next_discounts = allocate(&discountable(&|d| d.recurring), &next_coupons, currency);

    // 3. Tax on what is left, line by line; totals are sums of lines.
    let mut offerings: Vec<QuotedOffering> = input
        .offerings
        .iter()
        .zip(&periods)
        .map(|(o, &(period_start, period_end, in_trial, anchor, first_fraction))| QuotedOffering {
            offering_id: o.offering_id.clone(),
            rate_id: o.rate.rate_id.clone(),
            items: Vec::new(),
            now: Amounts::default(),
            recurring: Amounts::default(),
            period_start,
            period_end,
            trial_end: in_trial.then_some(period_start),
            // In advance the next invoice is at the period's end; in arrears,
            // too (that is when the period is billed). During a trial, the
            // first invoice comes when the trial ends.
            next_billing: if in_trial { period_start } else { period_end },
            anchor,
            first_fraction,
        })
        .collect();
    for ((d, now_d), next_d) in drafts.into_iter().zip(now_discounts).zip(next_discounts) {
        let amounts = |include: bool, base: Decimal, discount: &LineDiscount| {
            if include { taxed(base, discount.amount, currency, tax) } else { Amounts::default() }
        };
        let now = amounts(d.now, d.first, &now_d);
        let recurring = amounts(d.recurring, d.full, &next_d);
        let o = &mut offerings[d.offering];
        o.now = o.now.add(now);
        o.recurring = o.recurring.add(recurring);
        o.items.push(QuotedItem {
            kind: d.kind,
            product_id: d.product_id,
            description: d.description,
            quantity: d.quantity,
            billing: d.billing,
            now,
            recurring,
            rated: d.rated,
            price: d.price,
            coupon_codes: now_d.codes,
        });
    }
    let now = offerings.iter().fold(Amounts::default(), |acc, o| acc.add(o.now));
    let recurring = offerings.iter().fold(Amounts::default(), |acc, o| acc.add(o.recurring));
    Ok(Quote {
        start: local_midnight(input.start_date, input.tz),
        currency,
        offerings,
        now,
        recurring,
        tax: input.tax.clone(),
        fixed_left,
    })
}

#[cfg(test)]
mod tests {
    use super::super::period::Unit;
    use super::super::rating::{Model, Tier};
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("literal")
    }

    fn usd() -> Currency {
        Currency::from_code("USD").expect("usd")
    }

    fn flat(amount: &str) -> PriceSpec {
        PriceSpec { model: Model::Flat, unit_amount: d("0"), flat_amount: d(amount), tiers: vec![], package_size: 1 }
    }

    fn per_unit(amount: &str) -> PriceSpec {
        PriceSpec { model: Model::PerUnit, unit_amount: d(amount), flat_amount: d("0"), tiers: vec![], package_size: 1 }
    }

    fn line(id: &str, billing: Billing, quantity: &str, price: PriceSpec) -> CartLine {
        CartLine { product_id: id.into(), name: id.into(), billing, quantity: d(quantity), price }
    }

    fn offering(trial_days: u32, setup_fee: Option<&str>, lines: Vec<CartLine>) -> CartOffering {
        CartOffering {
            offering_id: "offr_1".into(),
            rate: RateTerms {
                rate_id: "rate_1".into(),
                currency: usd(),
                period: Period { unit: Unit::Month, count: 1 },
                trial_days,
                setup_fee: setup_fee.map(d),
            },
            lines,
        }
    }

    fn input(offerings: Vec<CartOffering>, tax: Option<TaxRule>) -> QuoteInput {
        QuoteInput {
            offerings,
            start_date: NaiveDate::from_ymd_opt(2024, 1, 31).expect("date"),
            tz: chrono_tz::UTC,
            tax,
            coupons: vec![],
            billing_day: None,
            by_second: false,
        }
    }

    #[test]
    fn a_billing_day_shortens_and_prorates_the_first_period() {
        // Started Jan 10 2024, billed on the 1st: Jan 10 -> Feb 1 is 22 of
        // January's 31 days: 31.00 x 22/31 = 22.00 now, 31.00 a month after;
        // the one-time line is not prorated.
        let mut i = input(
            vec![offering(
                0,
                None,
                vec![
                    line("seat", Billing::InAdvance, "1", flat("31.00")),
                    line("kit", Billing::OneTime, "1", flat("5.00")),
                ],
            )],
            None,
        );
        i.start_date = NaiveDate::from_ymd_opt(2024, 1, 10).expect("date");
        i.billing_day = Some(1);
        let q = quote(&i).expect("quote");
        let o = &q.offerings[0];
        assert_eq!(o.period_end, local_midnight(NaiveDate::from_ymd_opt(2024, 2, 1).expect("date"), chrono_tz::UTC));
        assert_eq!(o.anchor, Anchor { day: 1, month: 0 });
        assert_eq!(o.first_fraction, d("22") / d("31"));
        assert_eq!(o.items[0].now.amount, d("22.00"));
        assert_eq!(o.items[1].now.amount, d("5.00"));
        assert_eq!(o.recurring.amount, d("31.00"));
        assert_eq!(q.now.amount, d("27.00"));
        // On the billing day itself: a whole first period.
        i.start_date = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
        let q = quote(&i).expect("quote");
        assert_eq!((q.offerings[0].first_fraction, q.offerings[0].items[0].now.amount), (Decimal::ONE, d("31.00")));
        // Billed on the 31st from Feb 10: Feb 10 -> Feb 29 (the 31st clamps)
        // of Jan 31 -> Feb 29, 19 of 29 days: 31.00 x 19/29 = 20.31.
        i.start_date = NaiveDate::from_ymd_opt(2024, 2, 10).expect("date");
        i.billing_day = Some(31);
        let q = quote(&i).expect("quote");
        assert_eq!(q.offerings[0].items[0].now.amount, d("20.31"));
        assert_eq!(
            q.offerings[0].period_end,
            local_midnight(NaiveDate::from_ymd_opt(2024, 2, 29).expect("date"), chrono_tz::UTC)
        );
    }

    #[test]
    fn a_monthly_flat_plan() {
        let q =
            quote(&input(vec![offering(0, None, vec![line("prod_a", Billing::InAdvance, "1", flat("100"))])], None))
                .expect("quote");
        assert_eq!(q.now.amount, d("100.00"));
        assert_eq!(q.recurring.amount, d("100.00"));
        let o = &q.offerings[0];
        assert_eq!(o.period_start.to_rfc3339(), "2024-01-31T00:00:00+00:00");
        // Anchored on the 31st: the period ends on Feb 29 (leap year).
        assert_eq!(o.period_end.to_rfc3339(), "2024-02-29T00:00:00+00:00");
        assert_eq!(o.next_billing, o.period_end);
        assert_eq!(o.trial_end, None);
        assert_eq!(o.anchor, Anchor { day: 31, month: 0 });
    }

    #[test]
    fn yearly_anchors_name_their_month() {
        let mut yearly = offering(0, None, vec![line("prod_a", Billing::InAdvance, "1", flat("100"))]);
        yearly.rate.period = Period { unit: Unit::Year, count: 1 };
        let mut i = input(vec![yearly], None);
        i.start_date = NaiveDate::from_ymd_opt(2024, 2, 29).expect("date");
        let o = &quote(&i).expect("quote").offerings[0];
        assert_eq!(o.anchor, Anchor { day: 29, month: 2 });
        assert_eq!(o.period_end.to_rfc3339(), "2025-02-28T00:00:00+00:00");
    }

    #[test]
    fn lines_round_once_and_totals_are_their_sums() {
        // 3 × 33.333 = 99.999 → 100.00; 7 × 0.0012 = 0.0084 → 0.01.
        let q = quote(&input(
            vec![offering(
                0,
                None,
                vec![
                    line("prod_a", Billing::InAdvance, "3", per_unit("33.333")),
                    line("prod_b", Billing::InAdvance, "7", per_unit("0.0012")),
                ],
            )],
            Some(TaxRule { percent: d("8.25"), jurisdiction: "US-CA".into(), inclusive: false }),
        ))
        .expect("quote");
        let items = &q.offerings[0].items;
        assert_eq!(items[0].now.without_tax, d("100.00"));
        // 100.00 × 8.25% = 8.25
        assert_eq!(items[0].now.tax, d("8.25"));
        assert_eq!(items[1].now.without_tax, d("0.01"));
        // 0.01 × 8.25% = 0.000825 → 0.00
        assert_eq!(items[1].now.tax, d("0.00"));
        assert_eq!(q.now.without_tax, d("100.01"));
        assert_eq!(q.now.tax, d("8.25"));
        assert_eq!(q.now.amount, d("108.26"));
        assert_eq!(q.now.amount, items.iter().map(|i| i.now.amount).sum::<Decimal>());
    }

    #[test]
    fn trials_defer_the_first_charge_but_not_the_setup_fee() {
        let q = quote(&input(
            vec![offering(14, Some("25"), vec![line("prod_a", Billing::InAdvance, "1", flat("100"))])],
            None,
        ))
        .expect("quote");
        let o = &q.offerings[0];
        assert_eq!(q.now.amount, d("25.00"), "only the setup fee is due now");
        assert_eq!(q.recurring.amount, d("100.00"));
        assert_eq!(o.trial_end.map(|t| t.to_rfc3339()).as_deref(), Some("2024-02-14T00:00:00+00:00"));
        assert_eq!(o.next_billing, o.period_start);
        assert_eq!(o.items[1].kind, ItemKind::SetupFee);
        // Anchored at the trial's end, not the start date (Jan 31).
        assert_eq!(o.anchor, Anchor { day: 14, month: 0 });
        assert_eq!(o.period_end.to_rfc3339(), "2024-03-14T00:00:00+00:00");
    }

    #[test]
    fn arrears_and_one_time_lines() {
        let tiers = vec![Tier { up_to: None, unit_amount: d("0.01"), flat_amount: d("0") }];
        let metered =
            PriceSpec { model: Model::Tiered, unit_amount: d("0"), flat_amount: d("0"), tiers, package_size: 1 };
        let q = quote(&input(
            vec![offering(
                0,
                None,
                vec![
                    line("prod_usage", Billing::InArrears, "1000", metered),
                    line("prod_setup", Billing::OneTime, "1", flat("50")),
                ],
            )],
            None,
        ))
        .expect("quote");
        assert_eq!(q.now.amount, d("50.00"), "usage is billed at period end");
        assert_eq!(q.recurring.amount, d("10.00"), "1000 × 0.01 each period, the one-time line never again");
    }

    #[test]
    fn mixed_currencies_are_refused() {
        let mut eur = offering(0, None, vec![line("prod_a", Billing::InAdvance, "1", flat("1"))]);
        eur.rate.currency = Currency::from_code("EUR").expect("eur");
        let usd = offering(0, None, vec![line("prod_a", Billing::InAdvance, "1", flat("1"))]);
        assert_eq!(quote(&input(vec![usd, eur], None)).err(), Some(QuoteError::MixedCurrencies { offering_index: 1 }));
    }
}
