//! Reading the bearer token of a request (RFC 6750 §2.1), and authenticating it: the one
//! path of the tower layers and the axum extractor, so both accept exactly the same tokens.

use authcache_users::UserRecord;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::AuthRejection;
use crate::{AuthService, Principal};

/// The token of the request's `Authorization: Bearer` header; `Ok(None)` when there are no
/// bearer credentials (no header, or another scheme such as `Basic`).
///
/// Handlers that act on the presented token itself (a logout) read it with this, so that
/// they accept exactly what [`AuthLayer`](super::AuthLayer) accepted.
///
/// # Errors
/// [`AuthRejection::AmbiguousCredentials`] for more than one `Authorization` header;
/// [`AuthRejection::MalformedToken`] when the Bearer scheme carries no RFC 6750 token.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthRejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    // Two headers could be read differently by a proxy and by us: refuse to pick one.
    if values.next().is_some() {
        return Err(AuthRejection::AmbiguousCredentials);
    }
    let value = value.to_str().map_err(|_| AuthRejection::MalformedToken)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    // RFC 7235: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim_start_matches(' ');
    if is_token68(token) {
        Ok(Some(token))
    } else {
        Err(AuthRejection::MalformedToken)
    }
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// Every JWT is one; anything else (spaces, a second scheme, nothing) is not a token.
fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Authenticates the bearer token of `headers`: the one path of the layer and the extractor.
pub(crate) async fn authenticate_headers<U: UserRecord>(
    auth: &AuthService<U>,
    headers: &HeaderMap,
) -> Result<Principal<U>, AuthRejection> {
    let token = bearer_token(headers)?.ok_or(AuthRejection::MissingToken)?;
    Ok(auth.authenticate(token).await?)
}
