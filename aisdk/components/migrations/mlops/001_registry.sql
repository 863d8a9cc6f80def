-- The model registry: one row per model name and tenant, counting its
-- versions, so that concurrent trainers of one model number them in turn.
CREATE TABLE mlops_models (
    tenant_id  text        NOT NULL,
    model_id   text        NOT NULL,
    versions   integer     NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, model_id)
);

-- Every trained version with its metrics and its artifact (a pickle written
-- by this service only; artifact_sha256 is checked before it is loaded).
CREATE TABLE mlops_model_versions (
    tenant_id       text        NOT NULL,
    model_id        text        NOT NULL,
    version         integer     NOT NULL,
    job_id          text        NOT NULL,
    model_type      text        NOT NULL,
    training_data   text        NOT NULL,
    parameters      jsonb       NOT NULL,
    metrics         jsonb       NOT NULL,
    feature_names   text[]      NOT NULL,
    classes         text[]      NOT NULL,
    artifact        bytea       NOT NULL,
    artifact_sha256 text        NOT NULL,
    sklearn_version text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, model_id, version),
    FOREIGN KEY (tenant_id, model_id) REFERENCES mlops_models
);

-- Training jobs by the producer's job id: a redelivered job runs once it has
-- an outcome, and a failed one keeps the reason for mlops.jobs.
CREATE TABLE mlops_jobs (
    tenant_id   text        NOT NULL,
    job_id      text        NOT NULL,
    model_id    text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    version     integer,
    error       text        NOT NULL DEFAULT '',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (tenant_id, job_id)
);

-- The version each environment serves; predictors read it on every request,
-- so a deployment is served by every predictor once it is stored here.
CREATE TABLE mlops_deployments (
    tenant_id     text        NOT NULL,
    model_id      text        NOT NULL,
    environment   text        NOT NULL,
    version       integer     NOT NULL,
    deployment_id text        NOT NULL,
    deployed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, model_id, environment),
    FOREIGN KEY (tenant_id, model_id, version) REFERENCES mlops_model_versions
);

-- Deployment events applied, by deployment id: a redelivered event is applied once.
CREATE TABLE mlops_deployment_events (
    tenant_id     text        NOT NULL,
    deployment_id text        NOT NULL,
    model_id      text        NOT NULL,
    version       text        NOT NULL,
    environment   text        NOT NULL,
    state         smallint    NOT NULL,
    promoted      boolean     NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, deployment_id)
);
