//! `[signing]`: the HMAC keys of shared-cache entries, named by reference.

use serde::Deserialize;

use super::secrets::{self, EnvLookup, SecretRef, at_most_one};
use crate::Result;

/// The keys that sign shared-cache (L2) entries (`[signing]`): see
/// [`AuthServiceBuilder::signing_key`](crate::AuthServiceBuilder::signing_key) and
/// [`previous_signing_keys`](crate::AuthServiceBuilder::previous_signing_keys). Each key is
/// named — an environment variable or a file — never written here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SigningConfig {
    /// The environment variable holding the signing key (at least 16 bytes).
    #[serde(alias = "keyEnv")]
    pub key_env: Option<String>,
    /// The file holding the signing key (a trailing line break is not part of it).
    #[serde(alias = "keyFile")]
    pub key_file: Option<String>,
    /// Environment variables holding keys being rotated out: they verify, never sign.
    #[serde(alias = "previousKeyEnvs")]
    pub previous_key_envs: Vec<String>,
    /// Files holding keys being rotated out.
    #[serde(alias = "previousKeyFiles")]
    pub previous_key_files: Vec<String>,
    /// Accept a shared cache without a signing key: only for a Redis nothing but this
    /// service can write to (see
    /// [`AuthServiceBuilder::allow_unsigned_l2`](crate::AuthServiceBuilder::allow_unsigned_l2)).
    #[serde(alias = "allowUnsigned")]
    pub allow_unsigned: bool,
    /// `key = "…"`, refused when read (the key belongs in a variable or a file).
    #[serde(
        rename = "key",
        deserialize_with = "secrets::refuse_inline_signing_key"
    )]
    inline_key: secrets::Refused,
}

/// The keys a [`SigningConfig`] names, read.
pub(crate) struct SigningKeys {
    /// The key that signs, if one is named.
    pub(crate) current: Option<Vec<u8>>,
    /// The keys that only verify.
    pub(crate) previous: Vec<Vec<u8>>,
}

impl SigningConfig {
    /// Reads the keys from the process environment and files.
    ///
    /// # Errors
    /// As [`SigningConfig::read_with`].
    pub(crate) fn read(&self) -> Result<SigningKeys> {
        self.read_with(&secrets::process_env)
    }

    /// Reads the keys, looking `*_env` references up with `env`.
    ///
    /// # Errors
    /// [`AuthError::Config`](crate::AuthError::Config) for both `key_env` and `key_file`, or
    /// a variable or file that is missing or empty (naming it, never its content).
    pub(crate) fn read_with(&self, env: EnvLookup<'_>) -> Result<SigningKeys> {
        let current = at_most_one(
            "signing",
            [
                ("key_env", self.key_env.as_deref().map(SecretRef::Env)),
                ("key_file", self.key_file.as_deref().map(SecretRef::File)),
            ],
        )?
        .map(|(setting, key)| key.read(&format!("signing.{setting}"), env))
        .transpose()?;
        let envs = self
            .previous_key_envs
            .iter()
            .map(|name| ("signing.previous_key_envs", SecretRef::Env(name)));
        let files = self
            .previous_key_files
            .iter()
            .map(|path| ("signing.previous_key_files", SecretRef::File(path)));
        let previous = envs
            .chain(files)
            .map(|(setting, key)| key.read(setting, env))
            .collect::<Result<_>>()?;
        Ok(SigningKeys { current, previous })
    }
}
