"""protoc-gen-aisdk: turns the contracts under proto/ into subjects, typed
clients, handler bases, validators and the subject registry."""

from codegen.plugin import generate

__all__ = ["generate"]
__version__ = "1.0.0"
