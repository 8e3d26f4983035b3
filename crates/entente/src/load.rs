//! `entente load`: a load driver. Starts two providers on loopback, creates pairs
//! of users (senders on a.example, receivers on b.example), and pushes messages
//! from every sender to its receiver concurrently. Reports end-to-end throughput
//! and the latency from the start of `send` until the receiver has decrypted and
//! stored the message (p50/p99), and the hub-acceptance latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Args;
use entente_client::{Client, ClientOptions, Event};
use entente_testkit::Federation;
use entente_wire::ids::UserId;
use hdrhistogram::Histogram;
use tokio::sync::Mutex;

#[derive(Args)]
pub struct LoadArgs {
    /// Messages in total.
    #[arg(long, default_value_t = 2000)]
    messages: u64,
    /// Concurrent sender/receiver pairs.
    #[arg(long, default_value_t = 16)]
    pairs: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: LoadArgs) -> Result<()> {
    ensure!(
        a.pairs > 0 && a.messages >= a.pairs,
        "need at least one message per pair"
    );
    // The providers get a runtime (and threads) of their own, so the clients' work
    // in this process does not run on the providers' executor.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let providers = std::thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("provider")
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let fed = Federation::start(&["a.example", "b.example"]).await?;
            let opts = (
                fed.root().to_owned(),
                fed.endpoint("a.example")?,
                fed.endpoint("b.example")?,
            );
            let _ = ready_tx.send(opts);
            let _ = stop_rx.await;
            fed.shutdown().await;
            Ok(())
        })
    });
    let (root, ep_a, ep_b) = ready_rx.await.context("the providers did not start")?;
    let options = |ep: &entente_client::Endpoint, name: &str| ClientOptions {
        data_dir: root.join("clients").join(name),
        endpoint: ep.clone(),
    };
    let per_pair = a.messages / a.pairs;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    eprintln!("setting up {} pairs...", a.pairs);
    for i in 0..a.pairs {
        let s_id: UserId = format!("sender{i}@a.example").parse()?;
        let r_id: UserId = format!("receiver{i}@b.example").parse()?;
        let mut s = Client::register(options(&ep_a, &format!("s{i}")), &s_id, "d", None).await?;
        let mut r = Client::register(options(&ep_b, &format!("r{i}")), &r_id, "d", None).await?;
        let room = s.start_chat(&r_id).await?;
        r.sync().await?;
        senders.push((s, room));
        receivers.push(r);
    }
    let sent_at: Arc<Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let e2e: Arc<std::sync::Mutex<Histogram<u64>>> =
        Arc::new(std::sync::Mutex::new(Histogram::new(3)?));
    let accept: Arc<std::sync::Mutex<Histogram<u64>>> =
        Arc::new(std::sync::Mutex::new(Histogram::new(3)?));
    eprintln!("sending {} messages...", per_pair * a.pairs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut r in receivers {
        let sent_at = sent_at.clone();
        let e2e = e2e.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0u64;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let mut tx = Some(tx);
            let mut pending = Vec::new();
            r.listen(
                |e| {
                    if let Event::Message(m) = e {
                        pending.push((m.text.clone().unwrap_or_default(), Instant::now()));
                        got += 1;
                        if got >= per_pair
                            && let Some(t) = tx.take()
                        {
                            let _ = t.send(());
                        }
                    }
                },
                async {
                    let _ = tokio::time::timeout(Duration::from_secs(600), rx).await;
                },
            )
            .await?;
            let map = sent_at.lock().await;
            let mut h = e2e.lock().unwrap_or_else(|p| p.into_inner());
            for (text, at) in pending {
                if let Some(s) = map.get(&text) {
                    let _ = h.record(at.duration_since(*s).as_micros() as u64);
                }
            }
            anyhow::Ok(got)
        }));
    }
    let mut send_tasks = Vec::new();
    for (i, (mut s, room)) in senders.into_iter().enumerate() {
        let sent_at = sent_at.clone();
        let accept = accept.clone();
        send_tasks.push(tokio::spawn(async move {
            for j in 0..per_pair {
                let text = format!("load {i} {j}");
                let t0 = Instant::now();
                sent_at.lock().await.insert(text.clone(), t0);
                s.send_text(&room, &text, false).await?;
                let _ = accept
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(t0.elapsed().as_micros() as u64);
            }
            anyhow::Ok(())
        }));
    }
    for t in send_tasks {
        t.await.context("sender task")??;
    }
    let mut received = 0;
    for t in tasks {
        received += t.await.context("receiver task")??;
    }
    let elapsed = start.elapsed();
    let e2e = e2e.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let accept = accept.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let rate = received as f64 / elapsed.as_secs_f64();
    let ms = |v: u64| v as f64 / 1000.0;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "messages": received, "pairs": a.pairs, "seconds": elapsed.as_secs_f64(), "messages_per_second": rate,
                "e2e_p50_ms": ms(e2e.value_at_quantile(0.5)), "e2e_p99_ms": ms(e2e.value_at_quantile(0.99)),
                "accept_p50_ms": ms(accept.value_at_quantile(0.5)), "accept_p99_ms": ms(accept.value_at_quantile(0.99)),
            })
        );
    } else {
        println!(
            "messages delivered end to end: {received} in {:.2} s = {rate:.0} msg/s",
            elapsed.as_secs_f64()
        );
        println!(
            "send -> receiver decrypted: p50 {:.1} ms, p99 {:.1} ms",
            ms(e2e.value_at_quantile(0.5)),
            ms(e2e.value_at_quantile(0.99))
        );
        println!(
            "send -> hub accepted:       p50 {:.1} ms, p99 {:.1} ms",
            ms(accept.value_at_quantile(0.5)),
            ms(accept.value_at_quantile(0.99))
        );
    }
    let _ = stop_tx.send(());
    providers
        .join()
        .map_err(|_| anyhow::anyhow!("the provider thread panicked"))??;
    ensure!(
        received == per_pair * a.pairs,
        "lost messages: {received} of {}",
        per_pair * a.pairs
    );
    Ok(())
}
