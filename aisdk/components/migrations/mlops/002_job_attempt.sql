-- The delivery that owns a running job: a redelivery while the first is
-- still alive (its heartbeat lost, say) takes the job over with its higher
-- attempt, and only the owner may finish it, so one job makes one version.
ALTER TABLE mlops_jobs ADD COLUMN attempt integer NOT NULL DEFAULT 0;
