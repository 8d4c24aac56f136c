//! [`RequireRole`] and [`RequirePermission`]: refuse (403) a request whose [`Principal`],
//! put there by [`AuthLayer`](super::AuthLayer), lacks a role or a permission.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::tower::{Layer, Service};
use authcache_users::{User, UserRecord};
use http::{Request, Response};

use super::{AuthRejection, BoxFuture, bearer_token};
use crate::Principal;
use crate::refusal::{MISSING_PERMISSION, MISSING_ROLE, report_missing};

/// What a [`RequireService`] checks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Role(Arc<str>),
    Permission(Arc<str>),
}

impl Requirement {
    fn is_met_by<U: UserRecord>(&self, principal: &Principal<U>) -> bool {
        match self {
            Self::Role(role) => principal.has_role(role),
            Self::Permission(permission) => principal.has_permission(permission),
        }
    }

    /// Tells the operator (never the client) what the principal lacked.
    fn report_unmet<U: UserRecord>(&self, principal: &Principal<U>, bearer: Option<&str>) {
        let (reason, required) = match self {
            Self::Role(role) => (MISSING_ROLE, role),
            Self::Permission(permission) => (MISSING_PERMISSION, permission),
        };
        report_missing(reason, principal.id(), required, bearer);
    }
}

/// A layer that lets through only requests whose principal has a role; others get 403
/// with `WWW-Authenticate: Bearer error="insufficient_scope"` and never reach the inner
/// service.
///
/// It reads the [`Principal<U>`] that [`AuthLayer`](super::AuthLayer) put in the request
/// extensions, so the `AuthLayer` must wrap it (in axum: be added after it, or on the
/// router around the route that has this one). Without a principal the request is refused
/// with 500 ([`AuthRejection::MissingPrincipal`]).
pub struct RequireRole<U = User> {
    requirement: Requirement,
    user: PhantomData<fn() -> U>,
}

impl RequireRole {
    /// Requires the role `role` of the [`Principal`] of an `AuthService<User>`.
    pub fn new(role: &str) -> Self {
        Self::typed(role)
    }
}

impl<U> RequireRole<U> {
    /// Requires the role `role` of the [`Principal<U>`] of an `AuthService<U>` over your
    /// own user type: `RequireRole::<MyUser>::typed("admin")`.
    pub fn typed(role: &str) -> Self {
        Self {
            requirement: Requirement::Role(role.into()),
            user: PhantomData,
        }
    }
}

/// A layer that lets through only requests whose principal has a permission; see
/// [`RequireRole`], which it mirrors.
pub struct RequirePermission<U = User> {
    requirement: Requirement,
    user: PhantomData<fn() -> U>,
}

impl RequirePermission {
    /// Requires the permission `permission` of the [`Principal`] of an `AuthService<User>`.
    pub fn new(permission: &str) -> Self {
        Self::typed(permission)
    }
}

impl<U> RequirePermission<U> {
    /// Requires the permission `permission` of the [`Principal<U>`] of an
    /// `AuthService<U>` over your own user type.
    pub fn typed(permission: &str) -> Self {
        Self {
            requirement: Requirement::Permission(permission.into()),
            user: PhantomData,
        }
    }
}

/// Clone and Debug by hand: derived ones would ask the same of `U`, which is only a marker.
macro_rules! requirement_layer {
    ($layer:ident) => {
        impl<U> Clone for $layer<U> {
            fn clone(&self) -> Self {
                Self {
                    requirement: self.requirement.clone(),
                    user: PhantomData,
                }
            }
        }

        impl<U> fmt::Debug for $layer<U> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($layer))
                    .field(&self.requirement)
                    .finish()
            }
        }

        impl<S, U> Layer<S> for $layer<U> {
            type Service = RequireService<S, U>;

            fn layer(&self, inner: S) -> RequireService<S, U> {
                RequireService {
                    inner,
                    requirement: self.requirement.clone(),
                    user: PhantomData,
                }
            }
        }
    };
}

requirement_layer!(RequireRole);
requirement_layer!(RequirePermission);

/// The service of [`RequireRole`] and [`RequirePermission`].
pub struct RequireService<S, U = User> {
    inner: S,
    requirement: Requirement,
    user: PhantomData<fn() -> U>,
}

impl<S: Clone, U> Clone for RequireService<S, U> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            requirement: self.requirement.clone(),
            user: PhantomData,
        }
    }
}

impl<S, U> fmt::Debug for RequireService<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireService")
            .field("requirement", &self.requirement)
            .finish_non_exhaustive()
    }
}

impl<S, U, B, ResBody> Service<Request<B>> for RequireService<S, U>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    U: UserRecord,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let refusal = match request.extensions().get::<Principal<U>>() {
            Some(principal) if self.requirement.is_met_by(principal) => None,
            Some(principal) => {
                let bearer = bearer_token(request.headers()).ok().flatten();
                self.requirement.report_unmet(principal, bearer);
                Some(AuthRejection::Forbidden)
            }
            None => Some(AuthRejection::MissingPrincipal),
        };
        match refusal {
            None => Box::pin(self.inner.call(request)),
            Some(rejection) => {
                let response = rejection.to_response();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
