//! Coupons on a subscription: redeemed when it is made or by ApplyCoupon,
//! given up by RemoveCoupon. Every redemption is counted per coupon (and
//! kept per subscription and account); the count so far goes to pricing as
//! `coupon_usages`, which refuses an exhausted, expired or archived coupon,
//! and the database raises the count only while it is under the coupon's
//! `max_redemptions`, so concurrent redemptions never pass the limit.
//! ONCE, REPEATING and FOREVER are pricing's to honour at each renewal.

use recur_auth::CallContext;
use recur_error::{AppError, AppResult};

use super::mutate::{Changed, Plan, refused};
use super::{App, Idem};
use crate::domain::state::Action;
use crate::domain::{Event, Subscription, SubscriptionEvent};
use crate::peers::QuoteInput;
use crate::repo::Redemption;

impl App {
    /// What pricing needs to know of `codes`' redemptions, and the
    /// redemptions to record: each code's count so far and its limit. A
    /// code the tenant does not have is INVALID_ARGUMENT on `field(i)`.
    pub(crate) async fn coupon_usages(
        &self,
        ctx: &CallContext,
        codes: &[String],
        field: &(dyn Fn(usize) -> String + Send + Sync),
    ) -> AppResult<(Vec<(String, i32, i32)>, Vec<Redemption>)> {
        if codes.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let counts = self.repo.redemptions(&ctx.tenant_id, codes).await?;
        let mut usages = Vec::with_capacity(codes.len());
        let mut redeem = Vec::with_capacity(codes.len());
        for (i, code) in codes.iter().enumerate() {
            let Some((_, max)) = self.catalog.coupon_terms(ctx, code).await? else {
                return Err(AppError::not_found("coupon", code)
                    .into_invalid_reference()
                    .with_field(field(i), "no such coupon"));
            };
            let so_far = counts.iter().find(|(c, _)| c == code).map(|(_, n)| *n).unwrap_or(0);
            usages.push((code.clone(), i32::try_from(so_far).unwrap_or(i32::MAX), 0));
            redeem.push(Redemption { code: code.clone(), max_redemptions: max });
        }
        Ok((usages, redeem))
    }

    /// What `sub` recurs at with `codes`, checked by pricing (redemption
    /// counts included).
    /// `sub` holding coupon `codes` (their usages as pricing takes them)
    /// from now: its recurring amount priced again, with `event`.
    async fn with_coupons(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        codes: Vec<String>,
        usages: Vec<(String, i32, i32)>,
        event: SubscriptionEvent,
    ) -> AppResult<Plan> {
        let recurring = self.recurring_with(ctx, sub, &codes, usages).await?;
        let now = self.now(&ctx.tenant_id);
        let mut next = sub.clone();
        next.coupon_codes = codes;
        next.recurring_amount = recurring;
        next.updated_at = now;
        Ok(Plan::new(next, None, vec![Event::new(event, now)]))
    }

    async fn recurring_with(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        codes: &[String],
        usages: Vec<(String, i32, i32)>,
    ) -> AppResult<rust_decimal::Decimal> {
        let account = self.account_alone(&ctx.tenant_id, &sub.account_id, "id").await?;
        let quote = self
            .pricing
            .quote(
                ctx,
                &QuoteInput {
                    coupon_codes: codes.to_vec(),
                    coupon_usages: usages,
                    ..QuoteInput::of_contract(sub, &account, true)
                },
            )
            .await
            .map_err(|e| {
                e.map_fields(|f| if f.starts_with("coupon_codes") { "coupon_code".into() } else { f.to_string() })
            })?;
        Ok(quote.offerings.first().map(|o| o.recurring_amount).unwrap_or(sub.recurring_amount))
    }

    pub async fn apply_coupon(&self, ctx: &CallContext, id: &str, code: &str, idem: &Idem) -> AppResult<Changed> {
        if code.is_empty() {
            return Err(AppError::invalid("coupon_code", "is required"));
        }
        self.once(ctx, id, idem, async {
            let sub = self.subscription(&ctx.tenant_id, id).await?;
            sub.state.after(Action::Change).map_err(refused)?;
            if sub.coupon_codes.iter().any(|c| c == code) {
                return Err(AppError::failed_precondition(
                    "COUPON_ALREADY_APPLIED",
                    format!("coupon {code} is already on it"),
                )
                .with_field("coupon_code", "already applied"));
            }
            let (usages, redeem) = self.coupon_usages(ctx, &[code.to_string()], &|_| "coupon_code".into()).await?;
            let mut codes = sub.coupon_codes.clone();
            codes.push(code.to_string());
            let mut all_usages = usages;
            for c in &sub.coupon_codes {
                // Coupons it holds already are not redeemed again.
                all_usages.push((c.clone(), 0, 1));
            }
            let event = SubscriptionEvent::CouponApplied { subscription_id: sub.id.clone(), code: code.to_string() };
            let mut plan = self.with_coupons(ctx, &sub, codes, all_usages, event).await?;
            plan.redeem = redeem;
            self.commit(ctx, Action::Change, idem, plan).await
        })
        .await
    }

    pub async fn remove_coupon(&self, ctx: &CallContext, id: &str, code: &str, idem: &Idem) -> AppResult<Changed> {
        if code.is_empty() {
            return Err(AppError::invalid("coupon_code", "is required"));
        }
        self.once(ctx, id, idem, async {
            let sub = self.subscription(&ctx.tenant_id, id).await?;
            sub.state.after(Action::Change).map_err(refused)?;
            if !sub.coupon_codes.iter().any(|c| c == code) {
                return Err(AppError::failed_precondition("COUPON_NOT_APPLIED", format!("coupon {code} is not on it"))
                    .with_field("coupon_code", "not applied"));
            }
            let codes: Vec<String> = sub.coupon_codes.iter().filter(|c| *c != code).cloned().collect();
            let usages = codes.iter().map(|c| (c.clone(), 0, 1)).collect();
            let event = SubscriptionEvent::CouponRemoved { subscription_id: sub.id.clone(), code: code.to_string() };
            let mut plan = self.with_coupons(ctx, &sub, codes, usages, event).await?;
            plan.release = vec![code.to_string()];
            self.commit(ctx, Action::Change, idem, plan).await
        })
        .await
    }
}
