"""A WeasyPrint URL fetcher that serves the board report's bundled assets and nothing else.

WeasyPrint's default fetcher reads ``file://`` URLs and follows network URLs and their
redirects (before WeasyPrint 68 a redirect bypassed a custom fetcher: CVE-2025-68616).
The report embeds user text (case titles, categories, the organization's name); it is
escaped, but this fetcher is the second wall:
every URL that is not ``dossier-asset:<file>`` naming a file inside ``assets/`` is refused,
and WeasyPrint skips the resource with a warning.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from weasyprint.urls import URLFetcher, URLFetcherResponse

logger = logging.getLogger(__name__)

ASSET_SCHEME = "dossier-asset"
ASSET_BASE_URL = f"{ASSET_SCHEME}:"
ASSETS_DIR = Path(__file__).resolve().parent / "assets"

# What we ship and how WeasyPrint must read it; any other extension is refused.
CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# Plain relative paths only: no percent-escapes, queries, fragments, backslashes or dot segments.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class AssetRefusedError(ValueError):
    """A URL the report may not load; WeasyPrint treats it as a failed fetch and skips it."""


def asset_url(name: str) -> str:
    """The URL of a bundled asset, e.g. ``dossier-asset:board_report.css``."""
    return f"{ASSET_BASE_URL}{name}"


def resolve_asset(url: str) -> Path:
    """The bundled file ``url`` names, or ``AssetRefusedError``."""
    if not url.startswith(ASSET_BASE_URL):
        raise AssetRefusedError(f"Only bundled report assets may be loaded, not {url[:200]!r}.")
    name = url[len(ASSET_BASE_URL) :]
    segments = name.split("/")
    if not name or not all(_SEGMENT.fullmatch(segment) for segment in segments):
        raise AssetRefusedError(f"Not a bundled asset path: {url[:200]!r}.")
    root = ASSETS_DIR.resolve()
    path = root.joinpath(*segments).resolve()
    # Resolving follows symlinks, so a link that points outside the folder is refused too.
    if not path.is_relative_to(root) or not path.is_file():
        raise AssetRefusedError(f"No such bundled asset: {url[:200]!r}.")
    if path.suffix.lower() not in CONTENT_TYPES:
        raise AssetRefusedError(f"Bundled assets of this type are not served: {url[:200]!r}.")
    return path


class BundledAssetFetcher(URLFetcher):
    """Serves ``dossier-asset:`` URLs from ``assets/``; refuses every other URL, never redirects."""

    def __init__(self, **kwargs: Any) -> None:
        # No protocols and no redirects for the inherited opener, which ``fetch`` never uses.
        super().__init__(allowed_protocols=(), allow_redirects=False, fail_on_errors=False)

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        """Return the bundled file ``url`` names; raise ``AssetRefusedError`` for anything else."""
        try:
            path = resolve_asset(url)
        except AssetRefusedError:
            logger.warning("Board report: refused to load %.200r", url)
            raise
        return URLFetcherResponse(
            url, body=path.read_bytes(), headers={"Content-Type": CONTENT_TYPES[path.suffix.lower()]}
        )
