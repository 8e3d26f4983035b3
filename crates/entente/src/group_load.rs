//! `entente load-group`: one large room spread over several providers. Starts
//! `--providers` providers on loopback, registers `--members` users round-robin
//! over them (one device each), lets user 0 create a room and add everyone else,
//! waits until every member has joined, then measures how long one message takes
//! to reach every member, from the hub's provider and from another one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use clap::Args;
use entente_client::{Client, ClientOptions, Endpoint, Event};
use entente_core::room::roles;
use entente_testkit::Federation;
use entente_wire::ids::{RoomId, UserId};
use futures::StreamExt;
use hdrhistogram::Histogram;

#[derive(Args)]
pub struct GroupLoadArgs {
    /// Members of the room, the creator included.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Providers the members are spread over (round-robin).
    #[arg(long, default_value_t = 3)]
    providers: usize,
    /// Clients working at the same time (registering, joining, receiving).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Users added per commit. Without it, one commit for everyone is tried
    /// first, and batches of 100 if that fails.
    #[arg(long)]
    batch: Option<usize>,
    /// Give up waiting for a member after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// Peak resident set size of this process (providers included), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn summary(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "-".into();
    }
    format!(
        "p50 {} ms, p95 {} ms, max {} ms (n={})",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.95),
        h.max(),
        h.len()
    )
}

/// Runs `f` over `items` with at most `n` tasks at a time (each on the
/// multi-threaded runtime), returning the results in completion order.
async fn bounded<T, R, F, Fut>(items: Vec<T>, n: usize, f: F) -> Result<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R>> + Send + 'static,
{
    let mut out = Vec::with_capacity(items.len());
    let mut s = futures::stream::iter(items.into_iter().map(|t| tokio::spawn(f(t))))
        .buffer_unordered(n.max(1));
    while let Some(r) = s.next().await {
        out.push(r.context("a task failed")??);
    }
    Ok(out)
}

/// Syncs `c` until a message with `marker` in `room` has arrived; returns when.
async fn wait_for_message(
    c: &mut Client,
    room: &RoomId,
    marker: &str,
    deadline: Instant,
) -> Result<Instant> {
    loop {
        for e in c.sync().await? {
            if let Event::Message(m) = e
                && m.room == *room
                && m.text.as_deref() == Some(marker)
            {
                return Ok(Instant::now());
            }
        }
        ensure!(
            Instant::now() < deadline,
            "{} never got the message",
            c.user()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every client but `skip` waits for `marker`; returns the clients and the
/// latencies from `t0`, and the time until the last one had it.
async fn fan_out(
    clients: Vec<(usize, Client)>,
    room: &RoomId,
    marker: &str,
    t0: Instant,
    concurrency: usize,
    timeout: Duration,
) -> Result<(Vec<(usize, Client)>, Histogram<u64>, Duration)> {
    let deadline = Instant::now() + timeout;
    let room = room.clone();
    let marker = marker.to_owned();
    let done = bounded(clients, concurrency, move |(i, mut c)| {
        let room = room.clone();
        let marker = marker.clone();
        async move {
            let at = wait_for_message(&mut c, &room, &marker, deadline).await?;
            Ok((i, c, at))
        }
    })
    .await?;
    let mut h = Histogram::new(3)?;
    let mut last = t0;
    let mut back = Vec::with_capacity(done.len());
    for (i, c, at) in done {
        let _ = h.record(ms(at.duration_since(t0)));
        last = last.max(at);
        back.push((i, c));
    }
    back.sort_by_key(|(i, _)| *i);
    Ok((back, h, last.duration_since(t0)))
}

pub async fn run(a: GroupLoadArgs) -> Result<()> {
    ensure!(a.members >= 2, "need at least two members");
    ensure!(a.providers >= 1, "need at least one provider");
    let timeout = Duration::from_secs(a.timeout_secs);
    let domains: Vec<String> = (0..a.providers).map(|i| format!("p{i}.example")).collect();

    // The providers get a runtime (and threads) of their own, as in `entente load`.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let doms = domains.clone();
    let providers = std::thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("provider")
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let names: Vec<&str> = doms.iter().map(String::as_str).collect();
            let fed = Federation::start(&names).await?;
            let eps = names
                .iter()
                .map(|d| fed.endpoint(d))
                .collect::<Result<Vec<_>>>()?;
            let _ = ready_tx.send((fed.root().to_owned(), eps));
            let _ = stop_rx.await;
            fed.shutdown().await;
            Ok(())
        })
    });
    let result = drive(&a, &domains, timeout, ready_rx).await;
    let _ = stop_tx.send(());
    providers
        .join()
        .map_err(|_| anyhow!("the provider thread panicked"))??;
    result
}

async fn drive(
    a: &GroupLoadArgs,
    domains: &[String],
    timeout: Duration,
    ready_rx: tokio::sync::oneshot::Receiver<(PathBuf, Vec<Endpoint>)>,
) -> Result<()> {
    let (root, eps) = ready_rx.await.context("the providers did not start")?;
    let n = a.members;
    let p = domains.len();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| {
        eprintln!("  {k}: {v}");
        rows.push((k.to_owned(), v));
    };
    row(
        "setup",
        format!(
            "{n} members over {p} providers, concurrency {}",
            a.concurrency
        ),
    );

    // 1. Registration.
    eprintln!("registering {n} users...");
    let t = Instant::now();
    let specs: Vec<(usize, UserId, ClientOptions)> = (0..n)
        .map(|i| {
            let user: UserId = format!("u{i}@{}", domains[i % p]).parse()?;
            let opts = ClientOptions {
                data_dir: root.join("clients").join(format!("u{i}")),
                endpoint: eps[i % p].clone(),
            };
            Ok((i, user, opts))
        })
        .collect::<Result<_>>()?;
    let mut reg_h = Histogram::<u64>::new(3)?;
    let mut clients = bounded(specs, a.concurrency, |(i, user, opts)| async move {
        let t = Instant::now();
        let c = Client::register(opts, &user, "d", None)
            .await
            .with_context(|| format!("registering {user}"))?;
        Ok((i, c, t.elapsed()))
    })
    .await?;
    clients.sort_by_key(|(i, _, _)| *i);
    for (_, _, d) in &clients {
        let _ = reg_h.record(ms(*d));
    }
    row(
        "registration",
        format!(
            "{:.1} s total; per user {}",
            t.elapsed().as_secs_f64(),
            summary(&reg_h)
        ),
    );
    let mut clients: Vec<(usize, Client)> = clients.into_iter().map(|(i, c, _)| (i, c)).collect();
    let (_, mut owner) = clients.remove(0);
    let others: Vec<UserId> = clients.iter().map(|(_, c)| c.user().clone()).collect();

    // 2. The room, and everyone added.
    let room = owner.create_room_named("Big room").await?;
    let t_invite = Instant::now();
    let mut batch = a.batch.unwrap_or(others.len()).max(1);
    let mut done = 0;
    let mut commit_h = Histogram::<u64>::new(3)?;
    while done < others.len() {
        let end = (done + batch).min(others.len());
        eprintln!("adding users {}..{} in one commit...", done + 1, end);
        let t = Instant::now();
        match owner
            .invite_many(&room, &others[done..end], roles::MEMBER)
            .await
        {
            Ok(()) => {
                let d = t.elapsed();
                let _ = commit_h.record(ms(d));
                eprintln!("  {} users in {:.2} s", end - done, d.as_secs_f64());
                done = end;
            }
            Err(e) if a.batch.is_none() && batch > 100 => {
                row(
                    "single commit of all",
                    format!("failed after {:.1} s: {e}", t.elapsed().as_secs_f64()),
                );
                batch = 100;
            }
            Err(e) => return Err(e).context("adding members"),
        }
    }
    let epoch = owner
        .rooms()?
        .into_iter()
        .find(|r| r.room == room)
        .map(|r| r.epoch)
        .context("the owner is not in the room")?;
    row(
        "add commits",
        format!(
            "{} commit(s) of up to {batch} users, {:.1} s total; per commit {}",
            commit_h.len(),
            t_invite.elapsed().as_secs_f64(),
            summary(&commit_h)
        ),
    );

    // 3. Everyone joins (and catches up to the last epoch).
    eprintln!("{} members joining...", clients.len());
    let t_join = Instant::now();
    let deadline = Instant::now() + timeout;
    let r2 = room.clone();
    let mut joined = bounded(clients, a.concurrency, move |(i, mut c)| {
        let room = r2.clone();
        async move {
            let t = Instant::now();
            let mut in_room = false;
            loop {
                for e in c.sync().await? {
                    if let Event::Joined { room: r, .. } = e
                        && r == room
                    {
                        in_room = true;
                    }
                }
                if in_room
                    && c.rooms()?
                        .iter()
                        .any(|r| r.room == room && r.epoch >= epoch)
                {
                    break;
                }
                ensure!(Instant::now() < deadline, "{} never joined", c.user());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok((i, c, t.elapsed(), Instant::now()))
        }
    })
    .await?;
    let all_joined = t_join.elapsed();
    joined.sort_by_key(|(i, _, _, _)| *i);
    let mut join_h = Histogram::<u64>::new(3)?;
    let mut since_h = Histogram::<u64>::new(3)?;
    for (_, _, d, at) in &joined {
        let _ = join_h.record(ms(*d));
        let _ = since_h.record(ms(at.duration_since(t_join)));
    }
    row(
        "all joined",
        format!(
            "{:.1} s for {} members; per join (sync+Welcome+catch-up) {}",
            all_joined.as_secs_f64(),
            joined.len(),
            summary(&join_h)
        ),
    );
    let clients: Vec<(usize, Client)> = joined.into_iter().map(|(i, c, _, _)| (i, c)).collect();

    // 4. The owner (on the hub's provider) sends.
    let marker = format!("hello from the owner {}", hex::encode(rand_tag()));
    let t0 = Instant::now();
    owner.send_text(&room, &marker, false).await?;
    let accepted = t0.elapsed();
    let (mut clients, h, last) =
        fan_out(clients, &room, &marker, t0, a.concurrency, timeout).await?;
    row(
        "fan-out from owner",
        format!(
            "hub accepted in {} ms; last of {} recipients after {:.2} s; per recipient {}",
            ms(accepted),
            h.len(),
            last.as_secs_f64(),
            summary(&h)
        ),
    );

    // 5. A member of another provider sends; everyone else, the owner included,
    // receives it.
    let pos = clients.iter().position(|(i, _)| i % p != 0).unwrap_or(0);
    let (si, mut sender) = clients.remove(pos);
    let marker = format!("hello from {} {}", sender.user(), hex::encode(rand_tag()));
    sender.sync().await?;
    let t0 = Instant::now();
    sender.send_text(&room, &marker, false).await?;
    let accepted = t0.elapsed();
    clients.push((0, owner));
    let (_clients, h, last) = fan_out(clients, &room, &marker, t0, a.concurrency, timeout).await?;
    row(
        "fan-out from member",
        format!(
            "u{si}@{} sent; hub accepted in {} ms; last of {} recipients after {:.2} s; per recipient {}",
            domains[si % p],
            ms(accepted),
            h.len(),
            last.as_secs_f64(),
            summary(&h)
        ),
    );
    row("peak RSS (VmHWM)", format!("{:.0} MiB", peak_rss_mib()));

    println!("\nload-group: {n} members, {p} providers");
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &rows {
        println!("{k:<w$}  {v}");
    }
    Ok(())
}

fn rand_tag() -> [u8; 4] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos.to_be_bytes()
}
