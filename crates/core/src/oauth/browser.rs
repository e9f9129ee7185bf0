//! Opening the authorization URL.
//!
//! An interface, because who shows the page differs: the tray uses Tauri's
//! opener, the CLI the system browser or `$BROWSER` (or prints the URL), tests
//! and the conformance client a scripted HTTP client.

use crate::util::text::error_text;
use std::future::Future;
use std::pin::Pin;

/// Boxed future returned by [`Browser::open`] (dyn-compatible).
pub type BrowserFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BrowserError>> + Send + 'a>>;

/// Something that sends the user (or a script) to a URL.
pub trait Browser: Send + Sync {
    /// Opens `url`. Returning does not mean the user finished signing in.
    fn open<'a>(&'a self, url: &'a str) -> BrowserFuture<'a>;
}

/// The browser could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("cannot start the browser `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the browser `{program}` failed ({status})")]
    Failed { program: String, status: std::process::ExitStatus },
    #[error("cannot open the system browser")]
    System(#[source] std::io::Error),
    /// The authorization page answered with an error instead of a redirect
    /// (a scripted browser can see this; a person sees the page).
    #[error("the authorization page answered HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    /// The URL fails the endpoint rule ([`super::endpoint::check_endpoint`]):
    /// it never reaches a browser or the OS launcher.
    #[error("refusing to open `{url}` in a browser: {reason}")]
    Unsafe { url: String, reason: super::endpoint::UnsafeUrl },
    #[error("{0}")]
    Other(String),
}

/// The last check before a URL goes to any browser, the OS launcher or the
/// screen: every front end's [`Browser`] calls it (and the engine does, before
/// handing the URL over), so a `javascript:`, `file:` or `smb:` URL or plain
/// `http://` to another host can never be launched, whoever built the URL.
pub fn check_browser_url(url: &str) -> Result<(), BrowserError> {
    super::endpoint::check_endpoint(url)
        .map(|_| ())
        .map_err(|reason| BrowserError::Unsafe { url: super::endpoint::shown(url), reason })
}

/// Runs a command with the URL as its last argument (`$BROWSER`), or in place
/// of `%s` when the command contains it.
#[derive(Debug, Clone)]
pub struct CommandBrowser {
    program: String,
    args: Vec<String>,
}

impl CommandBrowser {
    /// Parses a `$BROWSER`-style value: whitespace-separated words; a
    /// colon-separated list uses its first entry.
    pub fn from_spec(spec: &str) -> Option<Self> {
        let first = spec.split(':').map(str::trim).find(|s| !s.is_empty())?;
        let mut words = first.split_whitespace().map(str::to_owned);
        let program = words.next()?;
        Some(Self { program, args: words.collect() })
    }

    /// The command line for `url`.
    fn command(&self, url: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.program);
        let mut substituted = false;
        for arg in &self.args {
            if arg.contains("%s") {
                cmd.arg(arg.replace("%s", url));
                substituted = true;
            } else {
                cmd.arg(arg);
            }
        }
        if !substituted {
            cmd.arg(url);
        }
        cmd
    }
}

impl Browser for CommandBrowser {
    fn open<'a>(&'a self, url: &'a str) -> BrowserFuture<'a> {
        Box::pin(async move {
            check_browser_url(url)?;
            let mut cmd = tokio::process::Command::from(self.command(url));
            cmd.stdin(std::process::Stdio::null()).kill_on_drop(false);
            let status =
                cmd.status().await.map_err(|source| BrowserError::Spawn { program: self.program.clone(), source })?;
            if status.success() { Ok(()) } else { Err(BrowserError::Failed { program: self.program.clone(), status }) }
        })
    }
}

/// The browser every front end signs in with: the command in `$BROWSER`
/// when it names one (as terminal programs honour it), else `desktop` (the
/// OS launcher: [`SystemBrowser`] for the CLI, the opener plugin in the tray).
pub fn chosen_browser(desktop: Box<dyn Browser>) -> Box<dyn Browser> {
    match std::env::var("BROWSER").ok().as_deref().and_then(CommandBrowser::from_spec) {
        Some(command) => Box::new(command),
        None => desktop,
    }
}

/// The desktop's default browser.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemBrowser;

impl Browser for SystemBrowser {
    fn open<'a>(&'a self, url: &'a str) -> BrowserFuture<'a> {
        Box::pin(async move {
            check_browser_url(url)?;
            let url = url.to_owned();
            tokio::task::spawn_blocking(move || open::that_detached(url))
                .await
                .map_err(|e| BrowserError::Other(format!("browser task failed: {e}")))?
                .map_err(BrowserError::System)
        })
    }
}

/// A scripted "browser" for tests, benchmarks and the conformance client: it
/// fetches the authorization URL, follows its redirects (at most 10) and
/// stops after delivering one to a loopback address — the redirect URI. It
/// works with authorization servers that approve at once (test servers).
#[derive(Debug, Clone)]
pub struct HeadlessBrowser {
    http: super::http::Http,
}

impl HeadlessBrowser {
    pub fn new(http: super::http::Http) -> Self {
        Self { http }
    }
}

impl Browser for HeadlessBrowser {
    fn open<'a>(&'a self, url: &'a str) -> BrowserFuture<'a> {
        Box::pin(async move {
            let mut next = url::Url::parse(url)
                .map_err(|e| BrowserError::Other(format!("cannot open the authorization URL: {e}")))?;
            for _ in 0..10 {
                let is_redirect_target =
                    next.path() == super::loopback::CALLBACK_PATH && super::http::is_loopback_host(&next);
                let request = self
                    .http
                    .reqwest_no_redirects()
                    .get(next.clone())
                    .build()
                    .map_err(|e| BrowserError::Other(error_text(&e)))?;
                let response = self.http.send(request, false).await.map_err(|e| {
                    // The redirect's URL carries the authorization code: never in a message.
                    if is_redirect_target {
                        BrowserError::Other("cannot deliver the redirect to the loopback listener".to_owned())
                    } else {
                        BrowserError::Other(error_text(&e))
                    }
                })?;
                if is_redirect_target {
                    return Ok(());
                }
                let location = response.headers.get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
                match (response.status.is_redirection(), location) {
                    (true, Some(location)) => {
                        next = next.join(location).map_err(|e| BrowserError::Other(format!("bad redirect: {e}")))?;
                    }
                    _ => {
                        let body = String::from_utf8_lossy(&response.body).chars().take(200).collect::<String>();
                        return Err(BrowserError::Rejected { status: response.status.as_u16(), body });
                    }
                }
            }
            Err(BrowserError::Other("too many redirects from the authorization page".to_owned()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(spec: &str, url: &str) -> Vec<String> {
        let b = CommandBrowser::from_spec(spec).expect("a command");
        let cmd = b.command(url);
        std::iter::once(cmd.get_program().to_string_lossy().into_owned())
            .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
            .collect()
    }

    #[test]
    fn browser_specs() {
        assert_eq!(args("firefox", "https://x/?a=1"), ["firefox", "https://x/?a=1"]);
        assert_eq!(args("w3m -o x", "u"), ["w3m", "-o", "x", "u"]);
        assert_eq!(args("open %s --new", "u"), ["open", "u", "--new"]);
        assert_eq!(args(":lynx:w3m", "u"), ["lynx", "u"]);
        assert!(CommandBrowser::from_spec("  ").is_none());
    }

    #[tokio::test]
    async fn runs_the_command_with_the_url() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("url.txt");
        // sh -c SCRIPT URL: the URL arrives as $0.
        let browser = CommandBrowser {
            program: "sh".to_owned(),
            args: vec!["-c".to_owned(), format!("printf %s \"$0\" > '{}'", out.display())],
        };
        browser.open("https://as.example/authorize?x=1").await?;
        assert_eq!(std::fs::read_to_string(&out)?, "https://as.example/authorize?x=1");
        std::fs::remove_file(&out)?;
        for hostile in ["javascript:alert(1)", "file:///etc/passwd", "smb://evil.example/s", "http://evil.example/a"] {
            let refused = browser.open(hostile).await;
            assert!(matches!(refused, Err(BrowserError::Unsafe { .. })), "{hostile}: {refused:?}");
            assert!(!out.exists(), "{hostile} reached the command");
        }
        let failing = CommandBrowser::from_spec("false").expect("a command");
        assert!(matches!(failing.open("https://u.example/").await, Err(BrowserError::Failed { .. })));
        let missing = CommandBrowser::from_spec("/nonexistent/browser").expect("a command");
        assert!(matches!(missing.open("https://u.example/").await, Err(BrowserError::Spawn { .. })));
        Ok(())
    }
}
