//! Adaptive experimentation (`type = "adaptive"`, legacy `track_and_stop`): sampling
//! probabilities recomputed every `update_period_s` from the feedback stored for the
//! experiment's metric, so traffic moves to the best variant once the data says which it is.
//!
//! The rule, per recomputation:
//! 1. **Warm-up.** While some candidate has fewer than `min_samples_per_variant` feedback
//!    points, only the least-sampled candidates are drawn (uniformly): round-robin in effect.
//! 2. **Stopping.** With every candidate warmed up, the leader (best mean, in the metric's
//!    `optimize` direction) is tested against each other candidate with a Gaussian GLR
//!    statistic, `(gap + epsilon)^2 / (2 (var_leader/n_leader + var_other/n_other))`, against
//!    the threshold `ln((1 + ln t) / delta)` (t: all feedback points). When every test passes,
//!    the leader is identified: it gets everything but the `min_prob` floor of the others.
//! 3. **Tracking.** Otherwise candidates are drawn in proportion to the optimal allocation
//!    for telling the leader from the rest with Gaussian rewards: others in proportion to
//!    `var / gap^2` (gaps below `epsilon` count as `epsilon`), the leader
//!    `sigma_leader * sqrt(sum w_j^2 / var_j)`, each at least `min_prob`.
//!
//! Feedback counts once per target (its latest value). Inference-level metrics are joined to
//! the inference's variant, episode-level ones to the variant of the episode's first
//! inference. Probabilities start uniform and stay as they were while Postgres cannot answer.
//!
//! An episode keeps its variant: the first draw of an episode is stored in
//! `variant_by_episode` and every later inference of the episode (on any replica, after any
//! probability update) runs that variant first ([`episode_variant`]).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::Pool;

use crate::config::experimentation::AdaptiveExperiment;
use crate::config::functions::{MetricConfig, MetricLevel, MetricOptimize, MetricType};

/// Feedback on one candidate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ArmStats {
    /// Feedback points.
    pub n: u64,
    /// Their mean.
    pub mean: f64,
    /// Their sample variance.
    pub variance: f64,
}

/// The settings of one adaptive experiment, with its defaults applied.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The candidates, in configuration order.
    pub candidates: Vec<String>,
    /// Feedback points each candidate needs before the bandit compares them.
    pub min_samples: u64,
    /// Error tolerance.
    pub delta: f64,
    /// Sub-optimality tolerance.
    pub epsilon: f64,
    /// Floor of each candidate's probability.
    pub min_prob: f64,
    /// Seconds between recomputations.
    pub update_period: Duration,
    /// Whether lower values are better.
    pub minimize: bool,
}

impl Settings {
    /// From the configuration (names and bounds were checked when it loaded).
    pub fn new(a: &AdaptiveExperiment, metric: Option<&MetricConfig>) -> Self {
        Self {
            candidates: a.candidate_variants.clone(),
            min_samples: a.min_samples_per_variant.unwrap_or(10).max(1),
            delta: a.delta.unwrap_or(0.05),
            epsilon: a.epsilon.unwrap_or(0.0),
            min_prob: a.min_prob.unwrap_or(0.0),
            update_period: Duration::from_secs(a.update_period_s.unwrap_or(300).max(1)),
            minimize: metric.is_some_and(|m| m.optimize == MetricOptimize::Min),
        }
    }
}

/// The current sampling probabilities of one experiment, shared by the sampler and the task
/// that recomputes them.
#[derive(Debug)]
pub struct Probabilities {
    weights: RwLock<Vec<(String, f64)>>,
}

impl Probabilities {
    /// Uniform over `candidates`.
    pub fn uniform(candidates: &[String]) -> Arc<Self> {
        Arc::new(Self {
            weights: RwLock::new(candidates.iter().map(|c| (c.clone(), 1.0)).collect()),
        })
    }

    /// The candidates with their current weights (positive ones only).
    pub fn current(&self) -> Vec<(String, f64)> {
        self.weights
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .cloned()
            .collect()
    }

    fn set(&self, weights: Vec<(String, f64)>) {
        *self.weights.write().unwrap_or_else(|e| e.into_inner()) = weights;
    }
}

/// The probabilities `stats` (one per candidate, in order) call for.
pub fn probabilities(settings: &Settings, stats: &[ArmStats]) -> Vec<f64> {
    let k = stats.len();
    if k == 0 {
        return Vec::new();
    }
    let uniform = vec![1.0 / k as f64; k];
    // 1. Warm-up: the least-sampled candidates, uniformly.
    let fewest = stats.iter().map(|s| s.n).min().unwrap_or(0);
    if fewest < settings.min_samples {
        let behind: Vec<bool> = stats.iter().map(|s| s.n == fewest).collect();
        let count = behind.iter().filter(|b| **b).count() as f64;
        return behind
            .iter()
            .map(|b| if *b { 1.0 / count } else { 0.0 })
            .collect();
    }
    let sign = if settings.minimize { -1.0 } else { 1.0 };
    let means: Vec<f64> = stats.iter().map(|s| sign * s.mean).collect();
    // A variance of 0 (all feedback equal so far) would make any gap infinitely certain: use a
    // floor, as a Bernoulli arm with one contrary point in n would have.
    let variances: Vec<f64> = stats
        .iter()
        .map(|s| s.variance.max(1.0 / (4.0 * s.n as f64)).max(1e-9))
        .collect();
    let leader = (0..k)
        .max_by(|a, b| means[*a].total_cmp(&means[*b]))
        .unwrap_or(0);
    // 2. Stopping: the leader is better than each other by a confident margin.
    let total: f64 = stats.iter().map(|s| s.n as f64).sum();
    let threshold = ((1.0 + total.max(1.0).ln()) / settings.delta).ln();
    let identified = (0..k).filter(|j| *j != leader).all(|j| {
        let gap = means[leader] - means[j] + settings.epsilon;
        gap > 0.0
            && gap * gap
                / (2.0
                    * (variances[leader] / stats[leader].n as f64
                        + variances[j] / stats[j].n as f64))
                > threshold
    });
    let mut weights = if identified {
        let mut w = vec![0.0; k];
        w[leader] = 1.0;
        w
    } else {
        // 3. Tracking: the Gaussian optimal allocation.
        let floor = settings.epsilon.max(1e-6);
        let mut w: Vec<f64> = (0..k)
            .map(|j| {
                if j == leader {
                    0.0
                } else {
                    let gap = (means[leader] - means[j]).max(floor);
                    variances[j] / (gap * gap)
                }
            })
            .collect();
        let others: f64 = (0..k)
            .filter(|j| *j != leader)
            .map(|j| w[j] * w[j] / variances[j])
            .sum();
        w[leader] = variances[leader].sqrt() * others.sqrt();
        let sum: f64 = w.iter().sum();
        if !(sum.is_finite() && sum > 0.0) {
            return uniform;
        }
        w.iter_mut().for_each(|x| *x /= sum);
        w
    };
    apply_floor(&mut weights, settings.min_prob);
    weights
}

/// Raises every probability to at least `floor` (when `floor * k <= 1`), taking the extra
/// from the others in proportion.
fn apply_floor(p: &mut [f64], floor: f64) {
    let k = p.len() as f64;
    if floor <= 0.0 || floor * k > 1.0 {
        return;
    }
    let below: f64 = p.iter().filter(|x| **x < floor).map(|x| floor - x).sum();
    let above: f64 = p.iter().filter(|x| **x >= floor).map(|x| x - floor).sum();
    for x in p.iter_mut() {
        if *x < floor {
            *x = floor;
        } else if above > 0.0 {
            *x -= (*x - floor) / above * below;
        }
    }
}

/// Reads each candidate's feedback on `metric` for `function` (whose inferences are in the
/// json tables when `json`).
pub async fn read_stats(
    pool: &Pool,
    function: &str,
    json: bool,
    metric_name: &str,
    metric: &MetricConfig,
    candidates: &[String],
) -> Result<Vec<ArmStats>, String> {
    let feedback = match metric.metric_type {
        MetricType::Float => {
            "SELECT target_id, created_at, id, value::double precision AS v FROM tensorzero.float_metric_feedback"
        }
        MetricType::Boolean => {
            "SELECT target_id, created_at, id, value::int::double precision AS v FROM tensorzero.boolean_metric_feedback"
        }
    };
    let inferences = if json {
        "tensorzero.json_inferences"
    } else {
        "tensorzero.chat_inferences"
    };
    let target = match metric.level {
        MetricLevel::Inference => {
            format!("SELECT id AS target, variant_name FROM {inferences} WHERE function_name = $2")
        }
        MetricLevel::Episode => format!(
            "SELECT DISTINCT ON (episode_id) episode_id AS target, variant_name FROM {inferences}
             WHERE function_name = $2 ORDER BY episode_id, id"
        ),
    };
    let sql = format!(
        "WITH latest AS (
             SELECT DISTINCT ON (target_id) target_id, v FROM ({feedback} WHERE metric_name = $1) f
             ORDER BY target_id, created_at DESC, id DESC
         ), targets AS ({target})
         SELECT t.variant_name, count(*)::bigint, avg(l.v)::double precision, coalesce(var_samp(l.v), 0)::double precision
         FROM latest l JOIN targets t ON t.target = l.target_id
         WHERE t.variant_name = ANY($3)
         GROUP BY t.variant_name"
    );
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let rows = client
        .query(&sql, &[&metric_name, &function, &candidates.to_vec()])
        .await
        .map_err(|e| e.to_string())?;
    Ok(candidates
        .iter()
        .map(|c| {
            rows.iter()
                .find(|r| r.get::<_, &str>(0) == c)
                .map(|r| ArmStats {
                    n: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                    mean: r.get(2),
                    variance: r.get(3),
                })
                .unwrap_or_default()
        })
        .collect())
}

/// How long an inference waits for its episode's stored variant before going on with its own
/// draw (a slow or unreachable Postgres must not hold up inferences).
pub const EPISODE_LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);

/// The variant `episode` runs in `function`'s adaptive experiment: the one stored for it, or
/// `drawn`, stored now. One statement: on conflict a no-op update returns the stored row, so
/// when two replicas draw for a new episode at once, the first writer wins and both run it.
/// With `store_draw` false (a `dryrun`, which stores nothing), the stored variant is only read:
/// `drawn` when the episode has none.
pub async fn episode_variant(
    pool: &Pool,
    function: &str,
    episode: uuid::Uuid,
    drawn: &str,
    store_draw: bool,
) -> Result<String, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    if !store_draw {
        let row = client
            .query_opt(
                "SELECT variant_name FROM variant_by_episode WHERE function_name = $1 AND episode_id = $2",
                &[&function, &episode],
            )
            .await
            .map_err(|e| e.to_string())?;
        return Ok(row.map_or_else(|| drawn.to_owned(), |r| r.get(0)));
    }
    let row = client
        .query_one(
            "INSERT INTO variant_by_episode (function_name, episode_id, variant_name)
             VALUES ($1, $2, $3)
             ON CONFLICT (function_name, episode_id)
             DO UPDATE SET variant_name = variant_by_episode.variant_name
             RETURNING variant_name",
            &[&function, &episode, &drawn],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

/// Failed episode lookups are logged once a second at most: while Postgres is down every
/// adaptive inference fails one.
pub static LOOKUP_WARNING: crate::logging::WarnThrottle = crate::logging::WarnThrottle::new();

/// What the recomputing task needs.
pub struct Experiment {
    /// The function.
    pub function: String,
    /// Whether its inferences are json ones.
    pub json: bool,
    /// The metric's name.
    pub metric_name: String,
    /// The metric.
    pub metric: MetricConfig,
    /// The settings.
    pub settings: Settings,
    /// Where the sampler reads the probabilities.
    pub probabilities: Arc<Probabilities>,
}

/// Recomputes the probabilities every `update_period` until aborted.
pub async fn keep_updated(pool: Pool, experiment: Experiment) {
    let mut last: Option<Vec<f64>> = None;
    loop {
        match read_stats(
            &pool,
            &experiment.function,
            experiment.json,
            &experiment.metric_name,
            &experiment.metric,
            &experiment.settings.candidates,
        )
        .await
        {
            Ok(stats) => {
                let p = probabilities(&experiment.settings, &stats);
                if last.as_ref() != Some(&p) {
                    tracing::info!(
                        function = %experiment.function,
                        probabilities = ?experiment.settings.candidates.iter().zip(&p).collect::<Vec<_>>(),
                        "adaptive experiment: sampling probabilities updated"
                    );
                    last = Some(p.clone());
                }
                experiment.probabilities.set(
                    experiment
                        .settings
                        .candidates
                        .iter()
                        .cloned()
                        .zip(p)
                        .collect(),
                );
            }
            Err(e) => tracing::warn!(
                function = %experiment.function,
                error = %e,
                "adaptive experiment: reading feedback failed; sampling as before"
            ),
        }
        tokio::time::sleep(experiment.settings.update_period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(k: usize) -> Settings {
        Settings {
            candidates: (0..k).map(|i| format!("v{i}")).collect(),
            min_samples: 10,
            delta: 0.05,
            epsilon: 0.0,
            min_prob: 0.0,
            update_period: Duration::from_secs(1),
            minimize: false,
        }
    }

    fn arm(n: u64, mean: f64) -> ArmStats {
        ArmStats {
            n,
            mean,
            variance: mean * (1.0 - mean),
        }
    }

    #[test]
    fn warm_up_draws_the_least_sampled() {
        let p = probabilities(&settings(3), &[arm(3, 0.9), arm(1, 0.1), arm(1, 0.5)]);
        assert_eq!(p, vec![0.0, 0.5, 0.5]);
    }

    #[test]
    fn a_clear_winner_takes_everything_but_the_floor() {
        let mut s = settings(2);
        let p = probabilities(&s, &[arm(100, 0.2), arm(100, 0.9)]);
        assert_eq!(p, vec![0.0, 1.0]);
        s.min_prob = 0.1;
        let p = probabilities(&s, &[arm(100, 0.2), arm(100, 0.9)]);
        assert!(
            (p[0] - 0.1).abs() < 1e-9 && (p[1] - 0.9).abs() < 1e-9,
            "{p:?}"
        );
        s.minimize = true;
        let p = probabilities(&s, &[arm(100, 0.2), arm(100, 0.9)]);
        assert!(p[0] > p[1], "lower is better: {p:?}");
    }

    #[test]
    fn close_arms_share_the_traffic() {
        let p = probabilities(&settings(3), &[arm(20, 0.5), arm(20, 0.55), arm(20, 0.1)]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(
            p[0] > p[2] && p[1] > p[2],
            "the clear loser gets least: {p:?}"
        );
    }
}
