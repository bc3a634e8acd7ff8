import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRedirectTarget } from '../../src/registry/redirect-policy.js';

const D = 'sha256:' + 'a'.repeat(64);
const allowed = (hosts: string[]) => (h: string) => hosts.includes(h);

test('an https registry redirecting to http:// is refused with ERR_PLAIN_HTTP_REFUSED naming the fix, unless that host is allowed', () => {
  assert.throws(
    () => checkRedirectTarget(`https://reg.example/v2/a/blobs/${D}`, 'http://storage.example:8080/x?sig=secret', allowed([]), D),
    (e: Error & { code: string; url: string }) => {
      assert.equal(e.code, 'ERR_PLAIN_HTTP_REFUSED');
      assert.equal(
        e.message,
        `reg.example redirected a read of ${D} to plain HTTP at storage.example:8080; refused because byte ranges are not digest-checked on their own. If storage.example:8080 is trusted, allow it with --insecure storage.example:8080`,
      );
      assert.ok(!e.url.includes('secret'), 'the signed query is redacted');
      return true;
    },
  );
  checkRedirectTarget(`https://reg.example/v2/a/blobs/${D}`, 'http://storage.example:8080/x', allowed(['storage.example:8080']), D);
  checkRedirectTarget(`https://reg.example/v2/a/blobs/${D}`, 'https://storage.example/x', allowed([]), D);
  assert.throws(() => checkRedirectTarget(`https://reg.example/v2/a/blobs/${D}`, 'file:///etc/passwd', allowed([]), D), { code: 'ERR_PROTOCOL' });
});
