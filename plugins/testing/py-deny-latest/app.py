"""deny-latest's image policy in Python: refuse images that are not pinned. A test component, for
the benchmark that compares languages in each slot; never deploy it.

It answers as the Rust example does (../../examples/deny-latest/src/lib.rs), to the character:
tests/api/languages.rs holds it to that. Where Python and Rust differ (trimming, case folding),
the code below follows Rust.
"""

import wit_world
from wit_world.imports import types
from wit_world.imports.host import Level, log

# Rust's `str::trim` strips Unicode White_Space; Python's `str.strip()` also strips U+001C-U+001F.
WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

# Only A-Z, as Rust's `eq_ignore_ascii_case`: `str.lower()` would also fold non-ASCII letters.
ASCII_LOWERCASE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class WitWorld(wit_world.WitWorld):
    def check_image(self, request: types.ImageRequest) -> types.Decision:
        decision = decide(request)
        if isinstance(decision, types.Decision_Deny):
            log(Level.INFO, f"denied {request.image}: {decision.value}")
        return decision


def decide(request: types.ImageRequest) -> types.Decision:
    image = request.image
    reference = request.reference
    allowlist = request.policy.image_allowlist

    # 1. The platform allowlist: empty means every registry is allowed.
    if allowlist and not any(same_registry(reference.registry, entry) for entry in allowlist):
        return types.Decision_Deny(
            f"registry {reference.registry} is not in the image allowlist ({', '.join(allowlist)})"
        )

    # 2. The image must be pinned. Tags are case-sensitive; an empty tag is still a tag.
    if reference.tag == "latest":
        return types.Decision_Deny(
            f"image {image} uses the tag latest, which changes under you: pin a version tag or a digest"
        )
    if reference.tag is None and reference.digest is None:
        return types.Decision_Deny(
            f"image {image} has neither a tag nor a digest, so it pulls latest: pin a version tag or a digest"
        )
    return types.Decision_Allow()


def same_registry(registry: str, entry: str) -> bool:
    """The host without regard to ASCII case, the port exactly (`localhost:5000` is not
    `localhost`)."""
    host, port = split_port(registry)
    entry_host, entry_port = split_port(entry.strip(WHITE_SPACE))
    return host.translate(ASCII_LOWERCASE) == entry_host.translate(ASCII_LOWERCASE) and port == entry_port


def split_port(registry: str) -> tuple[str, str | None]:
    """`host:port` split in two; an IPv6 literal keeps its brackets (`[::1]:5000`)."""
    if registry.startswith("["):
        close = registry.find("]")
        host_end = len(registry) if close == -1 else close + 1
    else:
        colon = registry.find(":")
        host_end = len(registry) if colon == -1 else colon
    host, rest = registry[:host_end], registry[host_end:]
    return host, rest[1:] if rest.startswith(":") else None
