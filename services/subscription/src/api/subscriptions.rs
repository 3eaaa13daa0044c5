//! `recur.subscription.v1.SubscriptionService`.

use recur_proto::subscription::v1 as pb;
use recur_server::caller;
use tonic::{Request, Response};

use super::wire::{
    cancel_timing_in, change_in, invoice_pb, list_in, preview_pb, subscribe_in, subscription_into_pb, subscription_pb,
};
use super::{Res, SubscriptionApi, idem};
use crate::app::mutate::Changed;
use recur_proto::convert::{from_timestamp, money_of};

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

    async fn record_usage(&self, req: Request<pb::RecordUsageRequest>) -> Res<pb::RecordUsageResponse> {
        let ctx = caller(&req)?;
        let r = req.get_ref();
        let mut records = Vec::with_capacity(r.records.len());
        for (i, u) in r.records.iter().enumerate() {
            records.push(crate::app::usage::UsageInput {
                event_id: u.event_id.clone(),
                product_id: u.product_id.clone(),
                quantity: u.quantity.clone(),
                event_time: crate::api::wire::opt_time_in(u.event_time.as_ref(), &format!("records[{i}].event_time"))?,
                properties: u.properties.clone().into_iter().collect(),
            });
        }
        use crate::app::usage::UsageTarget;
        let target = match (r.subscription_id.is_empty(), r.account_id.is_empty()) {
            (false, false) => {
                return Err(recur_error::AppError::invalid(
                    "account_id",
                    "give subscription_id or account_id, not both",
                )
                .into());
            }
            (true, false) => UsageTarget::Account(r.account_id.clone()),
            _ => UsageTarget::Subscription(r.subscription_id.clone()),
        };
        let status = self.app.record_usage(&ctx, &target, &records).await?;
        Ok(Response::new(crate::api::wire::usage_pb(&records, status)))
    }

    async fn get_usage_summary(&self, req: Request<pb::GetUsageSummaryRequest>) -> Res<pb::GetUsageSummaryResponse> {
        let ctx = caller(&req)?;
        let summary = self.app.usage_summary(&ctx, &req.get_ref().subscription_id).await?;
        Ok(Response::new(crate::api::wire::usage_summary_pb(&summary)))
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
            subscriptions: rows.into_iter().map(subscription_into_pb).collect(),
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

    async fn preview_change(&self, req: Request<pb::PreviewChangeRequest>) -> Res<pb::PreviewChangeResponse> {
        let ctx = caller(&req)?;
        let r = req.get_ref();
        let preview = self.app.preview_change(&ctx, &r.id, &change_in(r.change.as_ref(), false)).await?;
        Ok(Response::new(preview_pb(&preview)))
    }

    async fn change_subscription(
        &self,
        req: Request<pb::ChangeSubscriptionRequest>,
    ) -> Res<pb::ChangeSubscriptionResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let r = req.get_ref();
        let done =
            self.app.change(&ctx, &r.id, &change_in(r.change.as_ref(), r.cancel_scheduled_change), &idem).await?;
        let credited = Some(money_of(done.credited, done.subscription.currency));
        let (subscription, invoice, payment_id) = parts(done);
        Ok(Response::new(pb::ChangeSubscriptionResponse { subscription, invoice, payment_id, credited }))
    }

    async fn cancel_subscription(
        &self,
        req: Request<pb::CancelSubscriptionRequest>,
    ) -> Res<pb::CancelSubscriptionResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let r = req.get_ref();
        let timing = cancel_timing_in(r.timing)?;
        let done = self.app.cancel(&ctx, &r.id, timing, &r.reason, &r.comment, &idem).await?;
        let credited = Some(money_of(done.credited, done.subscription.currency));
        Ok(Response::new(pb::CancelSubscriptionResponse {
            subscription: Some(subscription_pb(&done.subscription)),
            credited,
        }))
    }

    async fn reactivate_subscription(
        &self,
        req: Request<pb::ReactivateSubscriptionRequest>,
    ) -> Res<pb::ReactivateSubscriptionResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let done = self.app.reactivate(&ctx, &req.get_ref().id, &idem).await?;
        Ok(Response::new(pb::ReactivateSubscriptionResponse {
            subscription: Some(subscription_pb(&done.subscription)),
        }))
    }

    async fn pause_subscription(
        &self,
        req: Request<pb::PauseSubscriptionRequest>,
    ) -> Res<pb::PauseSubscriptionResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let r = req.get_ref();
        let resume_at = match &r.resume_time {
            Some(t) => Some(
                from_timestamp(t)
                    .ok_or_else(|| recur_error::AppError::invalid("resume_time", "is not a valid instant"))?,
            ),
            None => None,
        };
        let at_period_end = match pb::PauseTiming::try_from(r.timing) {
            Ok(pb::PauseTiming::EndOfTerm) => true,
            Ok(_) => false,
            Err(_) => return Err(recur_error::AppError::invalid("timing", "unknown pause timing").into()),
        };
        let done = self.app.pause(&ctx, &r.id, at_period_end, resume_at, &idem).await?;
        Ok(Response::new(pb::PauseSubscriptionResponse { subscription: Some(subscription_pb(&done.subscription)) }))
    }

    async fn resume_subscription(
        &self,
        req: Request<pb::ResumeSubscriptionRequest>,
    ) -> Res<pb::ResumeSubscriptionResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let done = self.app.resume(&ctx, &req.get_ref().id, &idem).await?;
        Ok(Response::new(pb::ResumeSubscriptionResponse { subscription: Some(subscription_pb(&done.subscription)) }))
    }

    async fn import_subscription(
        &self,
        req: Request<pb::ImportSubscriptionRequest>,
    ) -> Res<pb::ImportSubscriptionResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let r = req.get_ref();
        let time = |t: &Option<prost_types::Timestamp>, field: &str| match t {
            Some(t) => from_timestamp(t)
                .map(Some)
                .ok_or_else(|| recur_error::AppError::invalid(field, "is not a valid instant")),
            None => Ok(None),
        };
        let input = crate::app::import::ImportInput {
            account_id: r.account_id.clone(),
            bill_group_id: r.bill_group_id.clone(),
            offering: r.offering.clone(),
            rate: r.rate.clone(),
            items: r.items.iter().map(|i| (i.product_id.clone(), i.quantity.clone())).collect(),
            custom_prices: r
                .items
                .iter()
                .filter_map(|i| {
                    i.custom_price.as_ref().map(|p| (i.product_id.clone(), super::wire::custom_price_in(p)))
                })
                .collect(),
            previous_billing_at: time(&r.previous_billing_time, "previous_billing_time")?,
            next_billing_at: time(&r.next_billing_time, "next_billing_time")?,
            coupon_codes: r.coupon_codes.clone(),
            metadata: r.metadata.clone(),
            custom_id: r.custom_id.clone(),
        };
        let s = self.app.import(&ctx, &input, &idem).await?;
        Ok(Response::new(pb::ImportSubscriptionResponse { subscription: Some(subscription_pb(&s)) }))
    }

    async fn apply_coupon(&self, req: Request<pb::ApplyCouponRequest>) -> Res<pb::ApplyCouponResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let r = req.get_ref();
        let done = self.app.apply_coupon(&ctx, &r.id, &r.coupon_code, &idem).await?;
        Ok(Response::new(pb::ApplyCouponResponse { subscription: Some(subscription_pb(&done.subscription)) }))
    }

    async fn remove_coupon(&self, req: Request<pb::RemoveCouponRequest>) -> Res<pb::RemoveCouponResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let r = req.get_ref();
        let done = self.app.remove_coupon(&ctx, &r.id, &r.coupon_code, &idem).await?;
        Ok(Response::new(pb::RemoveCouponResponse { subscription: Some(subscription_pb(&done.subscription)) }))
    }
}

/// A change's answer in wire terms: the subscription, its invoice, the
/// payment.
fn parts(done: Changed) -> (Option<pb::Subscription>, Option<pb::Invoice>, String) {
    (Some(subscription_pb(&done.subscription)), done.invoice.as_ref().map(invoice_pb), done.payment_id)
}
