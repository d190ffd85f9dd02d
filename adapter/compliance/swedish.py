"""Layer 3: Swedish rules, as a table of named rules over the whole payload.

Each rule is a small function reading its facts from `swedish_rules.json` (legal bases that
require a transfer, allow-lists per message, role lists...), so changing policy is a data
change. `RULES` lists them in order; `check_swedish` runs those not skipped by the context.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Callable, Iterator

from adapter.compliance.context import ValidationContext
from adapter.compliance.outcome import MALFORMED, issue, unchecked
from mappings import identifiers, systems


@cache
def config() -> dict[str, Any]:
    """swedish_rules.json with system names replaced by the URLs of mappings.systems."""
    raw = json.loads(resources.files("adapter.compliance").joinpath("swedish_rules.json").read_text("utf-8"))

    def resolve(node: Any, key: str | None = None) -> Any:
        if isinstance(node, dict):
            return {k: resolve(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v, key) for v in node]
        if isinstance(node, str) and node.isupper() and hasattr(systems, node) and key != "_comment":
            return getattr(systems, node)
        return node

    return resolve(raw)


# --- the payload as the rules see it ----------------------------------------------------


class Payload:
    """Resources of one payload with lookups shared by the rules."""

    def __init__(self, root: dict, walker: Any, reg: Any, ctx: ValidationContext, issues: list[dict]) -> None:
        self.root = root
        self.walker = walker
        self.reg = reg
        self.ctx = ctx
        self.issues = issues
        self.cfg = config()
        self.by_type: dict[str, list[tuple[dict, str]]] = {}
        by_type = self.by_type
        for item in walker.resources:  # (resource, path)
            rtype = item[0].get("resourceType")
            found = by_type.get(rtype)
            if found is None:
                by_type[rtype] = [item]
            else:
                found.append(item)
        self._plan_activities: set[int] | None = None
        self._paths: dict[int, str] | None = None

    @property
    def today(self) -> dt.date:
        """The transfer date (context, else today)."""
        return self.ctx.today or dt.date.today()

    @property
    def paths(self) -> dict[int, str]:
        """FHIRPath of each resource met, by id()."""
        if self._paths is None:
            self._paths = {id(res): path for res, path in self.walker.resources}
        return self._paths

    def of(self, rtype: str) -> list[tuple[dict, str]]:
        return self.by_type.get(rtype, [])

    def resolve(self, ref: Any) -> dict | None:
        if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
            return None
        return self.walker.resolve(ref, None)

    def add(self, severity: str, code: str, path: str, text: str, rule: str) -> None:
        self.issues.append(issue(severity, code, path, text, rule))

    def has_code(self, system: str, code: str) -> bool:
        """Does any Coding of the payload carry system#code ('*' = any code of the system)?"""
        if code == "*":
            return any(s == system for s, _ in self.walker.seen_codes)
        return (system, code) in self.walker.seen_codes


def codings(value: Any) -> Iterator[dict]:
    """Every Coding of a CodeableConcept, a list of them, or a Coding."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            if "coding" in item:
                yield from (c for c in item.get("coding") or () if isinstance(c, dict))
            elif "system" in item or "code" in item:
                yield item


def code_of(value: Any, system: str) -> str | None:
    for c in codings(value):
        if c.get("system") == system:
            return c.get("code")
    return None


def _in(c: dict, entries: list[dict]) -> bool:
    return any(c.get("system") == e["system"] and (e["code"] in ("*", c.get("code"))) for e in entries)


class _Entries:
    """A configured list of {system, code} entries ('*': any code of the system) as sets:
    `has(c)` is `_in(c, entries)` in two lookups."""

    __slots__ = ("entries", "any_code", "pairs")

    def __init__(self, entries: list[dict]) -> None:
        self.entries = entries
        self.any_code = frozenset(e["system"] for e in entries if e["code"] == "*")
        self.pairs = frozenset((e["system"], e["code"]) for e in entries)

    def has(self, c: dict) -> bool:
        system, code = c.get("system"), c.get("code")
        if type(system) is not str or type(code) is not str:
            return _in(c, self.entries)  # (odd JSON: the plain comparison)
        return system in self.any_code or (system, code) in self.pairs


_ENTRIES: dict[int, _Entries] = {}


def _entries(entries: list[dict]) -> _Entries:
    """`_Entries` of a configured list, made once per list object (configuration lists are
    not changed in place)."""
    found = _ENTRIES.get(id(entries))
    if found is None or found.entries is not entries:
        found = _Entries(entries)
        if len(_ENTRIES) > 100:
            _ENTRIES.clear()
        _ENTRIES[id(entries)] = found
    return found


def _same(ref_a: Any, ref_b: Any, payload: Payload) -> bool:
    """Two references point at the same resource (same reference text or same resolved resource)."""
    if not isinstance(ref_a, dict) or not isinstance(ref_b, dict):
        return False
    if ref_a.get("reference") and ref_a.get("reference") == ref_b.get("reference"):
        return True
    a, b = payload.resolve(ref_a), payload.resolve(ref_b)
    return a is not None and a is b


# --- rules ------------------------------------------------------------------------------


def rule_personnummer(p: Payload) -> None:
    """Personnummer and samordningsnummer are well formed: 12 digits, real date, Luhn, right system."""
    if not p.walker.watched_identifiers:
        return
    watched = set(p.cfg["person_identifier_systems"])
    for path, ident in p.walker.watched_identifiers:
        system = ident.get("system")
        if system not in watched:
            continue
        value = ident.get("value")
        if not isinstance(value, str):
            p.add("error", "required", path, "a person identifier needs its value (personnummer or samordningsnummer)", "se-personnummer")
            continue
        problem = identifiers.personnummer_problem(value)
        if problem:
            p.add("error", "invalid", f"{path}.value", problem, "se-personnummer")
        elif system == systems.PERSONNUMMER and identifiers.is_samordningsnummer(value):
            p.add("error", "invalid", f"{path}.system", f"{identifiers.mask(value)} is a samordningsnummer: use the system {systems.SAMORDNINGSNUMMER}", "se-personnummer")
        elif system == systems.SAMORDNINGSNUMMER and not identifiers.is_samordningsnummer(value):
            p.add("error", "invalid", f"{path}.system", f"{identifiers.mask(value)} is a personnummer: use the system {systems.PERSONNUMMER}", "se-personnummer")


def rule_protected_identity(p: Payload) -> None:
    """Skyddad folkbokföring: no address or contact data of the person leaves."""
    cfg = p.cfg["protected_identity"]
    for res, path in p.walker.resources:
        meta = res.get("meta")
        labels = meta.get("security") if type(meta) is dict else None
        if not labels:
            continue
        protected = _entries(cfg["labels"]).has
        if not any(isinstance(c, dict) and protected(c) for c in labels):
            continue
        rt = res.get("resourceType")
        for element in cfg["withheld"].get(rt, ()):
            if element in res:
                p.add("error", "security", f"{path}.{element}", f"the person has skyddad folkbokföring: {rt}.{element} must not leave", "se-protected-identity")
        for i, contact in enumerate(res.get("contact") or () if rt == "Patient" else ()):
            for element in cfg["withheld"].get("Patient.contact", ()):
                if isinstance(contact, dict) and element in contact:
                    p.add("error", "security", f"{path}.contact[{i}].{element}", f"the person has skyddad folkbokföring: Patient.contact.{element} must not leave", "se-protected-identity")


def _huvudman_of_org(org: dict | None, p: Payload) -> str | None:
    if not isinstance(org, dict):
        return None
    kinds = p.cfg["consent"]["organisation_kind_huvudman"]
    for c in codings(org.get("type")):
        if c.get("system") == systems.CS_HUVUDMAN:
            return c.get("code")
        if c.get("system") == systems.CS_ORGANISATION_KIND and c.get("code") in kinds:
            return kinds[c["code"]]
    return None


def _author_huvudman(p: Payload) -> str | None:
    """The huvudman the payload comes from, when only the receiver is configured: the plan's
    author, else the message's sender, else the authoring Provenance's organisation."""
    for plan, _ in p.of("CarePlan"):
        found = _huvudman_of_org(p.resolve(plan.get("author")), p)
        if found:
            return found
    for header, _ in p.of("MessageHeader"):
        found = _huvudman_of_org(p.resolve(header.get("sender")), p)
        if found:
            return found
    for prov, _ in p.of("Provenance"):
        for agent in prov.get("agent") or ():
            found = _huvudman_of_org(p.resolve(agent.get("onBehalfOf")), p) if isinstance(agent, dict) else None
            if found:
                return found
    return None


def _cross_huvudman(p: Payload) -> tuple[str | None, list[dict]]:
    """(why the payload crosses huvudmän, receiving organisations' references) or (None, [])."""
    ctx = p.ctx
    sender = ctx.sender_huvudman or (_author_huvudman(p) if ctx.receiver_huvudman else None)
    if sender and ctx.receiver_huvudman and sender != ctx.receiver_huvudman:
        return f"it is sent from {sender} to {ctx.receiver_huvudman}", []
    if "MessageHeader" not in p.by_type and "CarePlan" not in p.by_type:
        return None, []
    for header, _ in p.of("MessageHeader"):
        sender = _huvudman_of_org(p.resolve(header.get("sender")), p)
        for dest in header.get("destination") or ():
            receiver_ref = dest.get("receiver") if isinstance(dest, dict) else None
            receiver = _huvudman_of_org(p.resolve(receiver_ref), p)
            if sender and receiver and sender != receiver:
                return f"the message goes from {sender} to {receiver}", [receiver_ref]
    coordinated = set(p.cfg["plans"]["coordinated"])
    for plan, _ in p.of("CarePlan"):
        if code_of(plan.get("category"), systems.CS_CARE_PLAN_TYPE) not in coordinated:
            continue
        for team_ref in plan.get("careTeam") or ():
            team = p.resolve(team_ref)
            if not team:
                continue
            members, huvudmen = [], set()
            for part in team.get("participant") or ():
                h = code_of(part.get("role"), systems.CS_HUVUDMAN)
                if h and h != p.cfg["plans"]["others_huvudman"]:
                    huvudmen.add(h)
                    members.append(part.get("member"))
            if len(huvudmen) > 1:
                return f"the plan is shared between {' and '.join(sorted(huvudmen))}", members
    return None, []


def rule_consent(p: Payload) -> None:
    """A transfer between huvudmän needs consent in scope, unless a configured legal basis requires it."""
    why, receivers = _cross_huvudman(p)
    if why is None:
        return
    cfg = p.cfg["consent"]
    for e in cfg["exemptions"]:
        if p.has_code(e["system"], e["code"]):
            p.add("information", "informational", p.root.get("resourceType", ""), f"transfer between huvudmän without consent: {e['basis']}", "se-consent")
            return
    consents = p.of("Consent")
    if not consents:
        p.add("error", "security", p.root.get("resourceType", ""), f"the payload crosses huvudmän ({why}) but carries no Consent, and no legal basis requiring the transfer is named", "se-consent")
        return
    required = {e["requires"] for e in cfg["information"] if p.has_code(e["system"], e["code"])}
    problems: list[tuple[str, str]] = []
    for consent, path in consents:
        found = _consent_problems(consent, path, required, receivers, p)
        if not found:
            return
        problems.extend(found)
    for path, text in problems:
        p.add("error", "security", path, f"the payload crosses huvudmän ({why}) but the consent is not in scope: {text}", "se-consent")


def _consent_problems(consent: dict, path: str, required: set[str], receivers: list, p: Payload) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if consent.get("status") != "active":
        out.append((f"{path}.status", f"status is '{consent.get('status')}', not 'active'"))
    prov = consent.get("provision") if isinstance(consent.get("provision"), dict) else {}
    if prov.get("type") == "deny":
        out.append((f"{path}.provision.type", "the consent denies sharing"))
    period = prov.get("period") if isinstance(prov.get("period"), dict) else {}
    today = p.today.isoformat()
    if isinstance(period.get("start"), str) and period["start"][:10] > today:
        out.append((f"{path}.provision.period", f"the consent starts {period['start'][:10]}, after {today}"))
    if isinstance(period.get("end"), str) and period["end"][:10] < today:
        out.append((f"{path}.provision.period", f"the consent ended {period['end'][:10]}"))
    if prov.get("code"):
        given = {c.get("code") for c in codings(prov.get("code")) if c.get("system") == systems.CS_CONSENT_INFORMATION}
        missing = sorted(required - given)
        if missing:
            out.append((f"{path}.provision.code", f"it does not cover {', '.join(missing)}"))
    actors = [a.get("reference") for a in prov.get("actor") or () if isinstance(a, dict)]
    if actors:
        for r in receivers:
            if not any(_same(r, a, p) for a in actors):
                out.append((f"{path}.provision.actor", f"{(r or {}).get('display') or (r or {}).get('reference')} is not among the organisations the person agreed may share"))
    return out


def _plans(p: Payload, kinds: set[str]) -> Iterator[tuple[dict, str, str]]:
    for plan, path in p.of("CarePlan"):
        kind = code_of(plan.get("category"), systems.CS_CARE_PLAN_TYPE)
        if kind in kinds and plan.get("status") in ("draft", "active", "on-hold"):
            yield plan, path, kind


def _is_riv_document(plan: dict) -> bool:
    """True for a CarePlan read from a RIV-TA GetCarePlans document (the plan is its attached document)."""
    global _riv_document
    if _riv_document is None:  # imported on first use (an import statement here would run on every call)
        from mappings.riv.common import riv_document

        _riv_document = riv_document
    return _riv_document(plan) is not None


_riv_document: Callable[[dict], Any] | None = None


def _is_activity(res: dict, p: Payload) -> bool:
    a = p.cfg["activities"]
    return res.get("intent") not in a["intents_excluded"] and res.get("status") in a["statuses"]


def _has_goal(res: dict, p: Payload) -> bool:
    for ext in res.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == systems.EXT_PERTAINS_TO_GOAL:
            return True
    if res.get("resourceType") == "Task":
        focus = p.resolve(res.get("focus"))
        return bool(focus) and focus is not res and _has_goal(focus, p)
    return False


def rule_activity_goal(p: Payload) -> None:
    """Every planned activity (of a genomförandeplan, rehab plan, SIP...) has a goal."""
    others = p.cfg["plans"]["others_huvudman"]
    for plan, path, kind in _plans(p, set(p.cfg["plans"]["with_activity_goals"])):
        for i, act in enumerate(plan.get("activity") or ()):
            if not isinstance(act, dict):
                continue
            detail = act.get("detail")
            if isinstance(detail, dict):
                if detail.get("status") in ("completed", "cancelled", "stopped", "entered-in-error"):
                    continue
                if not detail.get("goal"):
                    p.add("error", "business-rule", f"{path}.activity[{i}].detail", f"a planned activity of the {kind} plan names no goal (detail.goal)", "se-activity-goal")
                continue
            target = p.resolve(act.get("reference"))
            if target is None or not _is_activity(target, p):
                continue
            if code_of(target.get("category"), systems.CS_HUVUDMAN) == others:
                continue
            if not _has_goal(target, p):
                p.add("error", "business-rule", f"{path}.activity[{i}]", f"the planned activity {p.paths.get(id(target), '')} of the {kind} plan has no goal (resource-pertainsToGoal)", "se-activity-goal")


def rule_sip_responsibility(p: Payload) -> None:
    """A SIP/SPU names the lead huvudman and interventions per huvudman."""
    plans_cfg = p.cfg["plans"]
    lead = plans_cfg["lead_role"]
    for plan, path, kind in _plans(p, set(plans_cfg["coordinated"])):
        if _is_riv_document(plan):
            continue  # a plan exchanged as a document (RIV GetCarePlans) has no structured roles to check
        refs = plan.get("careTeam") or ()
        teams = [t for t in (p.resolve(r) for r in refs) if t]
        if not refs:
            p.add("error", "business-rule", f"{path}.careTeam", f"a {kind} names its care team: the huvudmän taking part and the one with overall responsibility", "se-sip-responsibility")
            continue
        if not teams:
            p.add("information", "informational", f"{path}.careTeam", f"the {kind}'s care team is not in the payload: its huvudmän and lead are not checked here", "se-sip-responsibility")
            continue
        huvudmen: set[str] = set()
        leads: list[str | None] = []
        for team in teams:
            for part in team.get("participant") or ():
                roles = list(codings(part.get("role")))
                h = code_of(part.get("role"), systems.CS_HUVUDMAN)
                if h and h != plans_cfg["others_huvudman"]:
                    huvudmen.add(h)
                if any(_in(c, [lead]) for c in roles):
                    leads.append(h)
        if len(leads) != 1 or leads[0] in (None, plans_cfg["others_huvudman"]):
            what = "names no" if not leads else ("names more than one" if len(leads) > 1 else "names, without its huvudman, the")
            p.add("error", "business-rule", f"{path}.careTeam", f"the {kind} {what} huvudman with overall responsibility (role {lead['code']} with a huvudman)", "se-sip-responsibility")
        covered: set[str] = set()
        for act in plan.get("activity") or ():
            target = p.resolve(act.get("reference")) if isinstance(act, dict) else None
            if target is not None:
                h = code_of(target.get("category"), systems.CS_HUVUDMAN)
                if h:
                    covered.add(h)
        for h in sorted(huvudmen - covered):
            p.add("error", "business-rule", f"{path}.activity", f"the {kind} names no intervention for which huvudman '{h}' is responsible", "se-sip-responsibility")


def _in_swedish_flow(res: dict, p: Payload) -> bool:
    """A carebridge activity: it claims a carebridge profile or is an activity of a RIV-typed plan."""
    meta = res.get("meta")
    for url in (meta.get("profile") if isinstance(meta, dict) else None) or ():
        if isinstance(url, str) and url.startswith(systems.BASE + "/"):
            return True
    if p._plan_activities is None:
        p._plan_activities = set()
        for plan, _ in p.of("CarePlan"):
            if code_of(plan.get("category"), systems.CS_CARE_PLAN_TYPE) is not None:
                for act in plan.get("activity") or ():
                    target = p.resolve(act.get("reference")) if isinstance(act, dict) else None
                    if target is not None:
                        p._plan_activities.add(id(target))
    return id(res) in p._plan_activities


def rule_activity_responsibility(p: Payload) -> None:
    """Every activity names its legal domain (HSL/SoL/LSS), huvudman and performer.

    Activities are ServiceRequests of carebridge flows (see `_in_swedish_flow`) that are not
    proposals and not finished."""
    a = p.cfg["activities"]
    others = p.cfg["plans"]["others_huvudman"]
    for sr, path in p.of("ServiceRequest"):
        if not _is_activity(sr, p) or not _in_swedish_flow(sr, p):
            continue
        cats = [*codings(sr.get("category")), *codings(sr.get("code"))]
        domain = next((c.get("code") for c in cats if c.get("system") == systems.CS_LEGAL_DOMAIN), None)
        huvudman = next((c.get("code") for c in cats if c.get("system") == systems.CS_HUVUDMAN), None)
        for c in cats:
            for src in a["domain_from_property"]:
                if domain is None and c.get("system") == src["system"]:
                    domain = p.reg.property(src["system"], c.get("code"), src["property"])
            for src in a["huvudman_from_property"]:
                if huvudman is None and c.get("system") == src["system"]:
                    huvudman = p.reg.property(src["system"], c.get("code"), src["property"])
        if huvudman is None:
            p.add("error", "business-rule", f"{path}.category", "the activity names no huvudman (a category from the huvudman CodeSystem)", "se-activity-responsibility")
        if domain is None and huvudman != others:
            p.add("error", "business-rule", f"{path}.category", "the activity names no legal domain (HSL, SoL or LSS)", "se-activity-responsibility")
        if not sr.get("performer"):
            p.add("error", "business-rule", f"{path}.performer", "the activity names no performer", "se-activity-responsibility")


def rule_data_minimisation(p: Payload) -> None:
    """A message carries no more than its purpose allows (allow-list per message type)."""
    cfg = p.cfg["minimisation"]
    for bundle, bpath in p.of("Bundle"):
        if bundle.get("type") != "message":
            continue
        entries = [e for e in bundle.get("entry") or () if isinstance(e, dict)]
        header = entries[0].get("resource") if entries else None
        if not isinstance(header, dict) or header.get("resourceType") != "MessageHeader":
            continue
        event = p.ctx.message_type or code_of(header.get("eventCoding"), cfg["event_system"])
        if event is None:
            continue
        allowed = dict(cfg["messages"]["*"])
        for rt, elements in cfg["messages"].get(event, {}).items():
            base = allowed.get(rt)
            allowed[rt] = "*" if elements == "*" or base == "*" else [*(base or []), *elements]
        for i, e in enumerate(entries):
            res = e.get("resource")
            if not isinstance(res, dict):
                continue
            rt, path = res.get("resourceType"), f"{bpath}.entry[{i}].resource"
            if rt not in allowed:
                p.add("error", "security", path, f"a '{event}' message may not carry a {rt} (data minimisation)", "se-data-minimisation")
                continue
            if allowed[rt] == "*":
                continue
            for key in res:
                element = key.lstrip("_")
                if key != "resourceType" and element not in allowed[rt]:
                    p.add("error", "security", f"{path}.{element}", f"a '{event}' message may not carry {rt}.{element} (data minimisation)", "se-data-minimisation")


def _staff_codings(who: dict | None, p: Payload) -> list[dict]:
    if not isinstance(who, dict):
        return []
    rt = who.get("resourceType")
    if rt == "PractitionerRole":
        out = list(codings(who.get("code")))
        return out + _staff_codings(p.resolve(who.get("practitioner")), p)
    if rt == "Practitioner":
        return [c for q in who.get("qualification") or () if isinstance(q, dict) for c in codings(q.get("code"))]
    return []


def rule_delegation(p: Payload) -> None:
    """Medication ordination (and other non-delegable tasks) is never assigned to care staff."""
    cfg = p.cfg["delegation"]
    focus_kinds = cfg["non_delegable_focus"]
    non_delegable, care_staff = _entries(cfg["non_delegable"]).has, _entries(cfg["care_staff"]).has
    # a Task's focus resolves to a resource of the payload (one the walker met), so only a
    # payload with a resource of one of those types can have such a focus
    focus_possible = not focus_kinds.keys().isdisjoint(p.by_type)
    for rtype, assignee_key in (("Task", "owner"), ("ServiceRequest", "performer")):
        for res, path in p.of(rtype):
            what = next((c.get("display") or c.get("code") for c in codings(res.get("code")) if non_delegable(c)), None)
            if what is None and rtype == "Task" and focus_possible:
                focus = p.resolve(res.get("focus"))
                if isinstance(focus, dict) and focus.get("intent") in focus_kinds.get(focus.get("resourceType"), ()):
                    what = f"a {focus['resourceType']} ({focus.get('intent')}), i.e. a medication ordination"
            if what is None:
                continue
            refs = res.get(assignee_key)
            for j, ref in enumerate(refs if isinstance(refs, list) else [refs]):
                if any(care_staff(c) for c in _staff_codings(p.resolve(ref), p)):
                    where = f"{path}.{assignee_key}" + (f"[{j}]" if isinstance(refs, list) else "")
                    p.add("error", "business-rule", where, f"{what} cannot be delegated and must not be assigned to care staff", "se-delegation")
    for mr, path in p.of("MedicationRequest"):
        if any(care_staff(c) for c in _staff_codings(p.resolve(mr.get("requester")), p)):
            p.add("error", "business-rule", f"{path}.requester", "a medication ordination cannot be made by care staff (it cannot be delegated)", "se-delegation")


@dataclass(frozen=True)
class Rule:
    """A named Swedish rule."""

    id: str
    title: str
    check: Callable[[Payload], None]
    #: Resource types of which one must be in the payload for the rule to have anything to check
    #: (empty: always run).
    needs: tuple[str, ...] = ()


RULES: tuple[Rule, ...] = (
    Rule("se-personnummer", "Personnummer/samordningsnummer are valid (date, Luhn) and under the right system", rule_personnummer),
    Rule("se-protected-identity", "Skyddad folkbokföring: no address or contact data leaves", rule_protected_identity, ("Patient", "RelatedPerson", "Person")),
    Rule("se-consent", "Consent present and in scope before a cross-huvudman transfer, unless a legal basis requires it", rule_consent),
    Rule("se-activity-goal", "Every planned activity has a goal", rule_activity_goal, ("CarePlan",)),
    Rule("se-sip-responsibility", "A SIP names interventions per huvudman and the lead huvudman", rule_sip_responsibility, ("CarePlan",)),
    Rule("se-activity-responsibility", "Every activity names its legal domain, huvudman and performer", rule_activity_responsibility, ("ServiceRequest",)),
    Rule("se-data-minimisation", "A message carries no more than its purpose allows", rule_data_minimisation, ("MessageHeader",)),
    Rule("se-delegation", "Medication ordination is never assigned to care staff", rule_delegation, ("Task", "ServiceRequest", "MedicationRequest")),
)


_NEEDS = tuple((rule, frozenset(rule.needs)) for rule in RULES)
_RULE_OF = {rule.check: rule.id for rule in RULES}


#: (resource types present, rules skipped) -> the checks to run, in RULES order (bounded).
_TO_RUN: dict[tuple, tuple[Callable[[Payload], None], ...]] = {}


def _to_run(present: tuple[str, ...], skip: Any) -> tuple[Callable[[Payload], None], ...]:
    """The checks of the rules not skipped and with something to check among `present` types
    (remembered when `skip` is a frozenset, as ValidationContext makes it)."""
    key = (present, skip) if type(skip) is frozenset else None
    checks = _TO_RUN.get(key) if key is not None else None
    if checks is None:
        checks = tuple(rule.check for rule, needs in _NEEDS
                       if not ((needs and needs.isdisjoint(present)) or (skip and rule.id in skip)))
        if key is not None:
            if len(_TO_RUN) > 1000:
                _TO_RUN.clear()
            _TO_RUN[key] = checks
    return checks


def check_swedish(root: dict, walker: Any, reg: Any, ctx: ValidationContext, issues: list[dict]) -> None:
    """Run every Swedish rule not skipped by the context (and with something to check)."""
    payload = Payload(root, walker, reg, ctx, issues)
    for check in _to_run(tuple(payload.by_type), ctx.skip_rules):
        try:
            check(payload)
        except MALFORMED as exc:
            issues.append(unchecked(root.get("resourceType") if isinstance(root.get("resourceType"), str) else "", _RULE_OF[check], exc))
