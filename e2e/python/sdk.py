"""Wiring of the official Python SDK (`mcp` 2.x) as an MCP client of the broker:
its own OAuth support (`OAuthClientProvider`) with tokens kept in memory, the
scripted browser as the user, and a record of every HTTP exchange the SDK made
(including its OAuth requests) so tests can check what went over the wire.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from browser import Browser, Landing
from harness import USERS, Stack

CLAUDE_CALLBACK = "https://claude.ai/api/mcp/auth_callback"


class MemoryTokenStorage:
    """The SDK's `TokenStorage`, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class Exchange:
    """One HTTP request the SDK sent and the response's status and headers."""

    method: str
    url: str
    path: str
    request_headers: dict[str, str]
    body: Any
    status: int
    response_headers: dict[str, str]

    @property
    def rpc_method(self) -> str | None:
        return self.body.get("method") if isinstance(self.body, dict) else None

    def __repr__(self) -> str:
        interesting = {
            k: v
            for k, v in self.request_headers.items()
            if k in ("mcp-protocol-version", "mcp-session-id", "mcp-method", "mcp-name")
        }
        return f"<{self.method} {self.path} {self.rpc_method or ''} {interesting} -> {self.status}>"


@dataclass
class Recorder:
    exchanges: list[Exchange] = field(default_factory=list)

    async def on_response(self, response: httpx2.Response) -> None:
        request = response.request
        try:
            raw = request.content
            body = json.loads(raw) if raw and request.headers.get("content-type", "").startswith(
                "application/json"
            ) else (raw.decode(errors="replace") if raw else None)
        except Exception:  # a streamed body: not one the SDK sends here
            body = None
        self.exchanges.append(
            Exchange(
                method=request.method,
                url=str(request.url),
                path=request.url.path,
                request_headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                status=response.status_code,
                response_headers={k.lower(): v for k, v in response.headers.items()},
            )
        )

    def to(self, path: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.path == path]


@dataclass
class Connection:
    client: Client
    provider: OAuthClientProvider
    storage: MemoryTokenStorage
    recorder: Recorder
    landings: list[Landing]


@asynccontextmanager
async def connect(stack: Stack, login: str, mode: str) -> AsyncIterator[Connection]:
    """An SDK `Client` on the broker's `/mcp`, authorizing as `login` through the browser."""
    storage = MemoryTokenStorage()
    recorder = Recorder()
    browser = Browser([stack.issuer, stack.forgejo_url], login, USERS[login])
    landings: list[Landing] = []

    async def redirect_handler(authorization_url: str) -> None:
        landings.append(await browser.authorize(authorization_url))

    async def callback_handler() -> AuthorizationCodeResult:
        query = landings[-1].query
        if "code" not in query:
            raise AssertionError(f"authorization ended without a code: {landings[-1].url}")
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    provider = OAuthClientProvider(
        server_url=stack.mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="fjmcp-broker e2e (python sdk)",
            redirect_uris=[CLAUDE_CALLBACK],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    try:
        async with httpx2.AsyncClient(
            auth=provider,
            event_hooks={"response": [recorder.on_response]},
            timeout=httpx2.Timeout(30, read=60),
        ) as http:
            transport = streamable_http_client(stack.mcp_url, http_client=http)
            async with Client(transport, mode=mode, read_timeout_seconds=30) as client:
                yield Connection(client, provider, storage, recorder, landings)
    finally:
        await browser.aclose()


@asynccontextmanager
async def connect_with_token(stack: Stack, access_token: str, mode: str) -> AsyncIterator[tuple[Client, Recorder]]:
    """An SDK `Client` on the broker's `/mcp` with a bearer token obtained outside the SDK."""
    recorder = Recorder()
    async with httpx2.AsyncClient(
        headers={"authorization": f"Bearer {access_token}"},
        event_hooks={"response": [recorder.on_response]},
        timeout=httpx2.Timeout(30, read=60),
    ) as http:
        transport = streamable_http_client(stack.mcp_url, http_client=http)
        async with Client(transport, mode=mode, read_timeout_seconds=30) as client:
            yield client, recorder
