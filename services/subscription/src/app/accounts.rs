//! Accounts with their contacts, and bill groups.

use std::str::FromStr;

use recur_auth::CallContext;
use recur_contact::{COUNTRY_CODE_RULE, is_country_code, is_email};
use recur_error::{AppError, AppResult, Violations};
use recur_money::Currency;
use recur_storage::idem::{check_replay, insert_once};
use recur_storage::page::{self, Cursor};

use super::{App, Idem};
use crate::domain::{Account, Address, BillGroup, CollectionMethod, Contact, Event, Metadata, SubscriptionEvent};

/// A new account, as the caller describes it.
#[derive(Clone, Debug, Default)]
pub struct AccountInput {
    pub custom_id: String,
    pub account_name: String,
    pub currency_code: String,
    pub time_zone: String,
    pub billing_address: Address,
    pub tags: Vec<String>,
    pub notes: String,
    pub metadata: Metadata,
    pub tax_exempt: bool,
    pub contacts: Vec<ContactInput>,
}

#[derive(Clone, Debug, Default)]
pub struct ContactInput {
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub title: String,
    pub email: String,
    pub phone: String,
    pub address: Address,
}

/// A new bill group, as the caller describes it.
#[derive(Clone, Debug, Default)]
pub struct BillGroupInput {
    pub account_id: String,
    pub name: String,
    pub auto_email_invoice: Option<bool>,
    pub collect_automatically: Option<bool>,
    pub payment_method_id: String,
    pub gateway_customer_id: String,
    pub billing_day: i32,
    /// `None`: a collection method the API does not know.
    pub collection_method: Option<CollectionMethod>,
    pub currency_code: String,
    pub contact_id: String,
}

/// A page of accounts and the next page's token.
pub type AccountPage = (Vec<(Account, Vec<Contact>)>, String);

impl App {
    /// The account `id` of `tenant` with its contacts; NOT_FOUND naming
    /// `field` when there is none (another tenant's is none).
    pub async fn account(&self, tenant: &str, id: &str, field: &str) -> AppResult<(Account, Vec<Contact>)> {
        self.repo
            .get_account(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("account", id).with_field(field, "no such account"))
    }

    pub async fn create_account(
        &self,
        ctx: &CallContext,
        a: &AccountInput,
        idem: &Idem,
    ) -> AppResult<(Account, Vec<Contact>)> {
        let mut v = Violations::new();
        // Lengths are bounded by the request codec (`recur_proto::limits`).
        v.check(!a.account_name.trim().is_empty(), "account.account_name", "is required");
        v.check(
            a.currency_code.is_empty() || Currency::from_code(&a.currency_code).is_some(),
            "account.currency_code",
            "unknown currency",
        );
        v.check(
            a.time_zone.is_empty() || chrono_tz::Tz::from_str(&a.time_zone).is_ok(),
            "account.time_zone",
            "unknown IANA time zone",
        );
        v.check(is_country_code(&a.billing_address.country), "account.billing_address.country", COUNTRY_CODE_RULE);
        for (i, c) in a.contacts.iter().enumerate() {
            if c.email.is_empty() {
                v.add(format!("account.contacts[{i}].email"), "is required");
            } else if !is_email(&c.email) {
                v.add(format!("account.contacts[{i}].email"), "is not an e-mail address");
            }
        }
        v.finish()?;
        let now = self.clock.now_micros();
        let account = Account {
            id: recur_id::new_id(recur_id::Kind::Account),
            custom_id: (!a.custom_id.is_empty()).then(|| a.custom_id.clone()),
            account_name: a.account_name.trim().to_string(),
            currency: a.currency_code.clone(),
            time_zone: a.time_zone.clone(),
            billing_address: a.billing_address.clone(),
            tags: a.tags.clone(),
            notes: a.notes.clone(),
            metadata: a.metadata.clone(),
            tax_exempt: a.tax_exempt,
            created_at: now,
            updated_at: now,
        };
        let contacts: Vec<Contact> = a
            .contacts
            .iter()
            .enumerate()
            .map(|(i, c)| Contact {
                id: recur_id::new_id(recur_id::Kind::Contact),
                account_id: account.id.clone(),
                name: if c.name.is_empty() {
                    format!("{} {}", c.first_name, c.last_name).trim().to_string()
                } else {
                    c.name.clone()
                },
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                title: c.title.clone(),
                email: c.email.clone(),
                phone: c.phone.clone(),
                address: c.address.clone(),
                primary: i == 0,
                created_at: now,
                updated_at: now,
            })
            .collect();
        let event = Event::new(
            SubscriptionEvent::AccountCreated {
                account_id: account.id.clone(),
                account_name: account.account_name.clone(),
            },
            now,
        );
        let stored = insert_once(idem.key.is_some(), || {
            self.repo.insert_account(&ctx.tenant_id, &account, &contacts, idem.as_repo(), &event)
        })
        .await
        .map_err(|e| {
            if e.is_unique() {
                AppError::already_exists("CUSTOM_ID_TAKEN", "another account has this custom_id")
                    .with_field("account.custom_id", "already in use")
            } else {
                e.into()
            }
        })?;
        Ok(check_replay(stored, &idem.hash)?.0)
    }

    pub async fn list_accounts(&self, tenant: &str, page_size: i32, token: &str) -> AppResult<AccountPage> {
        let mut v = Violations::new();
        v.check(page_size >= 0, "page_size", "must not be negative");
        let after = Cursor::decode_time(token).map(|c| c.map(|(t, id)| Cursor::time(t, id))).unwrap_or_else(|_| {
            v.add("page_token", "is not a token this API issued");
            None
        });
        v.finish()?;
        let limit = page::page_size(page_size);
        let rows = self.repo.list_accounts(tenant, after.as_ref(), limit + 1).await?;
        Ok(page::finish(rows, limit, |(a, _)| Cursor::time(a.created_at, a.id.clone())))
    }

    /// The account with `custom_id`, or else with a contact of `email`.
    pub async fn find_account(
        &self,
        tenant: &str,
        custom_id: Option<&str>,
        email: Option<&str>,
    ) -> AppResult<(Account, Vec<Contact>)> {
        let id = self
            .repo
            .find_account(tenant, custom_id, email)
            .await?
            .ok_or_else(|| AppError::not_found("account", custom_id.or(email).unwrap_or_default()))?;
        self.account(tenant, &id, "key").await
    }

    pub async fn create_bill_group(&self, ctx: &CallContext, b: &BillGroupInput, idem: &Idem) -> AppResult<BillGroup> {
        let mut v = Violations::new();
        v.check(!b.account_id.is_empty(), "bill_group.account_id", "is required");
        v.check((0..=31).contains(&b.billing_day), "bill_group.billing_day", "must be between 0 and 31");
        v.check(
            b.currency_code.is_empty() || Currency::from_code(&b.currency_code).is_some(),
            "bill_group.currency_code",
            "unknown currency",
        );
        v.check(b.collection_method.is_some(), "bill_group.collection_method", "unknown collection method");
        v.check(
            b.payment_method_id.is_empty() || !b.gateway_customer_id.is_empty(),
            "bill_group.payment_method_id",
            "needs the gateway_customer_id it belongs to",
        );
        v.finish()?;
        let (account, contacts) = self
            .account(&ctx.tenant_id, &b.account_id, "bill_group.account_id")
            .await
            .map_err(AppError::into_invalid_reference)?;
        if !b.contact_id.is_empty() && !contacts.iter().any(|c| c.id == b.contact_id) {
            return Err(AppError::invalid("bill_group.contact_id", "not a contact of the account"));
        }
        // A bill group charges its gateway customer's method: both must
        // exist, or every invoice of it would fail to be collected.
        if !b.gateway_customer_id.is_empty() {
            let field = if b.payment_method_id.is_empty() {
                "bill_group.gateway_customer_id"
            } else {
                "bill_group.payment_method_id"
            };
            self.payments.check_method(ctx, &b.gateway_customer_id, &b.payment_method_id, field).await.map_err(
                |e| {
                    if e.reason() == "CUSTOMER_NOT_FOUND" {
                        e.map_fields(|_| "bill_group.gateway_customer_id".to_string())
                    } else {
                        e
                    }
                },
            )?;
        }
        let now = self.clock.now_micros();
        let bg = BillGroup {
            id: recur_id::new_id(recur_id::Kind::BillGroup),
            account_id: account.id.clone(),
            name: if b.name.is_empty() { account.account_name.clone() } else { b.name.clone() },
            // Callers apply the tenant's defaults (sign-up does); an unset
            // flag here means the usual: e-mail invoices, collect them.
            auto_email_invoice: b.auto_email_invoice.unwrap_or(true),
            collect_automatically: b.collect_automatically.unwrap_or(true),
            payment_method_id: b.payment_method_id.clone(),
            gateway_customer_id: b.gateway_customer_id.clone(),
            billing_day: b.billing_day as u32,
            collection_method: b.collection_method.unwrap_or(CollectionMethod::Automatic),
            currency: b.currency_code.clone(),
            contact_id: if b.contact_id.is_empty() {
                contacts.first().map(|c| c.id.clone()).unwrap_or_default()
            } else {
                b.contact_id.clone()
            },
            created_at: now,
            updated_at: now,
        };
        let event = Event::new(
            SubscriptionEvent::BillGroupCreated { bill_group_id: bg.id.clone(), account_id: bg.account_id.clone() },
            now,
        );
        let stored = insert_once(idem.key.is_some(), || {
            self.repo.insert_bill_group(&ctx.tenant_id, &bg, idem.as_repo(), &event)
        })
        .await?;
        Ok(check_replay(stored, &idem.hash)?.0)
    }

    pub async fn bill_group(&self, tenant: &str, id: &str) -> AppResult<BillGroup> {
        self.repo.get_bill_group(tenant, id).await?.ok_or_else(|| AppError::not_found("bill group", id))
    }
}
