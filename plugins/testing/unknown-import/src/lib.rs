//! An image policy that imports `kubeop-test:unknown/vault`, an interface beyond kubeop's and
//! WASI 0.2's. **It exists only for kubeop's refusal test. Never deploy it.** The host must
//! refuse it when it loads (not when it is called), and say which import is missing.

wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "kubeop-test:unknown/image-policy-with-vault",
    generate_all,
});

struct UnknownImport;

impl Guest for UnknownImport {
    fn check_image(_request: ImageRequest) -> Decision {
        Decision::Deny(kubeop_test::unknown::vault::secret())
    }
}

export!(UnknownImport);
