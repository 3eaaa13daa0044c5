//! `recur.subscription.v1.ClockService`.

use recur_proto::convert::timestamp;
use recur_proto::subscription::v1 as pb;
use recur_server::caller;
use tonic::{Code, Request, Response};

use super::{Res, SubscriptionApi};

#[tonic::async_trait]
impl pb::clock_service_server::ClockService for SubscriptionApi {
    async fn get_clock(&self, req: Request<pb::GetClockRequest>) -> Res<pb::GetClockResponse> {
        caller(&req)?;
        Ok(Response::new(pb::GetClockResponse {
            clock: Some(pb::Clock { now: Some(timestamp(self.app.clock.now())), test_mode: false }),
        }))
    }

    async fn advance_clock(&self, req: Request<pb::AdvanceClockRequest>) -> Res<pb::AdvanceClockResponse> {
        caller(&req)?;
        Err(recur_error::AppError::new(Code::FailedPrecondition, "NOT_TEST_MODE", "test clocks are not available yet")
            .into())
    }
}
