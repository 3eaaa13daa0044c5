//! Where the engine reads the catalog from: the catalog service, through its
//! gRPC client, on behalf of the caller.

use std::time::Duration;

use async_trait::async_trait;
use recur_auth::CallContext;
use recur_client::{CatalogClient, request};
use recur_error::{AppError, AppResult};
use recur_proto::catalog::v1 as cpb;
use tonic::Code;

#[async_trait]
pub trait CatalogSource: Send + Sync + 'static {
    /// An offering by id or handle; `None` when it does not exist.
    async fn offering(&self, ctx: &CallContext, key: &str) -> AppResult<Option<cpb::Offering>>;
    /// A rate by id or handle; `None` when it does not exist.
    async fn rate(&self, ctx: &CallContext, key: &str) -> AppResult<Option<cpb::Rate>>;
    async fn product(&self, ctx: &CallContext, id: &str) -> AppResult<Option<cpb::Product>>;
    async fn settings(&self, ctx: &CallContext) -> AppResult<cpb::TenantSettings>;
}

pub struct GrpcCatalog {
    client: CatalogClient,
    timeout: Duration,
}

impl GrpcCatalog {
    pub fn new(client: CatalogClient, timeout: Duration) -> Self {
        GrpcCatalog { client, timeout }
    }
}

fn absent_if_not_found<T>(r: Result<T, tonic::Status>) -> AppResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(AppError::from_peer("catalog", &s)),
    }
}

fn by_id_or_handle(key: &str) -> bool {
    recur_id::looks_like_id(key)
}

#[async_trait]
impl CatalogSource for GrpcCatalog {
    async fn offering(&self, ctx: &CallContext, key: &str) -> AppResult<Option<cpb::Offering>> {
        use cpb::get_offering_request::Lookup;
        let lookup = if by_id_or_handle(key) { Lookup::Id(key.into()) } else { Lookup::Handle(key.into()) };
        let req = request(ctx, cpb::GetOfferingRequest { lookup: Some(lookup) }, self.timeout);
        Ok(absent_if_not_found(self.client.clone().get_offering(req).await)?.and_then(|r| r.into_inner().offering))
    }

    async fn rate(&self, ctx: &CallContext, key: &str) -> AppResult<Option<cpb::Rate>> {
        use cpb::get_rate_request::Lookup;
        let lookup = if by_id_or_handle(key) { Lookup::Id(key.into()) } else { Lookup::Handle(key.into()) };
        let req = request(ctx, cpb::GetRateRequest { lookup: Some(lookup) }, self.timeout);
        Ok(absent_if_not_found(self.client.clone().get_rate(req).await)?.and_then(|r| r.into_inner().rate))
    }

    async fn product(&self, ctx: &CallContext, id: &str) -> AppResult<Option<cpb::Product>> {
        use cpb::get_product_request::Lookup;
        let req = request(ctx, cpb::GetProductRequest { lookup: Some(Lookup::Id(id.into())) }, self.timeout);
        Ok(absent_if_not_found(self.client.clone().get_product(req).await)?.and_then(|r| r.into_inner().product))
    }

    async fn settings(&self, ctx: &CallContext) -> AppResult<cpb::TenantSettings> {
        let req = request(ctx, cpb::GetTenantSettingsRequest {}, self.timeout);
        let resp =
            self.client.clone().get_tenant_settings(req).await.map_err(|s| AppError::from_peer("catalog", &s))?;
        resp.into_inner().settings.ok_or_else(|| AppError::internal("catalog returned no settings"))
    }
}
