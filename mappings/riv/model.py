"""The RIV-TA logistics 3 types as plain dataclasses, with a strict XML reader and writer.

Each dataclass mirrors one complexType of `clinicalprocess_logistics_logistics_3.0.xsd` (or of a
responder schema): its fields are the type's child elements in schema order, declared with `el()`.
`read()` walks an element's children in that order and refuses anything the contract does not
allow; `write()` emits them again. Elements of another namespace where the type allows
`xs:any namespace="##other"` are kept verbatim (serialized XML) in the instance's `other` list.

The reader checks the simple types the schemas restrict (timestamps, booleans, enumerations,
base64); it is not a schema validator, but everything it writes is meant to validate against
Inera's XSDs (the tests check that with the official schemas).

`walk`, `leaves`, `resolve` and `ensure` address parts of a document by RIV path
(`careServiceHeader/patientId/id`, `carePlanBody/content[2]/value`), so the FHIR mapping can
carry what FHIR has no place for (empty strings, foreign XML) as path-tagged extensions.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Iterator

from lxml import etree

from mappings import safexml, terminology
from mappings.riv import CARE_PLANS_NS, CARE_SERVICES_NS, CORE_NS, RivFormatError, RivWriteError
from mappings.riv.times import TIMESTAMP

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

# Leaf kinds: "str", "bool", "timestamp", "base64", "uri", or "enum:<terminology table>".


def el(tag: str, kind: Any = "str", *, required: bool = False, many: bool = False) -> Any:
    """Declare a child element: its local name, kind (a leaf kind or a RivType class) and cardinality."""
    meta = {"tag": tag, "kind": kind, "required": required, "many": many}
    if many:
        return field(default_factory=list, metadata=meta)
    return field(default=None, metadata=meta)


def foreign() -> Any:
    """The `xs:any ##other` tail of a type: foreign elements as serialized XML, in document order."""
    return field(default_factory=list, metadata={"foreign": True})


@dataclass(frozen=True)
class Child:
    attr: str
    tag: str
    kind: Any
    required: bool
    many: bool
    #: The child is a RivType (not a leaf kind); worked out once.
    complex: bool = field(init=False, compare=False)
    #: A leaf whose text `leaf_value` takes as it is ("str", "uri"): nothing to check or convert.
    plain: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "complex", isinstance(self.kind, type))
        plain = not self.complex and self.kind not in ("bool", "timestamp", "base64") and not self.kind.startswith("enum:")
        object.__setattr__(self, "plain", plain)


class RivType:
    """Base of the dataclasses below: schema order, namespace of the children, ##other allowed."""

    NS: ClassVar[str] = CORE_NS

    @classmethod
    def children(cls) -> tuple[Child, ...]:
        found = _CHILDREN.get(cls)
        if found is None:
            found = _CHILDREN[cls] = tuple(
                Child(f.name, f.metadata["tag"], f.metadata["kind"], f.metadata["required"], f.metadata["many"])
                for f in fields(cls)  # type: ignore[arg-type]
                if "tag" in f.metadata
            )
        return found

    @classmethod
    def takes_foreign(cls) -> bool:
        found = _FOREIGN.get(cls)
        if found is None:
            found = _FOREIGN[cls] = any(f.metadata.get("foreign") for f in fields(cls))  # type: ignore[arg-type]
        return found


def shape(cls: type[RivType]) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, bool], ...]]:
    """A class's simple children as (attribute, tag) and its complex ones as (attribute, tag, many),
    each in schema order (worked out once)."""
    found = _SHAPES.get(cls)
    if found is None:
        kids = cls.children()
        found = _SHAPES[cls] = (
            tuple((c.attr, c.tag) for c in kids if not c.complex),
            tuple((c.attr, c.tag, c.many) for c in kids if c.complex),
        )
    return found


_SHAPES: dict[type, tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, bool], ...]]] = {}

#: Per class, worked out once: its children in schema order, whether it takes ##other elements.
_CHILDREN: dict[type, tuple[Child, ...]] = {}
_FOREIGN: dict[type, bool] = {}


# --- The types (bottom-up) ---------------------------------------------------------------


@dataclass
class PersonId(RivType):
    id: str | None = el("id", required=True)
    type: str | None = el("type", required=True)
    other: list[str] = foreign()


@dataclass
class CV(RivType):
    code: str | None = el("code")
    code_system: str | None = el("codeSystem")
    code_system_name: str | None = el("codeSystemName")
    code_system_version: str | None = el("codeSystemVersion")
    display_name: str | None = el("displayName")
    original_text: str | None = el("originalText")
    other: list[str] = foreign()


@dataclass
class OrgUnit(RivType):
    hsa_id: str | None = el("orgUnitHSAId")
    name: str | None = el("orgUnitName")
    telecom: str | None = el("orgUnitTelecom")
    email: str | None = el("orgUnitEmail")
    address: str | None = el("orgUnitAddress")
    location: str | None = el("orgUnitLocation")
    other: list[str] = foreign()


@dataclass
class HealthcareProfessional(RivType):
    author_time: str | None = el("authorTime", "timestamp", required=True)
    hsa_id: str | None = el("healthcareProfessionalHSAId")
    name: str | None = el("healthcareProfessionalName")
    role_code: CV | None = el("healthcareProfessionalRoleCode", CV)
    org_unit: OrgUnit | None = el("healthcareProfessionalOrgUnit", OrgUnit)
    care_unit_hsa_id: str | None = el("healthcareProfessionalCareUnitHSAId")
    care_giver_hsa_id: str | None = el("healthcareProfessionalCareGiverHSAId")
    other: list[str] = foreign()


@dataclass
class LegalAuthenticator(RivType):
    signature_time: str | None = el("signatureTime", "timestamp", required=True)
    hsa_id: str | None = el("legalAuthenticatorHSAId")
    name: str | None = el("legalAuthenticatorName")
    other: list[str] = foreign()


@dataclass
class Header(RivType):
    """PatientSummaryHeaderType: the same header for careService and carePlan (no ##other)."""

    document_id: str | None = el("documentId", required=True)
    source_system_hsa_id: str | None = el("sourceSystemHSAId", required=True)
    document_title: str | None = el("documentTitle")
    document_time: str | None = el("documentTime", "timestamp")
    patient_id: PersonId | None = el("patientId", PersonId, required=True)
    accountable: HealthcareProfessional | None = el("accountableHealthcareProfessional", HealthcareProfessional, required=True)
    legal_authenticator: LegalAuthenticator | None = el("legalAuthenticator", LegalAuthenticator)
    approved_for_patient: bool | None = el("approvedForPatient", "bool", required=True)
    nullified: bool | None = el("nullified", "bool")
    nullified_reason: str | None = el("nullifiedReason")
    care_contact_id: str | None = el("careContactId")


@dataclass
class II(RivType):
    root: str | None = el("root", required=True)
    extension: str | None = el("extension")
    other: list[str] = foreign()


@dataclass
class TimePeriod(RivType):
    start: str | None = el("start", "timestamp", required=True)
    end: str | None = el("end", "timestamp")
    other: list[str] = foreign()


@dataclass
class CareServiceBody(RivType):
    performer_unit: II | None = el("performerHealthCareUnit", II, required=True)
    performer_professional: II | None = el("performerHealthCareProfessional", II)
    type_of_care_service: str | None = el("typeOfCareService", "enum:riv-care-service-type", required=True)
    time_period: TimePeriod | None = el("timePeriod", TimePeriod, required=True)
    input: str | None = el("input", required=True)
    scope: str | None = el("scope", required=True)
    housing: str | None = el("housing")
    other: list[str] = foreign()


@dataclass
class CareService(RivType):
    header: Header | None = el("careServiceHeader", Header, required=True)
    body: CareServiceBody | None = el("careServiceBody", CareServiceBody, required=True)
    other: list[str] = foreign()


@dataclass
class Multimedia(RivType):
    id: str | None = el("id")
    media_type: str | None = el("mediaType", "enum:riv-media-type", required=True)
    value: str | None = el("value", "base64")
    reference: str | None = el("reference", "uri")
    other: list[str] = foreign()


@dataclass
class CarePlanBody(RivType):
    content: list[Multimedia] = el("content", Multimedia, many=True)
    participating_units: list[II] = el("participatingCareUnitHSAId", II, many=True)
    type_of_care_plan: str | None = el("typeOfCarePlanEnum", "enum:riv-care-plan-type")
    other: list[str] = foreign()


@dataclass
class CarePlan(RivType):
    header: Header | None = el("carePlanHeader", Header, required=True)
    body: CarePlanBody | None = el("carePlanBody", CarePlanBody, required=True)
    other: list[str] = foreign()


@dataclass
class Result(RivType):
    """ResultType (no ##other)."""

    result_code: str | None = el("resultCode", "enum:riv-result-code", required=True)
    error_code: str | None = el("errorCode", "enum:riv-error-code")
    log_id: str | None = el("logId", required=True)
    sub_code: str | None = el("subCode")
    message: str | None = el("message")


@dataclass
class CareServicesResponse(RivType):
    NS: ClassVar[str] = CARE_SERVICES_NS
    ROOT: ClassVar[str] = "GetCareServicesResponse"
    items: list[CareService] = el("careService", CareService, many=True)
    result: Result | None = el("result", Result, required=True)
    other: list[str] = foreign()


@dataclass
class CarePlansResponse(RivType):
    NS: ClassVar[str] = CARE_PLANS_NS
    ROOT: ClassVar[str] = "GetCarePlansResponse"
    items: list[CarePlan] = el("carePlan", CarePlan, many=True)
    result: Result | None = el("result", Result, required=True)
    other: list[str] = foreign()


Response = CareServicesResponse | CarePlansResponse


# --- Reading ----------------------------------------------------------------------------


class Reading:
    """What `read` met on its way through a document that `Carry.take` (mappings.riv.common)
    would move out of it: a simple value that is empty or starts with white space (a FHIR string
    may not hold some of those), an element with no child elements (a part that may hold
    nothing), or foreign XML.

    `marks` counts what was met; `carrying` holds (the id of) every part read with something met
    inside it. `carries(part)` is false only if `Carry.take(part)` would find nothing: every
    part below holds a value a FHIR string can hold, and nothing is foreign."""

    def __init__(self) -> None:
        self.marks = 0
        self.carrying: set[int] = set()

    def carries(self, part: RivType) -> bool:
        return id(part) in self.carrying


def parse_response(xml: Any, cls: type[RivType], seen: Reading | None = None) -> Any:
    """Parse (safely) and read a whole response document of type `cls` (bytes or text, or its root
    element already parsed with `safexml.parse`); what the reading met is noted in `seen`."""
    root = safexml.parse(xml) if isinstance(xml, (bytes, str)) else xml
    expected = f"{{{cls.NS}}}{cls.ROOT}"  # type: ignore[attr-defined]
    if root.tag != expected:
        raise RivFormatError(f"not a {cls.ROOT} of {cls.NS}: the root element is {root.tag}")  # type: ignore[attr-defined]
    return read(cls, root, cls.ROOT, seen)  # type: ignore[attr-defined]


def read(cls: type[RivType], element: Any, where: str, seen: Reading | None = None) -> Any:
    """Read `element` as an instance of `cls`, strictly in schema order (noting in `seen`)."""
    marks = seen.marks if seen is not None else 0
    if element.keys():
        _check_attributes(element, where)
    text = element.text
    if text and text.strip():
        raise RivFormatError(f"{where}: unexpected text {text.strip()[:40]!r}")
    kids = list(element.iterchildren(etree.Element))  # elements only (no comments, PIs, entities)
    tags = [k.tag for k in kids]  # (lxml makes a new tag string on every access: each read once)
    count = len(kids)
    if not count and seen is not None:
        seen.marks += 1
    values: dict[str, Any] = {}
    i = 0
    steps, foreign = _PLANS.get(cls) or _plan(cls)
    for child, tag, attr, many, plain in steps:
        if i < count and tags[i] == tag:
            if many:
                found: list[Any] = []
                while i < count and tags[i] == tag:
                    found.append(_read_child(child, kids[i], f"{where}/{child.tag}[{len(found) + 1}]", seen))
                    i += 1
                values[attr] = found
                continue
            kid = kids[i]
            i += 1
            # a plain leaf without attributes or elements is its text; anything else is read
            # (and named in errors) by _read_child
            if plain and not len(kid) and not kid.keys():
                text = kid.text
                if (not text or text[0].isspace()) and seen is not None:
                    seen.marks += 1
                values[attr] = text or ""
            else:
                values[attr] = _read_child(child, kid, f"{where}/{child.tag}", seen)
            continue
        if child.required:
            _wrong_namespace(cls, kids[i:], where)
            got = tags[i] if i < count else "the end of the element"
            raise RivFormatError(f"{where}: missing required element {child.tag} (found {got})")
        values[attr] = [] if many else None
    if foreign:
        others = []
        while i < count and _is_foreign(kids[i], cls.NS):
            others.append(_serialize(kids[i]))
            i += 1
        if others and seen is not None:
            seen.marks += 1
        values["other"] = others
    if i < count:
        _wrong_namespace(cls, kids[i:], where)
        raise RivFormatError(f"{where}: unexpected element {tags[i]}")
    part = cls(**values)
    if seen is not None and seen.marks != marks:
        seen.carrying.add(id(part))
    return part


#: Per class, how `read` goes through its children: (child, `{namespace}tag`, attribute, many,
#: plain) in schema order, and whether ##other elements may follow.
_PLANS: dict[type, tuple[tuple[tuple[Child, str, str, bool, bool], ...], bool]] = {}


def _plan(cls: type[RivType]) -> tuple[tuple[tuple[Child, str, str, bool, bool], ...], bool]:
    """`read`'s plan for a class (worked out once)."""
    steps = tuple((c, f"{{{cls.NS}}}{c.tag}", c.attr, c.many, c.plain) for c in cls.children())
    found = _PLANS[cls] = (steps, cls.takes_foreign())
    return found


def _wrong_namespace(cls: type[RivType], rest: list[Any], where: str) -> None:
    """Name the usual mistake precisely: a contract element in the wrong (or no) namespace."""
    if not rest:
        return
    tag = rest[0].tag
    local = tag.rsplit("}", 1)[-1]
    if local in {c.tag for c in cls.children()} and tag != f"{{{cls.NS}}}{local}":
        ns = tag[1:].split("}", 1)[0] if tag.startswith("{") else "no namespace"
        raise RivFormatError(f"{where}: element {local} is in {ns}; the contract puts it in {cls.NS}")


def _read_child(child: Child, element: Any, where: str, seen: Reading | None = None) -> Any:
    if child.complex:
        return read(child.kind, element, where, seen)
    _check_attributes(element, where)
    if len(element):
        raise RivFormatError(f"{where}: a simple element cannot contain elements")
    value = leaf_value(child.kind, element.text or "", where, RivFormatError)
    if isinstance(value, str) and (not value or value[0].isspace()) and seen is not None:
        seen.marks += 1
    return value


def leaf_value(kind: str, text: str, where: str, error: type[Exception]) -> Any:
    """Check (and for booleans, convert) a simple value of the given kind."""
    if kind == "bool":
        collapsed = text.strip()
        if collapsed in ("true", "1"):
            return True
        if collapsed in ("false", "0"):
            return False
        raise error(f"{where}: {text!r} is not a boolean (true or false)")
    if kind == "timestamp" and not TIMESTAMP.fullmatch(text):
        raise error(f"{where}: {text!r} is not a RIV timestamp (YYYYMMDDhhmmss)")
    if kind == "base64":
        try:
            base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise error(f"{where}: value is not base64") from None
    if kind.startswith("enum:"):
        table = kind[5:]
        if text not in terminology.table(table):
            raise error(f"{where}: {text!r} is not a {table} code ({', '.join(terminology.codes(table))})")
    return text


def _check_attributes(element: Any, where: str) -> None:
    for name in element.keys():  # (the attribute names, as iterating .attrib gives them, cheaper)
        if not name.startswith(f"{{{XSI_NS}}}"):
            raise RivFormatError(f"{where}: unexpected attribute {name}")


def _is_foreign(element: Any, own_ns: str) -> bool:
    ns = element.tag[1:].split("}", 1)[0] if element.tag.startswith("{") else None
    return ns is not None and ns != own_ns


def _serialize(element: Any) -> str:
    """Exclusive canonical XML (C14N): only the namespaces the element uses, a stable spelling."""
    from lxml import etree

    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False).decode("utf-8")


# --- Writing ----------------------------------------------------------------------------


def write_response(response: Any) -> bytes:
    """Serialize a response instance as UTF-8 XML with an XML declaration."""
    from lxml import etree

    cls = type(response)
    root = etree.Element(f"{{{cls.NS}}}{cls.ROOT}", nsmap={"tns": cls.NS, "core": CORE_NS})
    write(response, root, cls.ROOT)
    _indent(root, 0)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


_RIV_NAMESPACES = (CORE_NS, CARE_SERVICES_NS, CARE_PLANS_NS)


def _indent(element: Any, level: int) -> None:
    """Pretty-print the contract's own elements; foreign elements are left exactly as kept."""
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return
    element.text = "\n" + "  " * (level + 1)
    for child in children:
        child.tail = "\n" + "  " * (level + 1)
        if child.tag.startswith("{") and child.tag[1:].split("}", 1)[0] in _RIV_NAMESPACES:
            _indent(child, level + 1)
    children[-1].tail = "\n" + "  " * level


def write(obj: RivType, element: Any, where: str) -> None:
    """Append `obj`'s children to `element`, checking what the schema requires."""
    from lxml import etree

    cls = type(obj)
    for child in cls.children():
        value = getattr(obj, child.attr)
        items = value if child.many else ([] if value is None else [value])
        if child.required and not items:
            raise RivWriteError(f"{where}: nothing to write as the required element {child.tag}")
        for n, item in enumerate(items, start=1):
            here = f"{where}/{child.tag}" + (f"[{n}]" if child.many else "")
            sub = etree.SubElement(element, f"{{{cls.NS}}}{child.tag}")
            if child.complex:
                write(item, sub, here)
            else:
                _set_text(sub, child.kind, item, here)
    for xml in getattr(obj, "other", ()) if cls.takes_foreign() else ():
        element.append(_foreign_element(xml, cls.NS, where))


def _set_text(element: Any, kind: str, value: Any, where: str) -> None:
    if kind == "bool":
        if not isinstance(value, bool):
            raise RivWriteError(f"{where}: {value!r} is not a boolean")
        element.text = "true" if value else "false"
        return
    if not isinstance(value, str):
        raise RivWriteError(f"{where}: {value!r} is not text")
    leaf_value(kind, value, where, RivWriteError)
    try:
        element.text = value
    except ValueError:
        raise RivWriteError(f"{where}: the text contains characters XML cannot carry") from None


def _foreign_element(xml: str, own_ns: str, where: str) -> Any:
    try:
        element = safexml.parse(xml)
    except ValueError as exc:
        raise RivWriteError(f"{where}: kept foreign XML is refused ({exc})") from None
    if not _is_foreign(element, own_ns):
        raise RivWriteError(f"{where}: kept foreign XML {element.tag} is not in another namespace")
    return element


# --- Addressing parts by RIV path -------------------------------------------------------

_STEP = re.compile(r"^([A-Za-z]+)(?:\[(\d+)\])?\Z")


def _join(path: str, tag: str, n: int | None) -> str:
    step = tag if n is None else f"{tag}[{n}]"
    return step if path == "." else f"{path}/{step}"


def walk(obj: RivType, path: str = ".") -> Iterator[tuple[str, RivType]]:
    """Every complex part of `obj` (itself first) with its RIV path relative to `obj`."""
    yield path, obj
    for child in type(obj).children():
        if not child.complex:
            continue
        value = getattr(obj, child.attr)
        items = value if child.many else [value]
        for n, item in enumerate(items, start=1):
            if item is not None:
                yield from walk(item, _join(path, child.tag, n if child.many else None))


def leaves(obj: RivType, path: str = ".") -> Iterator[tuple[str, Child, Any]]:
    """Every simple child of `obj` (present or not) with its RIV path."""
    for child in type(obj).children():
        if not child.complex:
            yield _join(path, child.tag, None), child, getattr(obj, child.attr)


def blank(obj: RivType) -> bool:
    """True if no simple value below `obj` is set to non-empty text (foreign XML not counted)."""
    return all(value in (None, "") for part_path, part in walk(obj) for _, _, value in leaves(part, part_path))


def _step(obj: RivType, step: str) -> tuple[Child, int | None]:
    m = _STEP.match(step)
    if not m:
        raise RivWriteError(f"bad RIV path step {step!r}")
    for child in type(obj).children():
        if child.tag == m.group(1):
            return child, int(m.group(2)) if m.group(2) else None
    raise RivWriteError(f"RIV path step {step!r} is not a child of {type(obj).__name__}")


def resolve(obj: RivType, path: str) -> RivType | None:
    """The complex part at `path` (relative to `obj`), or None if it is not there."""
    if path == ".":
        return obj
    current: Any = obj
    for step in path.split("/"):
        child, n = _step(current, step)
        value = getattr(current, child.attr)
        if child.many:
            if n is None or not 1 <= n <= len(value):
                return None
            value = value[n - 1]
        if value is None or not child.complex:
            return None
        current = value
    return current


def ensure(obj: RivType, path: str, value: str = "") -> None:
    """Make the element at `path` present if it is absent: an empty complex part or `value` text."""
    parent_path, _, last = path.rpartition("/")
    parent = resolve(obj, parent_path or ".")
    if parent is None:
        raise RivWriteError(f"RIV path {path!r}: its parent element is not there")
    child, n = _step(parent, last)
    if child.many:
        current = getattr(parent, child.attr)
        if n is None or n != len(current) + 1:
            if n is not None and n <= len(current):
                return
            raise RivWriteError(f"RIV path {path!r}: index out of order")
        current.append(child.kind() if child.complex else value)
        return
    if getattr(parent, child.attr) is None:
        setattr(parent, child.attr, child.kind() if child.complex else value)
