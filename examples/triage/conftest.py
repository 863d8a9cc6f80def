# The platform's pytest plugin with the embedded PostgreSQL: a real
# nats-server with JetStream (`nats_server`, `bus`), `postgres_url`, and the
# helpers `expect_event` and `expect_dead_letter`.
pytest_plugins = ["aisdk.components.testing"]
