// The whole life of a claude.ai-style connection through the broker, with the
// official TypeScript SDK 1.x as the client and the fixture child behind the
// broker: OAuth discovery from the 401, dynamic registration, authorization
// with PKCE through Forgejo's login form and the broker's consent page, MCP
// traffic, token refresh inside a live session, session deletion, revocation.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { startStack } from './harness.js';
import { CLAUDE_CALLBACK, connectWithOAuth, newClient } from './client.js';

const TIMEOUT = 60_000;

function text(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
}

function formOf(body) {
  return Object.fromEntries(new URLSearchParams(body ?? ''));
}

describe('claude.ai-style flow with the TypeScript SDK (fixture child)', { timeout: 120_000 }, () => {
  let stack;
  let conn; // { client, transport, provider, http, browser, landing }

  before(async () => {
    stack = await startStack();
  });

  after(async () => {
    await conn?.client.close().catch(() => {});
    const statuses = await stack?.stop();
    if (statuses) {
      assert.deepEqual(statuses['fjmcp-broker'], { code: 0, signal: null }, 'the broker exits cleanly on SIGTERM');
    }
  });

  it('discovers, registers, authorizes with PKCE through login and consent, and gets tokens', { timeout: TIMEOUT }, async (t) => {
    try {
      conn = await connectWithOAuth(stack, { login: 'alice' });
    } catch (error) {
      t.diagnostic(stack.logs());
      throw error;
    }
    const { http, provider, browser } = conn;
    const log = http.log;

    // 1. The first MCP request without a token: 401 pointing at the resource metadata.
    const first = log[0];
    assert.equal(first.method, 'POST');
    assert.equal(first.url, stack.mcpUrl);
    assert.equal(first.authorization, undefined);
    assert.equal(first.status, 401);
    const prmUrl = `${stack.issuer}/.well-known/oauth-protected-resource/mcp`;
    assert.match(first.wwwAuthenticate, /^Bearer /);
    assert.ok(first.wwwAuthenticate.includes(`resource_metadata="${prmUrl}"`), first.wwwAuthenticate);

    // 2. Protected resource metadata, from the URL the 401 named.
    const prm = log.find((e) => e.url === prmUrl);
    assert.ok(prm, 'the SDK fetched the resource metadata the 401 pointed at');
    assert.equal(prm.status, 200);
    const prmBody = JSON.parse(prm.responseBody);
    assert.equal(prmBody.resource, stack.mcpUrl);
    assert.deepEqual(prmBody.authorization_servers, [stack.issuer]);

    // 3. Authorization server metadata.
    const asm = log.find((e) => e.path.startsWith('/.well-known/oauth-authorization-server') && e.status === 200);
    assert.ok(asm, 'the SDK fetched the authorization server metadata');
    const asmBody = JSON.parse(asm.responseBody);
    assert.equal(asmBody.issuer, stack.issuer);
    assert.ok(asmBody.code_challenge_methods_supported.includes('S256'));
    assert.equal(asmBody.registration_endpoint, `${stack.issuer}/oauth/register`);

    // 4. Dynamic client registration with claude.ai's redirect URI.
    const registration = log.find((e) => e.path === '/oauth/register');
    assert.ok(registration, 'the SDK registered a client');
    assert.equal(registration.status, 201, registration.responseBody);
    const registered = JSON.parse(registration.responseBody);
    assert.deepEqual(JSON.parse(registration.requestBody).redirect_uris, [CLAUDE_CALLBACK]);
    assert.deepEqual(registered.redirect_uris, [CLAUDE_CALLBACK]);
    assert.equal(registered.token_endpoint_auth_method, 'none');
    assert.equal(registered.client_secret, undefined, 'a public client gets no secret');
    assert.equal(provider.clientInformation().client_id, registered.client_id);

    // 5. The authorization request: PKCE S256, the resource, the client's redirect URI.
    const az = provider.authorizationUrl;
    assert.equal(az.origin + az.pathname, `${stack.issuer}/oauth/authorize`);
    assert.equal(az.searchParams.get('response_type'), 'code');
    assert.equal(az.searchParams.get('client_id'), registered.client_id);
    assert.equal(az.searchParams.get('redirect_uri'), CLAUDE_CALLBACK);
    assert.equal(az.searchParams.get('code_challenge_method'), 'S256');
    assert.match(az.searchParams.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
    assert.equal(az.searchParams.get('resource'), stack.mcpUrl);

    // 6. The browser went through Forgejo's login form and the broker's consent page.
    const hops = browser.history.map((h) => `${h.method} ${new URL(h.url).origin === stack.issuer ? 'broker' : 'forgejo'}${new URL(h.url).pathname} ${h.status}`);
    t.diagnostic(`browser: ${hops.join(' → ')}`);
    const forgejoLogin = browser.history.find((h) => h.method === 'POST' && h.url === `${stack.forgejoUrl}/user/login`);
    assert.ok(forgejoLogin, 'the login form was submitted at Forgejo');
    assert.ok(forgejoLogin.status >= 300 && forgejoLogin.status < 400, `login accepted (${forgejoLogin.status})`);
    const consent = browser.history.find((h) => h.method === 'POST' && h.url === `${stack.issuer}/oauth/consent`);
    assert.ok(consent, 'the consent form was submitted at the broker');
    assert.ok(consent.location.startsWith(`${CLAUDE_CALLBACK}?`), consent.location);
    assert.ok(browser.history.some((h) => h.url.startsWith(`${stack.issuer}/oauth/callback?`)), 'Forgejo sent the browser back to the broker');
    assert.ok(!browser.cookieHeader(stack.issuer)?.includes('fjmcp-consent='), 'the consent cookie was cleared after use');

    // 7. Code exchange with the PKCE verifier and the resource.
    const exchanges = log.filter((e) => e.path === '/oauth/token');
    assert.equal(exchanges.length, 1);
    const exchange = formOf(exchanges[0].requestBody);
    assert.equal(exchange.grant_type, 'authorization_code');
    assert.equal(exchange.code, conn.landing.params.code);
    assert.equal(exchange.client_id, registered.client_id);
    assert.equal(exchange.redirect_uri, CLAUDE_CALLBACK);
    assert.match(exchange.code_verifier, /^[A-Za-z0-9._~-]{43,128}$/);
    assert.equal(exchange.resource, stack.mcpUrl);
    assert.equal(exchanges[0].status, 200, exchanges[0].responseBody);
    const tokens = provider.tokens();
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.ok(tokens.access_token && tokens.refresh_token, 'access and refresh token');
    assert.ok(tokens.expires_in > 0);

    // 8. The second connect carries the token and gets a session.
    const initialize = log.find((e) => e.path === '/mcp' && e.method === 'POST' && e.status === 200);
    assert.equal(initialize.authorization, `Bearer ${tokens.access_token}`);
    assert.ok(initialize.responseSessionId, 'initialize answered with Mcp-Session-Id');
    assert.equal(conn.transport.sessionId, initialize.responseSessionId);
  });

  it('initialize: server info and the negotiated protocol version', async () => {
    const { client, transport } = conn;
    const info = client.getServerVersion();
    assert.equal(info.name, 'fjmcp-fixture-child');
    assert.equal(typeof info.version, 'string');
    assert.equal(LATEST_PROTOCOL_VERSION, '2025-11-25', 'this SDK asks for 2025-11-25');
    assert.equal(transport.protocolVersion, '2025-11-25');
    const caps = client.getServerCapabilities();
    assert.ok(caps.tools && caps.resources && caps.prompts, JSON.stringify(caps));
  });

  it('tools/list and tools/call (whoami is alice, echo echoes)', async () => {
    const { client } = conn;
    const { tools } = await client.listTools();
    const names = tools.map((tool) => tool.name);
    assert.ok(names.includes('whoami'), names.join(', '));
    assert.ok(names.includes('echo'), names.join(', '));
    assert.equal(text(await client.callTool({ name: 'whoami', arguments: {} })), 'alice');
    const echoed = await client.callTool({ name: 'echo', arguments: { text: 'hello through the broker' } });
    assert.notEqual(echoed.isError, true);
    assert.equal(text(echoed), 'hello through the broker');
  });

  it('resources/list and resources/read', async () => {
    const { client } = conn;
    const { resources } = await client.listResources();
    assert.ok(resources.some((r) => r.uri === 'test://static-text'), JSON.stringify(resources));
    const read = await client.readResource({ uri: 'test://static-text' });
    assert.equal(read.contents.length, 1);
    assert.equal(read.contents[0].uri, 'test://static-text');
    assert.equal(read.contents[0].mimeType, 'text/plain');
    assert.ok(read.contents[0].text.length > 0);
  });

  it('prompts/list and prompts/get', async () => {
    const { client } = conn;
    const { prompts } = await client.listPrompts();
    assert.ok(prompts.some((p) => p.name === 'test_simple_prompt'), JSON.stringify(prompts));
    const prompt = await client.getPrompt({ name: 'test_simple_prompt' });
    assert.ok(prompt.messages.length >= 1);
    assert.equal(prompt.messages[0].role, 'user');
    assert.equal(prompt.messages[0].content.type, 'text');
    assert.ok(prompt.messages[0].content.text.length > 0);
  });

  it('ping', async () => {
    assert.deepEqual(await conn.client.ping(), {});
  });

  it('refresh after a 401: the SDK refreshes by itself and the session goes on', { timeout: TIMEOUT }, async () => {
    const { client, transport, provider, http } = conn;
    const session = transport.sessionId;
    const old = provider.tokens();
    const logStart = http.log.length;

    provider.expireAccessToken();
    const result = await client.callTool({ name: 'echo', arguments: { text: 'after refresh' } });
    assert.equal(text(result), 'after refresh');

    const entries = http.log.slice(logStart);
    const rejected = entries[0];
    assert.equal(rejected.path, '/mcp');
    assert.equal(rejected.authorization, `Bearer ${old.access_token}-expired`);
    assert.equal(rejected.status, 401, 'the broker refuses a token it did not issue');
    assert.match(rejected.wwwAuthenticate, /error="invalid_token"/);
    const refresh = entries.find((e) => e.path === '/oauth/token');
    assert.ok(refresh, 'the SDK went to the token endpoint');
    const form = formOf(refresh.requestBody);
    assert.equal(form.grant_type, 'refresh_token');
    assert.equal(form.refresh_token, old.refresh_token);
    assert.equal(form.client_id, provider.clientInformation().client_id);
    assert.equal(refresh.status, 200, refresh.responseBody);

    const renewed = provider.tokens();
    assert.notEqual(renewed.access_token, old.access_token, 'a new access token');
    assert.notEqual(renewed.refresh_token, old.refresh_token, 'the refresh token rotated');
    const retried = entries.at(-1);
    assert.equal(retried.path, '/mcp');
    assert.equal(retried.status, 200);
    assert.equal(retried.authorization, `Bearer ${renewed.access_token}`);
    assert.equal(retried.sessionId, session, 'the retried request uses the same session');
    assert.equal(transport.sessionId, session);
    assert.equal(text(await client.callTool({ name: 'whoami', arguments: {} })), 'alice');
  });

  it('refresh through the SDK auth() (proactive refresh): same session, new tokens', { timeout: TIMEOUT }, async () => {
    const { client, transport, provider, http } = conn;
    const session = transport.sessionId;
    const old = provider.tokens();
    const logStart = http.log.length;

    const outcome = await auth(provider, { serverUrl: new URL(stack.mcpUrl), fetchFn: http.fetch });
    assert.equal(outcome, 'AUTHORIZED');
    const refreshes = http.log.slice(logStart).filter((e) => e.path === '/oauth/token');
    assert.equal(refreshes.length, 1);
    assert.equal(formOf(refreshes[0].requestBody).grant_type, 'refresh_token');
    assert.equal(refreshes[0].status, 200, refreshes[0].responseBody);
    const renewed = provider.tokens();
    assert.notEqual(renewed.access_token, old.access_token);
    assert.notEqual(renewed.refresh_token, old.refresh_token);

    const whoami = await client.callTool({ name: 'whoami', arguments: {} });
    assert.equal(text(whoami), 'alice');
    const call = http.log.at(-1);
    assert.equal(call.status, 200);
    assert.equal(call.authorization, `Bearer ${renewed.access_token}`);
    assert.equal(call.sessionId, session);
  });

  it('DELETE ends the session, and a request on it is refused', { timeout: TIMEOUT }, async () => {
    const { transport, provider, http } = conn;
    const session = transport.sessionId;
    assert.ok(session);
    await transport.terminateSession();
    const deletion = http.log.at(-1);
    assert.equal(deletion.method, 'DELETE');
    assert.equal(deletion.sessionId, session);
    assert.ok(deletion.status >= 200 && deletion.status < 300, `DELETE answered ${deletion.status}`);
    assert.equal(transport.sessionId, undefined);

    // A client that still holds the old session id (same valid token).
    const stale = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
      authProvider: provider,
      fetch: http.fetch,
      sessionId: session,
    });
    const staleClient = newClient('stale');
    await staleClient.connect(stale); // no initialize: the transport already has a session id
    stale.setProtocolVersion('2025-11-25');
    await assert.rejects(
      staleClient.listTools(),
      (error) => error instanceof StreamableHTTPError && error.code === 404,
      'a deleted session answers 404',
    );
    const refused = http.log.at(-1);
    assert.equal(refused.sessionId, session);
    assert.equal(refused.authorization, `Bearer ${provider.tokens().access_token}`);
    assert.equal(refused.status, 404);
    await staleClient.close();
  });

  it('revocation ends the grant: the access token gets 401 and the refresh token is refused', { timeout: TIMEOUT }, async (t) => {
    const { provider, http } = conn;
    const tokens = provider.tokens();
    const clientId = provider.clientInformation().client_id;

    // A fresh session that works before the revocation.
    const live = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider, fetch: http.fetch });
    const liveClient = newClient('before-revocation');
    t.after(() => liveClient.close());
    await liveClient.connect(live);
    assert.equal(text(await liveClient.callTool({ name: 'whoami', arguments: {} })), 'alice');

    const revoke = await fetch(`${stack.issuer}/oauth/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.access_token, token_type_hint: 'access_token', client_id: clientId }),
    });
    assert.equal(revoke.status, 200, await revoke.text());

    // Raw: the revoked access token is refused with a challenge.
    const raw = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokens.access_token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
        'mcp-session-id': live.sessionId, // a live session: only the token can make this fail
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    await raw.body?.cancel();
    assert.equal(raw.status, 401, 'a revoked access token must not be accepted');
    assert.match(raw.headers.get('www-authenticate') ?? '', /^Bearer .*resource_metadata=/);

    // Through the SDK, on the session opened before: 401, the refresh token is
    // refused as well (the grant is gone), and the SDK falls back to a new authorization.
    const logStart = http.log.length;
    provider.authorizationUrl = undefined;
    await assert.rejects(liveClient.callTool({ name: 'whoami', arguments: {} }), (error) => error instanceof UnauthorizedError);
    const entries = http.log.slice(logStart);
    assert.equal(entries[0].path, '/mcp');
    assert.equal(entries[0].status, 401);
    const refresh = entries.find((e) => e.path === '/oauth/token');
    assert.ok(refresh, 'the SDK tried its refresh token');
    assert.equal(formOf(refresh.requestBody).grant_type, 'refresh_token');
    assert.equal(refresh.status, 400, refresh.responseBody);
    assert.equal(JSON.parse(refresh.responseBody).error, 'invalid_grant');
    assert.ok(provider.authorizationUrl, 'the SDK starts a new authorization');
    assert.equal(provider.tokens(), undefined, 'the SDK dropped the dead tokens');
  });
});
