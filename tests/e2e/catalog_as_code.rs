//! Catalog as code through gRPC: the demo document applies, applies again
//! without change, round-trips through ExportCatalog, previews changes in a
//! dry run without writing, turns a price change into a new rate version,
//! archives what the document drops, and applies all or nothing. Documents
//! too deep or too large are refused before parsing, and one that holds no
//! resource archives everything only when the request says so.

use recur_e2e::{TestApp, details, on_both_backends};
use recur_proto::catalog::v1 as cat;
use tonic::Code;

async fn apply(
    c: &mut recur_e2e::Clients,
    document: &str,
    dry_run: bool,
) -> Result<cat::ApplyCatalogResponse, tonic::Status> {
    apply_with(c, document, 0, dry_run, false).await
}

async fn apply_with(
    c: &mut recur_e2e::Clients,
    document: &str,
    format: i32,
    dry_run: bool,
    allow_archive_all: bool,
) -> Result<cat::ApplyCatalogResponse, tonic::Status> {
    c.catalog
        .apply_catalog(cat::ApplyCatalogRequest { document: document.into(), format, dry_run, allow_archive_all })
        .await
        .map(|r| r.into_inner())
}

fn count(r: &cat::ApplyCatalogResponse, action: cat::ChangeAction) -> usize {
    r.changes.iter().filter(|c| c.action == action as i32).count()
}

async fn export(c: &mut recur_e2e::Clients, format: cat::DocumentFormat) -> String {
    c.catalog
        .export_catalog(cat::ExportCatalogRequest { format: format as i32 })
        .await
        .expect("export")
        .into_inner()
        .document
}

async fn catalog_as_code(app: &TestApp) {
    let mut c = app.clients("coder");
    let demo = recur_catalog::DEMO_CATALOG;

    // A dry run of the first apply says what would be created, writes nothing.
    let preview = apply(&mut c, demo, true).await.expect("dry run");
    assert!(!preview.applied);
    assert_eq!(count(&preview, cat::ChangeAction::Created), preview.changes.len());
    assert!(preview.changes.iter().all(|ch| ch.id.is_empty()), "a dry run hands out no ids");
    assert_eq!(app.count_rows("catalog", "products").await, 0);

    let first = apply(&mut c, demo, false).await.expect("apply");
    assert!(first.applied);
    assert_eq!(count(&first, cat::ChangeAction::Created), 7 + 4 + 8 + 3, "7 products, 4 offerings, 8 rates, 3 coupons");
    let again = apply(&mut c, demo, false).await.expect("apply again");
    assert_eq!(count(&again, cat::ChangeAction::Unchanged), again.changes.len(), "idempotent");

    // Handles reach everything the document made.
    let rate = c
        .catalog
        .get_rate(cat::GetRateRequest { lookup: Some(cat::get_rate_request::Lookup::Handle("team-monthly".into())) })
        .await
        .expect("rate by handle")
        .into_inner()
        .rate
        .expect("rate");
    assert_eq!((rate.currency_code.as_str(), rate.trial_days, rate.setup_fee.as_str()), ("USD", 14, "99"));
    let api_calls = rate.prices.iter().find(|p| p.model == cat::PricingModel::Tiered as i32).expect("tiered api calls");
    assert_eq!(api_calls.tiers[1].unit_amount, "0.0012");
    let coupon = c
        .catalog
        .get_coupon(cat::GetCouponRequest { lookup: Some(cat::get_coupon_request::Lookup::Code("TEAM20".into())) })
        .await
        .expect("coupon by code")
        .into_inner()
        .coupon
        .expect("coupon");
    assert_eq!(coupon.duration_periods, 3);
    assert_eq!(coupon.offering_ids.len(), 1);

    // The export is a document that applies without a change, in YAML and JSON.
    let yaml = export(&mut c, cat::DocumentFormat::Yaml).await;
    let round = apply(&mut c, &yaml, false).await.expect("apply the export");
    assert_eq!(count(&round, cat::ChangeAction::Unchanged), round.changes.len(), "{yaml}");
    let json = export(&mut c, cat::DocumentFormat::Json).await;
    assert!(json.trim_start().starts_with('{'));
    let round = apply(&mut c, &json, true).await.expect("apply the JSON export");
    assert_eq!(count(&round, cat::ChangeAction::Unchanged), round.changes.len());
    assert_eq!(export(&mut c, cat::DocumentFormat::Yaml).await, yaml, "export is stable");

    // A price change: previewed, then applied as a new version of the rate.
    let repriced = demo.replace("flat_amount: \"15.99\"", "flat_amount: \"17.99\"");
    let preview = apply(&mut c, &repriced, true).await.expect("dry run");
    let ch = preview.changes.iter().find(|ch| ch.handle == "gamefly-basic-monthly").expect("the rate changes");
    assert_eq!(ch.action, cat::ChangeAction::Changed as i32);
    assert!(ch.changed_fields.iter().any(|f| f == "prices"), "{:?}", ch.changed_fields);
    assert_eq!(count(&preview, cat::ChangeAction::Changed), 1);
    let old = c
        .catalog
        .get_rate(cat::GetRateRequest {
            lookup: Some(cat::get_rate_request::Lookup::Handle("gamefly-basic-monthly".into())),
        })
        .await
        .expect("old")
        .into_inner()
        .rate
        .expect("rate");
    assert_eq!(old.prices[0].flat_amount, "15.99", "a dry run writes nothing");
    apply(&mut c, &repriced, false).await.expect("apply the new price");
    let new = c
        .catalog
        .get_rate(cat::GetRateRequest {
            lookup: Some(cat::get_rate_request::Lookup::Handle("gamefly-basic-monthly".into())),
        })
        .await
        .expect("new")
        .into_inner()
        .rate
        .expect("rate");
    assert_ne!(new.id, old.id);
    assert_eq!((new.version, new.prices[0].flat_amount.as_str()), (2, "17.99"));
    let old_again = c
        .catalog
        .get_rate(cat::GetRateRequest { lookup: Some(cat::get_rate_request::Lookup::Id(old.id.clone())) })
        .await
        .expect("the old version stays readable")
        .into_inner()
        .rate
        .expect("rate");
    assert_eq!(old_again.status, cat::CatalogStatus::Archived as i32);
    assert_eq!(old_again.prices[0].flat_amount, "15.99", "never edited in place");

    // Dropping an offering from the document archives it and its rates.
    let mut doc: Vec<&str> = Vec::new();
    let mut skipping = false;
    for line in repriced.lines() {
        if line.starts_with("  - handle: gamefly-basic") {
            skipping = true;
        } else if skipping && line.starts_with("  - handle:") {
            skipping = false;
        }
        if !skipping {
            doc.push(line);
        }
    }
    let dropped = apply(&mut c, &doc.join("\n"), false).await.expect("apply without gamefly");
    let archived: Vec<&str> = dropped
        .changes
        .iter()
        .filter(|ch| ch.action == cat::ChangeAction::Archived as i32)
        .map(|ch| ch.handle.as_str())
        .collect();
    assert_eq!(archived, vec!["gamefly-basic-monthly", "gamefly-basic"]);

    // All or nothing: one bad rate spoils the whole document.
    let before = app.count_rows("catalog", "products").await;
    let broken_offering = "offerings:\n  - handle: broken\n    name: Broken\n    products: [platform-fee]\n    rates:\n      - handle: broken-monthly\n        name: x\n        currency: USD\n        billing_period: {unit: month}\n        prices:\n          platform-fee: {model: flat, flat_amount: \"-1\"}\n";
    let bad = doc.join("\n").replace("- handle: game-rentals", "- handle: game-rentals-2").replacen(
        "offerings:\n",
        broken_offering,
        1,
    );
    let err = apply(&mut c, &bad, false).await.expect_err("a negative price");
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields = details(&err).fields;
    assert!(fields.iter().any(|f| f.ends_with("prices.platform-fee.flat_amount")), "{fields:?}");
    assert_eq!(app.count_rows("catalog", "products").await, before, "nothing of the document was written");
    let err = c
        .catalog
        .get_product(cat::GetProductRequest {
            lookup: Some(cat::get_product_request::Lookup::Handle("game-rentals-2".into())),
        })
        .await
        .expect_err("not created");
    assert_eq!(err.code(), Code::NotFound);

    // A product's kind is fixed.
    let err = apply(
        &mut c,
        &demo.replace("    name: Seats\n    kind: per_unit", "    name: Seats\n    kind: recurring"),
        true,
    )
    .await
    .expect_err("kind change");
    assert!(details(&err).fields.iter().any(|f| f == "products[1].kind"), "{:?}", details(&err).fields);
}

on_both_backends!(catalog_as_code_sqlite, catalog_as_code_postgres, catalog_as_code);

/// Asserts a refusal of `document` with `reason`, answered in reasonable time.
async fn refused(c: &mut recur_e2e::Clients, document: &str, format: cat::DocumentFormat, reason: &str) {
    let started = std::time::Instant::now();
    let err = apply_with(c, document, format as i32, true, false).await.expect_err("refused");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "{reason}: took {took:?}");
    assert_eq!(err.code(), Code::InvalidArgument, "{reason}: {}", err.message());
    let d = details(&err);
    assert_eq!(d.reason, reason, "{}", err.message());
    assert_eq!(d.fields, vec!["document"]);
    if reason == "DOCUMENT_TOO_DEEP" {
        assert!(err.message().contains("32"), "the limit is named: {}", err.message());
    }
}

async fn catalog_document_limits(app: &TestApp) {
    let mut c = app.clients("limits");
    let demo = recur_catalog::DEMO_CATALOG;
    apply(&mut c, demo, false).await.expect("apply the demo");
    let exported = export(&mut c, cat::DocumentFormat::Yaml).await;

    // Deep nesting, as YAML (once ~20 s of a core) and as JSON, and a deep
    // document of nearly 4 MiB: refused before any parser runs.
    let deep = format!("{}1{}", "{\"a\":".repeat(60_000), "}".repeat(60_000));
    refused(&mut c, &deep, cat::DocumentFormat::Yaml, "DOCUMENT_TOO_DEEP").await;
    refused(&mut c, &deep, cat::DocumentFormat::Unspecified, "DOCUMENT_TOO_DEEP").await;
    refused(&mut c, &"[".repeat((4 << 20) - 64), cat::DocumentFormat::Yaml, "DOCUMENT_TOO_DEEP").await;
    let block: String = (0..40).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
    refused(&mut c, &block, cat::DocumentFormat::Yaml, "DOCUMENT_TOO_DEEP").await;
    // Aliases that expand a small document past any reasonable size.
    let wide: String = (0..2_000).map(|i| format!("k{i}: v, ")).collect();
    let mut bomb = format!("products:\n- {{handle: p0, name: P, kind: recurring, metadata: &m {{{wide}}}}}\n");
    for i in 1..1_000 {
        bomb.push_str(&format!("- {{handle: p{i}, name: P, kind: recurring, metadata: *m}}\n"));
    }
    refused(&mut c, &bomb, cat::DocumentFormat::Yaml, "DOCUMENT_TOO_LARGE").await;
    assert_eq!(export(&mut c, cat::DocumentFormat::Yaml).await, exported, "nothing written");

    // A document without a resource would archive everything: refused unless
    // the request says so, whatever its spelling.
    let all = 7 + 4 + 8 + 3;
    for (empty, format) in [
        ("", cat::DocumentFormat::Yaml),
        ("# nothing\n", cat::DocumentFormat::Yaml),
        ("{}", cat::DocumentFormat::Unspecified),
        ("{}", cat::DocumentFormat::Json),
        ("[]", cat::DocumentFormat::Yaml),
        ("products: []\noffering: []\n", cat::DocumentFormat::Yaml),
        ("products: []\nofferings: []\ncoupons: []\n", cat::DocumentFormat::Yaml),
    ] {
        let err = match apply_with(&mut c, empty, format as i32, false, false).await {
            Err(e) => e,
            Ok(r) => panic!("{empty:?} applied: {} changes", r.changes.len()),
        };
        if err.code() == Code::InvalidArgument {
            // Not a catalog at all (`[]`, a misspelt key): refused as such.
            assert_eq!(details(&err).fields, vec!["document"], "{empty:?}");
            continue;
        }
        assert_eq!(err.code(), Code::FailedPrecondition, "{empty:?}: {}", err.message());
        assert_eq!(details(&err).reason, "ARCHIVE_ALL_NOT_CONFIRMED", "{empty:?}");
        assert!(err.message().contains("allow_archive_all"), "{}", err.message());
        assert_eq!(export(&mut c, cat::DocumentFormat::Yaml).await, exported, "{empty:?}: nothing archived");
    }

    // The dry run says what it would do: archive every resource.
    let preview = apply_with(&mut c, "", cat::DocumentFormat::Yaml as i32, true, false).await.expect("dry run");
    assert!(!preview.applied);
    assert_eq!(count(&preview, cat::ChangeAction::Archived), all, "{:?}", preview.changes);
    assert_eq!(preview.changes.len(), all);
    assert_eq!(export(&mut c, cat::DocumentFormat::Yaml).await, exported, "a dry run writes nothing");

    // Said explicitly, it archives everything.
    let done = apply_with(&mut c, "{}", cat::DocumentFormat::Json as i32, false, true).await.expect("archive all");
    assert!(done.applied);
    assert_eq!(count(&done, cat::ChangeAction::Archived), all);
    assert_eq!(export(&mut c, cat::DocumentFormat::Json).await.trim(), "{}");
    // A non-empty document never needs the flag.
    let back = apply(&mut c, demo, false).await.expect("apply the demo again");
    assert!(back.applied);
}

on_both_backends!(catalog_document_limits_sqlite, catalog_document_limits_postgres, catalog_document_limits);
