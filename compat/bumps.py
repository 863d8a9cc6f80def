"""The contract minor follows the contract: a file that changed since the
latest release should carry a higher `(ai.options.v1.contract).minor`, so
the envelope's schema_version tells a reader which fields to expect.

Missing bumps are warnings, not failures: several PRs land between two
releases and only the first needs to bump. A minor lower than the released
one is an error: readers would take newer payloads for older ones.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.protobuf.message_factory import GetMessageClass

from codegen.model import OPTIONS_PACKAGE, ContractError
from compat.images import PROTO_DIR, Image
from compat.report import Finding


def check(released: Image, current: Image) -> list[Finding]:
    try:
        old = {f.name: f.minor for f in released.model.files}
        new = {f.name: (f.major, f.minor) for f in current.model.files}
    except ContractError:
        return []  # the registry check reports why
    found = []
    for name, (major, minor) in sorted(new.items()):
        if name not in old:
            continue
        where = f"{PROTO_DIR}/{name}"
        was = old[name]
        if minor < was:
            found.append(
                Finding(
                    "versions", where, f"contract minor went back from {was} to {minor} (released in {released.label})",
                    "CONTRACT_MINOR_NO_DECREASE",
                )
            )
        elif minor == was and _body(released, name) != _body(current, name):
            found.append(
                Finding(
                    "versions",
                    where,
                    f"changed since {released.label} but (ai.options.v1.contract).minor is still {minor}: "
                    f"bump it to {minor + 1} so envelopes say {major}.{minor + 1}",
                    "CONTRACT_MINOR_BUMPED",
                    "warning",
                )
            )
    return found


def _body(image: Image, name: str) -> bytes:
    """The file as the wire and the generator see it: no comments or line
    numbers, and without the minor itself."""
    fdp = image.file(name)
    assert fdp is not None
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(fdp)
    copy.ClearField("source_code_info")
    options_cls = GetMessageClass(image.pool.FindMessageTypeByName("google.protobuf.FileOptions"))
    options = options_cls.FromString(copy.options.SerializeToString())
    options.ClearExtension(image.pool.FindExtensionByName(f"{OPTIONS_PACKAGE}.contract"))  # type: ignore[arg-type]
    copy.ClearField("options")
    if options.ListFields():
        copy.options.MergeFromString(options.SerializeToString(deterministic=True))
    return copy.SerializeToString(deterministic=True)
