//! The catalog's gRPC surface: decode and validate the request, apply the
//! catalog's rules, store, encode. Every RPC of CatalogService is served.

mod ops;
mod wire;

use recur_error::{AppError, Violations};
use recur_proto::catalog::v1 as pb;
use recur_server::caller;
use tonic::{Request, Response};

pub use ops::CatalogApi;
use wire::*;

use crate::domain::*;

type Res<T> = Result<Response<T>, tonic::Status>;

#[tonic::async_trait]
impl pb::catalog_service_server::CatalogService for CatalogApi {
    async fn create_product(&self, req: Request<pb::CreateProductRequest>) -> Res<pb::CreateProductResponse> {
        let ctx = caller(&req)?;
        let input = req.into_inner().product.unwrap_or_default();
        let p = self.create_product(&ctx.tenant_id, &input).await?;
        Ok(Response::new(pb::CreateProductResponse { product: Some(product_pb(&p)) }))
    }

    async fn get_product(&self, req: Request<pb::GetProductRequest>) -> Res<pb::GetProductResponse> {
        use pb::get_product_request::Lookup as L;
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let (id, handle) = match &r.lookup {
            Some(L::Id(id)) => (Some(id.as_str()), None),
            Some(L::Handle(h)) => (None, Some(h.as_str())),
            None => (None, None),
        };
        let key = lookup("lookup", id, handle)?;
        let p = self.product(&ctx.tenant_id, key, id.or(handle).unwrap_or_default()).await?;
        Ok(Response::new(pb::GetProductResponse { product: Some(product_pb(&p)) }))
    }

    async fn list_products(&self, req: Request<pb::ListProductsRequest>) -> Res<pb::ListProductsResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let page = page_query(&mut v, r.page_size, &r.page_token, &r.order_by, r.direction, "name");
        let status = status_filter(&mut v, "status", r.status);
        let kind = match r.kind {
            0 => None,
            k => {
                let kind = kind_from_pb(k);
                v.check(kind.is_some(), "kind", "unknown product kind");
                kind
            }
        };
        v.finish()?;
        let rows = self
            .repo
            .list_products(&ctx.tenant_id, &ProductFilter { status, kind }, &page)
            .await
            .map_err(AppError::from)?;
        let (rows, next_page_token) = finish_page(rows, &page, |p| (p.created_at, p.name.clone(), p.id.clone()));
        Ok(Response::new(pb::ListProductsResponse { products: rows.iter().map(product_pb).collect(), next_page_token }))
    }

    async fn update_product(&self, req: Request<pb::UpdateProductRequest>) -> Res<pb::UpdateProductResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let input = r.product.unwrap_or_default();
        let p = self.update_product(&ctx.tenant_id, &input, &mask_paths(&r.update_mask)).await?;
        Ok(Response::new(pb::UpdateProductResponse { product: Some(product_pb(&p)) }))
    }

    async fn archive_product(&self, req: Request<pb::ArchiveProductRequest>) -> Res<pb::ArchiveProductResponse> {
        let ctx = caller(&req)?;
        let p = self.archive_product(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::ArchiveProductResponse { product: Some(product_pb(&p)) }))
    }

    async fn create_offering(&self, req: Request<pb::CreateOfferingRequest>) -> Res<pb::CreateOfferingResponse> {
        let ctx = caller(&req)?;
        let input = req.into_inner().offering.unwrap_or_default();
        let o = self.create_offering(&ctx.tenant_id, &input).await?;
        Ok(Response::new(pb::CreateOfferingResponse { offering: Some(offering_pb(&o)) }))
    }

    async fn get_offering(&self, req: Request<pb::GetOfferingRequest>) -> Res<pb::GetOfferingResponse> {
        use pb::get_offering_request::Lookup as L;
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let (id, handle) = match &r.lookup {
            Some(L::Id(id)) => (Some(id.as_str()), None),
            Some(L::Handle(h)) => (None, Some(h.as_str())),
            None => (None, None),
        };
        let key = lookup("lookup", id, handle)?;
        let o = self.offering(&ctx.tenant_id, key, id.or(handle).unwrap_or_default()).await?;
        Ok(Response::new(pb::GetOfferingResponse { offering: Some(offering_pb(&o)) }))
    }

    async fn list_offerings(&self, req: Request<pb::ListOfferingsRequest>) -> Res<pb::ListOfferingsResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let page = page_query(&mut v, r.page_size, &r.page_token, &r.order_by, r.direction, "name");
        let status = status_filter(&mut v, "status", r.status);
        v.finish()?;
        let filter = OfferingFilter { status, product_id: (!r.product_id.is_empty()).then_some(r.product_id) };
        let rows = self.repo.list_offerings(&ctx.tenant_id, &filter, &page).await.map_err(AppError::from)?;
        let (rows, next_page_token) = finish_page(rows, &page, |o| (o.created_at, o.name.clone(), o.id.clone()));
        Ok(Response::new(pb::ListOfferingsResponse {
            offerings: rows.iter().map(offering_pb).collect(),
            next_page_token,
        }))
    }

    async fn update_offering(&self, req: Request<pb::UpdateOfferingRequest>) -> Res<pb::UpdateOfferingResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let input = r.offering.unwrap_or_default();
        let o = self.update_offering(&ctx.tenant_id, &input, &mask_paths(&r.update_mask)).await?;
        Ok(Response::new(pb::UpdateOfferingResponse { offering: Some(offering_pb(&o)) }))
    }

    async fn archive_offering(&self, req: Request<pb::ArchiveOfferingRequest>) -> Res<pb::ArchiveOfferingResponse> {
        let ctx = caller(&req)?;
        let o = self.archive_offering(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::ArchiveOfferingResponse { offering: Some(offering_pb(&o)) }))
    }

    async fn create_rate(&self, req: Request<pb::CreateRateRequest>) -> Res<pb::CreateRateResponse> {
        let ctx = caller(&req)?;
        let input = req.into_inner().rate.unwrap_or_default();
        let r = self.create_rate(&ctx.tenant_id, &input).await?;
        Ok(Response::new(pb::CreateRateResponse { rate: Some(rate_pb(&r)) }))
    }

    async fn get_rate(&self, req: Request<pb::GetRateRequest>) -> Res<pb::GetRateResponse> {
        use pb::get_rate_request::Lookup as L;
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let (id, handle) = match &r.lookup {
            Some(L::Id(id)) => (Some(id.as_str()), None),
            Some(L::Handle(h)) => (None, Some(h.as_str())),
            None => (None, None),
        };
        let key = lookup("lookup", id, handle)?;
        let rate = self.rate(&ctx.tenant_id, key, id.or(handle).unwrap_or_default()).await?;
        Ok(Response::new(pb::GetRateResponse { rate: Some(rate_pb(&rate)) }))
    }

    async fn list_rates(&self, req: Request<pb::ListRatesRequest>) -> Res<pb::ListRatesResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let page = page_query(&mut v, r.page_size, &r.page_token, &r.order_by, r.direction, "name");
        let status = status_filter(&mut v, "status", r.status);
        v.finish()?;
        let filter = RateFilter {
            status,
            offering_id: (!r.offering_id.is_empty()).then_some(r.offering_id),
            currency: (!r.currency_code.is_empty()).then_some(r.currency_code),
        };
        let rows = self.repo.list_rates(&ctx.tenant_id, &filter, &page).await.map_err(AppError::from)?;
        let (rows, next_page_token) = finish_page(rows, &page, |r| (r.created_at, r.name.clone(), r.id.clone()));
        Ok(Response::new(pb::ListRatesResponse { rates: rows.iter().map(rate_pb).collect(), next_page_token }))
    }

    async fn update_rate(&self, req: Request<pb::UpdateRateRequest>) -> Res<pb::UpdateRateResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let input = r.rate.unwrap_or_default();
        let rate = self.update_rate(&ctx.tenant_id, &input, &mask_paths(&r.update_mask)).await?;
        Ok(Response::new(pb::UpdateRateResponse { rate: Some(rate_pb(&rate)) }))
    }

    async fn archive_rate(&self, req: Request<pb::ArchiveRateRequest>) -> Res<pb::ArchiveRateResponse> {
        let ctx = caller(&req)?;
        let r = self.archive_rate(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::ArchiveRateResponse { rate: Some(rate_pb(&r)) }))
    }

    async fn get_tenant_settings(
        &self,
        req: Request<pb::GetTenantSettingsRequest>,
    ) -> Res<pb::GetTenantSettingsResponse> {
        let ctx = caller(&req)?;
        let s = self.settings(&ctx.tenant_id).await?;
        Ok(Response::new(pb::GetTenantSettingsResponse { settings: Some(settings_pb(&ctx.tenant_id, &s)) }))
    }

    async fn update_tenant_settings(
        &self,
        req: Request<pb::UpdateTenantSettingsRequest>,
    ) -> Res<pb::UpdateTenantSettingsResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let input = r.settings.unwrap_or_default();
        let s = self.update_settings(&ctx.tenant_id, &input, &mask_paths(&r.update_mask)).await?;
        Ok(Response::new(pb::UpdateTenantSettingsResponse { settings: Some(settings_pb(&ctx.tenant_id, &s)) }))
    }

    async fn create_coupon(&self, req: Request<pb::CreateCouponRequest>) -> Res<pb::CreateCouponResponse> {
        let ctx = caller(&req)?;
        let input = req.into_inner().coupon.unwrap_or_default();
        let c = self.create_coupon(&ctx.tenant_id, &input).await?;
        Ok(Response::new(pb::CreateCouponResponse { coupon: Some(coupon_pb(&c)) }))
    }

    async fn get_coupon(&self, req: Request<pb::GetCouponRequest>) -> Res<pb::GetCouponResponse> {
        use pb::get_coupon_request::Lookup as L;
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let (id, code) = match &r.lookup {
            Some(L::Id(id)) => (Some(id.as_str()), None),
            Some(L::Code(c)) => (None, Some(c.as_str())),
            None => (None, None),
        };
        let key = lookup("lookup", id, code)?;
        let c = self.coupon(&ctx.tenant_id, key, id.or(code).unwrap_or_default()).await?;
        Ok(Response::new(pb::GetCouponResponse { coupon: Some(coupon_pb(&c)) }))
    }

    async fn list_coupons(&self, req: Request<pb::ListCouponsRequest>) -> Res<pb::ListCouponsResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let page = page_query(&mut v, r.page_size, &r.page_token, &r.order_by, r.direction, "code");
        let status = status_filter(&mut v, "status", r.status);
        v.finish()?;
        let rows =
            self.repo.list_coupons(&ctx.tenant_id, &CouponFilter { status }, &page).await.map_err(AppError::from)?;
        let (rows, next_page_token) = finish_page(rows, &page, |c| (c.created_at, c.code.clone(), c.id.clone()));
        Ok(Response::new(pb::ListCouponsResponse { coupons: rows.iter().map(coupon_pb).collect(), next_page_token }))
    }

    async fn archive_coupon(&self, req: Request<pb::ArchiveCouponRequest>) -> Res<pb::ArchiveCouponResponse> {
        let ctx = caller(&req)?;
        let c = self.archive_coupon(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::ArchiveCouponResponse { coupon: Some(coupon_pb(&c)) }))
    }

    async fn apply_catalog(&self, req: Request<pb::ApplyCatalogRequest>) -> Res<pb::ApplyCatalogResponse> {
        let ctx = caller(&req)?;
        let (changes, applied) = self.apply_catalog(&ctx.tenant_id, req.get_ref()).await?;
        Ok(Response::new(pb::ApplyCatalogResponse {
            changes: changes
                .into_iter()
                .map(|c| pb::CatalogChange {
                    resource_type: c.resource.to_string(),
                    handle: c.handle,
                    action: action_pb(c.action),
                    id: c.id,
                    changed_fields: c.changed_fields,
                })
                .collect(),
            applied,
        }))
    }

    async fn export_catalog(&self, req: Request<pb::ExportCatalogRequest>) -> Res<pb::ExportCatalogResponse> {
        let ctx = caller(&req)?;
        let document = self.export_catalog(&ctx.tenant_id, req.get_ref().format).await?;
        Ok(Response::new(pb::ExportCatalogResponse { document }))
    }
}
