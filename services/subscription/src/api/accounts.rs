//! `recur.subscription.v1.AccountService`.

use recur_error::AppError;
use recur_proto::subscription::v1 as pb;
use recur_server::caller;
use tonic::{Request, Response};

use super::wire::{
    account_in, account_pb, account_update_in, bill_group_in, bill_group_pb, bill_group_update_in, contact_pb,
    contact_update_in, credit_balances_pb, new_contact_in,
};
use super::{Res, SubscriptionApi, idem};

#[tonic::async_trait]
impl pb::account_service_server::AccountService for SubscriptionApi {
    async fn create_account(&self, req: Request<pb::CreateAccountRequest>) -> Res<pb::CreateAccountResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let input = account_in(&req.get_ref().account.clone().unwrap_or_default());
        let (a, contacts) = self.app.create_account(&ctx, &input, &idem).await?;
        Ok(Response::new(pb::CreateAccountResponse { account: Some(account_pb(&a, &contacts)) }))
    }

    async fn get_account(&self, req: Request<pb::GetAccountRequest>) -> Res<pb::GetAccountResponse> {
        let ctx = caller(&req)?;
        let (a, contacts) = self.app.account(&ctx.tenant_id, &req.get_ref().id, "id").await?;
        let mut account = account_pb(&a, &contacts);
        account.credit_balances = credit_balances_pb(&self.app.credit_balances(&ctx.tenant_id, &a.id).await?);
        Ok(Response::new(pb::GetAccountResponse { account: Some(account) }))
    }

    async fn list_accounts(&self, req: Request<pb::ListAccountsRequest>) -> Res<pb::ListAccountsResponse> {
        let ctx = caller(&req)?;
        let r = req.get_ref();
        let (rows, next_page_token) =
            self.app.list_accounts(&ctx.tenant_id, &r.tag, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: rows.iter().map(|(a, c)| account_pb(a, c)).collect(),
            next_page_token,
        }))
    }

    async fn find_account(&self, req: Request<pb::FindAccountRequest>) -> Res<pb::FindAccountResponse> {
        use pb::find_account_request::Key;
        let ctx = caller(&req)?;
        let (custom_id, email) = match &req.get_ref().key {
            Some(Key::CustomId(c)) if !c.is_empty() => (Some(c.as_str()), None),
            Some(Key::Email(e)) if !e.is_empty() => (None, Some(e.as_str())),
            _ => return Err(AppError::invalid("key", "give a custom_id or an email").into()),
        };
        let (a, contacts) = self.app.find_account(&ctx.tenant_id, custom_id, email).await?;
        Ok(Response::new(pb::FindAccountResponse { account: Some(account_pb(&a, &contacts)) }))
    }

    async fn create_bill_group(&self, req: Request<pb::CreateBillGroupRequest>) -> Res<pb::CreateBillGroupResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let input = bill_group_in(&req.get_ref().bill_group.clone().unwrap_or_default());
        let bg = self.app.create_bill_group(&ctx, &input, &idem).await?;
        Ok(Response::new(pb::CreateBillGroupResponse { bill_group: Some(bill_group_pb(&bg)) }))
    }

    async fn update_account(&self, req: Request<pb::UpdateAccountRequest>) -> Res<pb::UpdateAccountResponse> {
        let ctx = caller(&req)?;
        let (a, contacts) = self.app.update_account(&ctx, &account_update_in(req.get_ref())).await?;
        Ok(Response::new(pb::UpdateAccountResponse { account: Some(account_pb(&a, &contacts)) }))
    }

    async fn create_contact(&self, req: Request<pb::CreateContactRequest>) -> Res<pb::CreateContactResponse> {
        let ctx = caller(&req)?;
        let idem = idem(&req)?;
        let input = new_contact_in(&req.get_ref().contact.clone().unwrap_or_default());
        let c = self.app.create_contact(&ctx, &input, &idem).await?;
        Ok(Response::new(pb::CreateContactResponse { contact: Some(contact_pb(&c)) }))
    }

    async fn update_contact(&self, req: Request<pb::UpdateContactRequest>) -> Res<pb::UpdateContactResponse> {
        let ctx = caller(&req)?;
        let c = self.app.update_contact(&ctx, &contact_update_in(req.get_ref())).await?;
        Ok(Response::new(pb::UpdateContactResponse { contact: Some(contact_pb(&c)) }))
    }

    async fn update_bill_group(&self, req: Request<pb::UpdateBillGroupRequest>) -> Res<pb::UpdateBillGroupResponse> {
        let ctx = caller(&req)?;
        let bg = self.app.update_bill_group(&ctx, &bill_group_update_in(req.get_ref())).await?;
        Ok(Response::new(pb::UpdateBillGroupResponse { bill_group: Some(bill_group_pb(&bg)) }))
    }

    async fn list_bill_groups(&self, req: Request<pb::ListBillGroupsRequest>) -> Res<pb::ListBillGroupsResponse> {
        let ctx = caller(&req)?;
        let r = req.get_ref();
        let (rows, next_page_token) =
            self.app.list_bill_groups(&ctx.tenant_id, &r.account_id, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::ListBillGroupsResponse {
            bill_groups: rows.iter().map(bill_group_pb).collect(),
            next_page_token,
        }))
    }

    async fn get_bill_group(&self, req: Request<pb::GetBillGroupRequest>) -> Res<pb::GetBillGroupResponse> {
        let ctx = caller(&req)?;
        let bg = self.app.bill_group(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::GetBillGroupResponse { bill_group: Some(bill_group_pb(&bg)) }))
    }
}
