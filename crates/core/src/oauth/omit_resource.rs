//! For authorization servers that reject RFC 8707 `resource` (Microsoft Entra
//! v2 answers AADSTS9010010): an [`OAuthHttpClient`] that removes the
//! parameter from form-encoded request bodies before they leave. rmcp always
//! adds `resource`; this is the per-server opt-out (the authorization URL is
//! stripped by the engine).

use rmcp::transport::auth::{OAuthHttpClient, OAuthHttpClientFuture, OAuthHttpRequest};

use super::http::Http;

/// [`Http`] minus `resource` in form bodies.
#[derive(Debug, Clone)]
pub struct OmitResource(pub Http);

impl OAuthHttpClient for OmitResource {
    fn execute(&self, mut request: OAuthHttpRequest) -> OAuthHttpClientFuture<'_> {
        let is_form = request
            .request
            .headers()
            .get(oauth2::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let body = std::mem::take(request.request.body_mut());
            *request.request.body_mut() = without_param(&body, "resource");
        }
        self.0.execute(request)
    }
}

/// A form body without parameter `name`.
pub fn without_param(body: &[u8], name: &str) -> Vec<u8> {
    let kept = url::form_urlencoded::parse(body).filter(|(k, _)| k != name);
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_resource() {
        let body = b"grant_type=refresh_token&refresh_token=r%2Bx&resource=https%3A%2F%2Fx%2Fmcp&client_id=c";
        assert_eq!(
            without_param(body, "resource"),
            b"grant_type=refresh_token&refresh_token=r%2Bx&client_id=c".to_vec()
        );
    }
}
