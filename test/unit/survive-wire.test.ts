// The pure pieces of sessions.survive: the message tap (whole messages for the tracker, at every
// split point, bounded), the server relay that holds back a server's goodbye, the trust check at
// startup, the messages pgwarden writes itself, and a cancel after a move.
import { EventEmitter } from 'node:events';
import t from 'tap';
import { FrameTracker } from '../../src/protocol/frame-tracker';
import { MessageTap, MAX_TRACKED_BODY } from '../../src/survive/message-tap';
import { ServerRelay } from '../../src/survive/server-relay';
import { trustedAtStartup } from '../../src/survive/trust-at-startup';
import { parameterStatusMessage, parseMessage, queryMessage, startupMessage, syncMessage } from '../../src/protocol/frontend-messages';
import { readFirstPacket } from '../../src/protocol/first-packet';
import { errorResponse } from '../../src/protocol/error-response';
import { forwardCancel, FanoutBudget } from '../../src/proxy/cancel-forwarder';
import { CancelRegistry } from '../../src/proxy/cancel-registry';
import { cancelKey, cancelRequest } from '../../src/protocol/cancel';
import { realClock } from '../../src/clock';
import type { RelayEnd } from '../../src/net/relay-socket';
import { framed as msg } from '../helpers/framed';

t.test('the tap delivers every message whole at every split point, and feeds the frame tracker', async (t) => {
  const stream = Buffer.concat([queryMessage("SET search_path = 'a'"), parseMessage('s1', 'select $1', [23]), syncMessage(), msg('X')]);
  const expected = [
    ['Q', "SET search_path = 'a'\0"],
    ['P', parseMessage('s1', 'select $1', [23]).subarray(5).toString('latin1')],
    ['S', ''],
    ['X', ''],
  ];
  for (let cut = 0; cut <= stream.length; cut++) {
    for (const second of [cut, Math.min(stream.length, cut + 3)]) {
      const got: string[][] = [];
      const frames = new FrameTracker('client');
      const tap = new MessageTap(frames, (type, body) => got.push([String.fromCharCode(type), body.toString('latin1')]), 'client');
      tap.feed(stream.subarray(0, cut));
      tap.feed(stream.subarray(cut, second));
      tap.feed(stream.subarray(second));
      t.same(got, expected, `cuts at ${cut} and ${second}`);
      t.equal(frames.count, 2, 'the frame tracker counted Query and Sync');
      t.ok(frames.terminated && frames.atBoundary);
      t.equal(tap.lost, undefined);
    }
  }
});

t.test('the tap says where each message began in the chunk', async (t) => {
  const starts: number[] = [];
  const tap = new MessageTap(new FrameTracker('server'), (_type, _body, start) => starts.push(start), 'server');
  const a = msg('S', 'a\0b\0');
  const b = msg('E', 'SFATAL\0\0');
  tap.feed(Buffer.concat([a, b.subarray(0, 3)]));
  tap.feed(b.subarray(3));
  tap.feed(Buffer.concat([a, b]));
  t.same(starts, [0, -1, 0, a.length]);
});

t.test('a long data row is skipped; a long query cannot be followed and is reported', async (t) => {
  const got: string[] = [];
  const server = new MessageTap(new FrameTracker('server'), (type) => got.push(String.fromCharCode(type)), 'server');
  const row = msg('D', Buffer.alloc(MAX_TRACKED_BODY + 10));
  for (let i = 0; i < row.length; i += 65_536) server.feed(row.subarray(i, i + 65_536));
  server.feed(msg('Z', 'I'));
  t.same(got, ['Z'], 'the row was not delivered, the next message was');
  t.equal(server.lost, undefined);
  const client = new MessageTap(new FrameTracker('client'), () => undefined, 'client');
  client.feed(msg('Q', Buffer.alloc(MAX_TRACKED_BODY + 10, 0x20)));
  t.match(client.lost, /over 1048576 bytes could not be followed/);
  const bad = new MessageTap(new FrameTracker('client'), () => undefined, 'client');
  bad.feed(Buffer.from([0x51, 0, 0, 0, 2]));
  t.match(bad.lost, /declared length 2/);
});

/** A pair of fake ends: what the relay wrote to the client, and whether the backend is paused. */
function fakeEnds() {
  const backend = Object.assign(new EventEmitter(), { paused: false, pause() { backend.paused = true; }, resume() { backend.paused = false; } });
  const written: Buffer[] = [];
  const client = Object.assign(new EventEmitter(), { writable: true, writableNeedDrain: false, full: false, write(b: Buffer) { written.push(Buffer.from(b)); return !client.full; } });
  return { backend, client, written, relayEnds: [backend as unknown as RelayEnd, client as unknown as RelayEnd] as const };
}

t.test("the server relay holds a FATAL goodbye back, releases it on request, and lets the rest through", async (t) => {
  const { backend, client, written, relayEnds } = fakeEnds();
  let relay!: ServerRelay;
  const tap = new MessageTap(new FrameTracker('server'), (type, body, start) => relay.seen(type, body, start), 'server');
  relay = new ServerRelay(relayEnds[0], relayEnds[1], tap);
  relay.start();
  const notice = msg('N', 'SNOTICE\0Mhello\0\0');
  const fatal = errorResponse({ severity: 'FATAL', code: '57P01', message: 'terminating connection due to unexpected postmaster exit' });
  backend.emit('data', Buffer.concat([notice, fatal]));
  t.same(Buffer.concat(written), notice, 'the notice went to the client, the goodbye did not');
  t.ok(relay.holding);
  t.match(relay.goodbye, { code: '57P01', message: /unexpected postmaster exit/ }, 'what the goodbye says is known');
  relay.release();
  t.same(Buffer.concat(written), Buffer.concat([notice, fatal]), 'released: the client has it after all');
  t.notOk(relay.holding);

  const error = errorResponse({ severity: 'ERROR', code: '42601', message: 'syntax error' });
  backend.emit('data', Buffer.concat([error, msg('Z', 'I')]));
  t.notOk(relay.holding, 'an ERROR is an answer, not a goodbye');
  backend.emit('data', fatal);
  backend.emit('data', msg('S', 'a\0b\0'));
  t.notOk(relay.holding, 'a server that goes on talking after a FATAL was not saying goodbye');
  t.same(Buffer.concat(written).subarray(-(fatal.length + 9)), Buffer.concat([fatal, msg('S', 'a\0b\0')]), 'in order');

  client.full = true;
  backend.emit('data', msg('Z', 'I'));
  t.ok(backend.paused, 'a full client pauses the server');
  client.emit('drain');
  t.notOk(backend.paused, 'and its drain resumes it');
  relay.stop();
  backend.emit('data', msg('Z', 'I'));
  t.equal(backend.listenerCount('data'), 0, 'stopped: no listener left');
});

t.test('trust is recognised from the first startup answer only', async (t) => {
  const ok = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
  t.ok(trustedAtStartup(Buffer.concat([ok, msg('S', 'a\0b\0')])));
  t.notOk(trustedAtStartup(Buffer.from([0x52, 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4])), 'an md5 request');
  t.notOk(trustedAtStartup(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])), 'a cleartext password request');
  t.notOk(trustedAtStartup(ok.subarray(0, 5)), 'too short to tell');
  t.notOk(trustedAtStartup(errorResponse({ severity: 'FATAL', code: '28000', message: 'no' })));
});

t.test("pgwarden's own messages", async (t) => {
  const startup = readFirstPacket(startupMessage(new Map([['user', 'alice'], ['database', 'app'], ['application_name', 'x']])));
  t.match(startup, { kind: 'startup', protocolMajor: 3, params: { user: 'alice', database: 'app', application_name: 'x' } });
  t.same(queryMessage('select 1'), msg('Q', 'select 1\0'));
  t.same(syncMessage(), msg('S'));
  t.same(parameterStatusMessage('in_hot_standby', 'off'), msg('S', 'in_hot_standby\0off\0'));
  const p = parseMessage('s', 'q', [23, 4294967295]);
  t.same(p, msg('P', Buffer.concat([Buffer.from('s\0q\0'), Buffer.from([0, 2, 0, 0, 0, 23, 0xff, 0xff, 0xff, 0xff])])));
});

t.test("a moved session's cancel goes to the new server with that server's key", async (t) => {
  const cancels = new CancelRegistry();
  const key = cancelKey(100, 200);
  cancels.add(key, { backend: 'pg1', host: 'h1', port: 1 });
  cancels.add(key, { backend: 'pg2', host: 'h2', port: 2, serverKey: { processId: 300, secretKey: -5 } });
  const sent: [string, number, Buffer][] = [];
  const outcome = await forwardCancel(100, 200, {
    cancels,
    cancelTargets: () => [],
    sendCancel: async (host, port, packet) => (sent.push([host, port, packet]), true),
    fanout: new FanoutBudget(1, 1, realClock),
  });
  t.equal(outcome, 'exact');
  t.same(sent, [['h2', 2, cancelRequest(300, -5)]]);
});
