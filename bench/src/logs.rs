//! The cost of the access log: one manager run exactly as the production profile configures it
//! (JSON lines at `info`, one a request), measured with its log off and then on, written to a
//! file, in the same run.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use kubeop_config::Config;

use crate::http::{Options, print_header, report};
use crate::load::{self, MakeRequest};
use crate::server::{self, Database, Running};

pub fn run(options: Options) -> anyhow::Result<()> {
    println!(
        "Access-log benchmark: the production profile, {} connections, {} s per measurement, {} cores",
        options.connections,
        options.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let engine = options.engine.as_deref().unwrap_or("postgres");
    let database = Database::create(engine, &options.postgres)?;
    let data_dir = tempfile::tempdir()?;
    let log_file = data_dir.path().join("kubeop.log");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let key = server::signing_key_base64();
    let config = Config::load_profile(
        &shipped,
        "production",
        &[
            ("KUBEOP_HTTP_ADDR", "127.0.0.1:0"),
            ("KUBEOP_DB_URL", &database.url),
            ("KUBEOP_JWT_SIGNING_KEY", &key),
            ("KUBEOP_KMS_MASTER_KEY", &server::kms_key_base64()),
            ("KUBEOP_LOG__FILE", &log_file.display().to_string()),
        ],
    )?;
    println!(
        "profile {}: log format {:?}, filter `{}`, written to {}",
        config.profile,
        config.log.format,
        config.log.filter,
        log_file.display()
    );
    let data = tempfile::tempdir()?;
    let config = Config { data_dir: data.path().to_owned(), ..config };
    let log_config = config.log.clone();
    let server = Running::start(config, data, |server| server)?;
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let token = Some(server::admin_token());
    let id = client.block_on(load::create(
        server.addr,
        token.clone(),
        "/v1/tenants",
        r#"{"name":"logs"}"#.into(),
    ))?;
    let healthz: MakeRequest = Arc::new(|_, _| (Method::GET, "/healthz".to_owned(), None));
    let get: MakeRequest = Arc::new(move |_, _| (Method::GET, format!("/v1/tenants/{id}"), None));
    let duration = Duration::from_secs(options.seconds);
    let measure = |make: &MakeRequest| {
        client.block_on(async {
            load::closed_loop(
                server.addr,
                token.clone(),
                options.connections,
                Duration::from_secs(1),
                make.clone(),
            )
            .await?;
            load::closed_loop(server.addr, token.clone(), options.connections, duration, make.clone()).await
        })
    };

    print_header();
    let off = [measure(&healthz)?, measure(&get)?];
    report(engine, "GET /healthz, log off", &off[0], off[0].per_second(), None);
    report(engine, "GET /v1/tenants/{id}, off", &off[1], off[1].per_second(), None);
    // From here on the process logs exactly as `kubeop serve` with this profile does.
    let _guard = kubeop_api::telemetry::init(&log_config).map_err(anyhow::Error::msg)?;
    let on = [measure(&healthz)?, measure(&get)?];
    report(engine, "GET /healthz, log on", &on[0], off[0].per_second(), None);
    report(engine, "GET /v1/tenants/{id}, on", &on[1], off[1].per_second(), None);
    // The server stops (and logs that it does) before the writer is flushed and stopped.
    drop(server);
    drop(_guard);
    let lines = std::fs::read_to_string(&log_file)?.lines().count();
    let logged = on.iter().map(|o| o.requests).sum::<u64>();
    println!(
        "\n{lines} lines in the log for {logged} measured requests (plus warm-up).\n\
         Goal: with the access log on, ≥ 80% of the log-off throughput (the \"÷ baseline\" column)."
    );
    Ok(())
}
