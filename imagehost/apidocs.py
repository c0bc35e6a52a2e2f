"""`GET /api/docs`: the API reference as a page, rendered on the server from the OpenAPI
document (`imagehost/openapi.py`) — the page and the document cannot disagree."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from markupsafe import Markup, escape

from .errors import CODES
from .openapi import build_document
from .web.context import render

_METHOD_ORDER = {"get": 0, "post": 1, "put": 2, "patch": 3, "delete": 4}
_SCHEME_LABELS = {"apiKey": "API key", "jwt": "JWT", "session": "session cookie", "csrf": "X-CSRF-Token"}
_SCHEMA_PREFIX = "#/components/schemas/"


def text(value: str) -> Markup:
    """Plain text with `code` spans, safe for the page (everything else is escaped)."""
    parts = re.split(r"`([^`]*)`", value)
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if i % 2 else escape(part) for i, part in enumerate(parts)
    )


def schema_type(schema: dict[str, Any]) -> dict[str, Any]:
    """A short description of a schema's type: `{"text": ..., "ref": schema name or None}`."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(_SCHEMA_PREFIX)
        return {"text": name, "ref": name}
    if "allOf" in schema:
        for part in schema["allOf"]:
            if "$ref" in part:
                return schema_type(part)
    if "const" in schema:
        return {"text": json.dumps(schema["const"]), "ref": None}
    if "enum" in schema:
        return {"text": "one of " + ", ".join(json.dumps(v) for v in schema["enum"]), "ref": None}
    kind = schema.get("type", "any")
    if kind == "array":
        item = schema_type(schema.get("items", {}))
        return {"text": "array of " + item["text"], "ref": item["ref"]}
    label = " | ".join(kind) if isinstance(kind, list) else str(kind)
    if schema.get("format"):
        label += f" ({schema['format']})"
    return {"text": label, "ref": None}


def _limits(schema: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("pattern", "matches"),
        ("default", "default"),
    ):
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    return ", ".join(parts)


def fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The properties of an object schema, as table rows."""
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        rows.append(
            {
                "name": name,
                "type": schema_type(prop),
                "required": name in required,
                "description": text(prop.get("description", "")),
                "limits": _limits(prop),
            }
        )
    return rows


def _auth(security: list[dict[str, list[str]]]) -> str:
    if not security:
        return "none"
    options = [" + ".join(_SCHEME_LABELS.get(name, name) for name in requirement) for requirement in security]
    return ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]


def _example(media: dict[str, Any], schemas: dict[str, Any]) -> str | None:
    if "example" in media:
        value = media["example"]
    else:
        schema = media.get("schema", {})
        target = schemas.get(schema.get("$ref", "").removeprefix(_SCHEMA_PREFIX), {})
        examples = target.get("examples") or schema.get("examples")
        if not examples:
            return None
        value = examples[0]
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def _body(body: dict[str, Any] | None, schemas: dict[str, Any]) -> dict[str, Any] | None:
    if body is None:
        return None
    content = body.get("content", {})
    first: dict[str, Any] = next(iter(content.values()), {})
    return {
        "content_types": list(content),
        "fields": fields(first.get("schema", {})),
        "type": schema_type(first.get("schema", {})),
        "example": _example(first, schemas),
    }


def _responses(responses: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for status, resp in responses.items():
        content = resp.get("content", {})
        rows.append(
            {
                "status": status,
                "ok": status.startswith("2"),
                "description": text(resp.get("description", "")),
                "codes": resp.get("x-error-codes", []),
                "title": resp.get("description", "").split(":", 1)[0],
                "types": [
                    {"media": media, "type": schema_type(m["schema"]) if "schema" in m else None}
                    for media, m in content.items()
                ],
                "headers": list(resp.get("headers", {})),
                "example": _example(next(iter(content.values())), schemas)
                if status.startswith("2") and content
                else None,
            }
        )
    return rows


def _order(op: dict[str, Any]) -> tuple[str, int]:
    return str(op["path"]), _METHOD_ORDER.get(str(op["method"]).lower(), 9)


def reference(doc: dict[str, Any]) -> dict[str, Any]:
    """What the page shows, taken from the document: operations by tag, the auth schemes,
    the schemas, and every error code with the statuses it comes with."""
    schemas = doc["components"]["schemas"]
    by_tag: dict[str, list[dict[str, Any]]] = {t["name"]: [] for t in doc.get("tags", [])}
    statuses: dict[str, set[int]] = {code: set() for code in CODES}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, resp in op["responses"].items():
                for code in resp.get("x-error-codes", []):
                    statuses[code].add(int(status))
            by_tag.setdefault(op["tags"][0], []).append(
                {
                    "id": op["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": text(op.get("description", "")),
                    "auth": _auth(op.get("security", [])),
                    "params": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": schema_type(p.get("schema", {})),
                            "description": text(p.get("description", "")),
                            "limits": _limits(p.get("schema", {})),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "body": _body(op.get("requestBody"), schemas),
                    "responses": _responses(op["responses"], schemas),
                }
            )
    tags: list[dict[str, Any]] = [
        {
            "name": name,
            "id": "tag-" + name.lower().replace(" ", "-"),
            "operations": sorted(ops, key=_order),
        }
        for name, ops in by_tag.items()
        if ops
    ]
    return {
        "title": doc["info"]["title"],
        "intro": [text(p) for p in doc["info"]["description"].split("\n\n")],
        "tags": tags,
        "schemes": [
            {
                "name": name,
                "label": _SCHEME_LABELS.get(name, name),
                **scheme,
                "description": text(scheme["description"]),
            }
            for name, scheme in doc["components"]["securitySchemes"].items()
        ],
        "schemas": [
            {"name": name, "description": text(s.get("description", "")), "fields": fields(s), "type": schema_type(s)}
            for name, s in schemas.items()
        ],
        "codes": [
            {"code": code, "meaning": text(meaning), "statuses": sorted(statuses[code])}
            for code, meaning in CODES.items()
        ],
    }


async def api_docs(request: web.Request) -> web.Response:
    """GET /api/docs."""
    return await render(request, "api_docs.html", {"ref": reference(build_document(request.app))})
