//! The Signal channel's JSON bodies (client API and federation): decoding and
//! validation never panic, and a body that decodes re-encodes to one that decodes to
//! the same value.
#![no_main]

use entente_wire::ids::UserId;
use entente_wire::signal::{
    Capabilities, MismatchedDevices, PreKeyStatus, PreKeyUpload, SealedDelivery, SealedSend,
    SenderCertificateRequest, SetProtocols, UserBundles,
};
use libfuzzer_sys::fuzz_target;

/// Decodes `data` as `$ty`; if it decodes, checks that it survives re-encoding.
/// (A macro only because this crate has no direct serde dependency for a bound.)
macro_rules! decode {
    ($ty:ty, $data:expr) => {
        serde_json::from_slice::<$ty>($data).ok().inspect(|value| {
            let bytes = serde_json::to_vec(value).expect("encodes");
            let again: $ty = serde_json::from_slice(&bytes).expect("re-decodes");
            assert_eq!(&again, value);
        })
    };
}

fuzz_target!(|data: &[u8]| {
    if let Some(u) = decode!(PreKeyUpload, data) {
        let _ = u.validate();
    }
    if let Some(s) = decode!(SealedSend, data) {
        let _ = s.validate();
    }
    if let Some(d) = decode!(SealedDelivery, data) {
        let _ = d.validate();
    }
    if let Some(b) = decode!(UserBundles, data)
        && let Ok(user) = UserId::parse_any(&b.user)
    {
        let _ = b.validate(&user);
    }
    if let Some(p) = decode!(SetProtocols, data) {
        let _ = p.validate();
    }
    if let Some(r) = decode!(SenderCertificateRequest, data) {
        let _ = r.validate();
    }
    let _ = decode!(PreKeyStatus, data);
    let _ = decode!(Capabilities, data);
    let _ = decode!(MismatchedDevices, data);
});
