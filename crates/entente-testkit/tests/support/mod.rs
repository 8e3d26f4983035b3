//! Helpers shared by the file tests: a three-provider room, test files and their
//! hashes.

#![allow(dead_code, reason = "each test binary uses part of this")]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use entente_client::files::FileMessage;
use entente_client::{Client, Event};
use entente_testkit::Federation;
use entente_wire::ids::RoomId;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// How long a test waits for anything to arrive.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Three providers; alice@a.example hubs a room that bob@b.example and
/// carol@c.example have joined.
pub struct Room {
    pub fed: Federation,
    pub alice: Client,
    pub bob: Client,
    pub carol: Client,
    pub room: RoomId,
}

impl Room {
    pub async fn start(name: &str) -> Result<Self> {
        let fed = Federation::start(&["a.example", "b.example", "c.example"]).await?;
        let mut alice = fed.register("alice@a.example", "laptop").await?;
        let mut bob = fed.register("bob@b.example", "laptop").await?;
        let mut carol = fed.register("carol@c.example", "laptop").await?;
        let room = alice.create_room_named(name).await?;
        alice.invite(&room, bob.user()).await?;
        alice.invite(&room, carol.user()).await?;
        for c in [&mut bob, &mut carol] {
            sync_until(c, "joining", |ev| {
                ev.iter().any(|e| matches!(e, Event::Joined { .. }))
            })
            .await?;
        }
        Ok(Self {
            fed,
            alice,
            bob,
            carol,
            room,
        })
    }
}

/// Syncs until `done` holds for the events seen so far.
pub async fn sync_until(
    client: &mut Client,
    what: &str,
    done: impl Fn(&[Event]) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    let mut events = Vec::new();
    loop {
        events.extend(client.sync().await?);
        if done(&events) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} timed out waiting for {what}: {events:?}", client.id());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Writes `dir/name` with `size` pseudo-random bytes; returns its path and SHA-256.
pub fn random_file(dir: &Path, name: &str, size: u64, seed: u64) -> Result<(PathBuf, [u8; 32])> {
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
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
    Ok((path, h.finalize().into()))
}

/// SHA-256 of a file, read in pieces.
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
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

/// Syncs until `client` has the file message `id`.
pub async fn received(client: &mut Client, room: &RoomId, id: [u8; 32]) -> Result<FileMessage> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        client.sync().await?;
        if let Some(f) = client
            .files(Some(room))?
            .into_iter()
            .find(|f| f.message_id == id)
        {
            return Ok(f);
        }
        if Instant::now() > deadline {
            bail!("{} never received the file", client.id());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
