//! `[functions.F.experimentation]`: which variants a function samples, with what weights, and
//! which it falls back to; per request `namespace`, a table of its own.
//!
//! Unknown keys are ignored here, as TensorZero ignores them.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole section: the base configuration and one per namespace.
#[derive(Clone, Debug, Deserialize)]
pub struct ExperimentationSection {
    /// Used when the request names no namespace, or one without a table of its own.
    #[serde(flatten)]
    pub base: ExperimentationConfig,
    /// `namespaces.NS`: used when the request's `namespace` is `NS`.
    #[serde(default)]
    pub namespaces: BTreeMap<String, ExperimentationConfig>,
}

/// One experimentation table, by `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExperimentationConfig {
    /// Fixed weights over candidates, then fallbacks in order.
    Static(StaticExperiment),
    /// A bandit driven by feedback (track-and-stop).
    Adaptive(AdaptiveExperiment),
    /// Legacy: equal weights (over every variant when no list is given).
    Uniform(UniformExperiment),
    /// Legacy: a map of weights.
    StaticWeights(StaticWeightsExperiment),
    /// Legacy name of `adaptive`.
    TrackAndStop(AdaptiveExperiment),
}

impl ExperimentationConfig {
    /// The `type` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Static(_) => "static",
            Self::Adaptive(_) => "adaptive",
            Self::Uniform(_) => "uniform",
            Self::StaticWeights(_) => "static_weights",
            Self::TrackAndStop(_) => "track_and_stop",
        }
    }

    /// Every variant name the table lists (candidates and fallbacks).
    pub fn named_variants(&self) -> Vec<&str> {
        let (candidates, fallbacks): (Vec<&str>, &[String]) = match self {
            Self::Static(s) => (s.candidate_variants.names(), &s.fallback_variants),
            Self::Adaptive(a) | Self::TrackAndStop(a) => (
                a.candidate_variants.iter().map(String::as_str).collect(),
                &a.fallback_variants,
            ),
            Self::Uniform(u) => (
                u.candidate_variants
                    .iter()
                    .flatten()
                    .map(String::as_str)
                    .collect(),
                u.fallback_variants.as_deref().unwrap_or_default(),
            ),
            Self::StaticWeights(w) => (
                w.candidate_variants.keys().map(String::as_str).collect(),
                &w.fallback_variants,
            ),
        };
        candidates
            .into_iter()
            .chain(fallbacks.iter().map(String::as_str))
            .collect()
    }
}

/// `candidate_variants` of `static`: a list (equal weights) or a map of weights.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum CandidateVariants {
    /// Equal weights.
    List(Vec<String>),
    /// Weights, normalised.
    Weights(BTreeMap<String, f64>),
}

impl CandidateVariants {
    /// The names, in order (a map's in name order).
    pub fn names(&self) -> Vec<&str> {
        match self {
            Self::List(l) => l.iter().map(String::as_str).collect(),
            Self::Weights(w) => w.keys().map(String::as_str).collect(),
        }
    }

    /// Each candidate with its weight.
    pub fn weighted(&self) -> Vec<(String, f64)> {
        match self {
            Self::List(l) => l.iter().map(|n| (n.clone(), 1.0)).collect(),
            Self::Weights(w) => w.iter().map(|(n, w)| (n.clone(), *w)).collect(),
        }
    }
}

/// `type = "static"`.
#[derive(Clone, Debug, Deserialize)]
pub struct StaticExperiment {
    /// The variants sampled.
    pub candidate_variants: CandidateVariants,
    /// Tried in order once every candidate has failed.
    #[serde(default)]
    pub fallback_variants: Vec<String>,
}

/// `type = "adaptive"` (and the legacy `track_and_stop`).
#[derive(Clone, Debug, Deserialize)]
pub struct AdaptiveExperiment {
    /// The `[metrics]` entry whose feedback drives the bandit.
    pub metric: String,
    /// The variants sampled.
    pub candidate_variants: Vec<String>,
    /// Picked at random once every candidate has failed.
    #[serde(default)]
    pub fallback_variants: Vec<String>,
    /// Round-robin until each candidate has this much feedback (default 10).
    pub min_samples_per_variant: Option<u64>,
    /// Error tolerance, in (0, 1) (default 0.05).
    pub delta: Option<f64>,
    /// Sub-optimality tolerance, at least 0 (default 0).
    pub epsilon: Option<f64>,
    /// Seconds between recomputations (default 300).
    pub update_period_s: Option<u64>,
    /// The least probability of each candidate (default 0).
    pub min_prob: Option<f64>,
    /// A cap on samples per candidate (default 10000).
    pub max_samples_per_variant: Option<u64>,
    /// `track_and_stop`, the only algorithm.
    pub algorithm: Option<String>,
}

/// Legacy `type = "uniform"`.
#[derive(Clone, Debug, Deserialize)]
pub struct UniformExperiment {
    /// The variants sampled (default: every variant).
    pub candidate_variants: Option<Vec<String>>,
    /// Tried in order once every candidate has failed.
    pub fallback_variants: Option<Vec<String>>,
}

/// Legacy `type = "static_weights"`.
#[derive(Clone, Debug, Deserialize)]
pub struct StaticWeightsExperiment {
    /// The variants sampled, with their weights.
    pub candidate_variants: BTreeMap<String, f64>,
    /// Tried in order once every candidate has failed.
    #[serde(default)]
    pub fallback_variants: Vec<String>,
}
