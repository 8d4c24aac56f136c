//! The identity headers of an allowed request: who the upstream is serving.
//!
//! | header | value |
//! |---|---|
//! | `X-Auth-Request-User` | the user id |
//! | `X-Auth-Request-Email` | the email |
//! | `X-Auth-Request-Groups` | the roles, comma-separated |
//! | `X-Auth-Request-Permissions` | the permissions, comma-separated |
//!
//! oauth2-proxy's names, so an upstream written for it reads them unchanged. With
//! `[server] forwarded_headers = true`, `X-Forwarded-User`, `-Email` and `-Groups` are sent
//! too. Every header is sent on every allowed request, empty when there is nothing to say
//! (no roles; an anonymous rule): a proxy that copies them (`copy_headers`,
//! `auth_request_set`) then overwrites whatever the client sent under the same name.

use authcache::{Principal, User};
use http::{HeaderName, HeaderValue};

/// The primary headers, in the table's order.
pub const USER: HeaderName = HeaderName::from_static("x-auth-request-user");
/// The user's email.
pub const EMAIL: HeaderName = HeaderName::from_static("x-auth-request-email");
/// The user's roles.
pub const GROUPS: HeaderName = HeaderName::from_static("x-auth-request-groups");
/// The user's permissions.
pub const PERMISSIONS: HeaderName = HeaderName::from_static("x-auth-request-permissions");
/// `forwarded_headers`: the user id.
pub const FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
/// `forwarded_headers`: the email.
pub const FORWARDED_EMAIL: HeaderName = HeaderName::from_static("x-forwarded-email");
/// `forwarded_headers`: the roles.
pub const FORWARDED_GROUPS: HeaderName = HeaderName::from_static("x-forwarded-groups");

/// A stored value that cannot be a header value (a control character in a user id or an
/// email): the request is refused rather than forwarded without the identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {0} of the user cannot be sent as a header value (control character)")]
pub struct Unrepresentable(pub &'static str);

/// The headers for `principal` (`None`: an anonymous request, every header empty).
///
/// # Errors
/// [`Unrepresentable`] when a stored value holds a control character.
pub fn headers(
    principal: Option<&Principal<User>>,
    forwarded: bool,
) -> Result<Vec<(HeaderName, HeaderValue)>, Unrepresentable> {
    let (user, email, groups, permissions) = match principal {
        Some(who) => (
            who.id().to_owned(),
            who.user.email.clone(),
            who.roles.join(","),
            who.permissions.join(","),
        ),
        None => Default::default(),
    };
    let value = |text: &str, what| {
        HeaderValue::from_bytes(text.as_bytes()).map_err(|_| Unrepresentable(what))
    };
    let (user, email, groups) = (
        value(&user, "id")?,
        value(&email, "email")?,
        value(&groups, "roles")?,
    );
    let mut headers = vec![
        (USER, user.clone()),
        (EMAIL, email.clone()),
        (GROUPS, groups.clone()),
        (PERMISSIONS, value(&permissions, "permissions")?),
    ];
    if forwarded {
        headers.extend([
            (FORWARDED_USER, user),
            (FORWARDED_EMAIL, email),
            (FORWARDED_GROUPS, groups),
        ]);
    }
    Ok(headers)
}
