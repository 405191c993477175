#!/usr/bin/env python3
"""Gets an access token from a running fjmcp-broker through its real OAuth flow.

Standard library only. Plays both parts an MCP client's user would need:

  client:  POST /oauth/register (public client, PKCE S256), later POST /oauth/token;
  browser: GET /oauth/authorize -> Forgejo (the test double, started with
           --auto-login, signs the user in without a form) -> /oauth/callback ->
           the broker's consent page -> POST /oauth/consent (decision=approve) ->
           the client's redirect URI with ?code&state&iss.

Redirects are followed by hand, hop by hop, so every hop is checked; cookies are
kept in an http.cookiejar like a browser would. The redirect URI is never
fetched (it is only parsed), so it may point nowhere.

Prints the access token on stdout and nothing else; diagnostics go to stderr.
Exits 1 with a message if any step does not go as the flow requires.

Usage: get_token.py --issuer http://127.0.0.1:PORT [--forgejo http://127.0.0.1:PORT]
"""

import argparse
import base64
import hashlib
import html
import http.cookiejar
import json
import re
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request

REDIRECT_URI = "http://127.0.0.1:1/cb"
MAX_HOPS = 10


class Failed(Exception):
    pass


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hands 3xx responses back to the caller instead of following them."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def opener_with(jar):
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar),
        NoRedirect(),
        # No proxies from the environment: everything here is on loopback.
        urllib.request.ProxyHandler({}),
    )


def send(opener, url, data=None, headers=None, method=None):
    """Returns (status, headers, body bytes); HTTP error statuses are not exceptions."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def register(opener, issuer):
    body = json.dumps(
        {
            "client_name": "MCP conformance suite (fjmcp-broker CI)",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "application_type": "native",
        }
    ).encode()
    status, _, raw = send(
        opener,
        issuer + "/oauth/register",
        data=body,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    if status != 201:
        raise Failed(f"registration: expected 201, got {status}: {raw[:500]!r}")
    client_id = json.loads(raw).get("client_id")
    if not client_id:
        raise Failed("registration: no client_id in the response")
    return client_id


def consent_form(page):
    """The consent page's ticket (hidden input), or None if this is not that page."""
    match = re.search(r'name="ticket"\s+value="([^"]*)"', page)
    return html.unescape(match.group(1)) if match else None


def browse(opener, start, issuer, forgejo):
    """Follows the authorize redirects like a browser; returns the landing URL or the consent ticket."""
    url = start
    for _ in range(MAX_HOPS):
        if not (url.startswith(issuer + "/") or (forgejo and url.startswith(forgejo + "/"))):
            return ("client", url)
        status, headers, raw = send(opener, url, headers={"Accept": "text/html"})
        if 300 <= status < 400:
            location = headers.get("Location")
            if not location:
                raise Failed(f"{status} without Location from {url.split('?')[0]}")
            url = urllib.parse.urljoin(url, location)
            continue
        page = raw.decode("utf-8", "replace")
        if status == 200:
            ticket = consent_form(page)
            if ticket is not None:
                return ("consent", ticket)
        raise Failed(f"browser stopped at {url.split('?')[0]} with {status}: {page[:500]}")
    raise Failed("too many redirects")


def approve(opener, issuer, ticket):
    body = urllib.parse.urlencode({"ticket": ticket, "decision": "approve"}).encode()
    status, headers, raw = send(
        opener,
        issuer + "/oauth/consent",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    if not (300 <= status < 400) or not headers.get("Location"):
        raise Failed(f"consent: expected a redirect, got {status}: {raw[:500]!r}")
    return urllib.parse.urljoin(issuer + "/oauth/consent", headers["Location"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", required=True, help="the broker's public URL")
    parser.add_argument("--forgejo", help="the Forgejo (double) URL, to recognise its hops")
    args = parser.parse_args()
    issuer = args.issuer.rstrip("/")
    forgejo = args.forgejo.rstrip("/") if args.forgejo else None
    resource = issuer + "/mcp"

    jar = http.cookiejar.CookieJar()
    opener = opener_with(jar)

    client_id = register(opener, issuer)
    verifier = b64url(secrets.token_bytes(32))
    challenge = b64url(hashlib.sha256(verifier.encode("ascii")).digest())
    state = b64url(secrets.token_bytes(16))
    authorize = issuer + "/oauth/authorize?" + urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "mcp",
            "resource": resource,
        }
    )

    kind, value = browse(opener, authorize, issuer, forgejo)
    if kind == "consent":
        landing = approve(opener, issuer, value)
    else:
        landing = value
    if not landing.startswith(REDIRECT_URI):
        raise Failed(f"landed at {landing.split('?')[0]}, not the redirect URI")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(landing).query))
    if "error" in query:
        raise Failed(f"authorization error: {query.get('error')}: {query.get('error_description')}")
    if query.get("state") != state:
        raise Failed("state does not match")
    if query.get("iss") != issuer:
        raise Failed(f"iss {query.get('iss')!r} is not the issuer {issuer!r}")
    code = query.get("code")
    if not code:
        raise Failed("no code in the redirect")

    body = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "resource": resource,
        }
    ).encode()
    status, _, raw = send(
        opener,
        issuer + "/oauth/token",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    if status != 200:
        raise Failed(f"token: expected 200, got {status}: {raw[:500]!r}")
    token = json.loads(raw)
    if str(token.get("token_type", "")).lower() != "bearer" or not token.get("access_token"):
        raise Failed("token: response lacks a bearer access_token")
    print(token["access_token"])


if __name__ == "__main__":
    try:
        main()
    except Failed as failure:
        print(f"get_token: {failure}", file=sys.stderr)
        sys.exit(1)
