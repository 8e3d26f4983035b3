//! The provider serves an OpenAPI document that describes every client API route,
//! operator metrics, and JSON errors for unknown endpoints.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use entente_testkit::Federation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_every_route() {
    let fed = Federation::start(&["a.example"]).await.unwrap();
    let ep = fed.endpoint("a.example").unwrap();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured((*ep.tls).clone())
        .resolve("a.example", ep.address.unwrap())
        .build()
        .unwrap();
    let doc: serde_json::Value = http
        .get("https://a.example/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/provider",
        "/v1/providers/{domain}",
        "/v1/register",
        "/v1/devices/link-code",
        "/v1/key-packages",
        "/v1/rooms",
        "/v1/rooms/{room}/key-material",
        "/v1/rooms/{room}/update",
        "/v1/rooms/{room}/messages",
        "/v1/inbox",
        "/v1/inbox/ack",
        "/v1/inbox/ws",
        "/v1/blobs",
        "/v1/blobs/{id}",
        "/v1/blobs/{id}/upload",
        "/v1/blobs/fetch",
        "/blobs/{id}",
    ] {
        assert!(paths.contains_key(p), "OpenAPI document lacks {p}");
    }
    // Every schema reference resolves.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    // Operators get counters at /metrics (loopback only).
    let metrics = http.get("https://a.example/metrics").send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("entente_messages_accepted_total 0"), "{text}");
    // Unknown endpoints answer with a JSON error that points to the document.
    let missing = http.get("https://a.example/v1/nope").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let err: serde_json::Value = missing.json().await.unwrap();
    assert!(err["message"].as_str().unwrap().contains("/openapi.json"));
    fed.shutdown().await;
}
