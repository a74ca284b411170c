// The reader of backend messages (health check replies, ErrorResponse fields): framing at every split point, DataRow with
// NULLs, ErrorResponse fields, and refusal of impossible lengths.
import t from 'tap';
import {
  MAX_MESSAGE_BYTES,
  MSG_DATA_ROW,
  MSG_ERROR_RESPONSE,
  MSG_READY_FOR_QUERY,
  MessageReader,
  readDataRow,
  readErrorFields,
  readErrorResponse,
  readParameterStatus,
} from '../../src/protocol/message-reader';
import { CheckProtocolError } from '../../src/errors';

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function dataRow(values: (string | null)[]): Buffer {
  const parts = [Buffer.from([values.length >> 8, values.length & 0xff])];
  for (const v of values) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(v === null ? -1 : Buffer.byteLength(v));
    parts.push(len);
    if (v !== null) parts.push(Buffer.from(v));
  }
  return message('D', Buffer.concat(parts));
}

function errorResponse(fields: Record<string, string>): Buffer {
  const parts = Object.entries(fields).map(([k, v]) => Buffer.from(`${k}${v}\0`));
  return message('E', Buffer.concat([...parts, Buffer.from([0])]));
}

const ROW = ['t', null, '0/3000060', '0/3000060', '0', null];
/** A whole check reply as the server sends it: RowDescription (skipped), DataRow, CommandComplete, ReadyForQuery. */
const REPLY = Buffer.concat([
  message('T', Buffer.from('opaque row description')),
  dataRow(ROW),
  message('C', Buffer.from('SELECT 1\0')),
  message('Z', Buffer.from('I')),
]);

function collect(chunks: Buffer[]): Array<{ type: number; row?: (string | null)[] }> {
  const reader = new MessageReader();
  const seen: Array<{ type: number; row?: (string | null)[] }> = [];
  for (const chunk of chunks) {
    reader.feed(chunk, (type, buf, start, end) => seen.push(type === MSG_DATA_ROW ? { type, row: readDataRow(buf, start, end) } : { type }));
  }
  return seen;
}

t.test('a whole reply in one chunk', async (t) => {
  const seen = collect([REPLY]);
  t.same(seen.map((m) => String.fromCharCode(m.type)), ['T', 'D', 'C', 'Z']);
  t.same(seen[1]!.row, ROW, 'NULL columns stay null, text as sent');
});

t.test('the same messages at every split point, in two and in three pieces', async (t) => {
  const whole = collect([REPLY]);
  for (let i = 0; i <= REPLY.length; i++) {
    t.same(collect([REPLY.subarray(0, i), REPLY.subarray(i)]), whole, `split at ${i}`);
  }
  for (let i = 1; i < REPLY.length; i += 7) {
    for (let j = i; j < REPLY.length; j += 11) {
      t.same(collect([REPLY.subarray(0, i), REPLY.subarray(i, j), REPLY.subarray(j)]), whole, `split at ${i} and ${j}`);
    }
  }
  t.same(collect([...REPLY].map((b) => Buffer.from([b]))), whole, 'one byte at a time');
});

t.test('ErrorResponse: severity, SQLSTATE and message', async (t) => {
  const reader = new MessageReader();
  const errors: ReturnType<typeof readErrorResponse>[] = [];
  const types: number[] = [];
  reader.feed(
    Buffer.concat([errorResponse({ S: 'FEHLER', V: 'ERROR', C: '57014', M: 'canceling statement due to statement timeout' }), message('Z', Buffer.from('I'))]),
    (type, buf, start, end) => {
      types.push(type);
      if (type === MSG_ERROR_RESPONSE) errors.push(readErrorResponse(buf, start, end));
    },
  );
  t.same(types, [MSG_ERROR_RESPONSE, MSG_READY_FOR_QUERY]);
  t.same(errors, [{ severity: 'ERROR', code: '57014', message: 'canceling statement due to statement timeout' }], 'the non-localized severity wins');
  const old = errorResponse({ S: 'FATAL', C: '57P01', M: 'terminating connection due to administrator command' });
  t.same(readErrorResponse(old, 5, old.length), { severity: 'FATAL', code: '57P01', message: 'terminating connection due to administrator command' }, 'without V (before 9.6)');
});

t.test('impossible or huge lengths are refused, not buffered', async (t) => {
  const bad = (length: number) => {
    const b = Buffer.alloc(5);
    b.write('D', 0, 'latin1');
    b.writeInt32BE(length, 1);
    return b;
  };
  for (const length of [0, 3, -1, MAX_MESSAGE_BYTES + 1]) {
    t.throws(() => new MessageReader().feed(bad(length), () => {}), CheckProtocolError, `length ${length}`);
  }
});

t.test('a truncated DataRow is a protocol error', async (t) => {
  const row = dataRow(['t', 'abc']);
  t.throws(() => readDataRow(row, 5, row.length - 1), CheckProtocolError);
});

t.test('an ErrorResponse without its final zero byte is a protocol error (one reader for the check and the startup watcher)', async (t) => {
  const body = Buffer.from('SFATAL\0C57P01\0');
  t.equal(readErrorFields(body, 0, body.length), undefined);
  t.throws(() => readErrorResponse(body, 0, body.length), CheckProtocolError);
  const whole = Buffer.concat([body, Buffer.from([0])]);
  t.same(readErrorFields(whole, 0, whole.length), { severity: 'FATAL', code: '57P01', message: undefined });
});

t.test('ParameterStatus: name and value; a missing NUL is undefined (in_hot_standby tells a promotion on PG 14+)', async (t) => {
  const body = Buffer.from('in_hot_standby\0off\0');
  const framed = message('S', body);
  t.same(readParameterStatus(framed, 5, framed.length), { name: 'in_hot_standby', value: 'off' });
  t.equal(readParameterStatus(body, 0, body.length - 1), undefined);
  t.equal(readParameterStatus(body, 0, 5), undefined);
});
