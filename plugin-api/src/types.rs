//! Small types shared by several traits.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The person a call is about, keyed by the IAM's GUID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub person: Uuid,
    /// The login name the person is known by in the directory.
    pub login: String,
    pub display_name: String,
}
