//! Logging: text on a terminal, JSON lines otherwise (or as `--log-format` says), to stderr.
//! `-v` raises and `-q` lowers the level; `TAGPROMOTER_LOG` takes a full filter.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Install the global subscriber.
pub fn init(format: Option<LogFormat>, verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("TAGPROMOTER_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("tagpromoter={level},warn")));
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    // Colour codes only for a terminal: a file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| Redacting(std::io::stderr()));
    // A second init (tests calling in) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A log line's writer that hides every secret the process has read ([`crate::secret`]).
struct Redacting<W>(W);

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let redacted = crate::secret::redact(&text);
        if matches!(redacted, std::borrow::Cow::Borrowed(_)) {
            self.0.write_all(buf)?;
        } else {
            self.0.write_all(redacted.as_bytes())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
