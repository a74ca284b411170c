import t from 'tap';
import { Parser } from 'pg-protocol/dist/parser';
import type { BackendMessage, DatabaseError } from 'pg-protocol/dist/messages';
import { errorResponse, GSSENC_REFUSED, SSL_REFUSED } from '../../src/protocol/error-response';

/** Parses with node-postgres' own parser: what a real client library will see. */
function parseAll(...chunks: Buffer[]): BackendMessage[] {
  const parser = new Parser();
  const out: BackendMessage[] = [];
  for (const c of chunks) parser.parse(c, (m) => out.push(m));
  return out;
}

/** Raw field list in wire order, to check what pg-protocol does not expose (e.g. 'V'). */
function rawFields(msg: Buffer): Array<[string, string]> {
  const fields: Array<[string, string]> = [];
  let pos = 5;
  while (msg[pos] !== 0) {
    const end = msg.indexOf(0, pos + 1);
    fields.push([String.fromCharCode(msg[pos]), msg.toString('utf8', pos + 1, end)]);
    pos = end + 1;
  }
  if (pos !== msg.length - 1) throw new Error('terminator is not the last byte');
  return fields;
}

t.test('a full ErrorResponse parses back with every field', async (t) => {
  const msg = errorResponse({
    severity: 'FATAL',
    code: '57P03',
    message: 'no healthy primary for listener "rw"',
    detail: 'backends db1 and db2 are down',
    hint: 'check the health status page',
  });
  t.equal(msg[0], 0x45, "type byte 'E'");
  t.equal(msg.readInt32BE(1), msg.length - 1, 'length counts itself but not the type byte');

  const [m, ...rest] = parseAll(msg) as DatabaseError[];
  t.equal(rest.length, 0);
  t.equal(m.name, 'error');
  t.equal(m.severity, 'FATAL');
  t.equal(m.code, '57P03');
  t.equal(m.message, 'no healthy primary for listener "rw"');
  t.equal(m.detail, 'backends db1 and db2 are down');
  t.equal(m.hint, 'check the health status page');

  t.same(rawFields(msg).map(([f]) => f), ['S', 'V', 'C', 'M', 'D', 'H'], 'fields in wire order');
  t.same(rawFields(msg)[1], ['V', 'FATAL'], 'non-localized severity');
});

t.test('optional fields are left out', async (t) => {
  const msg = errorResponse({ severity: 'ERROR', code: '08P01', message: 'bad packet' });
  t.same(rawFields(msg), [['S', 'ERROR'], ['V', 'ERROR'], ['C', '08P01'], ['M', 'bad packet']]);
  const [m] = parseAll(msg) as DatabaseError[];
  t.equal(m.detail, undefined);
  t.equal(m.hint, undefined);
});

t.test('text is UTF-8 and the length counts bytes, not characters', async (t) => {
  const message = 'Verbindung für „Jürgen“ abgelehnt 🚫';
  const msg = errorResponse({ severity: 'FATAL', code: '28000', message });
  t.equal(msg.readInt32BE(1), msg.length - 1);
  t.ok(Buffer.byteLength(message) > message.length, 'the sample really has multi-byte characters');
  t.equal((parseAll(msg)[0] as DatabaseError).message, message);
});

t.test('NUL bytes in the text cannot break framing', async (t) => {
  const evil = errorResponse({ severity: 'FATAL', code: '08\u0000P01', message: 'a\u0000b\u0000', detail: '\u0000', hint: 'h\u0000' });
  const next = errorResponse({ severity: 'ERROR', code: '57P03', message: 'second' });
  const msgs = parseAll(Buffer.concat([evil, next])) as DatabaseError[];
  t.equal(msgs.length, 2, 'the following message is still found');
  t.equal(msgs[0].message, 'ab');
  t.equal(msgs[0].code, '08P01');
  t.equal(msgs[0].detail, '');
  t.equal(msgs[0].hint, 'h');
  t.equal(msgs[1].message, 'second');
});

t.test('parses the same when cut at every split point', async (t) => {
  const msg = errorResponse({ severity: 'PANIC', code: 'XX000', message: 'm', detail: 'd', hint: 'h' });
  for (let i = 0; i <= msg.length; i++) {
    const msgs = parseAll(msg.subarray(0, i), msg.subarray(i)) as DatabaseError[];
    if (msgs.length !== 1 || msgs[0].severity !== 'PANIC' || msgs[0].hint !== 'h') {
      t.fail(`split at ${i}: ${JSON.stringify(msgs)}`);
      return;
    }
  }
  t.pass('every split parses to the same single message');
});

t.test('SSL and GSSAPI refusals are the single byte N', async (t) => {
  t.same(SSL_REFUSED, Buffer.from([0x4e]));
  t.same(GSSENC_REFUSED, Buffer.from([0x4e]));
});
