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

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use entente_client::Event;
use entente_client::files::{NoProgress, Route, SendFileOptions};
use entente_testkit::Federation;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

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

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_passes_in_bounded_memory() -> Result<()> {
    let size: u64 = std::env::var("ENTENTE_FILE_TEST_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let fed = Federation::start(&["a.example", "b.example", "c.example"]).await?;
    let mut alice = fed.register("alice@a.example", "laptop").await?;
    let mut bob = fed.register("bob@b.example", "laptop").await?;
    let mut carol = fed.register("carol@c.example", "laptop").await?;
    let room = alice.create_room_named("Big").await?;
    alice.invite(&room, bob.user()).await?;
    alice.invite(&room, carol.user()).await?;
    for c in [&mut bob, &mut carol] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c
            .sync()
            .await?
            .iter()
            .any(|e| matches!(e, Event::Joined { .. }))
        {
            if Instant::now() > deadline {
                bail!("{} did not join", c.id());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.bin");
    let digest = {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill_bytes(&mut buf[..n]);
            f.write_all(&buf[..n])?;
            h.update(&buf[..n]);
            left -= n as u64;
        }
        f.flush()?;
        <[u8; 32]>::from(h.finalize())
    };
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
    let deadline = Instant::now() + Duration::from_secs(30);
    let file = loop {
        carol.sync().await?;
        if let Some(f) = carol
            .files(Some(&room))?
            .into_iter()
            .find(|f| f.message_id == sent.message_id)
        {
            break f;
        }
        if Instant::now() > deadline {
            bail!("carol never received the file");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
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
