//! Proration cases, each worked out by hand: upgrades and downgrades,
//! quantity changes, first and last days, short and leap months, a DST
//! change in the account's time zone, a change of billing period, and the
//! contract's anchor kept across renewals.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use recur_money::Currency;
use recur_pricing::domain::period::{Anchor, Period, Unit, local_midnight};
use recur_pricing::domain::proration::{ChangeInput, LineKind, Mode, Side, Timing, part_of, preview};
use recur_pricing::domain::quote::{Billing, CartLine};
use recur_pricing::domain::rating::{Model, PriceSpec};
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("literal")
}

fn usd() -> Currency {
    Currency::from_code("USD").expect("usd")
}

const MONTHLY: Period = Period { unit: Unit::Month, count: 1 };
const YEARLY: Period = Period { unit: Unit::Year, count: 1 };

fn midnight(y: i32, m: u32, day: u32, tz: Tz) -> DateTime<Utc> {
    local_midnight(NaiveDate::from_ymd_opt(y, m, day).expect("date"), tz)
}

fn flat(amount: &str) -> CartLine {
    CartLine {
        product_id: "plan".into(),
        name: "Plan".into(),
        billing: Billing::InAdvance,
        quantity: d("1"),
        price: PriceSpec {
            model: Model::Flat,
            unit_amount: d("0"),
            flat_amount: d(amount),
            tiers: vec![],
            package_size: 1,
        },
    }
}

fn seats(quantity: &str, unit: &str) -> CartLine {
    CartLine {
        product_id: "seats".into(),
        name: "Seats".into(),
        billing: Billing::InAdvance,
        quantity: d(quantity),
        price: PriceSpec {
            model: Model::PerUnit,
            unit_amount: d(unit),
            flat_amount: d("0"),
            tiers: vec![],
            package_size: 1,
        },
    }
}

struct Case {
    tz: Tz,
    mode: Mode,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    at: DateTime<Utc>,
    old: (Period, Vec<CartLine>),
    new: (Period, Vec<CartLine>),
}

fn run(c: Case) -> (Vec<String>, String, String) {
    let out = preview(&ChangeInput {
        currency: usd(),
        tz: c.tz,
        mode: c.mode,
        timing: Timing::Immediate,
        period_start: c.start,
        period_end: c.end,
        anchor: None,
        at: c.at,
        old: Side { rate_id: "rate_old".into(), period: c.old.0, lines: c.old.1 },
        new: Side { rate_id: "rate_new".into(), period: c.new.0, lines: c.new.1 },
    })
    .expect("preview");
    (out.lines.iter().map(|l| l.amount.to_string()).collect(), out.due_now.to_string(), out.next_recurring.to_string())
}

fn utc() -> Tz {
    chrono_tz::UTC
}

#[test]
fn mid_month_upgrade_and_downgrade() {
    // March has 31 days; a change on March 16 leaves 16 days (16th..31st).
    // Upgrade 30.00 → 62.00: credit 30×16/31 = 15.4838… → −15.48;
    // charge 62×16/31 = 32.00; due 16.52.
    let (start, end, at) = (
        midnight(2026, 3, 1, utc()),
        midnight(2026, 4, 1, utc()),
        midnight(2026, 3, 16, utc()) + chrono::Duration::hours(15),
    );
    let up = run(Case {
        tz: utc(),
        mode: Mode::Day,
        start,
        end,
        at,
        old: (MONTHLY, vec![flat("30")]),
        new: (MONTHLY, vec![flat("62")]),
    });
    assert_eq!(up, (vec!["-15.48".into(), "32.00".into()], "16.52".into(), "62.00".into()));
    // Downgrade 62.00 → 30.00 on the same day: −32.00 + 15.48 = −16.52 (a credit).
    let down = run(Case {
        tz: utc(),
        mode: Mode::Day,
        start,
        end,
        at,
        old: (MONTHLY, vec![flat("62")]),
        new: (MONTHLY, vec![flat("30")]),
    });
    assert_eq!(down, (vec!["-32.00".into(), "15.48".into()], "-16.52".into(), "30.00".into()));
}

#[test]
fn quantity_up_and_down() {
    // April has 30 days; change on April 11 leaves 20 (11th..30th): 2/3.
    // 5 → 8 seats at 9.00: credit 45×20/30 = −30.00, charge 72×20/30 = 48.00, due 18.00.
    let (start, end, at) = (midnight(2026, 4, 1, utc()), midnight(2026, 5, 1, utc()), midnight(2026, 4, 11, utc()));
    let up = run(Case {
        tz: utc(),
        mode: Mode::Day,
        start,
        end,
        at,
        old: (MONTHLY, vec![seats("5", "9")]),
        new: (MONTHLY, vec![seats("8", "9")]),
    });
    assert_eq!(up, (vec!["-30.00".into(), "48.00".into()], "18.00".into(), "72.00".into()));
    // 8 → 3: credit −48.00, charge 27×2/3 = 18.00, due −30.00.
    let down = run(Case {
        tz: utc(),
        mode: Mode::Day,
        start,
        end,
        at,
        old: (MONTHLY, vec![seats("8", "9")]),
        new: (MONTHLY, vec![seats("3", "9")]),
    });
    assert_eq!(down, (vec!["-48.00".into(), "18.00".into()], "-30.00".into(), "27.00".into()));
}

#[test]
fn first_and_last_day_of_the_period() {
    let (start, end) = (midnight(2026, 3, 1, utc()), midnight(2026, 4, 1, utc()));
    // On the first day the whole period changes hands: −30.00 + 62.00 = 32.00.
    let first = run(Case {
        tz: utc(),
        mode: Mode::Day,
        start,
        end,
        at: start,
        old: (MONTHLY, vec![flat("30")]),
        new: (MONTHLY, vec![flat("62")]),
    });
    assert_eq!(first.0, vec!["-30.00", "62.00"]);
    assert_eq!(first.1, "32.00");
    // On the last day (March 31) one day of 31 remains: 30/31 = 0.9677 → −0.97;
    // 62/31 = 2.00; due 1.03.
    let last = run(Case {
        tz: utc(),
        mode: Mode::Day,
        start,
        end,
        at: midnight(2026, 3, 31, utc()) + chrono::Duration::hours(23),
        old: (MONTHLY, vec![flat("30")]),
        new: (MONTHLY, vec![flat("62")]),
    });
    assert_eq!(last, (vec!["-0.97".into(), "2.00".into()], "1.03".into(), "62.00".into()));
}

#[test]
fn short_and_leap_months() {
    // A period anchored on Jan 31 runs to Feb 28 in 2026 (28 days). A change
    // on Feb 14 leaves 14 days: half. 30.00 → 62.00: −15.00 + 31.00 = 16.00.
    let r = run(Case {
        tz: utc(),
        mode: Mode::Day,
        start: midnight(2026, 1, 31, utc()),
        end: midnight(2026, 2, 28, utc()),
        at: midnight(2026, 2, 14, utc()),
        old: (MONTHLY, vec![flat("30")]),
        new: (MONTHLY, vec![flat("62")]),
    });
    assert_eq!(r, (vec!["-15.00".into(), "31.00".into()], "16.00".into(), "62.00".into()));
    // In the leap year 2028 the same period runs to Feb 29 (29 days, Feb 29
    // being the next period's first day). A change on Feb 15 leaves 14 of 29:
    // 30×14/29 = 14.4827… → −14.48; 62×14/29 = 29.9310… → 29.93; due 15.45.
    let r = run(Case {
        tz: utc(),
        mode: Mode::Day,
        start: midnight(2028, 1, 31, utc()),
        end: midnight(2028, 2, 29, utc()),
        at: midnight(2028, 2, 15, utc()),
        old: (MONTHLY, vec![flat("30")]),
        new: (MONTHLY, vec![flat("62")]),
    });
    assert_eq!(r, (vec!["-14.48".into(), "29.93".into()], "15.45".into(), "62.00".into()));
    // A change on the leap day itself, in a period Feb 1 – Mar 1 2028 (29
    // days): 1 day remains: 29.00/29 = 1.00 credited, 58.00/29 = 2.00 charged.
    let r = run(Case {
        tz: utc(),
        mode: Mode::Day,
        start: midnight(2028, 2, 1, utc()),
        end: midnight(2028, 3, 1, utc()),
        at: midnight(2028, 2, 29, utc()),
        old: (MONTHLY, vec![flat("29")]),
        new: (MONTHLY, vec![flat("58")]),
    });
    assert_eq!(r, (vec!["-1.00".into(), "2.00".into()], "1.00".into(), "58.00".into()));
}

#[test]
fn a_dst_change_in_the_accounts_time_zone() {
    // New York springs forward on March 8, 2026: March has 31 calendar days
    // but 743 hours. By DAY, a change on March 16 leaves 16 of 31 days
    // whatever the clocks did: the same −15.48 / +32.00 as in UTC.
    let ny: Tz = "America/New_York".parse().expect("zone");
    let (start, end) = (midnight(2026, 3, 1, ny), midnight(2026, 4, 1, ny));
    assert_eq!((end - start).num_hours(), 743);
    let at = midnight(2026, 3, 16, ny) + chrono::Duration::hours(10);
    let by_day = run(Case {
        tz: ny,
        mode: Mode::Day,
        start,
        end,
        at,
        old: (MONTHLY, vec![flat("30")]),
        new: (MONTHLY, vec![flat("62")]),
    });
    assert_eq!(by_day.0, vec!["-15.48", "32.00"]);
    // By SECOND, from 10:00 on March 16 (EDT) to April 1 00:00 EDT remain
    // 15 days 14 hours = 374 h of 743 h: 30×374/743 = 15.1009… → −15.10;
    // 62×374/743 = 31.2086… → 31.21; due 16.11.
    let by_second = run(Case {
        tz: ny,
        mode: Mode::Second,
        start,
        end,
        at,
        old: (MONTHLY, vec![flat("30")]),
        new: (MONTHLY, vec![flat("62")]),
    });
    assert_eq!(by_second, (vec!["-15.10".into(), "31.21".into()], "16.11".into(), "62.00".into()));
}

#[test]
fn monthly_to_yearly_starts_a_new_period() {
    // 30.00 a month → 300.00 a year on March 16: the unused 16/31 of March is
    // credited (−15.48) and the year is charged in full from March 16.
    let (start, end, at) = (midnight(2026, 3, 1, utc()), midnight(2026, 4, 1, utc()), midnight(2026, 3, 16, utc()));
    let out = preview(&ChangeInput {
        currency: usd(),
        tz: utc(),
        mode: Mode::Day,
        timing: Timing::Immediate,
        period_start: start,
        period_end: end,
        anchor: None,
        at,
        old: Side { rate_id: "rate_m".into(), period: MONTHLY, lines: vec![flat("30")] },
        new: Side { rate_id: "rate_y".into(), period: YEARLY, lines: vec![flat("300")] },
    })
    .expect("preview");
    assert_eq!(out.lines.iter().map(|l| l.amount.to_string()).collect::<Vec<_>>(), vec!["-15.48", "300.00"]);
    assert_eq!(out.lines[1].kind, LineKind::Charge);
    assert_eq!(out.due_now, d("284.52"));
    assert_eq!(out.new_period_start, at);
    assert_eq!(out.new_period_end, Utc.with_ymd_and_hms(2027, 3, 16, 0, 0, 0).single().expect("valid"));
}

#[test]
fn end_of_term_charges_nothing_now() {
    let (start, end) = (midnight(2026, 3, 1, utc()), midnight(2026, 4, 1, utc()));
    let out = preview(&ChangeInput {
        currency: usd(),
        tz: utc(),
        mode: Mode::Day,
        timing: Timing::EndOfTerm,
        period_start: start,
        period_end: end,
        anchor: None,
        at: midnight(2026, 3, 16, utc()),
        old: Side { rate_id: "rate_m".into(), period: MONTHLY, lines: vec![flat("30")] },
        new: Side { rate_id: "rate_y".into(), period: YEARLY, lines: vec![flat("300")] },
    })
    .expect("preview");
    assert!(out.lines.is_empty());
    assert_eq!((out.due_now.to_string(), out.next_recurring.to_string()), ("0.00".into(), "300.00".into()));
    assert_eq!((out.effective, out.new_period_start), (end, end));
    assert_eq!(out.new_period_end, midnight(2027, 4, 1, utc()));
}

#[test]
fn usage_is_not_prorated_in_advance() {
    // A metered line (in arrears) gets no proration line; only the flat fee does.
    let mut usage = seats("1000", "0.01");
    usage.billing = Billing::InArrears;
    let (start, end, at) = (midnight(2026, 4, 1, utc()), midnight(2026, 5, 1, utc()), midnight(2026, 4, 16, utc()));
    let r = run(Case {
        tz: utc(),
        mode: Mode::Day,
        start,
        end,
        at,
        old: (MONTHLY, vec![flat("30"), usage.clone()]),
        new: (MONTHLY, vec![flat("60"), usage]),
    });
    // 15 of 30 days remain: −15.00 + 30.00 = 15.00.
    assert_eq!(r.0, vec!["-15.00", "30.00"]);
    assert_eq!(r.1, "15.00");
}

fn end_of_term(
    tz: Tz,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    anchor: Option<Anchor>,
    old: Period,
    new: Period,
) -> recur_pricing::domain::proration::ChangeOutcome {
    preview(&ChangeInput {
        currency: usd(),
        tz,
        mode: Mode::Day,
        timing: Timing::EndOfTerm,
        period_start: start,
        period_end: end,
        anchor,
        at: start,
        old: Side { rate_id: "rate_old".into(), period: old, lines: vec![flat("30")] },
        new: Side { rate_id: "rate_new".into(), period: new, lines: vec![flat("30")] },
    })
    .expect("preview")
}

#[test]
fn end_of_term_keeps_the_contracts_anchor() {
    // Issue 13: the period Jan 31..Feb 28, renewed at the same rate. With the
    // anchor (the 31st) the next period ends on Mar 31, not Mar 28.
    let ny: Tz = "America/New_York".parse().expect("zone");
    let period = (midnight(2023, 1, 31, ny), midnight(2023, 2, 28, ny));
    let feb = (midnight(2023, 2, 28, ny), midnight(2023, 3, 31, ny));
    let thirty_first = Some(Anchor { day: 31, month: 0 });
    let out = end_of_term(ny, feb, thirty_first, MONTHLY, MONTHLY);
    assert_eq!((out.new_period_start, out.new_period_end), (feb.1, midnight(2023, 4, 30, ny)));
    let out = end_of_term(ny, period, thirty_first, MONTHLY, MONTHLY);
    assert_eq!((out.new_period_start, out.new_period_end), feb);
    assert_eq!(out.anchor, Anchor { day: 31, month: 0 });
    // Unset, the anchor is period_start's day: the 31st here too.
    assert_eq!(end_of_term(ny, period, None, MONTHLY, MONTHLY).new_period_end, feb.1);
    // Unset from a clamped start, it can only be the 28th (why contracts
    // carry their anchor).
    assert_eq!(end_of_term(ny, feb, None, MONTHLY, MONTHLY).new_period_end, midnight(2023, 4, 28, ny));

    // Renewed 24 times, each from the previous answer: never drifting.
    let mut current = period;
    let mut ends = Vec::new();
    for _ in 0..24 {
        let out = end_of_term(ny, current, thirty_first, MONTHLY, MONTHLY);
        assert_eq!(out.new_period_start, current.1);
        current = (out.new_period_start, out.new_period_end);
        ends.push(ny.from_utc_datetime(&current.1.naive_utc()).date_naive().format("%m-%d").to_string());
    }
    assert_eq!(
        ends.join(" "),
        "03-31 04-30 05-31 06-30 07-31 08-31 09-30 10-31 11-30 12-31 01-31 02-29 \
         03-31 04-30 05-31 06-30 07-31 08-31 09-30 10-31 11-30 12-31 01-31 02-28"
    );
}

#[test]
fn a_leap_day_anchor_renews_yearly_on_feb_29_in_leap_years() {
    let leap = Some(Anchor { day: 29, month: 2 });
    let out = end_of_term(utc(), (midnight(2027, 2, 28, utc()), midnight(2028, 2, 29, utc())), leap, YEARLY, YEARLY);
    assert_eq!(out.new_period_end, midnight(2029, 2, 28, utc()));
    let out = end_of_term(utc(), (midnight(2026, 2, 28, utc()), midnight(2027, 2, 28, utc())), leap, YEARLY, YEARLY);
    assert_eq!(out.new_period_end, midnight(2028, 2, 29, utc()));
    // Unset, derived from period_start (Feb 28): the leap day is lost.
    let out = end_of_term(utc(), (midnight(2026, 2, 28, utc()), midnight(2027, 2, 28, utc())), None, YEARLY, YEARLY);
    assert_eq!(out.new_period_end, midnight(2028, 2, 28, utc()));
}

#[test]
fn the_anchor_across_a_change_of_period() {
    let thirty_first = Some(Anchor { day: 31, month: 0 });
    let feb = (midnight(2023, 1, 31, utc()), midnight(2023, 2, 28, utc()));
    // Monthly → yearly at the end of the term: the day is kept, the month is
    // the new period's (Feb), so the year ends on Feb 29, 2024.
    let out = end_of_term(utc(), feb, thirty_first, MONTHLY, YEARLY);
    assert_eq!(out.new_period_end, midnight(2024, 2, 29, utc()));
    assert_eq!(out.anchor, Anchor { day: 31, month: 2 });
    // Yearly → monthly: the day is kept, the month dropped.
    let leap = Some(Anchor { day: 29, month: 2 });
    let out = end_of_term(utc(), (midnight(2024, 2, 29, utc()), midnight(2025, 2, 28, utc())), leap, YEARLY, MONTHLY);
    assert_eq!((out.new_period_end, out.anchor), (midnight(2025, 3, 29, utc()), Anchor { day: 29, month: 0 }));
    // Weekly → monthly: a week's anchor says nothing; the month runs from the
    // new period's start.
    let week = Period { unit: Unit::Week, count: 1 };
    let out = end_of_term(utc(), (midnight(2023, 3, 1, utc()), midnight(2023, 3, 8, utc())), None, week, MONTHLY);
    assert_eq!((out.new_period_end, out.anchor), (midnight(2023, 4, 8, utc()), Anchor { day: 8, month: 0 }));
    // Monthly → weekly: weeks ignore the anchor.
    let out = end_of_term(utc(), feb, thirty_first, MONTHLY, week);
    assert_eq!(out.new_period_end, midnight(2023, 3, 7, utc()));
}

#[test]
fn an_immediate_change_of_period_anchors_on_the_change() {
    // Anchored on the 31st, monthly → yearly on Feb 10: the year, charged in
    // full, runs to Feb 10 and is anchored there.
    let out = preview(&ChangeInput {
        currency: usd(),
        tz: utc(),
        mode: Mode::Day,
        timing: Timing::Immediate,
        period_start: midnight(2023, 1, 31, utc()),
        period_end: midnight(2023, 2, 28, utc()),
        anchor: Some(Anchor { day: 31, month: 0 }),
        at: midnight(2023, 2, 10, utc()),
        old: Side { rate_id: "rate_m".into(), period: MONTHLY, lines: vec![flat("30")] },
        new: Side { rate_id: "rate_y".into(), period: YEARLY, lines: vec![flat("300")] },
    })
    .expect("preview");
    assert_eq!(
        (out.new_period_start, out.new_period_end),
        (midnight(2023, 2, 10, utc()), midnight(2024, 2, 10, utc()))
    );
    assert_eq!(out.anchor, Anchor { day: 10, month: 2 });
}

/// A per-period item billed for part of a period: the days (or seconds)
/// of the part over the whole period's, the day ended in not counted, in
/// the account's time zone.
#[test]
fn a_part_of_a_period_counts_its_days_or_seconds() {
    let la: Tz = "America/Los_Angeles".parse().expect("tz");
    let jan = (midnight(2024, 1, 1, utc()), midnight(2024, 2, 1, utc()));
    let at = |day: u32, hour: u32| Utc.with_ymd_and_hms(2024, 1, day, hour, 0, 0).unwrap();
    // Canceled on Jan 11 at 15:00: ten of January's 31 days.
    assert_eq!(part_of(Mode::Day, utc(), jan, (jan.0, at(11, 15))), (10, 31));
    // A first period from Jan 10 to a billing day on the 1st: 22 days.
    assert_eq!(part_of(Mode::Day, utc(), jan, (midnight(2024, 1, 10, utc()), jan.1)), (22, 31));
    assert_eq!(part_of(Mode::Second, utc(), jan, (jan.0, at(1, 12))), (43_200, 2_678_400));
    assert_eq!(part_of(Mode::Day, utc(), jan, jan), (31, 31));
    // March in Los Angeles has 31 days, one of them 23 hours long.
    let march = (midnight(2024, 3, 1, la), midnight(2024, 4, 1, la));
    assert_eq!(part_of(Mode::Day, la, march, (march.0, midnight(2024, 3, 16, la))), (15, 31));
}
