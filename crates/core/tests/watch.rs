//! The watcher against real files: edits, rename-replace, delete + re-create,
//! token files and new profiles all reach a subscriber within 2 s.
#![expect(clippy::expect_used, reason = "a test fails loudly when the file system misbehaves")]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::{HermesRoot, HomeWatcher, Snapshot};
use tokio::sync::watch::Receiver;

/// Waits (at most 2 s, the promise we make) for a snapshot that satisfies `want`.
async fn expect_snapshot(rx: &mut Receiver<Arc<Snapshot>>, what: &str, want: impl Fn(&Snapshot) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        if want(&rx.borrow_and_update()) {
            return;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("watcher stopped while waiting for: {what}"),
            Err(_) => panic!("no snapshot within 2 s: {what}"),
        }
    }
}

fn names(s: &Snapshot, home: usize) -> Vec<String> {
    s.homes.get(home).map(|h| h.servers.iter().map(|e| e.name.clone()).collect()).unwrap_or_default()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_edits_renames_deletes_and_profiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("hermes");
    let config = root.join("config.yaml");

    // The home does not exist yet: its creation must be noticed.
    let watcher = HomeWatcher::start(HermesRoot::at(&root)).expect("watcher starts");
    let mut rx = watcher.subscribe();
    assert!(names(&watcher.current(), 0).is_empty());

    std::fs::create_dir_all(&root).expect("mkdir");
    write(&config, "mcp_servers:\n  one:\n    command: a\n");
    expect_snapshot(&mut rx, "home created with one server", |s| names(s, 0) == ["one"]).await;

    // Plain in-place edit.
    write(&config, "mcp_servers:\n  one:\n    command: a\n  two:\n    command: b\n");
    expect_snapshot(&mut rx, "in-place edit", |s| names(s, 0) == ["one", "two"]).await;

    // Editor-style save: write a temp file, rename it over the config.
    let tmp = root.join(".config.yaml.swp");
    write(&tmp, "mcp_servers:\n  renamed:\n    command: a\n");
    std::fs::rename(&tmp, &config).expect("rename");
    expect_snapshot(&mut rx, "rename-replace", |s| names(s, 0) == ["renamed"]).await;

    // Broken file: the last good list stays, with the error beside it.
    write(&config, "mcp_servers:\n  x: [\n");
    expect_snapshot(&mut rx, "error kept with last good list", |s| {
        s.homes[0].error.is_some() && names(s, 0) == ["renamed"]
    })
    .await;

    // Deleted, then re-created.
    std::fs::remove_file(&config).expect("remove");
    expect_snapshot(&mut rx, "deleted", |s| s.homes[0].config_missing).await;
    write(&config, "mcp_servers:\n  back:\n    command: a\n");
    expect_snapshot(&mut rx, "re-created", |s| names(s, 0) == ["back"]).await;

    // A token file appearing publishes a new snapshot too (status depends on it).
    std::fs::create_dir_all(root.join("mcp-tokens")).expect("mkdir");
    let before = rx.borrow_and_update().clone();
    write(&root.join("mcp-tokens").join("back.json"), "{}");
    expect_snapshot(&mut rx, "token file change", |s| !std::ptr::eq(s, &*before)).await;

    // A new profile with its own config.
    let profile = root.join("profiles").join("work");
    std::fs::create_dir_all(&profile).expect("mkdir");
    write(&profile.join("config.yaml"), "mcp_servers:\n  w:\n    command: a\n");
    expect_snapshot(&mut rx, "new profile", |s| {
        s.homes.len() == 2 && s.homes[1].home.profile.as_deref() == Some("work") && names(s, 1) == ["w"]
    })
    .await;

    // The whole root deleted and re-created.
    std::fs::remove_dir_all(&root).expect("rm -r");
    expect_snapshot(&mut rx, "root deleted", |s| s.homes.len() == 1 && s.homes[0].config_missing).await;
    std::fs::create_dir_all(&root).expect("mkdir");
    write(&config, "mcp_servers:\n  again:\n    command: a\n");
    expect_snapshot(&mut rx, "root re-created", |s| names(s, 0) == ["again"]).await;

    // The root moved away and back (its parent is not watched while it exists).
    let away = root.with_file_name("moved-away");
    std::fs::rename(&root, &away).expect("move away");
    expect_snapshot(&mut rx, "root moved away", |s| s.homes.len() == 1 && s.homes[0].config_missing).await;
    std::fs::rename(&away, &root).expect("move back");
    expect_snapshot(&mut rx, "root moved back", |s| names(s, 0) == ["again"]).await;

    drop(watcher);
}

#[tokio::test]
async fn unrelated_files_do_not_publish() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(&dir.path().join("config.yaml"), "mcp_servers: {}\n");
    let watcher = HomeWatcher::start(HermesRoot::at(dir.path())).expect("watcher starts");
    let mut rx = watcher.subscribe();
    rx.borrow_and_update();
    write(&dir.path().join("state.db"), "busy agent data");
    std::fs::create_dir_all(dir.path().join("logs")).expect("mkdir");
    write(&dir.path().join("logs").join("agent.log"), "line");
    let changed = tokio::time::timeout(Duration::from_millis(1500), rx.changed()).await;
    assert!(changed.is_err(), "an unrelated file published a snapshot");
}
