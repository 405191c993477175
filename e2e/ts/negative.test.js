// What must go wrong: a client that presents the wrong PKCE verifier, a
// tampered authorization code, a person who denies consent, an authorization
// request that tries to downgrade PKCE. Each of these would turn red against a
// broker that skipped the check.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InvalidGrantError } from '@modelcontextprotocol/sdk/server/auth/errors.js';

import { startStack, USERS } from './harness.js';
import { Browser, authorizeInBrowser } from './browser.js';
import { MemoryOAuthProvider, recordingFetch, newClient } from './client.js';

const TIMEOUT = 60_000;

/** A provider that lost its PKCE verifier and presents another well-formed one. */
class WrongVerifierProvider extends MemoryOAuthProvider {
  codeVerifier() {
    super.codeVerifier(); // one was saved
    return randomBytes(32).toString('base64url'); // 43 characters, a valid verifier, just not this one
  }
}

/**
 * Runs the first half of the SDK flow: 401, discovery, registration, the
 * authorization URL handed to the provider. Returns the transport to finish on.
 */
async function startAuthorization(stack, provider, http) {
  const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider, fetch: http.fetch });
  const client = newClient('negative');
  await assert.rejects(client.connect(transport), (error) => error instanceof UnauthorizedError);
  await client.close().catch(() => {});
  assert.ok(provider.authorizationUrl);
  return transport;
}

function tokenEntries(http, from = 0) {
  return http.log.slice(from).filter((e) => e.path === '/oauth/token');
}

async function mcpStatus(stack, accessToken) {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  const response = await fetch(stack.mcpUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'probe', version: '1' } },
    }),
  });
  await response.body?.cancel();
  return response.status;
}

describe('negative paths of the authorization flow', { timeout: 120_000 }, () => {
  let stack;

  before(async () => {
    stack = await startStack();
  });

  after(async () => {
    await stack?.stop();
  });

  it('a wrong PKCE verifier gets invalid_grant at the token endpoint, and no token', { timeout: TIMEOUT }, async () => {
    const provider = new WrongVerifierProvider();
    const http = recordingFetch();
    const transport = await startAuthorization(stack, provider, http);
    const browser = new Browser([stack.issuer, stack.forgejoUrl]);
    const landing = await authorizeInBrowser(browser, provider.authorizationUrl, { login: 'alice', password: USERS.alice });
    assert.ok(landing.params.code, `a code: ${JSON.stringify(landing.params)}`);
    assert.equal(landing.params.state, provider.expectedState);

    const from = http.log.length;
    await assert.rejects(transport.finishAuth(landing.params.code), (error) => error instanceof InvalidGrantError);

    const attempts = tokenEntries(http, from);
    assert.ok(attempts.length >= 1, 'the SDK went to the token endpoint');
    const first = attempts[0];
    const form = Object.fromEntries(new URLSearchParams(first.requestBody));
    assert.equal(form.grant_type, 'authorization_code');
    assert.equal(form.code, landing.params.code);
    assert.ok(form.code_verifier, 'a verifier was sent');
    assert.equal(first.status, 400, `a wrong verifier must be refused: ${first.responseBody}`);
    const body = JSON.parse(first.responseBody);
    assert.equal(body.error, 'invalid_grant');
    assert.match(body.error_description ?? '', /pkce|verif/i, 'refused because of PKCE');
    for (const attempt of attempts) assert.notEqual(attempt.status, 200, 'no attempt got tokens');
    assert.equal(provider.tokens(), undefined, 'no tokens saved');
    assert.equal(await mcpStatus(stack), 401);
  });

  it('a tampered code gets invalid_grant; the genuine code then works', { timeout: TIMEOUT }, async () => {
    const provider = new MemoryOAuthProvider();
    const http = recordingFetch();
    const transport = await startAuthorization(stack, provider, http);
    const browser = new Browser([stack.issuer, stack.forgejoUrl]);
    const landing = await authorizeInBrowser(browser, provider.authorizationUrl, { login: 'alice', password: USERS.alice });
    const code = landing.params.code;
    assert.ok(code);
    const last = code.at(-1);
    const tampered = code.slice(0, -1) + (last === 'A' ? 'B' : 'A');

    const from = http.log.length;
    await assert.rejects(transport.finishAuth(tampered), (error) => error instanceof InvalidGrantError);
    const refused = tokenEntries(http, from);
    assert.ok(refused.length >= 1);
    for (const attempt of refused) {
      assert.equal(attempt.status, 400, attempt.responseBody);
      assert.equal(JSON.parse(attempt.responseBody).error, 'invalid_grant');
    }
    assert.equal(provider.tokens(), undefined);

    // Control: the same client, verifier and code as the browser delivered it.
    await transport.finishAuth(code);
    assert.ok(provider.tokens()?.access_token);
    const client = newClient('after-tamper');
    await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider, fetch: http.fetch }));
    const who = await client.callTool({ name: 'whoami', arguments: {} });
    assert.equal(who.content[0].text, 'alice');
    await client.close();
  });

  it('a code is single use: a replay is refused', { timeout: TIMEOUT }, async () => {
    const provider = new MemoryOAuthProvider();
    const http = recordingFetch();
    const transport = await startAuthorization(stack, provider, http);
    const browser = new Browser([stack.issuer, stack.forgejoUrl]);
    const landing = await authorizeInBrowser(browser, provider.authorizationUrl, { login: 'bob', password: USERS.bob });
    await transport.finishAuth(landing.params.code);
    const first = provider.tokens();
    assert.ok(first?.access_token);
    const from = http.log.length;
    await assert.rejects(transport.finishAuth(landing.params.code), (error) => error instanceof InvalidGrantError);
    for (const attempt of tokenEntries(http, from)) {
      assert.equal(attempt.status, 400, attempt.responseBody);
      assert.equal(JSON.parse(attempt.responseBody).error, 'invalid_grant');
    }
    // RFC 6749 §4.1.2: a replayed code SHOULD revoke what it issued; the broker does.
    assert.equal(await mcpStatus(stack, first.access_token), 401, 'tokens of a replayed code are revoked');
  });

  it('denying consent sends access_denied back to the client, with state and iss, and no code', { timeout: TIMEOUT }, async () => {
    const provider = new MemoryOAuthProvider({ clientName: 'denied client' });
    const http = recordingFetch();
    await startAuthorization(stack, provider, http);
    const browser = new Browser([stack.issuer, stack.forgejoUrl]);
    const landing = await authorizeInBrowser(browser, provider.authorizationUrl, {
      login: 'alice',
      password: USERS.alice,
      consent: 'deny',
    });
    assert.equal(landing.params.error, 'access_denied');
    assert.equal(landing.params.code, undefined);
    assert.equal(landing.params.state, provider.expectedState);
    assert.equal(landing.params.iss, stack.issuer);
  });

  it('the consent form only counts from the browser that signed in (consent cookie)', { timeout: TIMEOUT }, async () => {
    const provider = new MemoryOAuthProvider({ clientName: 'csrf' });
    const http = recordingFetch();
    await startAuthorization(stack, provider, http);
    const victim = new Browser([stack.issuer, stack.forgejoUrl]);
    let step = await victim.navigate(provider.authorizationUrl.href);
    const login = step.forms.find((f) => f.action === '/user/login');
    assert.ok(login, `Forgejo's login form: ${step.status} ${step.url}`);
    step = await victim.submit(step, login, login.buttons.find((b) => b.value === 'login'), {
      user_name: 'alice',
      password: USERS.alice,
    });
    assert.equal(step.kind, 'page');
    const consent = step.forms.find((f) => f.action === '/oauth/consent');
    assert.ok(consent, `the broker's consent page: ${step.status} ${step.url}`);
    assert.ok(victim.cookieHeader(stack.issuer)?.includes('fjmcp-consent='), 'the callback set the consent cookie');

    // Another browser (no cookie) submits the very same form: refused, no code.
    const attacker = new Browser([stack.issuer, stack.forgejoUrl]);
    const approve = consent.buttons.find((b) => b.value === 'approve');
    const forged = await attacker.submit(step, consent, approve);
    assert.equal(forged.kind, 'page', `no redirect to the client: ${forged.url}`);
    assert.ok(forged.status >= 400 && forged.status < 500, `refused (${forged.status})`);

    // The person's own browser still gets its code.
    const own = await victim.submit(step, consent, approve);
    assert.equal(own.kind, 'left');
    const params = Object.fromEntries(new URL(own.url).searchParams);
    assert.ok(params.code, JSON.stringify(params));
    assert.equal(params.state, provider.expectedState);
    assert.ok(!victim.cookieHeader(stack.issuer)?.includes('fjmcp-consent='), 'the consent cookie is cleared');
  });

  it('an authorization request with plain PKCE or none at all yields no code', { timeout: TIMEOUT }, async () => {
    const provider = new MemoryOAuthProvider({ clientName: 'downgrade' });
    const http = recordingFetch();
    await startAuthorization(stack, provider, http);
    const variants = {
      plain: (url) => {
        url.searchParams.set('code_challenge_method', 'plain');
        url.searchParams.set('code_challenge', randomBytes(32).toString('base64url'));
      },
      missing: (url) => {
        url.searchParams.delete('code_challenge');
        url.searchParams.delete('code_challenge_method');
      },
    };
    for (const [name, tamper] of Object.entries(variants)) {
      const url = new URL(provider.authorizationUrl);
      tamper(url);
      const browser = new Browser([stack.issuer, stack.forgejoUrl]);
      const step = await browser.navigate(url.href);
      // The broker refuses before anyone signs in, never sending the browser to
      // Forgejo's login page. Nobody has approved this freshly registered
      // client, so the error is a page, not a redirect to its URI (the broker
      // is no open redirector for anonymously registered clients).
      assert.equal(step.kind, 'page', `${name}: expected an error page, got ${step.kind} ${step.url}`);
      assert.equal(step.status, 400, `${name}: ${step.status}`);
      assert.match(step.html, /invalid_request/, name);
      assert.ok(!browser.history.some((h) => h.url.startsWith(stack.forgejoUrl)), `${name}: never sent to Forgejo`);
      assert.ok(!browser.history.some((h) => h.location?.includes('code=')), `${name}: no code anywhere`);
    }
  });
});
