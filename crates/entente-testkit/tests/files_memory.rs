//! A 1 GiB file passes from sender to recipient across three providers (the
//! sender's, the hub, the recipient's) in bounded memory. Everything runs in this
//! one process (its own test binary, so no other test shares it), so the peak
//! resident set measured here bounds every party at once.
//!
//! `ENTENTE_FILE_TEST_BYTES` changes the size (for a quick run).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests"
)]

use std::sync::Arc;

use anyhow::Result;
use entente_client::files::{NoProgress, Route, SendFileOptions};

mod support;

use support::{random_file, received, sha256_file};

/// Peak resident set of this process, in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_passes_in_bounded_memory() -> Result<()> {
    let size: u64 = std::env::var("ENTENTE_FILE_TEST_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let support::Room {
        fed,
        mut carol,
        mut bob,
        room,
        ..
    } = support::Room::start("Big").await?;
    let dir = tempfile::tempdir()?;
    let (path, digest) = random_file(dir.path(), "big.bin", size, 1)?;
    let before = peak_rss();

    let sent = bob
        .send_file(
            &room,
            &path,
            &SendFileOptions::default(),
            Arc::new(NoProgress),
        )
        .await?;
    std::fs::remove_file(&path)?;
    let file = received(&mut carol, &room, sent.message_id).await?;
    let got = carol
        .download_file(&file, dir.path(), Route::ViaHub, Arc::new(NoProgress))
        .await?;
    assert_eq!(sha256_file(&got.path)?, digest);
    let after = peak_rss();
    eprintln!(
        "{size} bytes: peak RSS {} MiB before the transfer, {} MiB after",
        before >> 20,
        after >> 20
    );
    // Sender, three providers and recipient together, with the test harness.
    assert!(
        after < 100 << 20,
        "peak resident set {} MiB for a {} MiB file",
        after >> 20,
        size >> 20
    );
    fed.shutdown().await;
    Ok(())
}
