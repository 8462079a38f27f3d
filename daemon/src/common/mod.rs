//! What veild and veilctl both use: configuration, the clock, the store,
//! and the rules the verification pipeline applies.

pub mod clock;
pub mod config;
pub mod crypt;
pub mod files;
pub mod fresh;
pub mod ledger;
pub mod pairs;
pub mod password;
pub mod peer;
pub mod policy;
pub mod quality;
pub mod recovery;
pub mod rollout;
pub mod shadow;
pub mod source;
pub mod store;
pub mod totp;
pub mod verify;
pub mod version;
