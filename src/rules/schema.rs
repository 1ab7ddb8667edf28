//! The JSON Schema of rules documents, for editors (yaml-language-server and friends).

use schemars::JsonSchema;

use super::model::{Promotion, Settings};

/// The `apiVersion` every document carries.
#[derive(JsonSchema)]
#[allow(dead_code)]
enum ApiVersion {
    #[serde(rename = "tagpromoter.io/v1alpha1")]
    V1Alpha1,
}

/// `metadata` of a document.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Metadata {
    /// The name: lowercase letters, digits and '-'.
    name: String,
}

/// A `Settings` document.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct SettingsDocument {
    api_version: ApiVersion,
    kind: SettingsKind,
    #[serde(default)]
    metadata: Option<Metadata>,
    spec: Settings,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
enum SettingsKind {
    Settings,
}

/// A `Promotion` document.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct PromotionDocument {
    api_version: ApiVersion,
    kind: PromotionKind,
    metadata: Metadata,
    spec: Promotion,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
enum PromotionKind {
    Promotion,
}

/// One rules document: `Settings` or `Promotion`.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum RulesDocument {
    Settings(Box<SettingsDocument>),
    Promotion(Box<PromotionDocument>),
}

/// The JSON Schema, pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(RulesDocument);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
