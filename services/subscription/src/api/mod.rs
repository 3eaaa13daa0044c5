//! The gRPC surface: one file per service (accounts, subscriptions,
//! invoices, events, clock) and [`wire`], the conversions between wire and
//! domain types. Handlers decode the request, call the application layer
//! ([`crate::app`]) and encode its answer: no business rule lives here.

mod accounts;
mod clock;
mod events;
mod invoices;
mod subscriptions;
pub mod wire;

use std::sync::Arc;

use tonic::{Response, Status};

use crate::app::{App, Idem};

/// Every gRPC service of the subscription service, over one [`App`].
#[derive(Clone)]
pub struct SubscriptionApi {
    app: Arc<App>,
}

impl SubscriptionApi {
    pub fn new(app: Arc<App>) -> Self {
        SubscriptionApi { app }
    }
}

type Res<T> = Result<Response<T>, Status>;

/// The idempotency key of a create (refused when it could not be stored)
/// and the fingerprint of its request.
fn idem<T: prost::Message>(req: &tonic::Request<T>) -> Result<Idem, Status> {
    let key = recur_server::checked_idempotency_key(req)?;
    Ok(Idem { key, hash: recur_server::fingerprint(req.get_ref()) })
}
