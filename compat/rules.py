"""The rules check: validation rules are part of the contract.

A consumer validates what it receives, so a rule tightened between two
versions (a shorter `max_len`, a new `required`, a narrower range) makes new
consumers reject what old producers still send, and a rule loosened makes
old consumers reject what new producers send. buf compares types, not our
`(ai.options.v1.rules)`; this compares them per field, in the compatibility
mode of the field's package (`(ai.options.v1.contract).compatibility`):

- BACKWARD (the default): new consumers accept what old producers send, so
  tightening breaks and loosening is fine;
- FORWARD: old consumers accept what new producers send, so loosening breaks;
- FULL: both, so no rule may change in a way that narrows either side.

A field present on one side only travels with its default value (an empty
string or list, zero, no message) from the side that lacks it, so only its
rules that refuse the default count: a new `required` field tightens, a
new `max_len` does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from codegen.model import ContractError, FieldModel, Rules
from compat.images import PROTO_DIR, Image
from compat.report import Finding

MODES = ("BACKWARD", "FORWARD", "FULL")
_BREAKS = {"BACKWARD": {"tightened"}, "FORWARD": {"loosened"}, "FULL": {"tightened", "loosened"}}
_WHO = {
    "tightened": "consumers with the new rules reject what producers with the old rules send",
    "loosened": "consumers with the old rules reject what producers with the new rules send",
}
_NONE = Rules()
# A minimum length or item count of 0 is no bound at all.
_ZERO_IS_NONE = ("min_len", "min_items")


@dataclass(frozen=True)
class Change:
    field: str  # "ai.agent.v1.AgentMessage field \"content\""
    rule: str  # "max_len"
    old: str
    new: str
    ways: frozenset[str]  # "tightened", "loosened" or both (a changed pattern)

    def text(self, way: str, mode: str) -> str:
        verb = "changed" if len(self.ways) > 1 else way
        why = _WHO[way]
        if len(self.ways) > 1:
            why = f"a different pattern may refuse what the old one accepted, so {why}"
        return f"{self.field}: {self.rule} {verb} from {self.old} to {self.new}: {why} ({mode} package)"


def _show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return f'"{value}"' if value else '""'
    return str(value)


def _bound(old: float | None, new: float | None, lower: bool) -> str | None:
    """How a bound moved; None (no bound) is the widest."""
    if old == new:
        return None
    if old is None:
        return "tightened"
    if new is None:
        return "loosened"
    return "tightened" if (new > old) == lower else "loosened"


def compare_rules(where: str, old: Rules, new: Rules) -> Iterator[Change]:
    """Every rule that differs, with the way it moved. generated_id is not a
    check, so it never counts."""
    if old.required != new.required:
        yield Change(where, "required", _show(old.required), _show(new.required),
                     frozenset({"tightened" if new.required else "loosened"}))
    if old.defined_only != new.defined_only:
        yield Change(where, "defined_only", _show(old.defined_only), _show(new.defined_only),
                     frozenset({"tightened" if new.defined_only else "loosened"}))
    for name, lower in (("min_len", True), ("max_len", False), ("gte", True), ("lte", False),
                        ("min_items", True), ("max_items", False)):
        a, b = getattr(old, name), getattr(new, name)
        if name in _ZERO_IS_NONE:
            a, b = a or None, b or None
        way = _bound(a, b, lower)
        if way is not None:
            yield Change(where, name, _show(a), _show(b), frozenset({way}))
    if old.pattern != new.pattern:
        # Whether one regular expression accepts a superset of another is not
        # decidable here; only adding or removing one has a known direction.
        if not old.pattern:
            ways = frozenset({"tightened"})
        elif not new.pattern:
            ways = frozenset({"loosened"})
        else:
            ways = frozenset({"tightened", "loosened"})
        yield Change(where, "pattern", _show(old.pattern), _show(new.pattern), ways)


def modes(image: Image) -> dict[str, str]:
    """The compatibility mode of each package."""
    return {fm.package: fm.compatibility for fm in image.model.files}


def changes(old: Image, new: Image) -> Iterator[tuple[str, Change]]:
    """(file, change) for every rule that differs on a field of a message
    both versions declare."""
    for name, now in sorted(new.model.messages.items()):
        before = old.model.messages.get(name)
        if before is None:
            continue
        old_fields = {f.name: f for f in before.fields}
        new_fields = {f.name: f for f in now.fields}
        for field in sorted(old_fields.keys() | new_fields.keys()):
            a, b = old_fields.get(field), new_fields.get(field)
            if a is not None and b is not None:
                where = f'{name} field "{field}"'
                yield from ((now.file, c) for c in compare_rules(where, a.rules, b.rules))
                yield from ((now.file, c) for c in _enum_values(where, a, b))
                continue
            one = a or b
            assert one is not None
            where = f'{name} field "{field}" ({"new" if a is None else "deleted"} field)'
            found = compare_rules(where, _NONE if a is None else one.rules, _NONE if b is None else one.rules)
            yield from ((now.file, c) for c in found if _refuses_default(one, c.rule))


def _refuses_default(f: FieldModel, rule: str) -> bool:
    """Whether `rule` of f judges the default value the other side sends."""
    if rule == "required":
        return True
    if rule == "min_items":
        return True  # a bound of 0 was never reported
    numeric = f.kind == "number" and not f.repeated and not f.presence
    if rule == "gte":
        return numeric and (f.rules.gte or 0) > 0
    if rule == "lte":
        return numeric and (f.rules.lte or 0) < 0
    return False


def _enum_values(where: str, old: FieldModel, new: FieldModel) -> Iterator[Change]:
    """With defined_only on both sides, the set of values is a rule too: a
    value added is one the old consumers refuse."""
    if not (old.rules.defined_only and new.rules.defined_only) or old.enum_values == new.enum_values:
        return
    added = sorted(set(new.enum_values) - set(old.enum_values))
    removed = sorted(set(old.enum_values) - set(new.enum_values))
    ways = frozenset({"loosened"} if added else set()) | frozenset({"tightened"} if removed else set())
    yield Change(where, "defined_only values", _values(old.enum_values), _values(new.enum_values), ways)


def _values(numbers: tuple[int, ...]) -> str:
    return "{" + ", ".join(map(str, sorted(numbers))) + "}"


def check(old: Image, new: Image) -> list[Finding]:
    """A finding per rule change that breaks its package's mode."""
    try:
        old.model, new.model
    except ContractError:
        return []  # the registry check reports contracts the generator refuses
    package_modes = modes(new)
    package_of = {fm.name: fm.package for fm in new.model.files}
    found = _disagreeing_files(new)
    for file, change in changes(old, new):
        mode = package_modes.get(package_of.get(file, ""), "BACKWARD")
        broken = change.ways & _BREAKS[mode]
        if broken:
            way = "tightened" if "tightened" in broken else "loosened"
            rule = "RULE_BACKWARD_COMPATIBLE" if way == "tightened" else "RULE_FORWARD_COMPATIBLE"
            found.append(Finding("rules", f"{PROTO_DIR}/{file}", change.text(way, mode), rule))
    return found


def _disagreeing_files(image: Image) -> list[Finding]:
    """The mode is the package's: files of one package must not differ."""
    seen: dict[str, tuple[str, str]] = {}
    found = []
    for fm in image.model.files:
        first = seen.setdefault(fm.package, (fm.name, fm.compatibility))
        if first[1] != fm.compatibility:
            text = (f"{fm.package}: compatibility {fm.compatibility} here, {first[1]} in "
                    f"{PROTO_DIR}/{first[0]}: every file of a package declares the same mode")
            found.append(Finding("rules", f"{PROTO_DIR}/{fm.name}", text, "RULE_MODE_PER_PACKAGE"))
    return found
