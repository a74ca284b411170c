// SCRAM-SHA-256-PLUS leaves the server's AuthenticationSASL list when pgwarden terminates TLS;
// every other message passes byte for byte, however the stream is cut into chunks.
import t from 'tap';
import { SaslPlusFilter, withoutPlus } from '../../src/protocol/sasl-plus-filter';
import { framed as message } from '../helpers/framed';

const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const sasl = (...names: string[]) => message('R', Buffer.concat([int32(10), Buffer.from(`${names.join('\0')}\0\0`)]));
const param = message('S', Buffer.from('server_version\x0017.0\x00'));
const ready = message('Z', Buffer.from('I'));

/** Feed `stream` cut at every `step` bytes; return what the filter forwards. */
function through(stream: Buffer, step: number): Buffer {
  const f = new SaslPlusFilter();
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += step) out.push(f.transform(stream.subarray(i, i + step)));
  return Buffer.concat(out);
}

t.test('SCRAM-SHA-256-PLUS is taken out of the mechanism list', async (t) => {
  t.same(withoutPlus(sasl('SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256')), sasl('SCRAM-SHA-256'));
  t.same(withoutPlus(sasl('SCRAM-SHA-256')), sasl('SCRAM-SHA-256'), 'no PLUS: unchanged');
  t.same(withoutPlus(sasl('SCRAM-SHA-256-PLUS')), sasl('SCRAM-SHA-256-PLUS'), 'nothing would be left: unchanged');
  const ok = message('R', int32(0));
  t.same(withoutPlus(ok), ok, 'AuthenticationOk: unchanged');
});

t.test('a startup stream in any chunking: only the SASL list changes', async (t) => {
  const stream = Buffer.concat([sasl('SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'), message('R', int32(0)), param, ready]);
  const expected = Buffer.concat([sasl('SCRAM-SHA-256'), message('R', int32(0)), param, ready]);
  for (const step of [1, 2, 3, 5, 7, 13, stream.length]) t.same(through(stream, step), expected, `chunks of ${step}`);
  const plain = Buffer.concat([message('R', int32(3)), param, ready]);
  t.same(through(plain, 4), plain, 'no SASL: byte for byte');
});

t.test('a nonsense length stops the filter and passes everything on', async (t) => {
  const bad = Buffer.concat([Buffer.from([0x52, 0, 0, 0, 2]), Buffer.from('junk')]);
  t.same(through(bad, 3), bad);
});

// Found by test/unit/fuzz-sasl-plus-filter.test.ts: a list with bytes after its final zero (or
// with no final zero) was rebuilt as a well-formed list, dropping the rest of the message.
t.test('a malformed SASL list passes as the server sent it', async (t) => {
  const list = (s: string) => {
    const body = Buffer.from(s, 'latin1');
    const m = Buffer.alloc(9 + body.length);
    m[0] = 0x52;
    m.writeInt32BE(8 + body.length, 1);
    m.writeInt32BE(10, 5);
    body.copy(m, 9);
    return m;
  };
  for (const s of ['SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0junk', 'SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0\0\0', 'SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0', 'SCRAM-SHA-256-PLUS\0SCRAM-SHA-256']) {
    const m = list(s);
    t.same(withoutPlus(m), m, JSON.stringify(s));
    const f = new SaslPlusFilter();
    t.same(Buffer.concat([f.transform(m.subarray(0, 7)), f.transform(m.subarray(7))]), m, `${JSON.stringify(s)} through the filter`);
  }
  t.same(withoutPlus(list('SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0')), list('SCRAM-SHA-256\0\0'), 'the well-formed list still loses PLUS');
});
