//! Checks of `[tools]` and `[functions]` (variants, their models, templates and schemas).

use super::*;

impl Checker<'_> {
    pub(super) fn tools(&mut self) {
        for (name, tool) in &self.config.tools {
            let at = TomlPath::keys(["tools", name.as_str()]);
            if name.starts_with(RESERVED_PREFIX) {
                self.error(
                    at.clone(),
                    format!("tool name `{name}` uses the reserved prefix `{RESERVED_PREFIX}`"),
                );
            }
            self.json_file(at.key("parameters"), "tool parameters", &tool.parameters);
        }
    }

    pub(super) fn model_reference(&mut self, at: TomlPath, model: &str) {
        if self.config.models.contains_key(model) || is_valid_shorthand(model) {
            return;
        }
        let hint = match model.split_once("::") {
            Some((prefix, _)) => format!(
                "`{prefix}::` is not a shorthand prefix (they are {})",
                ProviderType::SHORTHAND
                    .iter()
                    .map(|t| format!("`{t}::`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => {
                format!("define [models.{model}] or use a shorthand such as `openai::gpt-4o-mini`")
            }
        };
        self.error(at, format!("model `{model}` is not defined: {hint}"));
    }

    pub(super) fn chat_completion(&mut self, at: TomlPath, v: &ChatCompletionConfig) {
        self.model_reference(at.key("model"), &v.model);
        for (key, file) in [
            ("system_template", &v.system_template),
            ("user_template", &v.user_template),
            ("assistant_template", &v.assistant_template),
            ("system_instructions", &v.system_instructions),
        ] {
            if let Some(file) = file {
                self.file_exists(at.key(key), "template", file);
            }
        }
        for role in ["system", "user", "assistant"] {
            let Some(file) = v.input_wrappers.of(role) else {
                continue;
            };
            let wat = at.key("input_wrappers").key(role);
            self.file_exists(wat.clone(), "template", file);
            let template = v.templates.contains_key(role)
                || match role {
                    "system" => v.system_template.is_some(),
                    "user" => v.user_template.is_some(),
                    _ => v.assistant_template.is_some(),
                };
            if template {
                self.error(
                    wat,
                    format!("conflicts with the variant's `{role}` template: a role has one template; keep `templates.{role}.path`"),
                );
            }
        }
        for (name, entry) in &v.templates {
            let tat = at.key("templates").key(name);
            self.file_exists(tat.key("path"), "template", &entry.path);
            let legacy = match name.as_str() {
                "system" => v.system_template.is_some(),
                "user" => v.user_template.is_some(),
                "assistant" => v.assistant_template.is_some(),
                _ => false,
            };
            if legacy {
                self.error(
                    tat,
                    format!("the `{name}` template is set twice, as `templates.{name}.path` and as `{name}_template`; keep one (`templates.{name}.path` is TensorZero's current form)"),
                );
            }
        }
        self.seconds(
            at.key("retries").key("max_delay_s"),
            v.retries.max_delay_s,
            MAX_RETRY_DELAY_S,
        );
        if let Some(w) = v.weight {
            if !w.is_finite() || w < 0.0 {
                self.error(at.key("weight"), "must be a non-negative number");
            }
        }
        self.timeouts(at.clone(), &v.timeouts);
        self.extra_edits(at, &v.extra_body, &v.extra_headers);
    }

    pub(super) fn functions(&mut self) {
        for (name, function) in &self.config.functions {
            let at = TomlPath::keys(["functions", name.as_str()]);
            if name.starts_with(RESERVED_PREFIX) {
                self.error(
                    at.clone(),
                    format!("function name `{name}` uses the reserved prefix `{RESERVED_PREFIX}`"),
                );
            }
            for (key, file) in function.schema_files() {
                self.json_file(at.key(key), "schema", file);
            }
            for (schema_name, entry) in function.named_schemas() {
                let sat = at.key("schemas").key(schema_name);
                self.json_file(sat.key("path"), "schema", &entry.path);
                let legacy_key = format!("{schema_name}_schema");
                let legacy = ["system", "user", "assistant"].contains(&schema_name.as_str())
                    && function
                        .schema_files()
                        .iter()
                        .any(|(k, _)| *k == legacy_key);
                if legacy {
                    self.error(
                        sat,
                        format!("the `{schema_name}` schema is set twice, as `schemas.{schema_name}.path` and as `{schema_name}_schema`; keep one (`schemas.{schema_name}.path` is TensorZero's current form)"),
                    );
                }
            }
            let is_json = matches!(function, FunctionConfig::Json(_));
            let global_s = self.global_timeout() as f64 / 1000.0;
            if let FunctionConfig::Chat(chat) = function {
                let mut sent_names = BTreeMap::new();
                for tool in &chat.tools {
                    match self.config.tools.get(tool) {
                        None => self.error(
                            at.key("tools"),
                            format!("tool `{tool}` is not defined; add a [tools.{tool}] section"),
                        ),
                        Some(t) => {
                            let sent = t.name.clone().unwrap_or_else(|| tool.clone());
                            if let Some(other) = sent_names.insert(sent.clone(), tool) {
                                self.error(at.key("tools"), format!("tools `{other}` and `{tool}` are both sent to the model as `{sent}`"));
                            }
                        }
                    }
                }
                if let ToolChoiceConfig::Specific(t) = &chat.tool_choice {
                    if !chat.tools.contains(t) {
                        self.error(at.key("tool_choice"), format!("`specific = \"{t}\"` names a tool that is not in this function's `tools`"));
                    }
                }
            }
            let weighted: Vec<&str> = function
                .variants()
                .iter()
                .filter(|(_, v)| v.weight().is_some())
                .map(|(n, _)| n.as_str())
                .collect();
            if !weighted.is_empty() {
                self.warn(
                    Some(at.clone()),
                    format!(
                        "`weight` (on variants {}) is deprecated: TensorZero removes it in 2026.6; sample with `[functions.{name}.experimentation]` instead",
                        weighted.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            self.experimentation(&at, name, function);
            // Which ensemble's deprecated `timeout_s` each candidate receives.
            let mut timeout_s_owner: BTreeMap<&str, &str> = BTreeMap::new();
            for (vname, variant) in function.variants() {
                let vat = at.key("variants").key(vname);
                // A role's plain-text wrapper and its schema conflict, as in TensorZero: a
                // wrapper takes text, a schema makes the input arguments.
                let has_schema = |role: &str| {
                    function.named_schemas().contains_key(role)
                        || function
                            .schema_files()
                            .iter()
                            .any(|(k, _)| k.strip_suffix("_schema") == Some(role))
                };
                for (sub, cc) in variant.chat_completions() {
                    for role in ["system", "user", "assistant"] {
                        if cc.input_wrappers.of(role).is_some() && has_schema(role) {
                            let wat = match sub {
                                Some(sub) => vat.key(sub),
                                None => vat.clone(),
                            };
                            self.error(
                                wat.key("input_wrappers").key(role),
                                format!("conflicts with the function's `{role}` schema: a wrapper takes plain text; write `templates.{role}.path` to use the schema's arguments"),
                            );
                        }
                    }
                }
                match variant {
                    VariantConfig::ChatCompletion(v) => {
                        self.chat_completion(vat.clone(), v);
                    }
                    VariantConfig::ExperimentalChainOfThought(v) => {
                        if !is_json {
                            self.error(vat.clone(), "`experimental_chain_of_thought` variants are only for json functions");
                        }
                        self.warn(
                            Some(vat.key("type")),
                            "`experimental_chain_of_thought` is deprecated (TensorZero 2026.2); it still works",
                        );
                        self.chat_completion(vat, v);
                    }
                    VariantConfig::ExperimentalBestOfN(v) => {
                        if let Some(t) = v.timeout_s {
                            self.seconds(vat.key("timeout_s"), t, global_s);
                            self.deprecated_timeout_s(
                                &vat,
                                vname,
                                &v.candidates,
                                function,
                                &mut timeout_s_owner,
                            );
                        }
                        self.candidates(vat.clone(), &v.candidates, function);
                        self.chat_completion(vat.key("evaluator"), &v.evaluator);
                        self.timeouts(vat, &v.timeouts);
                    }
                    VariantConfig::ExperimentalMixtureOfN(v) => {
                        if let Some(t) = v.timeout_s {
                            self.seconds(vat.key("timeout_s"), t, global_s);
                            self.deprecated_timeout_s(
                                &vat,
                                vname,
                                &v.candidates,
                                function,
                                &mut timeout_s_owner,
                            );
                        }
                        self.candidates(vat.clone(), &v.candidates, function);
                        self.chat_completion(vat.key("fuser"), &v.fuser);
                        self.timeouts(vat, &v.timeouts);
                    }
                    VariantConfig::ExperimentalDynamicInContextLearning(v) => {
                        self.model_reference(vat.key("model"), &v.model);
                        let known = self
                            .config
                            .embedding_models
                            .contains_key(&v.embedding_model)
                            || ["openai::", "openrouter::"]
                                .iter()
                                .any(|p| v.embedding_model.starts_with(p));
                        if !known {
                            self.error(
                                vat.key("embedding_model"),
                                format!("embedding model `{}` is not defined; define [embedding_models.{}] or use `openai::<model>`", v.embedding_model, v.embedding_model),
                            );
                        }
                        if let Some(f) = &v.system_instructions {
                            self.file_exists(
                                vat.key("system_instructions"),
                                "system instructions",
                                f,
                            );
                        }
                        self.timeouts(vat.clone(), &v.timeouts);
                    }
                }
            }
        }
    }

    /// `timeout_s` on a best-of-n or mixture-of-n variant: deprecated; TensorZero copies it onto
    /// every candidate as its `non_streaming.total_ms` and `streaming.ttft_ms`, which fails when
    /// a candidate has timeouts of its own (or gets them from another ensemble).
    fn deprecated_timeout_s<'c>(
        &mut self,
        vat: &TomlPath,
        ensemble: &'c str,
        candidates: &'c [String],
        function: &FunctionConfig,
        owner: &mut BTreeMap<&'c str, &'c str>,
    ) {
        self.warn(
            Some(vat.key("timeout_s")),
            "is deprecated (TensorZero 2026.2): it is copied onto every candidate as `timeouts.non_streaming.total_ms` and `timeouts.streaming.ttft_ms`; set those on the candidates instead",
        );
        let mut seen = std::collections::BTreeSet::new();
        for candidate in candidates.iter().filter(|c| seen.insert(c.as_str())) {
            let own = function
                .variants()
                .get(candidate)
                .is_some_and(|v| *v.timeouts() != TimeoutsConfig::default());
            if own {
                self.error(
                    vat.key("timeout_s"),
                    format!("candidate `{candidate}` has `timeouts` of its own, so the deprecated `timeout_s` cannot be copied onto it; remove `timeout_s` and keep the candidate's timeouts"),
                );
            }
            if let Some(other) = owner.insert(candidate, ensemble) {
                self.error(
                    vat.key("timeout_s"),
                    format!("candidate `{candidate}` would get the deprecated `timeout_s` of both `{other}` and `{ensemble}`; set the candidate's `timeouts` instead"),
                );
            }
        }
    }

    pub(super) fn candidates(
        &mut self,
        at: TomlPath,
        candidates: &[String],
        function: &FunctionConfig,
    ) {
        if candidates.is_empty() {
            self.error(at.key("candidates"), "must name at least one variant");
        }
        for c in candidates {
            match function.variants().get(c) {
                None => self.error(
                    at.key("candidates"),
                    format!("candidate `{c}` is not a variant of this function"),
                ),
                Some(VariantConfig::ChatCompletion(_) | VariantConfig::ExperimentalChainOfThought(_)) => {}
                Some(other) => self.error(
                    at.key("candidates"),
                    format!(
                        "candidate `{c}` is an `{}` variant; candidates must be `chat_completion` or `experimental_chain_of_thought` variants",
                        other.type_name()
                    ),
                ),
            }
        }
    }
}
