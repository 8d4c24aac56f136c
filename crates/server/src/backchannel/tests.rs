//! Logout tokens signed with the published test keys, checked one rule at a time; the
//! handler over an in-memory service.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authcache::{
    Algorithm, AuthError, AuthService, CacheConfig, Claims, JwtVerifier, MemoryUserRepository,
    TokenError, TokenIssuer, User, VerifierConfig,
};
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::{BackchannelLogout, LOGOUT_EVENT, LogoutTokenError, Replays, check_type, handle};

const ISSUER: &str = "https://idp.example.com";
const AUDIENCE: &str = "sidecar";

fn logout() -> BackchannelLogout {
    BackchannelLogout::new(JwtVerifier::test_rs256().issuer(ISSUER).audience(AUDIENCE))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a valid logout token for `sub`, issued now, with a `jti` of its own.
fn claims(sub: &str) -> Map<String, Value> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = unix_now();
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + 120,
        "jti": format!("logout-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        "events": { LOGOUT_EVENT: {} },
    });
    match claims {
        Value::Object(claims) => claims,
        _ => unreachable!(),
    }
}

fn sign(claims: Map<String, Value>) -> String {
    TokenIssuer::test_rs256()
        .sign_payload(&Value::Object(claims))
        .unwrap()
}

/// A valid token for `ada` with `change` made to its claims.
fn token_with(change: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut claims = claims("ada");
    change(&mut claims);
    sign(claims)
}

/// `token` with its header replaced by `header`, payload and signature kept.
fn with_header(token: &str, header: &str) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header))
}

#[tokio::test]
async fn a_valid_token_orders_the_logout_of_its_subject_as_of_its_iat() {
    let iat = unix_now() - 10;
    let token = token_with(|claims| {
        claims.insert("iat".into(), json!(iat as f64 + 0.25));
        claims.insert("jti".into(), json!("one"));
        claims.insert("sid".into(), json!("session-7"));
    });

    let order = logout().verify(&token).await.unwrap();

    assert_eq!(order.subject, "ada");
    assert_eq!(
        order.issued_at,
        UNIX_EPOCH + Duration::from_secs(iat) + Duration::from_millis(250)
    );
    assert_eq!((order.jti.as_str(), order.issuer.as_str()), ("one", ISSUER));
}

#[tokio::test]
async fn a_token_accepted_once_is_refused_as_a_replay() {
    let logout = logout();
    let token = sign(claims("ada"));

    assert!(logout.verify(&token).await.is_ok());
    assert_eq!(logout.verify(&token).await, Err(LogoutTokenError::Replay));
    assert!(
        logout.verify(&sign(claims("ada"))).await.is_ok(),
        "another jti is another logout"
    );
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_refused() {
    let token = TokenIssuer::test_rs256_other()
        .sign_payload(&Value::Object(claims("ada")))
        .unwrap();
    assert_eq!(
        logout().verify(&token).await,
        Err(LogoutTokenError::Token(TokenError::BadSignature))
    );
}

#[tokio::test]
async fn each_claim_rule_refuses_with_its_own_error() {
    type Change = Box<dyn FnOnce(&mut Map<String, Value>)>;
    let set = |name: &'static str, value: Value| -> Change {
        Box::new(move |claims| {
            claims.insert(name.into(), value);
        })
    };
    let remove = |name: &'static str| -> Change {
        Box::new(move |claims| {
            claims.remove(name);
        })
    };
    let past = unix_now() - 3600;
    let cases: Vec<(&str, Change, LogoutTokenError)> = vec![
        (
            "wrong iss",
            set("iss", json!("https://other.example.com")),
            LogoutTokenError::Token(TokenError::WrongIssuer),
        ),
        (
            "wrong aud",
            set("aud", json!("another-client")),
            LogoutTokenError::Token(TokenError::WrongAudience),
        ),
        (
            "expired",
            Box::new(move |claims| {
                claims.insert("iat".into(), json!(past - 120));
                claims.insert("exp".into(), json!(past));
            }),
            LogoutTokenError::Token(TokenError::Expired),
        ),
        (
            "no iat",
            remove("iat"),
            LogoutTokenError::MissingClaim("iat"),
        ),
        (
            "iat in the future",
            set("iat", json!(unix_now() + 600)),
            LogoutTokenError::IssuedInFuture,
        ),
        (
            "no jti",
            remove("jti"),
            LogoutTokenError::MissingClaim("jti"),
        ),
        (
            "no events",
            remove("events"),
            LogoutTokenError::MissingClaim("events"),
        ),
        (
            "events not an object",
            set("events", json!([LOGOUT_EVENT])),
            LogoutTokenError::NotALogoutEvent,
        ),
        (
            "another event",
            set("events", json!({ "https://example.com/other-event": {} })),
            LogoutTokenError::NotALogoutEvent,
        ),
        (
            "the event not an object",
            set("events", json!({ LOGOUT_EVENT: "logout" })),
            LogoutTokenError::NotALogoutEvent,
        ),
        (
            "a nonce",
            set("nonce", json!("n-0S6_WzA2Mj")),
            LogoutTokenError::Nonce,
        ),
        (
            "sid only",
            Box::new(|claims| {
                claims.remove("sub");
                claims.insert("sid".into(), json!("session-7"));
            }),
            LogoutTokenError::SessionOnly,
        ),
        (
            "neither sub nor sid",
            remove("sub"),
            LogoutTokenError::Token(TokenError::MissingClaim("sub")),
        ),
    ];
    let logout = logout();
    for (case, change, expected) in cases {
        let refused = logout.verify(&token_with(change)).await;
        assert_eq!(refused, Err(expected), "{case}");
    }
}

/// `typ` is checked on the raw header, before the signature: any type but a logout
/// token's (or Keycloak's plain `JWT`) is refused whatever the rest of the token says.
#[tokio::test]
async fn the_typ_header_must_be_a_logout_tokens() {
    let token = sign(claims("ada"));
    for typ in ["at+jwt", "application/id_token+jwt", "secevent+jwt"] {
        let header = format!(r#"{{"alg":"RS256","typ":"{typ}"}}"#);
        assert_eq!(
            logout().verify(&with_header(&token, &header)).await,
            Err(LogoutTokenError::WrongType),
            "{typ}"
        );
    }
    let odd = with_header(&token, r#"{"alg":"RS256","typ":7}"#);
    assert_eq!(
        logout().verify(&odd).await,
        Err(LogoutTokenError::WrongType)
    );
    let twice = with_header(
        &token,
        r#"{"alg":"RS256","typ":"at+jwt","typ":"logout+jwt"}"#,
    );
    assert_eq!(
        logout().verify(&twice).await,
        Err(LogoutTokenError::NotAJwt)
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        logout().verify(&bearer).await,
        Err(LogoutTokenError::NotAJwt)
    );

    for header in [
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"RS256","typ":"logout+jwt"}"#,
        r#"{"alg":"RS256","typ":"application/Logout+JWT"}"#,
        r#"{"alg":"RS256","typ":"JWT"}"#,
    ] {
        let retyped = with_header(&token, header);
        assert_eq!(check_type(&retyped), Ok(()), "{header}");
        assert_eq!(
            logout().verify(&retyped).await,
            Err(LogoutTokenError::Token(TokenError::BadSignature)),
            "the header is signed too"
        );
    }
    assert!(logout().verify(&token).await.is_ok(), "typ JWT, as signed");
}

#[tokio::test]
async fn the_configuration_must_name_the_issuer_and_the_audience() {
    let error = BackchannelLogout::from_config(&VerifierConfig::default())
        .await
        .unwrap_err();
    let AuthError::Config(message) = error else {
        panic!("{error:?}")
    };
    assert!(message.contains("`issuer` and `audience`"), "{message}");

    let mut config = VerifierConfig::default();
    config.algorithm = Some(Algorithm::RS256);
    config.public_key_file = Some(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../jwt/src/testkeys/rsa_a.pub.pem"
        )
        .into(),
    );
    config.audience = vec![AUDIENCE.into()];
    let error = BackchannelLogout::from_config(&config).await.unwrap_err();
    assert!(error.to_string().contains("`issuer`"), "{error}");

    config.issuer = vec![ISSUER.into()];
    let logout = BackchannelLogout::from_config(&config).await.unwrap();
    assert!(logout.verify(&sign(claims("ada"))).await.is_ok());
}

#[test]
fn the_replay_set_forgets_expired_tokens_then_the_closest_to_expiry() {
    let replays = Replays::new(2);
    assert!(replays.accept(ISSUER, "a", 10, 0));
    assert!(replays.accept(ISSUER, "b", 20, 0));
    assert!(!replays.accept(ISSUER, "a", 10, 5), "a replay");
    assert!(
        replays.accept("https://other.example.com", "a", 10, 5),
        "the same jti from another issuer"
    );
    assert!(!replays.accept(ISSUER, "b", 20, 5), "b is kept, a went");
    assert!(
        replays.accept(ISSUER, "a", 30, 5),
        "a was forgotten at the cap"
    );
    assert_eq!(replays.len(), 2);

    assert!(replays.accept(ISSUER, "c", 40, 20), "b expired at 20");
    assert!(!replays.accept(ISSUER, "a", 30, 20));
    replays.forget(ISSUER, "a");
    assert!(
        replays.accept(ISSUER, "a", 30, 20),
        "forgotten after a failed logout"
    );
}

/// A service over `ada` that accepts `TokenIssuer::test_hs256` access tokens.
async fn service() -> AuthService {
    let repository = MemoryUserRepository::new()
        .with_user(User::new("ada", "ada@example.com", "Ada"))
        .unwrap();
    AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .repository(repository)
        .cache(CacheConfig::memory())
        .build()
        .await
        .unwrap()
}

fn access_token(issued: SystemTime) -> String {
    let claims = Claims::new("ada", unix_now() + 600).issued_at(issued);
    format!(
        "Bearer {}",
        TokenIssuer::test_hs256().sign(&claims).unwrap()
    )
}

fn form(token: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", token)
        .finish()
}

async fn parts(response: Response) -> (StatusCode, Option<String>, String) {
    let status = response.status();
    let cache = response
        .headers()
        .get(CACHE_CONTROL)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, cache, String::from_utf8(body.to_vec()).unwrap())
}

/// The provider logged `ada` out a second ago: her token from before is refused, the one
/// she got after is not, and the replayed logout changes nothing.
#[tokio::test]
async fn a_logout_refuses_the_tokens_issued_before_it_and_keeps_the_ones_after() {
    let (auth, logout) = (service().await, logout());
    let logged_out = SystemTime::now() - Duration::from_secs(1);
    let before = access_token(logged_out - Duration::from_secs(1));
    auth.authenticate(&before).await.unwrap();
    let token = token_with(|claims| {
        let iat = logged_out.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        claims.insert("iat".into(), json!(iat));
    });

    let answer = parts(handle(&auth, &logout, form(&token).as_bytes()).await).await;
    assert_eq!(
        answer,
        (StatusCode::OK, Some("no-store".into()), String::new())
    );

    let after = access_token(SystemTime::now());
    assert_eq!(
        auth.authenticate(&before).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(auth.authenticate(&after).await.unwrap().id(), "ada");

    let (status, _, body) = parts(handle(&auth, &logout, form(&token).as_bytes()).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("already accepted"), "{body}");
    assert_eq!(auth.authenticate(&after).await.unwrap().id(), "ada");
}

#[tokio::test]
async fn a_form_without_exactly_one_logout_token_is_a_bad_request() {
    let (auth, logout) = (service().await, logout());
    let token = sign(claims("ada"));
    let twice = format!("{}&{}", form(&token), form(&token));
    for body in [String::new(), "token=x".into(), twice] {
        let (status, cache, body) = parts(handle(&auth, &logout, body.as_bytes()).await).await;
        assert_eq!(
            (status, cache.as_deref()),
            (StatusCode::BAD_REQUEST, Some("no-store"))
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("exactly one")
        );
    }
}

/// A refused token is a 400 that says which check failed and never repeats the token.
#[tokio::test]
async fn a_refused_token_is_a_bad_request_naming_the_check() {
    let (auth, logout) = (service().await, logout());
    let token = token_with(|claims| {
        claims.insert("nonce".into(), json!("n-0S6"));
    });
    let (status, cache, body) = parts(handle(&auth, &logout, form(&token).as_bytes()).await).await;
    assert_eq!(
        (status, cache.as_deref()),
        (StatusCode::BAD_REQUEST, Some("no-store"))
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "invalid_request");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("nonce"), "{description}");
    for segment in token.split('.') {
        assert!(!description.contains(segment));
    }
}

/// Unusable keys are the sidecar's fault: 503, so that the provider retries.
#[tokio::test]
async fn a_verifier_with_unusable_keys_answers_unavailable() {
    let auth = service().await;
    let logout = BackchannelLogout::new(JwtVerifier::hs256(b"too short"));
    let token = TokenIssuer::test_hs256()
        .sign_payload(&Value::Object(claims("ada")))
        .unwrap();
    let (status, cache, _) = parts(handle(&auth, &logout, form(&token).as_bytes()).await).await;
    assert_eq!(
        (status, cache.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("no-store"))
    );
}
