//! The app's own settings file, its logging (filters, the daily log file),
//! and what it needs to know of the desktop's entries.

pub(crate) mod desktop_entry;
pub(crate) mod log_file;
pub(crate) mod logging;
pub(crate) mod settings;
