//! Which variant runs: a weighted draw that is stable per episode.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::functions::Variant;

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

/// Variants with a positive weight, sampled by weight without replacement; then the ones with
/// weight 0 (fallbacks), in name order. With no weights set at all, every variant is equally
/// likely. The draws come from [`uniform_draw`].
pub(super) fn sampling_order<'v>(
    variants: &'v BTreeMap<String, Variant>,
    function_name: &str,
    episode_id: Uuid,
) -> Vec<&'v String> {
    let any_weight = variants.values().any(|v| v.config.weight().is_some());
    let mut weighted: Vec<(&String, f64)> = variants
        .iter()
        .map(|(name, v)| {
            (
                name,
                if any_weight {
                    v.config.weight().unwrap_or(0.0)
                } else {
                    1.0
                },
            )
        })
        .collect();
    let mut order = Vec::with_capacity(weighted.len());
    let mut round = 0;
    loop {
        let total: f64 = weighted
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|(_, w)| w)
            .sum();
        if total <= 0.0 {
            break;
        }
        let only_candidate = {
            let mut positive = weighted
                .iter()
                .enumerate()
                .filter(|(_, (_, w))| *w > 0.0)
                .map(|(i, _)| i);
            match (positive.next(), positive.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        };
        if let Some(only) = only_candidate {
            // One candidate left: any draw picks it, so none is made (a draw hashes with
            // SHA-256, the most expensive step of sampling, and most functions have one variant).
            order.push(weighted.remove(only).0);
            continue;
        }
        let mut pick = uniform_draw(function_name, episode_id, round) * total;
        round += 1;
        let index = weighted
            .iter()
            .position(|(_, w)| {
                if *w <= 0.0 {
                    return false;
                }
                if pick < *w {
                    return true;
                }
                pick -= w;
                false
            })
            .unwrap_or_else(|| {
                weighted
                    .iter()
                    .rposition(|(_, w)| *w > 0.0)
                    .expect("total > 0")
            });
        order.push(weighted.remove(index).0);
    }
    order.extend(weighted.into_iter().map(|(name, _)| name));
    order
}
