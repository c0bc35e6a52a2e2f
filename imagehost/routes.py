"""The route table: every URL of the program, grouped by feature, each with a name.

Code and templates build URLs from these names (`url(request, name)` in handlers,
`url('name')` in templates, `env.url(name)` for absolute URLs in JSON and files).
"""

from __future__ import annotations

from aiohttp import hdrs, web

from . import apidocs, health, metrics, openapi
from .accounts import account_api, account_pages
from .accounts import api as accounts_api
from .accounts import pages as accounts_pages
from .images import api as images_api
from .images import files as images_files
from .images import pages as images_pages
from .integrations import api as integrations_api
from .integrations import pages as integrations_pages
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
    add("api.images", "/api/images/", GET=images_api.list_images)
    add("api.images_noslash", "/api/images", GET=images_api.list_images)
    add("api.image", "/api/images/{id}", GET=images_api.get_image, DELETE=images_api.delete_image)

    # Images: what the storage backend needs the app to serve (the local folder's bytes
    # at /i/<key> and its signed PUTs; nothing for a bucket)
    for name, path in storage_routes.items():
        method, handler = STORAGE_HANDLERS[name]
        add(name, path, **{method: handler})

    # Integrations
    add("integrations", "/integrations", GET=integrations_pages.integrations)
    add("flameshot_script", "/integrations/flameshot.sh", GET=integrations_pages.flameshot_download)
    add("flameshot_key", "/integrations/flameshot-key", POST=integrations_pages.flameshot_key)
    add("api.sharex", "/api/sharex.sxcu", GET=integrations_api.sharex_download)

    # The API described (openapi.py, apidocs.py) and the metrics (metrics.py)
    add("api.openapi", "/api/openapi.json", GET=openapi.openapi_json)
    add("api_docs", "/api/docs", GET=apidocs.api_docs)
    add("metrics", "/metrics", GET=metrics.metrics_handler)


class AbsoluteUrls:
    """`urls(name, **parts)`: the absolute URL of a named route under PUBLIC_BASE_URL, for
    what leaves the app (image JSON, the ShareX file, scripts)."""

    def __init__(self, router: web.UrlDispatcher, base_url: str) -> None:
        self.router, self.base_url = router, base_url.rstrip("/")

    def __call__(self, name: str, **parts: str) -> str:
        return self.base_url + str(self.router[name].url_for(**parts))
