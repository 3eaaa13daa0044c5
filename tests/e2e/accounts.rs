//! The account RPCs over gRPC, on both backends: UpdateAccount and its
//! update-mask rules, ListAccounts by tag in pages, CreateContact (primary
//! contacts, idempotency keys) and UpdateContact, UpdateBillGroup (its
//! gateway customer and payment method checked with the gateway) and
//! ListBillGroups. Bad input is refused naming the field with nothing
//! written, and another tenant's ids answer exactly like ids that never
//! existed.

use recur_e2e::{Clients, TestApp, details, mask, on_both_backends};
use recur_proto::common::v1::Address;
use recur_proto::subscription::v1 as sub;
use tonic::{Code, Status};

async fn account(c: &mut Clients, a: sub::Account) -> sub::Account {
    let r = c.accounts.create_account(sub::CreateAccountRequest { account: Some(a) }).await;
    r.expect("account").into_inner().account.expect("account")
}

async fn named(c: &mut Clients, name: &str, tags: &[&str]) -> sub::Account {
    let tags = tags.iter().map(|t| t.to_string()).collect();
    account(c, sub::Account { account_name: name.into(), tags, ..Default::default() }).await
}

async fn bill_group(c: &mut Clients, account_id: &str) -> sub::BillGroup {
    let r = c
        .accounts
        .create_bill_group(sub::CreateBillGroupRequest {
            bill_group: Some(sub::BillGroup {
                account_id: account_id.into(),
                collection_method: sub::CollectionMethod::Remittance as i32,
                ..Default::default()
            }),
        })
        .await;
    r.expect("bill group").into_inner().bill_group.expect("bill group")
}

/// The events of the caller's tenant as (type, data).
async fn events(c: &mut Clients) -> Vec<(String, serde_json::Value)> {
    let r = c.events.list_events(sub::ListEventsRequest { page_size: 200, ..Default::default() }).await;
    r.expect("events")
        .into_inner()
        .events
        .into_iter()
        .map(|e| (e.r#type, serde_json::from_str(&e.data_json).expect("json")))
        .collect()
}

fn types(events: &[(String, serde_json::Value)]) -> Vec<&str> {
    events.iter().map(|(t, _)| t.as_str()).collect()
}

/// `err` is `code` with `reason` and violations on exactly `fields`.
fn refused(what: &str, err: &Status, code: Code, reason: &str, fields: &[&str]) {
    let d = details(err);
    assert_eq!(err.code(), code, "{what}: {err:?}");
    assert_eq!(d.reason, reason, "{what}: {err:?}");
    assert_eq!(d.fields, fields, "{what}: {err:?}");
}

fn update_account(a: sub::Account, paths: &[&str]) -> sub::UpdateAccountRequest {
    sub::UpdateAccountRequest { account: Some(a), update_mask: (!paths.is_empty()).then(|| mask(paths)) }
}

async fn updating_an_account(app: &TestApp) {
    let mut c = app.clients("acme");
    let a = account(
        &mut c,
        sub::Account {
            account_name: "Acme".into(),
            custom_id: "crm-1".into(),
            notes: "first".into(),
            tags: vec!["eu".into()],
            currency_code: "USD".into(),
            ..Default::default()
        },
    )
    .await;
    // With a mask, only the paths named change, even to empty values.
    let r = c
        .accounts
        .update_account(update_account(
            sub::Account {
                id: a.id.clone(),
                account_name: "Acme Corp".into(),
                notes: "ignored: not in the mask".into(),
                tags: vec!["gold".into(), "eu".into()],
                ..Default::default()
            },
            &["account_name", "tags", "custom_id"],
        ))
        .await
        .expect("update")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(r.account_name, "Acme Corp");
    assert_eq!(r.tags, ["gold", "eu"]);
    assert_eq!(r.custom_id, "", "a path in the mask with no value clears it");
    assert_eq!((r.notes.as_str(), r.currency_code.as_str()), ("first", "USD"));
    assert_eq!(r.create_time, a.create_time);
    let got = c.accounts.get_account(sub::GetAccountRequest { id: a.id.clone() }).await.expect("get").into_inner();
    assert_eq!(got.account, Some(r.clone()));
    // Without a mask, every field given changes, and nothing else.
    let r = c
        .accounts
        .update_account(update_account(
            sub::Account {
                id: a.id.clone(),
                notes: "second".into(),
                time_zone: "Europe/Paris".into(),
                billing_address: Some(Address { country: "FR".into(), city: "Paris".into(), ..Default::default() }),
                metadata: [("crm".to_string(), "42".to_string())].into(),
                tax_exempt: true,
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("update")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(
        (r.account_name.as_str(), r.notes.as_str(), r.time_zone.as_str()),
        ("Acme Corp", "second", "Europe/Paris")
    );
    assert_eq!(r.tags, ["gold", "eu"]);
    assert!(r.tax_exempt);
    assert_eq!(r.billing_address.as_ref().map(|b| b.city.as_str()), Some("Paris"));
    // The same update again changes nothing and writes no event.
    let same = c
        .accounts
        .update_account(update_account(
            sub::Account { id: a.id.clone(), notes: "second".into(), ..Default::default() },
            &["notes"],
        ))
        .await
        .expect("same")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(same, r);
    let ev = events(&mut c).await;
    assert_eq!(types(&ev), ["account.created", "account.updated", "account.updated"]);
    assert_eq!(ev[1].1["account_id"], a.id.as_str());
    assert_eq!(ev[1].1["changed_fields"], serde_json::json!(["account_name", "custom_id", "tags"]));
    assert_eq!(
        ev[2].1["changed_fields"],
        serde_json::json!(["time_zone", "billing_address", "notes", "metadata", "tax_exempt"])
    );
}

on_both_backends!(updating_an_account_on_sqlite, updating_an_account_on_postgres, updating_an_account);

async fn bad_account_updates(app: &TestApp) {
    let mut c = app.clients("acme");
    let a = named(&mut c, "Acme", &[]).await;
    account(&mut c, sub::Account { account_name: "Other".into(), custom_id: "crm-1".into(), ..Default::default() })
        .await;
    let id = || a.id.clone();
    let cases: Vec<(&str, sub::UpdateAccountRequest, Code, &str, Vec<&str>)> = vec![
        (
            "an unknown path",
            update_account(sub::Account { id: id(), ..Default::default() }, &["contacts"]),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            vec!["update_mask.paths"],
        ),
        (
            "the id",
            update_account(sub::Account { id: id(), ..Default::default() }, &["id", "account_name"]),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            vec!["update_mask.paths", "account.account_name"],
        ),
        (
            "an empty name",
            update_account(sub::Account { id: id(), ..Default::default() }, &["account_name"]),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            vec!["account.account_name"],
        ),
        (
            "an unknown currency and time zone",
            update_account(
                sub::Account {
                    id: id(),
                    currency_code: "XYZ".into(),
                    time_zone: "Mars/Base".into(),
                    ..Default::default()
                },
                &[],
            ),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            vec!["account.currency_code", "account.time_zone"],
        ),
        (
            "a lower-case country",
            update_account(
                sub::Account {
                    id: id(),
                    billing_address: Some(Address { country: "fr".into(), ..Default::default() }),
                    ..Default::default()
                },
                &["billing_address"],
            ),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            vec!["account.billing_address.country"],
        ),
        (
            "no id",
            update_account(sub::Account { notes: "x".into(), ..Default::default() }, &[]),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            vec!["account.id"],
        ),
        (
            "another account's custom_id",
            update_account(sub::Account { id: id(), custom_id: "crm-1".into(), ..Default::default() }, &[]),
            Code::AlreadyExists,
            "CUSTOM_ID_TAKEN",
            vec!["account.custom_id"],
        ),
    ];
    for (what, req, code, reason, fields) in cases {
        let err = c.accounts.update_account(req).await.expect_err(what);
        refused(what, &err, code, reason, &fields);
    }
    let got = c.accounts.get_account(sub::GetAccountRequest { id: id() }).await.expect("get").into_inner();
    assert_eq!(got.account.expect("account"), a, "nothing changed");
    assert_eq!(types(&events(&mut c).await), ["account.created", "account.created"], "no event written");
}

on_both_backends!(bad_account_updates_on_sqlite, bad_account_updates_on_postgres, bad_account_updates);

async fn accounts_by_tag(app: &TestApp) {
    let mut c = app.clients("acme");
    let mut eu = Vec::new();
    for i in 0..5 {
        let tags: &[&str] = if i % 2 == 0 { &["eu", "vip"] } else { &["us"] };
        let a = named(&mut c, &format!("A{i}"), tags).await;
        if i % 2 == 0 {
            eu.push(a.id);
        }
    }
    named(&mut app.clients("globex"), "Theirs", &["eu"]).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = c
            .accounts
            .list_accounts(sub::ListAccountsRequest { tag: "eu".into(), page_size: 2, page_token: token })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(r.accounts.iter().all(|a| a.tags.contains(&"eu".to_string())));
        seen.extend(r.accounts.into_iter().map(|a| a.id));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(seen, eu, "every account tagged eu once, oldest first, none of another tenant");
    assert_eq!(pages, 2);
    // An update moves an account out of the tag.
    c.accounts
        .update_account(update_account(sub::Account { id: eu[0].clone(), ..Default::default() }, &["tags"]))
        .await
        .expect("untag");
    let r = c.accounts.list_accounts(sub::ListAccountsRequest { tag: "eu".into(), ..Default::default() }).await;
    let ids: Vec<String> = r.expect("list").into_inner().accounts.into_iter().map(|a| a.id).collect();
    assert_eq!(ids, eu[1..]);
    let all = c.accounts.list_accounts(sub::ListAccountsRequest::default()).await.expect("all").into_inner();
    assert_eq!(all.accounts.len(), 5, "no tag: every account");
    let err = c
        .accounts
        .list_accounts(sub::ListAccountsRequest { tag: "eu".into(), page_token: "bogus".into(), ..Default::default() })
        .await
        .expect_err("bad token");
    refused("a bad page token", &err, Code::InvalidArgument, "INVALID_ARGUMENT", &["page_token"]);
}

on_both_backends!(accounts_by_tag_on_sqlite, accounts_by_tag_on_postgres, accounts_by_tag);

fn new_contact(account_id: &str, email: &str, primary: bool) -> sub::CreateContactRequest {
    sub::CreateContactRequest {
        contact: Some(sub::Contact {
            account_id: account_id.into(),
            first_name: "Pat".into(),
            last_name: "Lee".into(),
            email: email.into(),
            primary,
            ..Default::default()
        }),
    }
}

async fn contacts(app: &TestApp) {
    let mut c = app.clients("acme");
    let a = account(
        &mut c,
        sub::Account {
            account_name: "Acme".into(),
            contacts: vec![sub::Contact { email: "jo@acme.example".into(), ..Default::default() }],
            ..Default::default()
        },
    )
    .await;
    let jo = a.contacts[0].id.clone();
    let pat = c.accounts.create_contact(new_contact(&a.id, "pat@acme.example", false)).await.expect("contact");
    let pat = pat.into_inner().contact.expect("contact");
    assert_eq!((pat.name.as_str(), pat.account_id.as_str(), pat.primary), ("Pat Lee", a.id.as_str(), false));
    // A primary contact is the account's only one.
    let mut keyed = tonic::Request::new(new_contact(&a.id, "sam@acme.example", true));
    keyed.metadata_mut().insert("idempotency-key", "contact-1".parse().expect("ascii"));
    let sam = c.accounts.create_contact(keyed).await.expect("primary").into_inner().contact.expect("contact");
    assert!(sam.primary);
    let primaries = |a: sub::Account| a.contacts.into_iter().map(|c| (c.id, c.primary)).collect::<Vec<_>>();
    let got = c.accounts.get_account(sub::GetAccountRequest { id: a.id.clone() }).await.expect("get");
    let got = got.into_inner().account.expect("account");
    assert_eq!(primaries(got), [(jo.clone(), false), (pat.id.clone(), false), (sam.id.clone(), true)]);
    // The same key and request: the same contact; another request: refused.
    let mut again = tonic::Request::new(new_contact(&a.id, "sam@acme.example", true));
    again.metadata_mut().insert("idempotency-key", "contact-1".parse().expect("ascii"));
    let replay = c.accounts.create_contact(again).await.expect("replay").into_inner().contact.expect("contact");
    assert_eq!(replay, sam);
    let mut other = tonic::Request::new(new_contact(&a.id, "kim@acme.example", false));
    other.metadata_mut().insert("idempotency-key", "contact-1".parse().expect("ascii"));
    let err = c.accounts.create_contact(other).await.expect_err("reused key");
    refused("a reused key", &err, Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED", &[]);
    // Bad contacts are refused naming the field, and nothing is written.
    for (what, req, fields) in [
        ("no account", new_contact("", "kim@acme.example", false), vec!["contact.account_id"]),
        ("no e-mail", new_contact(&a.id, "", false), vec!["contact.email"]),
        ("a bad e-mail", new_contact(&a.id, "kim at acme", false), vec!["contact.email"]),
    ] {
        let err = c.accounts.create_contact(req).await.expect_err(what);
        refused(what, &err, Code::InvalidArgument, "INVALID_ARGUMENT", &fields);
    }
    assert_eq!(app.count_rows("subscription", "contacts").await, 3);
    // UpdateContact: the mask's paths; made primary, the only primary.
    let upd = |contact: sub::Contact, paths: &[&str]| sub::UpdateContactRequest {
        contact: Some(contact),
        update_mask: (!paths.is_empty()).then(|| mask(paths)),
    };
    let r = c
        .accounts
        .update_contact(upd(
            sub::Contact {
                id: pat.id.clone(),
                email: "pat.lee@acme.example".into(),
                phone: "+1 555 0100".into(),
                primary: true,
                ..Default::default()
            },
            &["email", "primary"],
        ))
        .await
        .expect("update")
        .into_inner()
        .contact
        .expect("contact");
    assert_eq!(
        (r.email.as_str(), r.phone.as_str(), r.primary, r.name.as_str()),
        ("pat.lee@acme.example", "", true, "Pat Lee")
    );
    let got = c.accounts.get_account(sub::GetAccountRequest { id: a.id.clone() }).await.expect("get");
    let got = got.into_inner().account.expect("account");
    assert_eq!(primaries(got), [(jo.clone(), false), (pat.id.clone(), true), (sam.id.clone(), false)]);
    for (what, req, code, fields) in [
        (
            "a bad e-mail",
            upd(sub::Contact { id: pat.id.clone(), email: "nope".into(), ..Default::default() }, &[]),
            Code::InvalidArgument,
            vec!["contact.email"],
        ),
        (
            "an unknown path",
            upd(sub::Contact { id: pat.id.clone(), ..Default::default() }, &["account_id"]),
            Code::InvalidArgument,
            vec!["update_mask.paths"],
        ),
        (
            "no id",
            upd(sub::Contact { phone: "1".into(), ..Default::default() }, &[]),
            Code::InvalidArgument,
            vec!["contact.id"],
        ),
    ] {
        let err = c.accounts.update_contact(req).await.expect_err(what);
        refused(what, &err, code, "INVALID_ARGUMENT", &fields);
    }
    let ev = events(&mut c).await;
    assert_eq!(types(&ev), ["account.created", "contact.created", "contact.created", "contact.updated"]);
    assert_eq!(ev[3].1["contact_id"], pat.id.as_str());
    assert_eq!(ev[3].1["changed_fields"], serde_json::json!(["email", "primary"]));
}

on_both_backends!(contacts_on_sqlite, contacts_on_postgres, contacts);

fn update_bill_group(b: sub::BillGroup, paths: &[&str]) -> sub::UpdateBillGroupRequest {
    sub::UpdateBillGroupRequest { bill_group: Some(b), update_mask: (!paths.is_empty()).then(|| mask(paths)) }
}

async fn bill_groups(app: &TestApp) {
    let mut c = app.clients("acme");
    let a = account(
        &mut c,
        sub::Account {
            account_name: "Acme".into(),
            contacts: vec![sub::Contact { email: "jo@acme.example".into(), ..Default::default() }],
            ..Default::default()
        },
    )
    .await;
    let other = named(&mut c, "Other", &[]).await;
    let bg = bill_group(&mut c, &a.id).await;
    let (customer, card) = recur_e2e::customer_with_card(&mut c).await;
    // The gateway customer and its card, checked with the gateway.
    let r = c
        .accounts
        .update_bill_group(update_bill_group(
            sub::BillGroup {
                id: bg.id.clone(),
                gateway_customer_id: customer.clone(),
                payment_method_id: card.clone(),
                collection_method: sub::CollectionMethod::Automatic as i32,
                billing_day: 15,
                name: "ignored: not in the mask".into(),
                ..Default::default()
            },
            &["gateway_customer_id", "payment_method_id", "collection_method", "billing_day"],
        ))
        .await
        .expect("update")
        .into_inner()
        .bill_group
        .expect("bill group");
    assert_eq!((r.gateway_customer_id.as_str(), r.payment_method_id.as_str()), (customer.as_str(), card.as_str()));
    assert_eq!((r.collection_method, r.billing_day), (sub::CollectionMethod::Automatic as i32, 15));
    assert_eq!(r.name, bg.name);
    // Without a mask: the fields given.
    let r = c
        .accounts
        .update_bill_group(update_bill_group(
            sub::BillGroup {
                id: bg.id.clone(),
                name: "EU billing".into(),
                auto_email_invoice: Some(false),
                currency_code: "EUR".into(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("update")
        .into_inner()
        .bill_group
        .expect("bill group");
    assert_eq!((r.name.as_str(), r.auto_email_invoice, r.currency_code.as_str()), ("EU billing", Some(false), "EUR"));
    assert_eq!((r.billing_day, r.payment_method_id.as_str()), (15, card.as_str()));
    let got = c.accounts.get_bill_group(sub::GetBillGroupRequest { id: bg.id.clone() }).await.expect("get");
    assert_eq!(got.into_inner().bill_group, Some(r.clone()));
    // Bad updates are refused naming the field, and change nothing.
    let id = || bg.id.clone();
    let cases: Vec<(&str, sub::UpdateBillGroupRequest, &str, Vec<&str>)> = vec![
        (
            "an unknown path",
            update_bill_group(sub::BillGroup { id: id(), ..Default::default() }, &["account_id"]),
            "INVALID_ARGUMENT",
            vec!["update_mask.paths"],
        ),
        (
            "a billing day of 40",
            update_bill_group(sub::BillGroup { id: id(), billing_day: 40, ..Default::default() }, &[]),
            "INVALID_ARGUMENT",
            vec!["bill_group.billing_day"],
        ),
        (
            "an unknown collection method",
            update_bill_group(sub::BillGroup { id: id(), collection_method: 99, ..Default::default() }, &[]),
            "INVALID_ARGUMENT",
            vec!["bill_group.collection_method"],
        ),
        (
            "an unknown currency",
            update_bill_group(sub::BillGroup { id: id(), currency_code: "XYZ".into(), ..Default::default() }, &[]),
            "INVALID_ARGUMENT",
            vec!["bill_group.currency_code"],
        ),
        (
            "a contact of another account",
            update_bill_group(sub::BillGroup { id: id(), contact_id: "cont_ZZZZ".into(), ..Default::default() }, &[]),
            "INVALID_ARGUMENT",
            vec!["bill_group.contact_id"],
        ),
        (
            "a payment method without its customer",
            update_bill_group(sub::BillGroup { id: id(), ..Default::default() }, &["gateway_customer_id"]),
            "INVALID_ARGUMENT",
            vec!["bill_group.payment_method_id"],
        ),
        (
            "an unknown payment method",
            update_bill_group(
                sub::BillGroup { id: id(), payment_method_id: "pm_ZZZZ".into(), ..Default::default() },
                &[],
            ),
            "PAYMENT_METHOD_NOT_FOUND",
            vec!["bill_group.payment_method_id"],
        ),
        (
            "an unknown gateway customer",
            update_bill_group(
                sub::BillGroup { id: id(), gateway_customer_id: "cus_ZZZZ".into(), ..Default::default() },
                &[],
            ),
            "CUSTOMER_NOT_FOUND",
            vec!["bill_group.gateway_customer_id"],
        ),
    ];
    for (what, req, reason, fields) in cases {
        let err = c.accounts.update_bill_group(req).await.expect_err(what);
        refused(what, &err, Code::InvalidArgument, reason, &fields);
    }
    let got = c.accounts.get_bill_group(sub::GetBillGroupRequest { id: id() }).await.expect("get");
    assert_eq!(got.into_inner().bill_group.as_ref(), Some(&r), "nothing changed");
    // Another contact of the account may be named.
    assert_eq!(r.contact_id, a.contacts[0].id, "the first contact, from creation");
    let pat = c.accounts.create_contact(new_contact(&a.id, "pat@acme.example", false)).await.expect("contact");
    let pat = pat.into_inner().contact.expect("contact");
    let r = c
        .accounts
        .update_bill_group(update_bill_group(
            sub::BillGroup { id: id(), contact_id: pat.id.clone(), ..Default::default() },
            &["contact_id"],
        ))
        .await
        .expect("contact");
    assert_eq!(r.into_inner().bill_group.expect("bill group").contact_id, pat.id);
    let ev = events(&mut c).await;
    let updates: Vec<_> = ev.iter().filter(|(t, _)| t == "bill_group.updated").collect();
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0].1["bill_group_id"], bg.id.as_str());
    assert_eq!(
        updates[0].1["changed_fields"],
        serde_json::json!(["payment_method_id", "gateway_customer_id", "collection_method", "billing_day"])
    );
    // ListBillGroups: the account's, oldest first, in pages.
    let second = bill_group(&mut c, &a.id).await;
    let third = bill_group(&mut c, &a.id).await;
    bill_group(&mut c, &other.id).await;
    let list = |token: String| sub::ListBillGroupsRequest { account_id: a.id.clone(), page_size: 2, page_token: token };
    let p1 = c.accounts.list_bill_groups(list(String::new())).await.expect("page 1").into_inner();
    let ids = |p: &sub::ListBillGroupsResponse| p.bill_groups.iter().map(|b| b.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&p1), [bg.id.clone(), second.id]);
    let p2 = c.accounts.list_bill_groups(list(p1.next_page_token)).await.expect("page 2").into_inner();
    assert_eq!(ids(&p2), [third.id]);
    assert!(p2.next_page_token.is_empty());
    let err = c.accounts.list_bill_groups(sub::ListBillGroupsRequest::default()).await.expect_err("no account");
    refused("no account", &err, Code::InvalidArgument, "INVALID_ARGUMENT", &["account_id"]);
}

on_both_backends!(bill_groups_on_sqlite, bill_groups_on_postgres, bill_groups);

/// An id of the same kind and length as `id` that was never issued.
fn never(id: &str) -> String {
    let (prefix, body) = id.split_once('_').expect("prefixed id");
    format!("{prefix}_{}", "Z".repeat(body.len()))
}

/// What a caller learns from an error, with the id it echoes masked.
fn seen(err: &Status, id: &str) -> (Code, String, String, Vec<(String, String)>) {
    let d = details(err);
    let violations = d.violations.iter().map(|v| (v.field.clone(), v.description.replace(id, "<id>"))).collect();
    (err.code(), d.reason, err.message().replace(id, "<id>"), violations)
}

/// `call` with another tenant's id and with one never issued: both refused
/// alike, with `code`, `reason` and a violation on `field`.
macro_rules! alike {
    ($what:expr, $foreign:expr, |$id:ident| $call:expr, $code:expr, $reason:expr, $field:expr) => {{
        let foreign: String = $foreign.to_string();
        let missing = never(&foreign);
        let f = {
            let $id = foreign.clone();
            $call.await.expect_err($what)
        };
        let m = {
            let $id = missing.clone();
            $call.await.expect_err($what)
        };
        refused($what, &f, $code, $reason, &[$field]);
        assert!(f.message().contains(&foreign), "{}: the message names the id", $what);
        assert_eq!(seen(&f, &foreign), seen(&m, &missing), "{}: another tenant's id is told apart", $what);
    }};
}

async fn another_tenants_ids(app: &TestApp) {
    let mut theirs = app.clients("globex");
    let their = account(
        &mut theirs,
        sub::Account {
            account_name: "Globex".into(),
            contacts: vec![sub::Contact { email: "hank@globex.example".into(), ..Default::default() }],
            ..Default::default()
        },
    )
    .await;
    let their_bg = bill_group(&mut theirs, &their.id).await;
    let their_contact = their.contacts[0].id.clone();
    let mut c = app.clients("acme");
    let nf = Code::NotFound;
    alike!(
        "UpdateAccount",
        their.id,
        |id| c
            .accounts
            .update_account(update_account(sub::Account { id, notes: "x".into(), ..Default::default() }, &[])),
        nf,
        "ACCOUNT_NOT_FOUND",
        "account.id"
    );
    alike!(
        "UpdateContact",
        their_contact,
        |id| c.accounts.update_contact(sub::UpdateContactRequest {
            contact: Some(sub::Contact { id, phone: "1".into(), ..Default::default() }),
            update_mask: None,
        }),
        nf,
        "CONTACT_NOT_FOUND",
        "contact.id"
    );
    alike!(
        "UpdateBillGroup",
        their_bg.id,
        |id| c
            .accounts
            .update_bill_group(update_bill_group(sub::BillGroup { id, name: "x".into(), ..Default::default() }, &[])),
        nf,
        "BILL_GROUP_NOT_FOUND",
        "bill_group.id"
    );
    alike!(
        "ListBillGroups",
        their.id,
        |id| c.accounts.list_bill_groups(sub::ListBillGroupsRequest { account_id: id, ..Default::default() }),
        nf,
        "ACCOUNT_NOT_FOUND",
        "account_id"
    );
    alike!(
        "CreateContact",
        their.id,
        |id| c.accounts.create_contact(new_contact(&id, "pat@acme.example", true)),
        Code::InvalidArgument,
        "ACCOUNT_NOT_FOUND",
        "contact.account_id"
    );
    assert!(events(&mut c).await.is_empty(), "nothing written for acme");
    let got = theirs.accounts.get_account(sub::GetAccountRequest { id: their.id.clone() }).await.expect("get");
    assert_eq!(got.into_inner().account, Some(their), "theirs unchanged");
    assert_eq!(app.count_rows("subscription", "contacts").await, 1);
}

on_both_backends!(another_tenants_ids_on_sqlite, another_tenants_ids_on_postgres, another_tenants_ids);
