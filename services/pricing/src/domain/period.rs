//! Billing periods and anchors: the shared rule of `recur-period`.

pub use recur_period::*;
