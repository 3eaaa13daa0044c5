//! The subscription service's storage: one trait per aggregate (accounts
//! with their bill groups, subscriptions, invoices, events), implemented
//! for Postgres and SQLite from one body per aggregate (the SQL is the same
//! on both; each backend module expands the bodies for its own types). Row
//! types are ordinary structs in [`rows`]. Creates that carry an
//! idempotency key are unique per tenant and key in the database, so a
//! retried request finds what the first one made instead of making it again.
//! Events are written in the transaction of the change they report and
//! numbered per tenant when first listed ([`recur_storage::outbox`]).

mod accounts;
mod clock;
mod events;
mod invoices;
mod numbering;
mod postgres;
pub(crate) mod rows;
mod sql;
mod sqlite;
mod subscriptions;
mod usage;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use recur_storage::idem::Stored;
use recur_storage::outbox::Outbox;
use recur_storage::{Migration, Migrations, Pool, StorageError};

use crate::domain::{
    Account, BillGroup, Contact, CreditEntry, Event, Invoice, PendingCharge, Subscription, SubscriptionState,
};

pub use postgres::PgRepo;
pub use sqlite::SqliteRepo;

/// Idempotency key and request fingerprint of a create.
#[derive(Clone, Copy, Debug)]
pub struct Idem<'a> {
    pub key: Option<&'a str>,
    pub hash: &'a str,
}

/// One invoice of [`InvoiceStore::update_invoices`]: as it is to be, over
/// the status and update time it was read with, with the credit it moves
/// and its events.
#[derive(Clone, Copy, Debug)]
pub struct InvoiceWrite<'a> {
    pub invoice: &'a Invoice,
    pub was: crate::domain::InvoiceStatus,
    pub read_at: DateTime<Utc>,
    pub credits: &'a [CreditEntry],
    pub events: &'a [Event],
}

/// What a change of a stored subscription writes, at once or not at all
/// ([`SubscriptionStore::save_subscription`]).
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    /// The subscription as it is to be; its `version` is the one it was
    /// read at.
    pub sub: &'a Subscription,
    /// What the change was (`cancel`, `pause`, …), kept with its key.
    pub action: &'a str,
    pub idem: Idem<'a>,
    pub invoice: Option<&'a Invoice>,
    /// The DRAFT of the usage and in-arrears items of the part of the
    /// period the change ends (written beside `invoice`).
    pub closing: Option<&'a Invoice>,
    pub credits: &'a [CreditEntry],
    /// Coupons the change redeems, and codes it gives up.
    pub redeem: &'a [Redemption],
    pub release: &'a [String],
    pub events: &'a [Event],
    /// The subscription keeps the products and coupon codes it was read
    /// with (a plain renewal): the rows listings filter on stay as they are.
    pub lists_unchanged: bool,
}

/// A coupon a subscription redeems, and how often it may be redeemed in
/// all (0: without limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redemption {
    pub code: String,
    pub max_redemptions: i64,
}

/// A change made under an idempotency key: to which subscription, the
/// request's fingerprint, and the invoice it made (empty: none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutationKey {
    pub subscription_id: String,
    pub request_hash: String,
    pub invoice_id: String,
}

/// The event outbox of the subscription service.
pub const OUTBOX: Outbox = Outbox { events: "events", counters: "event_counters" };

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Stores an account with its contacts and event; with a key already
    /// used, returns what is stored under it and writes nothing.
    async fn insert_account(
        &self,
        tenant: &str,
        account: &Account,
        contacts: &[Contact],
        idem: Idem<'_>,
        event: &Event,
    ) -> Result<Stored<(Account, Vec<Contact>)>, StorageError>;
    async fn get_account(&self, tenant: &str, id: &str) -> Result<Option<(Account, Vec<Contact>)>, StorageError>;
    /// The account alone, without reading its contacts.
    async fn get_account_alone(&self, tenant: &str, id: &str) -> Result<Option<Account>, StorageError>;
    /// Accounts `ids` of `tenant` that exist, without their contacts, in one
    /// statement, in no particular order.
    async fn get_accounts_alone(&self, tenant: &str, ids: &[String]) -> Result<Vec<Account>, StorageError>;
    /// The id of the account with `custom_id`, else the first with a
    /// contact of `email` (any case).
    async fn find_account(
        &self,
        tenant: &str,
        custom_id: Option<&str>,
        email: Option<&str>,
    ) -> Result<Option<String>, StorageError>;
    /// Accounts after `after`, oldest first.
    async fn list_accounts(
        &self,
        tenant: &str,
        after: Option<&recur_storage::page::Cursor>,
        limit: i64,
    ) -> Result<Vec<(Account, Vec<Contact>)>, StorageError>;
    /// Accounts carrying `tag`, after `after`, oldest first.
    async fn list_accounts_tagged(
        &self,
        tenant: &str,
        tag: &str,
        after: Option<&recur_storage::page::Cursor>,
        limit: i64,
    ) -> Result<Vec<(Account, Vec<Contact>)>, StorageError>;
    /// Reads account `id` and writes what `apply` makes of it, with its
    /// event, in one transaction holding the account's lock (so concurrent
    /// updates never lose each other's fields); `apply` returning `None`
    /// writes nothing. `None`: no such account.
    async fn update_account(
        &self,
        tenant: &str,
        id: &str,
        apply: &(dyn for<'x> Fn(&'x Account) -> Option<(Account, Event)> + Send + Sync),
    ) -> Result<Option<(Account, Vec<Contact>)>, StorageError>;
    /// Stores a contact of its account with its event (a primary one
    /// unsets the others, in the same transaction); with a key already
    /// used, returns what is stored under it. `None`: no such account.
    async fn insert_contact(
        &self,
        tenant: &str,
        contact: &Contact,
        idem: Idem<'_>,
        event: &Event,
    ) -> Result<Option<Stored<Contact>>, StorageError>;
    async fn get_contact(&self, tenant: &str, id: &str) -> Result<Option<Contact>, StorageError>;
    /// Like [`AccountStore::update_account`], for contact `id` (one made
    /// primary unsets the account's others).
    async fn update_contact(
        &self,
        tenant: &str,
        id: &str,
        apply: &(dyn for<'x> Fn(&'x Contact) -> Option<(Contact, Event)> + Send + Sync),
    ) -> Result<Option<Contact>, StorageError>;
    /// Like [`AccountStore::update_account`], for bill group `id`.
    async fn update_bill_group(
        &self,
        tenant: &str,
        id: &str,
        apply: &(dyn for<'x> Fn(&'x BillGroup) -> Option<(BillGroup, Event)> + Send + Sync),
    ) -> Result<Option<BillGroup>, StorageError>;
    /// The bill groups of `account_id` after `after`, oldest first.
    async fn list_bill_groups(
        &self,
        tenant: &str,
        account_id: &str,
        after: Option<&recur_storage::page::Cursor>,
        limit: i64,
    ) -> Result<Vec<BillGroup>, StorageError>;
    async fn insert_bill_group(
        &self,
        tenant: &str,
        bg: &BillGroup,
        idem: Idem<'_>,
        event: &Event,
    ) -> Result<Stored<BillGroup>, StorageError>;
    async fn get_bill_group(&self, tenant: &str, id: &str) -> Result<Option<BillGroup>, StorageError>;
    /// Bill groups `ids` of `tenant` that exist, in one statement, in no
    /// particular order.
    async fn get_bill_groups(&self, tenant: &str, ids: &[String]) -> Result<Vec<BillGroup>, StorageError>;
    /// What a create reads before it writes, in one read: whether
    /// idempotency key `key` already made a subscription, account
    /// `account_id` (without its contacts) and bill group `bill_group_id`
    /// (whichever account's it is).
    async fn create_context(
        &self,
        tenant: &str,
        key: Option<&str>,
        account_id: &str,
        bill_group_id: &str,
    ) -> Result<CreateContext, StorageError>;
}

/// What [`AccountStore::create_context`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreateContext {
    /// The key already made a subscription (read it with
    /// [`SubscriptionStore::subscription_by_key`]).
    pub replayed: bool,
    pub account: Option<Account>,
    pub bill_group: Option<BillGroup>,
}

/// A time column of a subscription that a listing filters on or sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeColumn {
    CreatedAt,
    UpdatedAt,
    ActivatedAt,
    CanceledAt,
    CurrentPeriodStart,
    CurrentPeriodEnd,
    TrialStart,
    TrialEnd,
    ExpiresAt,
    NextBillingAt,
}

impl TimeColumn {
    /// Whether a subscription may have no value in the column.
    pub fn nullable(self) -> bool {
        !matches!(
            self,
            TimeColumn::CreatedAt
                | TimeColumn::UpdatedAt
                | TimeColumn::CurrentPeriodStart
                | TimeColumn::CurrentPeriodEnd
        )
    }

    pub fn column(self) -> &'static str {
        match self {
            TimeColumn::CreatedAt => "created_at",
            TimeColumn::UpdatedAt => "updated_at",
            TimeColumn::ActivatedAt => "activated_at",
            TimeColumn::CanceledAt => "canceled_at",
            TimeColumn::CurrentPeriodStart => "current_period_start",
            TimeColumn::CurrentPeriodEnd => "current_period_end",
            TimeColumn::TrialStart => "trial_start",
            TimeColumn::TrialEnd => "trial_end",
            TimeColumn::ExpiresAt => "expires_at",
            TimeColumn::NextBillingAt => "next_billing_at",
        }
    }
}

/// What a listing is sorted by (then by id, which makes the order total).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionOrder {
    /// A time column; a subscription without one sorts as the latest.
    Time(TimeColumn),
    Id,
}

/// A time column and the inclusive range its value must be in.
pub type TimeRange = (TimeColumn, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Which subscriptions to list, in which order, after which row.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionQuery {
    pub states: Vec<SubscriptionState>,
    pub account_id: Option<String>,
    pub offering_id: Option<String>,
    pub rate_id: Option<String>,
    pub product_id: Option<String>,
    pub coupon_code: Option<String>,
    /// Every entry must be in the subscription's metadata.
    pub metadata: Vec<(String, String)>,
    /// `column` within `[from, to]` (either end open when `None`).
    pub time_range: Option<TimeRange>,
    pub order: SubscriptionOrder,
    pub descending: bool,
    pub after: Option<recur_storage::page::Cursor>,
    pub limit: i64,
}

/// Which invoices to list (newest last), after which row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InvoiceQuery {
    pub account_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<crate::domain::InvoiceStatus>,
    pub after: Option<recur_storage::page::Cursor>,
    pub limit: i64,
}

/// The value a subscription without the sort column sorts by: later than
/// any real time, so ascending lists end with them.
pub fn missing_time() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_214_400, 0).unwrap_or_default()
}

#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// A page of subscriptions matching `q`.
    async fn list_subscriptions(&self, tenant: &str, q: &SubscriptionQuery) -> Result<Vec<Subscription>, StorageError>;
    /// Stores a new subscription with its first invoice (numbered here,
    /// gap-free per tenant) and events, in one transaction.
    /// Its coupons in `redeem` are redeemed in the same transaction
    /// (`Refused` `COUPON_EXHAUSTED` past a coupon's limit).
    async fn insert_subscription(
        &self,
        tenant: &str,
        sub: &Subscription,
        invoice: Option<&Invoice>,
        idem: Idem<'_>,
        redeem: &[Redemption],
        events: &[Event],
    ) -> Result<Stored<Subscription>, StorageError>;
    /// How often each of `codes` has been redeemed so far (codes never
    /// redeemed are left out).
    async fn redemptions(&self, tenant: &str, codes: &[String]) -> Result<Vec<(String, i64)>, StorageError>;
    /// Writes `change`: the subscription as it now is, over the version it
    /// was read at (`change.sub.version`, bumped here), with what the change
    /// made (an invoice, numbered here; movements of account credit; its
    /// idempotency key; events), in one transaction. `Ok(false)` when
    /// another change came first (the version moved on, or a credit balance
    /// it consumes is no longer there): nothing was written.
    async fn save_subscription(&self, tenant: &str, change: &Change<'_>) -> Result<bool, StorageError>;
    /// Writes `changes` as [`Self::save_subscription`] writes one, all in
    /// one transaction (one commit), each in its own savepoint: each is
    /// answered `Ok(true)` (written), `Ok(false)` (another change came
    /// first) or a unique violation (what it inserts exists, e.g. its
    /// period's invoice), and only itself is undone. Another error undoes
    /// them all.
    async fn save_subscriptions(
        &self,
        tenant: &str,
        changes: &[Change<'_>],
    ) -> Result<Vec<Result<bool, StorageError>>, StorageError>;
    /// The subscription a change under idempotency key `key` was made to,
    /// and that request's fingerprint.
    async fn mutation_by_key(&self, tenant: &str, key: &str) -> Result<Option<MutationKey>, StorageError>;
    /// The subscription made under idempotency key `key`, if any.
    async fn subscription_by_key(&self, tenant: &str, key: &str) -> Result<Option<Stored<Subscription>>, StorageError>;
    async fn get_subscription(&self, tenant: &str, id: &str) -> Result<Option<Subscription>, StorageError>;
    /// Subscriptions `ids` of `tenant` that exist, in one statement, in no
    /// particular order.
    async fn get_subscriptions(&self, tenant: &str, ids: &[String]) -> Result<Vec<Subscription>, StorageError>;
    /// Which of subscriptions `ids` are PAST_DUE, in one statement.
    async fn past_due_among(&self, tenant: &str, ids: &[String]) -> Result<Vec<String>, StorageError>;
    async fn set_subscription_state(
        &self,
        tenant: &str,
        id: &str,
        state: SubscriptionState,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<(), StorageError>;
    /// Voids invoice `invoice_id` and cancels subscription `id`, with
    /// `events`, in one transaction (a subscription whose first charge was
    /// refused as the caller's mistake).
    async fn void_and_cancel(
        &self,
        tenant: &str,
        id: &str,
        invoice_id: &str,
        at: DateTime<Utc>,
        events: &[Event],
    ) -> Result<(), StorageError>;
}

#[async_trait]
pub trait InvoiceStore: Send + Sync {
    /// A page of invoices matching `q`, oldest first, with their lines.
    async fn list_invoices(&self, tenant: &str, q: &InvoiceQuery) -> Result<Vec<Invoice>, StorageError>;
    async fn get_invoice(&self, tenant: &str, id: &str) -> Result<Option<Invoice>, StorageError>;
    /// A subscription's invoices, oldest first, with their lines.
    async fn invoices_of_subscription(&self, tenant: &str, subscription_id: &str)
    -> Result<Vec<Invoice>, StorageError>;
    /// Records a payment against an invoice (its status, amount paid,
    /// payments) with its events, in one transaction.
    async fn record_payment(&self, tenant: &str, invoice: &Invoice, events: &[Event]) -> Result<(), StorageError>;
    /// [`Self::record_payment`] for several invoices at once: one
    /// statement on Postgres, one transaction on SQLite.
    async fn record_payments(&self, tenant: &str, payments: &[(&Invoice, &[Event])]) -> Result<(), StorageError>;
    /// Invoices `ids` of `tenant` that exist, with their lines (two
    /// statements however many), in no particular order.
    async fn get_invoices(&self, tenant: &str, ids: &[String]) -> Result<Vec<Invoice>, StorageError>;
    /// [`Self::update_invoice`] for several invoices in one transaction:
    /// each written only over the state it was read with (`false` in its
    /// place when it changed meanwhile or a credit it consumes is gone;
    /// the others are written). Finalized drafts are numbered once it
    /// commits.
    async fn update_invoices(&self, tenant: &str, writes: &[InvoiceWrite<'_>]) -> Result<Vec<bool>, StorageError>;
    /// Writes `invoice`'s status, amounts and payments over the status and
    /// update time it was read with (`was`, `read_at`), with movements of
    /// account credit and events, in one transaction. `Ok(false)`: it
    /// changed meanwhile (or a credit it consumes is gone); nothing written.
    async fn update_invoice(
        &self,
        tenant: &str,
        invoice: &Invoice,
        was: crate::domain::InvoiceStatus,
        read_at: DateTime<Utc>,
        credits: &[CreditEntry],
        events: &[Event],
    ) -> Result<bool, StorageError>;
    /// Numbers the tenant's finalized invoices still without a number (the
    /// writes that finalize one do so after they commit; this finishes what
    /// a crash or failure in between left).
    async fn number_invoices(&self, tenant: &str) -> Result<(), StorageError>;
    /// The number of invoice `id`: a finalized invoice still waiting for
    /// one is numbered first ("" for a draft or an unknown id).
    async fn invoice_number(&self, tenant: &str, id: &str) -> Result<String, StorageError>;
    /// Stores an invoice made on its own (numbered here) with its events;
    /// with a key already used, the id of the invoice stored under it.
    async fn insert_invoice_once(
        &self,
        tenant: &str,
        invoice: &Invoice,
        idem: Idem<'_>,
        events: &[Event],
    ) -> Result<Stored<String>, StorageError>;
    /// Stores a one-off charge for a subscription's next invoice; with a
    /// key already used, the charge stored under it.
    async fn insert_pending_charge(
        &self,
        tenant: &str,
        charge: &PendingCharge,
        idem: Idem<'_>,
    ) -> Result<Stored<PendingCharge>, StorageError>;
    /// The one-off charges waiting for subscription `id`'s next invoice,
    /// oldest first.
    async fn pending_charges(&self, tenant: &str, subscription_id: &str) -> Result<Vec<PendingCharge>, StorageError>;
    /// [`Self::pending_charges`] of subscriptions `ids` in one statement,
    /// oldest first.
    async fn pending_charges_of(&self, tenant: &str, ids: &[String]) -> Result<Vec<PendingCharge>, StorageError>;
    /// The account's credit balance per currency (currencies it never had
    /// credit in are left out).
    async fn credit_balances(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<Vec<(String, rust_decimal::Decimal)>, StorageError>;
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// `tenant`'s events after sequence `after`, in sequence order (events
    /// committed since the last listing are numbered first).
    async fn list_events(&self, tenant: &str, after: i64, limit: i64) -> Result<Vec<Event>, StorageError>;
}

/// Which due subscriptions a run of the billing clock claims: due at or
/// before `due` (the tenant's time), of `tenant` (`None`: of every tenant
/// not in test mode), not leased by another run until after `wall_now`
/// (the system time), leased to `owner` until `lease_until`.
#[derive(Clone, Copy, Debug)]
pub struct DueQuery<'a> {
    pub tenant: Option<&'a str>,
    pub due: DateTime<Utc>,
    pub owner: &'a str,
    pub wall_now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub limit: i64,
}

#[async_trait]
pub trait ClockStore: Send + Sync {
    /// Leases up to `q.limit` due subscriptions to `q.owner` and answers
    /// them (tenant, id). On Postgres the candidates are locked with `FOR
    /// UPDATE SKIP LOCKED`, so runs of several replicas claim disjoint
    /// sets; a lease that expired (its run died) is claimed again.
    async fn claim_due(&self, q: &DueQuery<'_>) -> Result<Vec<(String, String)>, StorageError>;
    /// Gives up `owner`'s leases of the subscriptions `items` (tenant, id),
    /// in one statement.
    async fn release_leases(&self, owner: &str, items: &[(String, String)]) -> Result<(), StorageError>;
    /// Parks subscription `id` (read at `version`) with `reason` and its
    /// event: the clock leaves it alone until a change clears the reason.
    /// `Ok(false)`: it changed meanwhile, nothing written.
    async fn park_subscription(
        &self,
        tenant: &str,
        id: &str,
        version: i64,
        reason: &str,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<bool, StorageError>;
    /// Invoices (tenant, id) the clock is to act on at or before `due`, of
    /// `tenant` (`None`: of every tenant not in test mode), earliest first.
    async fn invoices_due(
        &self,
        tenant: Option<&str>,
        due: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StorageError>;
    /// Takes invoice `id` for one run of the clock: moves its next action
    /// from `seen` (as the run read it) to `until`, so other runs leave it
    /// alone until then (and take it again if this run dies). `Ok(false)`:
    /// another run took it first.
    async fn take_invoice(
        &self,
        tenant: &str,
        id: &str,
        seen: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StorageError>;
    /// Takes, in one statement, up to `limit` invoices due at or before
    /// `due` of every tenant not in test mode for one run of the clock, as
    /// [`Self::take_invoice`] takes one (on Postgres the candidates are
    /// locked with `FOR UPDATE SKIP LOCKED`, so replicas take disjoint
    /// sets); answers each (tenant, id) with the time it was due.
    async fn claim_invoices(
        &self,
        due: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(String, String, DateTime<Utc>)>, StorageError>;
    /// For each coupon subscription `id` redeemed, how many of its start,
    /// renewal and last-part (`period_close`) invoices were made since (the
    /// invoices it has been in force for).
    async fn coupon_periods(&self, tenant: &str, subscription_id: &str) -> Result<Vec<(String, i64)>, StorageError>;
    /// [`Self::coupon_periods`] of subscriptions `ids` in one statement:
    /// `(subscription, code, periods)`, by subscription and code.
    async fn coupon_periods_of(&self, tenant: &str, ids: &[String])
    -> Result<Vec<(String, String, i64)>, StorageError>;
    /// The earliest time the clock has something to do for `tenant`: a
    /// subscription's next billing time (parked ones aside) or an
    /// invoice's next action.
    async fn next_due(&self, tenant: &str) -> Result<Option<DateTime<Utc>>, StorageError>;
    /// Tenants with an open invoice whose payment the gateway has not
    /// settled yet (at most `limit`); with `only`, that tenant if it has.
    async fn tenants_awaiting_payments(&self, only: Option<&str>, limit: i64) -> Result<Vec<String>, StorageError>;
    /// The last payment event of `tenant` read from the gateway (0: none).
    async fn payment_cursor(&self, tenant: &str) -> Result<i64, StorageError>;
    async fn set_payment_cursor(&self, tenant: &str, sequence: i64, at: DateTime<Utc>) -> Result<(), StorageError>;
    /// Every tenant in test mode and its time.
    async fn test_clocks(&self) -> Result<Vec<(String, DateTime<Utc>)>, StorageError>;
    /// Puts `tenant` in test mode at `at`; `Ok(false)` when it already was.
    async fn start_test_clock(
        &self,
        tenant: &str,
        at: DateTime<Utc>,
        wall: DateTime<Utc>,
    ) -> Result<bool, StorageError>;
    /// Moves `tenant`'s test clock to `at`; `Ok(false)` when it is not in
    /// test mode or its time is already past `at` (never backwards).
    async fn move_test_clock(&self, tenant: &str, at: DateTime<Utc>, wall: DateTime<Utc>)
    -> Result<bool, StorageError>;
}

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Stores the usage events whose ids the tenant has not used before,
    /// in one statement (the database's key on tenant and event id decides,
    /// also between concurrent calls); answers the ids it stored.
    async fn insert_usage(
        &self,
        tenant: &str,
        events: &[crate::domain::UsageEvent],
    ) -> Result<Vec<String>, StorageError>;
    /// How many usage events subscription `id` has.
    async fn usage_count(&self, tenant: &str, subscription_id: &str) -> Result<i64, StorageError>;
    /// The events of subscription `subscription_id`'s product with
    /// `start <= event_time < end`, added up by `meter` (read as a stream:
    /// a period's events are never held at once).
    async fn aggregate_usage(
        &self,
        tenant: &str,
        subscription_id: &str,
        product_id: &str,
        meter: &crate::domain::usage::Meter,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::domain::usage::Aggregate, StorageError>;
}

/// Every store of the service, on one backend.
pub trait SubscriptionRepo:
    AccountStore + SubscriptionStore + InvoiceStore + EventStore + ClockStore + UsageStore + 'static
{
}

impl<T: AccountStore + SubscriptionStore + InvoiceStore + EventStore + ClockStore + UsageStore + 'static>
    SubscriptionRepo for T
{
}

pub const MIGRATIONS: Migrations = Migrations {
    table: "subscription_migrations",
    postgres: &[
        Migration { version: 1, name: "init", sql: include_str!("../../migrations/postgres/0001_init.sql") },
        Migration {
            version: 2,
            name: "anchors and tenant sequences",
            sql: include_str!("../../migrations/postgres/0002_anchors_sequences.sql"),
        },
        Migration {
            version: 3,
            name: "contact keys and account tags",
            sql: include_str!("../../migrations/postgres/0003_contacts_keys_account_tags.sql"),
        },
        Migration {
            version: 4,
            name: "list filters",
            sql: include_str!("../../migrations/postgres/0004_list_filters.sql"),
        },
        Migration {
            version: 5,
            name: "mutation keys",
            sql: include_str!("../../migrations/postgres/0005_mutation_keys.sql"),
        },
        Migration { version: 6, name: "lifecycle", sql: include_str!("../../migrations/postgres/0006_lifecycle.sql") },
        Migration {
            version: 7,
            name: "invoice numbering",
            sql: include_str!("../../migrations/postgres/0007_invoice_numbering.sql"),
        },
        // SQLite compares text byte by byte already (BINARY).
        Migration { version: 8, name: "byte-order keys", sql: recur_storage::BYTE_ORDER_KEYS },
        Migration {
            version: 9,
            name: "billing clock",
            sql: include_str!("../../migrations/postgres/0009_billing_clock.sql"),
        },
        Migration { version: 10, name: "dunning", sql: include_str!("../../migrations/postgres/0010_dunning.sql") },
        Migration {
            version: 11,
            name: "payment cursors",
            sql: include_str!("../../migrations/postgres/0011_payment_cursors.sql"),
        },
        Migration { version: 12, name: "usage", sql: include_str!("../../migrations/postgres/0012_usage.sql") },
        Migration {
            version: 13,
            name: "period_close",
            sql: include_str!("../../migrations/postgres/0013_period_close.sql"),
        },
        Migration {
            version: 14,
            name: "side_tables_by_subscription",
            sql: include_str!("../../migrations/postgres/0014_side_tables_by_subscription.sql"),
        },
        Migration {
            version: 15,
            name: "invoice_claims",
            sql: include_str!("../../migrations/postgres/0015_invoice_claims.sql"),
        },
        Migration {
            version: 16,
            name: "usage coupon left",
            sql: include_str!("../../migrations/postgres/0016_usage_coupon_left.sql"),
        },
        Migration { version: 17, name: "due order", sql: include_str!("../../migrations/postgres/0017_due_order.sql") },
    ],
    sqlite: &[
        Migration { version: 1, name: "init", sql: include_str!("../../migrations/sqlite/0001_init.sql") },
        Migration {
            version: 2,
            name: "anchors and tenant sequences",
            sql: include_str!("../../migrations/sqlite/0002_anchors_sequences.sql"),
        },
        Migration {
            version: 3,
            name: "contact keys and account tags",
            sql: include_str!("../../migrations/sqlite/0003_contacts_keys_account_tags.sql"),
        },
        Migration {
            version: 4,
            name: "list filters",
            sql: include_str!("../../migrations/sqlite/0004_list_filters.sql"),
        },
        Migration {
            version: 5,
            name: "mutation keys",
            sql: include_str!("../../migrations/sqlite/0005_mutation_keys.sql"),
        },
        Migration { version: 6, name: "lifecycle", sql: include_str!("../../migrations/sqlite/0006_lifecycle.sql") },
        Migration {
            version: 7,
            name: "invoice numbering",
            sql: include_str!("../../migrations/sqlite/0007_invoice_numbering.sql"),
        },
        Migration {
            version: 9,
            name: "billing clock",
            sql: include_str!("../../migrations/sqlite/0009_billing_clock.sql"),
        },
        Migration { version: 10, name: "dunning", sql: include_str!("../../migrations/sqlite/0010_dunning.sql") },
        Migration {
            version: 11,
            name: "payment cursors",
            sql: include_str!("../../migrations/sqlite/0011_payment_cursors.sql"),
        },
        Migration { version: 12, name: "usage", sql: include_str!("../../migrations/sqlite/0012_usage.sql") },
        Migration {
            version: 13,
            name: "period_close",
            sql: include_str!("../../migrations/sqlite/0013_period_close.sql"),
        },
        Migration {
            version: 14,
            name: "side_tables_by_subscription",
            sql: include_str!("../../migrations/sqlite/0014_side_tables_by_subscription.sql"),
        },
        Migration {
            version: 15,
            name: "invoice_claims",
            sql: include_str!("../../migrations/sqlite/0015_invoice_claims.sql"),
        },
        Migration {
            version: 16,
            name: "usage coupon left",
            sql: include_str!("../../migrations/sqlite/0016_usage_coupon_left.sql"),
        },
        Migration { version: 17, name: "due order", sql: include_str!("../../migrations/sqlite/0017_due_order.sql") },
    ],
};

pub async fn open(url: &str, max_connections: u32) -> Result<Arc<dyn SubscriptionRepo>, StorageError> {
    Ok(from_pool(open_pool(url, max_connections).await?))
}

/// The service's pool at `url`, migrated.
pub async fn open_pool(url: &str, max_connections: u32) -> Result<Pool, StorageError> {
    let pool = recur_storage::connect(url, "subscription", max_connections).await?;
    recur_storage::migrate(&pool, &MIGRATIONS).await?;
    Ok(pool)
}

pub fn from_pool(pool: Pool) -> Arc<dyn SubscriptionRepo> {
    match pool {
        Pool::Postgres(p) => Arc::new(PgRepo { pool: p, numbering: Default::default() }),
        Pool::Sqlite(p) => Arc::new(SqliteRepo { pool: p, numbering: Default::default() }),
    }
}
