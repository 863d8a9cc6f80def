"""The LLM gateway: completions, streams and embeddings through litellm,
served on gateway.requests, gateway.stream and gateway.embeddings.

Nothing here imports litellm at module level: it takes seconds to import,
and `aisdk serve` of another component must not pay for it.
"""
