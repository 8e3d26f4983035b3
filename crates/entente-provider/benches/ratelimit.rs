//! The rate limiter's cost per request: one bucket (sans IO), and the sharded
//! limiter with one hot key, many keys, and from several threads at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use entente_provider::ratelimit::{Bucket, Class, Limiter, Rate, RateLimitConfig};

fn bench(c: &mut Criterion) {
    let generous = RateLimitConfig::uniform(Rate::new(1e9, 1_000_000_000));
    c.bench_function("bucket_take", |b| {
        let mut bucket = Bucket::new(Rate::new(1e9, 1_000_000));
        let mut t = 0u64;
        b.iter(|| {
            t += 1;
            black_box(bucket.take(Duration::from_nanos(t)))
        })
    });
    c.bench_function("limiter_check_one_key", |b| {
        let l = Limiter::new(generous.clone());
        b.iter(|| black_box(l.check(Class::Client, "mimi://a.example/d/alice/phone")))
    });
    c.bench_function("limiter_check_10k_keys", |b| {
        let l = Limiter::new(generous.clone());
        let keys: Vec<String> = (0..10_000)
            .map(|i| format!("mimi://a.example/d/user{i}/phone"))
            .collect();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(l.check(Class::Client, &keys[i]))
        })
    });
    // What a client API request pays: device, user and a class bucket.
    c.bench_function("limiter_client_request_3_buckets", |b| {
        let l = Limiter::new(generous.clone());
        b.iter(|| {
            l.check(Class::Client, "mimi://a.example/d/alice/phone")
                .unwrap();
            l.check(Class::User, "mimi://a.example/u/alice").unwrap();
            black_box(l.check(Class::Messages, "mimi://a.example/u/alice"))
        })
    });
    c.bench_function("limiter_check_4_threads_contended", |b| {
        let l = Arc::new(Limiter::new(generous.clone()));
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let l = l.clone();
                    std::thread::spawn(move || {
                        let key = format!("k{}", t % 2);
                        for _ in 0..iters {
                            black_box(l.check(Class::Client, &key).ok());
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            // Per request: wall time over all requests of all threads.
            start.elapsed() / 4
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
