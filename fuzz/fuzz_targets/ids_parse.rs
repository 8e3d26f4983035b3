//! Fuzzes the MIMI identifier parsers: they must never panic, and whatever they accept
//! must print in a canonical form that parses back to the same value.
#![no_main]

use entente_wire::ids::{ClientId, Domain, RoomId, UserId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(domain) = Domain::parse(text) {
        assert_eq!(Domain::parse(domain.as_str()).as_ref(), Ok(&domain));
    }
    if let Ok(user) = UserId::parse_any(text) {
        assert_eq!(UserId::parse_uri(&user.to_uri()).as_ref(), Ok(&user));
        assert_eq!(UserId::parse_handle(&user.handle()).as_ref(), Ok(&user));
    }
    if let Ok(client) = ClientId::parse_uri(text) {
        assert_eq!(ClientId::parse_uri(&client.to_uri()).as_ref(), Ok(&client));
    }
    if let Ok(room) = RoomId::parse_uri(text) {
        assert_eq!(RoomId::parse_uri(&room.to_uri()).as_ref(), Ok(&room));
    }
});
