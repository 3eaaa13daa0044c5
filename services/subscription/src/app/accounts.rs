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

/// An update of record `id`: its new values and the update-mask paths to
/// take from them (an empty mask on the wire: every field given).
#[derive(Clone, Debug, Default)]
pub struct Update<T> {
    pub id: String,
    pub input: T,
    pub paths: Vec<String>,
}

impl<T> Update<T> {
    fn wants(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
    }

    /// Refuses paths that are not in `known`, naming `update_mask.paths`.
    fn check_paths(&self, v: &mut Violations, known: &[&str]) {
        for p in &self.paths {
            if !known.contains(&p.as_str()) {
                v.add("update_mask.paths", format!("{p:?} cannot be updated; known paths: {}", known.join(", ")));
            }
        }
    }
}

/// A new contact of an existing account.
#[derive(Clone, Debug, Default)]
pub struct NewContact {
    pub account_id: String,
    pub primary: bool,
    pub contact: ContactInput,
}

/// A contact as updated: the fields of [`ContactInput`] and `primary`.
#[derive(Clone, Debug, Default)]
pub struct ContactUpdate {
    pub contact: ContactInput,
    pub primary: bool,
}

/// A page of bill groups and the next page's token.
pub type BillGroupPage = (Vec<BillGroup>, String);

const ACCOUNT_PATHS: &[&str] = &[
    "account_name",
    "custom_id",
    "currency_code",
    "time_zone",
    "billing_address",
    "tags",
    "notes",
    "metadata",
    "tax_exempt",
];
const CONTACT_PATHS: &[&str] = &["name", "first_name", "last_name", "title", "email", "phone", "address", "primary"];
const BILL_GROUP_PATHS: &[&str] = &[
    "payment_method_id",
    "gateway_customer_id",
    "collection_method",
    "billing_day",
    "name",
    "auto_email_invoice",
    "collect_invoice_balance_automatically",
    "contact_id",
    "currency_code",
];

/// Sets `*field` to `value` when the path is wanted and the value differs,
/// noting the path in `changed`.
fn set<T: PartialEq>(wanted: bool, path: &str, field: &mut T, value: T, changed: &mut Vec<String>) {
    if wanted && *field != value {
        *field = value;
        changed.push(path.to_string());
    }
}

/// The account validation create and update share, for the paths `wants`.
fn check_account(v: &mut Violations, a: &AccountInput, wants: impl Fn(&str) -> bool) {
    if wants("account_name") {
        v.check(!a.account_name.trim().is_empty(), "account.account_name", "is required");
    }
    if wants("currency_code") {
        v.check(
            a.currency_code.is_empty() || Currency::from_code(&a.currency_code).is_some(),
            "account.currency_code",
            "unknown currency",
        );
    }
    if wants("time_zone") {
        v.check(
            a.time_zone.is_empty() || chrono_tz::Tz::from_str(&a.time_zone).is_ok(),
            "account.time_zone",
            "unknown IANA time zone",
        );
    }
    if wants("billing_address") {
        v.check(is_country_code(&a.billing_address.country), "account.billing_address.country", COUNTRY_CODE_RULE);
    }
}

fn check_email(v: &mut Violations, field: String, email: &str) {
    if email.is_empty() {
        v.add(field, "is required");
    } else if !is_email(email) {
        v.add(field, "is not an e-mail address");
    }
}

/// A contact's name: as given, else its first and last names.
fn contact_name(c: &ContactInput) -> String {
    if c.name.is_empty() { format!("{} {}", c.first_name, c.last_name).trim().to_string() } else { c.name.clone() }
}

fn custom_id_taken(e: recur_storage::StorageError) -> AppError {
    if e.is_unique() {
        AppError::already_exists("CUSTOM_ID_TAKEN", "another account has this custom_id")
            .with_field("account.custom_id", "already in use")
    } else {
        e.into()
    }
}

impl App {
    /// The account `id` of `tenant` with its contacts; NOT_FOUND naming
    /// `field` when there is none (another tenant's is none).
    pub async fn account(&self, tenant: &str, id: &str, field: &str) -> AppResult<(Account, Vec<Contact>)> {
        self.repo
            .get_account(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("account", id).with_field(field, "no such account"))
    }

    /// Like [`App::account`], without its contacts (one read fewer).
    pub async fn account_alone(&self, tenant: &str, id: &str, field: &str) -> AppResult<Account> {
        self.repo.get_account_alone(tenant, id).await?.ok_or_else(|| no_account(id, field))
    }

    pub async fn create_account(
        &self,
        ctx: &CallContext,
        a: &AccountInput,
        idem: &Idem,
    ) -> AppResult<(Account, Vec<Contact>)> {
        let mut v = Violations::new();
        // Lengths are bounded by the request codec (`recur_proto::limits`).
        check_account(&mut v, a, |_| true);
        for (i, c) in a.contacts.iter().enumerate() {
            check_email(&mut v, format!("account.contacts[{i}].email"), &c.email);
        }
        v.finish()?;
        let now = self.now(&ctx.tenant_id);
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
                name: contact_name(c),
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
        .map_err(custom_id_taken)?;
        Ok(check_replay(stored, &idem.hash)?.0)
    }

    /// Updates the paths of `u` on account `u.id`, with an
    /// `account.updated` event naming the fields that changed (none
    /// changed: nothing is written).
    pub async fn update_account(
        &self,
        ctx: &CallContext,
        u: &Update<AccountInput>,
    ) -> AppResult<(Account, Vec<Contact>)> {
        let mut v = Violations::new();
        v.check(!u.id.is_empty(), "account.id", "is required");
        u.check_paths(&mut v, ACCOUNT_PATHS);
        check_account(&mut v, &u.input, |p| u.wants(p));
        v.finish()?;
        let now = self.now(&ctx.tenant_id);
        let a = &u.input;
        let apply = |cur: &Account| {
            let mut next = cur.clone();
            let mut changed = Vec::new();
            set(
                u.wants("account_name"),
                "account_name",
                &mut next.account_name,
                a.account_name.trim().into(),
                &mut changed,
            );
            let custom_id = (!a.custom_id.is_empty()).then(|| a.custom_id.clone());
            set(u.wants("custom_id"), "custom_id", &mut next.custom_id, custom_id, &mut changed);
            set(u.wants("currency_code"), "currency_code", &mut next.currency, a.currency_code.clone(), &mut changed);
            set(u.wants("time_zone"), "time_zone", &mut next.time_zone, a.time_zone.clone(), &mut changed);
            let address = a.billing_address.clone();
            set(u.wants("billing_address"), "billing_address", &mut next.billing_address, address, &mut changed);
            set(u.wants("tags"), "tags", &mut next.tags, a.tags.clone(), &mut changed);
            set(u.wants("notes"), "notes", &mut next.notes, a.notes.clone(), &mut changed);
            set(u.wants("metadata"), "metadata", &mut next.metadata, a.metadata.clone(), &mut changed);
            set(u.wants("tax_exempt"), "tax_exempt", &mut next.tax_exempt, a.tax_exempt, &mut changed);
            if changed.is_empty() {
                return None;
            }
            next.updated_at = now;
            let event = SubscriptionEvent::AccountUpdated { account_id: next.id.clone(), changed_fields: changed };
            Some((next, Event::new(event, now)))
        };
        self.repo
            .update_account(&ctx.tenant_id, &u.id, &apply)
            .await
            .map_err(custom_id_taken)?
            .ok_or_else(|| AppError::not_found("account", &u.id).with_field("account.id", "no such account"))
    }

    /// Adds a contact to an existing account (INVALID_ARGUMENT
    /// `ACCOUNT_NOT_FOUND` when there is none); a primary one becomes the
    /// account's only primary contact.
    pub async fn create_contact(&self, ctx: &CallContext, n: &NewContact, idem: &Idem) -> AppResult<Contact> {
        let mut v = Violations::new();
        v.check(!n.account_id.is_empty(), "contact.account_id", "is required");
        check_email(&mut v, "contact.email".into(), &n.contact.email);
        v.finish()?;
        let now = self.now(&ctx.tenant_id);
        let c = &n.contact;
        let contact = Contact {
            id: recur_id::new_id(recur_id::Kind::Contact),
            account_id: n.account_id.clone(),
            name: contact_name(c),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            title: c.title.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            address: c.address.clone(),
            primary: n.primary,
            created_at: now,
            updated_at: now,
        };
        let event = Event::new(
            SubscriptionEvent::ContactCreated {
                contact_id: contact.id.clone(),
                account_id: contact.account_id.clone(),
            },
            now,
        );
        let insert = || self.repo.insert_contact(&ctx.tenant_id, &contact, idem.as_repo(), &event);
        let stored = match insert().await {
            // A concurrent request with the same key won: read what it made.
            Err(e) if e.is_unique() && idem.key.is_some() => insert().await,
            other => other,
        }?
        .ok_or_else(|| {
            AppError::not_found("account", &n.account_id)
                .with_field("contact.account_id", "no such account")
                .into_invalid_reference()
        })?;
        Ok(check_replay(stored, &idem.hash)?.0)
    }

    /// Updates the paths of `u` on contact `u.id` (NOT_FOUND when there is
    /// none), with a `contact.updated` event.
    pub async fn update_contact(&self, ctx: &CallContext, u: &Update<ContactUpdate>) -> AppResult<Contact> {
        let mut v = Violations::new();
        v.check(!u.id.is_empty(), "contact.id", "is required");
        u.check_paths(&mut v, CONTACT_PATHS);
        if u.wants("email") {
            check_email(&mut v, "contact.email".into(), &u.input.contact.email);
        }
        v.finish()?;
        let now = self.now(&ctx.tenant_id);
        let c = &u.input.contact;
        let apply = |cur: &Contact| {
            let mut next = cur.clone();
            let mut changed = Vec::new();
            set(u.wants("first_name"), "first_name", &mut next.first_name, c.first_name.clone(), &mut changed);
            set(u.wants("last_name"), "last_name", &mut next.last_name, c.last_name.clone(), &mut changed);
            set(u.wants("name"), "name", &mut next.name, c.name.clone(), &mut changed);
            set(u.wants("title"), "title", &mut next.title, c.title.clone(), &mut changed);
            set(u.wants("email"), "email", &mut next.email, c.email.clone(), &mut changed);
            set(u.wants("phone"), "phone", &mut next.phone, c.phone.clone(), &mut changed);
            set(u.wants("address"), "address", &mut next.address, c.address.clone(), &mut changed);
            set(u.wants("primary"), "primary", &mut next.primary, u.input.primary, &mut changed);
            if changed.is_empty() {
                return None;
            }
            next.updated_at = now;
            let event = SubscriptionEvent::ContactUpdated {
                contact_id: next.id.clone(),
                account_id: next.account_id.clone(),
                changed_fields: changed,
            };
            Some((next, Event::new(event, now)))
        };
        self.repo
            .update_contact(&ctx.tenant_id, &u.id, &apply)
            .await?
            .ok_or_else(|| AppError::not_found("contact", &u.id).with_field("contact.id", "no such contact"))
    }

    /// Accounts, oldest first, in keyset pages; with a `tag`, those
    /// carrying it.
    pub async fn list_accounts(&self, tenant: &str, tag: &str, page_size: i32, token: &str) -> AppResult<AccountPage> {
        let mut v = Violations::new();
        v.check(page_size >= 0, "page_size", "must not be negative");
        let after = decode_page_token(&mut v, token);
        v.finish()?;
        let limit = page::page_size(page_size);
        let rows = if tag.is_empty() {
            self.repo.list_accounts(tenant, after.as_ref(), limit + 1).await?
        } else {
            self.repo.list_accounts_tagged(tenant, tag, after.as_ref(), limit + 1).await?
        };
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
        let now = self.now(&ctx.tenant_id);
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

    /// Bill group `id` of account `account_id`, named in a request's body
    /// (`bill_group_id`): INVALID_ARGUMENT `BILL_GROUP_NOT_FOUND` when the
    /// account has no such bill group.
    pub async fn bill_group_of(&self, tenant: &str, account_id: &str, id: &str) -> AppResult<BillGroup> {
        of_account(self.repo.get_bill_group(tenant, id).await?, account_id, id)
    }

    /// Updates the paths of `u` on bill group `u.id` (NOT_FOUND when there
    /// is none), with a `bill_group.updated` event. A new gateway customer
    /// or payment method is checked with the gateway as at creation, and a
    /// contact must be one of the account's.
    pub async fn update_bill_group(&self, ctx: &CallContext, u: &Update<BillGroupInput>) -> AppResult<BillGroup> {
        let b = &u.input;
        let mut v = Violations::new();
        v.check(!u.id.is_empty(), "bill_group.id", "is required");
        u.check_paths(&mut v, BILL_GROUP_PATHS);
        if u.wants("billing_day") {
            v.check((0..=31).contains(&b.billing_day), "bill_group.billing_day", "must be between 0 and 31");
        }
        if u.wants("currency_code") {
            v.check(
                b.currency_code.is_empty() || Currency::from_code(&b.currency_code).is_some(),
                "bill_group.currency_code",
                "unknown currency",
            );
        }
        if u.wants("collection_method") {
            v.check(b.collection_method.is_some(), "bill_group.collection_method", "unknown collection method");
        }
        if u.wants("name") {
            v.check(!b.name.trim().is_empty(), "bill_group.name", "is required");
        }
        v.finish()?;
        let now = self.now(&ctx.tenant_id);
        let patch = |cur: &BillGroup| {
            let mut next = cur.clone();
            let mut changed = Vec::new();
            let pm = b.payment_method_id.clone();
            set(u.wants("payment_method_id"), "payment_method_id", &mut next.payment_method_id, pm, &mut changed);
            let cus = b.gateway_customer_id.clone();
            set(
                u.wants("gateway_customer_id"),
                "gateway_customer_id",
                &mut next.gateway_customer_id,
                cus,
                &mut changed,
            );
            let method = b.collection_method.unwrap_or(cur.collection_method);
            set(u.wants("collection_method"), "collection_method", &mut next.collection_method, method, &mut changed);
            let day = u32::try_from(b.billing_day).unwrap_or(0);
            set(u.wants("billing_day"), "billing_day", &mut next.billing_day, day, &mut changed);
            set(u.wants("name"), "name", &mut next.name, b.name.trim().to_string(), &mut changed);
            let email = b.auto_email_invoice.unwrap_or(cur.auto_email_invoice);
            set(u.wants("auto_email_invoice"), "auto_email_invoice", &mut next.auto_email_invoice, email, &mut changed);
            let collect = b.collect_automatically.unwrap_or(cur.collect_automatically);
            let path = "collect_invoice_balance_automatically";
            set(u.wants(path), path, &mut next.collect_automatically, collect, &mut changed);
            set(u.wants("contact_id"), "contact_id", &mut next.contact_id, b.contact_id.clone(), &mut changed);
            set(u.wants("currency_code"), "currency_code", &mut next.currency, b.currency_code.clone(), &mut changed);
            (next, changed)
        };
        // What the update would make of the bill group as it stands is
        // checked first (the gateway is not called inside a transaction).
        let current = self.repo.get_bill_group(&ctx.tenant_id, &u.id).await?.ok_or_else(|| {
            AppError::not_found("bill group", &u.id).with_field("bill_group.id", "no such bill group")
        })?;
        let (next, changed) = patch(&current);
        let changes = |p: &str| changed.iter().any(|c| c == p);
        if changes("payment_method_id") || changes("gateway_customer_id") {
            v = Violations::new();
            v.check(
                next.payment_method_id.is_empty() || !next.gateway_customer_id.is_empty(),
                "bill_group.payment_method_id",
                "needs the gateway_customer_id it belongs to",
            );
            v.finish()?;
        }
        if changes("contact_id") && !next.contact_id.is_empty() {
            let (_, contacts) = self.account(&ctx.tenant_id, &next.account_id, "bill_group.account_id").await?;
            if !contacts.iter().any(|c| c.id == next.contact_id) {
                return Err(AppError::invalid("bill_group.contact_id", "not a contact of the account"));
            }
        }
        if (changes("payment_method_id") || changes("gateway_customer_id")) && !next.gateway_customer_id.is_empty() {
            let field = if next.payment_method_id.is_empty() {
                "bill_group.gateway_customer_id"
            } else {
                "bill_group.payment_method_id"
            };
            self.payments.check_method(ctx, &next.gateway_customer_id, &next.payment_method_id, field).await.map_err(
                |e| {
                    if e.reason() == "CUSTOMER_NOT_FOUND" {
                        e.map_fields(|_| "bill_group.gateway_customer_id".to_string())
                    } else {
                        e
                    }
                },
            )?;
        }
        let apply = |cur: &BillGroup| {
            let (mut next, changed) = patch(cur);
            if changed.is_empty() {
                return None;
            }
            next.updated_at = now;
            let event = SubscriptionEvent::BillGroupUpdated {
                bill_group_id: next.id.clone(),
                account_id: next.account_id.clone(),
                changed_fields: changed,
            };
            Some((next, Event::new(event, now)))
        };
        let updated = self.repo.update_bill_group(&ctx.tenant_id, &u.id, &apply).await?.ok_or_else(|| {
            AppError::not_found("bill group", &u.id).with_field("bill_group.id", "no such bill group")
        })?;
        if updated.payment_method_id != current.payment_method_id
            && let Err(e) = self.retry_open_invoices(ctx, &updated).await
        {
            // The change is made; the clock retries what this could not.
            tracing::warn!(bill_group = %updated.id, error = %e, "open invoices not retried at once");
        }
        Ok(updated)
    }

    /// The bill groups of account `account_id` (NOT_FOUND when there is
    /// none), oldest first, in keyset pages.
    pub async fn list_bill_groups(
        &self,
        tenant: &str,
        account_id: &str,
        page_size: i32,
        token: &str,
    ) -> AppResult<BillGroupPage> {
        let mut v = Violations::new();
        v.check(!account_id.is_empty(), "account_id", "is required");
        v.check(page_size >= 0, "page_size", "must not be negative");
        let after = decode_page_token(&mut v, token);
        v.finish()?;
        self.account(tenant, account_id, "account_id").await?;
        let limit = page::page_size(page_size);
        let rows = self.repo.list_bill_groups(tenant, account_id, after.as_ref(), limit + 1).await?;
        Ok(page::finish(rows, limit, |b| Cursor::time(b.created_at, b.id.clone())))
    }
}

/// The cursor of a page token of a list ordered by creation time.
fn decode_page_token(v: &mut Violations, token: &str) -> Option<Cursor> {
    Cursor::decode_time(token).map(|c| c.map(|(t, id)| Cursor::time(t, id))).unwrap_or_else(|_| {
        v.add("page_token", "is not a token this API issued");
        None
    })
}

/// NOT_FOUND for account `id`, named in `field`.
pub(crate) fn no_account(id: &str, field: &str) -> AppError {
    AppError::not_found("account", id).with_field(field, "no such account")
}

/// Bill group `id` as found, when it is account `account_id`'s; else
/// INVALID_ARGUMENT `BILL_GROUP_NOT_FOUND` on `bill_group_id`.
pub(crate) fn of_account(found: Option<BillGroup>, account_id: &str, id: &str) -> AppResult<BillGroup> {
    found.filter(|b| b.account_id == account_id).ok_or_else(|| {
        AppError::not_found("bill group", id)
            .into_invalid_reference()
            .with_field("bill_group_id", "no such bill group on this account")
    })
}
