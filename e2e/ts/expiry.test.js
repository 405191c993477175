// Access tokens that really expire: the broker issues 2-second access tokens,
// the test waits them out, and the SDK must recover on its own (401 →
// refresh → retry) inside the same MCP session. A second user (bob) signs in
// through the double's auto-login, so this also checks that each user reaches
// their own child.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

import { startStack } from './harness.js';
import { connectWithOAuth } from './client.js';

const LIFETIME_SECONDS = 2;

describe('expiring access tokens (2 s lifetime, auto-login as bob)', { timeout: 120_000 }, () => {
  let stack;
  let conn;

  before(async () => {
    stack = await startStack({
      brokerEnv: { FJMCP_ACCESS_TOKEN_LIFETIME: `${LIFETIME_SECONDS}s` },
      doubleArgs: ['--auto-login', 'bob'],
    });
  });

  after(async () => {
    await conn?.client.close().catch(() => {});
    await stack?.stop();
  });

  it('bob signs in (auto-login at Forgejo, consent at the broker) and is bob behind the broker', { timeout: 60_000 }, async () => {
    conn = await connectWithOAuth(stack, { login: 'bob' });
    assert.ok(!conn.browser.history.some((h) => h.url.endsWith('/user/login')), 'no login form with --auto-login');
    assert.ok(conn.browser.history.some((h) => h.method === 'POST' && h.url === `${stack.issuer}/oauth/consent`), 'consent was still asked');
    assert.equal(conn.provider.tokens().expires_in, LIFETIME_SECONDS);
    const who = await conn.client.callTool({ name: 'whoami', arguments: {} });
    assert.equal(who.content[0].text, 'bob');
  });

  it('after the access token expired, the next call gets 401, the SDK refreshes and retries in the same session', { timeout: 60_000 }, async () => {
    const { client, transport, provider, http } = conn;
    const session = transport.sessionId;
    const old = provider.tokens();
    await sleep((LIFETIME_SECONDS + 1) * 1000 + 200);

    const from = http.log.length;
    const who = await client.callTool({ name: 'whoami', arguments: {} });
    assert.equal(who.content[0].text, 'bob');

    const entries = http.log.slice(from);
    const summary = entries.map((e) => `${e.method} ${e.path} ${e.status}`).join(', ');
    assert.equal(entries[0].path, '/mcp');
    assert.equal(entries[0].authorization, `Bearer ${old.access_token}`);
    assert.equal(entries[0].status, 401, `an expired token must be refused: ${summary}`);
    assert.match(entries[0].wwwAuthenticate, /error="invalid_token"/);
    const refresh = entries.find((e) => e.path === '/oauth/token');
    assert.ok(refresh, summary);
    assert.equal(new URLSearchParams(refresh.requestBody).get('grant_type'), 'refresh_token');
    assert.equal(refresh.status, 200, refresh.responseBody);
    const renewed = provider.tokens();
    assert.notEqual(renewed.access_token, old.access_token);
    assert.notEqual(renewed.refresh_token, old.refresh_token);
    const retry = entries.at(-1);
    assert.equal(retry.path, '/mcp');
    assert.equal(retry.status, 200, summary);
    assert.equal(retry.sessionId, session, 'same session after the refresh');
  });
});
