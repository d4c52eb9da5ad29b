//! An admission plugin (world `platform-admission`) that allows everything without reading it.
//!
//! **It exists only for kubeop's benchmarks. Never deploy it**: it would admit anything. It
//! measures what a call costs the host (instantiation, passing the request, reading the
//! response) with no policy work on top, the baseline the built-in plugin is compared with.

wit_bindgen::generate!({
    world: "platform-admission",
    path: "../../../wit",
});

struct AllowAdmission;

impl Guest for AllowAdmission {
    fn admit(_request: AdmitRequest) -> AdmissionResponse {
        AdmissionResponse { allowed: true, message: None, warnings: vec![], patch: None }
    }
}

export!(AllowAdmission);
