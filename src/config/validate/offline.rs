//! Checks of the sections the gateway loads but does not act on (evaluators, `[evaluations]`,
//! `[optimizers]`, `[autopilot]`) and of the store sections (`[clickhouse]`, `[postgres]`,
//! `gateway.cache`, `gateway.observability`'s newer keys).

use super::*;
use crate::config::offline::{EvaluationType, EvaluatorConfig, JudgeVariantConfig};

impl Checker<'_> {
    pub(super) fn offline_sections(&mut self) {
        let mut loaded = Vec::new();
        for (fname, function) in &self.config.functions {
            for (ename, evaluator) in function.evaluators() {
                let at =
                    TomlPath::keys(["functions", fname.as_str(), "evaluators", ename.as_str()]);
                self.evaluator(at, evaluator);
                loaded.push(format!("`functions.{fname}.evaluators.{ename}`"));
            }
        }
        for (name, evaluation) in &self.config.evaluations {
            let at = TomlPath::keys(["evaluations", name.as_str()]);
            if name.contains("::") {
                self.error(at.clone(), "evaluation names may not contain `::`");
            }
            self.warn(
                Some(at.clone()),
                format!(
                    "`[evaluations]` is deprecated in TensorZero: move its evaluators to `[functions.{}.evaluators]`",
                    evaluation.function_name
                ),
            );
            if evaluation.kind == EvaluationType::Static {
                self.warn(
                    Some(at.key("type")),
                    "`type = \"static\"` is deprecated; write `type = \"inference\"`",
                );
            }
            if !self
                .config
                .functions
                .contains_key(&evaluation.function_name)
            {
                self.error(
                    at.key("function_name"),
                    format!("function `{}` is not defined", evaluation.function_name),
                );
            }
            for (ename, evaluator) in &evaluation.evaluators {
                self.evaluator(at.key("evaluators").key(ename), evaluator);
            }
            loaded.push(format!("`evaluations.{name}`"));
        }
        if !self.config.optimizers.is_empty() {
            loaded.push("`[optimizers]`".to_owned());
        }
        for (name, optimizer) in &self.config.optimizers {
            if optimizer.kind == crate::config::offline::OptimizerType::Gepa {
                let at = TomlPath::keys(["optimizers", name.as_str()]);
                match (
                    optimizer.fields.contains_key("evaluator_names"),
                    optimizer.fields.contains_key("evaluation_name"),
                ) {
                    (true, true) => self.error(
                        at.key("evaluation_name"),
                        "set `evaluator_names` or the deprecated `evaluation_name`, not both",
                    ),
                    (false, false) => self.error(
                        at,
                        "needs `evaluator_names` (or the deprecated `evaluation_name`)",
                    ),
                    (false, true) => self.warn(
                        Some(at.key("evaluation_name")),
                        "is deprecated in TensorZero: write `evaluator_names`",
                    ),
                    (true, false) => {}
                }
            }
        }
        if self.config.autopilot.is_some() {
            loaded.push("`[autopilot]`".to_owned());
        }
        let types = &self.config.provider_types;
        for (name, t) in [
            ("fireworks", &types.fireworks),
            ("together", &types.together),
        ] {
            if t.as_ref().is_some_and(|t| t.sft.is_some()) {
                loaded.push(format!("`provider_types.{name}.sft`"));
            }
        }
        if types
            .gcp_vertex_gemini
            .as_ref()
            .is_some_and(|t| t.sft.is_some())
        {
            loaded.push("`provider_types.gcp_vertex_gemini.sft`".to_owned());
        }
        if types
            .gcp_vertex_anthropic
            .as_ref()
            .is_some_and(|t| t.sft.is_some())
        {
            self.error(
                TomlPath::keys(["provider_types", "gcp_vertex_anthropic", "sft"]),
                "fine-tuning settings exist only for `gcp_vertex_gemini`",
            );
        }
        if !loaded.is_empty() {
            self.warn(
                None,
                format!(
                    "loaded, not used by the gateway (they drive TensorZero's evaluations, optimisation jobs and Autopilot, not inference): {}",
                    loaded.join(", ")
                ),
            );
        }
    }

    fn evaluator(&mut self, at: TomlPath, evaluator: &EvaluatorConfig) {
        let deprecated_cutoff = |c: &mut Self, cutoff: Option<f32>| {
            if cutoff.is_some() {
                c.warn(Some(at.key("cutoff")), "is deprecated in TensorZero");
            }
        };
        match evaluator {
            EvaluatorConfig::ExactMatch(e) => deprecated_cutoff(self, e.cutoff),
            EvaluatorConfig::LlmJudge(judge) => {
                deprecated_cutoff(self, judge.cutoff);
                for (vname, variant) in &judge.variants {
                    let vat = at.key("variants").key(vname);
                    match variant {
                        JudgeVariantConfig::ChatCompletion(v)
                        | JudgeVariantConfig::ExperimentalChainOfThought(v) => {
                            self.model_reference(vat.key("model"), &v.model);
                            self.file_exists(
                                vat.key("system_instructions"),
                                "judge instructions",
                                &v.system_instructions,
                            );
                            self.timeouts(vat, &v.timeouts);
                        }
                        JudgeVariantConfig::ExperimentalBestOfN(e)
                        | JudgeVariantConfig::ExperimentalMixtureOfN(e) => {
                            for candidate in &e.candidates {
                                if !judge.variants.contains_key(candidate) {
                                    self.error(
                                        vat.key("candidates"),
                                        format!(
                                            "candidate `{candidate}` is not a variant of this judge"
                                        ),
                                    );
                                }
                            }
                            for (key, sub) in [("evaluator", &e.evaluator), ("fuser", &e.fuser)] {
                                let Some(sub) = sub else { continue };
                                match sub.get("model").and_then(|m| m.as_str()) {
                                    Some(model) => {
                                        self.model_reference(vat.key(key).key("model"), model)
                                    }
                                    None => self.error(vat.key(key), "needs a `model`"),
                                }
                            }
                            self.timeouts(vat, &e.timeouts);
                        }
                        JudgeVariantConfig::ExperimentalDynamicInContextLearning(_) => {}
                    }
                }
            }
            EvaluatorConfig::ToolUse(t) => match (t.behavior.takes_tools(), &t.tools) {
                (true, None) => self.error(
                    at.key("behavior"),
                    "`none_of`, `any_of` and `all_of` need `tools` (the tool names they look for)",
                ),
                (false, Some(_)) => self.error(
                    at.key("tools"),
                    "`tools` is only for `none_of`, `any_of` and `all_of`; remove it",
                ),
                _ => {}
            },
            EvaluatorConfig::Regex(r) => {
                if r.must_match.is_none() && r.must_not_match.is_none() {
                    self.error(at, "set `must_match`, `must_not_match` or both");
                }
            }
            EvaluatorConfig::Typescript(t) => {
                self.file_exists(
                    at.key("typescript_file"),
                    "TypeScript evaluator",
                    &t.typescript_file,
                );
            }
        }
    }

    pub(super) fn stores(&mut self) {
        let g = &self.config.gateway;
        let obs = &g.observability;
        let oat = TomlPath::keys(["gateway", "observability"]);
        if obs.disable_automatic_migrations {
            self.warn(
                Some(oat.key("disable_automatic_migrations")),
                "is deprecated (TensorZero 2026.2.1): use `clickhouse.disable_automatic_migrations`",
            );
            if self
                .config
                .clickhouse
                .as_ref()
                .is_some_and(|c| c.disable_automatic_migrations)
            {
                self.error(
                    oat.key("disable_automatic_migrations"),
                    "is set here and as `clickhouse.disable_automatic_migrations`; keep only the `[clickhouse]` one",
                );
            }
        }
        if let Some(batch) = &obs.batch_writes {
            let bat = oat.key("batch_writes");
            for (key, value) in [
                ("flush_interval_ms", batch.flush_interval_ms),
                ("max_rows", batch.max_rows),
                ("max_rows_postgres", batch.max_rows_postgres),
                ("write_queue_capacity", batch.write_queue_capacity),
            ] {
                if value == Some(0) {
                    self.error(bat.key(key), "must be greater than 0");
                }
            }
        }
        if g.export.otlp.traces.include_content {
            self.not_supported_yet(
                TomlPath::keys(["gateway", "export", "otlp", "traces", "include_content"]),
                "content attributes on trace spans (`include_content`)",
            );
        }
        if g.cache.is_some() {
            self.not_supported_yet(
                TomlPath::keys(["gateway", "cache"]),
                "the inference cache (`gateway.cache`)",
            );
        }
        if let Some(pg) = &self.config.postgres {
            if pg.enabled.is_some() {
                self.warn(
                    Some(TomlPath::keys(["postgres", "enabled"])),
                    "is deprecated and ignored: Postgres is used when `TENSORZERO_POSTGRES_URL` is set",
                );
            }
            if pg.connection_pool_size == Some(0) {
                self.error(
                    TomlPath::keys(["postgres", "connection_pool_size"]),
                    "must be at least 1",
                );
            }
        }
    }
}
