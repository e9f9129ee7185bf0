//! Noticing that the machine woke up from sleep.
//!
//! Timers run on the monotonic clock, which stops while the machine sleeps:
//! a refresh due during the night would otherwise wait. On Linux, logind
//! announces sleep and wake-up with `PrepareForSleep(bool)` on the system
//! bus; we subscribe to that signal (no polling) and call `woke` on wake-up.
//! The core's scheduler then compares wall-clock deadlines and catches up.

use tauri::AppHandle;

/// Calls `woke` each time the machine resumes. Without a system bus (a
/// container, a test session) nothing is watched and the scheduler's next
/// timer catches up instead.
#[cfg(target_os = "linux")]
pub fn on_resume(app: AppHandle, woke: fn(AppHandle)) {
    let bus = match gio::bus_get_sync(gio::BusType::System, gio::Cancellable::NONE) {
        Ok(bus) => bus,
        Err(e) => {
            tracing::info!(error = %e, "no system bus: resume from sleep is not watched");
            return;
        }
    };
    let id = bus.signal_subscribe(
        Some("org.freedesktop.login1"),
        Some("org.freedesktop.login1.Manager"),
        Some("PrepareForSleep"),
        Some("/org/freedesktop/login1"),
        None,
        gio::DBusSignalFlags::NONE,
        move |_, _, _, _, _, params| {
            if params.get::<(bool,)>() == Some((false,)) {
                tracing::info!("resumed from sleep");
                woke(app.clone());
            }
        },
    );
    // The subscription lives as long as the connection, i.e. the app.
    std::mem::forget(bus);
    tracing::debug!(?id, "watching for resume from sleep");
}

/// Elsewhere the scheduler's next timer catches up after a wall-clock jump.
#[cfg(not(target_os = "linux"))]
pub fn on_resume(_app: AppHandle, _woke: fn(AppHandle)) {}
