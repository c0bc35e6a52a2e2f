"""The OpenAPI 3.1 document of the JSON API, built in Python from the route table.

`OPERATIONS` says what each `/api` route does: route name → method → `Op`. The document
is built by walking `app.router` (`build_document`), so it describes exactly the routes
this app serves — the local backend's signed PUT (`upload_put`) appears only with local
storage, as it is only routed then. `undocumented(app)` names the `/api` routes without
an entry, and a test keeps it empty: a route added to the table without documentation
fails the suite.

What every answer can be is written once here: error responses list the codes they can
carry (each must be a key of `imagehost.errors.CODES`, the one list), and the ones every
operation shares are added by the builder from what the middlewares do (a bad bearer
credential is refused on every identified route, a cookie-authenticated write can fail
CSRF, a JSON body can be malformed or too large, the database can be down).

Served at `GET /api/openapi.json`; `imagehost/apidocs.py` renders it as `/api/docs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import hdrs, web

from .accounts.identity import SESSION_COOKIE
from .accounts.store import PREFIX as KEY_PREFIX
from .config import Settings
from .errors import CODES
from .typedefs import SETTINGS

OPENAPI_VERSION = "3.1.0"
API_PREFIX = "/api"
JSON = "application/json"
BODY_LIMIT = 1024 * 1024  # the app's client_max_size: JSON bodies above it answer 413

Auth = Literal["public", "user", "login"]
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


# An upload's asked lifetime (images/service.py `parse_expiry`).
EXPIRY: dict[str, Any] = {
    "oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[0-9]{1,9}[smhd]?$"}],
    "examples": ["1h", "7d", 600],
}


# A user's embed settings and default expiry (sharing/service.py `clean_preferences`).
PREFERENCES: dict[str, Schema] = {
    "embed_title": {
        "type": ["string", "null"],
        "maxLength": 200,
        "description": "The preview's title: `{filename}`, `{username}`, `{size}`, `{width}`, `{height}` and "
        "`{date}` are filled in; anything else is shown as written. Null or empty: `{filename}`.",
    },
    "embed_description": {"type": ["string", "null"], "maxLength": 500, "description": "Plain text."},
    "embed_site_name": {"type": ["string", "null"], "maxLength": 100},
    "embed_color": {"type": ["string", "null"], "pattern": "^#[0-9a-fA-F]{6}$", "description": "`#rrggbb`."},
    "default_expiry_seconds": {
        "type": ["integer", "null"],
        "minimum": 1,
        "description": "What the browser uploader picks first and the ShareX file sends (`X-Expires-In`); "
        "within the server's expiry limits. Other uploads are not affected.",
    },
}


@dataclass(frozen=True)
class Param:
    name: str
    schema: Schema
    description: str
    location: Literal["query", "header"] = "query"
    required: bool = False


@dataclass(frozen=True)
class Op:
    """One operation. `responses` are the successful answers (status → Response Object);
    `errors` the error codes this operation itself can answer, by status. The builder
    adds those every operation of its kind shares (see `_shared_errors`)."""

    operation_id: str
    tag: str
    summary: str
    description: str = ""
    auth: Auth = "user"
    identified: bool = True  # the identify middleware runs (not /api/health, not the signed PUT)
    json_body: bool = False  # read with `read_json`: 400 malformed_json, 413 over 1 MiB
    body: dict[str, Any] | None = None
    params: tuple[Param, ...] = ()
    path_params: dict[str, str] = field(default_factory=dict)
    responses: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: dict[int, tuple[str, ...]] = field(default_factory=dict)
    error_schemas: dict[int, str] = field(default_factory=dict)  # status → a schema other than the envelope


# --------------------------------------------------------------------------- schemas


def _schemas(settings: Settings) -> dict[str, Schema]:
    base = settings.public_base_url.rstrip("/")
    types = list(settings.allowed_image_types)
    time = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC, with a `Z`."}
    image_url = {"type": "string", "format": "uri"}
    image: Schema = {
        "type": "object",
        "description": "An image. `public_url` serves the bytes; `deletion_url` deletes the image without "
        "logging in (it carries a per-image secret; a GET only shows a confirmation page).",
        "required": [
            "id",
            "filename",
            "content_type",
            "size_bytes",
            "width",
            "height",
            "public_url",
            "thumbnail_url",
            "thumbnail_width",
            "thumbnail_height",
            "display_url",
            "page_url",
            "animated",
            "expires_at",
            "deletion_url",
            "created_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "Random, URL-safe; at least 64 random bits."},
            "filename": {"type": "string", "description": "The uploader's file name, as display text only."},
            "content_type": {
                "type": "string",
                "enum": types,
                "description": "Sniffed from the bytes, never taken from the client.",
            },
            "size_bytes": {"type": "integer", "minimum": 0},
            "width": {"type": ["integer", "null"], "minimum": 1},
            "height": {"type": ["integer", "null"], "minimum": 1},
            "public_url": {**image_url, "description": "The image itself, served with its verified type."},
            "thumbnail_url": {
                **image_url,
                "description": "A WebP whose longest side is at most 640 px, made before the upload answered "
                "(the image itself for an image stored before the pipeline, until the backfill).",
            },
            "thumbnail_width": {"type": ["integer", "null"], "minimum": 1},
            "thumbnail_height": {"type": ["integer", "null"], "minimum": 1},
            "display_url": {
                **image_url,
                "description": "For detail and share pages: a WebP at most 2048 px when the original is larger "
                "or must be turned upright (made just after the upload answered), else the original.",
            },
            "page_url": {
                **image_url,
                "description": "The image's share page (`/v/<id>`): public to anyone with the link, with the "
                "link-preview tags chat apps read (OpenGraph, oEmbed).",
            },
            "animated": {"type": "boolean", "description": "An animated GIF/WebP (the thumbnail is its first frame)."},
            "expires_at": {
                "oneOf": [time, {"type": "null"}],
                "description": "When the image is deleted (it asked to expire), or null.",
            },
            "deletion_url": {**image_url, "description": "Deletes the image when POSTed to; a GET asks first."},
            "created_at": time,
        },
        "examples": [
            {
                "id": "k2Jx9QbH1VvA3mTq",
                "filename": "screenshot.png",
                "content_type": "image/png",
                "size_bytes": 48213,
                "width": 1280,
                "height": 720,
                "public_url": f"{base}/i/Vb7Qe2kLm0pXz9Rt.png",
                "thumbnail_url": f"{base}/i/Hc4Tn8Wq2Ls6Yd0M.webp",
                "thumbnail_width": 640,
                "thumbnail_height": 360,
                "display_url": f"{base}/i/Vb7Qe2kLm0pXz9Rt.png",
                "page_url": f"{base}/v/k2Jx9QbH1VvA3mTq",
                "animated": False,
                "expires_at": None,
                "deletion_url": f"{base}/d/k2Jx9QbH1VvA3mTq/3sPq0d9Hw7Ue1ZbLr4YcXn5Kj8Ma2Vt6",
                "created_at": "2025-01-31T12:00:00.123456Z",
            }
        ],
    }
    user: Schema = {
        "type": "object",
        "required": ["id", "username", "email", "created_at"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "username": {"type": "string"},
            "email": {"type": "string"},
            "created_at": time,
        },
        "examples": [
            {
                "id": "q8Zt1YmB4xWc",
                "username": "alice",
                "email": "alice@example.com",
                "created_at": "2025-01-31T12:00:00Z",
            }
        ],
    }
    key_properties: dict[str, Schema] = {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "prefix": {"type": "string", "description": "The first characters of the secret, to recognise it."},
        "created_at": time,
        "last_used_at": {**time, "type": ["string", "null"], "description": "Updated at most once a minute."},
    }
    key_example = {
        "id": "Nf3Kq7Lw2Zp1",
        "name": "ShareX on my desktop",
        "prefix": f"{KEY_PREFIX}Ab3dE6gH",
        "created_at": "2025-01-31T12:00:00Z",
        "last_used_at": None,
    }
    error_code: Schema = {
        "type": "string",
        "enum": list(CODES),
        "description": "Stable: clients decide by this, never by the message.",
        "x-enum-descriptions": dict(CODES),
    }
    return {
        "Error": {
            "type": "object",
            "description": "Every error answer: `{error, code, detail}`.",
            "required": ["error", "code", "detail"],
            "additionalProperties": False,
            "properties": {
                "error": {"type": "string", "description": "For people; may change."},
                "code": error_code,
                "detail": {"description": "More about the error (see the code), or null."},
            },
        },
        "Image": image,
        "ImageList": {
            "type": "object",
            "required": ["images", "total", "next_cursor"],
            "additionalProperties": False,
            "properties": {
                "images": {"type": "array", "items": ref("Image"), "description": "Newest first."},
                "total": {"type": "integer", "minimum": 0, "description": "All of the caller's images."},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass as `cursor` for the next page; null on the last page.",
                },
            },
        },
        "User": user,
        **_album_schemas(base, time),
        "Token": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in"],
            "additionalProperties": False,
            "properties": {
                "access_token": {"type": "string", "description": "A JWT: send as `Authorization: Bearer <token>`."},
                "token_type": {"type": "string", "const": "bearer"},
                "expires_in": {"type": "integer", "minimum": 1, "description": "Seconds."},
            },
            "examples": [
                {"access_token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln", "token_type": "bearer", "expires_in": 604800}
            ],
        },
        "ApiKey": {
            "type": "object",
            "required": list(key_properties),
            "additionalProperties": False,
            "properties": key_properties,
            "examples": [key_example],
        },
        "NewApiKey": {
            "type": "object",
            "description": "A new key: the only time its `secret` is shown (only a hash is kept).",
            "required": [*key_properties, "secret"],
            "additionalProperties": False,
            "properties": {
                **key_properties,
                "secret": {"type": "string", "pattern": f"^{KEY_PREFIX}[A-Za-z0-9_-]+$"},
            },
            "examples": [{**key_example, "secret": f"{KEY_PREFIX}Ab3dE6gHj9Kl2Mn5Pq8Rs1Tu4Vw7Xy0Za3bC6dE9fG2h"}],
        },
        "KeyList": {
            "type": "object",
            "required": ["keys"],
            "additionalProperties": False,
            "properties": {"keys": {"type": "array", "items": ref("ApiKey")}},
        },
        "UploadUrl": {
            "type": "object",
            "description": "A presigned PUT: send the bytes to `upload_url` with `headers`, then confirm `r2_key`.",
            "required": ["upload_url", "r2_key", "public_url", "expires_at", "headers"],
            "additionalProperties": False,
            "properties": {
                "upload_url": {"type": "string", "format": "uri"},
                "r2_key": {"type": "string", "pattern": "^pending/"},
                "public_url": {**image_url, "description": "Where the image will be once confirmed."},
                "expires_at": {**time, "description": "The URL stops working then."},
                "headers": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Send exactly these headers with the PUT (the signed Content-Type).",
                },
            },
            "examples": [
                {
                    "upload_url": f"{base}/api/uploads/pending/Xq2W9e.png?ct=image%2Fpng&len=48213&exp=1738325700"
                    "&sig=5c1e…",
                    "r2_key": "pending/Xq2W9e.png",
                    "public_url": f"{base}/i/Vb7Qe2kLm0pXz9Rt.png",
                    "expires_at": "2025-01-31T12:15:00Z",
                    "headers": {"Content-Type": "image/png"},
                }
            ],
        },
        "Health": {
            "type": "object",
            "required": ["status", "database", "storage"],
            "additionalProperties": False,
            "properties": {
                "status": {"const": "ok"},
                "database": {"const": "ok"},
                "storage": {"const": "ok"},
            },
            "examples": [{"status": "ok", "database": "ok", "storage": "ok"}],
        },
        "HealthDown": {
            "type": "object",
            "description": "The health keys with the failing part named, and the error envelope's keys.",
            "required": ["status", "database", "storage", "error", "code", "detail"],
            "additionalProperties": False,
            "properties": {
                "status": {"const": "error"},
                "database": {"enum": ["ok", "unavailable"]},
                "storage": {"enum": ["ok", "unavailable"]},
                "error": {"type": "string"},
                "code": {"const": "unavailable"},
                "detail": {
                    "type": "object",
                    "properties": {
                        "database": {"enum": ["ok", "unavailable"]},
                        "storage": {"enum": ["ok", "unavailable"]},
                    },
                },
            },
            "examples": [
                {
                    "status": "error",
                    "database": "ok",
                    "storage": "unavailable",
                    "error": "storage unavailable",
                    "code": "unavailable",
                    "detail": {"database": "ok", "storage": "unavailable"},
                }
            ],
        },
        "ShareXConfig": {
            "type": "object",
            "description": "A ShareX custom uploader (https://getsharex.com/docs/custom-uploader).",
            "required": [
                "Version",
                "Name",
                "DestinationType",
                "RequestMethod",
                "RequestURL",
                "Headers",
                "Body",
                "FileFormName",
                "URL",
                "ThumbnailURL",
                "DeletionURL",
                "ErrorMessage",
            ],
            "properties": {
                "Version": {"type": "string"},
                "Name": {"type": "string"},
                "DestinationType": {"const": "ImageUploader"},
                "RequestMethod": {"const": "POST"},
                "RequestURL": {"type": "string", "format": "uri"},
                "Headers": {
                    "type": "object",
                    "required": ["Authorization"],
                    "properties": {
                        "Authorization": {"type": "string", "pattern": f"^Bearer {KEY_PREFIX}"},
                        "X-Expires-In": {"type": "string", "pattern": "^[0-9]+$"},
                    },
                },
                "Body": {"const": "MultipartFormData"},
                "FileFormName": {"const": "file"},
                "URL": {"type": "string"},
                "ThumbnailURL": {"type": "string"},
                "DeletionURL": {"type": "string"},
                "ErrorMessage": {"type": "string"},
            },
        },
        "OEmbed": {
            "type": "object",
            "description": "An oEmbed 1.0 `photo` (https://oembed.com): the image a preview shows (the display "
            "size, or the original while there is none) and the owner's embed settings.",
            "required": [
                "version",
                "type",
                "url",
                "width",
                "height",
                "title",
                "author_name",
                "provider_name",
                "provider_url",
            ],
            "additionalProperties": False,
            "properties": {
                "version": {"const": "1.0"},
                "type": {"const": "photo"},
                "url": image_url,
                "width": {"type": ["integer", "null"], "minimum": 1},
                "height": {"type": ["integer", "null"], "minimum": 1},
                "title": {"type": "string", "description": "The owner's title template, filled in."},
                "author_name": {"type": "string", "description": "The owner's username."},
                "provider_name": {"type": "string", "description": "The owner's site name, or this server's."},
                "provider_url": {"type": "string", "format": "uri"},
            },
            "examples": [
                {
                    "version": "1.0",
                    "type": "photo",
                    "url": f"{base}/i/Vb7Qe2kLm0pXz9Rt.png",
                    "width": 1280,
                    "height": 720,
                    "title": "screenshot.png",
                    "author_name": "alice",
                    "provider_name": "imagehost",
                    "provider_url": f"{base}/",
                }
            ],
        },
        "Preferences": {
            "type": "object",
            "description": "Your embed settings (null: the server's default) and default expiry (null: none).",
            "required": list(PREFERENCES),
            "additionalProperties": False,
            "properties": PREFERENCES,
            "examples": [
                {
                    "embed_title": "{filename} by {username}",
                    "embed_description": None,
                    "embed_site_name": "Alice's screenshots",
                    "embed_color": "#ff8800",
                    "default_expiry_seconds": 604800,
                }
            ],
        },
        **_admin_schemas(time),
        "OpenAPIDocument": {
            "type": "object",
            "required": ["openapi", "info", "paths"],
            "properties": {"openapi": {"type": "string", "pattern": r"^3\.1\."}},
        },
    }


def _album_schemas(base: str, time: Schema) -> dict[str, Schema]:
    """The album JSON (albums/service.py `album_json`) and a page of albums."""
    album: Schema = {
        "type": "object",
        "description": "An album: a list of the owner's images, with a page (`page_url`) for anyone with the "
        "link when it is `unlisted` or `public`.",
        "required": [
            "id",
            "title",
            "description",
            "visibility",
            "has_password",
            "image_count",
            "cover_image_id",
            "cover",
            "page_url",
            "created_at",
            "updated_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "Random, URL-safe; at least 64 random bits."},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string", "maxLength": 2000},
            "visibility": {"enum": ["private", "unlisted", "public"]},
            "has_password": {"type": "boolean", "description": "The album's page asks for a password."},
            "image_count": {"type": "integer", "minimum": 0},
            "cover_image_id": {"type": ["string", "null"], "description": "The chosen cover, else the newest image."},
            "cover": {"type": ["string", "null"], "format": "uri", "description": "The cover's thumbnail URL."},
            "page_url": {"type": "string", "format": "uri"},
            "created_at": time,
            "updated_at": time,
        },
        "examples": [
            {
                "id": "Hq3Zk9Lw2Zp1Tx8c",
                "title": "Holiday 2025",
                "description": "",
                "visibility": "unlisted",
                "has_password": False,
                "image_count": 12,
                "cover_image_id": "Vb7Qe2kLm0pXz9Rt",
                "cover": f"{base}/i/Vb7Qe2kLm0pXz9Rt.t.webp",
                "page_url": f"{base}/a/Hq3Zk9Lw2Zp1Tx8c",
                "created_at": "2025-01-31T12:00:00Z",
                "updated_at": "2025-01-31T12:00:00Z",
            }
        ],
    }
    return {
        "Album": album,
        "AlbumList": {
            "type": "object",
            "required": ["albums", "total", "next_cursor"],
            "additionalProperties": False,
            "properties": {
                "albums": {"type": "array", "items": ref("Album"), "description": "Newest first."},
                "total": {"type": "integer", "minimum": 0, "description": "All of the caller's albums."},
                "next_cursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page."},
            },
        },
        "Deleted": {
            "type": "object",
            "required": ["deleted"],
            "additionalProperties": False,
            "properties": {"deleted": {"type": "integer", "minimum": 1}},
        },
    }


def _album_operations() -> dict[tuple[str, str], Op]:
    album_id = {"id": "The album's id."}
    paging = (
        Param("limit", {"type": "integer", "minimum": 1, "default": 50}, "Albums per page, 1 to 100."),
        Param("cursor", {"type": "string"}, "The `next_cursor` of the previous page."),
    )
    fields: dict[str, Schema] = {
        "title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "One line."},
        "description": {"type": "string", "maxLength": 2000},
        "visibility": {
            "enum": ["private", "unlisted", "public"],
            "description": "`private`: only you; `unlisted`: anyone with the link; `public`: the same, and "
            "search engines may index the page.",
        },
    }
    ids: Schema = {
        "type": "object",
        "required": ["image_ids"],
        "additionalProperties": False,
        "properties": {"image_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 500}},
    }
    return {
        ("api.albums", "GET"): Op(
            "listAlbums",
            "Albums",
            "List your albums",
            "Newest first, in pages (as the images).",
            params=paging,
            responses={200: _json(ref("AlbumList"), "One page of albums.")},
            errors={400: ("invalid_cursor", "invalid_limit")},
        ),
        ("api.albums", "POST"): Op(
            "createAlbum",
            "Albums",
            "Create an album",
            "`visibility` defaults to `private`. Titles are 1–200 characters on one line, descriptions up to "
            "2000; they are display text, escaped wherever they are shown.",
            json_body=True,
            body=_json_body(
                {"type": "object", "required": ["title"], "additionalProperties": False, "properties": fields},
                {"title": "Holiday 2025", "description": "", "visibility": "unlisted"},
            ),
            responses={
                201: _json(
                    ref("Album"),
                    "The new album.",
                    headers={
                        "Location": {
                            "description": "The album's API URL.",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    },
                )
            },
            errors={422: ("invalid_input",)},
        ),
        ("api.album", "GET"): Op(
            "getAlbum",
            "Albums",
            "One of your albums",
            "Another user's album answers 404, as an unknown one does.",
            path_params=album_id,
            responses={200: _json(ref("Album"), "The album.")},
            errors={404: ("not_found",)},
        ),
        ("api.album", "PATCH"): Op(
            "updateAlbum",
            "Albums",
            "Change an album",
            "Any of the fields. `password` (1–1024 characters) makes the album's page ask for it; `null` removes "
            "it; it is stored hashed. `cover_image_id` picks an image of the album as its cover (`null`: the "
            "newest). Every field is checked before anything changes.",
            path_params=album_id,
            json_body=True,
            body=_json_body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        **fields,
                        "password": {"type": ["string", "null"], "minLength": 1, "maxLength": 1024},
                        "cover_image_id": {"type": ["string", "null"]},
                    },
                },
                {"visibility": "public", "password": None},
            ),
            responses={200: _json(ref("Album"), "The changed album.")},
            errors={404: ("not_found",), 422: ("invalid_input",)},
        ),
        ("api.album", "DELETE"): Op(
            "deleteAlbum",
            "Albums",
            "Delete an album",
            "The album goes; its images stay.",
            path_params=album_id,
            responses={204: {"description": "Deleted."}},
            errors={404: ("not_found",)},
        ),
        ("api.album_images", "PUT"): Op(
            "addAlbumImages",
            "Albums",
            "Add images to an album",
            "Idempotent (an image already in the album stays once). All or nothing: if any id is not one of "
            "your images, 404 (`detail.image_ids` lists them) and nothing is added. An image may be in "
            "several albums.",
            path_params=album_id,
            json_body=True,
            body=_json_body(ids, {"image_ids": ["Vb7Qe2kLm0pXz9Rt"]}),
            responses={200: _json(ref("Album"), "The album after the change.")},
            errors={404: ("not_found",), 422: ("invalid_input",)},
        ),
        ("api.album_image", "DELETE"): Op(
            "removeAlbumImage",
            "Albums",
            "Take an image out of an album",
            "The image itself stays. 404 when the album is not yours or the image is not in it.",
            path_params={**album_id, "image_id": "The image's id."},
            responses={204: {"description": "Removed from the album."}},
            errors={404: ("not_found",)},
        ),
        ("api.album_download", "GET"): Op(
            "downloadAlbum",
            "Albums",
            "Download an album as a ZIP",
            "The same archive as `GET /api/export`, holding only this album's live images: the originals "
            "under `images/` and `metadata.json`, uncompressed, with the exact length sent as Content-Length. "
            "Your own albums only (404 for anyone else's, whatever its visibility). If an image disappears "
            "while the archive is written, the connection is closed short of that length.",
            path_params=album_id,
            responses={200: _zip_archive("imagehost-album-<title>-<YYYY-MM-DD>.zip")},
            errors={404: ("not_found",)},
        ),
        ("api.images_delete", "POST"): Op(
            "deleteImages",
            "Images",
            "Delete several of your images",
            "All or nothing: if any id is not one of your images, 404 (`detail.image_ids` lists them) and every "
            "image stays. The images disappear at once; their bytes are deleted now or by the sweep.",
            json_body=True,
            body=_json_body(ids, {"image_ids": ["Vb7Qe2kLm0pXz9Rt", "Xq2W9eLm0pXz9Rt1"]}),
            responses={200: _json(ref("Deleted"), "How many images were deleted.")},
            errors={404: ("not_found",), 422: ("invalid_input",)},
        ),
    }


def _json(schema: Schema, description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def _zip_archive(filename: str) -> dict[str, Any]:
    """A streamed ZIP download (the export and an album's download): its name, and its
    exact length announced before the first byte."""
    return {
        "description": "The ZIP archive.",
        "headers": {
            "Content-Disposition": {
                "description": f'attachment; filename="{filename}"',
                "required": True,
                "schema": {"type": "string"},
            },
            "Content-Length": {
                "description": "The archive's exact length.",
                "required": True,
                "schema": {"type": "integer", "minimum": 22},
            },
        },
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }


def _json_body(schema: Schema, example: Any) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema, "example": example}}}


# --------------------------------------------------------------------------- admin (issue 12)


def _admin_schemas(time: Schema) -> dict[str, Schema]:
    nullable_time = {**time, "type": ["string", "null"]}
    cursor = {"type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last page."}
    user_properties: dict[str, Schema] = {
        "id": {"type": "string"},
        "username": {"type": "string"},
        "email": {"type": "string"},
        "role": {"enum": ["admin", "user"]},
        "images": {"type": "integer", "minimum": 0},
        "bytes_used": {"type": "integer", "minimum": 0, "description": "Including uploads in progress."},
        "quota_bytes": {"type": "integer", "minimum": 0, "description": "The quota that applies; 0 = unlimited."},
        "quota_is_default": {"type": "boolean", "description": "The quota follows DEFAULT_USER_QUOTA_MB."},
        "created_at": time,
        "last_login_at": nullable_time,
        "status": {"enum": ["active", "disabled"]},
        "disabled_at": nullable_time,
        "two_factor": {"type": "boolean"},
    }
    invite_properties: dict[str, Schema] = {
        "id": {"type": "string"},
        "created_by": {"type": ["string", "null"], "description": "The admin's name (null once deleted)."},
        "created_at": time,
        "expires_at": time,
        "max_uses": {"type": "integer", "minimum": 1},
        "uses": {"type": "integer", "minimum": 0},
        "revoked_at": nullable_time,
        "state": {"enum": ["active", "revoked", "expired", "used_up"]},
    }
    return {
        "AdminStats": {
            "type": "object",
            "required": [
                "users",
                "disabled_users",
                "images",
                "bytes_stored",
                "uploads_last_day",
                "uploads_last_week",
            ],
            "additionalProperties": False,
            "properties": {
                "users": {"type": "integer", "minimum": 0},
                "disabled_users": {"type": "integer", "minimum": 0},
                "images": {"type": "integer", "minimum": 0},
                "bytes_stored": {"type": "integer", "minimum": 0, "description": "Originals of active images."},
                "uploads_last_day": {"type": "integer", "minimum": 0},
                "uploads_last_week": {"type": "integer", "minimum": 0},
            },
        },
        "AdminUser": {
            "type": "object",
            "required": list(user_properties),
            "additionalProperties": False,
            "properties": user_properties,
        },
        "AdminUserList": {
            "type": "object",
            "required": ["users", "next_cursor"],
            "additionalProperties": False,
            "properties": {"users": {"type": "array", "items": ref("AdminUser")}, "next_cursor": cursor},
        },
        "Invite": {
            "type": "object",
            "required": list(invite_properties),
            "additionalProperties": False,
            "properties": invite_properties,
        },
        "NewInvite": {
            "type": "object",
            "description": "A new invitation: the only time its `url` is shown (only a hash is kept).",
            "required": [*invite_properties, "url"],
            "additionalProperties": False,
            "properties": {**invite_properties, "url": {"type": "string", "format": "uri"}},
        },
        "InviteList": {
            "type": "object",
            "required": ["invites"],
            "additionalProperties": False,
            "properties": {"invites": {"type": "array", "items": ref("Invite"), "description": "Newest first."}},
        },
        "ResetLink": {
            "type": "object",
            "description": "A password-reset link: one use, valid until `expires_at`; shown only now.",
            "required": ["url", "expires_at"],
            "additionalProperties": False,
            "properties": {"url": {"type": "string", "format": "uri"}, "expires_at": time},
        },
        "AuditList": {
            "type": "object",
            "required": ["entries", "next_cursor"],
            "additionalProperties": False,
            "properties": {
                "entries": {
                    "type": "array",
                    "description": "Newest first.",
                    "items": {
                        "type": "object",
                        "required": ["id", "at", "actor", "action", "target", "detail"],
                        "additionalProperties": False,
                        "properties": {
                            "id": {"type": "string"},
                            "at": time,
                            "actor": {"type": "string", "description": "The admin's name, or `(command line)`."},
                            "action": {
                                "enum": [
                                    "role",
                                    "disable",
                                    "enable",
                                    "delete",
                                    "quota",
                                    "reset_link",
                                    "invite",
                                    "invite_revoke",
                                    "totp_off",
                                ]
                            },
                            "target": {"type": ["string", "null"], "description": "The account's name, if any."},
                            "detail": {"type": "object"},
                        },
                    },
                },
                "next_cursor": cursor,
            },
        },
    }


def _admin_operations() -> dict[tuple[str, str], Op]:
    """The admin API. Every operation answers 404 `not_found` to anyone but an admin
    (anonymous included), and 403 `api_key_not_allowed` to an admin's API key."""
    user_id = {"user_id": "The account's id."}
    paging = (
        Param("limit", {"type": "integer", "minimum": 1, "default": 50}, "Per page, 1 to 100 (clipped)."),
        Param("cursor", {"type": "string"}, "The `next_cursor` of the previous page."),
    )
    who = " Admins only: 404 for anyone else."

    def op(op_id: str, summary: str, description: str, **kw: Any) -> Op:
        errors = dict(kw.pop("errors", {}))
        errors[403] = (*errors.get(403, ()), "api_key_not_allowed")
        errors[404] = ("not_found",)
        return Op(op_id, "Admin", summary, description + who, auth="login", errors=errors, **kw)

    return {
        ("api.admin_stats", "GET"): op(
            "adminStats",
            "Instance figures",
            "Users, images, bytes stored, uploads in the last day and week.",
            responses={200: _json(ref("AdminStats"), "The figures.")},
        ),
        ("api.admin_users", "GET"): op(
            "adminListUsers",
            "List users",
            "Newest first, in pages (keyset); `q` keeps those whose name or email contains it, ignoring case.",
            params=(Param("q", {"type": "string", "maxLength": 100}, "Search in names and emails."), *paging),
            responses={200: _json(ref("AdminUserList"), "One page of users.")},
            errors={400: ("invalid_cursor", "invalid_limit"), 422: ("invalid_input",)},
        ),
        ("api.admin_user", "GET"): op(
            "adminGetUser",
            "One user",
            "",
            path_params=user_id,
            responses={200: _json(ref("AdminUser"), "The account.")},
        ),
        ("api.admin_user", "PATCH"): op(
            "adminUpdateUser",
            "Change a user's role, status or quota",
            "Any of `role` (`admin`/`user`), `disabled` (a disabled account cannot sign in; its sessions, "
            "tokens and API keys are refused at their next request; its images stay served) and `quota_bytes` "
            "(0 = unlimited, null = the instance default). The last enabled admin cannot be demoted or "
            "disabled (409 `last_admin`). Each change is recorded in the audit trail.",
            json_body=True,
            path_params=user_id,
            body=_json_body(
                {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": False,
                    "properties": {
                        "role": {"enum": ["admin", "user"]},
                        "disabled": {"type": "boolean"},
                        "quota_bytes": {"type": ["integer", "null"], "minimum": 0},
                    },
                },
                {"quota_bytes": 5 * 1024 * 1024 * 1024},
            ),
            responses={200: _json(ref("AdminUser"), "The account as it is now.")},
            errors={409: ("last_admin",), 422: ("invalid_input",)},
        ),
        ("api.admin_user", "DELETE"): op(
            "adminDeleteUser",
            "Delete a user",
            "The account with all its images (rows first, then the objects; the sweep finishes what storage "
            "refuses), API keys and sessions. The last enabled admin cannot be deleted (409 `last_admin`).",
            path_params=user_id,
            responses={204: {"description": "Deleted."}},
            errors={409: ("last_admin",)},
        ),
        ("api.admin_reset_link", "POST"): op(
            "adminResetLink",
            "Make a password-reset link",
            "One use, valid for an hour; only its hash is stored, and it voids the user's older links. Setting "
            "a password through it ends the user's sessions and tokens (API keys stay).",
            path_params=user_id,
            responses={201: _json(ref("ResetLink"), "The link (shown once).")},
        ),
        ("api.admin_user_totp", "DELETE"): op(
            "adminDisableTotp",
            "Turn off a user's two-factor sign-in",
            "For someone who lost both their authenticator and their recovery codes: the secret is cleared and "
            "the recovery codes deleted, as when they turn it off themselves, after which the password alone "
            "signs in. Like their own turning off, it does not end their sessions or tokens. 409 `conflict` "
            "when two-factor sign-in is not on (nothing changes). Recorded in the audit trail (`totp_off`).",
            path_params=user_id,
            responses={200: _json(ref("AdminUser"), "The account as it is now (`two_factor` false).")},
            errors={409: ("conflict",)},
        ),
        ("api.admin_invites", "GET"): op(
            "adminListInvites",
            "List invitations",
            "With how many times each was used and its state.",
            responses={200: _json(ref("InviteList"), "The invitations.")},
        ),
        ("api.admin_invites", "POST"): op(
            "adminCreateInvite",
            "Create an invitation link",
            "`expires_in`: seconds, or a number with `m`, `h` or `d` (default `7d`; 5 minutes to a year); "
            "`max_uses`: 1 to 1000 (default 1). Registering through the link spends one use, atomically.",
            json_body=True,
            body=_json_body(
                {
                    "type": "object",
                    "properties": {
                        "expires_in": {
                            "oneOf": [
                                {"type": "integer", "minimum": 300},
                                {"type": "string", "pattern": "^[0-9]{1,9}[smhd]?$"},
                            ]
                        },
                        "max_uses": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                },
                {"expires_in": "7d", "max_uses": 1},
            ),
            responses={201: _json(ref("NewInvite"), "The invitation, with its link (shown once).")},
            errors={422: ("invalid_input",)},
        ),
        ("api.admin_invite", "DELETE"): op(
            "adminRevokeInvite",
            "Revoke an invitation",
            "The link stops working at once; unknown or already revoked invitations answer 404.",
            path_params={"invite_id": "The invitation's id."},
            responses={204: {"description": "Revoked."}},
        ),
        ("api.admin_audit", "GET"): op(
            "adminAudit",
            "The audit trail",
            "Admin actions (role, disable, enable, delete, quota, reset link, invitations, two-factor turned "
            "off): who, whom, what, "
            "when; newest first, in pages.",
            params=paging,
            responses={200: _json(ref("AuditList"), "One page of entries.")},
            errors={400: ("invalid_cursor", "invalid_limit")},
        ),
    }


# --------------------------------------------------------------------------- operations


def _operations(settings: Settings) -> dict[tuple[str, str], Op]:
    """What each /api route does: (route name, method) → Op."""
    max_bytes = settings.max_upload_bytes
    types = list(settings.allowed_image_types)
    image_id = {"id": "The image's id."}
    binary: Schema = {"type": "string", "format": "binary"}
    location = {
        "Location": {"description": "The image's API URL.", "required": True, "schema": {"type": "string"}},
    }
    listing = Op(
        "listImages",
        "Images",
        "List your images",
        "Newest first, in pages: pass the previous page's `next_cursor` as `cursor`.",
        params=(
            Param(
                "limit",
                {"type": "integer", "minimum": 1, "default": 50},
                "Images per page, 1 to 100 (larger values are clipped to 100).",
            ),
            Param("cursor", {"type": "string"}, "The `next_cursor` of the previous page."),
            Param(
                "q",
                {"type": "string", "maxLength": 200},
                "Search the filenames: each word must start a word of the name, case-insensitively (`scr 2024` "
                "finds `Screenshot_2024-01-05.png`); `total` then counts the matches.",
            ),
            Param("album", {"type": "string"}, "Only the images in this album of yours (another's: 404)."),
        ),
        responses={200: _json(ref("ImageList"), "One page of images.")},
        errors={400: ("invalid_cursor", "invalid_limit"), 404: ("not_found",), 422: ("invalid_input",)},
    )
    ops: dict[tuple[str, str], Op] = {
        **_album_operations(),
        # The system
        ("health", "GET"): Op(
            "health",
            "System",
            "Health check",
            "The database (`SELECT 1`) and the storage, each under a short timeout. For load balancers and "
            "monitors; failure reasons go to the server's log, never to the client.",
            auth="public",
            identified=False,
            responses={200: _json(ref("Health"), "Everything is up.")},
            errors={503: ("unavailable",)},
            error_schemas={503: "HealthDown"},  # the health keys beside the envelope's
        ),
        ("api.openapi", "GET"): Op(
            "openapi",
            "System",
            "This document",
            "The OpenAPI 3.1 description of every /api route this server serves.",
            auth="public",
            responses={200: _json(ref("OpenAPIDocument"), "The OpenAPI document.")},
        ),
        ("api_docs", "GET"): Op(
            "apiDocs",
            "System",
            "This reference, as a web page",
            "The same document rendered as HTML.",
            auth="public",
            responses={200: {"description": "The reference page.", "content": {"text/html": {}}}},
        ),
        # Accounts
        ("api.register", "POST"): Op(
            "register",
            "Accounts",
            "Create an account",
            "Usernames are 3–50 ASCII letters, digits, `_`, `.` or `-`; passwords 8–1024 characters. Answers "
            "403 `registration_closed` when the server does not take new accounts. Registration by invitation "
            "(`REGISTRATION_MODE=invite`) needs `invite`, the token of the link (`?invite=` of the register "
            "page): 403 `invite_required` without one, `invite_invalid` with `detail.reason` for a bad one. The "
            "first account of an empty server may always register and is its admin. Every wrong field is named "
            "in `detail` (`field`, and `errors` when there are several).",
            auth="public",
            json_body=True,
            body=_json_body(
                {
                    "type": "object",
                    "required": ["username", "email", "password"],
                    "properties": {
                        "username": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{3,50}$"},
                        "email": {"type": "string", "format": "email", "maxLength": 254},
                        "password": {"type": "string", "minLength": 8, "maxLength": 1024},
                        "invite": {"type": "string", "description": "The invitation link's token."},
                    },
                },
                {"username": "alice", "email": "alice@example.com", "password": "correct horse battery"},
            ),
            responses={201: _json(ref("User"), "The new account.")},
            errors={
                403: ("registration_closed", "invite_required", "invite_invalid"),
                409: ("field_taken",),
                422: ("invalid_input",),
            },
        ),
        ("api.login", "POST"): Op(
            "login",
            "Accounts",
            "Log in: get an access token",
            "Trades a username and password for a JWT (valid `expires_in` seconds; logging out of the web "
            "pages does not revoke it). Failed attempts are throttled per username and per address: 429 "
            "`rate_limited` with `Retry-After`. For an account with two-factor sign-in, after the right "
            "password: 401 `otp_required` without `otp`, 401 `otp_invalid` for a wrong, stale or used code "
            "(counted as a failed login). A wrong password answers `invalid_credentials` whether or not `otp` "
            "was sent.",
            auth="public",
            json_body=True,
            body=_json_body(
                {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {"type": "string"},
                        "password": {"type": "string"},
                        "otp": {
                            "type": "string",
                            "description": "For an account with two-factor sign-in: the code from the "
                            "authenticator app, or a recovery code.",
                        },
                    },
                },
                {"username": "alice", "password": "correct horse battery"},
            ),
            responses={200: _json(ref("Token"), "A bearer token.")},
            errors={401: ("otp_required", "otp_invalid"), 422: ("invalid_input",), 429: ("rate_limited",)},
        ),
        ("api.me", "GET"): Op(
            "me",
            "Accounts",
            "Who am I",
            responses={200: _json(ref("User"), "The caller's account.")},
        ),
        # API keys
        ("api.keys", "GET"): Op(
            "listKeys",
            "API keys",
            "List your API keys",
            "Secrets are never shown again: only their prefix.",
            responses={200: _json(ref("KeyList"), "The caller's keys that are not revoked.")},
        ),
        ("api.keys", "POST"): Op(
            "createKey",
            "API keys",
            "Create an API key",
            "Needs a login (a JWT from /api/auth/login, or the session): an API key cannot create keys (403 "
            "`api_key_not_allowed`), so a leaked key cannot mint a successor that outlives its revocation.",
            auth="login",
            json_body=True,
            body=_json_body(
                {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100}},
                },
                {"name": "ShareX on my desktop"},
            ),
            responses={201: _json(ref("NewApiKey"), "The key, with its secret (shown once).")},
            errors={403: ("api_key_not_allowed",), 422: ("invalid_input",)},
        ),
        ("api.key", "DELETE"): Op(
            "revokeKey",
            "API keys",
            "Revoke an API key",
            "Unknown, already revoked and someone else's keys all answer 404.",
            path_params={"key_id": "The key's id."},
            responses={204: {"description": "Revoked."}},
            errors={404: ("not_found",)},
        ),
        # Images
        ("api.upload", "POST"): Op(
            "upload",
            "Images",
            "Upload an image (screenshot tools)",
            "A multipart form with the image in the field `file` (other fields are ignored). Streamed to "
            "storage, never buffered; the type comes from the bytes. Answers the image JSON, or only its "
            "public URL as `text/plain` with `?format=text` or `Accept: text/plain` (for the clipboard). "
            f"Files larger than {max_bytes} bytes are refused with 413 as soon as that is clear.",
            params=(
                Param(
                    "format",
                    {"type": "string", "enum": ["json", "text"], "default": "json"},
                    "`text`: answer the public URL alone as `text/plain` (as `Accept: text/plain` does).",
                ),
                Param("expires_in", EXPIRY, "Delete the image after this long (see `X-Expires-In`)."),
                Param(
                    "X-Expires-In",
                    EXPIRY,
                    "Delete the image after this long: seconds, or a number with `s`, `m`, `h` or `d` "
                    "(`10m`, `1h`, `7d`), within the server's limits. A ShareX config can send it.",
                    location="header",
                ),
            ),
            body={
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {**binary, "description": "The image: " + ", ".join(types)},
                                "expires_in": {**EXPIRY, "description": "As the query parameter (before `file`)."},
                            },
                        },
                        "encoding": {"file": {"contentType": ", ".join([*types, "application/octet-stream"])}},
                    }
                },
            },
            responses={
                201: {
                    "description": "Stored: the image JSON, or its URL as text.",
                    "headers": location,
                    "content": {
                        JSON: {"schema": ref("Image")},
                        "text/plain": {
                            "schema": {"type": "string"},
                            "example": f"{settings.public_base_url}/i/Vb7Qe2kLm0pXz9Rt.png\n",
                        },
                    },
                }
            },
            errors={
                400: ("malformed_multipart", "no_file"),
                404: ("upload_expired",),
                413: ("file_too_large", "quota_exceeded"),
                415: ("unsupported_type",),
                422: ("invalid_input", "invalid_image", "too_many_pixels"),
                503: ("storage_unavailable", "unavailable"),
            },
        ),
        ("api.upload_url", "POST"): Op(
            "createUploadUrl",
            "Images",
            "Start a presigned upload",
            "Reserves the quota and signs a PUT for exactly this type and length, valid for a few minutes. "
            "PUT the bytes to `upload_url` with `headers`, then call /api/images/confirm with `r2_key`.",
            json_body=True,
            body=_json_body(
                {
                    "type": "object",
                    "required": ["content_type", "size_bytes"],
                    "properties": {
                        "filename": {"type": "string", "description": "Display text only."},
                        "content_type": {"type": "string", "enum": types},
                        "size_bytes": {"type": "integer", "minimum": 1, "maximum": max_bytes},
                        "expires_in": {**EXPIRY, "description": "Delete the image after this long."},
                    },
                },
                {"filename": "screenshot.png", "content_type": "image/png", "size_bytes": 48213},
            ),
            responses={201: _json(ref("UploadUrl"), "The signed upload URL.")},
            errors={
                413: ("file_too_large", "quota_exceeded"),
                415: ("unsupported_type",),
                422: ("invalid_input",),
                503: ("storage_unavailable",),
            },
        ),
        ("api.confirm", "POST"): Op(
            "confirmUpload",
            "Images",
            "Confirm a presigned upload",
            "The server checks the stored bytes (size, type, structure) against what was declared, then makes "
            "them the image. Idempotent: 201 the first time, 200 with the same image after. Before the PUT "
            "it answers 422 `nothing_uploaded` and the upload stays open; refused bytes are deleted.",
            json_body=True,
            body=_json_body(
                {"type": "object", "required": ["r2_key"], "properties": {"r2_key": {"type": "string"}}},
                {"r2_key": "pending/Xq2W9e.png"},
            ),
            responses={
                201: _json(ref("Image"), "Verified and stored: the new image."),
                200: _json(ref("Image"), "Already confirmed: the same image."),
            },
            errors={
                404: ("not_found", "upload_expired"),
                409: ("upload_changed",),
                413: ("file_too_large",),
                415: ("type_mismatch", "unsupported_type"),
                422: ("size_mismatch", "nothing_uploaded", "invalid_image", "too_many_pixels"),
                503: ("storage_unavailable", "unavailable"),
            },
        ),
        ("api.images", "GET"): listing,
        ("api.images_noslash", "GET"): replace(
            listing, operation_id="listImagesNoSlash", summary="List your images (the same, without the slash)"
        ),
        ("api.image", "GET"): Op(
            "getImage",
            "Images",
            "One of your images",
            "Another user's image answers 404, as an unknown one does.",
            path_params=image_id,
            responses={200: _json(ref("Image"), "The image.")},
            errors={404: ("not_found",)},
        ),
        ("api.image", "DELETE"): Op(
            "deleteImage",
            "Images",
            "Delete one of your images",
            "The image disappears at once; its bytes are deleted now or by the sweep. Another user's image "
            "answers 404 and stays.",
            path_params=image_id,
            responses={204: {"description": "Deleted."}},
            errors={404: ("not_found",)},
        ),
        ("api.export", "GET"): Op(
            "exportImages",
            "Images",
            "Download all your images as a ZIP",
            "Every live image of the caller (not expired ones, never another user's), streamed as one "
            "uncompressed ZIP: the originals under `images/` (names made safe and unique: `name.png`, "
            "`name (2).png`) and `metadata.json` (each image's JSON as this API answers it, plus its `path` "
            "in the archive). The length is known before the first byte and sent as Content-Length. If an "
            "image disappears while the archive is written, the connection is closed short of that length: "
            "a failed download, never a wrong archive; try again.",
            responses={200: _zip_archive("imagehost-export-<username>-<YYYY-MM-DD>.zip")},
        ),
        ("upload_put", "PUT"): Op(
            "putSignedUpload",
            "Images",
            "Send the bytes of a presigned upload (local storage only)",
            "What `upload_url` points at when the server keeps the images in a local folder (with S3/R2 the "
            "URL is the bucket's own and this route does not exist). No login: the signature in the query "
            "is the credential. Enforces what S3 would — signature, expiry, the signed type and exact length "
            "— and is single use.",
            auth="public",
            identified=False,
            path_params={"name": "The key's name under `pending/` (from `r2_key`)."},
            params=(
                Param("ct", {"type": "string"}, "The signed content type.", required=True),
                Param("len", {"type": "string", "pattern": "^[0-9]+$"}, "The signed length.", required=True),
                Param("exp", {"type": "string", "pattern": "^[0-9]+$"}, "Expiry, Unix time.", required=True),
                Param("sig", {"type": "string"}, "The signature.", required=True),
            ),
            body={"required": True, "content": {t: {"schema": binary} for t in types}},
            responses={200: {"description": "Stored; now confirm the upload."}},
            errors={
                400: ("length_required", "length_mismatch"),
                403: ("upload_url_invalid",),
                404: ("not_found",),
                409: ("upload_url_used",),
                413: ("file_too_large",),
                415: ("type_mismatch",),
                503: ("storage_unavailable", "database_unavailable"),
            },
        ),
        # Sharing
        ("api.oembed", "GET"): Op(
            "oembed",
            "Sharing",
            "oEmbed for a share page",
            "What chat apps and other consumers ask for a link's preview (found through the share page's "
            "`<link rel=alternate type=application/json+oembed>`). Public. A `url` that is not a share page of "
            "this server, or the share page of an unknown, deleted or expired image, answers 404. Only "
            "`format=json` is served: any other answers 400 `unsupported_format` (the oEmbed specification "
            "suggests 501; a 5xx would read as a server failure). "
            "`maxwidth`/`maxheight` are not applied (the answer describes the one preview image).",
            auth="public",
            params=(
                Param("url", {"type": "string"}, "A share page URL (`page_url` of an image).", required=True),
                Param("format", {"type": "string"}, "`json` (the default); anything else answers 400."),
                Param("maxwidth", {"type": "string"}, "Accepted and ignored."),
                Param("maxheight", {"type": "string"}, "Accepted and ignored."),
            ),
            responses={200: _json(ref("OEmbed"), "The preview.")},
            errors={400: ("unsupported_format",), 404: ("not_found",), 422: ("invalid_input",)},
        ),
        ("api.preferences", "GET"): Op(
            "getPreferences",
            "Sharing",
            "Your embed settings and default expiry",
            responses={200: _json(ref("Preferences"), "The settings.")},
        ),
        ("api.preferences", "PATCH"): Op(
            "updatePreferences",
            "Sharing",
            "Change your embed settings and default expiry",
            "Send the fields to change (null or an empty string: back to the default). Every field is checked "
            "first: an unknown field or an invalid value answers 422 naming it in `detail.field`, and nothing "
            "is changed.",
            json_body=True,
            body=_json_body(
                {"type": "object", "additionalProperties": False, "properties": PREFERENCES},
                {"embed_title": "{filename} ({width}×{height})", "embed_color": "#ff8800"},
            ),
            responses={200: _json(ref("Preferences"), "The settings after the change.")},
            errors={422: ("invalid_input",)},
        ),
        # Integrations
        ("api.sharex", "GET"): Op(
            "sharexConfig",
            "Integrations",
            "Download a ShareX uploader file",
            "Creates a new API key named “ShareX” each time (only key hashes are stored, so an existing key "
            "cannot be put in a file) and answers the `.sxcu` file holding it, as an attachment. With a "
            "default expiry in your sharing settings, the file sends it as `X-Expires-In`.",
            params=(
                Param(
                    "link",
                    {"type": "string", "enum": ["direct", "page"], "default": "direct"},
                    "What ShareX copies after an upload: `direct`, the image (`{json:public_url}`), or `page`, "
                    "its share page (`{json:page_url}`), whose link previews show the image in chat apps.",
                ),
            ),
            errors={422: ("invalid_input",)},
            responses={
                200: _json(
                    ref("ShareXConfig"),
                    "The .sxcu file.",
                    headers={
                        "Content-Disposition": {
                            "description": 'attachment; filename="imagehost-<host>.sxcu"',
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    },
                )
            },
        ),
    }
    ops.update(_account_operations())
    ops.update(_admin_operations())
    return ops


def _account_operations() -> dict[tuple[str, str], Op]:
    """Account settings (accounts/account_api.py): each needs a login, not an API key."""
    password = {"type": "string", "minLength": 1, "maxLength": 1024}
    code = {
        "type": "string",
        "maxLength": 64,
        "description": "The six digits from the authenticator app, or a recovery code (spaces and dashes ignored).",
    }
    account: Schema = {
        "type": "object",
        "required": ["user", "two_factor"],
        "additionalProperties": False,
        "properties": {
            "user": ref("User"),
            "two_factor": {
                "type": "object",
                "required": ["enabled", "pending", "recovery_codes_left"],
                "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean", "description": "Signing in asks for a code."},
                    "pending": {"type": "boolean", "description": "Enrolment started, not confirmed yet."},
                    "recovery_codes_left": {"type": "integer", "minimum": 0, "maximum": 10},
                },
            },
        },
    }
    confirm_errors: dict[int, tuple[str, ...]] = {
        403: ("api_key_not_allowed", "wrong_password"),
        422: ("invalid_input",),
        429: ("rate_limited",),
    }

    def body(required: list[str], props: dict[str, Schema], example: dict[str, str]) -> dict[str, Any]:
        return _json_body(
            {"type": "object", "required": required, "properties": props},
            example,
        )

    return {
        ("api.account", "GET"): Op(
            "getAccount",
            "Account",
            "Your account and its two-factor state",
            auth="login",
            responses={200: _json(account, "The caller's account.")},
            errors={403: ("api_key_not_allowed",)},
        ),
        ("api.account_password", "POST"): Op(
            "changePassword",
            "Account",
            "Change your password",
            "Needs the current password (403 `wrong_password`, counted as a failed login). Every other session "
            "and every JWT ends, the caller's JWT included (a session caller's cookie is re-issued and goes "
            "on); API keys keep working.",
            auth="login",
            json_body=True,
            body=body(
                ["current_password", "new_password"],
                {"current_password": password, "new_password": {"type": "string", "minLength": 8, "maxLength": 1024}},
                {"current_password": "correct horse battery", "new_password": "a longer better passphrase"},
            ),
            responses={
                200: _json(
                    {
                        "type": "object",
                        "required": ["sessions_ended", "api_keys_kept", "message"],
                        "additionalProperties": False,
                        "properties": {
                            "sessions_ended": {"type": "boolean", "const": True},
                            "api_keys_kept": {"type": "boolean", "const": True},
                            "message": {"type": "string"},
                        },
                    },
                    "Changed.",
                )
            },
            errors=confirm_errors,
        ),
        ("api.account_email", "POST"): Op(
            "changeEmail",
            "Account",
            "Change your email address",
            "Needs the password. An address another account has (ignoring case) answers 409 `field_taken`.",
            auth="login",
            json_body=True,
            body=body(
                ["email", "password"],
                {"email": {"type": "string", "format": "email", "maxLength": 254}, "password": password},
                {"email": "alice@example.org", "password": "correct horse battery"},
            ),
            responses={200: _json(account, "The account, with its new address.")},
            errors={**confirm_errors, 409: ("field_taken",)},
        ),
        ("api.account_delete", "POST"): Op(
            "deleteAccount",
            "Account",
            "Delete your account",
            "Needs the password. The account, its images (rows, then objects), keys and sessions all go. The "
            "instance's last admin cannot delete itself (409 `last_admin`): make another admin first.",
            auth="login",
            json_body=True,
            body=body(["password"], {"password": password}, {"password": "correct horse battery"}),
            responses={204: {"description": "Deleted."}},
            errors={**confirm_errors, 409: ("last_admin",)},
        ),
        ("api.account_totp", "POST"): Op(
            "startTotp",
            "Account",
            "Start two-factor enrolment",
            "Needs the password. A new TOTP secret (SHA-1, 6 digits, 30 s), stored but not on until confirmed; "
            "starting again replaces it. 409 `conflict` when two-factor sign-in is already on.",
            auth="login",
            json_body=True,
            body=body(["password"], {"password": password}, {"password": "correct horse battery"}),
            responses={
                201: _json(
                    {
                        "type": "object",
                        "required": ["secret", "otpauth_uri"],
                        "additionalProperties": False,
                        "properties": {
                            "secret": {"type": "string", "pattern": "^[A-Z2-7]{32}$"},
                            "otpauth_uri": {"type": "string", "pattern": "^otpauth://totp/"},
                        },
                    },
                    "The secret, to type or scan into an authenticator app.",
                )
            },
            errors={**confirm_errors, 409: ("conflict",)},
        ),
        ("api.account_totp_confirm", "POST"): Op(
            "confirmTotp",
            "Account",
            "Turn two-factor sign-in on",
            "A code from the app proves it holds the secret. Answers ten one-use recovery codes, shown only "
            "here (only their hashes are kept). 403 `otp_invalid` for a wrong code; 409 `conflict` when no "
            "enrolment is pending.",
            auth="login",
            json_body=True,
            body=body(["code"], {"code": code}, {"code": "123456"}),
            responses={
                200: _json(
                    {
                        "type": "object",
                        "required": ["recovery_codes"],
                        "additionalProperties": False,
                        "properties": {
                            "recovery_codes": {"type": "array", "items": {"type": "string"}, "minItems": 10}
                        },
                    },
                    "On.",
                )
            },
            errors={403: ("api_key_not_allowed", "otp_invalid"), 409: ("conflict",)},
        ),
        ("api.account_totp_disable", "POST"): Op(
            "disableTotp",
            "Account",
            "Turn two-factor sign-in off",
            "With a code from the app or a recovery code (used up either way). A wrong code answers 403 "
            "`otp_invalid` and counts as a failed login (429 `rate_limited` once throttled).",
            auth="login",
            json_body=True,
            body=body(["code"], {"code": code}, {"code": "123456"}),
            responses={204: {"description": "Off."}},
            errors={403: ("api_key_not_allowed", "otp_invalid"), 409: ("conflict",), 429: ("rate_limited",)},
        ),
    }


def _shared_errors(op: Op, method: str) -> dict[int, tuple[str, ...]]:
    """The errors an operation answers because of what runs around every handler."""
    shared: dict[int, tuple[str, ...]] = {}
    if op.identified:
        # A malformed, unknown or revoked bearer credential is refused on every identified
        # route, even one that needs no login, and so is any credential of a disabled
        # account; looking it up needs the database.
        shared[401] = (
            ("invalid_credentials", "account_disabled")
            if op.auth == "public"
            else ("authentication_required", "invalid_credentials", "account_disabled")
        )
        shared[503] = ("database_unavailable",)
        if method not in ("GET", "HEAD"):
            shared[403] = ("csrf_failed",)
    if op.json_body:
        shared[400] = ("malformed_json",)
        shared[413] = ("file_too_large",)
    shared[500] = ("internal_error",)
    return shared


def error_codes(op: Op, method: str) -> dict[int, list[str]]:
    """Every error code the operation can answer, by status (sorted)."""
    merged: dict[int, list[str]] = {}
    for source in (_shared_errors(op, method), op.errors):
        for status, codes in source.items():
            for code in codes:
                if code not in CODES:
                    raise ValueError(f"{op.operation_id}: error code {code!r} is not in imagehost.errors.CODES")
                merged.setdefault(status, [])
                if code not in merged[status]:
                    merged[status].append(code)
    return dict(sorted(merged.items()))


def _error_response(status: int, codes: list[str], schema_name: str | None = None) -> dict[str, Any]:
    media: dict[str, Any]
    if schema_name is not None:
        media = {"schema": ref(schema_name)}
    else:
        media = {
            "schema": {"allOf": [ref("Error"), {"properties": {"code": {"enum": codes}}}]},
            "example": {"error": CODES[codes[0]], "code": codes[0], "detail": None},
        }
    resp: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: " + ", ".join(f"`{c}`" for c in codes),
        "content": {JSON: media},
        "x-error-codes": codes,  # for the reference page
    }
    if status == 401:
        resp["headers"] = {
            "WWW-Authenticate": {"description": "`Bearer`.", "required": True, "schema": {"type": "string"}}
        }
    if status == 429:
        resp["headers"] = {
            "Retry-After": {
                "description": "Seconds until the next attempt can succeed.",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return resp


def _security(op: Op, method: str) -> list[dict[str, list[str]]]:
    if op.auth == "public":
        return []
    session: dict[str, list[str]] = {"session": []}
    if method not in ("GET", "HEAD"):
        session["csrf"] = []
    if op.auth == "login":
        return [{"jwt": []}, session]
    return [{"apiKey": []}, {"jwt": []}, session]


def _operation(op: Op, method: str, path: str) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": text}
        for name, text in _path_params(path, op).items()
    ]
    params += [
        {"name": p.name, "in": p.location, "required": p.required, "schema": p.schema, "description": p.description}
        for p in op.params
    ]
    responses: dict[str, Any] = {str(s): r for s, r in sorted(op.responses.items())}
    for status, codes in error_codes(op, method).items():
        responses[str(status)] = _error_response(status, codes, op.error_schemas.get(status))
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": [op.tag],
        "summary": op.summary,
    }
    if op.description:
        out["description"] = op.description
    out["security"] = _security(op, method)
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = op.body
    out["responses"] = dict(sorted(responses.items()))
    return out


def _path_params(path: str, op: Op) -> dict[str, str]:
    names = re.findall(r"\{([^}:]+)(?::[^}]*)?\}", path)
    return {name: op.path_params.get(name, "") for name in names}


# --------------------------------------------------------------------------- the document


def api_routes(app: web.Application) -> list[tuple[str, str, str]]:
    """(route name, method, path template) of every /api route the app serves; HEAD is
    left out (aiohttp answers it wherever GET is routed, with GET's headers)."""
    found: list[tuple[str, str, str]] = []
    for resource in app.router.resources():
        path = resource.canonical
        if not (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
            continue
        for route in resource:
            if route.method == hdrs.METH_HEAD:
                continue
            found.append((resource.name or "", route.method, path))
    return found


def undocumented(app: web.Application) -> list[str]:
    """The /api routes with no entry in the operations table ("METHOD path (name)")."""
    ops = _operations(app[SETTINGS])
    return [f"{m} {p} ({n or 'unnamed'})" for n, m, p in api_routes(app) if (n, m) not in ops]


def documented_route_names(settings: Settings) -> set[str]:
    return {name for name, _method in _operations(settings)}


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the /api routes this app serves."""
    settings = app[SETTINGS]
    ops = _operations(settings)
    paths: dict[str, dict[str, Any]] = {}
    for name, method, path in api_routes(app):
        op = ops.get((name, method))
        if op is None:
            continue  # `undocumented(app)` names it; a test fails on it
        paths.setdefault(path, {})[method.lower()] = _operation(op, method, path)
    tags = list(dict.fromkeys(op.tag for op in ops.values()))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "imagehost API",
            "version": "1",
            "description": (
                "The JSON API of this imagehost server: accounts, API keys, uploads (streamed, or presigned "
                "+ confirm), listing and deleting images.\n\n"
                "Authenticate with `Authorization: Bearer <credential>`, where the credential is an API key "
                f"(`{KEY_PREFIX}…`, from the API keys page) or a JWT from `POST /api/auth/login`. The browser's "
                "session cookie works too; then every request that changes something must also send the "
                "`X-CSRF-Token` header.\n\n"
                'Every error is `{"error": message, "code": code, "detail": …}` with the HTTP status; '
                "decide by `code` (the list is the `Error` schema's). HEAD is accepted wherever GET is."
            ),
        },
        "servers": [{"url": settings.public_base_url, "description": "This server"}],
        "tags": [{"name": t} for t in tags],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _schemas(settings),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": f"API key ({KEY_PREFIX}…)",
                    "description": "A personal API key: `Authorization: Bearer ih_…`. Cannot create API keys.",
                },
                "jwt": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from `POST /api/auth/login`: `Authorization: Bearer <token>`.",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "The web pages' session cookie (set by logging in on the site).",
                },
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRF-Token",
                    "description": "With the session cookie, on every request that changes something: the "
                    'token from the page\'s `<meta name="csrf-token">`.',
                },
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    """GET /api/openapi.json."""
    return web.json_response(build_document(request.app), headers={"Cache-Control": "no-cache"})
