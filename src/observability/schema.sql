-- switchyard's observability layout: the tables TensorZero 2026.4 keeps inferences, feedback and
-- datasets in (schema `tensorzero`), with the same names, columns, types and partitioning, so
-- that each can read what the other wrote. Written for switchyard from the published layout;
-- applied by `switchyard --run-postgres-migrations` only when TensorZero's own migrations have
-- not already created it, and recorded in `switchyard_migrations`.

CREATE SCHEMA IF NOT EXISTS tensorzero;

-- The millisecond timestamp a UUIDv7 carries: every partitioned row's `created_at`.
CREATE OR REPLACE FUNCTION tensorzero.uuid_v7_to_timestamp(id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT to_timestamp(
        ('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0
    )
$$;

-- Inference metadata (monthly partitions) and payloads (daily partitions), joined on
-- (id, created_at).
CREATE TABLE tensorzero.chat_inferences (
    id UUID NOT NULL,
    function_name TEXT NOT NULL,
    variant_name TEXT NOT NULL,
    episode_id UUID NOT NULL,
    processing_time_ms INTEGER,
    ttft_ms INTEGER,
    tags JSONB NOT NULL DEFAULT '{}',
    snapshot_hash BYTEA,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE tensorzero.chat_inferences_default PARTITION OF tensorzero.chat_inferences DEFAULT;
CREATE INDEX ON tensorzero.chat_inferences (function_name, variant_name, episode_id);
CREATE INDEX ON tensorzero.chat_inferences (episode_id);
CREATE INDEX ON tensorzero.chat_inferences (function_name, id);
CREATE INDEX ON tensorzero.chat_inferences USING GIN (tags);

CREATE TABLE tensorzero.chat_inference_data (
    id UUID NOT NULL,
    input JSONB NOT NULL,
    output JSONB NOT NULL,
    inference_params JSONB NOT NULL,
    extra_body JSONB NOT NULL DEFAULT '[]',
    dynamic_tools JSONB NOT NULL DEFAULT '[]',
    dynamic_provider_tools JSONB NOT NULL DEFAULT '[]',
    allowed_tools JSONB,
    tool_choice JSONB,
    parallel_tool_calls BOOLEAN,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE tensorzero.chat_inference_data_default PARTITION OF tensorzero.chat_inference_data DEFAULT;

CREATE TABLE tensorzero.json_inferences (
    id UUID NOT NULL,
    function_name TEXT NOT NULL,
    variant_name TEXT NOT NULL,
    episode_id UUID NOT NULL,
    processing_time_ms INTEGER,
    ttft_ms INTEGER,
    tags JSONB NOT NULL DEFAULT '{}',
    snapshot_hash BYTEA,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE tensorzero.json_inferences_default PARTITION OF tensorzero.json_inferences DEFAULT;
CREATE INDEX ON tensorzero.json_inferences (function_name, variant_name, episode_id);
CREATE INDEX ON tensorzero.json_inferences (episode_id);
CREATE INDEX ON tensorzero.json_inferences (function_name, id);
CREATE INDEX ON tensorzero.json_inferences USING GIN (tags);

CREATE TABLE tensorzero.json_inference_data (
    id UUID NOT NULL,
    input JSONB NOT NULL,
    output JSONB NOT NULL,
    output_schema JSONB NOT NULL,
    inference_params JSONB NOT NULL,
    extra_body JSONB NOT NULL DEFAULT '[]',
    auxiliary_content JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE tensorzero.json_inference_data_default PARTITION OF tensorzero.json_inference_data DEFAULT;

CREATE TABLE tensorzero.model_inferences (
    id UUID NOT NULL,
    inference_id UUID NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    provider_cache_read_input_tokens INTEGER,
    provider_cache_write_input_tokens INTEGER,
    response_time_ms INTEGER,
    model_name TEXT NOT NULL,
    model_provider_name TEXT NOT NULL,
    ttft_ms INTEGER,
    cached BOOLEAN NOT NULL DEFAULT false,
    finish_reason TEXT,
    snapshot_hash BYTEA,
    cost NUMERIC(18, 9),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE tensorzero.model_inferences_default PARTITION OF tensorzero.model_inferences DEFAULT;
CREATE INDEX ON tensorzero.model_inferences (inference_id, id);
CREATE INDEX ON tensorzero.model_inferences (model_name, model_provider_name, created_at);

CREATE TABLE tensorzero.model_inference_data (
    id UUID NOT NULL,
    raw_request TEXT NOT NULL,
    raw_response TEXT NOT NULL,
    system TEXT,
    input_messages JSONB NOT NULL,
    output JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE tensorzero.model_inference_data_default PARTITION OF tensorzero.model_inference_data DEFAULT;

-- Feedback (not partitioned; `created_at` is the insert time).
CREATE TABLE tensorzero.boolean_metric_feedback (
    id UUID PRIMARY KEY,
    target_id UUID NOT NULL,
    metric_name TEXT NOT NULL,
    value BOOLEAN NOT NULL,
    tags JSONB NOT NULL DEFAULT '{}',
    snapshot_hash BYTEA,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX ON tensorzero.boolean_metric_feedback (metric_name, target_id);
CREATE INDEX ON tensorzero.boolean_metric_feedback (target_id);
CREATE INDEX ON tensorzero.boolean_metric_feedback (created_at);
CREATE INDEX ON tensorzero.boolean_metric_feedback USING GIN (tags);
CREATE INDEX ON tensorzero.boolean_metric_feedback (target_id, metric_name, created_at DESC);

CREATE TABLE tensorzero.float_metric_feedback (
    id UUID PRIMARY KEY,
    target_id UUID NOT NULL,
    metric_name TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    tags JSONB NOT NULL DEFAULT '{}',
    snapshot_hash BYTEA,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX ON tensorzero.float_metric_feedback (metric_name, target_id);
CREATE INDEX ON tensorzero.float_metric_feedback (target_id);
CREATE INDEX ON tensorzero.float_metric_feedback (created_at);
CREATE INDEX ON tensorzero.float_metric_feedback USING GIN (tags);
CREATE INDEX ON tensorzero.float_metric_feedback (target_id, metric_name, created_at DESC);

CREATE TABLE tensorzero.comment_feedback (
    id UUID PRIMARY KEY,
    target_id UUID NOT NULL,
    target_type TEXT NOT NULL CHECK (target_type IN ('inference', 'episode')),
    value TEXT NOT NULL,
    tags JSONB NOT NULL DEFAULT '{}',
    snapshot_hash BYTEA,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX ON tensorzero.comment_feedback (target_id);
CREATE INDEX ON tensorzero.comment_feedback (created_at);
CREATE INDEX ON tensorzero.comment_feedback USING GIN (tags);

CREATE TABLE tensorzero.demonstration_feedback (
    id UUID PRIMARY KEY,
    inference_id UUID NOT NULL,
    value JSONB NOT NULL,
    tags JSONB NOT NULL DEFAULT '{}',
    snapshot_hash BYTEA,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX ON tensorzero.demonstration_feedback (inference_id);
CREATE INDEX ON tensorzero.demonstration_feedback (created_at);
CREATE INDEX ON tensorzero.demonstration_feedback USING GIN (tags);

CREATE TABLE tensorzero.inference_evaluation_human_feedback (
    feedback_id UUID PRIMARY KEY,
    metric_name TEXT NOT NULL,
    datapoint_id UUID NOT NULL,
    output TEXT NOT NULL,
    value TEXT NOT NULL,
    evaluator_inference_id UUID,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Datasets: datapoints (a dataset exists while it has live datapoints).
CREATE TABLE tensorzero.chat_datapoints (
    id UUID PRIMARY KEY,
    dataset_name TEXT NOT NULL,
    function_name TEXT NOT NULL,
    episode_id UUID,
    input JSONB NOT NULL,
    output JSONB,
    dynamic_tools JSONB NOT NULL DEFAULT '[]',
    dynamic_provider_tools JSONB NOT NULL DEFAULT '[]',
    allowed_tools JSONB,
    tool_choice JSONB,
    parallel_tool_calls BOOLEAN,
    tags JSONB NOT NULL DEFAULT '{}',
    is_custom BOOLEAN NOT NULL DEFAULT false,
    source_inference_id UUID,
    name TEXT,
    snapshot_hash BYTEA,
    staled_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX ON tensorzero.chat_datapoints (dataset_name, function_name, id);
CREATE INDEX ON tensorzero.chat_datapoints (dataset_name) WHERE staled_at IS NULL;
CREATE INDEX ON tensorzero.chat_datapoints (updated_at DESC, id DESC);
CREATE INDEX ON tensorzero.chat_datapoints USING GIN (tags);

CREATE TABLE tensorzero.json_datapoints (
    id UUID PRIMARY KEY,
    dataset_name TEXT NOT NULL,
    function_name TEXT NOT NULL,
    episode_id UUID,
    input JSONB NOT NULL,
    output JSONB,
    output_schema JSONB NOT NULL,
    tags JSONB NOT NULL DEFAULT '{}',
    is_custom BOOLEAN NOT NULL DEFAULT false,
    source_inference_id UUID,
    name TEXT,
    snapshot_hash BYTEA,
    staled_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX ON tensorzero.json_datapoints (dataset_name, function_name, id);
CREATE INDEX ON tensorzero.json_datapoints (dataset_name) WHERE staled_at IS NULL;
CREATE INDEX ON tensorzero.json_datapoints (updated_at DESC, id DESC);
CREATE INDEX ON tensorzero.json_datapoints USING GIN (tags);

-- Configuration history, the deployment's id, and retention.
CREATE TABLE IF NOT EXISTS tensorzero.config_snapshots (
    hash BYTEA PRIMARY KEY,
    config TEXT NOT NULL,
    extra_templates JSONB NOT NULL DEFAULT '{}',
    tensorzero_version TEXT NOT NULL,
    tags JSONB DEFAULT '{}',
    created_at TIMESTAMPTZ DEFAULT NOW(),
    last_used TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS tensorzero.deployment_id (
    deployment_id TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    dummy BIGINT DEFAULT 0 UNIQUE
);

CREATE TABLE IF NOT EXISTS tensorzero.retention_config (
    key TEXT PRIMARY KEY,
    value TEXT,
    updated_at TIMESTAMPTZ DEFAULT NOW()
);

-- The sticky variant of an episode under adaptive experimentation (first writer wins).
CREATE TABLE IF NOT EXISTS variant_by_episode (
    function_name TEXT NOT NULL,
    episode_id UUID NOT NULL,
    variant_name TEXT NOT NULL,
    PRIMARY KEY (function_name, episode_id)
);
