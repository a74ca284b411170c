// The agent reply we send and the HAProxy agent grammar we parse (tcpcheck.c,
// tcpcheck_agent_expect_reply; configuration manual 5.2 "agent-check").
import t from 'tap';
import { buildAgentReply, cpuWeightPercent, MIN_CPU_WEIGHT_PERCENT, type AgentReading } from '../../src/agent/report';
import { isActionable, parseAgentReply } from '../../src/protocol/agent-reply';

const thresholds = { cpu: { above: 80, for: 0 }, memory: { above: 90, for: 0 }, disk: { above: 90, for: 0 } };
const calm: AgentReading = { cpuLoadPercent: 12, memoryUsedPercent: 40, disks: [{ mount: '/', usedPercent: 30 }, { mount: '/var', usedPercent: 97.4 }], alerts: [] };

t.test('buildAgentReply: the policy', async (t) => {
  t.equal(buildAgentReply(calm, thresholds), 'up ready 100%\n', 'no alert: up, ready (cancels an earlier drain), full weight');
  t.equal(buildAgentReply({ ...calm, cpuLoadPercent: 92, alerts: ['cpu'] }, thresholds), 'up ready 40% #cpu 92%\n');
  t.equal(buildAgentReply({ ...calm, memoryUsedPercent: 91.2, alerts: ['memory'] }, thresholds), 'up drain 100% #memory 91%\n');
  t.equal(buildAgentReply({ ...calm, alerts: ['disk:/var'] }, thresholds), 'down ready 100% #disk /var 97% full\n');
  t.equal(
    buildAgentReply({ ...calm, cpuLoadPercent: 100, memoryUsedPercent: 95, alerts: ['cpu', 'memory', 'disk:/var'] }, thresholds),
    `down drain ${MIN_CPU_WEIGHT_PERCENT}% #disk /var 97% full; memory 95%; cpu 100%\n`,
    'everything at once: each part stated',
  );
});

t.test('buildAgentReply: alerts decide, not raw readings (the `for` hold time applies)', async (t) => {
  t.equal(buildAgentReply({ ...calm, cpuLoadPercent: 99, memoryUsedPercent: 99, alerts: [] }, thresholds), 'up ready 100%\n');
  t.equal(buildAgentReply({ ...calm, cpuLoadPercent: 99, alerts: ['cpu'] }, {}), 'up ready 100%\n', 'no cpu threshold, no scaling');
});

t.test('buildAgentReply: the line stays one printable line', async (t) => {
  const odd: AgentReading = { ...calm, disks: [{ mount: '/mnt/we\nird\u00e9', usedPercent: 99 }], alerts: ['disk:/mnt/we\nird\u00e9'] };
  const line = buildAgentReply(odd, thresholds);
  t.match(line, /^down ready 100% #disk \/mnt\/we\?ird\? 99% full\n$/);
  const many: AgentReading = { ...calm, disks: Array.from({ length: 40 }, (_, i) => ({ mount: `/data/volume${i}`, usedPercent: 99 })), alerts: Array.from({ length: 40 }, (_, i) => `disk:/data/volume${i}`) };
  const long = buildAgentReply(many, thresholds);
  t.ok(long.length < 256, `bounded (${long.length} chars)`);
  t.equal(long.indexOf('\n'), long.length - 1);
});

t.test('cpuWeightPercent scales linearly from the threshold to 100% cpu, never below the floor', async (t) => {
  t.equal(cpuWeightPercent(50, 80), 100);
  t.equal(cpuWeightPercent(80, 80), 100);
  t.equal(cpuWeightPercent(90, 80), 50);
  t.equal(cpuWeightPercent(92, 80), 40);
  t.equal(cpuWeightPercent(99, 80), MIN_CPU_WEIGHT_PERCENT);
  t.equal(cpuWeightPercent(100, 100), 100);
  t.equal(cpuWeightPercent(100, 99.9), MIN_CPU_WEIGHT_PERCENT);
});

t.test('parseAgentReply: HAProxy grammar', async (t) => {
  t.same(parseAgentReply('up 75%'), { state: 'up', health: 'up', weightPercent: 75, unknown: [] });
  t.same(parseAgentReply('drain'), { state: 'drain', admin: 'drain', unknown: [] });
  t.same(parseAgentReply('down #disk 97% full'), { state: 'down', health: 'down', comment: 'disk 97% full', unknown: [] }, 'words after # are a description');
  t.same(parseAgentReply('MAINT\n'), { state: 'maint', admin: 'maint', unknown: [] }, 'case-insensitive');
  t.same(parseAgentReply('ready,up\t50%'), { state: 'up', health: 'up', admin: 'ready', weightPercent: 50, unknown: [] }, 'comma and tab separate words');
  t.same(parseAgentReply('  up , , 10%  '), { state: 'up', health: 'up', weightPercent: 10, unknown: [] }, 'runs of separators');
  t.same(parseAgentReply('up 10% down 20%'), { state: 'down', health: 'down', weightPercent: 20, unknown: [] }, 'the last word of a category wins');
  t.same(parseAgentReply('stopped'), { state: 'stopped', health: 'stopped', unknown: [] });
  t.same(parseAgentReply('fail #x'), { state: 'fail', health: 'fail', comment: 'x', unknown: [] });
  t.same(parseAgentReply('maxconn:30 80%'), { maxconn: 30, weightPercent: 80, unknown: [] });
  t.same(parseAgentReply('0%'), { weightPercent: 0, unknown: [] });
  t.same(parseAgentReply('up\r\ndown'), { state: 'up', health: 'up', unknown: [] }, 'only the first line counts (CR ends it)');
});

t.test('parseAgentReply: state is the most restrictive word', async (t) => {
  t.equal(parseAgentReply('up drain').state, 'drain');
  t.equal(parseAgentReply('down drain').state, 'down');
  t.equal(parseAgentReply('down maint').state, 'maint');
  t.equal(parseAgentReply('up ready').state, 'up');
  t.equal(parseAgentReply('ready').state, 'ready');
});

t.test('parseAgentReply: garbage and empty lines carry nothing to apply', async (t) => {
  const garbage = parseAgentReply('hello world 50.5%');
  t.same(garbage, { unknown: ['hello', 'world', '50.5%'] });
  t.notOk(isActionable(garbage));
  t.notOk(isActionable(parseAgentReply('')));
  t.same(parseAgentReply('#no host sample yet'), { comment: 'no host sample yet', unknown: [] });
  t.notOk(isActionable(parseAgentReply('#no host sample yet')));
  t.ok(isActionable(parseAgentReply('up hello')), 'known words still apply next to unknown ones, as in HAProxy');
});

t.test('every reply we build parses back to what it says', async (t) => {
  const line = buildAgentReply({ ...calm, cpuLoadPercent: 90, memoryUsedPercent: 95, alerts: ['cpu', 'memory'] }, thresholds);
  t.same(parseAgentReply(line), { state: 'drain', health: 'up', admin: 'drain', weightPercent: 50, comment: 'memory 95%; cpu 90%', unknown: [] });
});
