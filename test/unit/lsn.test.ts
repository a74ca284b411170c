import t from 'tap';
import { formatLsn, InvalidLsnError, parseLsn } from '../../src/health/lsn';

t.test('parses the pg_lsn text form into a byte position', async (t) => {
  t.equal(parseLsn('16/B374D848'), 0x16b374d848n);
  t.equal(parseLsn('0/0'), 0n);
  t.equal(parseLsn('0/3000060'), 0x3000060n);
  t.equal(parseLsn('FFFFFFFF/FFFFFFFF'), (1n << 64n) - 1n);
  t.equal(parseLsn('a/b'), (10n << 32n) | 11n, 'lower case is accepted');
});

t.test('formats like PostgreSQL prints it and round-trips', async (t) => {
  t.equal(formatLsn(0x16b374d848n), '16/B374D848');
  t.equal(formatLsn(0n), '0/0');
  t.equal(formatLsn(0x3000060n), '0/3000060');
  for (const text of ['0/1', '1/0', '16/B374D848', 'FFFFFFFF/FFFFFFFF', 'A/12345678']) {
    t.equal(formatLsn(parseLsn(text)), text);
  }
});

t.test('distance between positions is subtraction, across the 32-bit boundary', async (t) => {
  t.equal(parseLsn('1/0') - parseLsn('0/FFFFFFFF'), 1n);
});

t.test('rejects malformed input with a coded error', async (t) => {
  for (const bad of ['', '16', '16/', '/1', 'G/0', '1/2/3', '123456789/0', '0/123456789', '-1/0']) {
    t.throws(() => parseLsn(bad), { code: 'ERR_INVALID_LSN' }, JSON.stringify(bad));
  }
  t.type(new InvalidLsnError('x'), Error);
  t.throws(() => formatLsn(-1n), RangeError);
  t.throws(() => formatLsn(1n << 64n), RangeError);
});
