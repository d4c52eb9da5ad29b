//! Logging with `tracing`: readable lines in development, JSON in production. Lines are written
//! by a thread of their own (`tracing-appender`), so a request never waits on a write to a
//! terminal, a pipe or a file.

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use kubeop_config::{LogConfig, LogFormat};

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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let installed = match config.format {
        LogFormat::Pretty => builder.try_init(),
        // One object a line: the event's fields at the top level, and the request span's id
        // (not the whole span list, which would repeat on every line).
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
        }
    };
    // Already installed (a second server in this process): keep the first one's writer.
    Ok(LogGuard { _writer: installed.is_ok().then_some(guard) })
}

fn writer(config: &LogConfig) -> Result<(NonBlocking, WorkerGuard), String> {
    // Lossless: under a flood of lines the request waits for the writer rather than lines
    // being dropped; the buffer (128k lines) makes that rare.
    let builder = NonBlockingBuilder::default().lossy(false).thread_name("kubeop-log");
    if config.file.as_os_str().is_empty() {
        return Ok(builder.finish(std::io::stderr()));
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.file)
        .map_err(|e| format!("KUBEOP_LOG__FILE: cannot open {}: {e}", config.file.display()))?;
    Ok(builder.finish(file))
}
