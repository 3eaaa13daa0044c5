//! Properties of the catalog document parser: whatever arrives, it answers
//! with a catalog or an INVALID_ARGUMENT on `document`, never a panic; its
//! depth pre-scan agrees with the parsers; what it renders reads back the same.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use recur_catalog::domain::document::{
    self, CatalogDoc, CouponDoc, Format, MAX_DEPTH, Num, OfferingDoc, PeriodDoc, PriceDoc, ProductDoc, RateDoc,
    TierDoc, scan,
};
use recur_catalog::domain::{CatalogOp, Snapshot, plan};
use tonic::Code;

const CASES: u32 = 256;

fn config() -> ProptestConfig {
    ProptestConfig { cases: CASES, ..ProptestConfig::default() }
}

/// Parses and checks the answer is a catalog or a refusal of `document`.
fn parse_or_refuse(text: &str, format: Option<Format>) -> Result<CatalogDoc, recur_error::AppError> {
    let result = document::parse(text, format);
    if let Err(e) = &result {
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(e.violations().first().map(|v| v.field.as_str()), Some("document"), "{e:?}");
        assert!(!e.reason().is_empty());
    }
    result
}

/// Text made mostly of the characters YAML and JSON give meaning to.
fn syntaxy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(", ".to_string()),
        Just(": ".to_string()),
        Just("- ".to_string()),
        Just("? ".to_string()),
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just(" #".to_string()),
        Just("|\n".to_string()),
        Just(">-\n".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!str ".to_string()),
        Just("---\n".to_string()),
        Just("products".to_string()),
        Just("handle".to_string()),
        Just("metadata".to_string()),
        "[a-z0-9.]{1,6}",
        "\\PC{1,3}",
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

/// A tree of flow collections with scalars that may hold brackets.
#[derive(Clone, Debug)]
enum Tree {
    Leaf(String),
    Seq(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

impl Tree {
    fn depth(&self) -> usize {
        match self {
            Tree::Leaf(_) => 0,
            Tree::Seq(items) => 1 + items.iter().map(Tree::depth).max().unwrap_or(0),
            Tree::Map(entries) => 1 + entries.iter().map(|(_, t)| t.depth()).max().unwrap_or(0),
        }
    }

    /// Flow YAML (also JSON: every scalar is double-quoted).
    fn render(&self, out: &mut String, spaced: bool) {
        let sep = if spaced { ", " } else { "," };
        match self {
            Tree::Leaf(s) => out.push_str(&serde_json::to_string(s).expect("string")),
            Tree::Seq(items) => {
                out.push('[');
                for (i, t) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    t.render(out, spaced);
                }
                out.push(']');
            }
            Tree::Map(entries) => {
                out.push('{');
                for (i, (k, t)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    out.push_str(&serde_json::to_string(k).expect("key"));
                    out.push_str(": ");
                    t.render(out, spaced);
                }
                out.push('}');
            }
        }
    }
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = "[a-z\\[\\]{}#'\":, ]{0,8}".prop_map(Tree::Leaf);
    leaf.prop_recursive(48, 256, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Tree::Seq),
            prop::collection::vec(("[a-z\\[{]{1,4}", inner), 0..4).prop_map(|mut e| {
                let mut seen = std::collections::HashSet::new();
                e.retain(|(k, _)| seen.insert(k.clone()));
                Tree::Map(e)
            }),
        ]
    })
}

/// A chain of `n` collections, so deep trees are common.
fn chain() -> impl Strategy<Value = Tree> {
    (1usize..50, prop::collection::vec(any::<bool>(), 50)).prop_map(|(n, kinds)| {
        let mut t = Tree::Leaf("[{x".into());
        for mapping in kinds.into_iter().take(n) {
            t = if mapping { Tree::Map(vec![("k".into(), t)]) } else { Tree::Seq(vec![t, Tree::Leaf("]".into())]) };
        }
        t
    })
}

fn value_depth(v: &serde_yaml_ng::Value) -> usize {
    use serde_yaml_ng::Value;
    match v {
        Value::Sequence(s) => 1 + s.iter().map(value_depth).max().unwrap_or(0),
        Value::Mapping(m) => 1 + m.iter().map(|(k, v)| value_depth(k).max(value_depth(v))).max().unwrap_or(0),
        Value::Tagged(t) => value_depth(&t.value),
        _ => 0,
    }
}

/// Deepest prefix nesting of a string of brackets, extra closers ignored.
fn reference_depth(s: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in s.chars() {
        match c {
            '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn num() -> impl Strategy<Value = Num> {
    prop_oneof!["[0-9]{1,6}", "[0-9]{1,4}\\.[0-9]{1,4}", "-?[0-9]{1,3}(\\.[0-9]{1,2})?"].prop_map(Num)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9-]{0,10}", "\\PC{0,12}", Just(String::new()), Just("yes".into()), Just("0.10".into())]
}

fn metadata() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-z_]{1,8}", text(), 0..3)
}

fn product() -> impl Strategy<Value = ProductDoc> {
    (text(), text(), text(), text(), prop::option::of(num()), prop::option::of(num()), metadata()).prop_map(
        |(handle, name, description, unit_name, min_quantity, max_quantity, metadata)| ProductDoc {
            handle,
            name,
            description,
            kind: "per_unit".into(),
            unit_name,
            tax_code: String::new(),
            min_quantity,
            max_quantity,
            default_quantity: None,
            aggregation: String::new(),
            aggregation_property: String::new(),
            metadata,
        },
    )
}

fn price() -> impl Strategy<Value = PriceDoc> {
    (
        prop_oneof![Just("flat"), Just("per_unit"), Just("tiered")],
        prop::option::of(num()),
        prop::collection::vec(
            (prop::option::of(num()), prop::option::of(num()), prop::option::of(num()))
                .prop_map(|(up_to, unit_amount, flat_amount)| TierDoc { up_to, unit_amount, flat_amount }),
            0..3,
        ),
        prop::option::of(1i64..100),
    )
        .prop_map(|(model, unit_amount, tiers, package_size)| PriceDoc {
            model: model.into(),
            unit_amount,
            flat_amount: None,
            tiers,
            package_size,
        })
}

fn rate() -> impl Strategy<Value = RateDoc> {
    (
        text(),
        text(),
        1i64..13,
        0i64..30,
        any::<bool>(),
        prop::option::of(num()),
        prop::collection::btree_map(text(), price(), 0..3),
    )
        .prop_map(|(handle, name, count, trial_days, auto_renew, setup_fee, prices)| RateDoc {
            handle,
            name,
            description: String::new(),
            currency: "USD".into(),
            billing_period: PeriodDoc { unit: "month".into(), count },
            timing: String::new(),
            trial_days,
            contract_term_periods: 0,
            auto_renew,
            notice_period_days: 0,
            setup_fee,
            prices,
            metadata: BTreeMap::new(),
        })
}

fn offering() -> impl Strategy<Value = OfferingDoc> {
    (text(), text(), prop::collection::vec(text(), 0..3), metadata(), prop::collection::vec(rate(), 0..3)).prop_map(
        |(handle, name, products, metadata, rates)| OfferingDoc {
            handle,
            name,
            description: String::new(),
            products,
            metadata,
            rates,
        },
    )
}

fn coupon() -> impl Strategy<Value = CouponDoc> {
    (
        text(),
        prop::option::of(num()),
        prop::collection::btree_map("[A-Z]{3}", num(), 0..2),
        0i64..5,
        prop::option::of(Just("2027-01-01T00:00:00Z".to_string())),
    )
        .prop_map(|(code, percent_off, amounts_off, duration_periods, redeem_by)| CouponDoc {
            code,
            name: String::new(),
            percent_off,
            amounts_off,
            duration: "repeating".into(),
            duration_periods,
            offerings: Vec::new(),
            products: Vec::new(),
            max_redemptions: 0,
            redeem_by,
            metadata: BTreeMap::new(),
        })
}

fn catalog() -> impl Strategy<Value = CatalogDoc> {
    (
        prop::collection::vec(product(), 0..4),
        prop::collection::vec(offering(), 0..3),
        prop::collection::vec(coupon(), 0..3),
    )
        .prop_map(|(products, offerings, coupons)| CatalogDoc { products, offerings, coupons })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_a_catalog_or_a_refusal(text in syntaxy(), format in prop::option::of(prop_oneof![Just(Format::Yaml), Just(Format::Json)])) {
        let _ = parse_or_refuse(&text, format);
    }

    #[test]
    fn any_bytes_are_a_catalog_or_a_refusal(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_or_refuse(&text, None);
        let _ = parse_or_refuse(&text, Some(Format::Yaml));
    }

    #[test]
    fn nested_documents_are_refused_exactly_when_too_deep(t in prop_oneof![tree(), chain()], spaced in any::<bool>()) {
        let mut flow = String::new();
        t.render(&mut flow, spaced);
        let depth = t.depth();
        // The pre-scans see what the parsers see.
        prop_assert_eq!(scan::json_depth(&flow, usize::MAX), Ok(depth));
        prop_assert_eq!(scan::yaml_depth(&flow, usize::MAX).map(|s| s.flow_depth), Ok(depth));
        if depth < 100 {
            let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&flow).expect("valid flow YAML");
            prop_assert_eq!(value_depth(&parsed), depth);
        }
        // Under a products key, and as the whole document.
        let doc = format!("products:\n- handle: a\n  metadata:\n    x: {flow}\n");
        for (text, format, levels) in [(&flow, Some(Format::Json), depth), (&flow, Some(Format::Yaml), depth), (&doc, None, depth + 4)] {
            let refused = parse_or_refuse(text, format).err().map(|e| e.reason().to_string());
            prop_assert_eq!(refused.as_deref() == Some("DOCUMENT_TOO_DEEP"), levels > MAX_DEPTH, "{} levels: {:?}", levels, refused);
        }
    }

    #[test]
    fn prescans_agree_with_a_reference_on_bracket_strings(s in "[\\[\\]{}, \n]{0,80}") {
        let expected = reference_depth(&s);
        prop_assert_eq!(scan::json_depth(&s, usize::MAX), Ok(expected));
        prop_assert_eq!(scan::yaml_depth(&s, usize::MAX).map(|y| y.flow_depth), Ok(expected));
        prop_assert_eq!(scan::json_depth(&s, 3).is_err(), expected > 3);
        prop_assert_eq!(scan::yaml_depth(&s, 3).is_err(), expected > 3);
    }

    #[test]
    fn rendered_documents_read_back_the_same(doc in catalog()) {
        for format in [Format::Yaml, Format::Json] {
            let text = document::render(&doc, format).expect("render");
            let back = document::parse(&text, Some(format));
            prop_assert_eq!(back.as_ref(), Ok(&doc), "{:?}:\n{}", format, text);
            let guessed = document::parse(&text, None);
            prop_assert_eq!(guessed.as_ref(), Ok(&doc), "guessed format");
        }
    }
}

/// The export of a catalog is a document that reads back to the same
/// catalog and plans no change against it, in both formats.
#[test]
fn an_export_reads_back_to_the_same_catalog() {
    let demo = document::parse(recur_catalog::DEMO_CATALOG, None).expect("demo");
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("time");
    let built = plan::plan(&demo, &Snapshot::default(), now, &mut recur_id::new_id).expect("plans");
    let mut snapshot = Snapshot::default();
    for op in built.ops {
        match op {
            CatalogOp::InsertProduct(p) => snapshot.products.push(p),
            CatalogOp::InsertOffering(o) => snapshot.offerings.push(o),
            CatalogOp::InsertRate(r) => snapshot.rates.push(r),
            CatalogOp::InsertCoupon(c) => snapshot.coupons.push(c),
            other => panic!("a first apply only inserts: {other:?}"),
        }
    }
    let exported = document::export(&snapshot);
    assert!(!exported.is_empty());
    for format in [Format::Yaml, Format::Json] {
        let text = document::render(&exported, format).expect("render");
        let back = document::parse(&text, Some(format)).expect("reads back");
        assert_eq!(back, exported, "{format:?}");
        let again = plan::plan(&back, &snapshot, now, &mut recur_id::new_id).expect("plans");
        assert!(again.ops.is_empty(), "{format:?}: {:?}", again.changes);
        assert!(again.changes.iter().all(|c| c.action == plan::Action::Unchanged));
    }
}
