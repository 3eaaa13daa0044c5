//! `recur.subscription.v1.InvoiceService`.

use recur_proto::subscription::v1 as pb;
use recur_server::caller;
use tonic::{Request, Response};

use super::wire::invoice_pb;
use super::{Res, SubscriptionApi};

#[tonic::async_trait]
impl pb::invoice_service_server::InvoiceService for SubscriptionApi {
    async fn get_invoice(&self, req: Request<pb::GetInvoiceRequest>) -> Res<pb::GetInvoiceResponse> {
        let ctx = caller(&req)?;
        let inv = self.app.invoice(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::GetInvoiceResponse { invoice: Some(invoice_pb(&inv)) }))
    }
}
