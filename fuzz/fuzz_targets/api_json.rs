//! Client API request bodies (JSON) and push frames.
#![no_main]
use entente_wire::api::{Ack, KeyMaterialCall, PushFrame, RegisterRequest, SubmitCall, UpdateCall, UploadKeyPackages};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<RegisterRequest>(data);
    let _ = serde_json::from_slice::<UploadKeyPackages>(data);
    let _ = serde_json::from_slice::<KeyMaterialCall>(data);
    let _ = serde_json::from_slice::<UpdateCall>(data);
    let _ = serde_json::from_slice::<SubmitCall>(data);
    let _ = serde_json::from_slice::<Ack>(data);
    let _ = serde_json::from_slice::<PushFrame>(data);
});
