//! A deliberately misbehaving image-policy plugin.
//!
//! **It exists only for kubeop's containment tests. Never deploy it.** The host must survive
//! every one of its behaviours: interrupt it, cap its memory, turn its traps into errors, bound
//! what it returns and logs, and keep serving everything else.
//!
//! What it does depends on the image's name, the last segment of its repository (so a test
//! picks a behaviour with the image it asks for, e.g. `docker.io/library/loop:1`):
//!
//! | image name  | behaviour                                                        |
//! |-------------|------------------------------------------------------------------|
//! | `loop`      | spins forever                                                    |
//! | `alloc`     | allocates (and writes) memory without bound                      |
//! | `trap`      | executes `unreachable`                                           |
//! | `recurse`   | recurses without bound until the stack overflows                 |
//! | `huge`      | denies with a reason of 8 MiB of text                            |
//! | `log-flood` | calls the host's `log` 100,000 times with 4 KiB messages, allows |
//! | `count`     | counts its calls in a static and denies with the count: a fresh instance per call always says 1 |
//! | `snoop`     | tries to read a file, list a directory, connect to a socket, resolve a name and read the environment, and denies with what each attempt got |
//! | anything else | allows                                                         |

wit_bindgen::generate!({
    world: "image-policy",
    path: "../../../wit",
});

use core::hint::black_box;
use kubeop::plugin::host::{Level, log};

struct Hostile;

impl Guest for Hostile {
    fn check_image(request: ImageRequest) -> Decision {
        let name = request.reference.repository.rsplit('/').next().unwrap_or_default();
        match name {
            "loop" => spin(),
            "alloc" => allocate_forever(),
            "trap" => trap(),
            "recurse" => {
                recurse(0);
                Decision::Allow
            }
            "huge" => Decision::Deny("x".repeat(HUGE_REASON)),
            "count" => {
                let calls = CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1;
                Decision::Deny(format!("call number {calls} of this instance"))
            }
            "log-flood" => {
                let message = "x".repeat(LOG_MESSAGE);
                for _ in 0..LOG_CALLS {
                    log(Level::Info, black_box(&message));
                }
                Decision::Allow
            }
            "snoop" => Decision::Deny(snoop()),
            _ => Decision::Allow,
        }
    }
}

export!(Hostile);

/// Survives between calls only if the host reuses an instance (it must not).
static CALLS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

const HUGE_REASON: usize = 8 << 20;
const LOG_MESSAGE: usize = 4 << 10;
const LOG_CALLS: usize = 100_000;

/// What the sandbox lets a plugin reach, through Rust's standard library (which imports
/// `wasi:filesystem`, `wasi:sockets` and the CLI environment for these): each attempt's outcome,
/// as `what=outcome` pairs for the tests to read. An error is its `io::ErrorKind`.
fn snoop() -> String {
    fn outcome<T>(attempt: std::io::Result<T>, success: &str) -> String {
        attempt.map_or_else(|error| format!("{:?}", error.kind()), |_| success.to_owned())
    }
    use std::net::ToSocketAddrs;
    let file = outcome(std::fs::read("/etc/passwd"), "read");
    let relative = outcome(std::fs::read("Cargo.toml"), "read");
    let dir = outcome(std::fs::read_dir("/"), "listed");
    let created = outcome(std::fs::write("/tmp/kubeop-snoop", b"x"), "written");
    let tcp = outcome(std::net::TcpStream::connect(("127.0.0.1", 5432)), "connected");
    let listen = outcome(std::net::TcpListener::bind(("0.0.0.0", 8080)), "listening");
    let udp = outcome(
        std::net::UdpSocket::bind(("0.0.0.0", 0)).and_then(|s| s.send_to(b"x", ("10.0.0.1", 53))),
        "sent",
    );
    let dns = outcome(("kubernetes.default.svc", 443).to_socket_addrs(), "resolved");
    let env = std::env::vars_os().count();
    let args = std::env::args_os().count();
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .is_ok_and(|since| since.as_secs() > 1_700_000_000);
    format!(
        "file={file} relative={relative} dir={dir} create={created} tcp={tcp} listen={listen} udp={udp} \
         dns={dns} env={env} args={args} clock={clock}"
    )
}

/// A loop the optimiser cannot remove: `black_box` hides that nothing observes `n`.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// The `unreachable` instruction.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Allocates 1 MiB chunks, each written in full (so its pages are really used), and keeps
/// them all, until an allocation fails (which aborts: a trap).
fn allocate_forever() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let chunk = vec![black_box(0xA5u8); 1 << 20];
        chunks.push(black_box(chunk));
        black_box(&mut chunks);
    }
}

/// Recursion the optimiser can neither turn into a loop (the call is not in tail position) nor
/// remove (`black_box`). Its frames are small, so the host's wasm stack limit is what stops it.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    black_box(recurse(black_box(depth + 1))).wrapping_add(depth)
}
