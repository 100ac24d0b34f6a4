//! [`ProfileId`]: the id of a messaging profile.

use std::fmt;

/// A messaging profile's id (a UUID, shown hyphenated).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ProfileId(pub uuid::Uuid);

impl ProfileId {
    /// A new random id.
    pub fn new_v4() -> Self {
        ProfileId(uuid::Uuid::new_v4())
    }

    /// The id from its hyphenated or simple string form.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::parse_str(s).ok().map(ProfileId)
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for ProfileId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(ProfileId)
    }
}
