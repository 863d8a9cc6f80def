"""Support-ticket triage: a service of its own beside the platform's
components, on its own contracts (helpdesk.triage.v1). It classifies a
ticket with an MLOps model, retrieves knowledge-base passages with RAG and
drafts a reply through the gateway, using only generated clients."""
