//! The security review's attacks, run against the real `kubeop` binary as a process of its own
//! (limited to 1,024 file descriptors, as in the review), with the figures they are judged by:
//!
//! - `connections`: 1,100 sockets each send a request line and one header, then nothing. How
//!   long is `/healthz` unreachable on a fresh connection? (Goal: no longer than the header
//!   timeout.) And while an attacker keeps reopening its sockets, how many probes get through?
//! - `memory`: eight concurrent oversized ingest requests (a project token's, refused before
//!   its body is read; an admin's over the body limit; an admin's largest allowed batch): the
//!   server's resident memory before, at its peak and after.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::{self, Database};

#[derive(clap::Args)]
pub struct Options {
    /// Only one attack: connections or memory.
    #[arg(long)]
    only: Option<String>,
    /// The `kubeop` binary to attack (default: beside this benchmark's executable).
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
    /// Sockets the connection attack holds.
    #[arg(long, default_value_t = 1100)]
    sockets: usize,
    /// The server's header timeout, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    header_timeout_ms: u64,
}

pub fn run(options: Options) -> anyhow::Result<()> {
    let binary = server::binary(options.binary.as_deref())?;
    if options.only.as_deref().is_none_or(|only| only == "connections") {
        connections(&binary, &options)?;
    }
    if options.only.as_deref().is_none_or(|only| only == "memory") {
        memory(&binary)?;
    }
    Ok(())
}

/// `kubeop serve` in its own process with at most 1,024 file descriptors, on SQLite.
struct Target {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Target {
    fn start(binary: &std::path::Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        use std::io::BufRead;
        let dir = tempfile::tempdir()?;
        let mut child = Command::new("prlimit")
            .arg("--nofile=1024:1024")
            .arg(binary)
            .arg("serve")
            .current_dir(dir.path())
            .env("KUBEOP_HTTP_ADDR", "127.0.0.1:0")
            .env("KUBEOP_REQUIRE_AUTH", "true")
            .env("KUBEOP_JWT_SIGNING_KEY", server::signing_key_base64())
            .env("KUBEOP_LOG__FORMAT", "json")
            .env("KUBEOP_LOG__FILTER", "warn,kubeop_api=info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::piped())
            .spawn()?;
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("piped")).lines();
        let addr = loop {
            let line =
                lines.next().ok_or_else(|| anyhow::anyhow!("the server exited before listening"))??;
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(addr) = entry["addr"].as_str() {
                break addr.parse()?;
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, addr, _dir: dir })
    }

    /// Resident and peak resident memory, in MiB.
    fn memory(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server_pid()?))?;
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }

    /// prlimit execs the server in place, so the child is the server.
    fn server_pid(&self) -> anyhow::Result<u32> {
        Ok(self.child.id())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET /healthz` on a fresh connection: its status, or 0 when none came within a second.
pub fn probe(addr: SocketAddr) -> u16 {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return 0 };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return 0;
    }
    let mut head = [0u8; 12];
    match stream.read_exact(&mut head) {
        Ok(()) => std::str::from_utf8(&head[9..12]).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        Err(_) => 0,
    }
}

/// A socket that sent a request line and one header, then nothing.
fn slow_socket(addr: SocketAddr) -> Option<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: 1\r\n").ok()?;
    Some(stream)
}

/// Whether the server closed (or answered) a held socket: an open, silent one would block.
fn closed(socket: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let _ = socket.set_nonblocking(true);
    match socket.peek(&mut byte) {
        // End of file, or an answer: either way the server is done with it.
        Ok(_) => true,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
}

fn connections(binary: &std::path::Path, options: &Options) -> anyhow::Result<()> {
    let header_timeout = Duration::from_millis(options.header_timeout_ms);
    let target =
        Target::start(binary, &[("KUBEOP_HTTP__HEADER_TIMEOUT_MS", options.header_timeout_ms.to_string())])?;
    let addr = target.addr;
    println!(
        "== held connections: {} sockets against a server limited to 1,024 descriptors, header timeout {:?}",
        options.sockets, header_timeout
    );
    anyhow::ensure!(probe(addr) == 200, "the server answers before the attack");

    // The review's attack: every socket opened once, then held.
    let started = Instant::now();
    let held: Vec<TcpStream> = (0..options.sockets).filter_map(|_| slow_socket(addr)).collect();
    let opened = started.elapsed();
    let mut refused = 0;
    let mut first_ok = None;
    while started.elapsed() < header_timeout * 3 {
        match probe(addr) {
            200 => {
                first_ok = Some(started.elapsed());
                break;
            }
            503 => refused += 1,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "  {} sockets held (opened in {:.2} s); fresh probes answered 503 at once {refused} times",
        held.len(),
        opened.as_secs_f64()
    );
    match first_ok {
        Some(at) => println!(
            "  /healthz answered 200 again {:.2} s after the attack began (header timeout {:.2} s): {}",
            at.as_secs_f64(),
            header_timeout.as_secs_f64(),
            if at <= header_timeout + Duration::from_millis(500) + opened {
                "goal met"
            } else {
                "GOAL MISSED"
            }
        ),
        None => println!("  /healthz never answered 200 within {:?}: GOAL MISSED", header_timeout * 3),
    }
    drop(held);

    // A persistent attacker: reopens every socket the server closes, for three header timeouts.
    let stop = Instant::now() + header_timeout * 3;
    let attacker = std::thread::spawn(move || {
        let mut sockets: Vec<TcpStream> = (0..1100).filter_map(|_| slow_socket(addr)).collect();
        while Instant::now() < stop {
            sockets.retain(|socket| !closed(socket));
            while sockets.len() < 1100 {
                match slow_socket(addr) {
                    Some(socket) => sockets.push(socket),
                    None => break,
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let (mut answered, mut probes) = (0, 0);
    while Instant::now() < stop {
        probes += 1;
        if probe(addr) == 200 {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    attacker.join().expect("the attacker thread");
    println!(
        "  against a persistent attacker: {answered} of {probes} probes answered 200 (the rest 503 at once)"
    );
    Ok(())
}

fn memory(binary: &std::path::Path) -> anyhow::Result<()> {
    println!("== eight concurrent oversized ingest requests: the server's resident memory");
    let database = Database::create("sqlite", "")?;
    let target = Target::start(binary, &[("KUBEOP_DB_URL", database.url.clone())])?;
    let addr = target.addr;
    let admin = server::admin_token();
    let tenant = {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(crate::load::create(
            addr,
            Some(admin.clone()),
            "/v1/tenants",
            r#"{"name":"acme"}"#.into(),
        ))?
    };
    let project = {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let body = format!(r#"{{"tenantID":"{tenant}","name":"web"}}"#);
        runtime.block_on(crate::load::create(addr, Some(admin.clone()), "/v1/projects", body))?
    };
    let project_token = server::token_for(&kubeop_api::auth::Caller::Project {
        subject: "bench".into(),
        project: kubeop_core::ProjectId::parse(&project)?,
    });
    let hour = chrono::Utc::now().format("%Y-%m-%dT%H:00:00Z").to_string();
    let point = format!(r#"{{"ts":"{hour}","tenant_id":"{tenant}","cpu_milli":1,"mem_mib":1}}"#);
    let largest = format!("[{}]", vec![point.as_str(); 10_000].join(","));
    let oversized = format!("[{}]", vec![point.as_str(); 80_000].join(","));
    let (rss_before, _) = target.memory()?;

    let send = |token: String, body: String| {
        std::thread::spawn(move || -> u16 {
            let Ok(mut stream) = TcpStream::connect(addr) else { return 0 };
            let head = format!(
                "POST /v1/usage/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            // The server may answer (and close) before the body is all sent: that is the point.
            let _ = stream.write_all(body.as_bytes());
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
        })
    };
    let mut report = Vec::new();
    for (what, token, body) in [
        ("project token, 8 MiB body (refused before reading)", project_token.clone(), oversized.clone()),
        ("admin, 8 MiB body (over the limit)", admin.to_string(), oversized.clone()),
        ("admin, 10,000 points (the largest batch)", admin.to_string(), largest.clone()),
    ] {
        let threads: Vec<_> = (0..8).map(|_| send(token.clone(), body.clone())).collect();
        let mut statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap_or(0)).collect();
        statuses.dedup();
        let (rss, peak) = target.memory()?;
        report.push((what, statuses, rss, peak));
    }
    println!("  resident before: {rss_before:.1} MiB");
    for (what, statuses, rss, peak) in report {
        println!(
            "  {what:<52} answers {statuses:?}; resident after {rss:.1} MiB, peak so far {peak:.1} MiB (+{:.1})",
            peak - rss_before
        );
    }
    println!("  Bound: peak ≤ resident before + 64 MiB for eight requests at once.");
    Ok(())
}
