// The pages a person sees, in a real browser: Debian's headless Chromium
// driven by playwright-core, against the real broker and the Forgejo test
// double. Approve and deny on the consent page, the Connected apps page
// (revoke one app, sign out everywhere), and the error pages (an unknown
// application, a cross-site POST). Every page is checked for what a phone and
// dark mode need (no sideways scrolling, readable contrast, a dark background
// when asked for) and for loading nothing besides itself; each is
// photographed into screenshots/ (or docs/screenshots with
// FJMCP_UPDATE_SCREENSHOTS=1), and every photograph must be committed there.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { REPO, USERS as HARNESS_USERS, startStack } from '../ts/harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.FJMCP_CHROMIUM ?? '/usr/bin/chromium';
// No sandbox (CI runs as root), no GPU, and nothing that phones home.
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SHOTS = process.env.FJMCP_SCREENSHOT_DIR ?? join(HERE, 'screenshots');
const DOCS_SHOTS = join(REPO, 'docs', 'screenshots');
const UPDATE_DOCS = process.env.FJMCP_UPDATE_SCREENSHOTS === '1';
const CLAUDE_CALLBACK = 'https://claude.ai/api/mcp/auth_callback';
const DESKTOP = { viewport: { width: 900, height: 560 }, colorScheme: 'light' };
const PHONE_DARK = { viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true, hasTouch: true };
const TIMEOUT = 60_000;
// The harness's users plus one of our own, so each test starts from a user with no apps.
const USERS = { ...HARNESS_USERS, carol: 'carol-password' };

const taken = [];

function base64url(bytes) {
  return Buffer.from(bytes).toString('base64url');
}

/** Registers a public client (RFC 7591); returns its client_id. */
async function register(stack, name, redirectUris = [CLAUDE_CALLBACK]) {
  const response = await fetch(`${stack.issuer}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: name,
      redirect_uris: redirectUris,
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    }),
  });
  const text = await response.text();
  assert.equal(response.status, 201, text);
  return JSON.parse(text).client_id;
}

/** One authorization attempt of `clientId`: its URL and the secrets to redeem its code. */
function attempt(stack, clientId) {
  const verifier = base64url(randomBytes(32));
  const state = base64url(randomBytes(12));
  const url = new URL(`${stack.issuer}/oauth/authorize`);
  for (const [name, value] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: CLAUDE_CALLBACK,
    state,
    code_challenge: base64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    scope: 'mcp',
    resource: stack.mcpUrl,
  })) {
    url.searchParams.set(name, value);
  }
  return { clientId, verifier, state, url: url.href };
}

async function token(stack, form) {
  const response = await fetch(`${stack.issuer}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, body: await response.json() };
}

async function exchange(stack, a, code) {
  return token(stack, {
    grant_type: 'authorization_code',
    code,
    client_id: a.clientId,
    redirect_uri: CLAUDE_CALLBACK,
    code_verifier: a.verifier,
    resource: stack.mcpUrl,
  });
}

async function refreshWorks(stack, clientId, refreshToken) {
  const { status, body } = await token(stack, {
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    client_id: clientId,
  });
  assert.ok(status === 200 || body.error === 'invalid_grant', JSON.stringify(body));
  return status === 200;
}

/**
 * A browser context: the client's redirect URI (claude.ai) is answered
 * locally, so a browser that reaches it has finished; every request is
 * recorded, so a page that loads anything besides itself is noticed.
 */
async function newContext(browser, stack, options) {
  const context = await browser.newContext(options);
  context.requests = [];
  context.on('request', (request) =>
    context.requests.push({ url: request.url(), type: request.resourceType() }),
  );
  await context.route('https://claude.ai/**', (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>client</title><p>back at the client</p>' }),
  );
  return context;
}

/** Signs in at the Forgejo double if its login form is showing. */
async function signInIfAsked(page, stack, login) {
  if (!page.url().startsWith(stack.forgejoUrl)) return;
  await page.fill('#user_name', login);
  await page.fill('#password', USERS[login]);
  await Promise.all([page.waitForNavigation(), page.click('button[value="login"]')]);
}

/** Waits until the browser is at the client's redirect URI; returns its query. */
async function atClient(page) {
  await page.waitForURL((url) => url.href.startsWith(CLAUDE_CALLBACK));
  return Object.fromEntries(new URL(page.url()).searchParams);
}

/** Goes from an authorization URL to the broker's consent page as `login`. */
async function toConsent(page, stack, a, login) {
  await page.goto(a.url);
  await signInIfAsked(page, stack, login);
  assert.ok(page.url().startsWith(`${stack.issuer}/oauth/callback`), `not on the consent page: ${page.url()}`);
  assert.match(await page.textContent('h1'), /^Allow /);
}

/** Approves a new client as `login`; returns its tokens. */
async function connect(page, stack, name, login) {
  const clientId = await register(stack, name);
  const a = attempt(stack, clientId);
  await toConsent(page, stack, a, login);
  await page.click('button[value="approve"]');
  const query = await atClient(page);
  const { status, body } = await exchange(stack, a, query.code);
  assert.equal(status, 200, JSON.stringify(body));
  return { clientId, ...body };
}

function luminance([r, g, b]) {
  const channel = (c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
}

function contrast(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

function rgb(css) {
  const parts = css.match(/[\d.]+/g);
  assert.ok(parts && parts.length >= 3, `not an rgb() colour: ${css}`);
  return parts.slice(0, 3).map(Number);
}

/**
 * What a phone and dark mode need, and no foreign assets: no sideways
 * scrolling, contrast of text and buttons (WCAG AA: 4.5), a background that
 * follows the colour scheme, no script, stylesheet link, image or frame.
 */
async function assertReadable(page, colorScheme) {
  const m = await page.evaluate(() => {
    const style = (el) => getComputedStyle(el);
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const bg = style(e).backgroundColor;
        if (bg && bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') return bg;
      }
      return style(document.documentElement).backgroundColor;
    };
    const texts = [...document.querySelectorAll('h1, h2, p, dt, dd, code, a, button, b, li')].filter(
      (el) => el.textContent.trim() !== '' && el.offsetParent !== null,
    );
    return {
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      body: style(document.body).backgroundColor,
      pairs: texts.map((el) => ({ what: `${el.tagName} "${el.textContent.trim().slice(0, 30)}"`, fg: style(el).color, bg: background(el) })),
      foreign: document.querySelectorAll('script, link, img, iframe, object, embed, video, audio').length,
    };
  });
  assert.ok(m.scrollWidth <= m.innerWidth, `scrolls sideways: ${m.scrollWidth} > ${m.innerWidth}`);
  const body = luminance(rgb(m.body));
  if (colorScheme === 'dark') assert.ok(body < 0.05, `dark mode asked for, background ${m.body}`);
  else assert.ok(body > 0.8, `light mode, background ${m.body}`);
  assert.ok(m.pairs.length > 0);
  for (const { what, fg, bg } of m.pairs) {
    const ratio = contrast(rgb(fg), rgb(bg));
    assert.ok(ratio >= 4.5, `${what}: contrast ${ratio.toFixed(2)} of ${fg} on ${bg}`);
  }
  assert.equal(m.foreign, 0, 'no script, stylesheet link, image or frame');
}

async function shoot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, `${name}.png`);
  // Finite CSS animations (the consent page's Approve button ignores clicks,
  // faded, for its first moment) are shown in their end state.
  await page.screenshot({ path, fullPage: true, animations: 'disabled' });
  taken.push(name);
  if (UPDATE_DOCS) {
    mkdirSync(DOCS_SHOTS, { recursive: true });
    copyFileSync(path, join(DOCS_SHOTS, `${name}.png`));
  }
}

/** Only the broker's and the double's documents were loaded (and the client's stand-in). */
function assertNothingForeign(context, stack) {
  const allowed = [stack.issuer, stack.forgejoUrl, 'https://claude.ai'];
  for (const { url, type } of context.requests) {
    assert.ok(allowed.some((origin) => url.startsWith(origin)), `request to ${url}`);
    if (url.startsWith(stack.issuer)) assert.equal(type, 'document', `the broker's page loaded ${url} (${type})`);
  }
}

/** A page on another origin with a form aimed at the broker, as an attacker's site would have. */
async function hostileSite(host, action) {
  const server = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end(
      `<!doctype html><title>a game</title><form method="post" action="${action}">` +
        '<input type="hidden" name="csrf" value="guessed"><button id="go">Play</button></form>',
    );
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://${host}:${server.address().port}/` };
}

describe('the broker\'s pages in headless Chromium', { timeout: 240_000 }, () => {
  let stack;
  let browser;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install the Debian package chromium (apt-get install chromium; .ci/run does)`);
    stack = await startStack({ doubleArgs: ['--user', `carol:${USERS.carol}`] });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  });

  after(async () => {
    await browser?.close();
    const statuses = await stack?.stop();
    if (statuses) assert.deepEqual(statuses['fjmcp-broker'], { code: 0, signal: null });
  });

  it('approve: the consent page sends the code to the client, and the code buys tokens', { timeout: TIMEOUT }, async (t) => {
    const context = await newContext(browser, stack, DESKTOP);
    try {
      const page = await context.newPage();
      const a = attempt(stack, await register(stack, 'Claude'));
      await toConsent(page, stack, a, 'alice');
      // A registered client's name is its own claim, and the page says so.
      assert.equal(await page.textContent('h1'), 'Allow an application that calls itself “Claude” to use Forgejo as alice?');
      assert.ok(await page.isVisible('a[href="/account"]'), 'the consent page links to Connected apps');
      await assertReadable(page, 'light');
      await shoot(page, 'consent');
      await page.click('button[value="approve"]');
      const query = await atClient(page);
      assert.equal(query.state, a.state);
      assert.equal(query.iss, stack.issuer);
      const { status, body } = await exchange(stack, a, query.code);
      assert.equal(status, 200, JSON.stringify(body));
      assert.ok(body.access_token);
      assertNothingForeign(context, stack);
    } catch (error) {
      t.diagnostic(stack.logs());
      throw error;
    } finally {
      await context.close();
    }
  });

  it('deny: the client gets access_denied and no code; the consent page fits a phone in dark mode', { timeout: TIMEOUT }, async () => {
    const context = await newContext(browser, stack, PHONE_DARK);
    try {
      const page = await context.newPage();
      const a = attempt(stack, await register(stack, 'Some Tool'));
      await toConsent(page, stack, a, 'alice');
      await assertReadable(page, 'dark');
      await shoot(page, 'consent-phone-dark');
      await page.click('button[value="deny"]');
      const query = await atClient(page);
      assert.equal(query.error, 'access_denied');
      assert.equal(query.state, a.state);
      assert.equal(query.code, undefined);
      // Denial is not remembered: the next attempt asks again.
      await toConsent(page, stack, attempt(stack, a.clientId), 'alice');
      assertNothingForeign(context, stack);
    } finally {
      await context.close();
    }
  });

  it('revoke: Connected apps lists the apps, Revoke ends one, and it must ask again', { timeout: TIMEOUT }, async () => {
    const context = await newContext(browser, stack, DESKTOP);
    try {
      const page = await context.newPage();
      const desktop = await connect(page, stack, 'Claude Desktop', 'bob');
      const vscode = await connect(page, stack, 'VS Code', 'bob');
      await page.goto(`${stack.issuer}/account`);
      await signInIfAsked(page, stack, 'bob');
      assert.equal(page.url(), `${stack.issuer}/account`);
      assert.equal(await page.textContent('h1'), 'Connected apps');
      const names = await page.locator('.app h2').allTextContents();
      assert.deepEqual(names.sort(), ['Claude Desktop', 'VS Code']);
      assert.match(await page.textContent('body'), /calls itself/);
      await assertReadable(page, 'light');
      await shoot(page, 'account');

      const box = page.locator('.app', { has: page.locator('h2', { hasText: 'VS Code' }) });
      await Promise.all([page.waitForNavigation(), box.locator('button', { hasText: 'Revoke' }).click()]);
      assert.equal(page.url(), `${stack.issuer}/account?done=revoked`);
      assert.match(await page.textContent('.notice'), /disconnected/);
      assert.deepEqual(await page.locator('.app h2').allTextContents(), ['Claude Desktop']);
      await shoot(page, 'account-revoked');
      assert.equal(await refreshWorks(stack, vscode.clientId, vscode.refresh_token), false, 'the grant ended');
      assert.equal(await refreshWorks(stack, desktop.clientId, desktop.refresh_token), true, 'the other app stays');

      // The consent was withdrawn: VS Code has to ask again.
      await toConsent(page, stack, attempt(stack, vscode.clientId), 'bob');
      assertNothingForeign(context, stack);
    } finally {
      await context.close();
    }
  });

  it('sign out everywhere: every app of the user ends; the page fits a phone in dark mode', { timeout: TIMEOUT }, async () => {
    const context = await newContext(browser, stack, PHONE_DARK);
    try {
      const page = await context.newPage();
      const first = await connect(page, stack, 'Cursor', 'alice');
      const second = await connect(page, stack, 'MCP Inspector', 'alice');
      await page.goto(`${stack.issuer}/account`);
      await signInIfAsked(page, stack, 'alice');
      assert.equal(page.url(), `${stack.issuer}/account`);
      await assertReadable(page, 'dark');
      await shoot(page, 'account-phone-dark');
      await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign out everywhere")')]);
      assert.equal(page.url(), `${stack.issuer}/account?done=revoked-all`);
      assert.match(await page.textContent('body'), /No application is connected/);
      for (const app of [first, second]) {
        assert.equal(await refreshWorks(stack, app.clientId, app.refresh_token), false, app.clientId);
      }
      assertNothingForeign(context, stack);
    } finally {
      await context.close();
    }
  });

  it('error pages: an unknown application, and a POST from another site is refused', { timeout: TIMEOUT }, async () => {
    const context = await newContext(browser, stack, DESKTOP);
    const sites = [];
    try {
      const page = await context.newPage();
      const response = await page.goto(`${stack.issuer}/oauth/authorize?client_id=no-such-app&response_type=code`);
      assert.equal(response.status(), 400);
      assert.equal(await page.textContent('h1'), 'Unknown application');
      await assertReadable(page, 'light');
      await shoot(page, 'error');

      // carol is signed in to Connected apps with one app.
      const app = await connect(page, stack, 'Claude Code', 'carol');
      await page.goto(`${stack.issuer}/account`);
      await signInIfAsked(page, stack, 'carol');
      assert.deepEqual(await page.locator('.app h2').allTextContents(), ['Claude Code']);
      // Another site (localhost) and another origin of the same site (127.0.0.1,
      // where the SameSite=Lax cookie is still sent) post "sign out everywhere".
      for (const host of ['localhost', '127.0.0.1']) {
        const site = await hostileSite(host, `${stack.issuer}/account/revoke-all`);
        sites.push(site.server);
        await page.goto(site.url);
        const [posted] = await Promise.all([page.waitForNavigation(), page.click('#go')]);
        assert.equal(posted.status(), 403, host);
        assert.equal(await page.textContent('h1'), 'Request refused');
        if (host === 'localhost') {
          await assertReadable(page, 'light');
          await shoot(page, 'error-forbidden');
        }
      }
      assert.equal(await refreshWorks(stack, app.clientId, app.refresh_token), true, 'nothing was revoked');
      await page.goto(`${stack.issuer}/account`);
      assert.deepEqual(await page.locator('.app h2').allTextContents(), ['Claude Code']);
    } finally {
      await context.close();
      for (const server of sites) server.close();
    }
  });

  it('every screenshot is committed under docs/screenshots', () => {
    assert.ok(taken.length >= 7, `took ${taken.join(', ')}`);
    const missing = taken.filter((name) => !existsSync(join(DOCS_SHOTS, `${name}.png`)));
    assert.deepEqual(missing, [], 'run FJMCP_UPDATE_SCREENSHOTS=1 e2e/browser/run.sh and commit docs/screenshots');
  });
});
