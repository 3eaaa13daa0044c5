//! The pricing engine: pure functions of prices, quantities, dates and tax
//! rules. No I/O, no wire types.

pub mod coupon;
pub mod period;
pub mod proration;
pub mod quote;
pub mod rating;
pub mod tax;
