//! `recur.subscription.v1.ClockService`: a tenant's clock, and its test
//! mode (see `app::clock` and `app::renew`).

use recur_proto::convert::timestamp;
use recur_proto::subscription::v1 as pb;
use recur_server::caller;
use tonic::{Request, Response};

use super::{Res, SubscriptionApi, wire};

#[tonic::async_trait]
impl pb::clock_service_server::ClockService for SubscriptionApi {
    async fn get_clock(&self, req: Request<pb::GetClockRequest>) -> Res<pb::GetClockResponse> {
        let ctx = caller(&req)?;
        let tenant = ctx.tenant_id.as_str();
        Ok(Response::new(pb::GetClockResponse {
            clock: Some(pb::Clock {
                now: Some(timestamp(self.app.now(tenant))),
                test_mode: self.app.in_test_mode(tenant),
            }),
        }))
    }

    async fn enable_test_mode(&self, req: Request<pb::EnableTestModeRequest>) -> Res<pb::EnableTestModeResponse> {
        let ctx = caller(&req)?;
        let start = wire::opt_time_in(req.get_ref().start_time.as_ref(), "start_time")?;
        let now = self.app.enable_test_mode(&ctx, start).await?;
        Ok(Response::new(pb::EnableTestModeResponse {
            clock: Some(pb::Clock { now: Some(timestamp(now)), test_mode: true }),
        }))
    }

    async fn advance_clock(&self, req: Request<pb::AdvanceClockRequest>) -> Res<pb::AdvanceClockResponse> {
        let ctx = caller(&req)?;
        let to = match &req.get_ref().target {
            Some(pb::advance_clock_request::Target::To(t)) => wire::time_in(t, "to")?,
            Some(pb::advance_clock_request::Target::By(d)) => {
                let by = wire::duration_in(d, "by")?;
                self.app
                    .now(&ctx.tenant_id)
                    .checked_add_signed(by)
                    .ok_or_else(|| recur_error::AppError::invalid("by", "takes the clock past the year 9999"))?
            }
            None => return Err(recur_error::AppError::invalid("target", "give `by` or `to`").into()),
        };
        let (now, actions) = Box::pin(self.app.advance_clock(&ctx, to)).await?;
        Ok(Response::new(pb::AdvanceClockResponse {
            clock: Some(pb::Clock { now: Some(timestamp(now)), test_mode: true }),
            actions: actions.into_iter().map(wire::clock_action_pb).collect(),
        }))
    }
}
