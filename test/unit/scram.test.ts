// SCRAM-SHA-256 math against RFC 7677's test vector (user "user", password "pencil"), both
// sides: the client's proof, the server's signature, and the ClientKey recovered from a proof.
import t from 'tap';
import * as scram from '../../src/survive/scram';

const CLIENT_FIRST_BARE = 'n=user,r=rOprNGfwEbeRWgbNEkqO';
const SERVER_FIRST = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
const CLIENT_FINAL = 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
const SERVER_FINAL = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';

const v = scram.makeVerifier('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096);
const final = scram.parseClientFinal(CLIENT_FINAL);
const auth = scram.authMessage(CLIENT_FIRST_BARE, SERVER_FIRST, final.withoutProof);

t.test('RFC 7677: the client proof and the server signature', async (t) => {
  t.equal(scram.clientProof(v.clientKey, v.storedKey, auth).toString('base64'), 'dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=');
  t.equal(scram.serverFinal(v, auth), SERVER_FINAL);
  t.ok(scram.serverSignatureValid(SERVER_FINAL, v.serverKey, auth));
  t.notOk(scram.serverSignatureValid('v=AAAA', v.serverKey, auth));
  t.notOk(scram.serverSignatureValid('e=invalid-proof', v.serverKey, auth));
});

t.test('RFC 7677: the ClientKey is recovered from the proof and the verifier alone', async (t) => {
  const key = scram.recoverClientKey(v, auth, final.proof);
  t.ok(key && key.equals(v.clientKey));
  const wrong = Buffer.from(final.proof);
  wrong[0]! ^= 1;
  t.equal(scram.recoverClientKey(v, auth, wrong), undefined, 'a proof off by one bit is refused');
});

t.test('a pg_authid verifier parses; anything else does not', async (t) => {
  const text = `SCRAM-SHA-256$4096:${v.salt.toString('base64')}$${v.storedKey.toString('base64')}:${v.serverKey.toString('base64')}`;
  const parsed = scram.parseVerifier(text)!;
  t.equal(parsed.iterations, 4096);
  t.ok(parsed.storedKey.equals(v.storedKey) && parsed.serverKey.equals(v.serverKey) && parsed.salt.equals(v.salt));
  for (const bad of ['', 'md5abc', 'SCRAM-SHA-256$0:AAAA$AAAA:AAAA', 'SCRAM-SHA-256$4096:AAAA$AAAA:AAAA', text.replace('SCRAM-SHA-256', 'SCRAM-SHA-1'), `${text}x`]) {
    t.equal(scram.parseVerifier(bad), undefined, JSON.stringify(bad));
  }
});

t.test('client-first and server-first messages', async (t) => {
  t.same(scram.parseClientFirst('n,,n=user,r=abc'), { gs2Header: 'n,,', bare: 'n=user,r=abc', clientNonce: 'abc' });
  t.same(scram.parseClientFirst('y,,n=,r=abc').gs2Header, 'y,,');
  for (const bad of ['', 'p=tls-server-end-point,,n=,r=a', 'n,a=admin,n=,r=a', 'x,,n=,r=a', 'n,,r=a', 'n,,n=,r=', 'n,,n=,r=a b', 'n,,n=,r=a,m=ext']) {
    t.throws(() => scram.parseClientFirst(bad), { name: 'ScramFormatError' }, JSON.stringify(bad));
  }
  t.same(scram.parseServerFirst('r=abcdef,s=QUJD,i=4096', 'abc'), { nonce: 'abcdef', salt: Buffer.from('ABC'), iterations: 4096 });
  for (const bad of ['r=xyz,s=QUJD,i=4096', 'r=abc,s=QUJD,i=4096', 'r=abcd,s=QUJD', 'r=abcd,s=!!,i=1', 'garbage']) {
    t.throws(() => scram.parseServerFirst(bad, 'abc'), { name: 'ScramFormatError' }, JSON.stringify(bad));
  }
  for (const bad of ['c=biws,r=abc', 'r=abc,c=biws,p=AAAA', 'c=biws,r=abc,p=AAAA', 'c=biws,r=abc,p=!!!!']) {
    t.throws(() => scram.parseClientFinal(bad), { name: 'ScramFormatError' }, JSON.stringify(bad));
  }
});
