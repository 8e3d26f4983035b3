//! The OpenAPI 3.1 document of the client API, served at `/openapi.json`.

use axum::Json;
use serde_json::{Value, json};

fn op(summary: &str, auth: bool, request: Option<&str>, response: &str) -> Value {
    let mut o = json!({
        "summary": summary,
        "responses": {
            "200": { "description": "success", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{response}") } } } },
            "default": { "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ApiError" } } } }
        }
    });
    if auth {
        o["security"] = json!([{ "clientSignature": [] }]);
        // Rate limits (crate::ratelimit) and spam-filter throttling (crate::spam).
        o["responses"]["429"] = json!({
            "description": "rate limited (per device, per user, or per kind of request): wait Retry-After seconds; the message says what was limited",
            "headers": { "Retry-After": { "description": "whole seconds to wait", "schema": { "type": "integer", "minimum": 1 } } },
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ApiError" } } }
        });
    }
    if let Some(r) = request {
        o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{r}") } } } });
    }
    o
}

fn room_param() -> Value {
    json!([{ "name": "room", "in": "path", "required": true, "description": "room URI, percent-encoded (mimi://a.example/r/...)", "schema": { "type": "string" } }])
}

fn b64(desc: &str) -> Value {
    json!({ "type": "string", "contentEncoding": "base64", "description": desc })
}

/// The document.
pub fn spec() -> Value {
    let mut doc = mls_and_blobs();
    signal_channel(&mut doc);
    crate::consent::openapi(&mut doc);
    crate::moderation::openapi(&mut doc);
    doc
}

fn mls_and_blobs() -> Value {
    let with_room = |mut o: Value| {
        o["parameters"] = room_param();
        o
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Entente provider client API",
            "version": "1",
            "description": "How a device talks to its own provider. Requests marked with clientSignature carry `Authorization: Entente client=\"<client URI>\", ts=\"<unix seconds>\", nonce=\"<1-64 chars>\", sig=\"<base64 Ed25519>\"`, the signature by the client's MLS signature key over `entente-api-v1\\n<METHOD>\\n<path and query>\\n<ts>\\n<nonce>\\n<hex SHA-256 of the body>`. Binary values are base64. MIMI messages (KeyMaterialRequest, UpdateRequest, SubmitMessageRequest, FanoutMessage) are draft-ietf-mimi-protocol-06 encodings."
        },
        "paths": {
            "/v1/provider": { "get": op("This provider's domain and client-certificate issuer key", false, None, "ProviderInfo") },
            "/v1/providers/{domain}": { "get": {
                "summary": "Another provider's issuer key, fetched over mutually authenticated TLS",
                "parameters": [{ "name": "domain", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": op("", false, None, "ProviderInfo")["responses"].clone()
            } },
            "/v1/register": { "post": op("Create an account with its first device, or add a device with a link code", false, Some("RegisterRequest"), "RegisterResponse") },
            "/v1/devices/link-code": { "post": op("A one-time code for adding a device", true, None, "LinkCodeResponse") },
            "/v1/devices/{client}": { "delete": {
                "summary": "Revoke a device of your user (a lost one): it can no longer authenticate; its KeyPackages and inbox are deleted",
                "parameters": [{ "name": "client", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": op("", true, None, "Revoked")["responses"].clone()
            } },
            "/v1/key-packages": {
                "get": op("How many KeyPackages the provider holds for this client", true, None, "KeyPackageStatus"),
                "post": op("Upload single-use KeyPackages and a last-resort one", true, Some("UploadKeyPackages"), "KeyPackageStatus")
            },
            "/v1/rooms": { "get": op("The rooms the caller's user is in (for a new device to join them by external commit)", true, None, "UserRooms"), "post": op("Create a room hubbed by this provider: the client has created the MLS group (epoch 0, itself the only member, the room state in its GroupContext) under a room id on this provider's domain", true, Some("CreateRoomCall"), "CreateRoomResponse") },
            "/v1/rooms/{room}/key-material": { "post": with_room(op("Claim KeyPackages of a user through the room's hub (MIMI keyMaterial)", true, Some("KeyMaterialCall"), "KeyMaterialResult")) },
            "/v1/rooms/{room}/group-info": { "post": with_room(op("Claim the room's GroupInfo and ratchet tree for an external join (MIMI groupInfo, section 5.6); the answer is a GroupInfoResponse", true, Some("GroupInfoCall"), "HubAnswer")) },
            "/v1/rooms/{room}/update": { "post": with_room(op("Submit a commit with its Welcome and GroupInfo, or standalone proposals (MIMI update); the hub checks it against MLS and the room policy", true, Some("UpdateCall"), "HubAnswer")) },
            "/v1/rooms/{room}/messages": { "post": with_room(op("Submit an application message (MIMI submitMessage)", true, Some("SubmitCall"), "HubAnswer")) },
            "/v1/rooms/{room}/reports": { "post": with_room(op("Report abusive messages of the room (MIMI reportAbuse, section 5.9): verified here if we hub the room, else relayed to its hub, which checks every message's frank (422 report_refused if one fails, 403 if reportingUser is not you)", true, Some("ReportCall"), "ReportAnswer")) },
            "/v1/inbox": { "get": {
                "summary": "Items waiting for this client, oldest first",
                "security": [{ "clientSignature": [] }],
                "parameters": [
                    { "name": "after", "in": "query", "schema": { "type": "integer", "minimum": 0 } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }
                ],
                "responses": op("", true, None, "InboxPage")["responses"].clone()
            } },
            "/v1/inbox/ack": { "post": op("Delete inbox items up to a sequence number", true, Some("Ack"), "Ack") },
            "/v1/blobs": {
                "get": op("How much of the user's blob quota is used", true, None, "BlobUsage"),
                "post": op("Start uploading an encrypted file (a blob) of an exact size; checks the size limit and the user's quota (413 too_large / quota_exceeded). The answer holds the download URL and a token for the upload requests", true, Some("CreateBlob"), "BlobCreated")
            },
            "/v1/blobs/{id}": {
                "patch": {
                    "summary": "Append bytes to an upload, from the byte given in the Upload-Offset header (409 offset_mismatch if the provider holds a different amount: ask /upload and resume). When the last byte arrives the blob is made durable and the answer carries its SHA-256",
                    "parameters": [
                        { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" } },
                        { "name": "entente-upload-token", "in": "header", "required": true, "schema": { "type": "string" } },
                        { "name": "upload-offset", "in": "header", "required": true, "schema": { "type": "integer", "minimum": 0 } }
                    ],
                    "requestBody": { "required": true, "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                    "responses": op("", false, None, "UploadStatus")["responses"].clone()
                },
                "delete": {
                    "summary": "Delete a blob you uploaded, freeing its quota; answers with your usage afterwards",
                    "security": [{ "clientSignature": [] }],
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": op("", true, None, "BlobUsage")["responses"].clone()
                }
            },
            "/v1/blobs/{id}/upload": { "get": {
                "summary": "How many bytes of an upload the provider holds (where to resume)",
                "parameters": [
                    { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "entente-upload-token", "in": "header", "required": true, "schema": { "type": "string" } }
                ],
                "responses": op("", false, None, "UploadStatus")["responses"].clone()
            } },
            "/v1/blobs/fetch": { "get": {
                "summary": "Download a blob through this provider: its own directly, another provider's through the room's hub (MIMI proxyDownload), so the storing provider never learns the client's address. Honours Range",
                "security": [{ "clientSignature": [] }],
                "parameters": [
                    { "name": "url", "in": "query", "required": true, "description": "the ExternalPart url: https://<domain>/blobs/<id>", "schema": { "type": "string" } },
                    { "name": "via", "in": "query", "required": true, "description": "the domain of the hub of the room the file was sent in", "schema": { "type": "string" } },
                    { "name": "Range", "in": "header", "schema": { "type": "string", "examples": ["bytes=1048576-"] } }
                ],
                "responses": {
                    "200": { "description": "the blob", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                    "206": { "description": "the requested range of the blob" },
                    "default": op("", true, None, "ApiError")["responses"]["default"].clone()
                }
            } },
            "/blobs/{id}": { "get": {
                "summary": "Direct download of a blob (ciphertext; the URL is the capability). Reveals the client's address to this provider: prefer /v1/blobs/fetch. Honours Range; 410 expired, 404 missing or still uploading",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": {
                    "200": { "description": "the blob", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                    "206": { "description": "the requested range of the blob" },
                    "default": op("", false, None, "ApiError")["responses"]["default"].clone()
                }
            } },
            "/v1/inbox/ws": { "get": {
                "summary": "WebSocket: the provider pushes PushFrame JSON text frames; the client sends Ack frames",
                "security": [{ "clientSignature": [] }],
                "parameters": [{ "name": "after", "in": "query", "schema": { "type": "integer", "minimum": 0 } }],
                "responses": { "101": { "description": "switching to WebSocket" } }
            } }
        },
        "components": {
            "securitySchemes": {
                "clientSignature": { "type": "apiKey", "in": "header", "name": "Authorization", "description": "Entente request signature; see info.description" }
            },
            "schemas": {
                "CreateBlob": { "type": "object", "required": ["size"], "properties": {
                    "size": { "type": "integer", "minimum": 0, "description": "exact size of the encrypted blob (ciphertext and tag)" } } },
                "BlobCreated": { "type": "object", "required": ["id", "url", "upload_token", "expires"], "properties": {
                    "id": { "type": "string" }, "url": { "type": "string" }, "upload_token": { "type": "string" },
                    "expires": { "type": "integer", "description": "UNIX seconds when the provider deletes the blob" } } },
                "UploadStatus": { "type": "object", "required": ["offset", "size", "complete"], "properties": {
                    "offset": { "type": "integer" }, "size": { "type": "integer" }, "complete": { "type": "boolean" },
                    "sha256": { "type": "string", "description": "hex SHA-256 of the stored blob, once complete" } } },
                "BlobUsage": { "type": "object", "required": ["used", "quota", "max_blob"], "properties": {
                    "used": { "type": "integer" }, "quota": { "type": "integer" }, "max_blob": { "type": "integer" } } },
                "ApiError": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" }, "retry_after_secs": { "type": "integer" } } },
                "ProviderInfo": { "type": "object", "required": ["domain", "issuer_key"], "properties": {
                    "domain": { "type": "string" }, "issuer_key": b64("Ed25519 public key") } },
                "RegisterRequest": { "type": "object", "required": ["user", "device", "signature_key", "proof"], "properties": {
                    "user": { "type": "string", "examples": ["alice@a.example"] },
                    "device": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" },
                    "signature_key": b64("Ed25519 MLS signature public key"),
                    "proof": b64("signature over `entente-register-v1\\n<client URI>\\n<base64 key>`"),
                    "link_code": { "type": "string" } } },
                "RegisterResponse": { "type": "object", "required": ["client", "certificate"], "properties": {
                    "client": { "type": "string" }, "certificate": b64("client certificate") } },
                "LinkCodeResponse": { "type": "object", "required": ["code", "expires_at"], "properties": {
                    "code": { "type": "string" }, "expires_at": { "type": "integer" } } },
                "UploadKeyPackages": { "type": "object", "required": ["key_packages"], "properties": {
                    "key_packages": { "type": "array", "items": b64("KeyPackage") }, "last_resort": b64("KeyPackage with the last_resort extension") } },
                "KeyPackageStatus": { "type": "object", "required": ["available", "has_last_resort"], "properties": {
                    "available": { "type": "integer" }, "has_last_resort": { "type": "boolean" } } },
                "CreateRoomResponse": { "type": "object", "required": ["room"], "properties": { "room": { "type": "string" } } },
                "KeyMaterialCall": { "type": "object", "required": ["request"], "properties": { "request": b64("MIMI KeyMaterialRequest") } },
                "KeyMaterialResult": { "type": "object", "required": ["response"], "properties": { "response": b64("MIMI KeyMaterialResponse") } },
                "Revoked": { "type": "object", "required": ["revoked"], "properties": { "revoked": { "type": "string" } } },
                "UserRooms": { "type": "object", "required": ["rooms"], "properties": { "rooms": { "type": "array", "items": { "type": "string" } } } },
                "GroupInfoCall": { "type": "object", "required": ["request"], "properties": { "request": b64("MIMI GroupInfoRequest") } },
                "CreateRoomCall": { "type": "object", "required": ["room", "group_info", "ratchet_tree"], "properties": { "room": { "type": "string", "description": "mimi://<this provider's domain>/r/<id>" }, "group_info": b64("MLSMessage carrying the epoch-0 GroupInfo"), "ratchet_tree": b64("the group's ratchet tree") } },
                "UpdateCall": { "type": "object", "required": ["request"], "properties": { "request": b64("MIMI UpdateRequest") } },
                "SubmitCall": { "type": "object", "required": ["request"], "properties": { "request": b64("MIMI SubmitMessageRequest") } },
                "ReportCall": { "type": "object", "required": ["report"], "properties": { "report": b64("MIMI AbuseReport") } },
                "ReportAnswer": { "type": "object", "required": ["status"], "properties": { "status": { "type": "string", "enum": ["accepted"] } } },
                "HubAnswer": { "type": "object", "required": ["response"], "properties": { "response": b64("MIMI UpdateRoomResponse or SubmitMessageResponse") } },
                "InboxItem": { "type": "object", "required": ["seq", "room", "fanout"], "properties": {
                    "seq": { "type": "integer" }, "room": { "type": "string" }, "fanout": b64("MIMI FanoutMessage") } },
                "InboxPage": { "type": "object", "required": ["items"], "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/InboxItem" } } } },
                "Ack": { "type": "object", "required": ["up_to"], "properties": { "up_to": { "type": "integer" } } }
            }
        }
    })
}

/// Adds the Signal channel's routes and schemas (`crate::signal`).
fn signal_channel(doc: &mut Value) {
    let user_param = json!([{ "name": "user", "in": "path", "required": true, "description": "user URI (percent-encoded) or alice@a.example", "schema": { "type": "string" } }]);
    let with_user = |mut o: Value| {
        o["parameters"] = user_param.clone();
        o
    };
    let mut send = op(
        "Send one sealed-sender message to each Signal device of one user. Local recipients get an inbox item with room `entente:sealed` and the sealed bytes as payload; remote ones are queued durably for their provider. Nothing names the sender. 409 MismatchedDevices if the devices listed are not the recipient's current ones (local recipients; for remote ones the bundle claim is the check)",
        true,
        Some("SealedSend"),
        "SealedSendResult",
    );
    send["responses"]["409"] = json!({ "description": "the devices listed are not the recipient's current ones", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/MismatchedDevices" } } } });
    let paths = [
        (
            "/v1/signal/prekeys",
            json!({
                "get": op("How many one-time prekeys (X25519 and ML-KEM) the provider holds for this client, and whether it has a signed and a last-resort ML-KEM prekey. 501 if the provider does not offer the Signal channel", true, None, "PreKeyStatus"),
                "post": op("Publish this device's Signal identity and prekeys: one-time prekeys are added (at most 100 of each kind per upload, 1000 held), a signed or last-resort prekey replaces the previous one; signatures are checked. A changed identity key, registration id or device id replaces everything (409 signed_prekey_required without a signed prekey); 409 device_id_taken, 409 prekey_id_reused", true, Some("PreKeyUpload"), "PreKeyStatus")
            }),
        ),
        (
            "/v1/signal/bundles/{user}",
            json!({ "get": with_user(op("Claim a prekey bundle for each Signal device of a user (at the user's provider for a remote user): each consumes one one-time prekey and one one-time ML-KEM prekey, or the last-resort ML-KEM prekey when those ran out", true, None, "UserBundles")) }),
        ),
        (
            "/v1/capabilities/{user}",
            json!({ "get": with_user(op("What a user's provider offers (MIMI rooms, the Signal channel) and what each of the user's devices speaks (mls10, signal)", true, None, "Capabilities")) }),
        ),
        (
            "/v1/capabilities",
            json!({ "post": op("Declare the protocols this device speaks; answers its capabilities as others see them (signal only with a signed prekey)", true, Some("SetProtocols"), "ClientCapabilities") }),
        ),
        (
            "/v1/signal/sender-certificate",
            json!({ "post": op("A sender certificate for sealed sender, signed by this provider's issuer key; the identity key must be the one the device published (403 identity_mismatch)", true, Some("SenderCertificateRequest"), "SenderCertificateResponse") }),
        ),
        ("/v1/signal/messages", json!({ "post": send })),
    ];
    if let Some(p) = doc["paths"].as_object_mut() {
        for (path, item) in paths {
            p.insert(path.to_owned(), item);
        }
    }
    let key = |desc: &str| b64(desc);
    let schemas = [
        (
            "SignedPreKey",
            json!({ "type": "object", "required": ["id", "public", "signature"], "properties": {
            "id": { "type": "integer", "minimum": 0 }, "public": key("X25519 public key, 33 bytes: 0x05 || u"),
            "signature": key("XEdDSA signature by the identity key over `public`, 64 bytes") } }),
        ),
        (
            "KyberPreKey",
            json!({ "type": "object", "required": ["id", "public", "signature"], "properties": {
            "id": { "type": "integer", "minimum": 0 }, "public": key("ML-KEM-1024 public key, 1569 bytes: key-type byte || 1568 bytes"),
            "signature": key("XEdDSA signature by the identity key over `public`, 64 bytes") } }),
        ),
        (
            "OneTimePreKey",
            json!({ "type": "object", "required": ["id", "public"], "properties": {
            "id": { "type": "integer", "minimum": 0 }, "public": key("X25519 public key, 33 bytes") } }),
        ),
        (
            "PreKeyUpload",
            json!({ "type": "object", "required": ["identity_key", "registration_id", "device_id"], "additionalProperties": false, "properties": {
            "identity_key": key("identity public key, 33 bytes"),
            "registration_id": { "type": "integer", "minimum": 1, "maximum": 16383 },
            "device_id": { "type": "integer", "minimum": 1, "maximum": 127, "description": "unique among the user's devices" },
            "signed_prekey": { "$ref": "#/components/schemas/SignedPreKey" },
            "last_resort_kyber_prekey": { "$ref": "#/components/schemas/KyberPreKey" },
            "one_time_prekeys": { "type": "array", "maxItems": 100, "items": { "$ref": "#/components/schemas/OneTimePreKey" } },
            "kyber_prekeys": { "type": "array", "maxItems": 100, "items": { "$ref": "#/components/schemas/KyberPreKey" } } } }),
        ),
        (
            "PreKeyStatus",
            json!({ "type": "object", "required": ["one_time_prekeys", "kyber_prekeys", "signed_prekey"], "properties": {
            "one_time_prekeys": { "type": "integer" }, "kyber_prekeys": { "type": "integer" },
            "signed_prekey": { "type": "boolean" }, "last_resort_kyber_prekey": { "type": "boolean" } } }),
        ),
        (
            "DeviceBundle",
            json!({ "type": "object", "required": ["client", "device_id", "registration_id", "identity_key", "signed_prekey"], "properties": {
            "client": { "type": "string" }, "device_id": { "type": "integer" }, "registration_id": { "type": "integer" },
            "identity_key": key("identity public key, 33 bytes"),
            "signed_prekey": { "$ref": "#/components/schemas/SignedPreKey" },
            "kyber_prekey": { "$ref": "#/components/schemas/KyberPreKey" },
            "one_time_prekey": { "$ref": "#/components/schemas/OneTimePreKey" } } }),
        ),
        (
            "UserBundles",
            json!({ "type": "object", "required": ["user", "devices"], "properties": {
            "user": { "type": "string" }, "devices": { "type": "array", "items": { "$ref": "#/components/schemas/DeviceBundle" } } } }),
        ),
        (
            "ClientCapabilities",
            json!({ "type": "object", "required": ["client", "protocols"], "properties": {
            "client": { "type": "string" }, "protocols": { "type": "array", "items": { "type": "string", "examples": ["mls10", "signal"] } } } }),
        ),
        (
            "Capabilities",
            json!({ "type": "object", "required": ["user", "provider_rooms", "provider_signal", "clients"], "properties": {
            "user": { "type": "string" }, "provider_rooms": { "type": "boolean" }, "provider_signal": { "type": "boolean" },
            "clients": { "type": "array", "items": { "$ref": "#/components/schemas/ClientCapabilities" } } } }),
        ),
        (
            "SetProtocols",
            json!({ "type": "object", "required": ["protocols"], "properties": {
            "protocols": { "type": "array", "maxItems": 16, "items": { "type": "string", "pattern": "^[a-z0-9.-]{1,32}$" } } } }),
        ),
        (
            "SenderCertificateRequest",
            json!({ "type": "object", "required": ["identity_key"], "properties": {
            "identity_key": key("the identity public key this device published, 33 bytes") } }),
        ),
        (
            "SenderCertificateResponse",
            json!({ "type": "object", "required": ["certificate", "expires_ms"], "properties": {
            "certificate": key("sender certificate"), "expires_ms": { "type": "integer", "description": "milliseconds since the UNIX epoch" } } }),
        ),
        (
            "SealedMessage",
            json!({ "type": "object", "required": ["client", "sealed"], "properties": {
            "client": { "type": "string", "description": "recipient device (client URI)" }, "sealed": key("sealed-sender message, at most 256 KiB") } }),
        ),
        (
            "SealedSend",
            json!({ "type": "object", "required": ["recipient", "messages"], "properties": {
            "recipient": { "type": "string" },
            "messages": { "type": "array", "minItems": 1, "maxItems": 64, "items": { "$ref": "#/components/schemas/SealedMessage" } } } }),
        ),
        (
            "SealedSendResult",
            json!({ "type": "object", "required": ["accepted"], "properties": { "accepted": { "type": "integer" } } }),
        ),
        (
            "MismatchedDevices",
            json!({ "type": "object", "required": ["code", "message", "missing", "stale"], "properties": {
            "code": { "type": "string", "const": "mismatched_devices" }, "message": { "type": "string" },
            "missing": { "type": "array", "items": { "type": "string" } },
            "stale": { "type": "array", "items": { "type": "string" } } } }),
        ),
    ];
    if let Some(s) = doc["components"]["schemas"].as_object_mut() {
        for (name, schema) in schemas {
            s.insert(name.to_owned(), schema);
        }
    }
}

pub async fn document() -> Json<Value> {
    Json(spec())
}
