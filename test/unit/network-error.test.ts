import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkError } from '../../src/registry/network-error.js';

const sys = (code: string, message = code) => Object.assign(new Error(message), { code });

test('socket errors become one line naming the host and the fix; first contact makes DNS and refusal permanent', () => {
  const dns = networkError('reg.example:5000', 'https://reg.example:5000/v2/', sys('ENOTFOUND', 'getaddrinfo ENOTFOUND reg.example'), false)!;
  assert.equal(dns.code, 'ERR_DNS');
  assert.equal(dns.message, "cannot resolve registry host reg.example (ENOTFOUND): check the image reference and this machine's DNS");
  assert.equal(dns.permanent, true);
  assert.equal(networkError('reg.example:5000', 'u', sys('ENOTFOUND'), true)!.permanent, false, 'a host that answered before: retried');

  const refused = networkError('127.0.0.1:9', 'u', sys('ECONNREFUSED'), false)!;
  assert.equal(refused.code, 'ERR_CONNECT');
  assert.equal(refused.message, '127.0.0.1:9 refused the connection: is the registry running, and is the port right?');
  assert.equal(refused.permanent, true);
  assert.equal(networkError('127.0.0.1:9', 'u', sys('ECONNREFUSED'), true)!.permanent, false);

  const tls = networkError('reg:5000', 'u', sys('ERR_SSL_WRONG_VERSION_NUMBER', 'ssl3_get_record:wrong version number'), true)!;
  assert.equal(tls.code, 'ERR_TLS');
  assert.equal(tls.message, 'reg:5000 did not answer TLS; if it serves plain HTTP, use --insecure reg:5000');
  assert.equal(tls.permanent, true);

  assert.equal(networkError('reg', 'u', sys('DEPTH_ZERO_SELF_SIGNED_CERT'), true)!.code, 'ERR_TLS');
  assert.equal(networkError('reg', 'u', sys('ECONNRESET'), true)!.permanent, false);
  assert.equal(networkError('reg', 'u', new DOMException('aborted', 'AbortError'), true), undefined, 'aborts are not network errors');
  assert.equal(
    networkError('auth.example:8443', 'u', sys('ECONNREFUSED'), false, 'token service')!.message,
    'auth.example:8443 refused the connection: is the token service running, and is the port right?',
  );
  // undici wraps the socket error as `cause`.
  assert.equal(networkError('reg', 'u', Object.assign(new Error('fetch failed'), { cause: sys('ECONNREFUSED') }), false)!.code, 'ERR_CONNECT');
});
