// The MCP client side: an in-memory OAuthClientProvider for the SDK 1.x, a
// fetch that records every request the SDK makes, and the claude.ai-style
// connect dance (401 → discovery → registration → browser → finishAuth →
// connect again).

import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

import { Browser, authorizeInBrowser } from './browser.js';
import { USERS } from './harness.js';

export const CLAUDE_CALLBACK = 'https://claude.ai/api/mcp/auth_callback';

/**
 * What a claude.ai-like client keeps between requests, in memory. It
 * implements the SDK's OAuthClientProvider interface; `events` records what
 * the SDK asked it to do, in order.
 */
export class MemoryOAuthProvider {
  constructor({ clientName = 'fjmcp e2e (TypeScript SDK)', redirectUri = CLAUDE_CALLBACK } = {}) {
    this._redirectUri = redirectUri;
    this._clientName = clientName;
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
    this._state = undefined;
    /** The last URL passed to redirectToAuthorization. */
    this.authorizationUrl = undefined;
    this.events = [];
    /** Every token set ever saved, oldest first. */
    this.savedTokens = [];
  }

  get redirectUrl() {
    return this._redirectUri;
  }

  get clientMetadata() {
    return {
      client_name: this._clientName,
      redirect_uris: [this._redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  /** A fresh random state per authorization request; the test checks it comes back. */
  state() {
    this._state = randomBytes(16).toString('base64url');
    this.events.push('state');
    return this._state;
  }

  get expectedState() {
    return this._state;
  }

  clientInformation() {
    return this._clientInformation;
  }

  saveClientInformation(info) {
    this.events.push('saveClientInformation');
    this._clientInformation = info;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this.events.push('saveTokens');
    this._tokens = tokens;
    this.savedTokens.push(tokens);
  }

  redirectToAuthorization(url) {
    this.events.push('redirectToAuthorization');
    this.authorizationUrl = new URL(url);
  }

  saveCodeVerifier(verifier) {
    this.events.push('saveCodeVerifier');
    this._codeVerifier = verifier;
  }

  codeVerifier() {
    if (!this._codeVerifier) throw new Error('no code verifier saved');
    return this._codeVerifier;
  }

  invalidateCredentials(scope) {
    this.events.push(`invalidateCredentials:${scope}`);
    if (scope === 'all' || scope === 'client') this._clientInformation = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._codeVerifier = undefined;
  }

  /**
   * Makes the stored access token one the broker no longer accepts, as when it
   * has expired while the client was idle; the refresh token stays. The SDK
   * learns about it only from the broker's 401, like any real client.
   */
  expireAccessToken() {
    assert.ok(this._tokens?.refresh_token, 'no refresh token to fall back on');
    this._tokens = { ...this._tokens, access_token: `${this._tokens.access_token}-expired` };
  }
}

/**
 * A fetch that records { method, url, status, requestBody, responseBody? }
 * for every request. Response bodies of OAuth endpoints are cloned and kept
 * (they are small JSON); MCP bodies (possibly SSE streams) are not touched.
 */
export function recordingFetch() {
  const log = [];
  const fn = async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const entry = { method, url: url.href, path: url.pathname, requestBody: typeof init.body === 'string' ? init.body : init.body?.toString?.() };
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    entry.authorization = headers.get('authorization') ?? undefined;
    entry.sessionId = headers.get('mcp-session-id') ?? undefined;
    log.push(entry);
    const response = await fetch(input, init);
    entry.status = response.status;
    entry.wwwAuthenticate = response.headers.get('www-authenticate') ?? undefined;
    entry.responseSessionId = response.headers.get('mcp-session-id') ?? undefined;
    if (!url.pathname.startsWith('/mcp')) {
      entry.responseBody = await response.clone().text();
    }
    return response;
  };
  return { fetch: fn, log };
}

export function newClient(name = 'fjmcp-e2e-ts') {
  return new Client({ name, version: '1.0.0' }, { capabilities: {} });
}

/**
 * Connects like claude.ai does with SDK 1.x: the first connect meets the
 * broker's 401, the SDK discovers, registers and hands the authorization URL
 * to the provider; the person signs in and approves in the browser; the
 * client checks state and issuer on its redirect URI, exchanges the code
 * (transport.finishAuth) and connects again with a new transport.
 *
 * Returns { client, transport, provider, http, browser, landing, firstError }.
 */
export async function connectWithOAuth(stack, {
  login = 'alice',
  password = USERS[login],
  provider = new MemoryOAuthProvider(),
  http = recordingFetch(),
  clientName,
} = {}) {
  const browser = new Browser([stack.issuer, stack.forgejoUrl]);
  const firstTransport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider, fetch: http.fetch });
  const firstClient = newClient(clientName);
  let firstError;
  try {
    await firstClient.connect(firstTransport);
  } catch (error) {
    firstError = error;
  }
  assert.ok(firstError instanceof UnauthorizedError, `the first connect must need authorization, got ${firstError}`);
  assert.ok(provider.authorizationUrl, 'the SDK handed an authorization URL to the provider');

  const landing = await authorizeInBrowser(browser, provider.authorizationUrl, { login, password });
  assert.equal(new URL(landing.url).origin + new URL(landing.url).pathname, provider.redirectUrl, 'the browser ends at the client redirect URI');
  assert.equal(landing.params.error, undefined, `authorization error: ${JSON.stringify(landing.params)}`);
  assert.equal(landing.params.state, provider.expectedState, 'state comes back unchanged');
  assert.equal(landing.params.iss, stack.issuer, 'iss names the broker (RFC 9207)');
  assert.match(landing.params.code ?? '', /\S{16,}/, 'a code');

  await firstTransport.finishAuth(landing.params.code);
  await firstClient.close().catch(() => {});

  const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider, fetch: http.fetch });
  const client = newClient(clientName);
  await client.connect(transport);
  return { client, transport, provider, http, browser, landing, firstError };
}
