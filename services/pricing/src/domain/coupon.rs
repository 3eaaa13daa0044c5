//! Coupons: which lines a coupon discounts, in which periods, and how much
//! each line gets — rounded once per line, never below zero, and (for a
//! fixed amount spread over several lines) adding up to the coupon exactly.

use recur_money::Currency;
use rust_decimal::Decimal;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discount {
    /// Percent off, in (0, 100].
    Percent(Decimal),
    /// An amount off in the quote's currency (exact in its minor units).
    Fixed(Decimal),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duration {
    Once,
    Repeating(u32),
    Forever,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CouponSpec {
    pub code: String,
    pub discount: Discount,
    pub duration: Duration,
    /// Billing periods this coupon already discounted for the customer.
    pub periods_applied: u32,
    /// Restrictions; both empty means every line.
    pub offering_ids: Vec<String>,
    pub product_ids: Vec<String>,
}

impl CouponSpec {
    /// Whether the coupon still discounts the `n`-th invoice from now
    /// (0: the next one).
    pub fn active_in(&self, n: u32) -> bool {
        let index = self.periods_applied.saturating_add(n);
        match self.duration {
            Duration::Once => index < 1,
            Duration::Repeating(periods) => index < periods,
            Duration::Forever => true,
        }
    }

    /// Whether the coupon may discount a line of `offering_id` for
    /// `product_id` (`None` for a rate's setup fee).
    pub fn applies_to(&self, offering_id: &str, product_id: Option<&str>) -> bool {
        if self.offering_ids.is_empty() && self.product_ids.is_empty() {
            return true;
        }
        self.offering_ids.iter().any(|o| o == offering_id)
            || product_id.is_some_and(|p| self.product_ids.iter().any(|x| x == p))
    }
}

/// A line a coupon may discount.
#[derive(Clone, Debug)]
pub struct Discountable<'a> {
    pub offering_id: &'a str,
    pub product_id: Option<&'a str>,
    /// The line's amount before discounts, rounded to the currency.
    pub base: Decimal,
}

/// Per line: the discount, and the codes that gave it (`shares[k]`: what
/// `codes[k]` took).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineDiscount {
    pub amount: Decimal,
    pub codes: Vec<String>,
    pub shares: Vec<Decimal>,
}

/// What coupon `code` took off `lines` in all.
pub fn taken_by(lines: &[LineDiscount], code: &str) -> Decimal {
    lines.iter().flat_map(|l| l.codes.iter().zip(&l.shares)).filter(|(c, _)| c.as_str() == code).map(|(_, s)| *s).sum()
}

/// Each fixed-amount coupon of `coupons` with what of its amount `lines`
/// (allocated from them) left: what an invoice's other lines may still
/// take.
pub fn fixed_left(lines: &[LineDiscount], coupons: &[&CouponSpec], currency: Currency) -> Vec<(String, Decimal)> {
    coupons
        .iter()
        .filter_map(|c| match c.discount {
            Discount::Fixed(amount) => {
                Some((c.code.clone(), (currency.round(amount) - taken_by(lines, &c.code)).max(Decimal::ZERO)))
            }
            Discount::Percent(_) => None,
        })
        .collect()
}

/// Applies `coupons` in order to `lines` (one invoice). A percent coupon
/// takes its share of what earlier coupons left; a fixed coupon takes its
/// amount, spread over its lines in proportion to what is left of each.
pub fn allocate(lines: &[Discountable<'_>], coupons: &[&CouponSpec], currency: Currency) -> Vec<LineDiscount> {
    let mut remaining: Vec<Decimal> = lines.iter().map(|l| l.base.max(Decimal::ZERO)).collect();
    let mut out = vec![LineDiscount::default(); lines.len()];
    for coupon in coupons {
        let eligible: Vec<usize> = (0..lines.len())
            .filter(|&i| remaining[i] > Decimal::ZERO && coupon.applies_to(lines[i].offering_id, lines[i].product_id))
            .collect();
        if eligible.is_empty() {
            continue;
        }
        let mut take = vec![Decimal::ZERO; lines.len()];
        match &coupon.discount {
            Discount::Percent(pct) => {
                for &i in &eligible {
                    take[i] = currency.round(remaining[i] * pct / Decimal::ONE_HUNDRED).min(remaining[i]);
                }
            }
            Discount::Fixed(amount) => {
                let pool: Decimal = eligible.iter().map(|&i| remaining[i]).sum();
                let total = currency.round(*amount).min(pool);
                for &i in &eligible {
                    take[i] = currency.round(total * remaining[i] / pool).min(remaining[i]);
                }
                // Rounding each share may leave the sum a few minor units off
                // the coupon: the lines with the most room absorb the
                // difference, so the coupon takes exactly its amount.
                let mut diff = total - eligible.iter().map(|&i| take[i]).sum::<Decimal>();
                let unit = Decimal::new(1, currency.minor_units());
                let mut by_room = eligible.clone();
                by_room.sort_by(|&a, &b| (remaining[b] - take[b]).cmp(&(remaining[a] - take[a])).then(a.cmp(&b)));
                let mut k = 0;
                while !diff.is_zero() && !by_room.is_empty() && k < by_room.len() * 4 {
                    let i = by_room[k % by_room.len()];
                    if diff > Decimal::ZERO && take[i] + unit <= remaining[i] {
                        take[i] += unit;
                        diff -= unit;
                    } else if diff < Decimal::ZERO && take[i] >= unit {
                        take[i] -= unit;
                        diff += unit;
                    }
                    k += 1;
                }
            }
        }
        for &i in &eligible {
            if take[i] > Decimal::ZERO {
                remaining[i] -= take[i];
                out[i].amount += take[i];
                out[i].codes.push(coupon.code.clone());
                out[i].shares.push(take[i]);
            }
        }
    }
    for d in &mut out {
        d.amount = currency.round(d.amount);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("literal")
    }

    fn usd() -> Currency {
        Currency::from_code("USD").expect("usd")
    }

    fn coupon(code: &str, discount: Discount) -> CouponSpec {
        CouponSpec {
            code: code.into(),
            discount,
            duration: Duration::Forever,
            periods_applied: 0,
            offering_ids: vec![],
            product_ids: vec![],
        }
    }

    fn line<'a>(product: &'a str, base: &str) -> Discountable<'a> {
        Discountable { offering_id: "offr_1", product_id: Some(product), base: d(base) }
    }

    #[test]
    fn durations_count_periods() {
        let mut c = coupon("X", Discount::Percent(d("10")));
        c.duration = Duration::Once;
        assert!(c.active_in(0) && !c.active_in(1));
        c.duration = Duration::Repeating(3);
        assert!(c.active_in(2) && !c.active_in(3));
        c.periods_applied = 2;
        assert!(c.active_in(0) && !c.active_in(1));
        c.duration = Duration::Forever;
        assert!(c.active_in(100));
    }

    #[test]
    fn fixed_amounts_split_exactly() {
        // 10.00 off three lines of 10.00 each: 3.33 + 3.33 + 3.33 = 9.99, the
        // missing cent goes to a line with room: 3.34 + 3.33 + 3.33 = 10.00.
        let lines = [line("a", "10.00"), line("b", "10.00"), line("c", "10.00")];
        let c = coupon("TEN", Discount::Fixed(d("10")));
        let got = allocate(&lines, &[&c], usd());
        assert_eq!(got.iter().map(|l| l.amount).sum::<Decimal>(), d("10.00"));
        assert_eq!(got.iter().map(|l| l.amount.to_string()).collect::<Vec<_>>(), vec!["3.34", "3.33", "3.33"]);
    }

    #[test]
    fn never_below_zero_and_restrictions_hold() {
        // 50 off a 30.00 cart takes 30.00, no more.
        let lines = [line("a", "20.00"), line("b", "10.00")];
        let big = coupon("BIG", Discount::Fixed(d("50")));
        let got = allocate(&lines, &[&big], usd());
        assert_eq!(got.iter().map(|l| l.amount).sum::<Decimal>(), d("30.00"));
        // Restricted to product b: a is untouched.
        let mut only_b = coupon("B", Discount::Percent(d("50")));
        only_b.product_ids = vec!["b".into()];
        let got = allocate(&lines, &[&only_b], usd());
        assert_eq!((got[0].amount, got[1].amount), (d("0.00"), d("5.00")));
        assert_eq!(got[1].codes, vec!["B"]);
    }

    #[test]
    fn coupons_stack_in_order() {
        // 100.00, then 10% (10.00) leaves 90.00, then 5.00 fixed: 15.00 off.
        let lines = [line("a", "100.00")];
        let p = coupon("P", Discount::Percent(d("10")));
        let f = coupon("F", Discount::Fixed(d("5")));
        let got = allocate(&lines, &[&p, &f], usd());
        assert_eq!(got[0].amount, d("15.00"));
        assert_eq!(got[0].codes, vec!["P", "F"]);
        assert_eq!(got[0].shares, vec![d("10.00"), d("5.00")]);
    }

    #[test]
    fn fixed_amounts_left_for_other_lines() {
        // 25.00 fixed over lines of 12.00 and 8.00 (after 10% off: 10.80 and
        // 7.20) takes 18.00 and leaves 7.00; the percent coupon has no
        // amount to leave.
        let lines = [line("a", "12.00"), line("b", "8.00")];
        let p = coupon("P", Discount::Percent(d("10")));
        let f = coupon("F", Discount::Fixed(d("25")));
        let got = allocate(&lines, &[&p, &f], usd());
        assert_eq!(taken_by(&got, "F"), d("18.00"));
        assert_eq!(taken_by(&got, "P"), d("2.00"));
        assert_eq!(fixed_left(&got, &[&p, &f], usd()), vec![("F".to_string(), d("7.00"))]);
        // Lines that take less than the coupon leave the rest; none, all.
        assert_eq!(fixed_left(&[], &[&f], usd()), vec![("F".to_string(), d("25.00"))]);
    }
}
