//! `AUTHCACHE_SECTION__FIELD=value` environment variables onto the fields of
//! [`AuthConfig`](super::AuthConfig): a table of every setting ([`ENV_SETTINGS`]), typed
//! values, and warnings for the names that look misspelt.

use std::collections::BTreeMap;

use super::ENV_PREFIX;
use crate::{AuthError, Result};

/// The type a setting's value is read as from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Integer,
    Float,
    Boolean,
    TextList,
}

/// One setting an environment variable can name: its names after `AUTHCACHE_`, lowercased
/// (the field and its aliases), where it goes in the configuration, and its type.
pub(super) struct EnvSetting {
    pub(super) names: &'static [&'static str],
    pub(super) path: &'static [&'static str],
    pub(super) kind: Kind,
}

const fn setting(
    names: &'static [&'static str],
    path: &'static [&'static str],
    kind: Kind,
) -> EnvSetting {
    EnvSetting { names, path, kind }
}

/// Every setting of [`AuthConfig`], as environment variables name it. A field added to the
/// configuration types is added here too (`every_env_name_reaches_its_field` checks the
/// names that are here).
pub(super) const ENV_SETTINGS: &[EnvSetting] = &[
    setting(&["prefix"], &["prefix"], Kind::Text),
    setting(&["watch"], &["watch"], Kind::Boolean),
    setting(
        &["revocation_check", "revocationcheck"],
        &["revocation_check"],
        Kind::Text,
    ),
    setting(
        &["l1_capacity", "l1capacity"],
        &["l1_capacity"],
        Kind::Integer,
    ),
    setting(
        &["validation_cache", "validationcache"],
        &["validation_cache"],
        Kind::Boolean,
    ),
    setting(
        &["verifier__algorithm"],
        &["verifier", "algorithm"],
        Kind::Text,
    ),
    setting(
        &["verifier__secret_env", "verifier__secretenv"],
        &["verifier", "secret_env"],
        Kind::Text,
    ),
    setting(
        &["verifier__secret_file", "verifier__secretfile"],
        &["verifier", "secret_file"],
        Kind::Text,
    ),
    setting(
        &["verifier__public_key_env", "verifier__publickeyenv"],
        &["verifier", "public_key_env"],
        Kind::Text,
    ),
    setting(
        &["verifier__public_key_file", "verifier__publickeyfile"],
        &["verifier", "public_key_file"],
        Kind::Text,
    ),
    setting(
        &["verifier__jwks_url", "verifier__jwksurl"],
        &["verifier", "jwks_url"],
        Kind::Text,
    ),
    setting(
        &["verifier__oidc_issuer", "verifier__oidcissuer"],
        &["verifier", "oidc_issuer"],
        Kind::Text,
    ),
    setting(
        &["verifier__issuer"],
        &["verifier", "issuer"],
        Kind::TextList,
    ),
    setting(
        &["verifier__audience"],
        &["verifier", "audience"],
        Kind::TextList,
    ),
    setting(
        &["verifier__leeway_secs", "verifier__leewaysecs"],
        &["verifier", "leeway_secs"],
        Kind::Integer,
    ),
    setting(
        &["verifier__max_token_size", "verifier__maxtokensize"],
        &["verifier", "max_token_size"],
        Kind::Integer,
    ),
    setting(
        &[
            "verifier__max_token_lifetime_secs",
            "verifier__maxtokenlifetimesecs",
        ],
        &["verifier", "max_token_lifetime_secs"],
        Kind::Integer,
    ),
    setting(
        &["signing__key_env", "signing__keyenv"],
        &["signing", "key_env"],
        Kind::Text,
    ),
    setting(
        &["signing__key_file", "signing__keyfile"],
        &["signing", "key_file"],
        Kind::Text,
    ),
    setting(
        &["signing__previous_key_envs", "signing__previouskeyenvs"],
        &["signing", "previous_key_envs"],
        Kind::TextList,
    ),
    setting(
        &["signing__previous_key_files", "signing__previouskeyfiles"],
        &["signing", "previous_key_files"],
        Kind::TextList,
    ),
    setting(
        &["signing__allow_unsigned", "signing__allowunsigned"],
        &["signing", "allow_unsigned"],
        Kind::Boolean,
    ),
    setting(&["cache__backend"], &["cache", "backend"], Kind::Text),
    setting(&["cache__url"], &["cache", "url"], Kind::Text),
    setting(&["cache__urls"], &["cache", "urls"], Kind::TextList),
    setting(
        &["cache__max_bytes", "cache__maxbytes"],
        &["cache", "max_bytes"],
        Kind::Integer,
    ),
    setting(
        &["cache__timeout_ms", "cache__timeoutms"],
        &["cache", "timeout_ms"],
        Kind::Integer,
    ),
    setting(
        &["repository__backend"],
        &["repository", "backend"],
        Kind::Text,
    ),
    setting(&["repository__uri"], &["repository", "uri"], Kind::Text),
    setting(&["repository__db"], &["repository", "db"], Kind::Text),
    setting(
        &["repository__seed_file", "repository__seedfile"],
        &["repository", "seed_file"],
        Kind::Text,
    ),
    setting(
        &["repository__timeout_ms", "repository__timeoutms"],
        &["repository", "timeout_ms"],
        Kind::Integer,
    ),
    setting(
        &["repository__id_kind", "repository__idkind"],
        &["repository", "id_kind"],
        Kind::Text,
    ),
    setting(
        &[
            "repository__users_collection",
            "repository__userscollection",
        ],
        &["repository", "users_collection"],
        Kind::Text,
    ),
    setting(
        &[
            "repository__roles_collection",
            "repository__rolescollection",
        ],
        &["repository", "roles_collection"],
        Kind::Text,
    ),
    setting(
        &["repository__create_indexes", "repository__createindexes"],
        &["repository", "create_indexes"],
        Kind::Boolean,
    ),
    setting(
        &["repository__fields__email"],
        &["repository", "fields", "email"],
        Kind::Text,
    ),
    setting(
        &["repository__fields__name"],
        &["repository", "fields", "name"],
        Kind::Text,
    ),
    setting(
        &["repository__fields__roles"],
        &["repository", "fields", "roles"],
        Kind::Text,
    ),
    setting(
        &["repository__fields__disabled"],
        &["repository", "fields", "disabled"],
        Kind::Text,
    ),
    setting(
        &[
            "repository__fields__updated_at",
            "repository__fields__updatedat",
        ],
        &["repository", "fields", "updated_at"],
        Kind::Text,
    ),
    setting(
        &["repository__fields__permissions"],
        &["repository", "fields", "permissions"],
        Kind::Text,
    ),
    setting(
        &["ttls__user_ttl", "ttls__userttl"],
        &["ttls", "user_ttl"],
        Kind::Integer,
    ),
    setting(
        &[
            "ttls__permissions_ttl",
            "ttls__permissionsttl",
            "ttls__perms_ttl",
            "ttls__permsttl",
        ],
        &["ttls", "permissions_ttl"],
        Kind::Integer,
    ),
    setting(
        &["ttls__token_ttl", "ttls__tokenttl", "ttls__validation_ttl"],
        &["ttls", "token_ttl"],
        Kind::Integer,
    ),
    setting(
        &["ttls__negative_ttl", "ttls__negativettl"],
        &["ttls", "negative_ttl"],
        Kind::Integer,
    ),
    setting(
        &["ttls__l1_cap", "ttls__l1cap"],
        &["ttls", "l1_cap"],
        Kind::Integer,
    ),
    setting(&["ttls__jitter"], &["ttls", "jitter"], Kind::Float),
    setting(
        &[
            "ttls__stale_grace",
            "ttls__stalegrace",
            "ttls__stale_if_error",
        ],
        &["ttls", "stale_grace"],
        Kind::Integer,
    ),
    setting(
        &["ttls__refresh_ahead", "ttls__refreshahead"],
        &["ttls", "refresh_ahead"],
        Kind::Float,
    ),
    setting(
        &["breaker__timeout_ms", "breaker__timeoutms"],
        &["breaker", "timeout_ms"],
        Kind::Integer,
    ),
    setting(
        &["breaker__failure_threshold", "breaker__failurethreshold"],
        &["breaker", "failure_threshold"],
        Kind::Integer,
    ),
    setting(
        &["breaker__base_cooldown_ms", "breaker__basecooldownms"],
        &["breaker", "base_cooldown_ms"],
        Kind::Integer,
    ),
    setting(
        &["breaker__max_cooldown_ms", "breaker__maxcooldownms"],
        &["breaker", "max_cooldown_ms"],
        Kind::Integer,
    ),
];

/// The sections of the configuration: a variable naming one without a field is a mistake.
const ENV_SECTIONS: [&str; 7] = [
    "verifier",
    "signing",
    "cache",
    "repository",
    "repository__fields",
    "ttls",
    "breaker",
];

/// Builds a TOML table from `AUTHCACHE_SECTION__FIELD=value` pairs, each value typed as its
/// setting is. Kept here rather than pulling in figment (which brings its own older `toml`
/// and a parser-combinator stack) or envy (flat structs only, unmaintained): the result goes
/// through exactly the same serde path as a TOML file.
pub(super) fn env_table<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<toml::Table>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut found: BTreeMap<&'static [&'static str], (String, toml::Value)> = BTreeMap::new();
    for (name, value) in vars {
        let name = name.as_ref();
        let Some(rest) = strip_prefix_ignore_case(name, ENV_PREFIX) else {
            continue;
        };
        let key = rest.to_ascii_lowercase();
        if ENV_SECTIONS.contains(&key.as_str()) {
            return Err(AuthError::Config(format!(
                "environment variable {name}: `{key}` is a section; name a field of it, \
                 as in {ENV_PREFIX}{}__…",
                key.to_ascii_uppercase()
            )));
        }
        let Some(setting) = ENV_SETTINGS
            .iter()
            .find(|s| s.names.contains(&key.as_str()))
        else {
            warn_if_misspelt(name, &key);
            continue;
        };
        let typed = env_value(name, value.as_ref(), setting.kind)?;
        if let Some((earlier, _)) = found.insert(setting.path, (name.to_owned(), typed)) {
            return Err(AuthError::Config(format!(
                "environment variables {earlier} and {name} set the same setting `{}`; keep one",
                setting.path.join(".")
            )));
        }
    }
    let mut root = toml::Table::new();
    for (path, (_, value)) in found {
        insert_path(&mut root, path, value);
    }
    Ok(root)
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

/// Logs an ignored variable that was probably meant as a setting.
fn warn_if_misspelt(name: &str, key: &str) {
    if let Some(meant) = misspelt_setting(key) {
        tracing::warn!(
            variable = name,
            "environment variable {name} is not an authcache setting and is ignored; \
             did you mean {ENV_PREFIX}{}?",
            meant.to_ascii_uppercase()
        );
    } else if key
        .split_once("__")
        .is_some_and(|(section, _)| ENV_SECTIONS.contains(&section))
    {
        tracing::warn!(
            variable = name,
            "environment variable {name} names no field of its section and is ignored"
        );
    }
}

/// The setting `key` (lowercased, after the prefix) is probably a misspelling of: within two
/// single-character edits of one of its names.
pub(super) fn misspelt_setting(key: &str) -> Option<&'static str> {
    ENV_SETTINGS
        .iter()
        .flat_map(|s| s.names.iter().copied())
        .map(|known| (edit_distance(key, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes (the names compared are ASCII).
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// `raw` as a value of `kind`; a number or boolean that does not parse names the variable.
fn env_value(name: &str, raw: &str, kind: Kind) -> Result<toml::Value> {
    let wrong = |what: &str| {
        AuthError::Config(format!(
            "environment variable {name}: `{}` is not {what}",
            raw.escape_default()
        ))
    };
    let trimmed = raw.trim();
    Ok(match kind {
        Kind::Text => toml::Value::String(raw.to_owned()),
        Kind::Integer => {
            toml::Value::Integer(trimmed.parse().map_err(|_| wrong("a whole number"))?)
        }
        Kind::Float => toml::Value::Float(trimmed.parse().map_err(|_| wrong("a number"))?),
        Kind::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => return Err(wrong("`true` or `false`")),
        },
        Kind::TextList if trimmed.starts_with('[') => format!("v = {trimmed}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut table| table.remove("v"))
            .filter(|list| {
                list.as_array()
                    .is_some_and(|items| items.iter().all(toml::Value::is_str))
            })
            .ok_or_else(|| wrong("a list of quoted strings"))?,
        Kind::TextList => toml::Value::Array(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect(),
        ),
    })
}

/// Every path comes from [`ENV_SETTINGS`], where a section is never also a value.
fn insert_path(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    match path {
        [] => {}
        [field] => {
            table.insert((*field).to_owned(), value);
        }
        [section, rest @ ..] => {
            let entry = table
                .entry((*section).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}
