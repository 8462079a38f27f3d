//! The veil wire protocol, shared by `pam_veil.so`, `veild` and the tests.
//!
//! One Unix stream connection carries one request frame and one response
//! frame. A frame is a 4-byte big-endian length and a JSON body. The daemon
//! only ever answers with one of two fixed byte strings, [`ALLOW`] or
//! [`DENY`], so a response can carry no reason.
#![forbid(unsafe_code)]

pub mod client;
pub mod codec;
pub mod monotonic;
pub mod one_prompt;
pub mod process;
pub mod proto;
pub mod sanitize;
pub mod self_service;
pub mod session;

pub use client::{ClientError, SelfOutcome, ask, ask_self};
pub use codec::{DecodeError, FrameReader, decode_request, encode_request};
pub use proto::{
    ALLOW, DEFAULT_SOCKET, DENY, LEN_PREFIX, MAX_FIELD_LEN, MAX_REQUEST, PROTOCOL_VERSION,
    REPLY_CAP, Reply, ReplyState, Request, Secret, Verdict,
};
