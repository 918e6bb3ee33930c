//! The stored records of secrets (Secrets Manager) and parameters (SSM Parameter Store): JSON
//! under `secrets/sm/NAME` and `secrets/ssm/NAME`, every value sealed (`key`), never plain.

use serde::{Deserialize, Serialize};

pub const SECRETS: &str = "secrets/sm/";
pub const PARAMETERS: &str = "secrets/ssm/";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecretVersion {
    pub id: String,
    pub stages: Vec<String>,
    pub created: f64,
    /// The value sealed under `seal_name(name, id)`.
    pub sealed: String,
    /// SecretBinary rather than SecretString.
    #[serde(default)]
    pub binary: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecretRecord {
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub description: String,
    pub created: f64,
    pub last_changed: f64,
    /// When it is due to be deleted (set by DeleteSecret with a recovery window).
    #[serde(default)]
    pub deletion_date: Option<f64>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub versions: Vec<SecretVersion>,
}

impl SecretRecord {
    /// The version with `stage` (AWSCURRENT by default).
    pub fn version(&self, id: Option<&str>, stage: Option<&str>) -> Option<&SecretVersion> {
        match id {
            Some(id) => self.versions.iter().find(|v| v.id == id),
            None => {
                let stage = stage.unwrap_or("AWSCURRENT");
                self.versions
                    .iter()
                    .find(|v| v.stages.iter().any(|s| s == stage))
            }
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParameterRecord {
    pub name: String,
    pub arn: String,
    /// String, StringList or SecureString.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub version: i64,
    pub last_modified: f64,
    pub sealed: String,
}

/// What a value is sealed under: the record and the version, so a sealed value copied to
/// another record or version does not open.
pub fn seal_name(kind: &str, name: &str, version: &str) -> String {
    format!("{kind}/{name}/{version}")
}
