//! Which variant runs: `[functions.F.experimentation]` (or, without it, the deprecated variant
//! `weight`s) turned into a plan per namespace, and a weighted draw that is stable per episode.
//!
//! The rules are TensorZero 2026's:
//! - `static`: candidates sampled by weight (a list means equal weights), then
//!   `fallback_variants` in order; the legacy `uniform` (every variant when it lists none) and
//!   `static_weights` are the same thing spelled differently.
//! - `adaptive` (and the legacy `track_and_stop`): candidates are drawn with the probabilities
//!   the bandit keeps recomputing from stored feedback (see `adaptive`; uniform until then, and
//!   without a store), candidates it gave nothing to after them, then the fallbacks in random
//!   order.
//! - no experimentation: when any variant has a `weight`, the variants with a positive weight
//!   are the candidates, the ones without a weight are fallbacks (in name order), and the ones
//!   with weight 0 run only when pinned; with no weights at all, every variant is a candidate.
//! - a variant with a `namespace` is reachable only from `experimentation.namespaces.NS` of
//!   that name (or by pinning it); a request whose namespace has no table uses the base one.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use std::sync::Arc;

use super::adaptive::Probabilities;
use crate::config::FunctionConfig;
use crate::config::experimentation::{AdaptiveExperiment, ExperimentationConfig};

/// A number in [0, 1) drawn from the function, the episode and the round: the same episode
/// gets the same variants in the same order (an episode's inferences stay on one variant), and
/// over many episodes the draws are uniform. Tests seed it by choosing the episode ids.
pub(super) fn uniform_draw(function_name: &str, episode_id: Uuid, round: usize) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(function_name.as_bytes());
    hasher.update([0]);
    hasher.update(episode_id.as_bytes());
    hasher.update((round as u64).to_le_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // The top 53 bits make an evenly spaced double in [0, 1).
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// How one function orders its variants for one namespace.
#[derive(Clone, Debug, Default)]
pub struct SamplingPlan {
    /// Sampled by weight, without replacement (weights are positive).
    candidates: Vec<(String, f64)>,
    /// Tried once every candidate has failed.
    fallbacks: Vec<String>,
    /// Fallbacks in a random order (adaptive) rather than as listed.
    shuffle_fallbacks: bool,
    /// An adaptive experiment's settings and its current probabilities (they replace the
    /// candidates' weights).
    adaptive: Option<(AdaptiveExperiment, Arc<Probabilities>)>,
}

/// A function's plans: the base one and one per namespace with a table of its own.
#[derive(Clone, Debug, Default)]
pub struct Sampler {
    base: SamplingPlan,
    namespaces: HashMap<String, SamplingPlan>,
}

impl Sampler {
    /// The plans of `function`'s configuration (names were checked when it loaded).
    pub fn new(function: &FunctionConfig) -> Self {
        let variants = function.variants();
        let visible = |namespace: Option<&str>| -> Vec<&String> {
            variants
                .iter()
                .filter(|(_, v)| v.namespace().is_none() || v.namespace() == namespace)
                .map(|(name, _)| name)
                .collect()
        };
        match function.experimentation() {
            None => {
                let base: Vec<&String> = visible(None);
                Self {
                    base: by_weight(function, &base),
                    namespaces: HashMap::new(),
                }
            }
            Some(section) => Self {
                base: plan(&section.base, &visible(None)),
                namespaces: section
                    .namespaces
                    .iter()
                    .map(|(ns, table)| (ns.clone(), plan(table, &visible(Some(ns)))))
                    .collect(),
            },
        }
    }

    /// The adaptive experiments (the base table's and each namespace's), with the
    /// probabilities their bandits keep up to date.
    pub fn adaptive(&self) -> Vec<(&AdaptiveExperiment, Arc<Probabilities>)> {
        std::iter::once(&self.base)
            .chain(self.namespaces.values())
            .filter_map(|p| p.adaptive.as_ref().map(|(a, p)| (a, p.clone())))
            .collect()
    }

    /// The plan for a request in `namespace`.
    pub fn plan(&self, namespace: Option<&str>) -> &SamplingPlan {
        namespace
            .and_then(|ns| self.namespaces.get(ns))
            .unwrap_or(&self.base)
    }
}

/// The deprecated `weight` rules (no `[experimentation]`).
fn by_weight(function: &FunctionConfig, names: &[&String]) -> SamplingPlan {
    let variants = function.variants();
    let weight = |name: &String| variants[name].weight();
    if !names.iter().any(|n| weight(n).is_some()) {
        return SamplingPlan {
            candidates: names.iter().map(|n| ((*n).clone(), 1.0)).collect(),
            ..SamplingPlan::default()
        };
    }
    SamplingPlan {
        candidates: names
            .iter()
            .filter_map(|n| weight(n).filter(|w| *w > 0.0).map(|w| ((*n).clone(), w)))
            .collect(),
        fallbacks: names
            .iter()
            .filter(|n| weight(n).is_none())
            .map(|n| (*n).clone())
            .collect(),
        shuffle_fallbacks: false,
        adaptive: None,
    }
}

/// One experimentation table; `visible` is every variant it may reach (for `uniform` without
/// a list).
fn plan(table: &ExperimentationConfig, visible: &[&String]) -> SamplingPlan {
    let equal = |names: &[String]| names.iter().map(|n| (n.clone(), 1.0)).collect();
    let (candidates, fallbacks, shuffle_fallbacks) = match table {
        ExperimentationConfig::Static(s) => (
            s.candidate_variants.weighted(),
            s.fallback_variants.clone(),
            false,
        ),
        ExperimentationConfig::StaticWeights(w) => (
            w.candidate_variants
                .iter()
                .map(|(n, w)| (n.clone(), *w))
                .collect(),
            w.fallback_variants.clone(),
            false,
        ),
        ExperimentationConfig::Uniform(u) => match (&u.candidate_variants, &u.fallback_variants) {
            (None, None) => (
                visible.iter().map(|n| ((*n).clone(), 1.0)).collect(),
                Vec::new(),
                false,
            ),
            (candidates, fallbacks) => (
                equal(candidates.as_deref().unwrap_or_default()),
                fallbacks.clone().unwrap_or_default(),
                false,
            ),
        },
        ExperimentationConfig::Adaptive(a) | ExperimentationConfig::TrackAndStop(a) => {
            return SamplingPlan {
                candidates: equal(&a.candidate_variants),
                fallbacks: a.fallback_variants.clone(),
                shuffle_fallbacks: true,
                adaptive: Some((a.clone(), Probabilities::uniform(&a.candidate_variants))),
            };
        }
    };
    SamplingPlan {
        candidates: candidates.into_iter().filter(|(_, w)| *w > 0.0).collect(),
        fallbacks,
        shuffle_fallbacks,
        adaptive: None,
    }
}

impl SamplingPlan {
    /// Whether no variant can be sampled (only pinning reaches one).
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty() && self.fallbacks.is_empty()
    }

    /// Whether an adaptive experiment draws the candidates (its episodes keep their first
    /// variant across replicas and probability updates: see `adaptive::episode_variant`).
    pub fn is_adaptive(&self) -> bool {
        self.adaptive.is_some()
    }

    /// Whether `name` is one of the candidates (a stored episode variant that the
    /// configuration no longer offers is not used).
    pub fn is_candidate(&self, name: &str) -> bool {
        self.candidates.iter().any(|(c, _)| c == name)
    }

    /// The order to try variants in for `episode_id`: candidates drawn by weight without
    /// replacement, then the fallbacks. A name appears once.
    pub fn order(&self, function_name: &str, episode_id: Uuid) -> Vec<&str> {
        let mut round = 0;
        let mut order: Vec<&str> = Vec::with_capacity(self.candidates.len() + self.fallbacks.len());
        match &self.adaptive {
            None => {
                let weighted: Vec<(&str, f64)> = self
                    .candidates
                    .iter()
                    .map(|(n, w)| (n.as_str(), *w))
                    .collect();
                draw_all(weighted, function_name, episode_id, &mut round, &mut order);
            }
            Some((_, probabilities)) => {
                let current = probabilities.current();
                let weighted: Vec<(&str, f64)> = self
                    .candidates
                    .iter()
                    .filter_map(|(n, _)| {
                        current
                            .iter()
                            .find(|(c, _)| c == n)
                            .map(|(_, w)| (n.as_str(), *w))
                    })
                    .collect();
                draw_all(weighted, function_name, episode_id, &mut round, &mut order);
                // Candidates the bandit gives nothing to still come before the fallbacks.
                let rest = self
                    .candidates
                    .iter()
                    .map(|(n, _)| (n.as_str(), 1.0))
                    .collect();
                draw_all(rest, function_name, episode_id, &mut round, &mut order);
            }
        }
        let fallbacks = self.fallbacks.iter().map(String::as_str);
        if self.shuffle_fallbacks {
            let equal = fallbacks.map(|n| (n, 1.0)).collect();
            draw_all(equal, function_name, episode_id, &mut round, &mut order);
        } else {
            for name in fallbacks {
                if !order.contains(&name) {
                    order.push(name);
                }
            }
        }
        order
    }
}

/// Draws every entry of `weighted` without replacement into `order` (skipping names already
/// there), one [`uniform_draw`] per pick; a lone entry needs no draw (a draw hashes with
/// SHA-256, the most expensive step of sampling, and most functions have one variant).
fn draw_all<'a>(
    mut weighted: Vec<(&'a str, f64)>,
    function_name: &str,
    episode_id: Uuid,
    round: &mut usize,
    order: &mut Vec<&'a str>,
) {
    weighted.retain(|(n, _)| !order.contains(n));
    while !weighted.is_empty() {
        let index = if weighted.len() == 1 {
            0
        } else {
            let total: f64 = weighted.iter().map(|(_, w)| w).sum();
            let mut pick = uniform_draw(function_name, episode_id, *round) * total;
            *round += 1;
            weighted
                .iter()
                .position(|(_, w)| {
                    if pick < *w {
                        return true;
                    }
                    pick -= w;
                    false
                })
                .unwrap_or(weighted.len() - 1)
        };
        let (name, _) = weighted.remove(index);
        order.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(toml: &str) -> FunctionConfig {
        toml::from_str(toml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn variant(name: &str, extra: &str) -> String {
        format!("[variants.{name}]\ntype = \"chat_completion\"\nmodel = \"m\"\n{extra}\n")
    }

    fn episodes(n: u128) -> Vec<Uuid> {
        (0..n)
            .map(|i| Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | i))
            .collect()
    }

    #[test]
    fn weights_make_candidates_unweighted_variants_fallbacks_and_zero_pinned_only() {
        let f = function(&format!(
            "type = \"chat\"\n{}{}{}",
            variant("a", "weight = 0"),
            variant("b", "weight = 1"),
            variant("c", "")
        ));
        let sampler = Sampler::new(&f);
        for e in episodes(20) {
            assert_eq!(sampler.plan(None).order("f", e), ["b", "c"]);
        }
        // No weights at all: every variant is a candidate.
        let f = function(&format!(
            "type = \"chat\"\n{}{}",
            variant("a", ""),
            variant("b", "")
        ));
        let plan = Sampler::new(&f).plan(None).clone();
        let firsts: std::collections::BTreeSet<&str> = episodes(50)
            .iter()
            .map(|e| plan.order("f", *e)[0])
            .collect();
        assert_eq!(firsts.len(), 2, "{firsts:?}");
    }

    #[test]
    fn weights_shape_the_first_pick_and_episodes_are_sticky() {
        let f = function(&format!(
            "type = \"chat\"\n{}{}",
            variant("a", "weight = 1"),
            variant("b", "weight = 3")
        ));
        let sampler = Sampler::new(&f);
        let plan = sampler.plan(None);
        let all = episodes(4000);
        let b_first = all
            .iter()
            .filter(|e| plan.order("f", **e)[0] == "b")
            .count();
        // Expected 3000; the bound is many standard deviations (~27) wide.
        assert!((2700..3300).contains(&b_first), "{b_first}");
        for e in &all[..50] {
            assert_eq!(plan.order("f", *e), plan.order("f", *e));
        }
    }

    #[test]
    fn static_experimentation_and_namespaces() {
        let f = function(&format!(
            r#"type = "chat"
[experimentation]
type = "static"
candidate_variants = {{ a = 1.0, b = 0.0 }}
fallback_variants = ["c", "a"]
[experimentation.namespaces.acme]
type = "static"
candidate_variants = ["tenant"]
fallback_variants = ["c"]
[experimentation.namespaces.old]
type = "uniform"
{}{}{}{}"#,
            variant("a", ""),
            variant("b", ""),
            variant("c", ""),
            variant("tenant", "namespace = \"acme\"")
        ));
        let sampler = Sampler::new(&f);
        // A weight of 0 in a map is no candidate; a fallback that was a candidate comes once.
        assert_eq!(sampler.plan(None).order("f", Uuid::now_v7()), ["a", "c"]);
        assert_eq!(
            sampler.plan(Some("acme")).order("f", Uuid::now_v7()),
            ["tenant", "c"]
        );
        // A namespace without a table of its own uses the base one.
        assert_eq!(
            sampler.plan(Some("other")).order("f", Uuid::now_v7()),
            ["a", "c"]
        );
        // `uniform` without a list: every variant that namespace may reach (not `tenant`).
        let mut seen: Vec<&str> = sampler.plan(Some("old")).order("f", Uuid::now_v7());
        seen.sort();
        assert_eq!(seen, ["a", "b", "c"]);
    }
}
