import { EventEmitter } from 'node:events';
import t from 'tap';
import { FirstPacketReader, type FirstPacketHandler } from '../../src/proxy/first-packet-reader';
import { MAX_STARTUP_PACKET } from '../../src/protocol/first-packet';
import type { RelayEnd } from '../../src/net/relay-socket';
import type { Clock } from '../../src/clock';

const clock = { now: () => 0, setTimeout: () => ({ clear: () => undefined }) } as unknown as Clock;

function startup(): Buffer {
  const body = Buffer.from('user\0alice\0\0');
  const b = Buffer.alloc(8 + body.length);
  b.writeInt32BE(b.length, 0);
  b.writeInt32BE(3 << 16, 4);
  body.copy(b, 8);
  return b;
}

/** A reader whose handler routes on a StartupMessage (holds what follows), as a session does. */
function rig(): { socket: EventEmitter; reader: FirstPacketReader; seen: string[] } {
  const socket = new EventEmitter();
  const seen: string[] = [];
  const handler: FirstPacketHandler = {
    firstPacket(p) {
      seen.push(p.kind);
      reader.hold();
      return false;
    },
    loginTimedOut: () => seen.push('timeout'),
    firstPacketsOverflow: (reason) => {
      seen.push(`overflow: ${reason}`);
      reader.dispose();
    },
  };
  const reader = new FirstPacketReader(socket as unknown as RelayEnd, clock, handler);
  reader.parse(1000);
  return { socket, reader, seen };
}

// Found by test/unit/fuzz-first-packet.test.ts: the limit on bytes held while routing was only
// checked for chunks that arrived after the StartupMessage, so a client that sent its
// StartupMessage and a megabyte more in one chunk had it all held (and later sent to the server).
t.test('a StartupMessage and more than a startup packet after it in one chunk: overflow, as when cut in two', async (t) => {
  const extra = Buffer.alloc(MAX_STARTUP_PACKET, 0x51);
  const one = rig();
  one.socket.emit('data', Buffer.concat([startup(), extra]));
  const two = rig();
  two.socket.emit('data', startup());
  two.socket.emit('data', extra);
  t.same(one.seen, ['startup', 'overflow: client sent data before the server answered']);
  t.same(two.seen, one.seen);
});

t.test('a StartupMessage with a few pipelined bytes is held, not refused', async (t) => {
  const r = rig();
  r.socket.emit('data', Buffer.concat([startup(), Buffer.from('Q\0\0\0\x0cselect 1\0')]));
  t.same(r.seen, ['startup']);
  t.equal(r.reader.pending, startup().length + 14);
});
