import t, { type Test } from 'tap';
import { ConfigValueError } from '../../src/errors';
import { formatDuration, formatSize, parseDuration, parseFraction, parsePercent, parseReplicaLag, parseSize } from '../../src/config/units';

/** Runs `fn` and returns the ConfigValueError it throws (fails the test when it does not). */
function rejection(t: Test, fn: () => unknown): ConfigValueError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigValueError) {
      t.equal(e.code, 'PGW_CONFIG_BAD_VALUE');
      return e;
    }
    throw e;
  }
  t.fail('expected a ConfigValueError');
  return new ConfigValueError('(none thrown)');
}

t.test('durations: numbers are milliseconds, strings carry a unit', async (t) => {
  const cases: [unknown, number][] = [
    [0, 0],
    [250, 250],
    [1.5, 1.5],
    ['0ms', 0],
    ['250ms', 250],
    ['1s', 1_000],
    ['1.5s', 1_500],
    ['.5s', 500],
    ['2m', 120_000],
    ['2min', 120_000],
    ['1h', 3_600_000],
    ['0.1h', 360_000],
    ['1d', 86_400_000],
    [' 10 s ', 10_000],
    ['+3s', 3_000],
  ];
  for (const [input, ms] of cases) t.equal(parseDuration(input), ms, `${JSON.stringify(input)} → ${ms} ms`);
});

t.test('durations: wrong values say what was expected', async (t) => {
  t.match(rejection(t, () => parseDuration('1x')).message, /unknown duration unit `x`.*expected ms, s, m, h or d/);
  t.match(rejection(t, () => parseDuration('-1s')).message, /must not be negative/);
  t.match(rejection(t, () => parseDuration(-5)).message, /must not be negative, got -5/);
  t.match(rejection(t, () => parseDuration('abc')).message, /expected a duration like .*got "abc"/);
  t.match(rejection(t, () => parseDuration(true)).message, /got true/);
  t.match(rejection(t, () => parseDuration(null)).message, /got an empty value/);
  t.match(rejection(t, () => parseDuration([1])).message, /got a list/);
  t.match(rejection(t, () => parseDuration(Infinity)).message, /expected a duration/);
  t.match(rejection(t, () => parseDuration('1s2')).message, /expected a duration/);
  t.match(rejection(t, () => parseDuration('5constructor')).message, /unknown duration unit/, 'prototype keys are not units');

  const bare = rejection(t, () => parseDuration('250'));
  t.match(bare.message, /needs a unit/);
  t.match(bare.hint, /250ms/);
  t.equal(rejection(t, () => parseDuration('1S')).hint, 'write `1s`; units are case-sensitive, as in PostgreSQL');
  t.equal(rejection(t, () => parseDuration('5sec')).hint, 'write `5s`');
  t.equal(rejection(t, () => parseDuration('2 minutes')).hint, 'write `2m`');
  t.equal(rejection(t, () => parseDuration('3MS')).hint, 'write `3ms`; units are case-sensitive, as in PostgreSQL');
  t.equal(rejection(t, () => parseDuration('3fortnights')).hint, undefined, 'no guess when nothing is close');
});

t.test('sizes: numbers are bytes, units are powers of 1024 like PostgreSQL', async (t) => {
  const cases: [unknown, number][] = [
    [0, 0],
    [4096, 4096],
    ['0B', 0],
    ['100B', 100],
    ['1kB', 1024],
    ['1KB', 1024],
    ['1.5kB', 1536],
    ['16MB', 16 * 1024 * 1024],
    ['1GB', 1024 ** 3],
    ['2TB', 2 * 1024 ** 4],
    ['512 kB', 512 * 1024],
  ];
  for (const [input, bytes] of cases) t.equal(parseSize(input), bytes, `${JSON.stringify(input)} → ${bytes} bytes`);
});

t.test('sizes: wrong values say what was expected', async (t) => {
  t.match(rejection(t, () => parseSize(-1)).message, /must not be negative/);
  t.match(rejection(t, () => parseSize('-16MB')).message, /must not be negative/);
  t.match(rejection(t, () => parseSize('16XB')).message, /unknown size unit `XB`.*expected B, kB, MB, GB or TB/);
  t.match(rejection(t, () => parseSize('lots')).message, /expected a size like/);
  t.match(rejection(t, () => parseSize({})).message, /got a mapping/);
  t.match(rejection(t, () => parseSize('16')).hint, /16B/);
  t.equal(rejection(t, () => parseSize('16mb')).hint, 'write `16MB`; units are case-sensitive, as in PostgreSQL');
  t.equal(rejection(t, () => parseSize('16Mb')).hint, 'write `16MB`; units are case-sensitive, as in PostgreSQL');
  t.equal(rejection(t, () => parseSize('16M')).hint, 'write `16MB`');
  t.equal(rejection(t, () => parseSize('1 gigabyte')).hint, undefined);
});

t.test('fractions: 0..1 or a percentage', async (t) => {
  t.equal(parseFraction(0), 0);
  t.equal(parseFraction(0.1), 0.1);
  t.equal(parseFraction(1), 1);
  t.equal(parseFraction('10%'), 0.1);
  t.equal(parseFraction('0%'), 0);
  t.equal(parseFraction('100%'), 1);
  t.equal(parseFraction('12.5%'), 0.125);
  t.match(rejection(t, () => parseFraction(1.5)).message, /from 0 to 1/);
  t.equal(rejection(t, () => parseFraction(10)).hint, 'for 10 percent write `10%`');
  t.match(rejection(t, () => parseFraction('150%')).message, /from 0 to 1/);
  t.match(rejection(t, () => parseFraction(-0.1)).message, /from 0 to 1/);
  t.match(rejection(t, () => parseFraction('0.1')).message, /expected a fraction/);
  t.match(rejection(t, () => parseFraction('ten')).message, /expected a fraction/);
});

t.test('percentages: 1 to 100, written `80%` or `80`', async (t) => {
  t.equal(parsePercent('80%'), 80);
  t.equal(parsePercent(80), 80);
  t.equal(parsePercent('85.5 %'), 85.5);
  t.equal(parsePercent(1), 1);
  t.equal(parsePercent('100%'), 100);

  const fraction = rejection(t, () => parsePercent(0.8));
  t.equal(fraction.message, 'must be from 1% to 100%, got 0.8');
  t.equal(fraction.hint, 'for 80 percent write `80%`', 'a fraction is most likely meant as a percentage');
  t.equal(rejection(t, () => parsePercent('0.25%')).hint, undefined, '`0.25%` says percent: no fraction hint');
  t.match(rejection(t, () => parsePercent('150%')).message, /from 1% to 100%, got "150%"/);
  t.match(rejection(t, () => parsePercent(0)).message, /got 0/);
  t.match(rejection(t, () => parsePercent(-5)).message, /got -5/);
  const quoted = rejection(t, () => parsePercent('80'));
  t.equal(quoted.message, 'a percentage in quotes needs `%`, got "80"');
  t.equal(quoted.hint, 'write `80%`');
  t.match(rejection(t, () => parsePercent('80 percent')).message, /expected a percentage from 1 to 100 like `80%`, got "80 percent"/);
  t.match(rejection(t, () => parsePercent('0.8x')).message, /expected a percentage/);
  t.match(rejection(t, () => parsePercent(true)).message, /got true/);
  t.match(rejection(t, () => parsePercent(Number.NaN)).message, /expected a percentage/);
});

t.test('replica lag: a size is bytes, a duration is time', async (t) => {
  t.same(parseReplicaLag('16MB'), { bytes: 16 * 1024 * 1024 });
  t.same(parseReplicaLag('512kB'), { bytes: 512 * 1024 });
  t.same(parseReplicaLag(1000), { bytes: 1000 }, 'a bare number is bytes');
  t.same(parseReplicaLag('10s'), { ms: 10_000 });
  t.same(parseReplicaLag('2m'), { ms: 120_000 }, '`m` is minutes, `MB` is megabytes');
  t.same(parseReplicaLag('500ms'), { ms: 500 });
  const wrong = rejection(t, () => parseReplicaLag('16mb'));
  t.match(wrong.message, /expected a size .* or a duration/);
  t.match(wrong.hint, /16MB/);
  t.match(rejection(t, () => parseReplicaLag('10')).message, /expected a size .* or a duration/);
  t.match(rejection(t, () => parseReplicaLag(-1)).message, /must not be negative/);
  t.match(rejection(t, () => parseReplicaLag(true)).message, /got true/);
});

t.test('formatting writes values back in config units', async (t) => {
  t.equal(formatDuration(0), '0ms');
  t.equal(formatDuration(250), '250ms');
  t.equal(formatDuration(1_000), '1s');
  t.equal(formatDuration(1_500), '1.5s');
  t.equal(formatDuration(90_000), '90s');
  t.equal(formatDuration(120_000), '2m');
  t.equal(formatDuration(3_600_000), '1h');
  t.equal(formatDuration(86_400_000), '1d');
  t.equal(formatSize(0), '0B');
  t.equal(formatSize(100), '100B');
  t.equal(formatSize(1536), '1536B');
  t.equal(formatSize(1024), '1kB');
  t.equal(formatSize(16 * 1024 * 1024), '16MB');
  t.equal(formatSize(1024 ** 3), '1GB');
  for (const text of ['250ms', '1.5s', '2m', '1h']) t.equal(formatDuration(parseDuration(text)), text, `${text} round-trips`);
  for (const text of ['1kB', '16MB', '3GB', '1TB']) t.equal(formatSize(parseSize(text)), text, `${text} round-trips`);
});
