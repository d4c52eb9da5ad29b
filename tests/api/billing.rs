//! Usage ingest, snapshots, rates and invoices: exact money, atomic and retry-safe ingest.

use chrono::{DateTime, Datelike, Duration, DurationRound, Utc};
use kubeop_api::auth::Caller;
use kubeop_core::TenantId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json, guest};

both_engines!(
    seed_walkthrough_ingest_snapshot_invoice,
    an_invoice_is_the_hand_computed_sum,
    a_rate_change_mid_month_prices_each_stretch_at_its_rates,
    swapping_the_pricing_plugin_changes_the_next_invoice,
    a_failing_pricing_plugin_answers_503,
    one_bad_point_refuses_the_whole_batch,
    tenants_may_send_only_their_own_usage,
    idempotency_keys_make_retries_safe,
    concurrent_retries_count_once,
    a_database_error_mid_batch_writes_nothing_and_keeps_no_key,
    snapshots_filter_by_tenant_and_time,
    rates_are_validated_and_kept_exact,
    invoices_are_for_the_tenant_and_a_month_that_began,
);

fn this_hour() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::hours(1)).unwrap()
}

/// The start of the previous calendar month, and a month label for it.
fn previous_month() -> (DateTime<Utc>, String) {
    let now = Utc::now();
    let first = now.with_day(1).unwrap().duration_trunc(Duration::days(1)).unwrap();
    let previous = (first - Duration::days(1)).with_day(1).unwrap();
    (previous, format!("{:04}-{:02}", previous.year(), previous.month()))
}

/// The last day of the previous month at 10:00: within the 35 days ingest accepts.
fn late_last_month() -> DateTime<Utc> {
    let first = Utc::now().with_day(1).unwrap().duration_trunc(Duration::days(1)).unwrap();
    first - Duration::hours(14)
}

fn point(ts: DateTime<Utc>, tenant: &str, cpu: i64, mem: i64) -> Value {
    json!({"ts": ts.to_rfc3339(), "tenant_id": tenant, "cpu_milli": cpu, "mem_mib": mem})
}

async fn ingest(app: &TestApp, points: Value) -> reqwest::Response {
    app.post("/v1/usage/ingest", &points).await
}

async fn ingest_keyed(app: &TestApp, key: &str, points: &Value) -> reqwest::Response {
    app.request(Method::POST, "/v1/usage/ingest")
        .header("idempotency-key", key)
        .json(points)
        .send()
        .await
        .unwrap()
}

async fn totals(app: &TestApp, query: &str) -> (i64, i64) {
    let body = expect_json(app.get(&format!("/v1/usage/snapshot{query}")).await, StatusCode::OK).await;
    (body["totals"]["cpu_milli"].as_i64().unwrap(), body["totals"]["mem_mib"].as_i64().unwrap())
}

/// The raw JSON text of a field: money is written with its exact digits.
fn raw_number(text: &str, key: &str) -> String {
    let start =
        text.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {text}")) + key.len() + 3;
    text[start..].chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-').collect()
}

async fn invoice_text(app: &TestApp, tenant: &str, query: &str) -> (Value, String) {
    let response = app.get(&format!("/v1/invoices/{tenant}{query}")).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    (serde_json::from_str(&text).unwrap(), text)
}

async fn seed_walkthrough_ingest_snapshot_invoice(engine: Engine) {
    let app = TestApp::spawn_with(engine, |config| {
        config.billing.rate_cpu_milli = "0.01".into();
        config.billing.rate_mem_mib = "0.001".into();
    })
    .await;
    let tenant = app.create_tenant("acme").await;
    let hour = this_hour();
    let ingested =
        expect_json(ingest(&app, json!([point(hour, &tenant, 100, 200)])).await, StatusCode::OK).await;
    assert_eq!(ingested, json!({"accepted": 1, "buckets": 1}));
    assert_eq!(totals(&app, "").await, (100, 200));

    let (invoice, text) = invoice_text(&app, &tenant, "").await;
    assert_eq!(invoice["tenant_id"], tenant.as_str());
    assert_eq!(invoice["currency"], "USD");
    let start: DateTime<Utc> = invoice["start"].as_str().unwrap().parse().unwrap();
    let end: DateTime<Utc> = invoice["end"].as_str().unwrap().parse().unwrap();
    assert!(start <= hour && hour < end && start.day() == 1 && end.day() == 1);
    // 100 × 0.01 + 200 × 0.001 = 1.00 + 0.20.
    assert_eq!(raw_number(&text, "subtotal"), "1.20");
    assert!(text.contains(r#""amount":1.00}"#) && text.contains(r#""amount":0.20}"#), "{text}");
    assert_eq!(invoice["lines"].as_array().unwrap().len(), 2);
    assert_eq!(invoice["rates"][0]["source"], "default");
    assert_eq!(
        invoice["usage"],
        json!([{"hour": hour.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "cpu_milli": 100, "mem_mib": 200}])
    );

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("kubeop_usage_points_ingested_total 1"), "{metrics}");
    assert!(metrics.contains("kubeop_invoices_computed_total 1"));
    assert!(metrics.contains("kubeop_invoice_pricing_seconds_count 1"));
}

async fn an_invoice_is_the_hand_computed_sum(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let (month_start, label) = previous_month();
    let rates = json!({"cpu_milli": "0.00004", "mem_mib": "0.000005", "discount_percent": "10", "tier": "standard", "effective_from": month_start.to_rfc3339()});
    assert_eq!(
        app.put(&format!("/v1/tenants/{tenant}/rates"), &rates).await.status(),
        StatusCode::NO_CONTENT
    );
    let at = late_last_month();
    let points = json!([
        point(at, &tenant, 1500, 10_000),
        point(at + Duration::minutes(30), &tenant, 2500, 5_000),
        point(at + Duration::hours(1), &tenant, 3000, 10_000),
    ]);
    expect_json(ingest(&app, points).await, StatusCode::OK).await;

    let (invoice, text) = invoice_text(&app, &tenant, &format!("?period={label}")).await;
    // CPU: 7000 × 0.00004 = 0.28. Memory: 25000 × 0.000005 = 0.125, rounded half-even to 0.12
    // (half-up would say 0.13). Discount: 10% of 0.40 = 0.04. Subtotal 0.36.
    // Compared as written: a JSON parser would turn 0.000005 into the float 5e-6.
    let lines_text = &text[text.find("\"lines\":").unwrap()..text.find("\"subtotal\"").unwrap()];
    for (quantity, unit_price, amount) in
        [("7000", "0.00004", "0.28"), ("25000", "0.000005", "0.12"), ("1", "-0.04", "-0.04")]
    {
        let line = format!(r#""quantity":{quantity},"unit":"#);
        assert!(lines_text.contains(&line), "{lines_text}");
        assert!(
            lines_text.contains(&format!(r#""unit_price":{unit_price},"amount":{amount}}}"#)),
            "{lines_text}"
        );
    }
    assert_eq!(invoice["lines"].as_array().unwrap().len(), 3);
    assert_eq!(raw_number(&text, "subtotal"), "0.36");
    assert_eq!(invoice["period"], label);
    assert_eq!(invoice["usage"].as_array().unwrap().len(), 2, "two hours of usage");
    assert_eq!(invoice["rates"][0]["source"], "tenant");
    assert_eq!(invoice["rates"][0]["tier"], "standard");
}

async fn a_rate_change_mid_month_prices_each_stretch_at_its_rates(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let (_, label) = previous_month();
    let at = late_last_month();
    let change = at + Duration::hours(1);
    for (from, cpu) in [(at - Duration::days(3), "0.01"), (change, "0.02")] {
        let body = json!({"cpu_milli": cpu, "mem_mib": "0", "effective_from": from.to_rfc3339()});
        assert_eq!(
            app.put(&format!("/v1/tenants/{tenant}/rates"), &body).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    expect_json(
        ingest(&app, json!([point(at, &tenant, 100, 0), point(change, &tenant, 100, 0)])).await,
        StatusCode::OK,
    )
    .await;
    let (invoice, text) = invoice_text(&app, &tenant, &format!("?period={label}")).await;
    let rates = invoice["rates"].as_array().unwrap();
    assert_eq!(rates.len(), 3, "defaults, then 0.01, then 0.02: {rates:?}");
    assert_eq!(rates[1]["to"], rates[2]["from"]);
    // 100 × 0.01 + 100 × 0.02.
    assert_eq!(raw_number(&text, "subtotal"), "3.00");
}

async fn swapping_the_pricing_plugin_changes_the_next_invoice(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let rates = json!({"cpu_milli": "0", "mem_mib": "0.00001", "effective_from": (this_hour() - Duration::days(40)).to_rfc3339()});
    assert_eq!(
        app.put(&format!("/v1/tenants/{tenant}/rates"), &rates).await.status(),
        StatusCode::NO_CONTENT
    );
    expect_json(ingest(&app, json!([point(this_hour(), &tenant, 0, 3_000_000)])).await, StatusCode::OK).await;
    // 3,000,000 MiB-hours × 0.00001.
    let (_, before) = invoice_text(&app, &tenant, "").await;
    assert_eq!(raw_number(&before, "subtotal"), "30.00");

    expect_json(app.upload_plugin("pricing", guest("tiered_pricing.wasm")).await, StatusCode::OK).await;
    // The first 1,000,000 at 0.00001, the other 2,000,000 at half: 10.00 + 10.00.
    let (invoice, after) = invoice_text(&app, &tenant, "").await;
    assert_eq!(raw_number(&after, "subtotal"), "20.00");
    assert_eq!(
        invoice["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["description"].as_str().unwrap().starts_with("Memory"))
            .count(),
        2
    );

    expect_json(app.delete("/v1/platform/plugins/pricing").await, StatusCode::OK).await;
    let (_, again) = invoice_text(&app, &tenant, "").await;
    assert_eq!(raw_number(&again, "subtotal"), "30.00");
}

async fn a_failing_pricing_plugin_answers_503(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    expect_json(app.upload_plugin("pricing", guest("hostile_pricing.wasm")).await, StatusCode::OK).await;
    for (tier, needle) in [("loop", "deadline"), ("refuse", "cannot be priced"), ("garbage", "not a decimal")]
    {
        let rates =
            json!({"cpu_milli": "1", "mem_mib": "1", "tier": tier, "effective_from": "2020-01-01T00:00:00Z"});
        assert_eq!(
            app.put(&format!("/v1/tenants/{tenant}/rates"), &rates).await.status(),
            StatusCode::NO_CONTENT
        );
        let message = expect_error(
            app.get(&format!("/v1/invoices/{tenant}")).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "pricing unavailable",
        )
        .await;
        assert!(message.contains(needle), "{tier}: {message}");
    }
}

async fn one_bad_point_refuses_the_whole_batch(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let hour = this_hour();
    let good = point(hour, &tenant, 1, 1);
    let unknown = "t_01jd5x7k3q9m2n4p6r8s0t1v2w";
    // A body, and the (index, message fragment) of each point it must be refused for.
    type Case<'a> = (Value, StatusCode, Vec<(usize, &'a str)>);
    let cases: Vec<Case> = vec![
        (json!({"ts": hour.to_rfc3339()}), StatusCode::BAD_REQUEST, vec![]),
        (
            json!([good, {"ts": hour.to_rfc3339(), "tenant_id": tenant, "cpu_milli": 1, "mem_mib": 1, "gpu": 2}]),
            StatusCode::BAD_REQUEST,
            vec![(1, "gpu")],
        ),
        (
            json!([{"ts": "2026-01-01T00:00:00", "tenant_id": tenant, "cpu_milli": 1, "mem_mib": 1}, good]),
            StatusCode::BAD_REQUEST,
            vec![(0, "time zone")],
        ),
        (
            json!([good, {"ts": hour.to_rfc3339(), "tenant_id": tenant, "cpu_milli": 9_223_372_036_854_775_808u64, "mem_mib": 1}]),
            StatusCode::BAD_REQUEST,
            vec![(1, "most one point may carry")],
        ),
        (
            json!([
                good,
                point(hour, &tenant, -5, 1),
                point(hour, &tenant, 1, 1)
                    .as_object()
                    .unwrap()
                    .clone()
                    .into_iter()
                    .chain([("mem_mib".to_owned(), json!(1.5))])
                    .collect::<serde_json::Map<_, _>>()
            ]),
            StatusCode::BAD_REQUEST,
            vec![(1, "negative"), (2, "whole number")],
        ),
        (
            json!([
                good,
                point(hour - Duration::days(36), &tenant, 1, 1),
                point(hour + Duration::hours(2), &tenant, 1, 1)
            ]),
            StatusCode::BAD_REQUEST,
            vec![(1, "35 days"), (2, "future")],
        ),
        (json!([good, point(hour, unknown, 1, 1)]), StatusCode::BAD_REQUEST, vec![(1, "not found")]),
        (json!([good, {"tenant_id": tenant}]), StatusCode::BAD_REQUEST, vec![(1, "missing `ts`")]),
    ];
    for (body, status, expected) in cases {
        let response = ingest(&app, body.clone()).await;
        let got = expect_json(response, status).await;
        let indices: Vec<(usize, String)> = got["points"]
            .as_array()
            .map(|points| {
                points
                    .iter()
                    .map(|p| (p["index"].as_u64().unwrap() as usize, p["error"].as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(indices.len(), expected.len(), "{body}: {got}");
        for ((index, message), (want_index, needle)) in indices.iter().zip(&expected) {
            assert_eq!(index, want_index, "{got}");
            assert!(message.contains(needle), "{message} should mention {needle}");
        }
        assert!(got["error"].is_string());
    }
    // Not JSON at all, and too many points.
    let raw = app
        .request(Method::POST, "/v1/usage/ingest")
        .header("content-type", "application/json")
        .body("[{")
        .send()
        .await
        .unwrap();
    expect_error(raw, StatusCode::BAD_REQUEST, "malformed JSON").await;
    let many = Value::Array(vec![good.clone(); 10_001]);
    expect_error(ingest(&app, many).await, StatusCode::PAYLOAD_TOO_LARGE, "at most 10000").await;
    assert_eq!(totals(&app, "").await, (0, 0), "nothing was written");
    let full = Value::Array(vec![good; 10_000]);
    expect_json(ingest(&app, full).await, StatusCode::OK).await;
    assert_eq!(totals(&app, "").await, (10_000, 10_000));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"kubeop_usage_batches_refused_total{reason="invalid"} 9"#), "{metrics}");
    assert!(metrics.contains(r#"kubeop_usage_batches_refused_total{reason="too_large"} 1"#));
}

async fn tenants_may_send_only_their_own_usage(engine: Engine) {
    let app = TestApp::spawn_with_auth(engine).await;
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let project = app.create_project(&acme, "web").await;
    let hour = this_hour();
    let as_tenant = |tenant: &str| {
        app.mint(&Caller::Tenant { subject: "t".into(), tenant: TenantId::parse(tenant).unwrap() })
    };
    let send = |token: String, body: Value| {
        app.request_as(&token, Method::POST, "/v1/usage/ingest").json(&body).send()
    };

    let response =
        send(as_tenant(&acme), json!([point(hour, &acme, 1, 1), point(hour, &globex, 5, 5)])).await.unwrap();
    expect_error(response, StatusCode::FORBIDDEN, globex.as_str()).await;
    assert_eq!(totals(&app, "").await, (0, 0));
    let project_token = app.mint(&Caller::Project {
        subject: "p".into(),
        project: kubeop_core::ProjectId::parse(&project).unwrap(),
    });
    expect_error(
        send(project_token, json!([point(hour, &acme, 1, 1)])).await.unwrap(),
        StatusCode::FORBIDDEN,
        "project",
    )
    .await;
    let own = send(as_tenant(&acme), json!([point(hour, &acme, 1, 1)])).await.unwrap();
    expect_json(own, StatusCode::OK).await;
    assert_eq!(totals(&app, &format!("?tenantID={acme}")).await, (1, 1));

    // Invoices and rates: the tenant's own, not another's; the snapshot is for admins.
    let get = |token: String, path: String| app.request_as(&token, Method::GET, &path).send();
    assert_eq!(get(as_tenant(&acme), format!("/v1/invoices/{acme}")).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        get(as_tenant(&acme), format!("/v1/invoices/{globex}")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(as_tenant(&acme), format!("/v1/tenants/{acme}/rates")).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        get(as_tenant(&acme), format!("/v1/tenants/{globex}/rates")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(as_tenant(&acme), "/v1/usage/snapshot".into()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let put = app
        .request_as(&as_tenant(&acme), Method::PUT, &format!("/v1/tenants/{acme}/rates"))
        .json(&json!({"cpu_milli": "0", "mem_mib": "0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::FORBIDDEN);
    // Without a token, nothing.
    assert_eq!(
        app.client.post(app.url("/v1/usage/ingest")).json(&json!([])).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn idempotency_keys_make_retries_safe(engine: Engine) {
    let app = TestApp::spawn_with_auth(engine).await;
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let hour = this_hour();
    let batch = json!([point(hour, &acme, 10, 20), point(hour, &acme, 1, 2)]);
    let first = ingest_keyed(&app, "batch-42", &batch).await;
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = expect_json(first, StatusCode::OK).await;
    // The same points, written differently: a retry.
    let respelled = json!([
        {"mem_mib": 20, "cpu_milli": 10, "tenant_id": acme, "ts": hour.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)},
        {"ts": hour.to_rfc3339(), "tenant_id": acme, "cpu_milli": 1, "mem_mib": 2}
    ]);
    let retry = ingest_keyed(&app, "batch-42", &respelled).await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(expect_json(retry, StatusCode::OK).await, first);
    assert_eq!(totals(&app, "").await, (11, 22), "added once");
    // Different points under the same key: refused.
    let other = json!([point(hour, &acme, 99, 99)]);
    expect_error(ingest_keyed(&app, "batch-42", &other).await, StatusCode::CONFLICT, "Idempotency-Key").await;
    assert_eq!(totals(&app, "").await, (11, 22));
    // Keys belong to the caller's tenant: another tenant may use the same key.
    let token = app.mint(&Caller::Tenant { subject: "g".into(), tenant: TenantId::parse(&globex).unwrap() });
    let response = app
        .request_as(&token, Method::POST, "/v1/usage/ingest")
        .header("idempotency-key", "batch-42")
        .json(&json!([point(hour, &globex, 5, 5)]))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("idempotent-replayed").is_none());
    expect_json(response, StatusCode::OK).await;
    assert_eq!(totals(&app, "").await, (16, 27));
    for bad in ["", &"k".repeat(256), "with space"] {
        let response = app
            .request(Method::POST, "/v1/usage/ingest")
            .header("idempotency-key", bad)
            .json(&batch)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "Idempotency-Key").await;
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("kubeop_usage_idempotent_replays_total 1"), "{metrics}");
    assert_eq!(app.count_rows("usage_idempotency").await, 2);
}

async fn concurrent_retries_count_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let batch = json!([point(this_hour(), &tenant, 7, 3)]);
    let mut retries = Vec::new();
    for _ in 0..50 {
        let request =
            app.request(Method::POST, "/v1/usage/ingest").header("idempotency-key", "same").json(&batch);
        retries.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            (response.status(), response.headers().contains_key("idempotent-replayed"))
        }));
    }
    let mut replayed = 0;
    for retry in retries {
        let (status, replay) = retry.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        replayed += usize::from(replay);
    }
    assert_eq!(replayed, 49, "one applied, 49 answered from it");
    assert_eq!(totals(&app, "").await, (7, 3));
}

async fn a_database_error_mid_batch_writes_nothing_and_keeps_no_key(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let fault = match engine {
        Engine::Postgres => {
            "CREATE FUNCTION refuse_666() RETURNS trigger AS $$ BEGIN \
            IF NEW.cpu_milli = 666 THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
            CREATE TRIGGER refuse_666 BEFORE INSERT ON usage_hourly FOR EACH ROW EXECUTE FUNCTION refuse_666();"
        }
        Engine::Sqlite => {
            "CREATE TRIGGER refuse_666 BEFORE INSERT ON usage_hourly WHEN NEW.cpu_milli = 666 \
            BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        }
    };
    app.execute(fault).await;
    let hour = this_hour();
    let other = app.create_tenant("globex").await;
    let batch = json!([
        point(hour, &other, 1, 1),
        point(hour, &tenant, 666, 1),
        point(hour - Duration::hours(1), &tenant, 2, 2)
    ]);
    let response = ingest_keyed(&app, "fails-once", &batch).await;
    let message = expect_error(response, StatusCode::INTERNAL_SERVER_ERROR, "internal server error").await;
    assert!(!message.contains("injected"), "no internal detail leaks: {message}");
    assert_eq!(totals(&app, "").await, (0, 0), "nothing written");
    assert_eq!(app.count_rows("usage_idempotency").await, 0, "the key was not kept");

    app.execute(match engine {
        Engine::Postgres => "DROP TRIGGER refuse_666 ON usage_hourly",
        Engine::Sqlite => "DROP TRIGGER refuse_666",
    })
    .await;
    let retry = ingest_keyed(&app, "fails-once", &batch).await;
    assert!(retry.headers().get("idempotent-replayed").is_none(), "the retry is applied, not replayed");
    expect_json(retry, StatusCode::OK).await;
    assert_eq!(totals(&app, "").await, (669, 4));
}

async fn snapshots_filter_by_tenant_and_time(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let hour = this_hour();
    let earlier = hour - Duration::hours(5);
    expect_json(
        ingest(
            &app,
            json!([point(hour, &acme, 1, 10), point(earlier, &acme, 2, 20), point(hour, &globex, 4, 40)]),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(totals(&app, "").await, (7, 70));
    assert_eq!(totals(&app, &format!("?tenantID={acme}")).await, (3, 30));
    let since = (earlier + Duration::hours(1)).to_rfc3339().replace('+', "%2B");
    assert_eq!(totals(&app, &format!("?from={since}")).await, (5, 50));
    assert_eq!(totals(&app, &format!("?tenantID={acme}&to={since}")).await, (2, 20));
    expect_error(app.get("/v1/usage/snapshot?from=yesterday").await, StatusCode::BAD_REQUEST, "from").await;
    expect_error(app.get("/v1/usage/snapshot?tenantID=acme").await, StatusCode::BAD_REQUEST, "tenantID")
        .await;
}

async fn rates_are_validated_and_kept_exact(engine: Engine) {
    let app = TestApp::spawn_with(engine, |config| config.billing.rate_cpu_milli = "0.5".into()).await;
    let tenant = app.create_tenant("acme").await;
    let rates = expect_json(app.get(&format!("/v1/tenants/{tenant}/rates")).await, StatusCode::OK).await;
    assert_eq!(rates["source"], "default");
    assert_eq!(rates["current"]["cpu_milli"].to_string(), "0.5");
    assert_eq!(rates["history"], json!([]));

    let path = format!("/v1/tenants/{tenant}/rates");
    let cases = [
        (json!({"cpu_milli": "-1", "mem_mib": "0"}), "cpu_milli"),
        (json!({"cpu_milli": "abc", "mem_mib": "0"}), "cpu_milli"),
        (json!({"cpu_milli": "1e-4", "mem_mib": "0"}), "cpu_milli"),
        (json!({"cpu_milli": "0", "mem_mib": true}), "mem_mib"),
        (json!({"cpu_milli": "0", "mem_mib": "0", "discount_percent": "101"}), "discount_percent"),
        (json!({"cpu_milli": "0", "mem_mib": "0", "effective_from": "2026-01-01"}), "effective_from"),
        (json!({"cpu_milli": "0", "mem_mib": "0", "currency": "EUR"}), "currency"),
        (json!({"mem_mib": "0"}), "cpu_milli"),
    ];
    for (body, needle) in cases {
        expect_error(app.put(&path, &body).await, StatusCode::BAD_REQUEST, needle).await;
    }
    assert_eq!(app.count_rows("tenant_rates").await, 0);
    let unknown = "t_01jd5x7k3q9m2n4p6r8s0t1v2w";
    expect_error(
        app.put(&format!("/v1/tenants/{unknown}/rates"), &json!({"cpu_milli": "0", "mem_mib": "0"})).await,
        StatusCode::NOT_FOUND,
        unknown,
    )
    .await;
    expect_error(app.get(&format!("/v1/tenants/{unknown}/rates")).await, StatusCode::NOT_FOUND, unknown)
        .await;

    // A JSON number is read digit for digit: 0.1 stays 0.1, not 0.1000000000000000055…
    let body = r#"{"cpu_milli": 0.1, "mem_mib": "0.000000000000000000000000001", "discount_percent": 12.5}"#;
    let response = app
        .request(Method::PUT, &path)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let text = app.get(&path).await.text().await.unwrap();
    assert!(text.contains(r#""cpu_milli":0.1,"#), "{text}");
    assert!(text.contains(r#""mem_mib":0.000000000000000000000000001"#), "{text}");
    assert!(text.contains(r#""discount_percent":12.5"#), "{text}");
    let rates: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rates["source"], "tenant");
    assert_eq!(rates["history"].as_array().unwrap().len(), 1);
}

async fn invoices_are_for_the_tenant_and_a_month_that_began(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let unknown = "t_01jd5x7k3q9m2n4p6r8s0t1v2w";
    expect_error(app.get(&format!("/v1/invoices/{unknown}")).await, StatusCode::NOT_FOUND, unknown).await;
    expect_error(app.get("/v1/invoices/acme").await, StatusCode::NOT_FOUND, "acme").await;
    let next_year = Utc::now().year() + 1;
    for bad in ["2026-13", "26-01", "nope", &format!("{next_year}-01")] {
        expect_error(
            app.get(&format!("/v1/invoices/{tenant}?period={bad}")).await,
            StatusCode::BAD_REQUEST,
            "period",
        )
        .await;
    }
    // A month without usage: lines at zero, subtotal 0.
    let (invoice, text) = invoice_text(&app, &tenant, "?period=2020-02").await;
    assert_eq!(invoice["start"], "2020-02-01T00:00:00Z");
    assert_eq!(invoice["end"], "2020-03-01T00:00:00Z");
    assert_eq!(raw_number(&text, "subtotal"), "0.00");
    assert_eq!(invoice["usage"], json!([]));
}
