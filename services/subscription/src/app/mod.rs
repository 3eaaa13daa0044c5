//! The use cases of the subscription service, each a function over the
//! repository and the peers, with `now` from the injected clock: accounts
//! and bill groups ([`accounts`]), subscribing ([`subscribe`]), importing
//! ([`import`]), activating ([`activate`]), changing ([`change`]),
//! canceling, pausing, resuming and reactivating ([`lifecycle`]), coupons
//! ([`coupons`]), invoices after they are made and one-off charges
//! ([`invoices`]), collecting an invoice ([`collect`]), listings
//! ([`list`]), the event list ([`events`]), the tenants' clocks
//! ([`clock`]), the billing clock ([`renew`]), payments the gateway
//! settles later ([`settle`]) and usage ([`usage`]). Every change of a stored
//! subscription goes through [`mutate`]: idempotent, written over the
//! version it read, with its invoice, credit and events in one transaction.

pub mod accounts;
pub mod activate;
pub mod change;
pub mod clock;
pub mod collect;
pub mod coupons;
pub mod events;
pub mod import;
pub mod invoice_pass;
pub mod invoices;
pub mod lifecycle;
pub mod list;
pub mod mutate;
pub mod renew;
pub mod settle;
pub mod subscribe;
pub mod usage;

use std::sync::Arc;

use recur_clock::SharedClock;
use recur_error::{AppError, AppResult};

use crate::domain::{Invoice, Subscription};
use crate::peers::{Catalog, Payments, Pricing};
use crate::repo::SubscriptionRepo;

/// What every use case works with.
pub struct App {
    pub repo: Arc<dyn SubscriptionRepo>,
    pub pricing: Arc<dyn Pricing>,
    pub payments: Arc<dyn Payments>,
    pub catalog: Arc<dyn Catalog>,
    pub clock: SharedClock,
    /// The tenants in test mode and their times (see [`clock`]).
    pub test_clocks: Arc<clock::TestClocks>,
    /// Mints the tokens the billing clock calls the peers with on a
    /// tenant's behalf (`None`: peers that check none, in unit tests).
    pub peer_key: Option<recur_auth::TokenKey>,
    /// How long a run of the billing clock holds what it took.
    pub lease: chrono::Duration,
}

/// The idempotency key of a create and the fingerprint of its request.
#[derive(Clone, Debug, Default)]
pub struct Idem {
    pub key: Option<String>,
    pub hash: String,
}

impl Idem {
    pub fn as_repo(&self) -> crate::repo::Idem<'_> {
        crate::repo::Idem { key: self.key.as_deref(), hash: &self.hash }
    }
}

impl App {
    /// Subscription `id` of `tenant` (NOT_FOUND: none, or another tenant's).
    pub async fn subscription(&self, tenant: &str, id: &str) -> AppResult<Subscription> {
        self.repo.get_subscription(tenant, id).await?.ok_or_else(|| AppError::not_found("subscription", id))
    }

    /// Invoice `id` of `tenant`, with its lines.
    pub async fn invoice(&self, tenant: &str, id: &str) -> AppResult<Invoice> {
        self.repo.get_invoice(tenant, id).await?.ok_or_else(|| AppError::not_found("invoice", id))
    }
}
