//! Whose grant is this: the client a stored grant belongs to, compared with
//! the client the agent's config names.
//!
//! When `oauth.client_id` / `oauth.client_secret` in the config differ from
//! the registration on disk, newer agents (v0.20+,
//! `_invalidate_tokens_on_client_change`) delete the token file and
//! `meta.json` and rewrite `client.json` from the config: tokens minted for
//! the old client would only fail with `invalid_client`. The vault must
//! agree: a grant of a client the config no longer names is never refreshed
//! or exported again, and the status says a sign-in is needed and why.
//!
//! The rule is the agent's: only a configured `client_id` can supersede a
//! registration (dynamically registered clients are the agent's and ours to
//! manage), and the secret counts too (a rotated secret is another client
//! for the agent). Secrets are compared by digest so the status model can
//! carry the identity without carrying the secret.

use sha2::{Digest, Sha256};

use crate::hermes::config::OAuthSettings;
use crate::oauth::client::ClientRecord;
use crate::util::secret::SecretString;

/// A client's identity: its id and a digest of its secret (never the secret).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub client_id: String,
    secret_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("client_id", &self.client_id)
            .field("has_secret", &self.secret_digest.is_some())
            .finish()
    }
}

/// The words for a superseded client (shown by `status`, the tray, and as
/// the refresh error).
pub const SUPERSEDED: &str = "the configured OAuth client changed (oauth.client_id / client_secret); these credentials belong to the previous client, which the agent discarded: sign in again";

impl ClientIdentity {
    fn new(client_id: &str, secret: Option<&SecretString>) -> Self {
        Self {
            client_id: client_id.to_owned(),
            secret_digest: secret.map(|s| Sha256::digest(s.expose().as_bytes()).into()),
        }
    }

    /// The identity of a stored registration.
    pub fn of(client: &ClientRecord) -> Self {
        Self::new(&client.client_id, client.client_secret.as_ref())
    }

    /// The identity the config pins, when it names a client.
    pub fn configured(oauth: &OAuthSettings) -> Option<Self> {
        oauth.client_id.as_deref().map(|id| Self::new(id, oauth.client_secret.as_ref()))
    }

    /// Whether the config names another client than `self` (the agent then
    /// discards the grant of `self`).
    pub fn superseded_by(&self, oauth: &OAuthSettings) -> bool {
        Self::configured(oauth).is_some_and(|configured| configured != *self)
    }
}

/// Why the grant of `client` may no longer be used with `oauth`, or `None`.
pub fn superseded(client: &ClientRecord, oauth: &OAuthSettings) -> Option<&'static str> {
    ClientIdentity::of(client).superseded_by(oauth).then_some(SUPERSEDED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn client(id: &str, secret: Option<&str>) -> ClientRecord {
        ClientRecord {
            client_id: id.to_owned(),
            client_secret: secret.map(SecretString::new),
            redirect_uris: vec!["http://127.0.0.1:1/callback".to_owned()],
            token_endpoint_auth_method: "none".to_owned(),
            grant_types: Vec::new(),
            response_types: Vec::new(),
            scope: None,
            client_name: None,
            client_id_issued_at: None,
        }
    }

    fn settings(id: Option<&str>, secret: Option<&str>) -> OAuthSettings {
        OAuthSettings {
            client_id: id.map(str::to_owned),
            client_secret: secret.map(SecretString::new),
            ..Default::default()
        }
    }

    #[rstest]
    // No configured client: a registration is never superseded (dynamic registration).
    #[case(client("dyn-1", None), settings(None, None), false)]
    #[case(client("dyn-1", Some("s")), settings(None, None), false)]
    // The same client, with the same secret or none on either side.
    #[case(client("cid", None), settings(Some("cid"), None), false)]
    #[case(client("cid", Some("s")), settings(Some("cid"), Some("s")), false)]
    // Another id, or a changed, added or dropped secret: another client.
    #[case(client("dyn-1", None), settings(Some("cid"), None), true)]
    #[case(client("old", Some("s")), settings(Some("new"), Some("s")), true)]
    #[case(client("cid", Some("s")), settings(Some("cid"), Some("rotated")), true)]
    #[case(client("cid", None), settings(Some("cid"), Some("s")), true)]
    #[case(client("cid", Some("s")), settings(Some("cid"), None), true)]
    fn a_configured_client_supersedes_another(
        #[case] stored: ClientRecord,
        #[case] oauth: OAuthSettings,
        #[case] want: bool,
    ) {
        assert_eq!(superseded(&stored, &oauth).is_some(), want);
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", ClientIdentity::of(&client("cid", Some("hunter2"))));
        assert!(!shown.contains("hunter2") && shown.contains("has_secret: true"), "{shown}");
    }
}
