//! The credential of the proxied request: its `Authorization: Bearer` token, or the
//! configured cookie (`[server] cookie = "session"`) when it has no `Authorization` header.

use authcache::tower::{AuthRejection, bearer_token};
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

/// What the request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A bearer token (from the header or the cookie).
    Token(&'a str),
    /// Nothing: no `Authorization` header (or another scheme) and no such cookie.
    Missing,
    /// Unreadable: two `Authorization` headers, a Bearer scheme with no token, or two
    /// cookies of that name.
    Malformed,
}

/// Reads the credential of `headers`.
pub fn read<'a>(headers: &'a HeaderMap, cookie: Option<&str>) -> Credential<'a> {
    match bearer_token(headers) {
        Ok(Some(token)) => return Credential::Token(token),
        Err(AuthRejection::AmbiguousCredentials | AuthRejection::MalformedToken) => {
            return Credential::Malformed;
        }
        Ok(None) | Err(_) => {}
    }
    // A request with Basic (or any other) credentials is not a cookie request.
    if headers.contains_key(AUTHORIZATION) {
        return Credential::Missing;
    }
    let Some(name) = cookie else {
        return Credential::Missing;
    };
    let mut found = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'));
    match (found.next(), found.next()) {
        (Some(token), None) if !token.is_empty() => Credential::Token(token),
        (Some(_), Some(_)) => Credential::Malformed,
        _ => Credential::Missing,
    }
}
