//! The other MCP clients, for the tray: their servers read on request (the
//! files are small and bounded; nothing watches them), and "Use in
//! <client>". The rules live in `crate::clients`; this only supplies the
//! service's current view and vault.

use std::time::SystemTime;

use super::{Service, ServiceError, lock};
use crate::clients::{ClientKind, ClientsReport, UseInDone, load_clients_report, use_in};
use crate::vault::VaultError;

impl Service {
    /// Every other client's remote servers and our list, grouped by client,
    /// with our sign-in state for each URL (the current view's for the
    /// agent's grants, the vault's for ours), and the problems of our list.
    pub async fn clients(&self) -> (ClientsReport, Vec<String>) {
        let view = self.current();
        let vault = match lock(&self.inner().engine).as_ref() {
            Some(engine) => Ok(engine.vault.clone()),
            None => Err(VaultError::Unavailable("the keychain is not open yet".to_owned())),
        };
        tokio::task::spawn_blocking(move || load_clients_report(&view.snapshot, &view.report, &vault))
            .await
            .unwrap_or_default()
    }

    /// "Use in <client>": routes the server through `program` in that
    /// client's config, exactly as `mcp-auth setup <client> <server> --write`.
    pub async fn use_in(&self, client: ClientKind, server: String, program: String) -> Result<UseInDone, ServiceError> {
        let snapshot = self.current().snapshot.clone();
        tokio::task::spawn_blocking(move || use_in(client, &server, &snapshot, &program, SystemTime::now()))
            .await
            .map_err(|_| ServiceError::Stopped)?
            .map_err(ServiceError::Setup)
    }
}
