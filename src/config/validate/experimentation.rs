//! Checks of `[functions.F.experimentation]` and of namespaces (on the section, on variants
//! and on models).

use super::*;
use crate::config::experimentation::{CandidateVariants, ExperimentationConfig};

impl Checker<'_> {
    /// A namespace identifier: non-empty, without the reserved prefix.
    pub(super) fn namespace_name(&mut self, at: TomlPath, namespace: &str) {
        if namespace.is_empty() {
            self.error(at, "a namespace cannot be empty");
        } else if namespace.starts_with(RESERVED_PREFIX) {
            self.error(
                at,
                format!("namespace `{namespace}` uses the reserved prefix `{RESERVED_PREFIX}`"),
            );
        }
    }

    pub(super) fn experimentation(&mut self, at: &TomlPath, name: &str, function: &FunctionConfig) {
        for (vname, variant) in function.variants() {
            if let Some(ns) = variant.namespace() {
                self.namespace_name(at.key("variants").key(vname).key("namespace"), ns);
            }
        }
        let Some(section) = function.experimentation() else {
            // The deprecated weights sample every variant without a namespace.
            let reachable: Vec<&str> = function
                .variants()
                .iter()
                .filter(|(_, v)| v.namespace().is_none() && v.weight() != Some(0.0))
                .map(|(n, _)| n.as_str())
                .collect();
            self.models_reachable(at, function, &reachable, None);
            return;
        };
        let eat = at.key("experimentation");
        let weighted: Vec<&str> = function
            .variants()
            .iter()
            .filter(|(_, v)| v.weight().is_some())
            .map(|(n, _)| n.as_str())
            .collect();
        if !weighted.is_empty() {
            self.error(
                eat.clone(),
                format!(
                    "variants {} set `weight` and the function has `[functions.{name}.experimentation]`; sampling is set in one place: remove the weights",
                    weighted.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        self.experiment_table(&eat, function, &section.base, None);
        for (ns, table) in &section.namespaces {
            let nat = eat.key("namespaces").key(ns);
            self.namespace_name(nat.clone(), ns);
            self.experiment_table(&nat, function, table, Some(ns));
        }
    }

    fn experiment_table(
        &mut self,
        at: &TomlPath,
        function: &FunctionConfig,
        table: &ExperimentationConfig,
        namespace: Option<&str>,
    ) {
        let variants = function.variants();
        match table {
            ExperimentationConfig::Uniform(_)
            | ExperimentationConfig::StaticWeights(_)
            | ExperimentationConfig::TrackAndStop(_) => {
                let replacement = match table {
                    ExperimentationConfig::TrackAndStop(_) => "adaptive",
                    _ => "static",
                };
                self.warn(
                    Some(at.key("type")),
                    format!(
                        "`{}` is deprecated in TensorZero; it is read as `type = \"{replacement}\"`",
                        table.type_name()
                    ),
                );
            }
            _ => {}
        }
        let weights: Vec<f64> = match table {
            ExperimentationConfig::Static(s) => match &s.candidate_variants {
                CandidateVariants::Weights(w) => w.values().copied().collect(),
                CandidateVariants::List(_) => Vec::new(),
            },
            ExperimentationConfig::StaticWeights(w) => {
                w.candidate_variants.values().copied().collect()
            }
            _ => Vec::new(),
        };
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            self.error(
                at.key("candidate_variants"),
                "weights must be finite, non-negative numbers",
            );
        }
        if let ExperimentationConfig::Adaptive(a) | ExperimentationConfig::TrackAndStop(a) = table {
            if !self.config.metrics.contains_key(&a.metric) {
                self.error(
                    at.key("metric"),
                    format!(
                        "metric `{}` is not defined; add a [metrics.{}] section",
                        a.metric, a.metric
                    ),
                );
            }
            if a.delta.is_some_and(|d| !(d > 0.0 && d < 1.0)) {
                self.error(at.key("delta"), "must be between 0 and 1 (exclusive)");
            }
            if a.epsilon.is_some_and(|e| !e.is_finite() || e < 0.0) {
                self.error(at.key("epsilon"), "must be a non-negative number");
            }
            if a.min_samples_per_variant == Some(0) {
                self.error(at.key("min_samples_per_variant"), "must be at least 1");
            }
            if let Some(p) = a.min_prob
                && (!p.is_finite() || p < 0.0 || p * a.candidate_variants.len() as f64 > 1.0)
            {
                self.error(
                    at.key("min_prob"),
                    "must be non-negative, and `min_prob` times the number of candidates at most 1",
                );
            }
            if a.algorithm
                .as_deref()
                .is_some_and(|x| x != "track_and_stop")
            {
                self.error(
                    at.key("algorithm"),
                    "the only algorithm is `track_and_stop`",
                );
            }
        }
        let listed = table.named_variants();
        for name in &listed {
            match variants.get(*name) {
                None => self.error(
                    at.clone(),
                    format!("variant `{name}` is not a variant of this function"),
                ),
                Some(v) => {
                    if let Some(own) = v.namespace()
                        && Some(own) != namespace
                    {
                        self.error(
                            at.clone(),
                            format!(
                                "variant `{name}` belongs to namespace `{own}`, so only `experimentation.namespaces.{own}` may list it"
                            ),
                        );
                    }
                }
            }
        }
        // `uniform` without a list reaches every variant the namespace may reach.
        let reachable: Vec<&str> = match table {
            ExperimentationConfig::Uniform(u)
                if u.candidate_variants.is_none() && u.fallback_variants.is_none() =>
            {
                variants
                    .iter()
                    .filter(|(_, v)| v.namespace().is_none() || v.namespace() == namespace)
                    .map(|(n, _)| n.as_str())
                    .collect()
            }
            _ => listed,
        };
        self.models_reachable(at, function, &reachable, namespace);
    }

    /// A model with a `namespace` may be reached only from that namespace's table.
    fn models_reachable(
        &mut self,
        at: &TomlPath,
        function: &FunctionConfig,
        reachable: &[&str],
        namespace: Option<&str>,
    ) {
        for name in reachable {
            let Some(variant) = function.variants().get(*name) else {
                continue;
            };
            let model = match variant {
                VariantConfig::ChatCompletion(v) | VariantConfig::ExperimentalChainOfThought(v) => {
                    &v.model
                }
                VariantConfig::ExperimentalDynamicInContextLearning(d) => &d.model,
                _ => continue,
            };
            if let Some(own) = self
                .config
                .models
                .get(model)
                .and_then(|m| m.namespace.as_deref())
                && Some(own) != namespace
            {
                self.error(
                    at.clone(),
                    format!(
                        "variant `{name}` uses model `{model}`, which belongs to namespace `{own}`; only `experimentation.namespaces.{own}` may reach it"
                    ),
                );
            }
        }
    }
}
