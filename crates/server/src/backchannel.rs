//! OpenID Connect Back-Channel Logout 1.0: `POST /backchannel-logout`, where the identity
//! provider says that a user logged out, and the sidecar logs that user out everywhere.
//!
//! The provider posts a form with one `logout_token` (spec §2.5). [`BackchannelLogout::verify`]
//! checks it as §2.6 asks, in this order:
//!
//! 1. **size**, then the **`typ` header**: absent, `logout+jwt` (or `application/logout+jwt`,
//!    any case), or `JWT`, which Keycloak puts on every token and which is taken as no type
//!    (as the Nimbus SDK does). Any other type is another kind of JWT — an access token, an
//!    ID token typed `id_token+jwt` — and is refused before its signature is looked at
//!    (cross-JWT confusion, §4.1);
//! 2. **signature, algorithm, `exp`, `iss`, `aud`**: the [`JwtVerifier`], with the
//!    provider's keys and the issuer and audience of `[server.backchannel]` (both required:
//!    `none` is never an algorithm, a token of another client is never accepted);
//! 3. **`sub`** present: a token that names only a session (`sid`) is refused with
//!    [`LogoutTokenError::SessionOnly`], since this sidecar knows users, not sessions;
//! 4. **`iat`** present (and not in the future beyond the leeway) and **`jti`** present;
//! 5. **`events`** an object whose member `http://schemas.openid.net/event/backchannel-logout`
//!    is an object, and **no `nonce`** (what tells a logout token from an ID token);
//! 6. the **`jti`** not already accepted from the same issuer (see *Replays*).
//!
//! [`handle`] then logs the user out everywhere **as of the token's `iat`**
//! ([`AuthService::logout_all_before`]) and answers as §2.8 says: 200, or 400
//! `invalid_request` naming the check that failed (never the token), or 503.
//!
//! # Replays
//! One guard per scope. In this process, the `(iss, jti)` of every accepted token is
//! remembered until the token expires (plus the leeway), so a second delivery is refused with
//! [`LogoutTokenError::Replay`]. Across processes (the token posted to another sidecar, or
//! to this one after a restart) nothing is shared, and nothing needs to be: the logout cuts
//! at the token's `iat`, the moment the provider logged the user out, not at its delivery,
//! and cutoffs only rise. A replay anywhere refuses exactly the tokens the first delivery
//! refused — those issued before the logout — and never the login that followed it.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authcache::{AuthError, AuthService, Claims, JwtVerifier, TokenError, VerifierConfig};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// The member of `events` that makes a JWT a logout token (spec §2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// 100,000: far more logouts than a provider sends within a logout token's lifetime (a
/// couple of minutes), and a few megabytes at most (each entry is two integers).
pub const REPLAY_CAPACITY: usize = 100_000;

/// The form field the provider posts the token in.
const FIELD: &str = "logout_token";

/// Verifies the logout tokens of one identity provider, and remembers those it accepted.
pub struct BackchannelLogout {
    verifier: JwtVerifier,
    replays: Replays,
}

impl std::fmt::Debug for BackchannelLogout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackchannelLogout")
            .field("verifier", &self.verifier)
            .field("remembered", &self.replays.len())
            .finish()
    }
}

/// What a verified logout token orders: log `subject` out of every token issued before
/// `issued_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutOrder {
    /// The user (`sub`).
    pub subject: String,
    /// When the provider logged the user out (`iat`, to the microsecond when it gave one).
    pub issued_at: SystemTime,
    /// The token's id (`jti`).
    pub jti: String,
    /// The provider (`iss`).
    pub issuer: String,
}

/// Why a logout token was refused: one variant per check of §2.6. Messages name the check,
/// never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutTokenError {
    /// The signature, algorithm, `exp`, `iss` or `aud` (or the token's form) did not verify.
    #[error("the logout token does not verify: {0}")]
    Token(#[from] TokenError),
    /// The field is not a bare compact JWT with a JSON header (a `Bearer ` scheme, say).
    #[error("the logout token is not a compact JWT with a JSON header")]
    NotAJwt,
    /// The `typ` header names another kind of token.
    #[error("the `typ` header is not `logout+jwt`: this is another kind of token")]
    WrongType,
    /// A claim every logout token carries is absent.
    #[error("the logout token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// `iat` is later than now plus the clock leeway.
    #[error("the logout token's `iat` is in the future")]
    IssuedInFuture,
    /// `events` does not hold the back-channel logout event as an object.
    #[error("`events` does not hold the back-channel logout event ({LOGOUT_EVENT:?} → {{…}})")]
    NotALogoutEvent,
    /// A `nonce` claim: that is an ID token's, never a logout token's.
    #[error("the logout token carries a `nonce`, which only ID tokens do")]
    Nonce,
    /// The token names a session (`sid`) and no user (`sub`).
    #[error(
        "the logout token names a session (`sid`) and no user (`sub`): this sidecar tracks \
         users, not sessions"
    )]
    SessionOnly,
    /// A token with this `iss` and `jti` was accepted before.
    #[error("this logout token (same `iss` and `jti`) was already accepted")]
    Replay,
}

impl LogoutTokenError {
    /// What a 400 tells the provider: the check that failed, without echoing anything the
    /// token said (an algorithm name or a key id would be its text).
    fn description(&self) -> String {
        match self {
            Self::Token(TokenError::UnsupportedAlgorithm(_)) => {
                "the logout token's algorithm is not supported".into()
            }
            Self::Token(TokenError::UnknownKeyId(_)) => {
                "the logout token's key id is not one of the identity provider's keys".into()
            }
            other => other.to_string(),
        }
    }

    /// The sidecar's keys are at fault, not the token.
    fn is_configuration(&self) -> bool {
        matches!(self, Self::Token(error) if error.is_configuration())
    }
}

impl BackchannelLogout {
    /// From `[server.backchannel]`: the provider's key source, its `issuer` (or
    /// `oidc_issuer`, which implies it) and this client's `audience`.
    ///
    /// # Errors
    /// [`AuthError::Config`] naming `issuer` or `audience` when absent (the spec requires
    /// both checked), and whatever [`VerifierConfig::build`] returns.
    pub async fn from_config(config: &VerifierConfig) -> Result<Self, AuthError> {
        let missing: Vec<&str> = [
            (
                "issuer",
                config.issuer.is_empty() && config.oidc_issuer.is_none(),
            ),
            ("audience", config.audience.is_empty()),
        ]
        .into_iter()
        .filter_map(|(setting, absent)| absent.then_some(setting))
        .collect();
        if !missing.is_empty() {
            return Err(AuthError::Config(format!(
                "[server.backchannel] needs `{}`: every logout token's `iss` and `aud` must be \
                 checked (OpenID Connect Back-Channel Logout §2.6)",
                missing.join("` and `")
            )));
        }
        Ok(Self::new(config.build().await?))
    }

    /// Over a verifier that already checks the provider's issuer and this client's audience.
    pub fn new(verifier: JwtVerifier) -> Self {
        Self {
            verifier,
            replays: Replays::new(REPLAY_CAPACITY),
        }
    }

    /// Verifies one logout token (see the module docs for the checks) and remembers its
    /// `jti` until it expires.
    ///
    /// # Errors
    /// The first check that failed, as a [`LogoutTokenError`].
    pub async fn verify(&self, logout_token: &str) -> Result<LogoutOrder, LogoutTokenError> {
        self.verifier.check_size(logout_token)?;
        check_type(logout_token)?;
        let claims = match self.verifier.verify_async(logout_token).await {
            Ok(claims) => claims,
            // Only after the signature was checked: the payload is the provider's.
            Err(TokenError::MissingClaim("sub")) if names_session(logout_token) => {
                return Err(LogoutTokenError::SessionOnly);
            }
            Err(error) => return Err(error.into()),
        };
        let order = self.order(&claims)?;
        let until = claims
            .exp
            .saturating_add(self.verifier.clock_leeway().as_secs());
        let fresh = self
            .replays
            .accept(&order.issuer, &order.jti, until, unix_now());
        if fresh {
            Ok(order)
        } else {
            Err(LogoutTokenError::Replay)
        }
    }

    /// The checks the verifier does not make, on the claims it verified.
    fn order(&self, claims: &Claims) -> Result<LogoutOrder, LogoutTokenError> {
        let issuer = claims
            .iss
            .clone()
            .ok_or(LogoutTokenError::MissingClaim("iss"))?;
        if claims.aud.is_empty() {
            return Err(LogoutTokenError::MissingClaim("aud"));
        }
        let iat = claims
            .iat_micros()
            .ok_or(LogoutTokenError::MissingClaim("iat"))?;
        let issued_at = UNIX_EPOCH + Duration::from_micros(iat);
        if issued_at > SystemTime::now() + self.verifier.clock_leeway() {
            return Err(LogoutTokenError::IssuedInFuture);
        }
        let jti = claims.jti.clone().filter(|jti| !jti.is_empty());
        let jti = jti.ok_or(LogoutTokenError::MissingClaim("jti"))?;
        // The extras are the token's own JSON, parsed once already: they parse again.
        check_events(&claims.extra_claims().unwrap_or_default())?;
        Ok(LogoutOrder {
            subject: claims.sub.clone(),
            issued_at,
            jti,
            issuer,
        })
    }

    /// Forgets an accepted token whose logout could not be carried out, so that the
    /// provider's retry is not refused as a replay.
    fn forget(&self, order: &LogoutOrder) {
        self.replays.forget(&order.issuer, &order.jti);
    }
}

/// `POST /backchannel-logout`: reads the form (exactly one `logout_token`), verifies the
/// token, and logs its user out everywhere as of its `iat`.
///
/// Answers (spec §2.8), all with `Cache-Control: no-store`: **200**, empty, once the logout
/// is in force (a [`Revocation::Pending`](authcache::Revocation::Pending) one included: it
/// is retried until the shared cache records it); **400** `{"error":"invalid_request",
/// "error_description":"…"}` for a refused form or token, the description naming the check
/// that failed; **503** when the sidecar could not check the token (its keys are unusable)
/// or record the logout — the token is then not remembered, so the provider may retry.
/// Every refusal is logged at `debug` with its reason, never the token.
pub async fn handle(auth: &AuthService, logout: &BackchannelLogout, body: &[u8]) -> Response {
    let Some(token) = single_logout_token(body) else {
        tracing::debug!(target: "authcache_server::backchannel", reason = "not exactly one logout_token", "back-channel logout refused");
        return invalid_request("the form must carry exactly one `logout_token`");
    };
    let order = match logout.verify(&token).await {
        Ok(order) => order,
        Err(error) if error.is_configuration() => {
            tracing::warn!(target: "authcache_server::backchannel", %error, "back-channel logout not checked: the verifier's keys are unusable");
            return unavailable("the logout token could not be checked");
        }
        Err(error) => {
            tracing::debug!(target: "authcache_server::backchannel", reason = %error, "back-channel logout refused");
            return invalid_request(&error.description());
        }
    };
    match auth
        .logout_all_before(&order.subject, order.issued_at)
        .await
    {
        Ok(revocation) => {
            tracing::info!(target: "authcache_server::backchannel", user = %order.subject, ?revocation, "logged out everywhere by the identity provider");
            (StatusCode::OK, [(CACHE_CONTROL, "no-store")]).into_response()
        }
        Err(error) => {
            logout.forget(&order);
            tracing::warn!(target: "authcache_server::backchannel", user = %order.subject, %error, "back-channel logout not recorded");
            unavailable("the logout could not be recorded")
        }
    }
}

/// The one `logout_token` of the form; `None` for none or several.
fn single_logout_token(body: &[u8]) -> Option<String> {
    let mut tokens = form_urlencoded::parse(body)
        .filter(|(name, _)| name == FIELD)
        .map(|(_, value)| value);
    match (tokens.next(), tokens.next()) {
        (Some(token), None) => Some(token.into_owned()),
        _ => None,
    }
}

fn invalid_request(description: &str) -> Response {
    refusal(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn unavailable(description: &str) -> Response {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        description,
    )
}

fn refusal(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    let headers = [
        (CONTENT_TYPE, "application/json"),
        (CACHE_CONTROL, "no-store"),
    ];
    (status, headers, body.to_string()).into_response()
}

/// The `typ` rule (see the module docs), on the raw header.
fn check_type(token: &str) -> Result<(), LogoutTokenError> {
    #[derive(serde::Deserialize)]
    struct Header {
        typ: Option<Value>,
    }
    // A duplicate `typ` is refused too: the header would say two things.
    let header = segment(token, 0)
        .and_then(|json| serde_json::from_slice::<Header>(&json).ok())
        .ok_or(LogoutTokenError::NotAJwt)?;
    match header.typ {
        None => Ok(()),
        Some(Value::String(typ)) if is_logout_type(&typ) => Ok(()),
        Some(_) => Err(LogoutTokenError::WrongType),
    }
}

/// Media types are case-insensitive, and `application/` may be left out (RFC 7515 §4.1.9).
fn is_logout_type(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    matches!(
        typ.as_str(),
        "logout+jwt" | "application/logout+jwt" | "jwt"
    )
}

/// Whether the payload has a `sid` claim.
fn names_session(token: &str) -> bool {
    segment(token, 1)
        .and_then(|json| serde_json::from_slice::<Map<String, Value>>(&json).ok())
        .is_some_and(|claims| claims.contains_key("sid"))
}

/// The `index`th segment of a compact JWT, base64url-decoded.
fn segment(token: &str, index: usize) -> Option<Vec<u8>> {
    let segment = token.split('.').nth(index)?;
    URL_SAFE_NO_PAD.decode(segment).ok()
}

/// `events` holds the logout event as an object, and there is no `nonce`.
fn check_events(extras: &Map<String, Value>) -> Result<(), LogoutTokenError> {
    let events = extras
        .get("events")
        .ok_or(LogoutTokenError::MissingClaim("events"))?;
    if !events.get(LOGOUT_EVENT).is_some_and(Value::is_object) {
        return Err(LogoutTokenError::NotALogoutEvent);
    }
    if extras.contains_key("nonce") {
        return Err(LogoutTokenError::Nonce);
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The `(iss, jti)` of the tokens accepted, each until its token expires.
///
/// An entry is a 128-bit hash of `(iss, jti)` keyed at random for this process, not the
/// strings, so the set weighs the same whatever the provider puts in `jti`; two ids share
/// a hash with odds of about n²/2¹²⁹ (nil for n = 10⁵), and nobody can aim for it.
///
/// At [`REPLAY_CAPACITY`], expired entries go first, then the one closest to its expiry:
/// a replay of that token would be accepted again, which is harmless — it cuts at the same
/// `iat`, and cutoffs only rise (see the module docs). Memory stays bounded either way.
struct Replays {
    keys: RandomState,
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    until: HashMap<u128, u64>,
    by_deadline: BTreeSet<(u64, u128)>,
}

impl Replays {
    fn new(capacity: usize) -> Self {
        Self {
            keys: RandomState::new(),
            capacity,
            seen: Mutex::default(),
        }
    }

    /// Remembers `(iss, jti)` until `until` (unix seconds); `false` when it is already
    /// remembered: a replay.
    fn accept(&self, iss: &str, jti: &str, until: u64, now: u64) -> bool {
        let id = self.id(iss, jti);
        let mut seen = self.lock();
        seen.forget_expired(now);
        if seen.until.contains_key(&id) {
            return false;
        }
        if seen.until.len() >= self.capacity {
            seen.forget_first();
        }
        seen.until.insert(id, until);
        seen.by_deadline.insert((until, id));
        true
    }

    fn forget(&self, iss: &str, jti: &str) {
        let id = self.id(iss, jti);
        let mut seen = self.lock();
        if let Some(until) = seen.until.remove(&id) {
            seen.by_deadline.remove(&(until, id));
        }
    }

    fn len(&self) -> usize {
        self.lock().until.len()
    }

    fn id(&self, iss: &str, jti: &str) -> u128 {
        let half = |lane: u8| u128::from(self.keys.hash_one((lane, iss, jti)));
        (half(0) << 64) | half(1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // Every change leaves the two maps consistent before anything can panic.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Seen {
    fn forget_expired(&mut self, now: u64) {
        while let Some(&(until, _)) = self.by_deadline.first()
            && until <= now
        {
            self.forget_first();
        }
    }

    fn forget_first(&mut self) {
        if let Some((_, id)) = self.by_deadline.pop_first() {
            self.until.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests;
