//! Keys in the tables where TensorZero ignores unknown keys (`[rate_limiting]` and its rules'
//! non-resource keys, `[object_storage]`, `retries`, `[provider_types.T]` of key-based types
//! and their `defaults`): serde ignores them too, so the configuration loads as it does there,
//! and each one is named in a warning, since a typo there would otherwise go unseen.
//!
//! A rate-limit rule's `*_per_*` keys are the exception: one switchyard cannot enforce (an
//! unknown resource or interval) is an error, because a limit silently not
//! enforced is worse than a gateway that will not start.

use toml::de::{DeTable, DeValue};

use super::*;

const RATE_LIMITING_KEYS: &[&str] = &[
    "enabled",
    "backend",
    "default_cost",
    "default_max_tokens",
    "rules",
];
const RULE_KEYS: &[&str] = &["priority", "always", "scope"];
const RESOURCES: &[&str] = &["model_inferences", "tokens", "cost"];
const INTERVALS: &[&str] = &["second", "minute", "hour", "day", "week", "month"];
const RETRY_KEYS: &[&str] = &["num_retries", "max_delay_s"];
const PROVIDER_TYPE_KEYS: &[&str] = &["defaults", "sft"];
const DEFAULTS_KEYS: &[&str] = &["api_key_location", "api_base"];

fn table<'a>(t: &'a DeTable<'static>, key: &str) -> Option<&'a DeTable<'static>> {
    match t.get(key).map(|v| v.get_ref()) {
        Some(DeValue::Table(t)) => Some(t),
        _ => None,
    }
}

fn tables<'a>(
    t: &'a DeTable<'static>,
    key: &str,
) -> impl Iterator<Item = (&'a str, &'a DeTable<'static>)> {
    table(t, key).into_iter().flat_map(|t| {
        t.iter().filter_map(|(k, v)| match v.get_ref() {
            DeValue::Table(inner) => Some((k.get_ref().as_ref(), inner)),
            _ => None,
        })
    })
}

impl Checker<'_> {
    pub(super) fn ignored_keys(&mut self) {
        let mut found: Vec<(TomlPath, &'static [&'static str])> = Vec::new();
        let mut rule_errors: Vec<(TomlPath, String)> = Vec::new();
        for root in self.sources.roots() {
            let unknown = |t: &DeTable<'static>,
                           at: &TomlPath,
                           known: &'static [&'static str],
                           found: &mut Vec<_>| {
                for key in t.keys() {
                    let key = key.get_ref().as_ref();
                    if !known.contains(&key) {
                        found.push((at.key(key), known));
                    }
                }
            };
            if let Some(rl) = table(root, "rate_limiting") {
                let at = TomlPath::keys(["rate_limiting"]);
                unknown(rl, &at, RATE_LIMITING_KEYS, &mut found);
                if let Some(DeValue::Array(rules)) = rl.get("rules").map(|v| v.get_ref()) {
                    for (i, rule) in rules.iter().enumerate() {
                        let DeValue::Table(rule) = rule.get_ref() else {
                            continue;
                        };
                        let rat = at.key("rules").index(i);
                        for key in rule.keys() {
                            let key = key.get_ref().as_ref();
                            if RULE_KEYS.contains(&key) {
                                continue;
                            }
                            match key.split_once("_per_") {
                                None => found.push((rat.key(key), RULE_KEYS)),
                                Some((resource, interval))
                                    if !RESOURCES.contains(&resource)
                                        || !INTERVALS.contains(&interval) =>
                                {
                                    rule_errors.push((
                                        rat.key(key),
                                        format!("`{key}` is not a limit: write `<resource>_per_<interval>` with a resource of {} and an interval of {}", RESOURCES.join(", "), INTERVALS.join(", ")),
                                    ))
                                }
                                Some(_) => {}
                            }
                        }
                    }
                }
            }
            if let Some(storage) = table(root, "object_storage") {
                let known: &'static [&'static str] = match storage.get("type").map(|v| v.get_ref())
                {
                    Some(DeValue::String(s)) if s == "s3_compatible" => {
                        &["type", "endpoint", "bucket_name", "region", "allow_http"]
                    }
                    Some(DeValue::String(s)) if s == "filesystem" => &["type", "path"],
                    _ => &["type"],
                };
                unknown(
                    storage,
                    &TomlPath::keys(["object_storage"]),
                    known,
                    &mut found,
                );
            }
            for (fname, function) in tables(root, "functions") {
                for (vname, variant) in tables(function, "variants") {
                    let vat = TomlPath::keys(["functions", fname, "variants", vname]);
                    for (sub, sat) in [
                        (Some(variant), vat.clone()),
                        (table(variant, "evaluator"), vat.key("evaluator")),
                        (table(variant, "fuser"), vat.key("fuser")),
                    ] {
                        if let Some(retries) = sub.and_then(|s| table(s, "retries")) {
                            unknown(retries, &sat.key("retries"), RETRY_KEYS, &mut found);
                        }
                    }
                }
            }
            for (kind, t) in tables(root, "provider_types") {
                if kind.starts_with("gcp_") {
                    continue;
                }
                let at = TomlPath::keys(["provider_types", kind]);
                unknown(t, &at, PROVIDER_TYPE_KEYS, &mut found);
                if let Some(defaults) = table(t, "defaults") {
                    unknown(defaults, &at.key("defaults"), DEFAULTS_KEYS, &mut found);
                }
            }
        }
        for (path, message) in rule_errors {
            self.error(path, message);
        }
        for (path, known) in found {
            self.warn(
                Some(path),
                format!(
                    "is not a key of this table; it is ignored, as TensorZero ignores it (known keys: {})",
                    known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
}
