//! Follows the agent's files live: config, `.env`, profiles and token files.
//!
//! One background thread owns a [`notify`] watcher and publishes a fresh
//! [`Snapshot`] through a `tokio::sync::watch` channel after each burst of
//! relevant changes settles (200 ms of quiet, at most 1 s after the first
//! event, so a change reaches subscribers well within 2 s).
//!
//! Why not `notify-debouncer-full`: its thread wakes every tick forever, and
//! this app must not poll. Here the thread sleeps in `recv()` until the OS
//! reports a change, and we reload wholesale, so rename tracking is not needed.
//!
//! Folders are watched non-recursively (the agent's home holds busy files we
//! don't care about): the root, `profiles/`, each profile, and each
//! `mcp-tokens/`. Watching folders rather than files survives editors that
//! save by rename and files that are deleted and re-created. When the root
//! does not exist yet, its nearest existing ancestor is watched so its creation
//! is noticed. Watches are recomputed after every reload.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::watch;

use crate::hermes::home::HermesRoot;
use crate::hermes::snapshot::{Snapshot, SnapshotLoader};

/// Quiet time that ends a burst of events.
const SETTLE: Duration = Duration::from_millis(200);
/// Longest wait after the first event of a burst.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// The watcher could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch files")]
    Notify(#[from] notify::Error),
    #[error("cannot start the watcher thread")]
    Thread(#[from] std::io::Error),
}

enum Msg {
    Fs(notify::Result<notify::Event>),
    Stop,
}

/// Publishes a new [`Snapshot`] whenever the agent's files change.
#[derive(Debug)]
pub struct HomeWatcher {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    control: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Fs(_) => "Fs",
            Msg::Stop => "Stop",
        })
    }
}

impl HomeWatcher {
    /// Loads the first snapshot now and starts following changes.
    pub fn start(root: HermesRoot) -> Result<Self, WatchError> {
        let (control, events) = mpsc::channel::<Msg>();
        let fs_tx = control.clone();
        let watcher = notify::recommended_watcher(move |res| {
            // The receiver is gone only while shutting down.
            let _ = fs_tx.send(Msg::Fs(res));
        })?;
        let mut state = WatchState { root, loader: SnapshotLoader::new(), watcher, watched: BTreeSet::new() };
        state.update_watches();
        let first = Arc::new(state.loader.load(&state.root));
        let (publish, snapshots) = watch::channel(first);
        let thread = std::thread::Builder::new()
            .name("mcp-auth-watch".to_owned())
            .spawn(move || state.run(&events, &publish))?;
        Ok(Self { snapshots, control, thread: Some(thread) })
    }

    /// A receiver that sees every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    /// The latest snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }
}

impl Drop for HomeWatcher {
    fn drop(&mut self) {
        let _ = self.control.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct WatchState {
    root: HermesRoot,
    loader: SnapshotLoader,
    watcher: notify::RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
}

impl WatchState {
    fn run(mut self, events: &mpsc::Receiver<Msg>, publish: &watch::Sender<Arc<Snapshot>>) {
        loop {
            // Sleep until the OS reports something: no timer while idle.
            match events.recv() {
                Ok(Msg::Fs(ev)) if self.is_relevant(&ev) => {}
                Ok(Msg::Fs(_)) => continue,
                Ok(Msg::Stop) | Err(_) => return,
            }
            if !settle(events) {
                return;
            }
            self.update_watches();
            let snapshot = self.loader.load(&self.root);
            tracing::debug!(homes = snapshot.homes.len(), "agent files changed; publishing a new snapshot");
            publish.send_replace(Arc::new(snapshot));
        }
    }

    fn is_relevant(&self, ev: &notify::Result<notify::Event>) -> bool {
        let ev = match ev {
            Ok(ev) => ev,
            // Overflowed queues and similar: reload to be safe.
            Err(e) => {
                tracing::warn!(error = %e, "file watch error; reloading");
                return true;
            }
        };
        if matches!(ev.kind, EventKind::Access(_)) {
            return false;
        }
        ev.paths.is_empty() || ev.paths.iter().any(|p| relevant_path(p, self.root.path()))
    }

    /// Watches exactly the folders wanted now.
    fn update_watches(&mut self) {
        let wanted = wanted_dirs(&self.root);
        for gone in self.watched.difference(&wanted).cloned().collect::<Vec<_>>() {
            let _ = self.watcher.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for dir in wanted {
            if self.watched.contains(&dir) {
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(e) => tracing::warn!(path = %dir.display(), error = %e, "cannot watch folder"),
            }
        }
    }
}

/// Waits until events stop for [`SETTLE`] (or [`MAX_DELAY`] passed); false
/// when asked to stop.
fn settle(events: &mpsc::Receiver<Msg>) -> bool {
    let deadline = Instant::now() + MAX_DELAY;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        match events.recv_timeout(SETTLE.min(left)) {
            Ok(Msg::Fs(_)) => {}
            Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            Err(mpsc::RecvTimeoutError::Timeout) => return true,
        }
    }
}

/// The folders to watch for `root`.
fn wanted_dirs(root: &HermesRoot) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    if !root.path().is_dir() {
        if let Some(ancestor) = root.path().ancestors().skip(1).find(|p| p.is_dir()) {
            dirs.insert(ancestor.to_path_buf());
        }
        return dirs;
    }
    // Not the parent: the root's own watch reports it deleted or moved away
    // (inotify's IN_DELETE_SELF / IN_MOVE_SELF), and only then is the
    // nearest existing ancestor watched, for its return. Watching the parent
    // all the time woke the app on every change beside the root (thousands
    // of times a minute in a busy `/tmp`).
    let profiles = root.profiles_dir();
    if profiles.is_dir() {
        dirs.insert(profiles);
    }
    for home in root.homes() {
        let tokens = home.tokens_dir();
        if tokens.is_dir() {
            dirs.insert(tokens);
        }
        dirs.insert(home.path);
    }
    dirs
}

/// Whether a changed path can affect what we show.
fn relevant_path(path: &Path, root: &Path) -> bool {
    const NAMES: [&str; 4] = ["config.yaml", ".env", "mcp-tokens", "profiles"];
    let name_is = |p: &Path, names: &[&str]| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| names.contains(&n));
    name_is(path, &NAMES)
        || path.parent().is_some_and(|parent| name_is(parent, &["mcp-tokens", "profiles"]))
        || root.starts_with(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("/h/.hermes/config.yaml", true)]
    #[case("/h/.hermes/.env", true)]
    #[case("/h/.hermes/mcp-tokens/x.json", true)]
    #[case("/h/.hermes/mcp-tokens", true)]
    #[case("/h/.hermes/profiles/work", true)]
    #[case("/h/.hermes/profiles/work/config.yaml", true)]
    #[case("/h/.hermes", true)]
    #[case("/h", true)]
    #[case("/h/.hermes/state.db", false)]
    #[case("/h/.hermes/logs/agent.log", false)]
    #[case("/h/.bash_history", false)]
    fn relevance(#[case] path: &str, #[case] want: bool) {
        assert_eq!(relevant_path(Path::new(path), Path::new("/h/.hermes")), want);
    }

    #[test]
    fn watches_ancestor_until_root_exists() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = HermesRoot::at(dir.path().join("a").join("hermes"));
        assert_eq!(wanted_dirs(&root), BTreeSet::from([dir.path().to_path_buf()]));
        std::fs::create_dir_all(dir.path().join("a/hermes/profiles/work/mcp-tokens"))?;
        // Once the root exists its parent is no longer watched: the root's
        // own watch says when it goes.
        let want: BTreeSet<PathBuf> =
            ["a/hermes", "a/hermes/profiles", "a/hermes/profiles/work", "a/hermes/profiles/work/mcp-tokens"]
                .iter()
                .map(|p| dir.path().join(p))
                .collect();
        assert_eq!(wanted_dirs(&root), want);
        Ok(())
    }
}
