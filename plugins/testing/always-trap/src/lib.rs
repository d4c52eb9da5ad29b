//! An image-policy plugin that traps on every call.
//!
//! **It exists only for kubeop's tests** (a plugin whose self-check traps must be refused).
//! Never deploy it. The release profile has `panic = "abort"`, so the panic is a trap.

wit_bindgen::generate!({
    world: "image-policy",
    path: "../../../wit",
});

struct AlwaysTrap;

impl Guest for AlwaysTrap {
    fn check_image(_request: ImageRequest) -> Decision {
        panic!("always-trap: this plugin traps on every call")
    }
}

export!(AlwaysTrap);
