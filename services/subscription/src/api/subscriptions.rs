//! `recur.subscription.v1.SubscriptionService`.

use recur_proto::subscription::v1 as pb;
use recur_server::caller;
use tonic::{Request, Response};

use super::wire::{invoice_pb, list_in, subscribe_in, subscription_pb};
use super::{Res, SubscriptionApi, idem};

#[tonic::async_trait]
impl pb::subscription_service_server::SubscriptionService for SubscriptionApi {
    async fn create_subscription(
        &self,
        req: Request<pb::CreateSubscriptionRequest>,
    ) -> Res<pb::CreateSubscriptionResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let done = self.app.subscribe(&ctx, &subscribe_in(req.get_ref()), &idem).await?;
        Ok(Response::new(pb::CreateSubscriptionResponse {
            subscription: Some(subscription_pb(&done.subscription)),
            invoice: done.invoice.as_ref().map(invoice_pb),
            payment_id: done.payment_id,
        }))
    }

    async fn get_subscription(&self, req: Request<pb::GetSubscriptionRequest>) -> Res<pb::GetSubscriptionResponse> {
        let ctx = caller(&req)?;
        let sub = self.app.subscription(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::GetSubscriptionResponse { subscription: Some(subscription_pb(&sub)) }))
    }

    async fn list_subscriptions(
        &self,
        req: Request<pb::ListSubscriptionsRequest>,
    ) -> Res<pb::ListSubscriptionsResponse> {
        let ctx = caller(&req)?;
        let (rows, next_page_token) = self.app.list_subscriptions(&ctx, &list_in(req.get_ref())).await?;
        Ok(Response::new(pb::ListSubscriptionsResponse {
            subscriptions: rows.iter().map(subscription_pb).collect(),
            next_page_token,
        }))
    }

    async fn activate_subscription(
        &self,
        req: Request<pb::ActivateSubscriptionRequest>,
    ) -> Res<pb::ActivateSubscriptionResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let done = self.app.activate(&ctx, &req.get_ref().id, &idem).await?;
        Ok(Response::new(pb::ActivateSubscriptionResponse {
            subscription: Some(subscription_pb(&done.subscription)),
            invoice: done.invoice.as_ref().map(invoice_pb),
            payment_id: done.payment_id,
        }))
    }
}
