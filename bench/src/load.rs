//! A small HTTP/1.1 load generator: persistent connections, closed loop for the peak rate and
//! open loop (latency from the intended send time, so a stalled server is not hidden) for
//! latency at a fixed rate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Builds the `n`th request of connection `connection`.
pub type MakeRequest = Arc<dyn Fn(usize, u64) -> (Method, String, Option<String>) + Send + Sync>;

pub struct Outcome {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn millis(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

pub(crate) struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    token: Option<Arc<str>>,
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr, token: Option<Arc<str>>) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender, addr, token })
    }

    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<StatusCode> {
        let mut request = Request::builder().method(method).uri(path).header("host", self.addr.to_string());
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}

/// One request on a connection of its own, for setting up a benchmark.
pub async fn send_once(
    addr: SocketAddr,
    token: Option<Arc<str>>,
    method: Method,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut connection = Connection::open(addr, token).await?;
    let mut request = Request::builder().method(method).uri(path).header("host", addr.to_string());
    if let Some(token) = &connection.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let response = connection
        .sender
        .send_request(request.body(Full::new(Bytes::from(body.unwrap_or_default())))?)
        .await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

/// Posts JSON and returns the `id` of what was created.
pub async fn create(
    addr: SocketAddr,
    token: Option<Arc<str>>,
    path: &str,
    body: String,
) -> anyhow::Result<String> {
    let (status, answer) = send_once(addr, token, Method::POST, path, Some(body)).await?;
    anyhow::ensure!(
        status.is_success(),
        "POST {path} answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    let created: serde_json::Value = serde_json::from_slice(&answer)?;
    Ok(created["id"].as_str().unwrap_or_default().to_owned())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// As many requests as `connections` connections can make, each waiting for its answer.
pub async fn closed_loop(
    addr: SocketAddr,
    token: Option<Arc<str>>,
    connections: usize,
    duration: Duration,
    make: MakeRequest,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for index in 0..connections {
        let make = make.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(addr, token).await?;
            let mut latency = histogram();
            let (mut requests, mut errors) = (0u64, 0u64);
            while Instant::now() < deadline {
                let (method, path, body) = make(index, requests + errors);
                let sent = Instant::now();
                match connection.send(method, &path, body).await {
                    Ok(status) if status.is_success() => requests += 1,
                    _ => errors += 1,
                }
                latency.record(sent.elapsed().as_micros().max(1) as u64)?;
            }
            anyhow::Ok((requests, errors, latency))
        }));
    }
    collect(tasks, started).await
}

/// Exactly `total` requests over `connections` connections, each waiting for its answer: a
/// burst, for "how long until all of it is done".
pub async fn burst(
    addr: SocketAddr,
    token: Option<Arc<str>>,
    connections: usize,
    total: u64,
    make: MakeRequest,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for index in 0..connections {
        let (make, token, next) = (make.clone(), token.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(addr, token).await?;
            let mut latency = histogram();
            let (mut requests, mut errors) = (0u64, 0u64);
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let (method, path, body) = make(index, n);
                let sent = Instant::now();
                match connection.send(method, &path, body).await {
                    Ok(status) if status.is_success() => requests += 1,
                    _ => errors += 1,
                }
                latency.record(sent.elapsed().as_micros().max(1) as u64)?;
            }
            anyhow::Ok((requests, errors, latency))
        }));
    }
    collect(tasks, started).await
}

/// `rate` requests a second spread over `connections`, whatever the answers take; latency
/// counts from when each request was due.
pub async fn open_loop(
    addr: SocketAddr,
    token: Option<Arc<str>>,
    connections: usize,
    rate: f64,
    duration: Duration,
    make: MakeRequest,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    let mut tasks = Vec::new();
    for index in 0..connections {
        let make = make.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(addr, token).await?;
            let mut latency = histogram();
            let (mut requests, mut errors) = (0u64, 0u64);
            // Stagger the connections across one interval.
            let mut due = started + interval.mul_f64(index as f64 / connections as f64);
            while due < started + duration {
                tokio::time::sleep_until(due.into()).await;
                let (method, path, body) = make(index, requests + errors);
                match connection.send(method, &path, body).await {
                    Ok(status) if status.is_success() => requests += 1,
                    _ => errors += 1,
                }
                latency.record(due.elapsed().as_micros().max(1) as u64)?;
                due += interval;
            }
            anyhow::Ok((requests, errors, latency))
        }));
    }
    collect(tasks, started).await
}

/// One connection's successes, failures and latencies.
type ConnectionOutcome = anyhow::Result<(u64, u64, Histogram<u64>)>;

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<ConnectionOutcome>>,
    started: Instant,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome { requests: 0, errors: 0, elapsed: Duration::ZERO, latency: histogram() };
    for task in tasks {
        let (requests, errors, latency) = task.await??;
        outcome.requests += requests;
        outcome.errors += errors;
        outcome.latency.add(&latency)?;
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}
