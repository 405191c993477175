// The deployment recipes' reverse proxies, run for real: Caddy with
// deploy/caddy/Caddyfile and nginx with deploy/nginx/fjmcp-broker.conf (each in
// the plain-HTTP loopback variant render.sh derives from it) in front of the
// real broker, with the official TypeScript SDK going through the proxy for
// everything: OAuth discovery, dynamic registration, the authorization through
// Forgejo's login form and the broker's consent page, the token exchange, then
// MCP: initialize, tools/list, tools/call, a tool call whose progress arrives
// on an SSE response, and list changes on the standalone GET /mcp stream.
//
// Uses the e2e/ts harness and client (and the SDK installed there by npm ci).
// CADDY and NGINX name the proxy binaries (default: found on PATH, nginx also
// in /usr/sbin); run.sh sets both after checking they exist.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startStack, freePort } from '../ts/harness.js';
import { connectWithOAuth, CLAUDE_CALLBACK } from '../ts/client.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const RENDER = join(HERE, 'render.sh');
const TIMEOUT = 60_000;
/**
 * How long a notification on the standalone stream may take. The broker sends
 * it at once and a keep-alive comment only every 15 s; a proxy that buffers the
 * stream holds these few hundred bytes far longer than this (until its buffer
 * fills or the stream ends), so the wait fails instead of passing late.
 */
const STREAM_WAIT_MS = 5_000;

function which(name, extra = []) {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...extra]) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return name;
}

const CADDY = process.env.CADDY || which('caddy');
const NGINX = process.env.NGINX || which('nginx', ['/usr/sbin', '/usr/local/sbin']);

/** The proxies under test: how to render the recipe's CI variant and start it. */
const PROXIES = {
  caddy: {
    name: 'caddy',
    start({ listenPort, upstreamPort, dir }) {
      execFileSync(RENDER, ['caddy', dir, String(listenPort), String(upstreamPort)], { stdio: 'inherit' });
      return {
        command: CADDY,
        args: ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'],
        // Caddy keeps state (autosaved config, certificates) under these.
        env: {
          PATH: process.env.PATH,
          HOME: dir,
          XDG_CONFIG_HOME: join(dir, 'config'),
          XDG_DATA_HOME: join(dir, 'data'),
        },
      };
    },
  },
  nginx: {
    name: 'nginx',
    async start({ listenPort, upstreamPort, dir }) {
      this.redirectPort = await freePort();
      execFileSync(RENDER, ['nginx', dir, String(listenPort), String(upstreamPort), String(this.redirectPort)], {
        stdio: 'inherit',
      });
      return {
        command: NGINX,
        args: ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')],
        env: { PATH: process.env.PATH },
      };
    },
  },
};

function text(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
}

async function until(condition, what, timeoutMs = STREAM_WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// run.sh names the proxies it found (a missing one is a failed check there).
const WANTED = (process.env.FJMCP_DEPLOY_PROXIES ?? 'caddy,nginx').split(',').filter(Boolean);

for (const proxy of WANTED.map((name) => PROXIES[name] ?? assert.fail(`unknown proxy ${name}`))) {
  describe(`through ${proxy.name} (deploy/ recipe)`, { timeout: 180_000 }, () => {
    let stack;
    let conn;

    before(async () => {
      stack = await startStack({ proxy });
    });

    after(async () => {
      await conn?.client.close().catch(() => {});
      const statuses = await stack?.stop();
      if (statuses) {
        assert.deepEqual(statuses['fjmcp-broker'], { code: 0, signal: null }, 'the broker exits cleanly on SIGTERM');
      }
    });

    it('the proxy keeps Host: the broker refuses its own address but answers the public one', async () => {
      assert.notEqual(stack.issuer, stack.brokerUrl, 'the public URL is the proxy, not the broker');
      const init = {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      };
      // Straight to the broker, Host is its listen address: not the public URL's.
      const direct = await fetch(`${stack.brokerUrl}/mcp`, init);
      await direct.body?.cancel();
      assert.equal(direct.status, 403, 'the broker screens Host (so a proxy that rewrote it would fail)');
      // Through the proxy: past the Host screen, to the bearer check.
      const proxied = await fetch(stack.mcpUrl, init);
      await proxied.body?.cancel();
      assert.equal(proxied.status, 401, `through ${proxy.name}: ${proxied.status}`);
      assert.ok(
        proxied.headers.get('www-authenticate')?.includes(`resource_metadata="${stack.issuer}/.well-known/oauth-protected-resource/mcp"`),
        proxied.headers.get('www-authenticate'),
      );
    });

    it('OAuth through the proxy: discovery, registration, login and consent, token exchange', { timeout: TIMEOUT }, async (t) => {
      try {
        conn = await connectWithOAuth(stack, { login: 'alice', clientName: `fjmcp e2e via ${proxy.name}` });
      } catch (error) {
        t.diagnostic(stack.logs());
        throw error;
      }
      const { http, browser, provider, transport } = conn;
      const log = http.log;
      assert.ok(log.every((e) => e.url.startsWith(`${stack.issuer}/`)), 'every client request went to the proxy');

      const prm = log.find((e) => e.path === '/.well-known/oauth-protected-resource/mcp');
      assert.equal(prm?.status, 200);
      assert.equal(JSON.parse(prm.responseBody).resource, stack.mcpUrl);
      const asm = log.find((e) => e.path.startsWith('/.well-known/oauth-authorization-server') && e.status === 200);
      assert.ok(asm, 'authorization server metadata fetched');
      const metadata = JSON.parse(asm.responseBody);
      assert.equal(metadata.issuer, stack.issuer);
      assert.equal(metadata.token_endpoint, `${stack.issuer}/oauth/token`);

      const registration = log.find((e) => e.path === '/oauth/register');
      assert.equal(registration?.status, 201, registration?.responseBody);
      assert.deepEqual(JSON.parse(registration.responseBody).redirect_uris, [CLAUDE_CALLBACK]);

      const brokerHops = browser.history.filter((h) => h.url.startsWith(`${stack.issuer}/`));
      assert.ok(brokerHops.some((h) => h.url.startsWith(`${stack.issuer}/oauth/authorize?`)), 'authorize through the proxy');
      assert.ok(brokerHops.some((h) => h.url.startsWith(`${stack.issuer}/oauth/callback?`)), 'Forgejo sent the browser back through the proxy');
      assert.ok(browser.history.some((h) => h.method === 'POST' && h.url === `${stack.forgejoUrl}/user/login`), 'signed in at Forgejo');
      const consent = brokerHops.find((h) => h.method === 'POST' && h.url === `${stack.issuer}/oauth/consent`);
      assert.ok(consent?.location?.startsWith(`${CLAUDE_CALLBACK}?`), 'consent approved through the proxy');

      const exchange = log.find((e) => e.path === '/oauth/token');
      assert.equal(exchange?.status, 200, exchange?.responseBody);
      assert.ok(provider.tokens().access_token, 'an access token');
      assert.ok(transport.sessionId, 'initialize through the proxy opened a session');
    });

    it('initialize, tools/list and tools/call', async () => {
      const { client } = conn;
      assert.equal(client.getServerVersion().name, 'fjmcp-fixture-child');
      const { tools } = await client.listTools();
      const names = tools.map((tool) => tool.name);
      for (const name of ['whoami', 'echo', 'test_tool_with_progress', 'trigger_list_changed']) {
        assert.ok(names.includes(name), `${name} in ${names.join(', ')}`);
      }
      assert.equal(text(await client.callTool({ name: 'whoami', arguments: {} })), 'alice');
    });

    it('a tool call with a progress token: its progress events and answer come over one SSE response', { timeout: TIMEOUT }, async () => {
      const { client, http } = conn;
      const progress = [];
      const result = await client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined, {
        onprogress: (p) => progress.push(p),
      });
      assert.notEqual(result.isError, true, text(result));
      assert.deepEqual(progress.map((p) => [p.progress, p.total]), [[0, 100], [50, 100], [100, 100]], JSON.stringify(progress));
      // Whether a proxy holds such a short stream back cannot be told from
      // its timing without racing the child's 50 ms pauses; the open GET
      // stream below is what proves the proxy passes events on unbuffered.
      const call = http.log.findLast((e) => e.method === 'POST' && e.path === '/mcp');
      assert.equal(call?.status, 200);
    });

    it('the standalone GET /mcp stream delivers list changes while it stays open', { timeout: TIMEOUT }, async () => {
      const { client, http } = conn;
      // The SDK opens the stream by itself after initialize; the broker
      // subscribes it before answering, so a 200 means it is listening.
      await until(
        () => http.log.some((e) => e.method === 'GET' && e.path === '/mcp' && e.status === 200),
        'the SDK to open GET /mcp (a proxy that buffers the stream holds back even its headers)',
      );
      const notifications = [];
      client.fallbackNotificationHandler = async (notification) => {
        notifications.push(notification.method);
      };
      const result = await client.callTool({ name: 'trigger_list_changed', arguments: {} });
      assert.notEqual(result.isError, true, text(result));
      await until(
        () => ['tools', 'resources', 'prompts'].every((kind) => notifications.includes(`notifications/${kind}/list_changed`)),
        `the three list_changed notifications on the open GET stream (got ${JSON.stringify(notifications)})`,
      );
    });

    it('a request body just under the broker\'s 1 MiB limit passes the proxy', { timeout: TIMEOUT }, async () => {
      const big = 'x'.repeat(1_000_000);
      const result = await conn.client.callTool({ name: 'echo', arguments: { text: big } });
      assert.notEqual(result.isError, true);
      assert.equal(text(result).length, big.length);
    });

    if (proxy.name === 'nginx') {
      it('plain HTTP is redirected to HTTPS', async () => {
        const response = await fetch(`http://127.0.0.1:${proxy.redirectPort}/mcp`, { redirect: 'manual' });
        await response.body?.cancel();
        assert.equal(response.status, 301);
        assert.equal(response.headers.get('location'), 'https://127.0.0.1/mcp');
      });
    }

    it('DELETE ends the session through the proxy', { timeout: TIMEOUT }, async () => {
      const { transport, http } = conn;
      await transport.terminateSession();
      const deletion = http.log.findLast((e) => e.method === 'DELETE');
      assert.equal(deletion?.status, 204);
      assert.equal(transport.sessionId, undefined);
    });
  });
}
