//! How the configuration names a secret: an environment variable or a file, read when the
//! service is built. The value itself is never written in the configuration, and never
//! appears in an error or a log: only the name of the variable or the path of the file.

use std::ffi::OsString;

use serde::de::{Deserializer, Error as _};

use crate::{AuthError, Result};

/// Where `*_env` references are looked up: the process environment in the service, a map
/// of the test's own in unit tests (which may not change the process environment).
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The process environment.
pub(crate) fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// A secret named by the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretRef<'a> {
    /// The value of this environment variable.
    Env(&'a str),
    /// The content of this file.
    File(&'a str),
}

impl SecretRef<'_> {
    /// Reads the secret; `setting` is the configuration key that names it
    /// (`verifier.secret_env`), for the error.
    ///
    /// # Errors
    /// [`AuthError::Config`] naming the variable or file (never its content) when it is
    /// missing, unreadable, not UTF-8 (a variable) or empty.
    pub(crate) fn read(self, setting: &str, env: EnvLookup<'_>) -> Result<Vec<u8>> {
        let (what, bytes) = match self {
            Self::Env(name) => {
                let what = format!("environment variable `{name}` (named by `{setting}`)");
                let value = env(name).ok_or_else(|| {
                    AuthError::Config(format!(
                        "{what} is not set: set it to the secret, or correct the name"
                    ))
                })?;
                let value = value
                    .into_string()
                    .map_err(|_| AuthError::Config(format!("{what} is not valid UTF-8")))?;
                (what, value.into_bytes())
            }
            Self::File(path) => {
                let what = format!("file `{path}` (named by `{setting}`)");
                let mut bytes = std::fs::read(path).map_err(|error| {
                    AuthError::Config(format!(
                        "{what} cannot be read: {error}; check the path and the permissions"
                    ))
                })?;
                // What `echo` and editors leave at the end is not part of the secret.
                while bytes.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                    bytes.pop();
                }
                (what, bytes)
            }
        };
        if bytes.is_empty() {
            return Err(AuthError::Config(format!("{what} is empty")));
        }
        Ok(bytes)
    }
}

/// The one reference among `candidates` (`(setting, reference)` pairs) that is given.
///
/// # Errors
/// [`AuthError::Config`] naming the settings when more than one is given.
pub(crate) fn at_most_one<T>(
    section: &str,
    candidates: impl IntoIterator<Item = (&'static str, Option<T>)>,
) -> Result<Option<(&'static str, T)>> {
    let given: Vec<(&'static str, T)> = candidates
        .into_iter()
        .filter_map(|(setting, value)| value.map(|value| (setting, value)))
        .collect();
    if given.len() > 1 {
        let names: Vec<String> = given.iter().map(|(name, _)| format!("`{name}`")).collect();
        return Err(AuthError::Config(format!(
            "[{section}] gives {}: keep exactly one",
            names.join(" and ")
        )));
    }
    Ok(given.into_iter().next())
}

/// The place of a setting that is refused whenever it is present: an inline secret. It
/// never holds anything, so it shows nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Refused;

/// Refuses `verifier.secret`: the secret belongs in a variable or a file.
pub(super) fn refuse_inline_verifier_secret<'de, D: Deserializer<'de>>(
    _: D,
) -> std::result::Result<Refused, D::Error> {
    Err(D::Error::custom(
        "a secret is not written in the configuration: put it in an environment variable \
         and name it with `secret_env`, or in a file named by `secret_file`",
    ))
}

/// Refuses `signing.key`: the key belongs in a variable or a file.
pub(super) fn refuse_inline_signing_key<'de, D: Deserializer<'de>>(
    _: D,
) -> std::result::Result<Refused, D::Error> {
    Err(D::Error::custom(
        "a signing key is not written in the configuration: put it in an environment \
         variable and name it with `key_env`, or in a file named by `key_file`",
    ))
}
