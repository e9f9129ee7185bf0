//! One logging setup for both binaries: `tracing` to stderr, so stdout stays
//! clean for output that scripts parse, and one filter for every log output
//! (the CLI's stderr, the tray's stderr and log files).
//!
//! `RUST_LOG` wins over the binary's default level, with one exception that
//! no setting lifts: the crates that see secrets on the wire or in storage
//! ([`CAPPED_CRATES`]: the MCP SDK, OAuth, HTTP and TLS stacks, the loopback
//! server, the keychain and D-Bus) never log below `info`. At `debug` and
//! `trace` they print authorization codes, request bodies and headers (rmcp
//! logs the code it exchanges), and a log is something users paste into bug
//! reports. The cap is a second filter that must also agree, not a directive
//! merged into the user's: an `EnvFilter` lets a more specific user directive
//! (`rmcp::transport=trace`) or a span directive (`[authorize]=trace`, which
//! enables every target inside that span) win over any directive we add.
//!
//! Colours only on a terminal, and never when `NO_COLOR` is set.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, Targets};
use tracing_subscriber::layer::{Filter, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

/// Target prefixes (crate names; a prefix also covers `hyper_util`,
/// `axum_core`, `tower_http`, …) held at `info` or above whatever the filter
/// says: each of them handles tokens, codes, secrets or their transport.
pub const CAPPED_CRATES: &[&str] = &[
    "rmcp",
    "oauth2",
    "reqwest",
    "hyper",
    "http",
    "h2",
    "tower",
    "axum",
    "rustls",
    "tokio_rustls",
    "webpki",
    "native_tls",
    "openssl",
    "keyring",
    "secret_service",
    "zbus",
    "dbus",
    "sse_stream",
];

/// The most any [`CAPPED_CRATES`] target may log.
const CAP: LevelFilter = LevelFilter::INFO;

/// The filter of every log output: `RUST_LOG` (or `default_filter` when it
/// is unset or invalid), and the secret-seeing crates capped at `info`.
pub fn log_filter<S>(default_filter: &str) -> impl Filter<S> + Send + Sync + use<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    filter_from(std::env::var("RUST_LOG").ok().as_deref(), default_filter)
}

/// [`log_filter`] with the user's directives given: pure, for tests.
fn filter_from<S>(user: Option<&str>, default_filter: &str) -> impl Filter<S> + Send + Sync + use<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let user = user
        .filter(|u| !u.trim().is_empty())
        .and_then(|u| EnvFilter::builder().parse(u).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    user.and(secret_cap())
}

/// Everything passes but the capped crates below [`CAP`].
fn secret_cap() -> Targets {
    CAPPED_CRATES.iter().fold(Targets::new().with_default(LevelFilter::TRACE), |t, c| t.with_target(*c, CAP))
}

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset.
pub fn init_stderr_logging(default_filter: &str) {
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour_stderr())
        .with_target(false)
        .with_filter(log_filter(default_filter));
    tracing_subscriber::registry().with(layer).init();
}

/// Whether stderr should get ANSI colours.
pub fn colour_stderr() -> bool {
    colour_for(&std::io::stderr())
}

/// Whether `stream` should get ANSI colours: a terminal, and `NO_COLOR`
/// (<https://no-color.org>) unset or empty.
pub fn colour_for(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rstest::rstest;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// What reaches the log with `RUST_LOG=user` when each target logs at
    /// debug and trace inside a span named `authorize`.
    fn logged(user: &str) -> String {
        let out = Captured::default();
        let layer = fmt::layer().with_writer(out.clone()).with_ansi(false).with_filter(filter_from(Some(user), "warn"));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = tracing::info_span!("authorize");
            let _in = span.enter();
            tracing::debug!(target: "rmcp::transport::auth", "rmcp-debug");
            tracing::trace!(target: "hyper_util::client", "hyper-trace");
            tracing::debug!(target: "zbus::connection", "zbus-debug");
            tracing::info!(target: "rmcp", "rmcp-info");
            tracing::trace!(target: "mcp_auth_core::oauth", "ours-trace");
        });
        let bytes = out.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[rstest]
    #[case::everything("trace")]
    #[case::the_crate("trace,rmcp=trace,hyper_util=trace,zbus=trace")]
    #[case::more_specific("rmcp::transport::auth=trace,hyper_util::client=trace,zbus::connection=trace,trace")]
    #[case::a_span("[authorize]=trace,mcp_auth_core=trace")]
    fn secret_seeing_crates_stay_at_info(#[case] user: &str) {
        let out = logged(user);
        for hidden in ["rmcp-debug", "hyper-trace", "zbus-debug"] {
            assert!(!out.contains(hidden), "{user}: `{hidden}` logged:\n{out}");
        }
        assert!(out.contains("rmcp-info") && out.contains("ours-trace"), "{user}: too much hidden:\n{out}");
    }

    #[rstest]
    #[case::empty("", false)]
    #[case::invalid("=[=", false)]
    #[case::ours("mcp_auth_core=trace", true)]
    fn the_default_applies_without_a_valid_rust_log(#[case] user: &str, #[case] ours: bool) {
        let out = logged(user);
        assert_eq!(out.contains("ours-trace"), ours, "{user}:\n{out}");
        assert!(!out.contains("rmcp-info"), "{user}: the default is warn:\n{out}");
    }
}
