//! `recur.subscription.v1.InvoiceService`.

use recur_proto::subscription::v1 as pb;
use recur_server::caller;
use tonic::{Request, Response};

use super::wire::{invoice_list_in, invoice_pb};
use super::{Res, SubscriptionApi, idem};
use crate::app::invoices::OneOffInput;

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

    async fn preview_upcoming_invoice(
        &self,
        req: Request<pb::PreviewUpcomingInvoiceRequest>,
    ) -> Res<pb::PreviewUpcomingInvoiceResponse> {
        let ctx = caller(&req)?;
        let inv = self.app.upcoming_invoice(&ctx, &req.get_ref().subscription_id).await?;
        Ok(Response::new(pb::PreviewUpcomingInvoiceResponse { invoice: Some(invoice_pb(&inv)) }))
    }

    async fn pay_invoice(&self, req: Request<pb::PayInvoiceRequest>) -> Res<pb::PayInvoiceResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let r = req.get_ref();
        let (inv, payment_id) = self.app.pay_invoice(&ctx, &r.id, &r.payment_method_id, &idem).await?;
        Ok(Response::new(pb::PayInvoiceResponse { invoice: Some(invoice_pb(&inv)), payment_id }))
    }

    async fn void_invoice(&self, req: Request<pb::VoidInvoiceRequest>) -> Res<pb::VoidInvoiceResponse> {
        let ctx = caller(&req)?;
        let inv = self.app.close_invoice(&ctx, &req.get_ref().id, true).await?;
        Ok(Response::new(pb::VoidInvoiceResponse { invoice: Some(invoice_pb(&inv)) }))
    }

    async fn mark_invoice_uncollectible(
        &self,
        req: Request<pb::MarkInvoiceUncollectibleRequest>,
    ) -> Res<pb::MarkInvoiceUncollectibleResponse> {
        let ctx = caller(&req)?;
        let inv = self.app.close_invoice(&ctx, &req.get_ref().id, false).await?;
        Ok(Response::new(pb::MarkInvoiceUncollectibleResponse { invoice: Some(invoice_pb(&inv)) }))
    }

    async fn create_one_off_charge(
        &self,
        req: Request<pb::CreateOneOffChargeRequest>,
    ) -> Res<pb::CreateOneOffChargeResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let r = req.get_ref();
        let input = OneOffInput {
            account_id: r.account_id.clone(),
            bill_group_id: r.bill_group_id.clone(),
            subscription_id: r.subscription_id.clone(),
            product_id: r.product_id.clone(),
            description: r.description.clone(),
            quantity: r.quantity.clone(),
            unit_amount: r.unit_amount.as_ref().map(|m| (m.amount.clone(), m.currency_code.clone())),
        };
        let done = self.app.one_off(&ctx, &input, &idem).await?;
        Ok(Response::new(pb::CreateOneOffChargeResponse {
            invoice: done.invoice.as_ref().map(invoice_pb),
            line_id: done.line_id,
            payment_id: done.payment_id,
        }))
    }
}
