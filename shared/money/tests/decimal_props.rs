//! Property tests of decimal parsing: whatever a caller sends, parsing never
//! panics, and a string is either refused or read exactly (formatting the
//! value gives the same number back, digit for digit, with its places).

use std::str::FromStr;

use proptest::prelude::*;
use recur_money::{
    Ceilings, Currency, DecimalError, Money, check_ceiling, parse_amount, parse_decimal, parse_non_negative, plain,
};
use rust_decimal::Decimal;

/// `s` (already of the shape `-?digits(.digits)?`) written as `plain` writes
/// its value: no leading zeros, the places kept, zero unsigned.
fn canonical(s: &str) -> String {
    let (negative, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && frac.bytes().all(|b| b == b'0');
    let mut out = String::new();
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Accepted means exact: the value formats back to the same digits, and
/// parsing that again gives the same value and scale.
fn exact_or_refused(s: &str) -> Result<(), TestCaseError> {
    match parse_decimal(s) {
        Ok(d) => {
            prop_assert_eq!(plain(d), canonical(s), "{:?} was not read exactly", s);
            let again = parse_decimal(&plain(d)).map_err(|e| TestCaseError::fail(format!("{s:?}: {e}")))?;
            prop_assert_eq!(again, d);
            prop_assert_eq!(again.scale(), d.scale());
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

/// Strings shaped like decimals, from tiny to far beyond `Decimal`'s range.
fn decimal_like() -> impl Strategy<Value = String> {
    ("-?", "[0-9]{0,40}", proptest::option::of("[0-9]{0,40}")).prop_map(|(sign, int, frac)| match frac {
        Some(f) => format!("{sign}{int}.{f}"),
        None => format!("{sign}{int}"),
    })
}

fn currency() -> impl Strategy<Value = Currency> {
    prop::sample::select(vec!["USD", "JPY", "KWD", "CLF", "EUR", "BHD", "KRW"])
        .prop_map(|c| Currency::from_code(c).expect("known"))
}

/// Any `Decimal`: a 96-bit mantissa, either sign, scale 0–28.
fn any_decimal() -> impl Strategy<Value = Decimal> {
    (any::<u32>(), any::<u32>(), any::<u32>(), any::<bool>(), 0u32..=28)
        .prop_map(|(lo, mid, hi, negative, scale)| Decimal::from_parts(lo, mid, hi, negative, scale))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>(), code in "[A-Z]{3}") {
        let _ = parse_decimal(&s);
        let _ = parse_non_negative(&s);
        for c in ["USD", "JPY", "KWD"] {
            let _ = parse_amount(&s, Currency::from_code(c).expect("known"));
        }
        let _ = Ceilings::parse_one(&code, &s);
        let _ = Ceilings::parse([(code.as_str(), s.as_str())]);
    }

    #[test]
    fn decimal_like_strings_are_exact_or_refused(s in decimal_like()) {
        exact_or_refused(&s)?;
    }

    #[test]
    fn mixed_strings_are_exact_or_refused(s in "[-+0-9.eExXaNnIiFf_, ]{0,48}") {
        exact_or_refused(&s)?;
        if let Ok(d) = parse_decimal(&s) {
            // Only plain decimals get through: no exponent, sign or separator.
            prop_assert!(s.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-'), "{:?} -> {}", s, d);
        }
    }

    #[test]
    fn formatting_then_parsing_round_trips(d in any_decimal()) {
        let text = plain(d);
        let back = parse_decimal(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back, d);
        prop_assert_eq!(back.scale(), d.scale());
        prop_assert_eq!(plain(back), text);
        // `plain` writes what `Display` does, except that zero is never signed.
        prop_assert_eq!(plain(d), if d.is_zero() { d.abs().to_string() } else { d.to_string() });
    }

    #[test]
    fn money_round_trips_through_its_currency(c in currency(), minor in any::<i64>()) {
        let m = Money::new(Decimal::new(minor, c.minor_units()), c);
        let text = plain(m.amount());
        let back = parse_amount(&text, c).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back, m.amount());
        prop_assert_eq!(Money::new(back, c), m);
        prop_assert_eq!(m.minor_amount(), Some(minor));
    }

    #[test]
    fn ceilings_agree_with_comparison(c in currency(), d in any_decimal()) {
        let ceiling = c.default_ceiling();
        let ok = check_ceiling("amount", d, ceiling).is_ok();
        prop_assert_eq!(ok, d.abs() <= ceiling.amount());
        if ok {
            // Whatever passes a ceiling fits a provider's minor units.
            prop_assert!(Money::new(d.abs(), c).minor_amount().is_some());
        }
    }
}

#[test]
fn odd_strings_are_refused_or_exact() {
    let refused = [
        ("NaN", DecimalError::NotANumber),
        ("nan", DecimalError::NotANumber),
        ("inf", DecimalError::NotANumber),
        ("-Infinity", DecimalError::NotANumber),
        ("1e400", DecimalError::NotANumber),
        ("1E3", DecimalError::NotANumber),
        ("0x10", DecimalError::NotANumber),
        ("+1", DecimalError::NotANumber),
        ("1_000", DecimalError::NotANumber),
        ("١٢", DecimalError::NotANumber),
        ("-", DecimalError::NotANumber),
        ("--0", DecimalError::NotANumber),
        ("", DecimalError::NotANumber),
        (".", DecimalError::NotANumber),
        ("1.", DecimalError::NotANumber),
        ("1.2.3", DecimalError::NotANumber),
        ("\u{0}1", DecimalError::NotANumber),
        ("1\n", DecimalError::NotANumber),
    ];
    for (s, want) in refused {
        assert_eq!(parse_decimal(s), Err(want), "{s:?}");
    }
    let huge = format!("1{}", "0".repeat(30));
    assert_eq!(parse_decimal(&huge), Err(DecimalError::TooLarge));
    assert_eq!(parse_decimal(&format!("{huge}.5")), Err(DecimalError::TooLarge));
    assert_eq!(parse_decimal(&"9".repeat(100_000)), Err(DecimalError::TooLarge), "long input, quick answer");
    assert_eq!(parse_decimal(&format!("0.{}1", "0".repeat(28))), Err(DecimalError::TooManyPlaces(28)));
    assert_eq!(parse_decimal("79228162514264337593543950335.0"), Err(DecimalError::TooManyDigits));
    assert_eq!(parse_decimal("92233720368547758.07"), Ok(Decimal::from_str("92233720368547758.07").expect("d")));
    for s in ["-0", "-0.00", "0", "000", "-000.000"] {
        let d = parse_decimal(s).expect("zero");
        assert!(d.is_zero() && !d.is_sign_negative(), "{s:?}");
        assert_eq!(parse_non_negative(s), Ok(d), "{s:?} is not negative");
    }
    for s in ["0.0000000000000000000000000001", "79228162514264337593543950335", "-79228162514264337593543950335"] {
        exact_or_refused(s).expect("exact");
        assert!(parse_decimal(s).is_ok(), "{s}");
    }
}
