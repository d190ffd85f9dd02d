"""The municipal XML serialisation of canonical documents, and the XSD that defines it.

One codec serves every flow: the XML mirrors the canonical model field by field, in
declaration order, in the namespace `urn:carebridge:municipal:1`:

- the root element is the document kind (`<decision>`, ...);
- a nested model is an element holding its fields;
- a list is a wrapper element holding one item element per entry (`<insatser><insats>`),
  the item name comes from the field's `xml_item`;
- a choice of models (e.g. granted volume as hours or visits) is an element holding exactly
  one child named by the chosen variant's `kind` (`<granted_volume><hours>...`);
- absent optional values and false/empty defaults are left out.

The XSD in `mappings/schemas/<kind>.xsd` is generated from the same models
(`python -m mappings.municipal_xml --write`) and a test keeps the committed files in step.
Reading validates against the XSD first, then against the model.
"""

from __future__ import annotations

import datetime as dt
import sys
import types
import typing
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel

from mappings import safexml
from mappings.models import DOCUMENT_KINDS, model_for

NS = "urn:carebridge:municipal:1"
_XS = "http://www.w3.org/2001/XMLSchema"


class MunicipalXmlError(ValueError):
    """A municipal XML document that does not match its schema or model."""


# --- Looking at a model field's type ---------------------------------------------------


def _strip(annotation: Any) -> tuple[Any, bool]:
    """Remove Annotated and Optional wrappers: (inner type, optional?)."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) == 1:
                annotation = args[0]
            else:
                return tuple(_strip(a)[0] for a in args), optional
        else:
            return annotation, optional


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _variant_name(model: type[BaseModel]) -> str:
    """The `kind` tag of a model (its document kind, or its variant name in a choice)."""
    return model.model_fields["kind"].default


def _fields(model: type[BaseModel]):
    """(name, info, inner type, item element name) for the fields written as elements.

    The `kind` tag (a Literal) is not an element: the root or variant element's name carries it.
    Worked out once per model class.
    """
    found = _FIELDS.get(model)
    if found is None:
        found = _FIELDS[model] = tuple(_field_rows(model))
    return found


_FIELDS: dict[type, tuple] = {}


def _field_rows(model: type[BaseModel]):
    for name, info in model.model_fields.items():
        tp, _ = _strip(info.annotation)
        if name == "kind" and typing.get_origin(tp) is Literal:
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        yield name, info, tp, extra.get("xml_item", "item")


# --- Writing --------------------------------------------------------------------------


def to_xml(document: BaseModel) -> bytes:
    """Serialise a canonical document (any flow) as municipal XML."""
    from lxml import etree

    root = etree.Element(f"{{{NS}}}{document.kind}", nsmap={None: NS})  # type: ignore[attr-defined]
    _write_fields(root, document)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _write_fields(parent, model: BaseModel) -> None:
    for name, info, tp, item in _fields(type(model)):
        value = getattr(model, name)
        if value is None or (value is False and info.default is False) or value == []:
            continue
        _write_value(parent, name, tp, value, item)


def _write_value(parent, name: str, tp: Any, value: Any, item: str) -> None:
    from lxml import etree

    el = etree.SubElement(parent, f"{{{NS}}}{name}")
    if isinstance(value, list):
        item_tp = _strip(typing.get_args(tp)[0])[0]
        for entry in value:
            _write_value(el, item, item_tp, entry, "item")
    elif isinstance(tp, tuple):  # a choice of models
        variant = etree.SubElement(el, f"{{{NS}}}{value.kind}")
        _write_fields(variant, value)
    elif isinstance(value, BaseModel):
        _write_fields(el, value)
    else:
        el.text = _scalar_text(value)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return str(value)


# --- Reading --------------------------------------------------------------------------


def from_xml(data: bytes | str) -> BaseModel:
    """Parse municipal XML (any flow) into its canonical model; MunicipalXmlError if invalid."""
    return from_element(safexml.parse(data))


def from_element(root) -> BaseModel:
    """Read an already (safely) parsed municipal XML root element into its canonical model."""
    qname = root.tag if isinstance(root.tag, str) else ""
    if not qname.startswith(f"{{{NS}}}"):
        raise MunicipalXmlError(f"root element {qname!r} is not in the municipal namespace {NS}")
    kind = qname.split("}", 1)[1]
    if kind not in DOCUMENT_KINDS:
        raise MunicipalXmlError(f"unknown municipal document <{kind}>")
    schema = _schema(kind)
    if not schema.validate(root):
        err = schema.error_log.last_error
        raise MunicipalXmlError(f"line {err.line}: {err.message}")
    model = model_for(kind)
    return model.model_validate({"kind": kind, **_read_fields(root, model)})


def _read_fields(el, model: type[BaseModel]) -> dict[str, Any]:
    children = {}
    for c in el:
        tag = c.tag  # (lxml makes a new string on every access: read it once)
        if isinstance(tag, str):
            children[tag.split("}", 1)[1]] = c
    out: dict[str, Any] = {}
    for name, read in _plan(model):
        c = children.get(name)
        if c is not None:
            out[name] = read(c)
    return out


def _read_value(el, tp: Any) -> Any:
    return _reader(tp)(el)


_PLANS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _plan(model: type[BaseModel]) -> tuple[tuple[str, Any], ...]:
    """(field name, reader of its element) for the fields of a model, worked out once."""
    found = _PLANS.get(model)
    if found is None:
        found = _PLANS[model] = tuple((name, _reader(tp)) for name, _info, tp, _item in _fields(model))
    return found


def _reader(tp: Any):
    """How an element holding a value of type `tp` is read (decided once per field, not per element)."""
    if typing.get_origin(tp) is list:
        item = _reader(_item_type(tp))
        return lambda el: [item(c) for c in el if isinstance(c.tag, str)]
    if isinstance(tp, tuple):
        def choice(el) -> dict[str, Any]:
            chosen = next(c for c in el if isinstance(c.tag, str))
            variant = chosen.tag.split("}", 1)[1]
            model = next(m for m in tp if _variant_name(m) == variant)
            return {"kind": variant, **_read_fields(chosen, model)}
        return choice
    if _is_model(tp):
        return lambda el: _read_fields(el, tp)
    return _text


def _text(el) -> str:
    return el.text or ""


_ITEM_TYPES: dict[Any, Any] = {}


def _item_type(tp: Any) -> Any:
    """The (stripped) item type of a `list[...]` field type, worked out once per type."""
    try:
        return _ITEM_TYPES[tp]
    except KeyError:
        found = _ITEM_TYPES[tp] = _strip(typing.get_args(tp)[0])[0]
        return found
    except TypeError:  # an unhashable annotation
        return _strip(typing.get_args(tp)[0])[0]


# --- The XSD --------------------------------------------------------------------------

_SCALARS = {str: "xs:string", bool: "xs:boolean", int: "xs:integer", float: "xs:decimal", dt.date: "xs:date", dt.datetime: "xs:dateTime", dt.time: "xs:time"}


def generate_xsd(kind: str) -> str:
    """The XSD of a document kind, generated from its canonical model."""
    model = model_for(kind)
    types_: dict[str, str] = {}
    _complex_type(model, types_)
    body = "\n".join(types_.values())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!-- carebridge municipal XML: {kind}. Generated from mappings/models by mappings/municipal_xml.py; do not edit. -->\n"
        f'<xs:schema xmlns:xs="{_XS}" xmlns:cb="{NS}" targetNamespace="{NS}" elementFormDefault="qualified">\n'
        f'  <xs:element name="{kind}" type="cb:{model.__name__}"/>\n'
        f"{body}"
        "</xs:schema>\n"
    )


def _type_ref(tp: Any, types_: dict[str, str]) -> str:
    if _is_model(tp):
        _complex_type(tp, types_)
        return f"cb:{tp.__name__}"
    if typing.get_origin(tp) is Literal:
        name = "Enum_" + "_".join(str(v) for v in typing.get_args(tp))
        values = "".join(f'<xs:enumeration value="{v}"/>' for v in typing.get_args(tp))
        types_.setdefault(name, f'  <xs:simpleType name="{name}"><xs:restriction base="xs:string">{values}</xs:restriction></xs:simpleType>\n')
        return f"cb:{name}"
    return _SCALARS[tp]


def _complex_type(model: type[BaseModel], types_: dict[str, str]) -> None:
    if model.__name__ in types_:
        return
    types_[model.__name__] = ""  # reserve the slot (keeps output order stable)
    lines = [f'  <xs:complexType name="{model.__name__}">', "    <xs:sequence>"]
    for name, info, tp, item in _fields(model):
        optional = not info.is_required()
        occurs = ' minOccurs="0"' if optional else ""
        if typing.get_origin(tp) is list:
            item_ref = _type_ref(_strip(typing.get_args(tp)[0])[0], types_)
            min_items = 0 if optional else 1
            lines.append(
                f'      <xs:element name="{name}"{occurs}><xs:complexType><xs:sequence>'
                f'<xs:element name="{item}" type="{item_ref}" minOccurs="{max(min_items, 1)}" maxOccurs="unbounded"/>'
                "</xs:sequence></xs:complexType></xs:element>"
            )
        elif isinstance(tp, tuple):
            choices = "".join(f'<xs:element name="{_variant_name(m)}" type="{_type_ref(m, types_)}"/>' for m in tp)
            lines.append(f'      <xs:element name="{name}"{occurs}><xs:complexType><xs:choice>{choices}</xs:choice></xs:complexType></xs:element>')
        else:
            doc = info.description
            annotation = f"<xs:annotation><xs:documentation>{doc}</xs:documentation></xs:annotation>" if doc else ""
            close = f">{annotation}</xs:element>" if annotation else "/>"
            lines.append(f'      <xs:element name="{name}" type="{_type_ref(tp, types_)}"{occurs}{close}')
    lines += ["    </xs:sequence>", "  </xs:complexType>"]
    types_[model.__name__] = "\n".join(lines) + "\n"


def schema_text(kind: str) -> str:
    """The committed XSD of a document kind."""
    return resources.files("mappings").joinpath("schemas", f"{kind}.xsd").read_text("utf-8")


@cache
def _schema(kind: str):
    from lxml import etree

    return etree.XMLSchema(etree.fromstring(schema_text(kind).encode("utf-8")))


if __name__ == "__main__":  # python -m mappings.municipal_xml --write
    from pathlib import Path

    out_dir = Path(__file__).parent / "schemas"
    out_dir.mkdir(exist_ok=True)
    for kind in DOCUMENT_KINDS:
        text = generate_xsd(kind)
        if "--write" in sys.argv:
            (out_dir / f"{kind}.xsd").write_text(text, "utf-8")
            print(f"wrote {out_dir / f'{kind}.xsd'}")
        else:
            print(text)
