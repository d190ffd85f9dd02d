"""Is a server fit to receive carebridge's writes? Read from its CapabilityStatement at start."""

from __future__ import annotations

from typing import Any

#: Resource types a decision's transaction Bundle creates conditionally.
WRITTEN_TYPES = ("Patient", "Organization", "Practitioner", "ServiceRequest", "Goal", "CarePlan", "Task", "Provenance")


def problems(capability: Any, types: tuple[str, ...] = WRITTEN_TYPES) -> list[str]:
    """Why a CapabilityStatement is unsuitable: FHIR 4.0.x, transactions, conditional create; [] when fine."""
    if not isinstance(capability, dict) or capability.get("resourceType") != "CapabilityStatement":
        return ["/metadata did not return a CapabilityStatement"]
    found: list[str] = []
    version = str(capability.get("fhirVersion", ""))
    if not version.startswith("4.0."):
        found.append(f"FHIR version is {version or 'not stated'}, carebridge needs R4 (4.0.x)")
    servers = [r for r in capability.get("rest", ()) if r.get("mode") == "server"]
    if not servers:
        return found + ["no REST server capabilities (rest.mode = server)"]
    rest = servers[0]
    if not any(i.get("code") == "transaction" for i in rest.get("interaction", ())):
        found.append("transactions are not supported (rest.interaction transaction)")
    resources = {r.get("type"): r for r in rest.get("resource", ())}
    if "Patient" not in resources:
        found.append("the Patient resource type is not supported")
    # A type the statement does not list is left to the server (SEKMET omits types without search
    # parameters, e.g. Goal); a listed type must declare conditional create.
    no_conditional = [t for t in types if t in resources and not resources[t].get("conditionalCreate")]
    if no_conditional:
        found.append("conditional create not supported for: " + ", ".join(no_conditional)
                     + " (a resend could create duplicates)")
    return found


def unlisted(capability: dict[str, Any], types: tuple[str, ...] = WRITTEN_TYPES) -> list[str]:
    """Written resource types the CapabilityStatement does not list (worth a warning, not a refusal)."""
    listed = {r.get("type") for rest in capability.get("rest", ()) for r in rest.get("resource", ())}
    return [t for t in types if t not in listed]


def token_url(capability: dict[str, Any]) -> str | None:
    """The OAuth token endpoint a CapabilityStatement advertises (SMART ``oauth-uris`` extension)."""
    for rest in capability.get("rest", ()):
        for ext in (rest.get("security") or {}).get("extension", ()):
            if ext.get("url", "").endswith("/oauth-uris"):
                for inner in ext.get("extension", ()):
                    if inner.get("url") == "token":
                        return inner.get("valueUri")
    return None

