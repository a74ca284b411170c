// What pgwarden makes of auth.query's row: a SCRAM verifier or an md5 hash is checked at the
// proxy; NULL (no password) or anything else keeps the session end to end; no row is an unknown user.
import t from 'tap';
import { classify } from '../../src/proxy/auth-lookup';
import * as scram from '../../src/survive/scram';

t.test('auth.query rows', async (t) => {
  const v = scram.makeVerifier('pw', Buffer.from('saltsaltsaltsalt'), 4096);
  const text = `SCRAM-SHA-256$4096:${v.salt.toString('base64')}$${v.storedKey.toString('base64')}:${v.serverKey.toString('base64')}`;
  t.equal(classify(['alice', text]).kind, 'scram-sha-256');
  t.same(classify(['alice', 'md5' + 'a'.repeat(32)]), { kind: 'md5', hash: 'md5' + 'a'.repeat(32) });
  t.same(classify(undefined), { kind: 'unknown-user' });
  t.match(classify(['alice', null]), { kind: 'passthrough', why: /no password/ });
  t.match(classify(['alice', 'plaintext-password']), { kind: 'passthrough' });
  t.match(classify(['alice', 'md5xyz']), { kind: 'passthrough' });
  t.match(classify(['alice', 42]), { kind: 'passthrough' });
});
