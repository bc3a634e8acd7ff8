import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RedirectCache, urlExpiry } from '../../src/registry/redirect-cache.js';

test('expiry is read from S3, GCS/CloudFront and Azure URLs', () => {
  assert.equal(urlExpiry('https://b.s3.amazonaws.com/x?X-Amz-Date=20260101T000000Z&X-Amz-Expires=600&X-Amz-Signature=abc'), Date.UTC(2026, 0, 1, 0, 10));
  assert.equal(urlExpiry('https://cdn/x?Expires=1767225600&Signature=s'), 1767225600_000);
  assert.equal(urlExpiry('https://acct.blob.core.windows.net/c/x?se=2026-01-01T00%3A05%3A00Z&sig=s'), Date.UTC(2026, 0, 1, 0, 5));
  assert.equal(urlExpiry('https://plain/x'), undefined);
});

test('entries expire at the TTL or the URL expiry minus margin, whichever is first', () => {
  let now = Date.UTC(2026, 0, 1);
  const c = new RedirectCache({ ttlMs: 60_000, marginMs: 10_000, now: () => now });
  c.set('a', 'https://plain/a');
  c.set('b', 'https://b/x?X-Amz-Date=20260101T000000Z&X-Amz-Expires=30&X-Amz-Signature=s');
  c.set('c', 'https://b/x?X-Amz-Date=20260101T000000Z&X-Amz-Expires=5&X-Amz-Signature=s');
  assert.equal(c.get('a'), 'https://plain/a');
  assert.ok(c.get('b'));
  assert.equal(c.get('c'), undefined, 'already inside the margin: not cached');
  now += 21_000;
  assert.equal(c.get('b'), undefined);
  assert.ok(c.get('a'));
  now += 40_000;
  assert.equal(c.get('a'), undefined);
});

test('the cache is bounded, oldest out first', () => {
  const c = new RedirectCache({ ttlMs: 60_000, maxEntries: 2 });
  c.set('1', 'https://x/1');
  c.set('2', 'https://x/2');
  c.set('3', 'https://x/3');
  assert.equal(c.size, 2);
  assert.equal(c.get('1'), undefined);
  assert.equal(c.get('3'), 'https://x/3');
});
