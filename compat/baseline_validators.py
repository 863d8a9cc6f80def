"""The validators a released version ran, rebuilt from its baseline.

A baseline holds descriptors, not code, but the generator is deterministic:
rendering the baseline's `_bus` modules gives the validators that
version's producers and consumers run. They are loaded as modules of their
own, never registered in sys.modules, so today's generated code is
untouched; a validator of another file that a nested message calls is
pointed at the baseline's module too.
"""

from __future__ import annotations

from types import ModuleType

from codegen.render import render_bus
from compat.images import Image
from runtime.contract import Validator


def load(image: Image) -> dict[str, Validator]:
    """Validator by message full name, for every message of the image that
    has rules (directly or in a nested message)."""
    model = image.model
    modules: dict[str, ModuleType] = {}
    for fm in model.files:
        name = f"{fm.py_package}.{fm.bus}"
        module = ModuleType(name, f"{fm.name} as released in {image.label}")
        code = compile(render_bus(model, fm), f"<{image.label}: {fm.name}>", "exec")
        exec(code, vars(module))  # noqa: S102 - our generator's output for a released contract
        modules[name] = module
    for module in modules.values():
        for attr, value in list(vars(module).items()):
            if isinstance(value, ModuleType) and value.__name__ in modules:
                setattr(module, attr, modules[value.__name__])
    found: dict[str, Validator] = {}
    for fm in model.files:
        module = modules[f"{fm.py_package}.{fm.bus}"]
        for msg in fm.messages:
            if msg.has_rules:
                found[msg.full_name] = getattr(module, msg.validator_name)
    return found
