//! Logging with `tracing`: readable lines in development, JSON in production. Lines are written
//! by a thread of their own (`tracing-appender`), so a request never waits on a write to a
//! terminal, a pipe or a file.
//!
//! Every line logged while a request is served carries its `request_id`. The id lives in a
//! task-local ([`REQUEST_ID`]) rather than a span: a span a request costs the registry an entry
//! and the JSON formatter a formatted copy of its fields, which took 20% off the production
//! throughput (`kubeop-bench logs`).

use std::fmt;
use std::io::{BufWriter, Write as _};
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};

use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, format::JsonFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use kubeop_config::{LogConfig, LogFormat};

/// Bytes the writer thread gathers before a write.
const WRITE_BUFFER: usize = 64 * 1024;

/// Keeps the log writer running; dropping it flushes what is buffered. Hold it until exit.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber. A second call (tests start many servers) changes nothing.
pub fn init(config: &LogConfig) -> Result<LogGuard, String> {
    let filter = EnvFilter::try_new(&config.filter)
        .map_err(|e| format!("KUBEOP_LOG__FILTER: `{}` is not a tracing filter: {e}", config.filter))?;
    let (writer, guard) = writer(config)?;
    let access = writer.clone();
    let installed = subscriber(config.format, filter, writer).try_init().is_ok();
    if installed && config.format == LogFormat::Json {
        let _ = ACCESS.set(access);
    }
    // Already installed (a second server in this process): keep the first one's writer.
    Ok(LogGuard { _writer: installed.then_some(guard) })
}

/// The log writer, when lines are JSON: access lines are formatted by [`access`] and queued on
/// it directly, without the subscriber's per-event work (field visitors, a JSON serializer,
/// the filter again), which was most of the access log's cost.
static ACCESS: OnceLock<NonBlocking> = OnceLock::new();

/// Logs one answered request at `info`, as `{"timestamp":…,"level":"INFO","message":"request",
/// "request_id":…,"method":…,"path":…,"status":…,"micros":…,"target":"kubeop_api::http"}`,
/// the line `tracing`'s JSON format would write. The caller checks that `info` is enabled.
pub fn access(request_id: &str, method: &axum::http::Method, path: &str, status: u16, micros: u64) {
    match ACCESS.get() {
        Some(writer) => {
            let line = access_line(Utc::now(), request_id, method.as_str(), path, status, micros);
            // Lossless, like every line: the request waits only if 128k lines are queued.
            let _ = writer.make_writer().write_all(&line);
        }
        None => {
            tracing::info!(target: "kubeop_api::http", request_id, %method, path, status, micros, "request")
        }
    }
}

fn access_line(
    at: DateTime<Utc>,
    request_id: &str,
    method: &str,
    path: &str,
    status: u16,
    micros: u64,
) -> Vec<u8> {
    let mut line = Vec::with_capacity(192 + path.len() + request_id.len());
    let timestamp = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let _ = write!(line, r#"{{"timestamp":"{timestamp}","level":"INFO","message":"request","request_id":"#);
    let _ = serde_json::to_writer(&mut line, request_id);
    line.extend_from_slice(br#","method":"#);
    let _ = serde_json::to_writer(&mut line, method);
    line.extend_from_slice(br#","path":"#);
    let _ = serde_json::to_writer(&mut line, path);
    let _ = writeln!(line, r#","status":{status},"micros":{micros},"target":"kubeop_api::http"}}"#);
    line
}

fn subscriber<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Pretty => {
            Box::new(builder.event_format(WithRequestId { format: format::format(), json: false }).finish())
        }
        // One object a line, the event's fields at the top level.
        LogFormat::Json => {
            let json =
                format::format().json().flatten_event(true).with_current_span(false).with_span_list(false);
            Box::new(
                builder
                    .fmt_fields(JsonFields::new())
                    .event_format(WithRequestId { format: json, json: true })
                    .finish(),
            )
        }
    }
}

fn writer(config: &LogConfig) -> Result<(NonBlocking, WorkerGuard), String> {
    // Lossless: under a flood of lines the request waits for the writer rather than lines
    // being dropped; the buffer (128k lines) makes that rare.
    let builder = NonBlockingBuilder::default().lossy(false).thread_name("kubeop-log");
    // The writer thread takes every line queued, then flushes: under load many lines go out in
    // one write instead of a system call each; when idle, each line goes out at once.
    if config.file.as_os_str().is_empty() {
        return Ok(builder.finish(BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr())));
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.file)
        .map_err(|e| format!("KUBEOP_LOG__FILE: cannot open {}: {e}", config.file.display()))?;
    Ok(builder.finish(BufWriter::with_capacity(WRITE_BUFFER, file)))
}

tokio::task_local! {
    /// The id of the request this task serves (set by the access log middleware).
    pub static REQUEST_ID: std::sync::Arc<str>;
}

/// Formats a line as `F` does, with the `request_id` of the request being served, if any, and
/// if the line does not name one itself (the access log line does).
struct WithRequestId<F> {
    format: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let named = event.metadata().fields().field("request_id").is_some();
        let id = if named { None } else { REQUEST_ID.try_with(|id| id.clone()).ok() };
        let Some(id) = id else {
            return self.format.format_event(ctx, writer, event);
        };
        if !self.json {
            // Text: the id first, then the line as usual.
            write!(writer, "request_id={id} ")?;
            return self.format.format_event(ctx, writer, event);
        }
        // JSON: `{"timestamp":…}` becomes `{"request_id":"…","timestamp":…}`.
        let mut line = String::new();
        self.format.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => {
                let id = serde_json::to_string(&*id).map_err(|_| fmt::Error)?;
                write!(writer, "{{\"request_id\":{id},{rest}")
            }
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Lines in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(bytes)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: LogFormat, log: impl FnOnce()) -> String {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = subscriber(format, EnvFilter::new("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    /// What a handler, a store call or the plugin host logs while a request is served names the
    /// request; other lines do not, and the access line (which names it itself) names it once.
    #[test]
    fn lines_logged_while_a_request_is_served_name_it() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let served =
            |id: &str, log: fn()| runtime.block_on(REQUEST_ID.scope(id.into(), async move { log() }));
        let text = logged(LogFormat::Json, || {
            served("req-\"42\"", || tracing::warn!(slot = "pricing", "a plugin failed"));
            tracing::info!("between requests");
            served("abc", || tracing::info!(request_id = "abc", status = 200, "request"));
        });
        let lines: Vec<serde_json::Value> =
            text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["request_id"], "req-\"42\"");
        assert_eq!(
            (lines[0]["message"].as_str(), lines[0]["slot"].as_str()),
            (Some("a plugin failed"), Some("pricing"))
        );
        assert_eq!(lines[1].get("request_id"), None);
        assert_eq!(text.lines().nth(2).unwrap().matches("request_id").count(), 1, "{text}");
        // The access line, formatted by hand, is what the subscriber would write.
        let at = DateTime::parse_from_rfc3339("2026-11-29T14:16:49.264366Z").unwrap().with_timezone(&Utc);
        let line = access_line(at, "req-\"42\"", "POST", "/v1/ténants\\x", 400, 38094);
        let line = String::from_utf8(line).unwrap();
        assert!(line.ends_with('\n') && line.lines().count() == 1, "{line}");
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            entry,
            serde_json::json!({"timestamp": "2026-11-29T14:16:49.264366Z", "level": "INFO", "message": "request",
                "request_id": "req-\"42\"", "method": "POST", "path": "/v1/ténants\\x", "status": 400,
                "micros": 38094, "target": "kubeop_api::http"})
        );
        // The development format puts it first.
        let text = logged(LogFormat::Pretty, || served("abc", || tracing::warn!("slow")));
        assert!(text.starts_with("request_id=abc ") && text.contains("slow"), "{text}");
    }
}
