//! The terminal: colours and progress steps.
//!
//! Colours only on a terminal and never when `NO_COLOR` is set. Progress goes
//! to stderr (stdout stays for results): one plain line per step, and while
//! waiting for the user a countdown that is redrawn in place once a second —
//! only on a terminal, and only while waiting (no timer runs otherwise).

use std::io::Write;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use mcp_auth_core::Step;

/// ANSI colours, or plain text when off.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    pub fn stdout() -> Self {
        Self(mcp_auth_core::colour_for(&std::io::stdout()))
    }

    pub fn stderr() -> Self {
        Self(mcp_auth_core::colour_stderr())
    }

    fn sgr(self, code: &str, text: &str) -> String {
        if self.0 { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }

    pub fn green(self, text: &str) -> String {
        self.sgr("32", text)
    }

    pub fn yellow(self, text: &str) -> String {
        self.sgr("33", text)
    }

    pub fn red(self, text: &str) -> String {
        self.sgr("31", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.sgr("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.sgr("2", text)
    }
}

/// "4:58": minutes and seconds.
fn clock(left: Duration) -> String {
    let secs = left.as_secs();
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// Shows a sign-in's steps on stderr. Dropping it stops any countdown.
#[derive(Debug)]
pub struct Progress {
    /// Prefix naming the server when several are signed in one after another.
    label: String,
    /// Redraw the countdown in place (stderr is a terminal).
    in_place: bool,
    countdown: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Progress {
    pub fn new(server: Option<&str>) -> Self {
        let paint = Paint::stderr();
        let label = server.map(|s| format!("{} ", paint.bold(&format!("[{s}]")))).unwrap_or_default();
        Self { label, in_place: std::io::IsTerminal::is_terminal(&std::io::stderr()), countdown: Mutex::new(None) }
    }

    fn line(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{}{text}", self.label);
    }

    /// A line of its own (not a step).
    pub fn note(&self, text: &str) {
        self.line(text);
    }

    /// Shows `step`, ending the previous step's countdown.
    pub fn show(&self, step: Step) {
        self.stop_countdown();
        match step {
            Step::Probing => self.line("contacting the server…"),
            Step::Discovering => self.line("discovering its authorization server…"),
            Step::Registering => self.line("registering the client…"),
            Step::WaitingForBrowser { timeout, .. } => self.countdown("waiting for the browser", timeout),
            Step::ExchangingCode => self.line("getting tokens…"),
            Step::WaitingForDevice { user_code, verification_uri, verification_uri_complete, timeout } => {
                let paint = Paint::stderr();
                self.line(&format!(
                    "To sign in, open {} on any device and enter the code {}",
                    paint.bold(&verification_uri),
                    paint.bold(&user_code)
                ));
                if let Some(complete) = verification_uri_complete {
                    self.line(&format!("  (or open {complete}, which fills the code in)"));
                }
                self.countdown("waiting for your approval", timeout);
            }
        }
    }

    /// On a terminal, "what (4:58 left)…" redrawn every second until the next
    /// step; elsewhere one line. The first redraw waits a second, so whatever
    /// the step prints right after (the URL to open) is not overdrawn.
    fn countdown(&self, what: &str, timeout: Duration) {
        if !self.in_place {
            self.line(&format!("{what} (up to {} s)…", timeout.as_secs()));
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let text = format!("{}{what}", self.label);
        let task = tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
            loop {
                tick.tick().await;
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{text} ({} left)…", clock(left));
                if left.is_zero() {
                    break;
                }
            }
        });
        *self.countdown.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    fn stop_countdown(&self) {
        if let Some(task) = self.countdown.lock().unwrap_or_else(PoisonError::into_inner).take() {
            task.abort();
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_countdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_paint() {
        assert_eq!(clock(Duration::from_secs(298)), "4:58");
        assert_eq!(clock(Duration::from_secs(5)), "0:05");
        assert_eq!(Paint(false).red("x"), "x");
        assert_eq!(Paint(true).green("ok"), "\x1b[32mok\x1b[0m");
    }
}
