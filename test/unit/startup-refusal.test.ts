import t from 'tap';
import { cannotConnectNow } from '../../src/proxy/startup-refusal';

/** An ErrorResponse with the given fields (type byte + value), as a server sends it. */
function errorResponse(fields: Record<string, string>): Buffer {
  const body = Buffer.concat([...Object.entries(fields).map(([k, v]) => Buffer.from(`${k}${v}\0`, 'utf8')), Buffer.from([0])]);
  const head = Buffer.alloc(5);
  head[0] = 0x45;
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

t.test('a whole 57P03 ErrorResponse is a refusal, with the server message', async (t) => {
  const e = errorResponse({ S: 'FATAL', V: 'FATAL', C: '57P03', M: 'the database system is shutting down' });
  t.equal(cannotConnectNow(e), 'the database system is shutting down');
  t.equal(cannotConnectNow(Buffer.concat([e, Buffer.from('trailing')])), 'the database system is shutting down', 'bytes after the message do not matter');
});

t.test('anything else is not a refusal', async (t) => {
  const e = errorResponse({ S: 'FATAL', C: '57P03', M: 'shutting down' });
  t.equal(cannotConnectNow(e.subarray(0, e.length - 3)), undefined, 'truncated message');
  t.equal(cannotConnectNow(errorResponse({ S: 'FATAL', C: '28P01', M: 'password authentication failed' })), undefined, 'another SQLSTATE');
  t.equal(cannotConnectNow(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0])), undefined, 'AuthenticationOk');
  t.equal(cannotConnectNow(Buffer.from([0x45, 0, 0])), undefined, 'a header cut short');
  t.equal(cannotConnectNow(Buffer.from([0x45, 0, 0, 0, 2])), undefined, 'a length below 4');
});
