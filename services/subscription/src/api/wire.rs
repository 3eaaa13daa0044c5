//! Conversions between the wire (`recur.subscription.v1`) and the domain:
//! requests into the application layer's inputs, records into messages.

use recur_proto::catalog::v1 as catpb;
use recur_proto::common::v1 as common;
use recur_proto::convert::{address_in, address_pb, money_of, opt_timestamp, timestamp};
use recur_proto::pricing::v1 as pricepb;
use recur_proto::subscription::v1 as pb;

use crate::app::accounts::{AccountInput, BillGroupInput, ContactInput, ContactUpdate, NewContact, Update};
use crate::app::subscribe::SubscribeInput;
use crate::domain::{
    Account, BillGroup, BillingAnchor, CollectionMethod, Contact, CustomPrice, CustomTier, Event, Invoice,
    InvoiceStatus, LineKind, Subscription, SubscriptionState,
};

// ---------- requests ----------

pub fn account_in(a: &pb::Account) -> AccountInput {
    AccountInput {
        custom_id: a.custom_id.clone(),
        account_name: a.account_name.clone(),
        currency_code: a.currency_code.clone(),
        time_zone: a.time_zone.clone(),
        billing_address: address_in(a.billing_address.as_ref()),
        tags: a.tags.clone(),
        notes: a.notes.clone(),
        metadata: a.metadata.clone(),
        tax_exempt: a.tax_exempt,
        contacts: a.contacts.iter().map(contact_in).collect(),
    }
}

pub fn contact_in(c: &pb::Contact) -> ContactInput {
    ContactInput {
        name: c.name.clone(),
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        title: c.title.clone(),
        email: c.email.clone(),
        phone: c.phone.clone(),
        address: address_in(c.address.as_ref()),
    }
}

pub fn new_contact_in(c: &pb::Contact) -> NewContact {
    NewContact { account_id: c.account_id.clone(), primary: c.primary, contact: contact_in(c) }
}

/// The paths of `mask`, or when it names none, those of `given` that are set.
fn paths_of(mask: Option<&prost_types::FieldMask>, given: &[(&str, bool)]) -> Vec<String> {
    match mask {
        Some(m) if !m.paths.is_empty() => m.paths.clone(),
        _ => given.iter().filter(|(_, set)| *set).map(|(p, _)| p.to_string()).collect(),
    }
}

pub fn account_update_in(r: &pb::UpdateAccountRequest) -> Update<AccountInput> {
    let a = r.account.clone().unwrap_or_default();
    let given = [
        ("account_name", !a.account_name.is_empty()),
        ("custom_id", !a.custom_id.is_empty()),
        ("currency_code", !a.currency_code.is_empty()),
        ("time_zone", !a.time_zone.is_empty()),
        ("billing_address", a.billing_address.is_some()),
        ("tags", !a.tags.is_empty()),
        ("notes", !a.notes.is_empty()),
        ("metadata", !a.metadata.is_empty()),
        ("tax_exempt", a.tax_exempt),
    ];
    Update { id: a.id.clone(), paths: paths_of(r.update_mask.as_ref(), &given), input: account_in(&a) }
}

pub fn contact_update_in(r: &pb::UpdateContactRequest) -> Update<ContactUpdate> {
    let c = r.contact.clone().unwrap_or_default();
    let given = [
        ("name", !c.name.is_empty()),
        ("first_name", !c.first_name.is_empty()),
        ("last_name", !c.last_name.is_empty()),
        ("title", !c.title.is_empty()),
        ("email", !c.email.is_empty()),
        ("phone", !c.phone.is_empty()),
        ("address", c.address.is_some()),
        ("primary", c.primary),
    ];
    Update {
        id: c.id.clone(),
        paths: paths_of(r.update_mask.as_ref(), &given),
        input: ContactUpdate { contact: contact_in(&c), primary: c.primary },
    }
}

pub fn bill_group_update_in(r: &pb::UpdateBillGroupRequest) -> Update<BillGroupInput> {
    let b = r.bill_group.clone().unwrap_or_default();
    let given = [
        ("payment_method_id", !b.payment_method_id.is_empty()),
        ("gateway_customer_id", !b.gateway_customer_id.is_empty()),
        ("collection_method", b.collection_method != 0),
        ("billing_day", b.billing_day != 0),
        ("name", !b.name.is_empty()),
        ("auto_email_invoice", b.auto_email_invoice.is_some()),
        ("collect_invoice_balance_automatically", b.collect_invoice_balance_automatically.is_some()),
        ("contact_id", !b.contact_id.is_empty()),
        ("currency_code", !b.currency_code.is_empty()),
    ];
    Update { id: b.id.clone(), paths: paths_of(r.update_mask.as_ref(), &given), input: bill_group_in(&b) }
}

/// The collection method of the wire (unset: AUTOMATIC; unknown: `None`).
fn collection_in(c: i32) -> Option<CollectionMethod> {
    match pb::CollectionMethod::try_from(c) {
        Ok(pb::CollectionMethod::Remittance) => Some(CollectionMethod::Remittance),
        Ok(pb::CollectionMethod::Prepaid) => Some(CollectionMethod::Prepaid),
        Ok(pb::CollectionMethod::Automatic | pb::CollectionMethod::Unspecified) => Some(CollectionMethod::Automatic),
        Err(_) => None,
    }
}

pub fn bill_group_in(b: &pb::BillGroup) -> BillGroupInput {
    BillGroupInput {
        account_id: b.account_id.clone(),
        name: b.name.clone(),
        auto_email_invoice: b.auto_email_invoice,
        collect_automatically: b.collect_invoice_balance_automatically,
        payment_method_id: b.payment_method_id.clone(),
        gateway_customer_id: b.gateway_customer_id.clone(),
        billing_day: b.billing_day,
        collection_method: collection_in(b.collection_method),
        currency_code: b.currency_code.clone(),
        contact_id: b.contact_id.clone(),
    }
}

pub fn subscribe_in(r: &pb::CreateSubscriptionRequest) -> SubscribeInput {
    SubscribeInput {
        account_id: r.account_id.clone(),
        bill_group_id: r.bill_group_id.clone(),
        offering: r.offering.clone(),
        rate: r.rate.clone(),
        items: r.items.iter().map(|i| (i.product_id.clone(), i.quantity.clone())).collect(),
        custom_prices: r
            .items
            .iter()
            .filter_map(|i| i.custom_price.as_ref().map(|p| (i.product_id.clone(), custom_price_in(p))))
            .collect(),
        start_date: r.start_date.clone(),
        coupon_codes: r.coupon_codes.clone(),
        metadata: r.metadata.clone(),
        custom_id: r.custom_id.clone(),
        pending: r.pending,
        quote_id: r.quote_id.clone(),
    }
}

/// A custom price in domain terms (pricing checks its shape).
pub fn custom_price_in(p: &catpb::Price) -> CustomPrice {
    let model = match catpb::PricingModel::try_from(p.model) {
        Ok(catpb::PricingModel::Flat) => "flat",
        Ok(catpb::PricingModel::PerUnit) => "per_unit",
        Ok(catpb::PricingModel::Tiered) => "tiered",
        Ok(catpb::PricingModel::Volume) => "volume",
        Ok(catpb::PricingModel::Stairstep) => "stairstep",
        Ok(catpb::PricingModel::Package) => "package",
        _ => "",
    };
    CustomPrice {
        model: model.into(),
        unit_amount: p.unit_amount.clone(),
        flat_amount: p.flat_amount.clone(),
        tiers: p
            .tiers
            .iter()
            .map(|t| CustomTier {
                up_to: t.up_to.clone(),
                unit_amount: t.unit_amount.clone(),
                flat_amount: t.flat_amount.clone(),
            })
            .collect(),
        package_size: p.package_size,
    }
}

/// A custom price on the wire (for pricing, and in a subscription's items).
pub fn custom_price_pb(product_id: &str, c: &CustomPrice) -> catpb::Price {
    let model = match c.model.as_str() {
        "flat" => catpb::PricingModel::Flat,
        "per_unit" => catpb::PricingModel::PerUnit,
        "tiered" => catpb::PricingModel::Tiered,
        "volume" => catpb::PricingModel::Volume,
        "stairstep" => catpb::PricingModel::Stairstep,
        "package" => catpb::PricingModel::Package,
        _ => catpb::PricingModel::Unspecified,
    };
    catpb::Price {
        product_id: product_id.to_string(),
        model: model as i32,
        unit_amount: c.unit_amount.clone(),
        flat_amount: c.flat_amount.clone(),
        tiers: c
            .tiers
            .iter()
            .map(|t| catpb::Tier {
                up_to: t.up_to.clone(),
                unit_amount: t.unit_amount.clone(),
                flat_amount: t.flat_amount.clone(),
            })
            .collect(),
        package_size: c.package_size,
    }
}

// ---------- records ----------

pub fn contact_pb(c: &Contact) -> pb::Contact {
    pb::Contact {
        id: c.id.clone(),
        account_id: c.account_id.clone(),
        name: c.name.clone(),
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        title: c.title.clone(),
        email: c.email.clone(),
        phone: c.phone.clone(),
        address: Some(address_pb(&c.address)),
        primary: c.primary,
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
    }
}

pub fn account_pb(a: &Account, contacts: &[Contact]) -> pb::Account {
    pb::Account {
        id: a.id.clone(),
        custom_id: a.custom_id.clone().unwrap_or_default(),
        account_name: a.account_name.clone(),
        currency_code: a.currency.clone(),
        time_zone: a.time_zone.clone(),
        billing_address: Some(address_pb(&a.billing_address)),
        tags: a.tags.clone(),
        notes: a.notes.clone(),
        contacts: contacts.iter().map(contact_pb).collect(),
        metadata: a.metadata.clone(),
        tax_exempt: a.tax_exempt,
        create_time: Some(timestamp(a.created_at)),
        update_time: Some(timestamp(a.updated_at)),
        // Filled in by GetAccount (`credit_balances_pb`).
        credit_balances: Vec::new(),
    }
}

/// An account's credit balances as money (a currency code the table does
/// not know is left out).
pub fn credit_balances_pb(balances: &[(String, rust_decimal::Decimal)]) -> Vec<common::Money> {
    balances
        .iter()
        .filter_map(|(code, amount)| recur_money::Currency::from_code(code).map(|c| money_of(*amount, c)))
        .collect()
}

fn collection_pb(c: CollectionMethod) -> i32 {
    (match c {
        CollectionMethod::Automatic => pb::CollectionMethod::Automatic,
        CollectionMethod::Remittance => pb::CollectionMethod::Remittance,
        CollectionMethod::Prepaid => pb::CollectionMethod::Prepaid,
    }) as i32
}

pub fn bill_group_pb(b: &BillGroup) -> pb::BillGroup {
    pb::BillGroup {
        id: b.id.clone(),
        account_id: b.account_id.clone(),
        name: b.name.clone(),
        auto_email_invoice: Some(b.auto_email_invoice),
        collect_invoice_balance_automatically: Some(b.collect_automatically),
        payment_method_id: b.payment_method_id.clone(),
        gateway_customer_id: b.gateway_customer_id.clone(),
        billing_day: b.billing_day as i32,
        collection_method: collection_pb(b.collection_method),
        currency_code: b.currency.clone(),
        contact_id: b.contact_id.clone(),
        create_time: Some(timestamp(b.created_at)),
        update_time: Some(timestamp(b.updated_at)),
    }
}

fn state_pb(s: SubscriptionState) -> i32 {
    (match s {
        SubscriptionState::Pending => pb::SubscriptionState::Pending,
        SubscriptionState::Trialing => pb::SubscriptionState::Trialing,
        SubscriptionState::Active => pb::SubscriptionState::Active,
        SubscriptionState::PastDue => pb::SubscriptionState::PastDue,
        SubscriptionState::Paused => pb::SubscriptionState::Paused,
        SubscriptionState::Canceled => pb::SubscriptionState::Canceled,
        SubscriptionState::Expired => pb::SubscriptionState::Expired,
    }) as i32
}

fn anchor_pb(a: BillingAnchor) -> Option<pricepb::BillingAnchor> {
    a.is_set().then_some(pricepb::BillingAnchor { day: a.day as i32, month: a.month as i32 })
}

/// A subscription as the API shows it. A listing's rows are moved
/// ([`subscription_into_pb`]), not copied.
pub fn subscription_pb(s: &Subscription) -> pb::Subscription {
    subscription_into_pb(s.clone())
}

pub fn subscription_into_pb(s: Subscription) -> pb::Subscription {
    pb::Subscription {
        id: s.id,
        custom_id: s.custom_id.unwrap_or_default(),
        account_id: s.account_id,
        bill_group_id: s.bill_group_id,
        offering_id: s.offering_id,
        rate_id: s.rate_id,
        state: state_pb(s.state),
        items: s
            .items
            .into_iter()
            .map(|i| pb::SubscriptionItem {
                custom_price: i.custom_price.as_ref().map(|c| custom_price_pb(&i.product_id, c)),
                product_id: i.product_id,
                quantity: i.quantity.normalize().to_string(),
            })
            .collect(),
        coupon_codes: s.coupon_codes,
        currency_code: s.currency.code().to_string(),
        recurring_amount: Some(money_of(s.recurring_amount, s.currency)),
        // NaiveDate shows as YYYY-MM-DD.
        start_date: s.start_date.to_string(),
        metadata: s.metadata,
        cancel_at_period_end: s.cancel_at_period_end,
        current_period_start: Some(timestamp(s.current_period_start)),
        current_period_end: Some(timestamp(s.current_period_end)),
        trial_start: opt_timestamp(s.trial_start),
        trial_end: opt_timestamp(s.trial_end),
        next_billing_time: opt_timestamp(s.next_billing_at),
        activate_time: opt_timestamp(s.activated_at),
        cancel_time: opt_timestamp(s.canceled_at),
        expire_time: opt_timestamp(s.expires_at),
        create_time: Some(timestamp(s.created_at)),
        update_time: Some(timestamp(s.updated_at)),
        quote_id: s.quote_id,
        billing_anchor: anchor_pb(s.billing_anchor),
        scheduled_change: s.scheduled_change.as_ref().map(|c| pb::ScheduledChange {
            rate_id: c.rate_id.clone(),
            items: c
                .items
                .iter()
                .map(|i| pb::SubscriptionItem {
                    product_id: i.product_id.clone(),
                    quantity: i.quantity.normalize().to_string(),
                    custom_price: None,
                })
                .collect(),
            effective_time: Some(timestamp(c.effective_at)),
            next_recurring_amount: Some(money_of(c.next_recurring_amount, s.currency)),
        }),
        pause_time: opt_timestamp(s.paused_at),
        resume_time: opt_timestamp(s.resume_at),
        cancel_reason: s.cancel_reason,
        cancel_comment: s.cancel_comment,
        version: s.version,
        previous_billing_time: opt_timestamp(s.previous_billing_at),
        parked_reason: s.parked_reason,
    }
}

fn invoice_status_pb(s: InvoiceStatus) -> i32 {
    (match s {
        InvoiceStatus::Draft => pb::InvoiceStatus::Draft,
        InvoiceStatus::Open => pb::InvoiceStatus::Open,
        InvoiceStatus::Paid => pb::InvoiceStatus::Paid,
        InvoiceStatus::Void => pb::InvoiceStatus::Void,
        InvoiceStatus::Uncollectible => pb::InvoiceStatus::Uncollectible,
    }) as i32
}

fn line_kind_pb(k: LineKind) -> i32 {
    (match k {
        LineKind::Subscription => pb::InvoiceLineKind::Subscription,
        LineKind::Usage => pb::InvoiceLineKind::Usage,
        LineKind::Proration => pb::InvoiceLineKind::Proration,
        LineKind::SetupFee => pb::InvoiceLineKind::SetupFee,
        LineKind::OneOff => pb::InvoiceLineKind::OneOff,
    }) as i32
}

pub fn invoice_pb(i: &Invoice) -> pb::Invoice {
    let c = i.currency;
    pb::Invoice {
        id: i.id.clone(),
        number: i.number.clone(),
        account_id: i.account_id.clone(),
        bill_group_id: i.bill_group_id.clone(),
        subscription_id: i.subscription_id.clone(),
        status: invoice_status_pb(i.status),
        currency_code: c.code().to_string(),
        lines: i
            .lines
            .iter()
            .map(|l| pb::InvoiceLine {
                id: l.id.clone(),
                kind: line_kind_pb(l.kind),
                description: l.description.clone(),
                subscription_id: l.subscription_id.clone(),
                offering_id: l.offering_id.clone(),
                rate_id: l.rate_id.clone(),
                product_id: l.product_id.clone(),
                period_start: opt_timestamp(l.period_start),
                period_end: opt_timestamp(l.period_end),
                quantity: l.quantity.normalize().to_string(),
                unit_amount: l.unit_amount.clone(),
                proration_fraction: l.proration_fraction.clone(),
                tiers: l
                    .tiers
                    .iter()
                    .map(|t| pricepb::TierApplied {
                        tier_index: t.index,
                        quantity: t.quantity.clone(),
                        unit_amount: t.unit_amount.clone(),
                        flat_amount: t.flat_amount.clone(),
                        amount: Some(common::Money { currency_code: c.code().into(), amount: t.amount.clone() }),
                    })
                    .collect(),
                amount_without_tax: Some(money_of(l.amount_without_tax, c)),
                discount: Some(money_of(l.discount, c)),
                tax: Some(money_of(l.tax, c)),
                tax_rate: l.tax_rate.clone(),
                amount: Some(money_of(l.amount, c)),
            })
            .collect(),
        amount_without_tax: Some(money_of(i.amount_without_tax, c)),
        discount: Some(money_of(i.discount, c)),
        tax: Some(money_of(i.tax, c)),
        amount: Some(money_of(i.amount, c)),
        amount_paid: Some(money_of(i.amount_paid, c)),
        amount_due: Some(money_of(i.amount_due(), c)),
        period_start: opt_timestamp(i.period_start),
        period_end: opt_timestamp(i.period_end),
        issue_time: opt_timestamp(i.issued_at),
        due_time: opt_timestamp(i.due_at),
        paid_time: opt_timestamp(i.paid_at),
        payment_ids: i.payment_ids.clone(),
        create_time: Some(timestamp(i.created_at)),
        update_time: Some(timestamp(i.updated_at)),
        credit_applied: Some(money_of(i.credit_applied, c)),
        billing_reason: i.reason.as_str().to_string(),
        next_action_time: opt_timestamp(i.next_action_at),
        attempt_count: i32::try_from(i.attempt_count).unwrap_or(i32::MAX),
        collection_paused_reason: i.collection_paused.clone(),
    }
}

pub fn event_pb(e: &Event) -> pb::Event {
    pb::Event {
        id: e.id.clone(),
        r#type: e.event.type_name().to_string(),
        resource_id: e.event.resource_id().to_string(),
        data_json: e.event.data_json(),
        sequence: e.sequence,
        create_time: Some(timestamp(e.created_at)),
    }
}

// ---------- listings ----------

fn state_in(s: i32) -> Option<SubscriptionState> {
    Some(match pb::SubscriptionState::try_from(s).ok()? {
        pb::SubscriptionState::Pending => SubscriptionState::Pending,
        pb::SubscriptionState::Trialing => SubscriptionState::Trialing,
        pb::SubscriptionState::Active => SubscriptionState::Active,
        pb::SubscriptionState::PastDue => SubscriptionState::PastDue,
        pb::SubscriptionState::Paused => SubscriptionState::Paused,
        pb::SubscriptionState::Canceled => SubscriptionState::Canceled,
        pb::SubscriptionState::Expired => SubscriptionState::Expired,
        pb::SubscriptionState::Unspecified => return None,
    })
}

fn date_field_in(f: i32) -> Result<Option<crate::repo::TimeColumn>, ()> {
    use crate::repo::TimeColumn as C;
    use pb::SubscriptionDateField as F;
    Ok(Some(match F::try_from(f).map_err(|_| ())? {
        F::Unspecified => return Ok(None),
        F::CreateTime => C::CreatedAt,
        F::ActivateTime => C::ActivatedAt,
        F::CancelTime => C::CanceledAt,
        F::CurrentPeriodStart => C::CurrentPeriodStart,
        F::CurrentPeriodEnd => C::CurrentPeriodEnd,
        F::TrialStart => C::TrialStart,
        F::TrialEnd => C::TrialEnd,
        F::ExpireTime => C::ExpiresAt,
        F::UpdateTime => C::UpdatedAt,
    }))
}

fn sort_in(s: i32) -> Result<crate::repo::SubscriptionOrder, ()> {
    use crate::repo::{SubscriptionOrder as O, TimeColumn as C};
    use pb::SubscriptionSort as S;
    Ok(match S::try_from(s).map_err(|_| ())? {
        S::Unspecified | S::CreateTime => O::Time(C::CreatedAt),
        S::UpdateTime => O::Time(C::UpdatedAt),
        S::ActivateTime => O::Time(C::ActivatedAt),
        S::NextBillingTime => O::Time(C::NextBillingAt),
        S::Id => O::Id,
    })
}

pub fn list_in(r: &pb::ListSubscriptionsRequest) -> crate::app::list::ListInput {
    let ts = |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(recur_proto::convert::from_timestamp);
    crate::app::list::ListInput {
        page_size: r.page_size,
        page_token: r.page_token.clone(),
        states: r.states.iter().map(|s| state_in(*s)).collect(),
        account_id: r.account_id.clone(),
        offering_id: r.offering_id.clone(),
        product_id: r.product_id.clone(),
        rate_id: r.rate_id.clone(),
        coupon: r.coupon.clone(),
        date_field: date_field_in(r.date_field),
        start_date: r.start_date.clone(),
        end_date: r.end_date.clone(),
        start_time: ts(&r.start_time),
        end_time: ts(&r.end_time),
        metadata: r.metadata.clone(),
        order: sort_in(r.sort),
        descending: r.direction == common::SortDirection::Desc as i32,
    }
}

pub fn invoice_list_in(r: &pb::ListInvoicesRequest) -> crate::app::list::InvoiceListInput {
    let status = match pb::InvoiceStatus::try_from(r.status) {
        Ok(pb::InvoiceStatus::Unspecified) => Ok(None),
        Ok(pb::InvoiceStatus::Draft) => Ok(Some(InvoiceStatus::Draft)),
        Ok(pb::InvoiceStatus::Open) => Ok(Some(InvoiceStatus::Open)),
        Ok(pb::InvoiceStatus::Paid) => Ok(Some(InvoiceStatus::Paid)),
        Ok(pb::InvoiceStatus::Void) => Ok(Some(InvoiceStatus::Void)),
        Ok(pb::InvoiceStatus::Uncollectible) => Ok(Some(InvoiceStatus::Uncollectible)),
        Err(_) => Err(()),
    };
    crate::app::list::InvoiceListInput {
        page_size: r.page_size,
        page_token: r.page_token.clone(),
        account_id: r.account_id.clone(),
        subscription_id: r.subscription_id.clone(),
        status,
    }
}

/// A change as the caller asked for it (`change` of PreviewChange and
/// ChangeSubscription).
pub fn change_in(c: Option<&pb::SubscriptionChange>, cancel_scheduled: bool) -> crate::app::change::ChangeInput {
    let c = c.cloned().unwrap_or_default();
    crate::app::change::ChangeInput {
        rate: c.rate.clone(),
        items: c.items.iter().map(|i| (i.product_id.clone(), i.quantity.clone())).collect(),
        at_period_end: match pricepb::ChangeTiming::try_from(c.timing) {
            Ok(pricepb::ChangeTiming::Immediate) => Some(false),
            Ok(pricepb::ChangeTiming::EndOfTerm) => Some(true),
            _ => None,
        },
        cancel_scheduled,
    }
}

pub fn preview_pb(p: &crate::app::change::ChangePreview) -> pb::PreviewChangeResponse {
    let c = p.currency;
    pb::PreviewChangeResponse {
        lines: p
            .priced
            .lines
            .iter()
            .map(|l| pricepb::ProrationLine {
                kind: if l.credit { pricepb::ProrationLineKind::Credit } else { pricepb::ProrationLineKind::Charge }
                    as i32,
                product_id: l.product_id.clone(),
                rate_id: l.rate_id.clone(),
                quantity: l.quantity.normalize().to_string(),
                period_start: opt_timestamp(l.period_start),
                period_end: opt_timestamp(l.period_end),
                fraction: crate::domain::invoice::shown_fraction(&l.fraction),
                amount: Some(money_of(l.amount, c)),
                description: l.description.clone(),
            })
            .collect(),
        amount_due_now: Some(money_of(p.amount_due_now, c)),
        next_recurring_amount: Some(money_of(p.next_recurring, c)),
        effective_time: Some(timestamp(p.priced.effective_at)),
        next_billing_time: Some(timestamp(p.next_billing_at)),
        credit: Some(money_of(p.credit, c)),
        credit_applied: Some(money_of(p.credit_applied, c)),
    }
}

pub fn cancel_timing_in(t: i32) -> Result<crate::domain::lifecycle::CancelTiming, recur_error::AppError> {
    use crate::domain::lifecycle::CancelTiming;
    match pb::CancelTiming::try_from(t) {
        Ok(pb::CancelTiming::Immediate) => Ok(CancelTiming::Immediate),
        // A billing platform's safe default: the customer keeps what was paid for.
        Ok(pb::CancelTiming::EndOfTerm | pb::CancelTiming::Unspecified) => Ok(CancelTiming::EndOfTerm),
        Ok(pb::CancelTiming::WithNotice) => Ok(CancelTiming::WithNotice),
        Err(_) => Err(recur_error::AppError::invalid("timing", "unknown cancel timing")),
    }
}

/// A timestamp of the request (INVALID_ARGUMENT on `field` when out of range).
pub fn time_in(
    t: &prost_types::Timestamp,
    field: &str,
) -> Result<chrono::DateTime<chrono::Utc>, recur_error::AppError> {
    recur_proto::convert::from_timestamp(t).ok_or_else(|| recur_error::AppError::invalid(field, "is not a valid time"))
}

pub fn opt_time_in(
    t: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, recur_error::AppError> {
    t.map(|t| time_in(t, field)).transpose()
}

/// A duration of the request: positive, at most 100 years.
pub fn duration_in(d: &prost_types::Duration, field: &str) -> Result<chrono::Duration, recur_error::AppError> {
    let ok = d.seconds >= 0 && d.nanos >= 0 && d.seconds <= 100 * 366 * 86_400;
    if !ok {
        return Err(recur_error::AppError::invalid(field, "must be positive and at most 100 years"));
    }
    Ok(chrono::Duration::seconds(d.seconds) + chrono::Duration::nanoseconds(i64::from(d.nanos)))
}

pub fn clock_action_pb(a: crate::app::renew::ClockAction) -> pb::ClockAction {
    pb::ClockAction {
        time: Some(timestamp(a.at)),
        kind: a.kind.to_string(),
        subscription_id: a.subscription_id,
        invoice_id: a.invoice_id,
        payment_id: a.payment_id,
        reason: a.reason,
    }
}

pub fn usage_pb(
    records: &[crate::app::usage::UsageInput],
    status: Vec<crate::app::usage::UsageStatus>,
) -> pb::RecordUsageResponse {
    use crate::app::usage::UsageStatus;
    let mut out = pb::RecordUsageResponse::default();
    for (r, s) in records.iter().zip(status) {
        let (status, reason, message) = match s {
            UsageStatus::Accepted => {
                out.accepted += 1;
                ("accepted", "", String::new())
            }
            UsageStatus::Duplicate => {
                out.duplicates += 1;
                ("duplicate", "", String::new())
            }
            UsageStatus::Refused { reason, message } => {
                out.refused += 1;
                ("refused", reason, message)
            }
        };
        out.results.push(pb::UsageResult {
            event_id: r.event_id.clone(),
            status: status.into(),
            reason: reason.into(),
            message,
        });
    }
    out
}

pub fn usage_summary_pb(s: &crate::app::usage::UsageSummary) -> pb::GetUsageSummaryResponse {
    use crate::domain::usage::Aggregation;
    let c = s.subscription.currency;
    let lines: Vec<pb::UsageSummaryLine> = s
        .lines
        .iter()
        .map(|l| {
            let meter = l.item.meter.as_ref();
            pb::UsageSummaryLine {
                product_id: l.item.product_id.clone(),
                product_name: l.item.name.clone(),
                aggregation: match meter.map(|m| m.aggregation) {
                    None => catpb::UsageAggregation::Unspecified,
                    Some(Aggregation::Sum) => catpb::UsageAggregation::Sum,
                    Some(Aggregation::Count) => catpb::UsageAggregation::Count,
                    Some(Aggregation::Max) => catpb::UsageAggregation::Max,
                    Some(Aggregation::UniqueCount) => catpb::UsageAggregation::UniqueCount,
                    Some(Aggregation::Latest) => catpb::UsageAggregation::Latest,
                } as i32,
                aggregation_property: meter.map(|m| m.property.clone()).unwrap_or_default(),
                quantity: l.quantity.normalize().to_string(),
                event_count: i64::try_from(l.events).unwrap_or(i64::MAX),
                amount_without_tax: Some(money_of(l.rated.amount_without_tax, c)),
                tax: Some(money_of(l.rated.tax, c)),
                amount: Some(money_of(l.rated.amount, c)),
            }
        })
        .collect();
    pb::GetUsageSummaryResponse {
        subscription_id: s.subscription.id.clone(),
        period_start: Some(timestamp(s.period_start)),
        period_end: Some(timestamp(s.period_end)),
        amount: Some(money_of(s.lines.iter().map(|l| l.rated.amount).sum(), c)),
        lines,
    }
}
