import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthError, HttpStatusError, NotFoundError } from '../../src/lib/errors.js';
import { isStoreRegistry, meansNoSuchImage, storeNameCandidates } from '../../src/view/store-names.js';

const SHA256 = `sha256:${'a'.repeat(64)}`;
const SHA512 = `sha512:${'b'.repeat(128)}`;

test('store root: registry hosts are names, anything else is no such file', () => {
  for (const ok of ['docker.io', '127.0.0.1:5000', 'localhost', 'registry.internal:5000', '[::1]:5000', 'my-host']) assert.equal(isStoreRegistry(ok), true, ok);
  for (const bad of ['', '-x', 'a_b', 'host:port', 'a..b', '.hidden', 'x/y']) assert.equal(isStoreRegistry(bad), false, bad);
});

test('directly under a registry a name is only a repository component (no repository yet to tag)', () => {
  assert.deepEqual(storeNameCandidates('r:5000', [], 'app'), { image: undefined, component: true });
  assert.deepEqual(storeNameCandidates('r:5000', [], 'App'), { image: undefined, component: false });
});

test('under a repository: a tag is tried as an image first, and is also a deeper component when lowercase', () => {
  const c = storeNameCandidates('r:5000', ['team', 'app'], 'v1.2');
  assert.equal(c.image?.canonical, 'r:5000/team/app:v1.2');
  assert.equal(c.component, true);
  // Upper case is a valid tag, never a repository component.
  const upper = storeNameCandidates('r:5000', ['app'], 'Latest');
  assert.equal(upper.image?.canonical, 'r:5000/app:Latest');
  assert.equal(upper.component, false);
});

test('digests: sha256 and sha512 both name an image pinned by digest (the store once accepted only sha256)', () => {
  const a = storeNameCandidates('r:5000', ['app'], SHA256);
  assert.equal(a.image?.canonical, `r:5000/app@${SHA256}`);
  assert.equal(a.image?.digest, SHA256);
  assert.equal(a.image?.tag, undefined);
  assert.equal(a.component, false);
  assert.equal(storeNameCandidates('r:5000', ['app'], SHA512).image?.digest, SHA512);
  // Not a digest (wrong length, upper-case hex) and not a tag (the colon): nothing.
  assert.deepEqual(storeNameCandidates('r:5000', ['app'], `sha256:${'a'.repeat(63)}`), { image: undefined, component: false });
  assert.deepEqual(storeNameCandidates('r:5000', ['app'], `sha256:${'A'.repeat(64)}`), { image: undefined, component: false });
});

test('names that are neither: a 129-character tag, a leading dot, a repository over the 255-character name limit', () => {
  assert.deepEqual(storeNameCandidates('r:5000', ['app'], 'x'.repeat(129)), { image: undefined, component: true });
  assert.deepEqual(storeNameCandidates('r:5000', ['app'], '.v1'), { image: undefined, component: false });
  // distribution limits registry + repository to 255 characters: r:5000/<130>/<130> is 268.
  const c = storeNameCandidates('r:5000', ['a'.repeat(130), 'b'.repeat(130)], 'v1');
  assert.equal(c.image, undefined);
  assert.equal(storeNameCandidates('r:5000', ['a'.repeat(120), 'b'.repeat(120)], 'v1').image?.tag, 'v1', 'r:5000/<120>/<120> is 248: fine');
  assert.equal(c.component, true);
});

test('what "no such image" is: 404, or a 401 for the scope only; refused credentials and 5xx are errors', () => {
  assert.equal(meansNoSuchImage(new NotFoundError('manifest r/app:v1', { status: 404 })), true);
  assert.equal(meansNoSuchImage(new AuthError('r', 'anonymous access refused', {}, false)), true);
  assert.equal(meansNoSuchImage(new AuthError('r', 'wrong password', {}, true)), false);
  assert.equal(meansNoSuchImage(new HttpStatusError(503, {})), false);
  assert.equal(meansNoSuchImage(new Error('ECONNRESET')), false);
});
