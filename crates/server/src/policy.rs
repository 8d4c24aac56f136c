//! What a request must hold to be let through: a [`Requirement`] (roles, permissions, any or
//! all of them), given by the proxy per location or found by the first matching [`Rule`].
//!
//! # Where the requirement comes from
//! 1. **The proxy, per location**: query parameters of exactly `/auth`
//!    (`auth_request /auth?role=admin;`) or Envoy's gRPC `context_extensions` — the same
//!    three keys either way:
//!    - `role=a,b`: one of these roles;
//!    - `permission=x,y`: one of these permissions;
//!    - `match=all`: all of them instead (`any` is the default);
//!    - both lists given: both must hold.
//!
//!    Parameters on `/auth/<path>` (Envoy's HTTP mode appends the client's path and query)
//!    are the client's, never policy: a client cannot choose its own requirement.
//! 2. **Otherwise the rules** of `[server.policy]`, matched on the original request's host,
//!    method and path, in order: the first match wins. A rule may be `anonymous = true`
//!    (let through without a token, e.g. a login page).
//! 3. **No rule matches**: `default = "authenticated"` (any valid token) or `"deny"`.
//!
//! ```toml
//! [server.policy]
//! default = "deny"
//!
//! [[server.policy.rules]]
//! path = "/public/**"
//! anonymous = true
//!
//! [[server.policy.rules]]
//! host = "*.example.com"
//! methods = ["POST", "PUT", "DELETE"]
//! path = "/api/users/*"
//! permissions = ["users:write"]
//!
//! [[server.policy.rules]]
//! path = "/api/"           # a prefix: no `*` in it
//! ```
//!
//! Paths: a pattern with no `*` is a prefix (`/api/` matches `/api/users`); `*` matches
//! within one segment and `**` any number of segments (`/api/**` matches `/api` too).
//! Hosts: exact, or `*.example.com` for any subdomain; compared without the port and
//! case-insensitively. The query string is never part of the path.

#[cfg(test)]
mod tests;

use authcache::Principal;
use serde::Deserialize;

/// Whether one or every listed role (or permission) is needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    /// One of the listed names suffices.
    #[default]
    Any,
    /// Every listed name is needed.
    All,
}

/// What a principal must hold. Empty lists require nothing: any valid token passes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Requirement {
    /// Roles; `match` says one or all.
    pub roles: Vec<String>,
    /// Permissions; `match` says one or all.
    pub permissions: Vec<String>,
    /// One or all of each list.
    #[serde(rename = "match")]
    pub mode: Match,
}

/// Why a requirement could not be read from the proxy's parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `match` is neither `any` nor `all`.
    #[error("`match` must be `any` or `all`, not {0:?}")]
    BadMatch(String),
    /// A parameter that is not `role`, `permission` or `match`.
    #[error("unknown policy parameter {0:?}: use `role`, `permission` or `match`")]
    Unknown(String),
    /// `role` or `permission` without a name, or `match` without either: a requirement
    /// of nothing would let every valid token through.
    #[error("`{0}` names nothing: give `role=…` or `permission=…` with at least one name")]
    Empty(&'static str),
}

impl Requirement {
    /// The requirement of the proxy's `(key, value)` pairs (query parameters of `/auth`,
    /// or Envoy's `context_extensions`); `Ok(None)` when there are none. `role` and
    /// `permission` take comma-separated names and may repeat.
    ///
    /// # Errors
    /// An unknown key or a bad `match`: a typo in the proxy's configuration must not
    /// silently let everyone through.
    pub fn from_pairs<K, V>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Option<Self>, PolicyError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut requirement = Self::default();
        let mut any = false;
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            let names = || {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
            };
            let (list, kind) = match key {
                "role" => (&mut requirement.roles, "role"),
                "permission" => (&mut requirement.permissions, "permission"),
                "match" => {
                    requirement.mode = match value {
                        "any" => Match::Any,
                        "all" => Match::All,
                        other => return Err(PolicyError::BadMatch(other.to_owned())),
                    };
                    any = true;
                    continue;
                }
                other => return Err(PolicyError::Unknown(other.to_owned())),
            };
            let before = list.len();
            list.extend(names());
            if list.len() == before {
                return Err(PolicyError::Empty(kind));
            }
            any = true;
        }
        if any && requirement.roles.is_empty() && requirement.permissions.is_empty() {
            return Err(PolicyError::Empty("match"));
        }
        Ok(any.then_some(requirement))
    }

    /// `Ok` when `principal` holds what is required; otherwise which kind it lacks.
    pub fn check<U: authcache::UserRecord>(&self, principal: &Principal<U>) -> Result<(), Missing> {
        let holds = |names: &[String], has: &dyn Fn(&str) -> bool| match self.mode {
            _ if names.is_empty() => true,
            Match::Any => names.iter().any(|name| has(name)),
            Match::All => names.iter().all(|name| has(name)),
        };
        if !holds(&self.roles, &|role| principal.has_role(role)) {
            return Err(Missing::Role);
        }
        if !holds(&self.permissions, &|permission| {
            principal.has_permission(permission)
        }) {
            return Err(Missing::Permission);
        }
        Ok(())
    }
}

/// What a principal lacked (logged, never answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A required role.
    Role,
    /// A required permission.
    Permission,
}

/// The outcome of the policy for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let through without a token (a rule with `anonymous = true`); a token, if any, is
    /// still read so the identity headers are set for a valid one.
    Anonymous,
    /// A valid token holding this requirement.
    Require(Requirement),
    /// Refused whoever asks (no rule matched, `default = "deny"`).
    Deny,
}

/// What happens to a request no rule matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Default {
    /// Any valid token is let through.
    #[default]
    Authenticated,
    /// Refused (403 with a valid token, 401 without).
    Deny,
}

/// One per-route rule: where it applies, and what it requires there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `api.example.com` or `*.example.com`; any host when absent.
    pub host: Option<String>,
    /// Methods (case-insensitive); any method when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// A prefix, or a glob with `*` / `**`; any path when absent.
    pub path: Option<String>,
    /// Let through without a token.
    #[serde(default)]
    pub anonymous: bool,
    /// What a token must hold here.
    #[serde(flatten)]
    pub requirement: Requirement,
}

/// The rules of `[server.policy]` and what happens when none matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// For requests no rule matches.
    pub default: Default,
    /// Matched in order; the first match wins.
    pub rules: Vec<Rule>,
}

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[server.policy] rule {index}: {reason}")]
pub struct RuleError {
    /// The rule's position, from 1.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl Policy {
    /// Checks every rule once, at start-up, so a typo is an error and not a silent
    /// non-match at request time.
    ///
    /// # Errors
    /// The first rule that cannot match anything as written.
    pub fn validate(&self) -> Result<(), RuleError> {
        for (index, rule) in self.rules.iter().enumerate() {
            let fail = |reason: String| RuleError {
                index: index + 1,
                reason,
            };
            if let Some(path) = &rule.path
                && !path.starts_with('/')
            {
                return Err(fail(format!("path {path:?} must start with `/`")));
            }
            if let Some(host) = &rule.host
                && (host.is_empty()
                    || host.contains('/')
                    || host.trim_start_matches("*.").contains('*'))
            {
                return Err(fail(format!(
                    "host {host:?} must be a name or `*.` followed by a name"
                )));
            }
            if let Some(method) = rule
                .methods
                .iter()
                .find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()))
            {
                return Err(fail(format!("method {method:?} is not an HTTP method")));
            }
            if rule.anonymous && rule.requirement != Requirement::default() {
                return Err(fail(
                    "`anonymous = true` with roles or permissions: one or the other".into(),
                ));
            }
        }
        Ok(())
    }

    /// The verdict for a request to `host`, `method`, `path`.
    pub fn verdict(&self, host: Option<&str>, method: &str, path: &str) -> Verdict {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let found = self
            .rules
            .iter()
            .find(|rule| rule.matches(host, method, path));
        match found {
            Some(rule) if rule.anonymous => Verdict::Anonymous,
            Some(rule) => Verdict::Require(rule.requirement.clone()),
            None => match self.default {
                Default::Authenticated => Verdict::Require(Requirement::default()),
                Default::Deny => Verdict::Deny,
            },
        }
    }
}

impl Rule {
    fn matches(&self, host: Option<&str>, method: &str, path: &str) -> bool {
        let host_matches = match (&self.host, host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(pattern), Some(host)) => host_matches(pattern, host),
        };
        let method_matches = self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|wanted| wanted.eq_ignore_ascii_case(method));
        let path_matches = self
            .path
            .as_deref()
            .is_none_or(|pattern| path_matches(pattern, path));
        host_matches && method_matches && path_matches
    }
}

/// `pattern` is a host name or `*.name`; `host` may carry a port.
fn host_matches(pattern: &str, host: &str) -> bool {
    let host = strip_port(host);
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .len()
            .checked_sub(parent.len() + 1)
            .and_then(|dot| host.get(dot..))
            .is_some_and(|tail| {
                tail.as_bytes().first() == Some(&b'.') && tail[1..].eq_ignore_ascii_case(parent)
            }),
        None => host.eq_ignore_ascii_case(pattern),
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // `[::1]:8080`: the address is what the brackets hold.
        return host.split(']').next().map_or(host, |h| &h[1..]);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

/// A prefix when `pattern` has no `*`; otherwise a glob on `/`-separated segments.
fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('*') {
        return path.starts_with(pattern);
    }
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    glob(&pattern, &path)
}

/// Segment-wise glob: `**` matches zero or more segments, `*` within a segment any run of
/// characters. Iterative over `**` (at most one backtrack point), so hostile paths cannot
/// make it exponential.
fn glob(pattern: &[&str], path: &[&str]) -> bool {
    let (mut p, mut s) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while s < path.len() {
        if p < pattern.len() && pattern[p] == "**" {
            star = Some((p, s));
            p += 1;
        } else if p < pattern.len() && segment_matches(pattern[p], path[s]) {
            p += 1;
            s += 1;
        } else if let Some((star_p, star_s)) = star {
            p = star_p + 1;
            s = star_s + 1;
            star = Some((star_p, star_s + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|rest| *rest == "**")
}

/// `*` in one segment: any run of characters (none included), no `/`.
fn segment_matches(pattern: &str, segment: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = segment.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}
