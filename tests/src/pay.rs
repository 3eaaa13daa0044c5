//! Small helpers the payment tests share: amounts, charges and lookups
//! through the gateway's gRPC client.

use recur_proto::common::v1::Money;
use recur_proto::payment::v1 as pay;

use crate::Clients;

/// `amount` US dollars, as the API takes money.
pub fn usd(amount: &str) -> Option<Money> {
    Some(Money { currency_code: "USD".into(), amount: amount.into() })
}

pub fn status(p: &pay::Payment) -> pay::PaymentStatus {
    pay::PaymentStatus::try_from(p.status).unwrap_or(pay::PaymentStatus::Unspecified)
}

/// A charge of `amount` USD to `customer`'s default method under `key`.
pub fn charge_req(customer: &str, amount: &str, key: &str) -> pay::ChargeRequest {
    pay::ChargeRequest {
        customer_id: customer.into(),
        amount: usd(amount),
        idempotency_key: key.into(),
        ..Default::default()
    }
}

/// [`charge_req`], sent; panics unless the call succeeds.
pub async fn charge(c: &mut Clients, customer: &str, amount: &str, key: &str) -> pay::Payment {
    c.payments
        .charge(charge_req(customer, amount, key))
        .await
        .unwrap_or_else(|e| panic!("charge: {e}"))
        .into_inner()
        .payment
        .expect("payment")
}

pub async fn get_payment(c: &mut Clients, id: &str) -> pay::Payment {
    c.payments
        .get_payment(pay::GetPaymentRequest { id: id.into() })
        .await
        .expect("get")
        .into_inner()
        .payment
        .expect("payment")
}
