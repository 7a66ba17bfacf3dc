"""Reading nodes back from JSON (private): `node_from_dict` inverts `Node.to_dict`, naming the field
and the format Graph.save writes whenever a record is malformed."""

from dataclasses import MISSING, fields
from typing import Any

from ..core import GraphError, Site, SiteError, positions_from_dict
from ._checks import show
from ._nodes import NODE_TYPES, Node
from ._tensors import tensor_from_json

_DECODERS = {
    "$site": Site.from_dict,
    "$positions": positions_from_dict,
    "$tensor": tensor_from_json,
}


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _DECODERS:
        ((key, inner),) = value.items()
        if not isinstance(inner, dict):
            raise GraphError(f"{key} holds {show(inner)}, not an object")
        return _DECODERS[key](inner)
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def node_from_dict(data: Any) -> Node:
    """Inverts `Node.to_dict`.

    Raises:
      GraphError: not an object, an unknown node kind, unknown or missing fields, or a field of
        the wrong type (the message names it).
    """
    if not isinstance(data, dict):
        raise GraphError(
            f"a node must be a JSON object with a 'kind' and its fields; got {show(data)}."
        )
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in NODE_TYPES:
        raise GraphError(f"Unknown node kind {kind!r}; known kinds: {', '.join(NODE_TYPES)}.")
    cls = NODE_TYPES[kind]
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known) - {"kind"})
    required = [
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    ]
    missing = [name for name in required if name not in data]
    if unknown or missing:
        problem = f"unknown fields {unknown}" if unknown else f"missing fields {missing}"
        raise GraphError(
            f"Cannot build a {kind!r} node: {problem}. A {kind} node has fields {known} "
            f"(required: {required})."
        )
    values = {
        name: _decode_field(kind, name, value) for name, value in data.items() if name != "kind"
    }
    try:
        return cls(**values)
    except TypeError as err:  # a runtime type checker (jaxtyping under pytest) refused a field
        raise GraphError(
            f"Cannot build a {kind!r} node: a field has the wrong type "
            f"({' '.join(str(err).split())[:300]}). A {kind} node has fields {known}."
        ) from None


def _decode_field(kind: str, name: str, value: Any) -> Any:
    """`_decode(value)`, with any failure raised as a `GraphError` naming the field."""
    try:
        return _decode(value)
    except (GraphError, SiteError, TypeError, ValueError, KeyError, AttributeError) as err:
        raise GraphError(
            f"{kind} node: field {name!r} is malformed: {str(err).rstrip('.')}. Expected the field "
            f"as Graph.save writes it ({_FORMATS.get(_tag(value), 'a JSON value')})."
        ) from None


_FORMATS = {
    "$site": '{"$site": {"tower": ..., "layer": ..., "component": ..., "positions": {"kind": ...}}}',
    "$positions": '{"$positions": {"kind": "last"}}',
    "$tensor": '{"$tensor": {"dtype": ..., "shape": [...], "data": "<base64>"}}',
}


def _tag(value: Any) -> str:
    return str(next(iter(value))) if isinstance(value, dict) and len(value) == 1 else ""
