//! The billing clock over gRPC on both backends: renewals through a
//! tenant's test clock (24 monthly periods from Jan 31, each invoiced once,
//! periods contiguous and on the anchor, amounts exact, every invoice
//! finalized after the grace period and charged), another tenant's clock
//! untouched, a scheduled cancellation taking effect at the period end, a
//! subscription whose price the tenant's ceiling refuses parked while the others go on, and
//! the background clock catching up on a subscription three periods behind;
//! dunning: a declined renewal retried on the tenant's schedule until a new
//! card pays it, a hard decline not retried, a REMITTANCE invoice overdue,
//! and each final action; the seed stories that need the clock (BuiltOn's
//! user charged monthly for a year, a Maxio import renewing on its date).

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use recur_e2e::clock::{advance, amount, at, enable, time, ts};
use recur_e2e::{Clients, TestApp, details, mask};
use recur_proto::catalog::v1 as cat;
use recur_proto::subscription::v1 as sub;
use rust_decimal::Decimal;
use tonic::Code;

async fn subscribe(c: &mut Clients, account: &str, bg: &str, plan: &recur_e2e::Plan) -> sub::Subscription {
    c.subscriptions
        .create_subscription(sub::CreateSubscriptionRequest {
            account_id: account.into(),
            bill_group_id: bg.into(),
            offering: plan.offering_id.clone(),
            rate: plan.rate_id.clone(),
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner()
        .subscription
        .expect("subscription")
}

async fn get(c: &mut Clients, id: &str) -> sub::Subscription {
    let r = c.subscriptions.get_subscription(sub::GetSubscriptionRequest { id: id.into() }).await;
    r.expect("get").into_inner().subscription.expect("subscription")
}

/// The subscription's invoices, by period start.
async fn invoices(c: &mut Clients, subscription: &str) -> Vec<sub::Invoice> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = c
            .invoices
            .list_invoices(sub::ListInvoicesRequest {
                subscription_id: subscription.into(),
                page_size: 100,
                page_token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        all.extend(r.invoices);
        if r.next_page_token.is_empty() {
            break;
        }
        page_token = r.next_page_token;
    }
    all.sort_by_key(|i| i.period_start.as_ref().map(|t| t.seconds));
    all
}

async fn event_types(c: &mut Clients) -> Vec<String> {
    let mut types = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = c
            .events
            .list_events(sub::ListEventsRequest { page_size: 500, page_token, ..Default::default() })
            .await
            .expect("events")
            .into_inner();
        types.extend(r.events.into_iter().map(|e| e.r#type));
        if r.next_page_token.is_empty() {
            break;
        }
        page_token = r.next_page_token;
    }
    types
}

/// 24 monthly renewals from Jan 31 through the test clock, in one call.
async fn test_clock_renews_every_period_once(app: &TestApp) {
    let mut c = app.clients("acme");
    let start = at(2023, 1, 31, 0);
    assert_eq!(enable(&mut c, start).await, start);
    let plan = recur_e2e::create_monthly_plan(&mut c, "30.00", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Initech").await;
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    assert_eq!(time(&s.current_period_end), at(2023, 2, 28, 0));

    // Another tenant, not in test mode: its clock is the real one.
    let mut other = app.clients("globex");
    let clock = other.clock.get_clock(sub::GetClockRequest {}).await.expect("clock").into_inner().clock.expect("c");
    assert!(!clock.test_mode);
    assert!((time(&clock.now) - Utc::now()).num_seconds().abs() < 60);
    let err = other
        .clock
        .advance_clock(sub::AdvanceClockRequest {
            target: Some(sub::advance_clock_request::Target::By(prost_types::Duration { seconds: 60, nanos: 0 })),
        })
        .await
        .expect_err("not in test mode");
    assert_eq!((err.code(), details(&err).reason.as_str()), (Code::FailedPrecondition, "NOT_TEST_MODE"));

    let began = Instant::now();
    let done = advance(&mut c, at(2025, 1, 31, 2)).await;
    let took = began.elapsed();
    eprintln!("24 renewals through the test clock took {took:?} ({:?})", app.backend);
    assert_eq!(time(&done.clock.as_ref().expect("clock").now), at(2025, 1, 31, 2));
    let count = |kind: &str| done.actions.iter().filter(|a| a.kind == kind).count();
    assert_eq!((count("renewed"), count("finalized"), count("paid")), (24, 24, 24), "{:?}", done.actions);
    let times: Vec<i64> = done.actions.iter().map(|a| a.time.as_ref().expect("time").seconds).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "actions in time order");

    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 25, "the first invoice and one per renewal");
    let mut expected_start = at(2023, 1, 31, 0);
    for (i, inv) in all.iter().enumerate() {
        assert_eq!(time(&inv.period_start), expected_start, "invoice {i} starts where the last ended");
        let end = time(&inv.period_end);
        // Anchored on the 31st: the month's last day when it is shorter.
        assert_eq!(chrono::Datelike::day(&end), last_day(end), "invoice {i} ends on the anchor: {end}");
        assert_eq!(amount(&inv.amount), Decimal::from_str("30.00").expect("lit"), "invoice {i}");
        assert_eq!(inv.status, sub::InvoiceStatus::Paid as i32, "invoice {i}");
        assert!(!inv.number.is_empty(), "invoice {i} numbered");
        if i > 0 {
            assert_eq!(inv.billing_reason, "subscription_cycle");
            assert_eq!(time(&inv.create_time), expected_start, "dated in its own period");
            assert_eq!(time(&inv.issue_time), expected_start + chrono::Duration::hours(1), "after the grace period");
            assert!(inv.next_action_time.is_none());
        }
        expected_start = end;
    }
    assert_eq!(expected_start, at(2025, 2, 28, 0));
    let s = get(&mut c, &s.id).await;
    assert_eq!(s.state, sub::SubscriptionState::Active as i32);
    assert_eq!(time(&s.next_billing_time), at(2025, 2, 28, 0));
    assert_eq!(app.count_rows("payment", "payments").await, 25, "one charge per invoice");
    let types = event_types(&mut c).await;
    assert_eq!(types.iter().filter(|t| *t == "subscription.renewed").count(), 24);
    assert_eq!(types.iter().filter(|t| *t == "invoice.finalized").count(), 24);

    // Moving again to the same time does nothing; backwards is refused.
    let again = advance(&mut c, at(2025, 1, 31, 2)).await;
    assert!(again.actions.is_empty());
    let back = c
        .clock
        .advance_clock(sub::AdvanceClockRequest {
            target: Some(sub::advance_clock_request::Target::To(ts(at(2024, 1, 1, 0)))),
        })
        .await
        .expect_err("backwards");
    assert_eq!(back.code(), Code::InvalidArgument);
    assert_eq!(invoices(&mut c, &s.id).await.len(), 25);
    // The other tenant still reads the real time.
    let clock = other.clock.get_clock(sub::GetClockRequest {}).await.expect("clock").into_inner().clock.expect("c");
    assert!((time(&clock.now) - Utc::now()).num_seconds().abs() < 60);
}

/// The last day of `t`'s month (the 31st anchor falls there).
fn last_day(t: DateTime<Utc>) -> u32 {
    use chrono::Datelike;
    let d = t.date_naive();
    let next = if d.month() == 12 {
        chrono::NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map(|p| p.day()).expect("date")
}

/// A cancellation at the period end takes effect there; a subscription
/// whose contract no longer prices is parked, with its reason and an
/// event, and another subscription renews all the same.
async fn cancellation_and_parking(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 3, 10, 12)).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "12.50", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Hooli").await;
    let ending = subscribe(&mut c, &account, &bg, &plan).await;
    let parked = subscribe(&mut c, &account, &bg, &plan).await;
    c.subscriptions
        .cancel_subscription(sub::CancelSubscriptionRequest {
            id: ending.id.clone(),
            timing: sub::CancelTiming::EndOfTerm as i32,
            reason: "too expensive".into(),
            ..Default::default()
        })
        .await
        .expect("cancel at the period end");
    let healthy_plan = recur_e2e::create_plan_named(&mut c, "healthy", "7.00", None).await;
    let healthy = subscribe(&mut c, &account, &bg, &healthy_plan).await;
    // The tenant's ceiling drops below what `parked` pays: its renewal
    // cannot be priced any more; 7.00 still can.
    c.catalog
        .update_tenant_settings(cat::UpdateTenantSettingsRequest {
            settings: Some(cat::TenantSettings {
                max_amounts: [("USD".to_string(), "10.00".to_string())].into_iter().collect(),
                ..Default::default()
            }),
            update_mask: Some(mask(&["max_amounts"])),
        })
        .await
        .expect("settings");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let done = advance(&mut c, at(2024, 4, 10, 14)).await;
    let kinds: Vec<(&str, &str)> = done.actions.iter().map(|a| (a.kind.as_str(), a.subscription_id.as_str())).collect();
    assert!(kinds.contains(&("canceled", ending.id.as_str())), "{kinds:?}");
    assert!(kinds.contains(&("parked", parked.id.as_str())), "{kinds:?}");
    assert!(kinds.contains(&("renewed", healthy.id.as_str())), "{kinds:?}");
    let e = get(&mut c, &ending.id).await;
    assert_eq!(e.state, sub::SubscriptionState::Canceled as i32);
    assert!(e.next_billing_time.is_none());
    assert_eq!(invoices(&mut c, &ending.id).await.len(), 1, "nothing billed after the end");
    let p = get(&mut c, &parked.id).await;
    assert!(!p.parked_reason.is_empty(), "the reason is on the subscription");
    assert_eq!(invoices(&mut c, &parked.id).await.len(), 1);
    assert_eq!(invoices(&mut c, &healthy.id).await.len(), 2);
    let types = event_types(&mut c).await;
    assert!(types.contains(&"subscription.parked".to_string()));
    // A parked subscription is left alone afterwards.
    let later = advance(&mut c, at(2024, 6, 10, 14)).await;
    assert!(!later.actions.iter().any(|a| a.subscription_id == parked.id), "{:?}", later.actions);
    assert_eq!(invoices(&mut c, &healthy.id).await.len(), 4);
}

/// The background clock (no test mode): a subscription three periods
/// behind gets one invoice per missed period, in order, each dated in its
/// own period, finalized and charged once.
async fn background_clock_catches_up(app: &TestApp) {
    let mut c = app.clients("acme");
    let plan = recur_e2e::create_monthly_plan(&mut c, "9.99", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Pied Piper").await;
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    assert_eq!(time(&s.current_period_start), at(2023, 3, 31, 0));
    app.set_time(at(2023, 6, 30, 5));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = invoices(&mut c, &s.id).await;
        if all.len() == 4 && all.iter().all(|i| i.status == sub::InvoiceStatus::Paid as i32) {
            let starts: Vec<DateTime<Utc>> = all.iter().map(|i| time(&i.period_start)).collect();
            assert_eq!(starts, vec![at(2023, 3, 31, 0), at(2023, 4, 30, 0), at(2023, 5, 31, 0), at(2023, 6, 30, 0)]);
            for inv in &all[1..] {
                assert_eq!(time(&inv.create_time), time(&inv.period_start), "dated in its own period");
            }
            break;
        }
        assert!(Instant::now() < deadline, "not caught up: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Later passes find nothing more to do.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(invoices(&mut c, &s.id).await.len(), 4);
    assert_eq!(app.count_rows("payment", "payments").await, 4);
}

fn latest(all: &[sub::Invoice]) -> &sub::Invoice {
    all.last().expect("an invoice")
}

/// A renewal declined, retried 1 and 3 days after the first failure (the
/// subscription PAST_DUE meanwhile), then paid at once by a new card: the
/// subscription ACTIVE again, one charge per attempt, each under its own key.
async fn a_declined_renewal_is_retried_until_a_new_card_pays(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 10, 0)).await;
    recur_e2e::set_dunning(&mut c, &[1, 3, 5], cat::DunningFinalAction::CancelSubscription).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "20.00", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Umbrella").await;
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    recur_e2e::switch_card(&mut c, &bg, "tok_decline").await;
    let done = advance(&mut c, at(2024, 2, 10, 2)).await;
    let failed: Vec<_> = done.actions.iter().filter(|a| a.kind == "payment_failed").collect();
    assert_eq!(failed.len(), 1, "{:?}", done.actions);
    assert_eq!(failed[0].reason, "generic_decline");
    assert_eq!(get(&mut c, &s.id).await.state, sub::SubscriptionState::PastDue as i32);
    let inv = latest(&invoices(&mut c, &s.id).await).clone();
    assert_eq!((inv.status, inv.attempt_count), (sub::InvoiceStatus::Open as i32, 1));
    let first_failure = at(2024, 2, 10, 1);
    assert_eq!(time(&inv.next_action_time), first_failure + chrono::Duration::days(1));
    // The first retry, a day later, declines again; the next is two days on.
    let done = advance(&mut c, at(2024, 2, 12, 0)).await;
    assert_eq!(done.actions.iter().filter(|a| a.kind == "payment_failed").count(), 1, "{:?}", done.actions);
    let inv = latest(&invoices(&mut c, &s.id).await).clone();
    assert_eq!(inv.attempt_count, 2);
    assert_eq!(time(&inv.next_action_time), first_failure + chrono::Duration::days(3));
    // A new card on the bill group: the open invoice is collected at once.
    recur_e2e::switch_card(&mut c, &bg, "tok_visa").await;
    let inv = latest(&invoices(&mut c, &s.id).await).clone();
    assert_eq!(inv.status, sub::InvoiceStatus::Paid as i32, "paid by the new card at once");
    assert!(inv.next_action_time.is_none());
    assert_eq!(inv.payment_ids.len(), 3, "one payment per attempt: {:?}", inv.payment_ids);
    assert_eq!(get(&mut c, &s.id).await.state, sub::SubscriptionState::Active as i32);
    // Nothing more is attempted on it.
    let later = advance(&mut c, at(2024, 2, 20, 0)).await;
    assert!(!later.actions.iter().any(|a| a.invoice_id == inv.id), "{:?}", later.actions);
}

/// A hard decline (a lost card) is not retried; the final actions of the
/// schedule: cancel, mark uncollectible (ACTIVE again), leave past due; a
/// REMITTANCE invoice not paid by its due date is overdue and follows the
/// schedule without a charge.
async fn hard_declines_overdue_invoices_and_final_actions(app: &TestApp) {
    // A lost card: paused, not retried.
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 10, 0)).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "20.00", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Soylent").await;
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    recur_e2e::switch_card(&mut c, &bg, "tok_lost_card").await;
    advance(&mut c, at(2024, 2, 10, 2)).await;
    let inv = latest(&invoices(&mut c, &s.id).await).clone();
    assert_eq!((inv.collection_paused_reason.as_str(), inv.attempt_count), ("hard_decline", 1));
    assert!(inv.next_action_time.is_none());
    let later = advance(&mut c, at(2024, 2, 25, 0)).await;
    assert!(!later.actions.iter().any(|a| a.invoice_id == inv.id), "no retry: {:?}", later.actions);

    for (tenant, last, state, status) in [
        (
            "cancels",
            cat::DunningFinalAction::CancelSubscription,
            sub::SubscriptionState::Canceled,
            sub::InvoiceStatus::Open,
        ),
        (
            "writes-off",
            cat::DunningFinalAction::MarkUncollectible,
            sub::SubscriptionState::Active,
            sub::InvoiceStatus::Uncollectible,
        ),
        ("waits", cat::DunningFinalAction::LeavePastDue, sub::SubscriptionState::PastDue, sub::InvoiceStatus::Open),
    ] {
        let mut c = app.clients(tenant);
        enable(&mut c, at(2024, 1, 10, 0)).await;
        recur_e2e::set_dunning(&mut c, &[2], last).await;
        let plan = recur_e2e::create_monthly_plan(&mut c, "20.00", None).await;
        let (account, bg) = recur_e2e::card_account(&mut c, "Tyrell").await;
        let s = subscribe(&mut c, &account, &bg, &plan).await;
        recur_e2e::switch_card(&mut c, &bg, "tok_insufficient_funds").await;
        let done = advance(&mut c, at(2024, 2, 13, 0)).await;
        let ended: Vec<_> = done.actions.iter().filter(|a| a.kind == "dunning_ended").collect();
        assert_eq!(ended.len(), 1, "{tenant}: {:?}", done.actions);
        assert_eq!(get(&mut c, &s.id).await.state, state as i32, "{tenant}");
        let inv = latest(&invoices(&mut c, &s.id).await).clone();
        assert_eq!((inv.status, inv.attempt_count), (status as i32, 2), "{tenant}");
        assert!(inv.next_action_time.is_none(), "{tenant}");
    }

    // Remittance: overdue at its due date (30 days), then the schedule.
    let mut c = app.clients("remits");
    enable(&mut c, at(2024, 1, 10, 0)).await;
    recur_e2e::set_dunning(&mut c, &[3], cat::DunningFinalAction::LeavePastDue).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "20.00", None).await;
    let (account, bg) = recur_e2e::remittance_account(&mut c, "Wayne").await;
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    let first = latest(&invoices(&mut c, &s.id).await).clone();
    assert_eq!(time(&first.next_action_time), at(2024, 2, 9, 0), "looked at on its due date");
    let done = advance(&mut c, at(2024, 2, 9, 12)).await;
    assert!(done.actions.iter().any(|a| a.kind == "overdue" && a.invoice_id == first.id), "{:?}", done.actions);
    assert_eq!(get(&mut c, &s.id).await.state, sub::SubscriptionState::PastDue as i32);
    assert!(event_types(&mut c).await.contains(&"invoice.overdue".to_string()));
    let done = advance(&mut c, at(2024, 2, 13, 0)).await;
    assert!(done.actions.iter().any(|a| a.kind == "dunning_ended" && a.invoice_id == first.id), "{:?}", done.actions);
    let after = invoices(&mut c, &s.id).await.into_iter().find(|i| i.id == first.id).expect("the first invoice");
    assert!(after.payment_ids.is_empty(), "a remittance invoice is never charged");
    assert_eq!((after.status, after.attempt_count), (sub::InvoiceStatus::Open as i32, 2));
}

async fn set_grace(c: &mut Clients, seconds: i64) -> Result<(), tonic::Status> {
    c.catalog
        .update_tenant_settings(cat::UpdateTenantSettingsRequest {
            settings: Some(cat::TenantSettings {
                subscription_defaults: Some(cat::SubscriptionDefaults {
                    invoice_grace_period: Some(prost_types::Duration { seconds, nanos: 0 }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(mask(&["subscription_defaults"])),
        })
        .await
        .map(|_| ())
}

/// The grace period is the tenant's: one hour unless set, at most 7 days,
/// 0 finalizing a renewal's invoice as the period starts.
async fn the_grace_period_is_a_tenant_setting(app: &TestApp) {
    let mut c = app.clients("acme");
    let settings = c.catalog.get_tenant_settings(cat::GetTenantSettingsRequest {}).await.expect("settings");
    let defaults = settings.into_inner().settings.expect("settings").subscription_defaults.expect("defaults");
    assert_eq!(defaults.invoice_grace_period.map(|g| g.seconds), Some(3600));
    let err = set_grace(&mut c, 7 * 86_400 + 1).await.expect_err("too long");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(details(&err).fields, vec!["settings.subscription_defaults.invoice_grace_period".to_string()]);
    set_grace(&mut c, 0).await.expect("no grace");
    tokio::time::sleep(Duration::from_millis(300)).await;
    enable(&mut c, at(2024, 5, 1, 0)).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "5.00", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Stark").await;
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    advance(&mut c, at(2024, 6, 1, 0)).await;
    let renewal = latest(&invoices(&mut c, &s.id).await).clone();
    assert_eq!(time(&renewal.issue_time), at(2024, 6, 1, 0), "finalized as the period starts");
    assert_eq!(renewal.status, sub::InvoiceStatus::Paid as i32);
}

/// The account's time zone decides the billing day: a subscription made at
/// 23:30 on Jan 31 in Los Angeles (07:30 on Feb 1 in UTC) is anchored on
/// the 31st there, and 24 monthly periods start and end at midnight in Los
/// Angeles on the last day of the shorter months, across every change
/// between PST and PDT.
async fn the_accounts_time_zone_decides_the_billing_day(app: &TestApp) {
    use chrono::{Datelike, Timelike};
    let la: chrono_tz::Tz = "America/Los_Angeles".parse().expect("zone");
    let mut c = app.clients("acme");
    enable(&mut c, at(2023, 2, 1, 7) + chrono::Duration::minutes(30)).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "30.00", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Hollywood").await;
    c.accounts
        .update_account(sub::UpdateAccountRequest {
            account: Some(sub::Account {
                id: account.clone(),
                time_zone: "America/Los_Angeles".into(),
                ..Default::default()
            }),
            update_mask: Some(mask(&["time_zone"])),
        })
        .await
        .expect("time zone");
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    let local = |t: DateTime<Utc>| t.with_timezone(&la);
    assert_eq!(local(time(&s.current_period_start)).date_naive().to_string(), "2023-01-31");
    assert_eq!(local(time(&s.current_period_end)).date_naive().to_string(), "2023-02-28", "not Feb 28 in UTC");
    advance(&mut c, at(2025, 2, 1, 12)).await;
    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 25);
    let mut expected_start = time(&s.current_period_start);
    for (i, inv) in all.iter().enumerate() {
        assert_eq!(time(&inv.period_start), expected_start, "invoice {i}");
        let end = local(time(&inv.period_end));
        assert_eq!((end.hour(), end.minute()), (0, 0), "invoice {i} ends at midnight in Los Angeles: {end}");
        assert_eq!(end.day(), last_day(end.naive_local().and_utc()), "invoice {i} ends on the anchor: {end}");
        assert_eq!(amount(&inv.amount), Decimal::from_str("30.00").expect("lit"));
        expected_start = time(&inv.period_end);
    }
    // Both offsets were crossed: periods of 7- and 8-hour UTC offsets.
    let offsets: std::collections::BTreeSet<i64> = all.iter().map(|i| time(&i.period_end).hour() as i64).collect();
    assert_eq!(offsets, [7, 8].into_iter().collect(), "PDT and PST");
}

/// Calendar billing: a bill group with billing day 1 bills every period
/// from the 1st; the first period (from Jan 15) is prorated, the renewals
/// are whole months at the full price.
async fn calendar_billing_renews_on_the_billing_day(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2023, 1, 15, 0)).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "31.00", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Calendar").await;
    c.accounts
        .update_bill_group(sub::UpdateBillGroupRequest {
            bill_group: Some(sub::BillGroup { id: bg.clone(), billing_day: 1, ..Default::default() }),
            update_mask: Some(mask(&["billing_day"])),
        })
        .await
        .expect("billing day");
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    assert_eq!(time(&s.current_period_end), at(2023, 2, 1, 0));
    advance(&mut c, at(2023, 5, 2, 0)).await;
    let all = invoices(&mut c, &s.id).await;
    let periods: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        all.iter().map(|i| (time(&i.period_start), time(&i.period_end))).collect();
    assert_eq!(
        periods,
        vec![
            (at(2023, 1, 15, 0), at(2023, 2, 1, 0)),
            (at(2023, 2, 1, 0), at(2023, 3, 1, 0)),
            (at(2023, 3, 1, 0), at(2023, 4, 1, 0)),
            (at(2023, 4, 1, 0), at(2023, 5, 1, 0)),
            (at(2023, 5, 1, 0), at(2023, 6, 1, 0)),
        ]
    );
    // 17 of January's 31 days, then whole months.
    assert_eq!(amount(&all[0].amount), Decimal::from_str("17.00").expect("lit"));
    assert!(all[1..].iter().all(|i| amount(&i.amount) == Decimal::from_str("31.00").expect("lit")));
}

/// Completes (or fails) payment `id`'s 3-D Secure challenge as the
/// customer would, on the gateway's hosted page.
async fn challenge(c: &mut Clients, id: &str, action: &str) {
    use recur_proto::payment::v1 as pay;
    let p = c
        .payments
        .get_payment(pay::GetPaymentRequest { id: id.into() })
        .await
        .expect("payment")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(p.status, pay::PaymentStatus::RequiresAction as i32);
    let r = recur_e2e::http_client()
        .post(&p.action_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("action={action}"))
        .send()
        .await
        .expect("post");
    assert!(r.status().is_success(), "{}", r.status());
}

/// A renewal charged on a card that needs 3-D Secure is left open,
/// waiting; when the customer completes the challenge, the gateway's
/// payment event pays it; a failed challenge puts it in dunning.
async fn payments_settled_later_follow_the_gateways_events(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 3, 1, 0)).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "15.00", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Cyberdyne").await;
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    recur_e2e::switch_card(&mut c, &bg, "tok_3ds_required").await;
    let done = advance(&mut c, at(2024, 4, 1, 2)).await;
    let pending: Vec<_> = done.actions.iter().filter(|a| a.kind == "payment_pending").collect();
    assert_eq!(pending.len(), 1, "{:?}", done.actions);
    let inv = latest(&invoices(&mut c, &s.id).await).clone();
    assert_eq!(
        (inv.status, inv.collection_paused_reason.as_str()),
        (sub::InvoiceStatus::Open as i32, "payment_pending")
    );
    challenge(&mut c, &pending[0].payment_id, "approve").await;
    let done = advance(&mut c, at(2024, 4, 1, 3)).await;
    assert!(done.actions.iter().any(|a| a.kind == "paid" && a.invoice_id == inv.id), "{:?}", done.actions);
    let paid = latest(&invoices(&mut c, &s.id).await).clone();
    assert_eq!((paid.status, paid.collection_paused_reason.as_str()), (sub::InvoiceStatus::Paid as i32, ""));
    // Read again, the same events change nothing.
    let again = advance(&mut c, at(2024, 4, 1, 4)).await;
    assert!(!again.actions.iter().any(|a| a.invoice_id == inv.id), "{:?}", again.actions);

    // The next renewal's challenge fails: dunning, the subscription PAST_DUE.
    let done = advance(&mut c, at(2024, 5, 1, 2)).await;
    let pending = done.actions.iter().find(|a| a.kind == "payment_pending").expect("pending").clone();
    challenge(&mut c, &pending.payment_id, "fail").await;
    let done = advance(&mut c, at(2024, 5, 1, 3)).await;
    assert!(
        done.actions.iter().any(|a| a.kind == "payment_failed" && a.invoice_id == pending.invoice_id),
        "{:?}",
        done.actions
    );
    let failed = latest(&invoices(&mut c, &s.id).await).clone();
    assert_eq!((failed.status, failed.attempt_count), (sub::InvoiceStatus::Open as i32, 1));
    assert!(failed.next_action_time.is_some(), "retried on the schedule");
    assert_eq!(get(&mut c, &s.id).await.state, sub::SubscriptionState::PastDue as i32);
}

/// BuiltOn (seed 001): a user with a payment method is charged when the
/// plan says so — monthly, for a year, by the clock alone.
async fn builton_user_is_charged_monthly_for_a_year(app: &TestApp) {
    let mut c = app.clients("builton");
    enable(&mut c, at(2024, 1, 1, 9)).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "9.99", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "BuiltOn user").await;
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    let began = Instant::now();
    let done = advance(&mut c, at(2025, 1, 1, 2)).await;
    eprintln!("a year of monthly renewals in one AdvanceClock: {:?} ({:?})", began.elapsed(), app.backend);
    assert_eq!(done.actions.iter().filter(|a| a.kind == "paid").count(), 12, "{:?}", done.actions);
    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 13);
    assert!(all.iter().all(|i| i.status == sub::InvoiceStatus::Paid as i32));
    let starts: Vec<u32> = all.iter().map(|i| chrono::Datelike::day(&time(&i.period_start))).collect();
    assert!(starts.iter().all(|d| *d == 1), "billed on the 1st: {starts:?}");
}

/// Maxio (seed 002): a subscription imported with its `next_billing_at`
/// renews on that date, for the period from it.
async fn maxio_import_renews_on_its_next_billing_date(app: &TestApp) {
    let mut c = app.clients("maxio");
    enable(&mut c, at(2024, 3, 20, 0)).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "25.00", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Maxio customer").await;
    let imported = c
        .subscriptions
        .import_subscription(sub::ImportSubscriptionRequest {
            account_id: account,
            bill_group_id: bg,
            offering: plan.offering_id.clone(),
            rate: plan.rate_id.clone(),
            previous_billing_time: Some(ts(at(2024, 3, 5, 0))),
            next_billing_time: Some(ts(at(2024, 4, 5, 0))),
            ..Default::default()
        })
        .await
        .expect("import")
        .into_inner()
        .subscription
        .expect("subscription");
    assert!(invoices(&mut c, &imported.id).await.is_empty(), "nothing billed at import");
    let early = advance(&mut c, at(2024, 4, 4, 23)).await;
    assert!(early.actions.is_empty(), "not before its date: {:?}", early.actions);
    advance(&mut c, at(2024, 4, 5, 2)).await;
    let all = invoices(&mut c, &imported.id).await;
    assert_eq!(all.len(), 1);
    assert_eq!((time(&all[0].period_start), time(&all[0].period_end)), (at(2024, 4, 5, 0), at(2024, 5, 5, 0)));
    assert_eq!((amount(&all[0].amount), all[0].status), (Decimal::from(25), sub::InvoiceStatus::Paid as i32));
}

fn record(id: &str, product: &str, quantity: &str, at: DateTime<Utc>) -> sub::UsageRecord {
    sub::UsageRecord {
        product_id: product.into(),
        quantity: quantity.into(),
        event_time: Some(ts(at)),
        event_id: id.into(),
        properties: [("user".to_string(), "u1".to_string())].into_iter().collect(),
    }
}

/// RecordUsage judges each event alone: duplicates inside a batch and
/// across batches counted once, future and late events and bad quantities
/// refused with a reason, the rest accepted; a batch over 1,000 refused.
async fn usage_events_are_counted_once_and_judged_one_by_one(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 6, 1, 0)).await;
    let plan = recur_e2e::create_monthly_plan(&mut c, "10.00", None).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Metered").await;
    let s = subscribe(&mut c, &account, &bg, &plan).await;
    advance(&mut c, at(2024, 6, 10, 0)).await;
    let p = plan.product_id.as_str();
    let now = at(2024, 6, 10, 0);
    let batch = vec![
        record("e1", p, "3", now - chrono::Duration::days(1)),
        record("e2", p, "1.5", now),
        record("e1", p, "3", now - chrono::Duration::days(1)),
        record("e3", p, "1", now + chrono::Duration::minutes(10)),
        record("e4", p, "1", at(2024, 5, 20, 0)),
        record("e5", p, "-2", now),
        record("e6", "prod_nope", "1", now),
        record("", p, "1", now),
    ];
    let r = c
        .subscriptions
        .record_usage(sub::RecordUsageRequest { subscription_id: s.id.clone(), records: batch, ..Default::default() })
        .await
        .expect("usage")
        .into_inner();
    let got: Vec<(String, String, String)> =
        r.results.iter().map(|x| (x.event_id.clone(), x.status.clone(), x.reason.clone())).collect();
    let want = |id: &str, status: &str, reason: &str| (id.to_string(), status.to_string(), reason.to_string());
    assert_eq!(
        got,
        vec![
            want("e1", "accepted", ""),
            want("e2", "accepted", ""),
            want("e1", "duplicate", ""),
            want("e3", "refused", "FUTURE_EVENT"),
            want("e4", "refused", "LATE_EVENT"),
            want("e5", "refused", "INVALID_QUANTITY"),
            want("e6", "refused", "PRODUCT_NOT_ON_SUBSCRIPTION"),
            want("", "refused", "EVENT_ID_REQUIRED"),
        ]
    );
    assert_eq!((r.accepted, r.duplicates, r.refused), (2, 1, 5));
    // Across batches: e2 again is a duplicate, e7 is new.
    let r = c
        .subscriptions
        .record_usage(sub::RecordUsageRequest {
            subscription_id: s.id.clone(),
            records: vec![record("e2", p, "1.5", now), record("e7", p, "1", now)],
            ..Default::default()
        })
        .await
        .expect("usage")
        .into_inner();
    assert_eq!((r.accepted, r.duplicates), (1, 1));
    let too_many: Vec<_> = (0..1001).map(|i| record(&format!("b{i}"), p, "1", now)).collect();
    let err = c
        .subscriptions
        .record_usage(sub::RecordUsageRequest {
            subscription_id: s.id.clone(),
            records: too_many,
            ..Default::default()
        })
        .await
        .expect_err("over 1,000");
    assert_eq!(err.code(), Code::InvalidArgument);
    let missing = c
        .subscriptions
        .record_usage(sub::RecordUsageRequest { subscription_id: "sub_nope".into(), ..Default::default() })
        .await
        .expect_err("no such subscription");
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(app.count_rows("subscription", "usage_events").await, 3);

    // By account: each event goes to the account's subscription with its
    // product; both ids at once is refused.
    let other_plan = recur_e2e::create_plan_named(&mut c, "other", "4.00", None).await;
    let other = subscribe(&mut c, &account, &bg, &other_plan).await;
    let r = c
        .subscriptions
        .record_usage(sub::RecordUsageRequest {
            account_id: account.clone(),
            records: vec![
                record("a1", p, "1", now),
                record("a2", &other_plan.product_id, "2", now),
                record("a3", "prod_nope", "1", now),
            ],
            ..Default::default()
        })
        .await
        .expect("usage by account")
        .into_inner();
    assert_eq!((r.accepted, r.refused), (2, 1));
    let of = |id: &str| format!("SELECT COUNT(*) FROM usage_events WHERE subscription_id = '{id}'");
    assert_eq!(app.scalar("subscription", &of(&other.id)).await, 1);
    assert_eq!(app.scalar("subscription", &of(&s.id)).await, 4);
    let both = c
        .subscriptions
        .record_usage(sub::RecordUsageRequest {
            account_id: account.clone(),
            subscription_id: s.id.clone(),
            records: vec![record("a9", p, "1", now)],
        })
        .await
        .expect_err("both");
    assert_eq!((both.code(), details(&both).fields), (Code::InvalidArgument, vec!["account_id".to_string()]));
}

recur_e2e::on_both_backends!(test_clock_sqlite, test_clock_postgres, test_clock_renews_every_period_once);
recur_e2e::on_both_backends_with!(
    grace_sqlite,
    grace_postgres,
    the_grace_period_is_a_tenant_setting,
    &[("RECUR_CATALOG_CACHE_TTL_MS", "50"), ("RECUR_PRICING_CACHE_TTL_MS", "50")]
);
recur_e2e::on_both_backends!(time_zone_sqlite, time_zone_postgres, the_accounts_time_zone_decides_the_billing_day);
recur_e2e::on_both_backends!(calendar_sqlite, calendar_postgres, calendar_billing_renews_on_the_billing_day);
recur_e2e::on_both_backends!(
    settled_later_sqlite,
    settled_later_postgres,
    payments_settled_later_follow_the_gateways_events
);
recur_e2e::on_both_backends!(builton_sqlite, builton_postgres, builton_user_is_charged_monthly_for_a_year);
recur_e2e::on_both_backends!(maxio_sqlite, maxio_postgres, maxio_import_renews_on_its_next_billing_date);
recur_e2e::on_both_backends!(usage_sqlite, usage_postgres, usage_events_are_counted_once_and_judged_one_by_one);
recur_e2e::on_both_backends!(dunning_sqlite, dunning_postgres, a_declined_renewal_is_retried_until_a_new_card_pays);
recur_e2e::on_both_backends!(
    final_actions_sqlite,
    final_actions_postgres,
    hard_declines_overdue_invoices_and_final_actions
);
recur_e2e::on_both_backends_with!(
    parking_sqlite,
    parking_postgres,
    cancellation_and_parking,
    &[("RECUR_PRICING_CACHE_TTL_MS", "50"), ("RECUR_CATALOG_CACHE_TTL_MS", "50")]
);

const BACKGROUND: &[(&str, &str)] = &[("RECUR_BILLING_CLOCK_INTERVAL_MS", "100")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_sqlite() {
    let app = TestApp::spawn_at_with(recur_e2e::Backend::SqliteMemory, at(2023, 3, 31, 9), BACKGROUND)
        .await
        .expect("sqlite always works");
    background_clock_catches_up(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_postgres() {
    let Some(app) = TestApp::spawn_at_with(recur_e2e::Backend::PostgresRedis, at(2023, 3, 31, 9), BACKGROUND).await
    else {
        eprintln!("RECUR_TEST_DATABASE_URL / RECUR_TEST_REDIS_URL unset: Postgres + Redis run skipped");
        return;
    };
    background_clock_catches_up(&app).await;
    app.stop().await;
}
