//! The agent's side: where Hermes keeps its homes and profiles, its `config.yaml`
//! (with `.env` and `${VAR}` interpolation) read the way the agent reads it, the
//! layout and shapes of its token store, its refresh fence, the live watcher, and
//! the exporter that writes exactly the files the agent reads.

pub(crate) mod client_identity;
pub(crate) mod config;
pub(crate) mod dotenv;
pub(crate) mod export;
pub(crate) mod fence;
pub(crate) mod files;
pub(crate) mod home;
pub(crate) mod interpolate;
pub(crate) mod layout;
pub(crate) mod snapshot;
pub(crate) mod token_file;
pub(crate) mod watch;
