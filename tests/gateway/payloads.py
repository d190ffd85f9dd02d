"""Payloads for the gateway tests: the decision fixtures, varied so every run has its own business keys.

``decisions(tag, n, persons)`` returns ``n`` canonical decision documents (bytes) made from the
fixtures in turn, with decision ids, personnummer, HSA-ids and staff ids unique to ``tag``, so
the resources a run creates on a shared server are exactly the run's distinct conditional keys.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from adapter.standin import REPO_ROOT, count
from mappings.identifiers import luhn_ok, with_check_digit

FIXTURES = sorted((REPO_ROOT / "fixtures" / "decision").glob("*.json"))


def personnummer(rng: random.Random) -> str:
    """A valid personnummer (real date, Luhn digit)."""
    year, month, day = rng.randint(1925, 1999), rng.randint(1, 12), rng.randint(1, 28)
    return with_check_digit(f"{year}{month:02d}{day:02d}{rng.randint(0, 999):03d}")


#: Fields holding business identifiers that are free text (they get the tag appended).
TAGGED_FIELDS = ("hsa_id", "local_id", "consent_id", "case_number")


def organisationsnummer_for(original: str, tag: str) -> str:
    """A valid organisationsnummer (third digit at least 2, Luhn digit) standing in for ``original`` in this run,
    so no generated Organization shares an identifier with the fixtures' or another run's."""
    import hashlib

    digits = str(int(hashlib.sha256(f"{tag}|{original}".encode()).hexdigest(), 16))[:8]
    body = f"{digits[0]}{digits[1]}{2 + int(digits[2]) % 8}{digits[3:8]}0"[:9]
    return next(body + c for c in "0123456789" if luhn_ok(body + c))


def _tag_ids(value: Any, tag: str) -> Any:
    """Every business identifier in a canonical document made unique to ``tag`` (organisations without an
    HSA-id get one, so their conditional key is not the shared organisationsnummer)."""
    if isinstance(value, list):
        return [_tag_ids(v, tag) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _tag_ids(v, tag) for k, v in value.items()}
    if isinstance(out.get("organisationsnummer"), str) and "name" in out:
        original = out["organisationsnummer"]
        out["organisationsnummer"] = organisationsnummer_for(original, tag)
        if not out.get("hsa_id"):
            out["hsa_id"] = f"SE{original}-X"
    for key in TAGGED_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = f"{out[key]}{'-' if key == 'local_id' else ''}{tag}"
    return out


def decision(template: dict[str, Any], tag: str, index: int, pnr: str) -> dict[str, Any]:
    """One fixture made unique: decision id, person and every other business identifier carry the tag."""
    doc = _tag_ids(copy.deepcopy(template), tag)
    doc["decision_id"] = f"{tag}-{index:05d}"
    if doc.get("replaces"):
        doc["replaces"] = f"{tag}-{index - 1:05d}" if index else f"{tag}-ORIGINAL"
    doc["person"]["personnummer"] = pnr
    return doc


def decisions(tag: str, n: int, persons: int, *, seed: int = 0) -> list[bytes]:
    """``n`` decision documents for ``persons`` persons (round robin), each as canonical JSON bytes."""
    rng = random.Random(f"{tag}|{seed}")
    pnrs = [personnummer(rng) for _ in range(persons)]
    templates = [json.loads(p.read_text()) for p in FIXTURES]
    return [json.dumps(decision(templates[i % len(templates)], tag, i, pnrs[i % persons]), ensure_ascii=False).encode()
            for i in range(n)]


def write(docs: list[bytes], folder: Path) -> list[Path]:
    """Write documents as files (for the CLI); returns their paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, data in enumerate(docs):
        path = folder / f"decision-{n:05d}.json"
        path.write_bytes(data)
        paths.append(path)
    return paths


def bundles(docs: list[bytes]) -> list[dict[str, Any]]:
    """The FHIR transaction Bundles the documents convert to."""
    from adapter import conversion

    return [conversion.bundle_of(conversion.read(d)) for d in docs]


def conditional_keys(bundles_: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Every distinct (resource type, ifNoneExist) the Bundles create conditionally."""
    return {(e["request"]["url"], e["request"]["ifNoneExist"]) for b in bundles_ for e in b["entry"]
            if e["request"].get("ifNoneExist")}


def expected_by_type(keys: set[tuple[str, str]]) -> Counter[str]:
    """How many resources of each type a fault-free run creates on an empty server (each key once)."""
    return Counter(t for t, _ in keys)


def expected_new(base_url: str, keys: set[tuple[str, str]], tag: str) -> Counter[str]:
    """How many resources of each type a fault-free run creates on this server now: each key once,
    except keys without the tag (shared with other tests) that the server already holds."""
    return Counter(t for t, q in keys if tag in q or count(base_url, t, dict(parse_qsl(q))) == 0)


#: Types a decision always writes; ``types_of`` adds whatever else the Bundles hold.
TYPES = ("Patient", "Organization", "Practitioner", "ServiceRequest", "Goal", "CarePlan", "Task", "Provenance")


def types_of(keys: set[tuple[str, str]]) -> tuple[str, ...]:
    """Every resource type the conditional keys create, plus the usual ones."""
    return tuple(sorted(set(TYPES) | {t for t, _ in keys}))


def snapshot(base_url: str, types: tuple[str, ...] = TYPES) -> Counter[str]:
    """Resources per type on a server now."""
    return Counter({t: count(base_url, t) for t in types})


def per_key_counts(base_url: str, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """How many resources on the server match each conditional key (1 = neither lost nor duplicated)."""
    return {(t, q): count(base_url, t, dict(parse_qsl(q))) for t, q in sorted(keys)}


def person_of(bundle: dict[str, Any]) -> str:
    """The personnummer of a decision Bundle."""
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    return patient["identifier"][0]["value"]


def order_by_person(bundles_: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per person, the Bundle ids in the order they were sent."""
    out: dict[str, list[str]] = defaultdict(list)
    for b in bundles_:
        out[person_of(b)].append(b["id"])
    return out
