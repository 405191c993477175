// Starts and stops the processes an end-to-end test needs: the Forgejo test
// double and the real fjmcp-broker binary, with a chosen MCP child command,
// optionally behind a reverse proxy (e2e/deploy runs the deploy/ recipes so).
//
// Binaries come from $FJMCP_BIN_DIR (default: <repo>/target/debug, where
// <repo> is two levels above this directory). Every stack gets its own
// temporary directory (SQLite store, sealing key) and its own ports.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, '..', '..');
export const BIN_DIR = process.env.FJMCP_BIN_DIR
  ? resolve(process.env.FJMCP_BIN_DIR)
  : join(REPO, 'target', 'debug');

/** The confidential app the broker uses at the Forgejo double. */
export const BROKER_CLIENT_ID = 'fjmcp-broker-e2e';
export const BROKER_CLIENT_SECRET = 'fjmcp-broker-e2e-secret';

/** Users of the Forgejo double: login → password. */
export const USERS = { alice: 'alice-password', bob: 'bob-password' };

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

function binary(name) {
  const path = join(BIN_DIR, name);
  if (!existsSync(path)) {
    throw new Error(
      `${path} does not exist: build the workspace (cargo build --workspace) ` +
        'or point FJMCP_BIN_DIR at the directory holding fjmcp-broker, forgejo-double and fixture-child',
    );
  }
  return path;
}

/** The broker's child command for the fixture child (the default). */
export function fixtureChildCommand() {
  return binary('fixture-child');
}

/**
 * The broker's child command for @modelcontextprotocol/server-everything over
 * stdio: this Node binary running the package's bin (dist/index.js) with the
 * `stdio` transport. Absolute paths, because the broker gives children only
 * PATH, HOME, LANG and TZ and splits the command without a shell.
 */
export function everythingChildCommand() {
  const entry = join(HERE, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
  if (!existsSync(entry)) {
    throw new Error(`${entry} does not exist: run npm ci in ${HERE}`);
  }
  for (const part of [process.execPath, entry]) {
    if (/\s/.test(part)) throw new Error(`the child command cannot contain whitespace: ${part}`);
  }
  return `${process.execPath} ${entry} stdio`;
}

/** A port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * A spawned process whose output is kept (for failure messages) and scanned
 * line by line.
 */
class Proc {
  constructor(name, command, args, env) {
    this.name = name;
    this.output = [];
    this.exited = false;
    this.lineWatchers = [];
    this.child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exit = new Promise((resolveExit) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true;
        this.exitStatus = { code, signal };
        resolveExit(this.exitStatus);
      });
    });
    this.child.on('error', (error) => this.output.push(`[spawn error] ${error.message}`));
    // Safety net: never leave a process behind if the test process dies first.
    const killOnExit = () => this.child.kill('SIGKILL');
    process.once('exit', killOnExit);
    this.exit.then(() => process.off('exit', killOnExit));
    for (const [stream, label] of [
      [this.child.stdout, 'stdout'],
      [this.child.stderr, 'stderr'],
    ]) {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        pending += chunk;
        let newline;
        while ((newline = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          this.output.push(`${label}: ${line}`);
          for (const watcher of this.lineWatchers) watcher(line, label);
        }
      });
    }
  }

  /** Resolves with the first matching line's match; rejects on exit or timeout. */
  waitForLine(pattern, timeoutMs = START_TIMEOUT_MS) {
    return new Promise((resolveLine, reject) => {
      const finish = (settle, value) => {
        clearTimeout(timer);
        this.lineWatchers = this.lineWatchers.filter((w) => w !== watcher);
        this.child.off('exit', onExit);
        settle(value);
      };
      const watcher = (line) => {
        const match = pattern.exec(line);
        if (match) finish(resolveLine, match);
      };
      const onExit = (code, signal) =>
        finish(reject, new Error(`${this.name} exited (code ${code}, signal ${signal}) before printing ${pattern}\n${this.tail()}`));
      const timer = setTimeout(
        () => finish(reject, new Error(`${this.name} did not print ${pattern} within ${timeoutMs} ms\n${this.tail()}`)),
        timeoutMs,
      );
      this.lineWatchers.push(watcher);
      this.child.on('exit', onExit);
    });
  }

  tail(lines = 60) {
    return this.output.slice(-lines).map((l) => `  [${this.name}] ${l}`).join('\n');
  }

  /** SIGTERM, then SIGKILL if it does not exit in time. */
  async stop() {
    if (this.exited) return this.exitStatus;
    this.child.kill('SIGTERM');
    let timer;
    const timeout = new Promise((resolveTimeout) => {
      timer = setTimeout(() => resolveTimeout(null), STOP_TIMEOUT_MS);
    });
    const status = await Promise.race([this.exit, timeout]);
    clearTimeout(timer);
    if (status) return status;
    this.child.kill('SIGKILL');
    return await this.exit;
  }
}

/**
 * Starts the Forgejo double and the broker.
 *
 * options.childCommand: the broker's FJMCP_CHILD_COMMAND (default: the fixture child)
 * options.brokerEnv:    extra FJMCP_* variables
 * options.doubleArgs:   extra forgejo-double flags (e.g. ['--auto-login', 'bob'])
 * options.proxy:        a reverse proxy in front of the broker, as in production:
 *                       { name, start({ listenPort, upstreamPort, dir }) → { command, args, env } }
 *                       (may be async). The proxy's URL becomes the broker's public URL
 *                       (stack.issuer; FJMCP_PUBLIC_URL) while the broker listens on a port of
 *                       its own (stack.brokerUrl), so every client request goes through the proxy.
 */
export async function startStack(options = {}) {
  const childCommand = options.childCommand ?? fixtureChildCommand();
  const brokerBin = binary('fjmcp-broker');
  const doubleBin = binary('forgejo-double');
  const dir = mkdtempSync(join(tmpdir(), 'fjmcp-e2e-ts-'));
  const port = await freePort();
  const proxyPort = options.proxy ? await freePort() : undefined;
  const brokerUrl = `http://127.0.0.1:${port}`;
  const issuer = `http://127.0.0.1:${proxyPort ?? port}`;
  const procs = [];
  const stack = {
    dir,
    issuer,
    /** Where the broker itself listens (the issuer too, unless there is a proxy). */
    brokerUrl,
    mcpUrl: `${issuer}/mcp`,
    forgejoUrl: undefined,
    procs,
    /** Output of both processes, for failure messages. */
    logs: () => procs.map((p) => p.tail(200)).join('\n'),
    async stop() {
      const statuses = {};
      // The broker first: it stops its children and stops calling the double.
      for (const proc of [...procs].reverse()) statuses[proc.name] = await proc.stop();
      rmSync(dir, { recursive: true, force: true });
      return statuses;
    },
  };
  try {
    const users = Object.entries(USERS).flatMap(([login, password]) => ['--user', `${login}:${password}`]);
    const double = new Proc(
      'forgejo-double',
      doubleBin,
      [
        '--listen', '127.0.0.1:0',
        '--client-id', BROKER_CLIENT_ID,
        '--client-secret', BROKER_CLIENT_SECRET,
        '--redirect-uri', `${issuer}/oauth/callback`,
        ...users,
        ...(options.doubleArgs ?? []),
      ],
      { PATH: process.env.PATH, RUST_LOG: process.env.RUST_LOG ?? 'info' },
    );
    procs.push(double);
    const [, forgejoUrl] = await double.waitForLine(/forgejo-double listening on (http:\/\/\S+)/);
    stack.forgejoUrl = forgejoUrl;

    const broker = new Proc('fjmcp-broker', brokerBin, ['serve'], {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? dir,
      FJMCP_PUBLIC_URL: issuer,
      FJMCP_LISTEN: `127.0.0.1:${port}`,
      FJMCP_FORGEJO_URL: forgejoUrl,
      FJMCP_FORGEJO_CLIENT_ID: BROKER_CLIENT_ID,
      FJMCP_FORGEJO_CLIENT_SECRET: BROKER_CLIENT_SECRET,
      FJMCP_STORE: `sqlite:${join(dir, 'b.db')}`,
      FJMCP_CHILD_COMMAND: childCommand,
      FJMCP_LOG_FORMAT: 'json',
      FJMCP_LOG_LEVEL: process.env.FJMCP_LOG_LEVEL ?? 'info',
      ...(options.brokerEnv ?? {}),
    });
    procs.push(broker);
    await broker.waitForLine(/"message":"listening"/);
    // Belt and braces: the listening line comes right after bind; make sure HTTP answers.
    await waitForHealth(`${brokerUrl}/healthz`, broker);

    if (options.proxy) {
      const proxyDir = join(dir, options.proxy.name);
      const spec = await options.proxy.start({ listenPort: proxyPort, upstreamPort: port, dir: proxyDir });
      const proxy = new Proc(options.proxy.name, spec.command, spec.args, spec.env ?? { PATH: process.env.PATH });
      procs.push(proxy);
      await waitForHealth(`${issuer}/healthz`, proxy);
    }
    return stack;
  } catch (error) {
    await stack.stop();
    throw error;
  }
}

async function waitForHealth(url, proc) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last;
  while (Date.now() < deadline) {
    if (proc.exited) break;
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.ok) return;
      last = `status ${response.status}`;
    } catch (error) {
      last = error.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer 200 (${last})\n${proc.tail()}`);
}
