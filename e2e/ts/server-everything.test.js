// A third-party child: the reference "everything" server
// (@modelcontextprotocol/server-everything, stdio) behind the broker, reached
// through the same claude.ai-style OAuth flow with the TypeScript SDK.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startStack, everythingChildCommand } from './harness.js';
import { connectWithOAuth } from './client.js';

const TIMEOUT = 60_000;

function text(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
}

describe('@modelcontextprotocol/server-everything as the child', { timeout: 120_000 }, () => {
  let stack;
  let conn;

  before(async () => {
    stack = await startStack({ childCommand: everythingChildCommand() });
  });

  after(async () => {
    await conn?.client.close().catch(() => {});
    const statuses = await stack?.stop();
    if (statuses) {
      assert.deepEqual(statuses['fjmcp-broker'], { code: 0, signal: null }, 'the broker exits cleanly with a Node child');
    }
  });

  it('connects through OAuth and initializes with the child behind the broker', { timeout: TIMEOUT }, async (t) => {
    try {
      conn = await connectWithOAuth(stack, { login: 'bob' });
    } catch (error) {
      t.diagnostic(stack.logs());
      throw error;
    }
    const info = conn.client.getServerVersion();
    assert.equal(info.name, 'mcp-servers/everything');
    assert.equal(conn.transport.protocolVersion, '2025-11-25');
    assert.ok(conn.transport.sessionId);
    const caps = conn.client.getServerCapabilities();
    assert.ok(caps.tools && caps.resources && caps.prompts, JSON.stringify(caps));
  });

  it('tools/list and its echo and get-sum tools', { timeout: TIMEOUT }, async () => {
    const { client } = conn;
    const { tools } = await client.listTools();
    const names = tools.map((tool) => tool.name);
    for (const expected of ['echo', 'get-sum', 'get-tiny-image']) {
      assert.ok(names.includes(expected), `${expected} in ${names.join(', ')}`);
    }
    const echoed = await client.callTool({ name: 'echo', arguments: { message: 'hello, everything' } });
    assert.notEqual(echoed.isError, true);
    assert.equal(text(echoed), 'Echo: hello, everything');
    const sum = await client.callTool({ name: 'get-sum', arguments: { a: 19, b: 23 } });
    assert.match(text(sum), /\b42\b/);
  });

  it('resources/list, resources/read and a templated resource', { timeout: TIMEOUT }, async () => {
    const { client } = conn;
    const { resources } = await client.listResources();
    assert.ok(resources.length > 0, 'the everything server lists resources');
    const listed = resources[0];
    const read = await client.readResource({ uri: listed.uri });
    assert.equal(read.contents[0].uri, listed.uri);
    assert.ok((read.contents[0].text ?? read.contents[0].blob ?? '').length > 0);

    const { resourceTemplates } = await client.listResourceTemplates();
    assert.ok(resourceTemplates.some((tpl) => tpl.uriTemplate.startsWith('demo://resource/dynamic/text/')), JSON.stringify(resourceTemplates));
    const dynamic = await client.readResource({ uri: 'demo://resource/dynamic/text/7' });
    assert.equal(dynamic.contents[0].uri, 'demo://resource/dynamic/text/7');
    assert.match(dynamic.contents[0].text, /^Resource 7:/);
  });

  it('prompts/list and prompts/get (simple and with arguments)', { timeout: TIMEOUT }, async () => {
    const { client } = conn;
    const { prompts } = await client.listPrompts();
    const names = prompts.map((p) => p.name);
    assert.ok(names.includes('simple-prompt'), names.join(', '));
    assert.ok(names.includes('args-prompt'), names.join(', '));
    const simple = await client.getPrompt({ name: 'simple-prompt' });
    assert.equal(simple.messages[0].role, 'user');
    assert.equal(simple.messages[0].content.text, 'This is a simple prompt without arguments.');
    const withArgs = await client.getPrompt({ name: 'args-prompt', arguments: { city: 'Lisbon' } });
    assert.match(withArgs.messages[0].content.text, /Lisbon/);
  });

  it('ping', async () => {
    assert.deepEqual(await conn.client.ping(), {});
  });
});
