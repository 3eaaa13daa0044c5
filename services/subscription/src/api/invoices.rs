//! `recur.subscription.v1.InvoiceService`.

use recur_proto::subscription::v1 as pb;
use recur_server::caller;
use tonic::{Request, Response};

use super::wire::{invoice_list_in, invoice_pb};
use super::{Res, SubscriptionApi};

#[tonic::async_trait]
impl pb::invoice_service_server::InvoiceService for SubscriptionApi {
    async fn get_invoice(&self, req: Request<pb::GetInvoiceRequest>) -> Res<pb::GetInvoiceResponse> {
        let ctx = caller(&req)?;
        let inv = self.app.invoice(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::GetInvoiceResponse { invoice: Some(invoice_pb(&inv)) }))
    }

    async fn list_invoices(&self, req: Request<pb::ListInvoicesRequest>) -> Res<pb::ListInvoicesResponse> {
        let ctx = caller(&req)?;
        let (rows, next_page_token) = self.app.list_invoices(&ctx.tenant_id, &invoice_list_in(req.get_ref())).await?;
        Ok(Response::new(pb::ListInvoicesResponse { invoices: rows.iter().map(invoice_pb).collect(), next_page_token }))
    }
}
