"""A scripted browser for the authorization step: follows the authorization URL
through the Forgejo double's sign-in form and the broker's consent page until it
is sent to the client's redirect URI, whose query it returns.

It follows no redirects on its own (every hop is looked at), keeps cookies like a
browser, and fills in forms from their HTML: hidden inputs are sent back as found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx


@dataclass
class Form:
    action: str
    method: str
    hidden: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", ""), method=a.get("method", "get").lower()))
        elif not self.forms:
            return
        elif tag == "input" and a.get("type", "text") == "hidden":
            self.forms[-1].hidden[a["name"]] = a.get("value", "")
        elif tag == "input" and "name" in a:
            self.forms[-1].inputs.append(a["name"])
        elif tag == "button" and "name" in a:
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class BrowserError(AssertionError):
    pass


@dataclass
class Landing:
    """Where the browser was sent at the end: the client's redirect URI and its query."""

    url: str
    query: dict[str, str]
    # (method, URL without query) of every request the browser made on the way.
    hops: list[tuple[str, str]]


class Browser:
    """One person's browser: signs in at Forgejo as `login` and answers consent with `decision`."""

    def __init__(self, servers: list[str], login: str, password: str, decision: str = "approve") -> None:
        # Only these origins are "visited"; the first URL elsewhere is the client's redirect URI.
        self.servers = [s.rstrip("/") for s in servers]
        self.login = login
        self.password = password
        self.decision = decision
        self.http = httpx.AsyncClient(follow_redirects=False, timeout=30)
        self.hops: list[tuple[str, str]] = []
        # (URL, HTML) of every page whose form the browser filled in: sign-in, consent.
        self.pages: list[tuple[str, str]] = []

    async def aclose(self) -> None:
        await self.http.aclose()

    def _ours(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        return origin in self.servers

    async def authorize(self, url: str, max_hops: int = 12) -> Landing:
        response = await self._request("GET", url)
        for _ in range(max_hops):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if not self._ours(target):
                    return Landing(target, dict(parse_qsl(urlsplit(target).query)), self.hops)
                response = await self._request("GET", target)
                continue
            if response.status_code != 200:
                raise BrowserError(
                    f"{response.request.method} {response.url} answered {response.status_code}: {response.text[:500]}"
                )
            response = await self._submit(response)
        raise BrowserError(f"too many hops: {self.hops}")

    async def _request(self, method: str, url: str, data: dict[str, str] | None = None) -> httpx.Response:
        self.hops.append((method, url.split("?")[0]))
        return await self.http.request(method, url, data=data)

    async def _submit(self, page: httpx.Response) -> httpx.Response:
        """Fills in and submits the one form a page shows (sign-in or consent)."""
        self.pages.append((str(page.url), page.text))
        forms = forms_of(page.text)
        if len(forms) != 1:
            raise BrowserError(f"expected one form at {page.url}, found {len(forms)}: {page.text[:500]}")
        form = forms[0]
        data = dict(form.hidden)
        if "password" in form.inputs:
            data["user_name"] = self.login
            data["password"] = self.password
            wanted = "login"
        else:
            wanted = self.decision
        choice = [(name, value) for name, value in form.buttons if value == wanted]
        if not choice:
            raise BrowserError(f"no {wanted!r} button at {page.url}: {form.buttons}")
        name, value = choice[0]
        data[name] = value
        if form.method != "post":
            raise BrowserError(f"form at {page.url} uses {form.method}")
        return await self._request("POST", urljoin(str(page.url), form.action), data)
