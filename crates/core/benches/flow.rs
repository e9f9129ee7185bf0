//! The full authorization flow (probe → token) against the in-process
//! authorization server, cold (discovery + registration) and with a kept
//! registration. Prints wall-clock time per flow (client and in-process
//! server together, on loopback) and the HTTP round trips it took, to show
//! the flow makes none the spec doesn't need.
//!
//! Run: `cargo bench -p mcp-auth-core --bench flow`
#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_auth_core::CallbackRouter;
use mcp_auth_core::HeadlessBrowser;
use mcp_auth_core::Http;
use mcp_auth_core::LoopbackListener;
use mcp_auth_core::{Engine, Target};
use mcp_auth_test_support::{Behaviour, FakeServer};

const RUNS: usize = 30;

fn target(server: &FakeServer) -> Target {
    Target {
        name: "bench".to_owned(),
        url: server.mcp_url().parse().unwrap_or_else(|e| panic!("{e}")),
        client_id: None,
        client_secret: None,
        issuer: None,
        scope: None,
        extra_scope: None,
        client_name: "Hermes Agent".to_owned(),
        client_metadata_url: None,
        omit_resource: false,
        timeout: Duration::from_secs(10),
        user_agent: None,
        registration: Default::default(),
    }
}

fn summary(label: &str, mut times: Vec<Duration>, trips: usize, requests: &[String]) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    println!(
        "{label:<28} median {:>6.2} ms  mean {:>6.2} ms  p90 {:>6.2} ms  round trips {trips} ({} + loopback redirect)",
        ms(times[times.len() / 2]),
        mean,
        ms(times[times.len() * 9 / 10]),
        requests.join(", ")
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let http = Http::new().unwrap_or_else(|e| panic!("{e}"));
        let router = CallbackRouter::new();
        let listener = LoopbackListener::bind(0, router.clone()).await.unwrap_or_else(|e| panic!("{e}"));
        let engine = Engine::new(http.clone(), router, Arc::new(HeadlessBrowser::new(http)));
        let redirect = listener.redirect_uri();
        let quiet = |_| {};

        // Cold: a fresh server each time (nothing known, nothing registered).
        let mut cold = Vec::new();
        let mut cold_requests = Vec::new();
        for _ in 0..RUNS {
            let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
            let started = Instant::now();
            engine.authorize(&target(&server), &redirect, None, &quiet).await.unwrap_or_else(|e| panic!("{e}"));
            cold.push(started.elapsed());
            cold_requests = server.log().requests;
        }
        summary("cold (discover + register)", cold, cold_requests.len() + 1, &cold_requests);

        // Warm: the registration kept from the first sign-in is reused.
        let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
        let first = engine.authorize(&target(&server), &redirect, None, &quiet).await.unwrap_or_else(|e| panic!("{e}"));
        let stored = Some((first.client.clone(), first.discovered.issuer.clone()));
        let mut warm = Vec::new();
        let mut before = server.log().requests.len();
        let mut warm_requests = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            engine
                .authorize(&target(&server), &redirect, stored.clone(), &quiet)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            warm.push(started.elapsed());
            let all = server.log().requests;
            warm_requests = all[before..].to_vec();
            before = all.len();
        }
        summary("kept registration", warm, warm_requests.len() + 1, &warm_requests);
    });
}
