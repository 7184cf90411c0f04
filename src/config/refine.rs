//! Precise locations for errors inside `type = "..."` tables.
//!
//! serde reads an internally tagged enum (a function, a variant, a provider, object storage) by
//! buffering the whole table before it knows the type, and the buffered data carries no path:
//! an error inside it stops at the table (`functions.f`) instead of the key
//! (`functions.f.variants.v.temperature`). When that happens, this module deserializes the
//! table again as the concrete struct its `type` names, which does carry the path, and repeats
//! for tables nested inside. It only runs on the error path.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::common::{ExtraBodyEntry, ExtraHeaderEntry, TimeoutsConfig};
use super::functions::{
    BestOfNConfig, ChatCompletionConfig, ChatFunctionConfig, DiclConfig, JsonFunctionConfig,
    MixtureOfNConfig,
};
use super::gateway::{DisabledStorageConfig, FilesystemStorageConfig, S3Config};
use super::models::{
    AwsBedrockProvider, AwsSagemakerProvider, AzureProvider, GcpVertexProvider, HostedProvider,
    OpenAiProvider, SelfHostedProvider, TgiProvider, VllmProvider,
};
use super::path::{PathSegment, TomlPath};

/// Follows `path` and `message` into tagged tables for as long as that finds a deeper cause.
pub(super) fn refine(
    root: &DeTable<'static>,
    mut path: TomlPath,
    mut message: String,
) -> (TomlPath, String) {
    // Each step goes one table deeper; the bound only guards against a cycle.
    for _ in 0..8 {
        let Some(table) = table_at(root, &path) else {
            break;
        };
        let Some(Err((inner, inner_message))) = check_tagged(&path, table) else {
            break;
        };
        if inner.0.is_empty() && inner_message == message {
            break;
        }
        path.0.extend(inner.0);
        message = inner_message;
    }
    (path, message)
}

fn table_at<'a>(root: &'a DeTable<'static>, path: &TomlPath) -> Option<&'a DeTable<'static>> {
    let mut table = root;
    let mut segs = path.0.iter().peekable();
    while let Some(seg) = segs.next() {
        let PathSegment::Key(k) = seg else {
            return None;
        };
        let value = table.get(k.as_str())?;
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            DeValue::Array(items) => {
                let Some(PathSegment::Index(i)) = segs.next() else {
                    return None;
                };
                match items.get(*i)?.get_ref() {
                    DeValue::Table(t) => table = t,
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    Some(table)
}

type CheckResult = Result<(), (TomlPath, String)>;

/// Deserializes `table` without the given keys as `T`, reporting the path inside it.
fn check<T: DeserializeOwned>(table: &DeTable<'static>, without: &[&str]) -> CheckResult {
    let mut copy = table.clone();
    for key in without {
        copy.remove(*key);
    }
    let de = toml::de::Deserializer::from(Spanned::new(0..0, copy));
    serde_path_to_error::deserialize::<_, T>(de)
        .map(|_| ())
        .map_err(|e| {
            let path = TomlPath::from(e.path());
            (path, e.into_inner().message().to_owned())
        })
}

/// The keys every provider table takes besides its type's own.
#[derive(Deserialize)]
#[allow(dead_code)]
struct ProviderCommon {
    #[serde(default)]
    extra_body: Vec<ExtraBodyEntry>,
    #[serde(default)]
    extra_headers: Vec<ExtraHeaderEntry>,
    #[serde(default)]
    timeouts: TimeoutsConfig,
    #[serde(default)]
    cost: Vec<super::common::CostEntry>,
    #[serde(default)]
    batch_cost: Vec<super::common::CostEntry>,
    #[serde(default)]
    discard_unknown_chunks: bool,
    beta_structured_outputs: Option<bool>,
    parse_think_blocks: Option<bool>,
    circuit_breaker: Option<super::common::CircuitBreakerConfig>,
}

/// `None` when the path is not a tagged table (or its type is unknown: serde's own message
/// already says so).
fn check_tagged(path: &TomlPath, table: &DeTable<'static>) -> Option<CheckResult> {
    let kind = match table.get("type").map(|v| v.get_ref()) {
        Some(DeValue::String(s)) => s.to_string(),
        _ => return None,
    };
    let keys: Vec<&str> = path
        .0
        .iter()
        .map(|s| match s {
            PathSegment::Key(k) => k.as_str(),
            PathSegment::Index(_) => "[]",
        })
        .collect();
    let t = &["type"];
    Some(match (keys.as_slice(), kind.as_str()) {
        (["functions", _], "chat") => check::<ChatFunctionConfig>(table, t),
        (["functions", _], "json") => check::<JsonFunctionConfig>(table, t),
        (["functions", _, "variants", _], "chat_completion" | "experimental_chain_of_thought") => {
            check::<ChatCompletionConfig>(table, t)
        }
        (
            ["functions", _, "variants", _],
            "experimental_best_of_n_sampling" | "experimental_best_of_n",
        ) => check::<BestOfNConfig>(table, t),
        (["functions", _, "variants", _], "experimental_mixture_of_n") => {
            check::<MixtureOfNConfig>(table, t)
        }
        (["functions", _, "variants", _], "experimental_dynamic_in_context_learning") => {
            check::<DiclConfig>(table, t)
        }
        (["models", _, "providers", _], kind) => {
            let own = &[
                "type",
                "extra_body",
                "extra_headers",
                "timeouts",
                "cost",
                "batch_cost",
                "discard_unknown_chunks",
                "beta_structured_outputs",
                "parse_think_blocks",
            ];
            let specific = match kind {
                "openai" => check::<OpenAiProvider>(table, own),
                "azure" => check::<AzureProvider>(table, own),
                "sglang" => check::<SelfHostedProvider>(table, own),
                "vllm" => check::<VllmProvider>(table, own),
                "tgi" => check::<TgiProvider>(table, own),
                "aws_bedrock" => check::<AwsBedrockProvider>(table, own),
                "aws_sagemaker" => check::<AwsSagemakerProvider>(table, own),
                "gcp_vertex_anthropic" | "gcp_vertex_gemini" => {
                    check::<GcpVertexProvider>(table, own)
                }
                "anthropic"
                | "deepseek"
                | "fireworks"
                | "google_ai_studio_gemini"
                | "groq"
                | "hyperbolic"
                | "mistral"
                | "openrouter"
                | "together"
                | "xai" => check::<HostedProvider>(table, own),
                _ => return None,
            };
            specific.and_then(|()| {
                let type_specific: Vec<&str> = table
                    .iter()
                    .map(|(k, _)| k.get_ref().as_ref())
                    .filter(|k| !["extra_body", "extra_headers", "timeouts"].contains(k))
                    .collect();
                check::<ProviderCommon>(table, &type_specific)
            })
        }
        (["object_storage"], "s3_compatible") => check::<S3Config>(table, t),
        (["object_storage"], "filesystem") => check::<FilesystemStorageConfig>(table, t),
        (["object_storage"], "disabled") => check::<DisabledStorageConfig>(table, t),
        _ => return None,
    })
}
