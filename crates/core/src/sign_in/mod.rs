//! Signing in: "Connect" for one server (shared by the CLI and the tray), several
//! concurrent sign-ins for a long-running front end, and `doctor`, which walks
//! the same steps to say why a server will not connect.

pub(crate) mod connect;
pub(crate) mod doctor;
pub(crate) mod sign_ins;
