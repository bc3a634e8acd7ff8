import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWwwAuthenticate } from '../../src/registry/www-authenticate.js';

test('WWW-Authenticate parsing table', () => {
  const table: [string, { scheme: string; params: Record<string, string> }[]][] = [
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } }],
    ],
    [
      'Bearer realm="https://r/t", scope="repository:a/b:pull,push", service="svc"',
      [{ scheme: 'bearer', params: { realm: 'https://r/t', scope: 'repository:a/b:pull,push', service: 'svc' } }],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['basic realm=simple', [{ scheme: 'basic', params: { realm: 'simple' } }]],
    [
      'Basic realm="a", Bearer realm="https://t",service="s"',
      [{ scheme: 'basic', params: { realm: 'a' } }, { scheme: 'bearer', params: { realm: 'https://t', service: 's' } }],
    ],
    ['Bearer realm="with \\"quote\\" inside"', [{ scheme: 'bearer', params: { realm: 'with "quote" inside' } }]],
    ['Negotiate abc123==', [{ scheme: 'negotiate', params: { token68: 'abc123==' } }]],
    ['', []],
    ['Bearer', [{ scheme: 'bearer', params: {} }]],
    ['Bearer realm="unterminated', [{ scheme: 'bearer', params: { realm: 'unterminated' } }]],
    ['@@@', []],
  ];
  for (const [input, want] of table) assert.deepEqual(parseWwwAuthenticate(input), want, input);
});
