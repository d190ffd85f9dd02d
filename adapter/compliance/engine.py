"""Runs the three layers over one payload and assembles the OperationOutcome."""

from __future__ import annotations

from functools import cache
from typing import Any

from adapter.compliance.base import ReferenceWalker, Walker
from adapter.compliance.context import DEFAULT, ValidationContext
from adapter.compliance.outcome import MALFORMED, issue, outcome, unchecked
from adapter.compliance.profile_check import ProfileChecker
from adapter.compliance.registry import registry
from adapter.compliance.swedish import check_swedish, config as swedish_config

#: Core profiles of R4 (vital signs etc.) are not checked: say so at information level only.
_CORE_PROFILE = "http://hl7.org/fhir/StructureDefinition/"


def validate(resource: Any, profile: str | None = None, *, context: ValidationContext | None = None,
             reference: bool = False) -> dict[str, Any]:
    """Validate a payload against base R4, carebridge profiles and Swedish rules.

    `reference=True` runs the interpreters only (no generated walkers, no acceptors, no compiled
    profile tests): slower, with the same outcome; `selfcheck.py` compares the two."""
    ctx = context or DEFAULT
    if not isinstance(resource, dict):
        return outcome([issue("fatal", "structure", "", "the payload is not a JSON object", "json-shape")])
    reg = registry()
    root = resource.get("resourceType") if isinstance(resource.get("resourceType"), str) else "Resource"
    watched = _watched_systems() if "swedish" in ctx.layers else frozenset()
    walker = (ReferenceWalker if reference else Walker)(ctx, reg.codesystem, reg.extension, watched)
    try:
        walker.resource(resource, root)
    except MALFORMED as exc:
        walker.issues.append(unchecked(root, "base R4", exc))
    issues = walker.issues if "base" in ctx.layers else []
    if "profiles" in ctx.layers:
        try:
            _profiles(resource, profile, walker, reg, issues, fast=not reference)
        except MALFORMED as exc:
            issues.append(unchecked(root, "profiles", exc))
    if "swedish" in ctx.layers:
        check_swedish(resource, walker, reg, ctx, issues)
    return outcome(issues)


@cache
def _watched_systems() -> frozenset[str]:
    return frozenset(swedish_config()["person_identifier_systems"])


def _profiles(resource: dict, profile: str | None, walker: Walker, reg: Any, issues: list[dict], fast: bool = True) -> None:
    """Layer 2: every resource claiming a carebridge profile, plus the one asked for."""
    if profile is None and not _claims_profiles(walker.resources):
        return
    checker = ProfileChecker(reg, walker.resolve, issues)
    checked: set[tuple[int, str]] = set()
    for res, path in walker.resources:
        meta = res.get("meta")
        claims = meta.get("profile") if isinstance(meta, dict) else None
        for url in claims if isinstance(claims, list) else ():
            if not isinstance(url, str):
                continue
            p = reg.profiles.get(url.split("|")[0])
            if p is not None:
                _check(checker, res, p, path, reg, walker.resolve, fast)
                checked.add((id(res), p.url))
            else:
                severity = "information" if url.startswith(_CORE_PROFILE) else "warning"
                issues.append(issue(severity, "not-found", f"{path}.meta.profile", f"Profile reference '{url}' has not been checked because it is not known here", "profile-unknown"))
    if profile is None:
        return
    p = reg.profiles.get(profile.split("|")[0])
    if p is None:
        issues.append(issue("error", "not-found", resource.get("resourceType", ""), f"The profile '{profile}' is not known (see adapter/compliance/profiles/)", "profile-unknown"))
        return
    if resource.get("resourceType") == "Bundle" and p.type != "Bundle":
        targets = [(r, path) for r, path in walker.resources if r.get("resourceType") == p.type]
    else:  # the payload itself (a mismatch of types is reported by the checker)
        targets = [(resource, walker.resources[0][1] if walker.resources else resource.get("resourceType", ""))]
    if not targets:
        issues.append(issue("error", "not-found", resource.get("resourceType", ""), f"The payload holds no {p.type} to check against {p.url}", "profile-unknown"))
    for r, path in targets:
        if (id(r), p.url) not in checked:
            _check(checker, r, p, path, reg, walker.resolve, fast)


def _claims_profiles(resources: list[tuple[dict, str]]) -> bool:
    """Does any of the resources claim a profile (a non-empty meta.profile)?"""
    for r, _ in resources:
        meta = r.get("meta")
        if isinstance(meta, dict) and meta.get("profile"):
            return True
    return False


def _check(checker: ProfileChecker, res: dict, p: Any, path: str, reg: Any, resolver: Any, fast: bool) -> None:
    """Check one resource against one profile: the compiled yes/no test first (profile_fast.py);
    the explaining checker only when it says no."""
    if not fast:
        checker.check(res, p, path)
        return
    conforms = p.conforms
    if conforms is None:
        from adapter.compliance.profile_fast import predicate

        conforms = p.conforms = predicate(p, reg)
    if not conforms(res, resolver):
        checker.check(res, p, path)
