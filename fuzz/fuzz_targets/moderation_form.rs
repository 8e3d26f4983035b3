//! The moderators' web page: form bodies, the Cookie header and HTML escaping.
#![no_main]
use entente_wire::moderation::form::{cookie, escape, parse_form};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(form) = parse_form(data) {
        for name in [
            "token",
            "moderator",
            "csrf",
            "action",
            "target",
            "reason",
            "report",
        ] {
            let escaped = escape(form.get(name));
            assert!(!escaped.contains('<') && !escaped.contains('"'));
        }
    }
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = cookie(header, "__Host-entente-mod");
    }
});
