-- Every published version of every template, per tenant. `publication`
-- orders publications: the latest version is the one published last, so a
-- re-published version becomes the latest again (never a sort of the names).
CREATE SEQUENCE prompt_publication_seq;

CREATE TABLE prompt_templates (
    tenant_id    text        NOT NULL,
    template_id  text        NOT NULL,
    version      text        NOT NULL,
    template     text        NOT NULL,
    variables    jsonb       NOT NULL DEFAULT '{}',
    publication  bigint      NOT NULL DEFAULT nextval('prompt_publication_seq'),
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, template_id, version)
);

CREATE INDEX prompt_templates_latest ON prompt_templates (tenant_id, template_id, publication DESC);

-- The template events already stored, by message id. Every worker receives
-- each event (it has no queue group); the first to store it makes the others
-- skip it, so one publication moves the latest version once. Rows older than
-- any redelivery are pruned as new ones arrive.
CREATE TABLE prompt_publications (
    tenant_id  text        NOT NULL,
    message_id text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id)
);

CREATE INDEX prompt_publications_by_age ON prompt_publications (applied_at);
