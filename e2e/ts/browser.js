// A scripted "browser" for the authorization part of OAuth: it follows
// redirects one hop at a time, keeps cookies per host, reads the HTML forms it
// is shown and submits them the way a person would (typing a user name and
// password, pressing a button). It only talks to the hosts it was told about;
// a redirect anywhere else (the MCP client's redirect URI, e.g.
// https://claude.ai/api/mcp/auth_callback) is where it stops, as a real
// browser would hand that URL to the client.

const MAX_HOPS = 20;

/** Decodes the entities the broker's and the double's pages use. */
export function decodeEntities(text) {
  return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|#39);/gi, (_, entity) => {
    const lower = entity.toLowerCase();
    if (lower === 'amp') return '&';
    if (lower === 'lt') return '<';
    if (lower === 'gt') return '>';
    if (lower === 'quot') return '"';
    if (lower === 'apos') return "'";
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    return String.fromCodePoint(parseInt(lower.slice(1), 10));
  });
}

function attributes(tag) {
  const attrs = {};
  const pattern = /([a-zA-Z_:][\w:.-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  // Skip the tag name.
  const body = tag.replace(/^<\s*[a-zA-Z]+/, '').replace(/\/?>$/, '');
  let match;
  while ((match = pattern.exec(body))) {
    const value = match[2] ?? match[3] ?? match[4] ?? '';
    attrs[match[1].toLowerCase()] = decodeEntities(value);
  }
  return attrs;
}

/**
 * The forms of an HTML page: action, method, the fields a browser would send
 * (inputs with a name; checkboxes only when checked) and the submit buttons
 * with their label.
 */
export function parseForms(html) {
  const forms = [];
  for (const match of html.matchAll(/<form\b[^>]*>([\s\S]*?)<\/form>/gi)) {
    const formTag = match[0].slice(0, match[0].indexOf('>') + 1);
    const formAttrs = attributes(formTag);
    const inner = match[1];
    const fields = [];
    for (const input of inner.matchAll(/<input\b[^>]*>/gi)) {
      const a = attributes(input[0]);
      if (!a.name) continue;
      const type = (a.type ?? 'text').toLowerCase();
      if ((type === 'checkbox' || type === 'radio') && !('checked' in a)) continue;
      if (type === 'submit' || type === 'button' || type === 'image') continue;
      fields.push({ name: a.name, value: a.value ?? '', type });
    }
    const buttons = [];
    for (const button of inner.matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/gi)) {
      const a = attributes(`<button${button[1]}>`);
      const type = (a.type ?? 'submit').toLowerCase();
      if (type !== 'submit') continue;
      buttons.push({
        name: a.name,
        value: a.value ?? '',
        label: decodeEntities(button[2].replace(/<[^>]*>/g, '')).trim(),
      });
    }
    forms.push({
      action: formAttrs.action ?? '',
      method: (formAttrs.method ?? 'get').toUpperCase(),
      fields,
      buttons,
    });
  }
  return forms;
}

export class Browser {
  /**
   * @param {string[]} origins the origins this browser may load (broker, Forgejo);
   *   a redirect elsewhere ends navigation.
   */
  constructor(origins) {
    this.origins = new Set(origins.map((o) => new URL(o).origin));
    /** host (host:port) → Map(cookie name → value) */
    this.jar = new Map();
    /** Every request made: { method, url, status, location }. */
    this.history = [];
  }

  cookieHeader(url) {
    const cookies = this.jar.get(new URL(url).host);
    if (!cookies || cookies.size === 0) return undefined;
    return [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  storeCookies(url, response) {
    const host = new URL(url).host;
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v] = a.split('=').map((s) => s?.trim());
        return k.toLowerCase() === 'max-age' && Number(v) <= 0;
      });
      if (!this.jar.has(host)) this.jar.set(host, new Map());
      if (expired) this.jar.get(host).delete(name);
      else this.jar.get(host).set(name, value);
    }
  }

  /** One request, no redirect following. */
  async request(method, url, body) {
    const headers = { 'user-agent': 'fjmcp-e2e-ts-browser', accept: 'text/html' };
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(url, { method, headers, body, redirect: 'manual' });
    this.storeCookies(url, response);
    const location = response.headers.get('location') ?? undefined;
    this.history.push({ method, url, status: response.status, location });
    return response;
  }

  /**
   * Loads `url` (GET, or POST with a form body) and follows redirects within
   * the known origins. Returns either
   *   { kind: 'left', url }                         — redirected to a foreign URL (the client's redirect URI)
   *   { kind: 'page', url, status, html, forms }    — a page was shown
   */
  async navigate(url, method = 'GET', body = undefined) {
    let current = url;
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      if (!this.origins.has(new URL(current).origin)) return { kind: 'left', url: current };
      const response = await this.request(method, current, body);
      if (response.status >= 300 && response.status < 400) {
        await response.body?.cancel();
        const location = response.headers.get('location');
        if (!location) throw new Error(`${response.status} from ${current} without Location`);
        current = new URL(location, current).href;
        // 303 (and, in practice, 301/302 after POST) continue with GET.
        if (response.status !== 307 && response.status !== 308) {
          method = 'GET';
          body = undefined;
        }
        continue;
      }
      const html = await response.text();
      return { kind: 'page', url: current, status: response.status, html, forms: parseForms(html) };
    }
    throw new Error(`more than ${MAX_HOPS} redirects from ${url}`);
  }

  /** Submits `form` of `page` as if `button` was pressed, after filling `values`. */
  async submit(page, form, button, values = {}) {
    const params = new URLSearchParams();
    const filled = new Set();
    for (const field of form.fields) {
      if (field.name in values) {
        params.append(field.name, values[field.name]);
        filled.add(field.name);
      } else {
        params.append(field.name, field.value);
      }
    }
    for (const name of Object.keys(values)) {
      if (!filled.has(name)) throw new Error(`the form has no field ${name}: ${JSON.stringify(form)}`);
    }
    if (button?.name) params.append(button.name, button.value);
    const target = new URL(form.action || page.url, page.url).href;
    if (form.method === 'GET') {
      const url = new URL(target);
      url.search = params.toString();
      return this.navigate(url.href);
    }
    return this.navigate(target, 'POST', params.toString());
  }
}

function describe(page) {
  const text = page.html.replace(/<style[\s\S]*?<\/style>/gi, '').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return `${page.status} ${page.url}: ${text.slice(0, 400)}`;
}

function buttonLabelled(form, pattern) {
  return form.buttons.find((b) => pattern.test(b.label));
}

/**
 * Plays the person in front of the browser from an authorization URL to the
 * client's redirect URI: signs in at Forgejo with `login`/`password` on the
 * login form, answers Forgejo's own consent page if one appears, and presses
 * `consent` ("approve" → the Approve button, "deny" → Deny) on the broker's
 * consent page. Returns { url, params, pages } where `url` is the foreign URL
 * the browser was sent to and `params` its query parameters.
 */
export async function authorizeInBrowser(browser, authorizationUrl, { login, password, consent = 'approve' }) {
  const pages = [];
  let submittedLogin = false;
  let step = await browser.navigate(String(authorizationUrl));
  for (let round = 0; round < 10; round++) {
    if (step.kind === 'left') {
      const url = new URL(step.url);
      return { url: step.url, params: Object.fromEntries(url.searchParams), pages };
    }
    pages.push(step);
    const { forms } = step;
    const loginForm = forms.find((f) => f.fields.some((field) => field.type === 'password'));
    if (loginForm) {
      const userField = loginForm.fields.find((f) => f.type === 'text' || f.type === 'email');
      const passwordField = loginForm.fields.find((f) => f.type === 'password');
      const signIn = buttonLabelled(loginForm, /sign in|log ?in/i);
      if (!userField || !signIn) throw new Error(`unexpected login form: ${describe(step)}`);
      if (submittedLogin) throw new Error(`sign-in refused: ${describe(step)}`);
      submittedLogin = true;
      step = await browser.submit(step, loginForm, signIn, {
        [userField.name]: login,
        [passwordField.name]: password,
      });
      continue;
    }
    // A page with a form whose buttons approve or deny: the broker's consent
    // page (Approve / Deny) or Forgejo's (Authorize Application / Cancel).
    const consentForm = forms.find((f) => f.buttons.length >= 2);
    if (consentForm) {
      const pattern = consent === 'approve' ? /^(approve|authorize|allow)/i : /^(deny|cancel)/i;
      const button = buttonLabelled(consentForm, pattern);
      if (!button) throw new Error(`no ${consent} button: ${describe(step)}`);
      step = await browser.submit(step, consentForm, button);
      continue;
    }
    throw new Error(`stuck on a page without a form to answer: ${describe(step)}`);
  }
  throw new Error('the authorization did not finish within 10 pages');
}
