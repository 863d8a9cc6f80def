"""protoc-gen-aisdk: turns the contracts under proto/ into subjects, typed
clients, handler bases, validators and the subject registry.

`generate` (codegen.plugin) is the plugin's pure core. Nothing is imported
here, so that a plugin run by an interpreter without protobuf reaches its
check and says what is missing (codegen.builtin.preflight)."""

__version__ = "1.0.0"
