//! What front ends render: the status model, live activity, the tray menu
//! and the status window's rows, all plain data derived from the engine.

pub(crate) mod activity;
pub(crate) mod details;
pub(crate) mod menu;
pub(crate) mod status;
