//! A deliberately misbehaving admission plugin (world `platform-admission`).
//!
//! **It exists only for kubeop's containment tests. Never deploy it.** The host must survive
//! every one of its behaviours: interrupt it, cap its memory, turn its traps into errors, bound
//! what it returns, and keep admitting everything else.
//!
//! What it does depends on the reviewed object's `metadata.name` in the review (so a test
//! picks a behaviour with the name of the object it submits):
//!
//! | object name    | behaviour                                   |
//! |----------------|---------------------------------------------|
//! | `loop`         | spins forever                               |
//! | `memory`       | allocates (and writes) memory without bound |
//! | `trap`         | panics, which aborts: a trap                |
//! | `huge-message` | denies with a message of 10 MiB             |
//! | anything else  | allows, without a patch                     |

wit_bindgen::generate!({
    world: "platform-admission",
    path: "../../../wit",
});

use core::hint::black_box;
use serde_json::Value;

struct HostileAdmission;

impl Guest for HostileAdmission {
    fn admit(request: AdmitRequest) -> AdmissionResponse {
        let review: Value = serde_json::from_str(&request.review).unwrap_or_default();
        match review.pointer("/object/metadata/name").and_then(Value::as_str).unwrap_or_default() {
            "loop" => spin(),
            "memory" => allocate_forever(),
            "trap" => panic!("hostile-admission: trapping as asked"),
            "huge-message" => response(false, Some("x".repeat(HUGE_MESSAGE))),
            _ => response(true, None),
        }
    }
}

export!(HostileAdmission);

const HUGE_MESSAGE: usize = 10 << 20;

fn response(allowed: bool, message: Option<String>) -> AdmissionResponse {
    AdmissionResponse { allowed, message, warnings: vec![], patch: None }
}

/// A loop the optimiser cannot remove: `black_box` hides that nothing observes `n`.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
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
