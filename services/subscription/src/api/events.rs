//! `recur.subscription.v1.EventService`.

use recur_error::AppError;
use recur_proto::subscription::v1 as pb;
use recur_server::caller;
use tonic::{Request, Response};

use super::wire::event_pb;
use super::{Res, SubscriptionApi};

#[tonic::async_trait]
impl pb::event_service_server::EventService for SubscriptionApi {
    async fn list_events(&self, req: Request<pb::ListEventsRequest>) -> Res<pb::ListEventsResponse> {
        let ctx = caller(&req)?;
        let r = req.get_ref();
        if !r.r#type.is_empty() || !r.resource_id.is_empty() {
            return Err(AppError::invalid("type", "filtering events is not supported yet").into());
        }
        let (events, next_page_token) = self.app.list_events(&ctx.tenant_id, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::ListEventsResponse { events: events.iter().map(event_pb).collect(), next_page_token }))
    }
}
