//! The process's logging: Heketi's `loglevel` names mapped to tracing filters, set at start
//! and changed at run time through `/internal/logging`. Below the API (whose admin handler
//! changes the level) and the server (which installs it at boot).

use std::sync::Arc;

/// Changes this process's log level at run time (`/internal/logging`).
#[derive(Clone)]
pub struct LogControl {
    handle: tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
    level: Arc<std::sync::Mutex<String>>,
}

impl LogControl {
    pub fn level(&self) -> String {
        self.level.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Sets a Heketi level name (`none|critical|error|warning|info|debug`).
    pub fn set(&self, heketi_level: &str) -> Result<(), String> {
        let filter = tracing_subscriber::EnvFilter::new(filter_for(heketi_level)?);
        self.handle.reload(filter).map_err(|e| e.to_string())?;
        if let Ok(mut l) = self.level.lock() {
            *l = heketi_level.to_string();
        }
        Ok(())
    }
}

fn filter_for(level: &str) -> Result<String, String> {
    let l = match level {
        "none" => "off",
        "critical" | "error" => "error",
        "warning" => "warn",
        "info" | "" => "info",
        "debug" => "debug",
        other => return Err(format!("invalid log level: {other}")),
    };
    Ok(format!("{l},openraft=warn"))
}

/// Logging from Heketi's `loglevel` (RUST_LOG, when set, wins); returns the control that
/// `/internal/logging` uses.
pub fn init_logging(loglevel: &str) -> Option<LogControl> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(filter_for(loglevel).unwrap_or_else(|_| "info".into()))
    });
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .ok()?;
    let level = if loglevel.is_empty() { "info" } else { loglevel };
    Some(LogControl {
        handle,
        level: Arc::new(std::sync::Mutex::new(level.to_string())),
    })
}
