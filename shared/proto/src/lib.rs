//! Recur's wire types: the code generated from `proto/`, one module per
//! package, and the encoded descriptor set that server reflection serves.

#![allow(clippy::all, missing_docs)]

/// The encoded `FileDescriptorSet` of every Recur proto file.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/recur_descriptor.bin"));

pub mod common {
    pub mod v1 {
        tonic::include_proto!("recur.common.v1");
    }
}
pub mod catalog {
    pub mod v1 {
        tonic::include_proto!("recur.catalog.v1");
    }
}
pub mod pricing {
    pub mod v1 {
        tonic::include_proto!("recur.pricing.v1");
    }
}
pub mod payment {
    pub mod v1 {
        tonic::include_proto!("recur.payment.v1");
    }
}
pub mod subscription {
    pub mod v1 {
        tonic::include_proto!("recur.subscription.v1");
    }
}
pub mod signup {
    pub mod v1 {
        tonic::include_proto!("recur.signup.v1");
    }
}

pub mod cards;
pub mod codec;
pub mod convert;
pub mod fields;
pub mod limits;
