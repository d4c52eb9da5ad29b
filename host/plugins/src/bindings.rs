//! The one place `bindgen!` runs: host-side types for the worlds in `wit/`. The shared
//! `types` and `host` interfaces are generated once, with the image-policy world, and reused by
//! the other two.

pub mod image_policy {
    wasmtime::component::bindgen!({
        world: "image-policy",
        path: "../../wit",
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub mod pricing {
    wasmtime::component::bindgen!({
        world: "pricing",
        path: "../../wit",
        with: {
            "kubeop:plugin/types": super::image_policy::kubeop::plugin::types,
            "kubeop:plugin/host": super::image_policy::kubeop::plugin::host,
        },
    });
}

pub mod admission {
    wasmtime::component::bindgen!({
        world: "admission",
        path: "../../wit",
        with: {
            "kubeop:plugin/types": super::image_policy::kubeop::plugin::types,
            "kubeop:plugin/host": super::image_policy::kubeop::plugin::host,
        },
    });
}

pub mod platform_admission {
    wasmtime::component::bindgen!({
        world: "platform-admission",
        path: "../../wit",
        with: {
            "kubeop:plugin/types": super::image_policy::kubeop::plugin::types,
            "kubeop:plugin/host": super::image_policy::kubeop::plugin::host,
        },
    });
}

pub use image_policy::kubeop::plugin::host;
pub use image_policy::kubeop::plugin::types;
