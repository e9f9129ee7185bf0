//! Is anything going to show our tray icon?
//!
//! On Linux the icon is a StatusNotifierItem, shown only when a panel owns
//! `org.kde.StatusNotifierWatcher` on the session bus. Without one the app
//! keeps running (the icon appears when a panel starts), but the user should
//! learn why they see nothing, so we say it in the log.

/// Logs a warning when no tray host is present. Never fails the app.
#[cfg(target_os = "linux")]
pub fn warn_if_missing() {
    use gio::prelude::*;
    const WATCHER: &str = "org.kde.StatusNotifierWatcher";
    let bus = match gio::bus_get_sync(gio::BusType::Session, gio::Cancellable::NONE) {
        Ok(bus) => bus,
        Err(e) => {
            tracing::warn!(error = %e, "no D-Bus session bus: the tray icon cannot be shown");
            return;
        }
    };
    let reply = bus.call_sync(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "NameHasOwner",
        Some(&(WATCHER,).to_variant()),
        Some(glib::VariantTy::new("(b)").unwrap_or(glib::VariantTy::ANY)),
        gio::DBusCallFlags::NONE,
        2000,
        gio::Cancellable::NONE,
    );
    match reply.ok().and_then(|v| v.get::<(bool,)>()) {
        Some((true,)) => tracing::debug!("a tray host is present"),
        _ => tracing::warn!(
            "no tray host ({WATCHER}) on the session bus: the app keeps running and its icon appears when a panel with a system tray starts"
        ),
    }
}

/// Other platforms always have a tray.
#[cfg(not(target_os = "linux"))]
pub fn warn_if_missing() {}
