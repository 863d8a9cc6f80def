"""The public API of the runtime is one facade: `from runtime import ...`."""

from __future__ import annotations

import subprocess
import sys

import runtime


def test_all_lists_exactly_the_exports_in_order() -> None:
    assert runtime.__all__ == sorted(runtime._EXPORTS)


def test_every_exported_name_resolves_to_its_module() -> None:
    for name, module in runtime._EXPORTS.items():
        value = getattr(runtime, name)
        assert getattr(sys.modules[module], name) is value


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        getattr(runtime, "NoSuchThing")
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("runtime.NoSuchThing resolved")


def test_generated_code_does_not_load_the_nats_client() -> None:
    # Generated modules import runtime.contract; the facade must not drag the
    # NATS client (or the OTel SDK) in with it.
    code = "import sys, ai.agent.v1.agent_bus; print('nats' in sys.modules, 'opentelemetry.sdk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
