"""Reading changed resources from the regional FHIR server, and only from it.

A notification names resources by reference; every reference is resolved against the configured
base URL, and one that points anywhere else (another host, another path) is refused, so a
notification cannot make carebridge fetch from an arbitrary address; so is a search's ``next``
link. Reads use the gateway's credentials (SMART Backend Services or mutual TLS) and a time
limit, and are counted per notification (every search page is a read).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from adapter.config import AuthSettings

FHIR_JSON = "application/fhir+json"
#: Resources asked for per search page, and the pages one search may read (each page is a read
#: counted against the notification's budget); a search with more pages is an error, not a
#: silently shortened answer.
SEARCH_PAGE_SIZE = 100
MAX_SEARCH_PAGES = 20
_TYPE = r"[A-Z][A-Za-z]{1,63}"
_ID = r"[A-Za-z0-9\-.]{1,64}"
_RELATIVE = re.compile(rf"^({_TYPE})/({_ID})(?:/_history/({_ID}))?$")


class RegionalError(Exception):
    """A resource that cannot be read from the regional server; the message is one line."""


class BudgetExceeded(RegionalError):
    """More reads than one notification may cause."""


class RegionalReader:
    """Reads resources from one regional FHIR server."""

    def __init__(self, base_url: str, *, auth: AuthSettings | None = None, timeout: float = 10.0,
                 budget: int = 200, client: httpx.Client | None = None) -> None:
        from adapter.gateway import auth as auth_mod

        self.base_url = base_url.rstrip("/")
        self.budget = budget
        self.reads = 0
        if client is None:
            http_auth, verify = auth_mod.build(auth or AuthSettings(), self.base_url)
            client = httpx.Client(base_url=self.base_url, auth=http_auth, verify=verify, timeout=timeout,
                                  follow_redirects=False, headers={"Accept": FHIR_JSON,
                                                                   "User-Agent": "carebridge-inbound"})
        self.client = client

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def __enter__(self) -> RegionalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def parse_reference(self, reference: str) -> tuple[str, str]:
        """(type, id) of a reference on this server; RegionalError for anything else."""
        if not isinstance(reference, str):
            raise RegionalError("a reference must be a string")
        local = reference
        if "://" in reference:
            if not reference.startswith(self.base_url + "/"):
                raise RegionalError("reference outside the regional server refused")
            local = reference[len(self.base_url) + 1:]
        match = _RELATIVE.match(local)
        if not match:
            raise RegionalError("not a resource reference (Type/id)")
        return match.group(1), match.group(2)

    def local_url(self, url: str) -> str:
        """The path (and query) of a URL on this server, e.g. a search's ``next`` link; RegionalError for another."""
        if not isinstance(url, str) or not url:
            raise RegionalError("a link must be a URL")
        if "://" not in url:
            return url if url.startswith("/") else "/" + url
        if url != self.base_url and not url.startswith((self.base_url + "/", self.base_url + "?")):
            raise RegionalError("link outside the regional server refused")
        return url[len(self.base_url):] or "/"

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        if self.reads >= self.budget:
            raise BudgetExceeded(f"more than {self.budget} reads for one notification")
        self.reads += 1
        try:
            response = self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise RegionalError(f"regional server unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise RegionalError(f"GET {path} answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise RegionalError(f"GET {path} did not answer JSON") from None
        if not isinstance(body, dict):
            raise RegionalError(f"GET {path} did not answer a resource")
        return body

    def read(self, reference: str) -> dict[str, Any]:
        """The current version of a referenced resource (its type checked)."""
        rtype, rid = self.parse_reference(reference)
        resource = self._get(f"/{rtype}/{rid}")
        if resource.get("resourceType") != rtype:
            raise RegionalError(f"{rtype}/{rid} answered a {resource.get('resourceType')}")
        return resource

    def search(self, resource_type: str, params: dict[str, str], *,
               max_pages: int = MAX_SEARCH_PAGES) -> list[dict[str, Any]]:
        """Every match of a search: its pages, followed by their ``next`` links (only on this server),
        at most ``max_pages`` of them (RegionalError beyond). Servers may ignore unknown parameters:
        callers re-check."""
        if not re.match(rf"^{_TYPE}$", resource_type):
            raise RegionalError("bad resource type")
        found: list[dict[str, Any]] = []
        path, query = f"/{resource_type}", {**params, "_count": str(SEARCH_PAGE_SIZE)}
        visited: set[str] = set()
        for _page in range(max_pages):
            bundle = self._get(path, query)
            found += [e["resource"] for e in bundle.get("entry") or () if isinstance(e, dict)
                      and isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == resource_type]
            following = next((link.get("url") for link in bundle.get("link") or ()
                              if isinstance(link, dict) and link.get("relation") == "next"), None)
            if not following:
                return found
            path, query = self.local_url(following), None
            if path in visited:
                raise RegionalError(f"a {resource_type} search links back to a page it has read")
            visited.add(path)
        raise RegionalError(f"a {resource_type} search has more than {max_pages} pages of {SEARCH_PAGE_SIZE}")
