"""The route table: every URL of the program, grouped by feature, each with a name.

Code and templates build URLs from these names (`url(request, name)` in handlers,
`url('name')` in templates, `env.url(name)` for absolute URLs in JSON and files).
"""

from __future__ import annotations

import re

from aiohttp import hdrs, web

from . import apidocs, health, metrics, openapi
from .accounts import account_api, account_pages
from .accounts import api as accounts_api
from .accounts import pages as accounts_pages
from .admin import api as admin_api
from .admin import pages as admin_pages
from .albums import api as albums_api
from .albums import pages as albums_pages
from .images import api as images_api
from .images import files as images_files
from .images import pages as images_pages
from .integrations import api as integrations_api
from .integrations import pages as integrations_pages
from .sharing import api as sharing_api
from .sharing import pages as sharing_pages
from .typedefs import Handler
from .web import pwa
from .web.assets import static_handler

# Handlers for the routes a storage backend may ask the app to serve (its APP_ROUTES).
STORAGE_HANDLERS: dict[str, tuple[str, Handler]] = {
    "image_file": (hdrs.METH_GET, images_files.serve_image),
    "upload_put": (hdrs.METH_PUT, images_api.local_put),
}


def setup_routes(app: web.Application, storage_routes: dict[str, str]) -> None:
    def add(name: str, path: str, **methods: Handler) -> None:
        resource = app.router.add_resource(path, name=name)
        for method, handler in methods.items():
            resource.add_route(method, handler)
            if method == hdrs.METH_GET:
                resource.add_route(hdrs.METH_HEAD, handler)

    # The system
    add("health", "/api/health", GET=health.health)
    add("static", "/static/{name:.+}", GET=static_handler)

    # The installable app: manifest, service worker (at the root: its scope is the site),
    # and the share target (taken by the service worker; this route only when it is not)
    add("manifest", "/manifest.webmanifest", GET=pwa.manifest)
    add("service_worker", "/sw.js", GET=pwa.service_worker)
    add("share_target", "/share", POST=pwa.share_target)

    # Accounts: pages
    add("home", "/", GET=accounts_pages.login_get)
    add("login", "/login", GET=accounts_pages.login_get, POST=accounts_pages.login_post)
    add("login_otp", "/login/otp", GET=accounts_pages.login_otp_get, POST=accounts_pages.login_otp_post)
    add("logout", "/logout", POST=accounts_pages.logout)
    add("register", "/register", GET=accounts_pages.register_get, POST=accounts_pages.register_post)
    add("keys", "/keys", GET=accounts_pages.keys_get, POST=accounts_pages.keys_post)
    add("key_revoke", "/keys/{key_id}/revoke", POST=accounts_pages.keys_revoke)
    add("reset", "/reset/{token}", GET=accounts_pages.reset_get, POST=accounts_pages.reset_post)

    # Account settings: pages (account_pages.py)
    add("account", "/account", GET=account_pages.account_get)
    add("account_password", "/account/password", POST=account_pages.password_post)
    add("account_email", "/account/email", POST=account_pages.email_post)
    add("account_delete", "/account/delete", POST=account_pages.delete_post)
    add("account_totp", "/account/totp", POST=account_pages.totp_start_post)
    add("account_totp_confirm", "/account/totp/confirm", POST=account_pages.totp_confirm_post)
    add("account_totp_disable", "/account/totp/disable", POST=account_pages.totp_disable_post)

    # Accounts: JSON
    add("api.register", "/api/auth/register", POST=accounts_api.register)
    add("api.login", "/api/auth/login", POST=accounts_api.login)
    add("api.me", "/api/auth/me", GET=accounts_api.me)
    add("api.keys", "/api/keys", GET=accounts_api.list_keys, POST=accounts_api.create_key)
    add("api.key", "/api/keys/{key_id}", DELETE=accounts_api.delete_key)
    add("api.account", "/api/account", GET=account_api.get_account)
    add("api.account_password", "/api/account/password", POST=account_api.change_password)
    add("api.account_email", "/api/account/email", POST=account_api.change_email)
    add("api.account_delete", "/api/account/delete", POST=account_api.delete_account)
    add("api.account_totp", "/api/account/totp", POST=account_api.start_totp)
    add("api.account_totp_confirm", "/api/account/totp/confirm", POST=account_api.confirm_totp)
    add("api.account_totp_disable", "/api/account/totp/disable", POST=account_api.disable_totp)

    # Images: pages
    add("gallery", "/gallery", GET=images_pages.gallery)
    add("image", "/images/{id}", GET=images_pages.image_detail)
    add("image_delete", "/images/{id}/delete", POST=images_pages.delete_from_page)
    add("deletion", "/d/{id}/{token}", GET=images_pages.deletion_page, POST=images_pages.deletion_post)

    # Images: JSON
    add("api.upload", "/api/upload", POST=images_api.upload)
    add("api.upload_url", "/api/images/upload-url", POST=images_api.upload_url)
    add("api.confirm", "/api/images/confirm", POST=images_api.confirm)
    add("api.images_delete", "/api/images/delete", POST=images_api.delete_images)
    add("api.images", "/api/images/", GET=images_api.list_images)
    add("api.images_noslash", "/api/images", GET=images_api.list_images)
    add("api.image", "/api/images/{id}", GET=images_api.get_image, DELETE=images_api.delete_image)
    add("api.export", "/api/export", GET=images_api.export_all)

    # Images: what the storage backend needs the app to serve (the local folder's bytes
    # at /i/<key> and its signed PUTs; nothing for a bucket)
    for name, path in storage_routes.items():
        method, handler = STORAGE_HANDLERS[name]
        add(name, path, **{method: handler})

    # Admin: pages (404 for anyone but an admin)
    add("admin", "/admin", GET=admin_pages.overview)
    add("admin_users", "/admin/users", GET=admin_pages.users)
    add("admin_user", "/admin/users/{user_id}", GET=admin_pages.user)
    add("admin_user_role", "/admin/users/{user_id}/role", POST=admin_pages.user_role)
    add("admin_user_status", "/admin/users/{user_id}/status", POST=admin_pages.user_status)
    add("admin_user_quota", "/admin/users/{user_id}/quota", POST=admin_pages.user_quota)
    add("admin_user_reset", "/admin/users/{user_id}/reset-link", POST=admin_pages.user_reset_link)
    add("admin_user_totp", "/admin/users/{user_id}/totp-off", POST=admin_pages.user_totp_off)
    add("admin_user_delete", "/admin/users/{user_id}/delete", POST=admin_pages.user_delete)
    add("admin_invites", "/admin/invites", POST=admin_pages.invite_create)
    add("admin_invite_revoke", "/admin/invites/{invite_id}/revoke", POST=admin_pages.invite_revoke)

    # Admin: JSON (404 for anyone but an admin)
    add("api.admin_stats", "/api/admin/stats", GET=admin_api.stats)
    add("api.admin_users", "/api/admin/users", GET=admin_api.list_users)
    add(
        "api.admin_user",
        "/api/admin/users/{user_id}",
        GET=admin_api.get_user,
        PATCH=admin_api.update_user,
        DELETE=admin_api.delete_user,
    )
    add("api.admin_reset_link", "/api/admin/users/{user_id}/reset-link", POST=admin_api.reset_link)
    add("api.admin_user_totp", "/api/admin/users/{user_id}/totp", DELETE=admin_api.disable_totp)
    add("api.admin_invites", "/api/admin/invites", GET=admin_api.list_invites, POST=admin_api.create_invite)
    add("api.admin_invite", "/api/admin/invites/{invite_id}", DELETE=admin_api.revoke_invite)
    add("api.admin_audit", "/api/admin/audit", GET=admin_api.audit)

    # Albums: the page (a password form posts back to it) and the JSON
    add("albums", "/albums", GET=albums_pages.albums_list)
    add("album_page", "/a/{id}", GET=albums_pages.album_page, POST=albums_pages.album_unlock)
    add("album_settings", "/a/{id}/settings", POST=albums_pages.album_settings)
    add("album_delete", "/a/{id}/delete", POST=albums_pages.album_delete)
    add("api.albums", "/api/albums", GET=albums_api.list_albums, POST=albums_api.create_album)
    add(
        "api.album",
        "/api/albums/{id}",
        GET=albums_api.get_album,
        PATCH=albums_api.update_album,
        DELETE=albums_api.delete_album,
    )
    add("api.album_images", "/api/albums/{id}/images", PUT=albums_api.add_images)
    add("api.album_image", "/api/albums/{id}/images/{image_id}", DELETE=albums_api.remove_image)
    add("api.album_download", "/api/albums/{id}/download", GET=albums_api.download_album)

    # Integrations
    add("integrations", "/integrations", GET=integrations_pages.integrations)
    add("flameshot_script", "/integrations/flameshot.sh", GET=integrations_pages.flameshot_download)
    add("flameshot_key", "/integrations/flameshot-key", POST=integrations_pages.flameshot_key)
    add("api.sharex", "/api/sharex.sxcu", GET=integrations_api.sharex_download)

    # Sharing: the public share page, its oEmbed, and the embed settings
    add("share", "/v/{id}", GET=sharing_pages.share_page)
    add("api.oembed", "/api/oembed", GET=sharing_api.oembed)
    add("account_sharing", "/account/sharing", GET=sharing_pages.sharing_get, POST=sharing_pages.sharing_post)
    add(
        "api.preferences",
        "/api/account/preferences",
        GET=sharing_api.get_preferences,
        PATCH=sharing_api.patch_preferences,
    )

    # The API described (openapi.py, apidocs.py) and the metrics (metrics.py)
    add("api.openapi", "/api/openapi.json", GET=openapi.openapi_json)
    add("api_docs", "/api/docs", GET=apidocs.api_docs)
    add("metrics", "/metrics", GET=metrics.metrics_handler)


class AbsoluteUrls:
    """`urls(name, **parts)`: the absolute URL of a named route under PUBLIC_BASE_URL, for
    what leaves the app (image JSON, the ShareX file, scripts)."""

    def __init__(self, router: web.UrlDispatcher, base_url: str) -> None:
        self.router, self.base_url = router, base_url.rstrip("/")
        self._templates: dict[str, str | None] = {}

    def __call__(self, name: str, **parts: str) -> str:
        # Parts made only of characters a path never escapes (ids, tokens) are put in the
        # route's pattern directly: the same URL as url_for, without its per-call cost
        # (the image JSON builds one per image of a listing).
        template = self._templates.get(name, "")
        if template == "":
            resource = self.router[name]
            canonical = resource.canonical
            template = self._templates[name] = canonical if _PLAIN_PATTERN.fullmatch(canonical) else None
        if template is not None and all(_SAFE_PART.fullmatch(v) for v in parts.values()):
            return self.base_url + template.format(**parts)
        return self.base_url + str(self.router[name].url_for(**parts))


# A route pattern whose variables are all plain `{name}` (no regex), and a part value
# that needs no quoting anywhere in a path.
_PLAIN_PATTERN = re.compile(r"(?:[^{}]|\{[A-Za-z_][A-Za-z0-9_]*\})*")
_SAFE_PART = re.compile(r"[A-Za-z0-9_-]+")
