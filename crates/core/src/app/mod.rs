//! The app's own settings file and its logging (filters, the daily log file).

pub(crate) mod log_file;
pub(crate) mod logging;
pub(crate) mod settings;
