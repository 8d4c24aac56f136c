//! [`Profile`]: the 20-field user document of the system authcache replaces, as an
//! application would bring it (`U: UserRecord`). The replaced system stored it in Redis as
//! `base64(pickle.dumps(doc))`: [`REPLACED_ENTRY_BYTES`] bytes per user.

use authcache::UserRecord;
use serde::{Deserialize, Serialize};

/// What the replaced system stored per user for this document (pickle, default protocol,
/// then base64), as measured there.
pub const REPLACED_ENTRY_BYTES: usize = 740;

/// A user profile with the 20 fields of the replaced system's user document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// MongoDB `_id` (an ObjectId's hex).
    #[serde(rename = "_id")]
    pub id: String,
    /// Unique email address.
    pub email: String,
    /// Login name.
    pub username: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Granted roles.
    pub roles: Vec<String>,
    /// Account disabled.
    pub disabled: bool,
    /// Email address confirmed.
    pub email_verified: bool,
    /// Second factor enrolled.
    pub mfa_enabled: bool,
    /// BCP 47 language tag.
    pub locale: String,
    /// IANA time zone.
    pub timezone: String,
    /// Avatar image URL.
    pub avatar_url: String,
    /// Phone number as entered.
    pub phone: String,
    /// Tenant the user belongs to.
    pub tenant_id: String,
    /// Subscription plan.
    pub plan: String,
    /// Successful logins so far.
    pub login_count: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// Last change, ms since the Unix epoch.
    pub updated_at: i64,
    /// Last login, ms since the Unix epoch.
    pub last_login_at: i64,
}

impl Profile {
    /// The replaced system's example document, under `id` (24 characters keep the
    /// document's size as measured there).
    pub fn sample(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            email: "ada.lovelace@example.com".into(),
            username: "ada.lovelace".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            display_name: "Ada Lovelace".into(),
            roles: vec!["admin".into(), "billing".into(), "support".into()],
            disabled: false,
            email_verified: true,
            mfa_enabled: true,
            locale: "en-GB".into(),
            timezone: "Europe/London".into(),
            avatar_url: format!("https://cdn.example.com/avatars/{id}.png"),
            phone: "+44 20 7946 0958".into(),
            tenant_id: "acme-corporation".into(),
            plan: "enterprise-annual".into(),
            login_count: 1342,
            created_at: 1_696_000_000_000,
            updated_at: 1_700_000_000_000,
            last_login_at: 1_700_000_500_000,
        }
    }
}

impl UserRecord for Profile {
    fn id(&self) -> &str {
        &self.id
    }

    fn roles(&self) -> &[String] {
        &self.roles
    }

    fn disabled(&self) -> bool {
        self.disabled
    }

    fn email(&self) -> Option<&str> {
        Some(&self.email)
    }
}
