import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference, isLoopbackHost } from '../../src/registry/reference.js';

const D = `sha256:${'a'.repeat(64)}`;

test('references normalise like docker', () => {
  const table: [string, string, string, string, string | undefined, string | undefined][] = [
    // input, registry, endpoint, repository, tag, digest
    ['alpine', 'docker.io', 'registry-1.docker.io', 'library/alpine', 'latest', undefined],
    ['alpine:3.19', 'docker.io', 'registry-1.docker.io', 'library/alpine', '3.19', undefined],
    ['docker.io/alpine', 'docker.io', 'registry-1.docker.io', 'library/alpine', 'latest', undefined],
    ['index.docker.io/library/alpine', 'docker.io', 'registry-1.docker.io', 'library/alpine', 'latest', undefined],
    ['bitnami/redis:7', 'docker.io', 'registry-1.docker.io', 'bitnami/redis', '7', undefined],
    ['ghcr.io/org/app', 'ghcr.io', 'ghcr.io', 'org/app', 'latest', undefined],
    ['localhost/app', 'localhost', 'localhost', 'app', 'latest', undefined],
    ['localhost:5000/a/b/c:v1', 'localhost:5000', 'localhost:5000', 'a/b/c', 'v1', undefined],
    [`127.0.0.1:5000/app@${D}`, '127.0.0.1:5000', '127.0.0.1:5000', 'app', undefined, D],
    [`host:5000/repo:tag@${D}`, 'host:5000', 'host:5000', 'repo', 'tag', D],
    ['Foo/bar', 'Foo', 'Foo', 'bar', 'latest', undefined],
    ['[::1]:5000/x', '[::1]:5000', '[::1]:5000', 'x', 'latest', undefined],
    ['a__b/c-d--e.f_g', 'docker.io', 'registry-1.docker.io', 'a__b/c-d--e.f_g', 'latest', undefined],
  ];
  for (const [input, registry, endpoint, repository, tag, digest] of table) {
    const r = parseReference(input);
    assert.deepEqual([r.registry, r.endpoint, r.repository, r.tag, r.digest], [registry, endpoint, repository, tag, digest], input);
  }
  assert.equal(parseReference('alpine').canonical, 'docker.io/library/alpine:latest');
});

test('bad references name the part that is wrong', () => {
  const table: [string, RegExp][] = [
    ['', /reference is empty/],
    ['FOO', /component "FOO" must be lowercase/],
    ['docker.io/Foo', /component "Foo" must be lowercase/],
    ['alpine:', /tag ""/],
    ['alpine:-bad', /tag "-bad"/],
    [`alpine@sha256:${'a'.repeat(63)}`, /digest sha256 needs 64 hex characters/],
    ['alpine@md5:abcd', /digest unsupported algorithm "md5"/],
    [`alpine@sha256:${'A'.repeat(64)}`, /digest the encoded part must be lowercase hex/],
    ['a//b', /component "" is empty/],
    ['a/-b', /component "-b"/],
    ['a b', /whitespace/],
    [`x/${'a'.repeat(300)}`, /longer than 255/],
    ['bad_host:99/x', /registry host "bad_host:99"/],
    ['ghcr.io/', /repository is empty/],
  ];
  for (const [input, re] of table) {
    assert.throws(() => parseReference(input), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_REFERENCE' && re.test(e.message), input);
  }
});

test('loopback hosts are recognised', () => {
  assert.equal(isLoopbackHost('127.0.0.1:5000'), true);
  assert.equal(isLoopbackHost('localhost'), true);
  assert.equal(isLoopbackHost('[::1]:80'), true);
  assert.equal(isLoopbackHost('10.0.0.1:5000'), false);
  assert.equal(isLoopbackHost('localhost.evil.com'), false);
});
