//! Entente calls: the media half.
//!
//! Everything here moves opaque media frames; end-to-end encryption of those frames
//! (SFrame keyed from the room's MLS epoch) happens in `entente-client` before a frame
//! reaches a [`peer::Peer`], so nothing in this crate ever sees call plaintext of a
//! group call. Signalling (offer, answer, ICE candidates, hang-up) travels as
//! end-to-end encrypted MIMI content and is also the client's business.
//!
//! - [`audio`]: WAV files in and out, Opus encoding and decoding (48 kHz mono, 20 ms
//!   frames), and the cross-correlation the tests use to compare audio.
//! - [`peer`]: one WebRTC endpoint (str0m: ICE, DTLS-SRTP) with one sending audio
//!   track and any number of receiving ones, over UDP and optionally a TURN relay.
//! - [`session`]: a call's audio through a peer: a WAV sent in real time, what
//!   arrives recorded per source, with a frame-protection hook for SFrame.
//! - [`relay`]: a TURN client (RFC 8656) that gives a device a relayed address.
//! - [`turn_server`]: the provider's TURN server, with time-limited credentials.
//! - [`sfu`]: the provider's selective forwarding unit for group calls.
#![forbid(unsafe_code)]

pub mod audio;
pub mod peer;
pub mod relay;
pub mod session;
pub mod sfu;
pub mod turn_server;
