"""End-to-end tests of fjmcp-broker with the official Python MCP SDK as the client.

The SDK does everything a real client does: the first request to `/mcp` gets a
401, the SDK discovers the protected-resource and authorization-server metadata,
registers itself (RFC 7591), sends the user's browser (here a scripted one) to
authorize with PKCE, exchanges the code and retries. The browser signs in at the
Forgejo test double and approves the broker's consent page.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.utils import should_use_client_metadata_url
from mcp.shared.auth import OAuthClientMetadata, OAuthMetadata

from browser import Browser
from harness import USERS, Stack
from sdk import CLAUDE_CALLBACK, Connection, Exchange, MemoryTokenStorage, Recorder, connect, connect_with_token

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"
STATIC_TEXT = "This is the content of the static text resource."
SIMPLE_PROMPT = "This is a simple prompt for testing."


# -- shared checks ------------------------------------------------------------


async def exercise(connection: Connection, login: str) -> None:
    """The same calls in every era: tools, a tool call, a resource, a prompt."""
    client = connection.client
    tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {"whoami", "echo", "test_simple_text"} <= tools, tools

    who = await client.call_tool("whoami", {})
    assert not who.is_error, who
    assert [c.text for c in who.content if c.type == "text"] == [login]

    resource = await client.read_resource("test://static-text")
    assert [c.text for c in resource.contents] == [STATIC_TEXT]

    prompt = await client.get_prompt("test_simple_prompt")
    assert [m.content.text for m in prompt.messages] == [SIMPLE_PROMPT]


def check_oauth_dance(stack: Stack, connection: Connection, first_rpc: str) -> list[Exchange]:
    """The SDK's own OAuth flow went as the spec says; returns the `/mcp` exchanges after it."""
    wire = connection.recorder.exchanges
    steps = [(e.method, e.path, e.status) for e in wire[:6]]
    assert steps == [
        ("POST", "/mcp", 401),
        ("GET", "/.well-known/oauth-protected-resource/mcp", 200),
        ("GET", "/.well-known/oauth-authorization-server", 200),
        ("POST", "/oauth/register", 201),
        ("POST", "/oauth/token", 200),
        ("POST", "/mcp", 200),
    ], wire
    challenge = wire[0]
    assert challenge.rpc_method == first_rpc
    assert "authorization" not in challenge.request_headers
    www = challenge.response_headers["www-authenticate"]
    assert www.startswith("Bearer ")
    assert f'resource_metadata="{stack.url("/.well-known/oauth-protected-resource/mcp")}"' in www

    registration = wire[3].body
    assert registration["redirect_uris"] == [CLAUDE_CALLBACK]
    assert registration["token_endpoint_auth_method"] == "none"

    # One trip through the browser: Forgejo's sign-in form, then the broker's consent page.
    [landing] = connection.landings
    where = {stack.issuer: "broker", stack.forgejo_url: "forgejo"}
    hops = []
    for method, url in landing.hops:
        parts = urlsplit(url)
        hops.append((method, where[f"{parts.scheme}://{parts.netloc}"], parts.path))
    assert hops == [
        ("GET", "broker", "/oauth/authorize"),
        ("GET", "forgejo", "/login/oauth/authorize"),
        ("POST", "forgejo", "/user/login"),
        ("GET", "broker", "/oauth/callback"),
        ("POST", "broker", "/oauth/consent"),
    ], landing.hops
    assert landing.url.startswith(CLAUDE_CALLBACK + "?")
    assert landing.query["iss"] == stack.issuer
    assert landing.query["code"]

    token_request = dict(pair.split("=", 1) for pair in wire[4].body.split("&"))
    assert token_request["grant_type"] == "authorization_code"
    assert token_request["code_verifier"]
    assert "resource" in token_request  # RFC 8707, the broker's /mcp

    tokens = connection.storage.tokens
    assert tokens is not None and tokens.access_token and tokens.refresh_token
    assert tokens.token_type.lower() == "bearer"

    mcp = [e for e in wire[5:] if e.path == "/mcp"]
    assert all(e.request_headers.get("authorization") == f"Bearer {tokens.access_token}" for e in mcp), mcp
    assert [e for e in wire[5:] if e.path != "/mcp"] == [], "no more OAuth traffic once authorized"
    return mcp


# -- the tests ----------------------------------------------------------------


async def test_default_auto_mode_authorizes_and_ends_up_stateless_on_2026_07_28(stack: Stack) -> None:
    async with connect(stack, "alice", "auto") as connection:
        client = connection.client
        assert client.protocol_version == MODERN
        assert client.session.discover_result is not None
        assert client.session.initialize_result is None
        assert MODERN in client.session.discover_result.supported_versions
        await exercise(connection, "alice")

    mcp = check_oauth_dance(stack, connection, first_rpc="server/discover")
    assert [e.rpc_method for e in mcp] == [
        "server/discover",
        "tools/list",
        "tools/call",
        "resources/read",
        "prompts/get",
    ]
    for exchange in mcp:
        assert exchange.method == "POST"
        assert exchange.status == 200, exchange
        assert exchange.request_headers.get("mcp-protocol-version") == MODERN, exchange
        assert exchange.request_headers.get("mcp-method") == exchange.rpc_method, exchange
        assert "mcp-session-id" not in exchange.request_headers, exchange
        assert "mcp-session-id" not in exchange.response_headers, exchange
        meta = exchange.body["params"]["_meta"]
        assert meta["io.modelcontextprotocol/protocolVersion"] == MODERN


async def test_forced_2025_era_uses_initialize_and_a_session(stack: Stack) -> None:
    async with connect(stack, "alice", "legacy") as connection:
        client = connection.client
        assert client.protocol_version == HANDSHAKE
        assert client.session.initialize_result is not None
        assert client.session.discover_result is None
        assert client.server_info is not None and client.server_info.name
        await exercise(connection, "alice")

    mcp = check_oauth_dance(stack, connection, first_rpc="initialize")
    initialize, rest = mcp[0], mcp[1:]
    assert initialize.rpc_method == "initialize"
    assert initialize.body["params"]["protocolVersion"] == HANDSHAKE
    assert "mcp-session-id" not in initialize.request_headers
    session_id = initialize.response_headers["mcp-session-id"]
    assert session_id and all(0x21 <= ord(ch) <= 0x7E for ch in session_id)

    assert "server/discover" not in [e.rpc_method for e in mcp]
    posts = [e for e in rest if e.method == "POST"]
    assert [e.rpc_method for e in posts] == [
        "notifications/initialized",
        "tools/list",
        "tools/call",
        "resources/read",
        "prompts/get",
    ]
    for exchange in rest:
        assert exchange.request_headers.get("mcp-session-id") == session_id, exchange
        assert exchange.request_headers.get("mcp-protocol-version") == HANDSHAKE, exchange
    assert all(e.status == 200 for e in posts[1:]), posts
    assert posts[0].status == 202, posts[0]

    # The SDK ends its session on close; the broker forgets it: the same id is now unknown (404).
    deletes = [e for e in rest if e.method == "DELETE"]
    assert [e.status for e in deletes] in ([200], [204]), deletes
    tokens = connection.storage.tokens
    async with httpx.AsyncClient(timeout=30) as http:
        after = await http.post(
            stack.mcp_url,
            headers={
                "authorization": f"Bearer {tokens.access_token}",
                "accept": "application/json, text/event-stream",
                "mcp-session-id": session_id,
                "mcp-protocol-version": HANDSHAKE,
            },
            json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"},
        )
    assert after.status_code == 404, (after.status_code, after.text)


async def test_each_user_reaches_their_own_child(stack: Stack) -> None:
    async with connect(stack, "bob", "auto") as connection:
        assert connection.client.protocol_version == MODERN
        who = await connection.client.call_tool("whoami", {})
        assert [c.text for c in who.content if c.type == "text"] == ["bob"]


async def test_the_sdk_refreshes_an_expired_token_and_the_session_lives_on(stack: Stack) -> None:
    async with connect(stack, "alice", "legacy") as connection:
        client = connection.client
        first = connection.storage.tokens
        assert [c.text for c in (await client.call_tool("whoami", {})).content] == ["alice"]

        # Make the SDK believe its access token expired: it refreshes before the next request.
        connection.provider.context.token_expiry_time = time.time() - 1
        assert [c.text for c in (await client.call_tool("echo", {"text": "after refresh"})).content] == [
            "after refresh"
        ]
        second = connection.storage.tokens

    wire = connection.recorder.exchanges
    refreshes = [e for e in wire if e.path == "/oauth/token" and "grant_type=refresh_token" in (e.body or "")]
    assert [e.status for e in refreshes] == [200], wire
    assert second.access_token != first.access_token
    assert second.refresh_token and second.refresh_token != first.refresh_token, "refresh tokens rotate"

    # The 2025 session is bound to the grant, not to one access token: it carries on.
    after = wire[wire.index(refreshes[0]) + 1 :]
    calls = [e for e in after if e.path == "/mcp" and e.method == "POST"]
    assert [e.rpc_method for e in calls] == ["tools/call"]
    assert calls[0].status == 200
    assert calls[0].request_headers["authorization"] == f"Bearer {second.access_token}"
    session_ids = {e.request_headers.get("mcp-session-id") for e in wire if e.path == "/mcp"} - {None}
    assert len(session_ids) == 1, session_ids


# -- negative -----------------------------------------------------------------


def modern_discover(token: str) -> dict:
    """A raw 2026-07-28 `server/discover` request (kwargs for httpx)."""
    return {
        "headers": {
            "authorization": f"Bearer {token}",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": MODERN,
            "mcp-method": "server/discover",
        },
        "json": {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "server/discover",
            "params": {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MODERN,
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            },
        },
    }


async def test_a_revoked_token_gets_401_with_resource_metadata(stack: Stack) -> None:
    async with connect(stack, "alice", "auto") as connection:
        who = await connection.client.call_tool("whoami", {})
        assert [c.text for c in who.content if c.type == "text"] == ["alice"]
    tokens = connection.storage.tokens
    client_id = connection.storage.client_info.client_id

    async with httpx.AsyncClient(timeout=30) as http:
        before = await http.post(stack.mcp_url, **modern_discover(tokens.access_token))
        assert before.status_code == 200, (before.status_code, before.text)
        assert MODERN in before.json()["result"]["supportedVersions"]

        revoked = await http.post(
            stack.url("/oauth/revoke"), data={"token": tokens.access_token, "client_id": client_id}
        )
        assert revoked.status_code == 200, (revoked.status_code, revoked.text)

        after = await http.post(stack.mcp_url, **modern_discover(tokens.access_token))
        assert after.status_code == 401, (after.status_code, after.text)
        www = after.headers.get("www-authenticate", "")
        assert www.startswith("Bearer ") and "resource_metadata=" in www, www

        # Revoking one token ends the grant: its refresh token is dead too.
        refreshed = await http.post(
            stack.url("/oauth/token"),
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token,
                "client_id": client_id,
                "resource": stack.mcp_url,
            },
        )
        assert refreshed.status_code == 400, (refreshed.status_code, refreshed.text)
        assert refreshed.json()["error"] == "invalid_grant"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def test_a_wrong_code_verifier_is_invalid_grant(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        registered = await http.post(
            stack.url("/oauth/register"),
            json={
                "client_name": "fjmcp-broker e2e (raw PKCE)",
                "redirect_uris": [CLAUDE_CALLBACK],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            },
        )
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]

        _verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        authorize = stack.url("/oauth/authorize") + "?" + urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": CLAUDE_CALLBACK,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "scope": "mcp",
                "resource": stack.mcp_url,
            }
        )
        browser = Browser([stack.issuer, stack.forgejo_url], "alice", USERS["alice"])
        try:
            landing = await browser.authorize(authorize)
        finally:
            await browser.aclose()
        assert landing.query.get("state") == state
        assert landing.query.get("iss") == stack.issuer
        code = landing.query["code"]

        wrong_verifier, _ = pkce_pair()
        response = await http.post(
            stack.url("/oauth/token"),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": client_id,
                "redirect_uri": CLAUDE_CALLBACK,
                "code_verifier": wrong_verifier,
                "resource": stack.mcp_url,
            },
        )
        assert response.status_code == 400, (response.status_code, response.text)
        assert response.json()["error"] == "invalid_grant", response.text
        assert "access_token" not in response.json()


# -- client ID metadata documents ---------------------------------------------


class MetadataDocumentServer:
    """The client's own web server: publishes its Client ID Metadata Document at `url`
    (plain http on loopback, which only a broker with its test-only switch fetches)."""

    def __init__(self, client_name: str) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                if self.path != "/client.json":
                    self.send_error(404)
                    return
                body = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/client.json"
        self.document = {
            "client_id": self.url,
            "client_name": client_name,
            "redirect_uris": [CLAUDE_CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def metadata_document() -> Iterator[MetadataDocumentServer]:
    server = MetadataDocumentServer("fjmcp-broker e2e (metadata document)")
    yield server
    server.close()


async def test_a_client_id_metadata_document_replaces_registration(
    loopback_cimd_stack: Stack, metadata_document: MetadataDocumentServer
) -> None:
    stack, doc_url = loopback_cimd_stack, metadata_document.url

    # The SDK (mcp 2.3.0) takes `client_metadata_url` only as https with a path
    # (`is_valid_client_metadata_url`, checked in `OAuthClientProvider.__init__`), and the
    # broker fetches https documents only from public addresses. So the OAuth part is done
    # by hand here, as the SDK would do it for an https URL: no registration, the document
    # URL as `client_id`, PKCE, no client secret. The SDK then makes the MCP calls with
    # the bearer token it got.
    with pytest.raises(ValueError, match="HTTPS"):
        OAuthClientProvider(
            server_url=stack.mcp_url,
            client_metadata=OAuthClientMetadata(redirect_uris=[CLAUDE_CALLBACK]),
            storage=MemoryTokenStorage(),
            client_metadata_url=doc_url,
        )

    recorder = Recorder()
    async with httpx.AsyncClient(timeout=30, event_hooks={"response": [recorder.on_response]}) as http:
        metadata = (await http.get(stack.url("/.well-known/oauth-authorization-server"))).json()
        assert metadata["client_id_metadata_document_supported"] is True
        assert "none" in metadata["token_endpoint_auth_methods_supported"]
        # The SDK's own rule: given such metadata it skips registration for the document URL.
        assert should_use_client_metadata_url(OAuthMetadata.model_validate(metadata), doc_url)

        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        authorize = metadata["authorization_endpoint"] + "?" + urlencode(
            {
                "response_type": "code",
                "client_id": doc_url,
                "redirect_uri": CLAUDE_CALLBACK,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "scope": "mcp",
                "resource": stack.mcp_url,
            }
        )
        browser = Browser([stack.issuer, stack.forgejo_url], "alice", USERS["alice"])
        try:
            landing = await browser.authorize(authorize)
        finally:
            await browser.aclose()
        assert landing.url.startswith(CLAUDE_CALLBACK + "?")
        assert landing.query.get("state") == state
        assert landing.query.get("iss") == stack.issuer

        # The broker fetched the document once (at /oauth/authorize; it is cached for an hour
        # as no Cache-Control says otherwise) and named the client after it on the consent page.
        assert metadata_document.requests == ["/client.json"]
        [consent] = [page for url, page in browser.pages if urlsplit(url).path == "/oauth/callback"]
        assert f"Allow {html.escape(metadata_document.document['client_name'])} to use Forgejo as alice?" in consent
        assert f"Client id: <code>{html.escape(doc_url)}</code>" in consent

        token = await http.post(
            metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": landing.query["code"],
                "client_id": doc_url,
                "redirect_uri": CLAUDE_CALLBACK,
                "code_verifier": verifier,
                "resource": stack.mcp_url,
            },
        )
        assert token.status_code == 200, (token.status_code, token.text)
        tokens = token.json()
        assert tokens["token_type"].lower() == "bearer"
        assert tokens["access_token"] and tokens["refresh_token"]

    async with connect_with_token(stack, tokens["access_token"], "auto") as (client, mcp_recorder):
        assert client.protocol_version == MODERN
        who = await client.call_tool("whoami", {})
        assert [c.text for c in who.content if c.type == "text"] == ["alice"]

    wire = recorder.exchanges + mcp_recorder.exchanges
    assert [e.path for e in wire if e.path.startswith("/oauth/")] == ["/oauth/token"], wire
    assert all(e.status == 200 for e in mcp_recorder.exchanges), mcp_recorder.exchanges
    assert metadata_document.requests == ["/client.json"]
