#!/usr/bin/env node
// bench/state-tracker: CPU cost of the session state tracker (src/survive/state-tracker.ts) per
// relayed message, for the streams a busy session produces: simple-protocol point selects, a
// driver's extended-protocol Bind/Execute/Sync of a prepared statement, and a session that SETs
// and LISTENs between queries. Pure CPU, no server; prints CPU ns per message and per round trip.
//
//   npm run build && flock /tmp/bench.lock node bench/state-tracker.js [--rounds 200000]
'use strict';
const { parseArgs } = require('node:util');
const { StateTracker } = require('../dist/survive/state-tracker');

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '200000' } } });
const ROUNDS = Number(values.rounds);

const cstr = (s) => Buffer.from(`${s}\0`, 'utf8');
const msg = (from, t, body) => ({ from, type: t.charCodeAt(0), body });
const int16 = (n) => { const b = Buffer.alloc(2); b.writeInt16BE(n, 0); return b; };
const row = msg('server', 'D', Buffer.from([0, 2, 0, 0, 0, 1, 0x31, 0, 0, 0, 5, 0x68, 0x65, 0x6c, 0x6c, 0x6f]));
const rowDesc = msg('server', 'T', Buffer.concat([int16(1), cstr('a'), Buffer.alloc(18)]));
const ready = msg('server', 'Z', Buffer.from('I'));

const streams = {
  'simple SELECT, 5 rows': [msg('client', 'Q', cstr('SELECT id, name FROM accounts WHERE id = 42 AND status = \'open\'')), rowDesc, row, row, row, row, row, msg('server', 'C', cstr('SELECT 5')), ready],
  'extended Bind/Execute/Sync, 5 rows': [
    msg('client', 'B', Buffer.concat([cstr(''), cstr('s1'), int16(0), int16(1), Buffer.from([0, 0, 0, 1, 0x31]), int16(0)])),
    msg('client', 'E', Buffer.concat([cstr(''), Buffer.alloc(4)])),
    msg('client', 'S', Buffer.alloc(0)),
    msg('server', '2', Buffer.alloc(0)), row, row, row, row, row, msg('server', 'C', cstr('SELECT 5')), ready,
  ],
  'SET + LISTEN + SELECT in one Query': [msg('client', 'Q', cstr("SET application_name = 'worker 7'; LISTEN jobs; SELECT 1")), msg('server', 'C', cstr('SET')), msg('server', 'S', Buffer.concat([cstr('application_name'), cstr('worker 7')])), msg('server', 'C', cstr('LISTEN')), rowDesc, row, msg('server', 'C', cstr('SELECT 1')), ready],
};

function feed(tr, m) {
  if (m.from === 'client') tr.fromClient(m.type, m.body);
  else tr.fromServer(m.type, m.body);
}

for (const [name, stream] of Object.entries(streams)) {
  const tr = new StateTracker({ parameters: new Map([['client_encoding', 'UTF8']]) });
  // the named statement the extended stream binds
  feed(tr, msg('client', 'P', Buffer.concat([cstr('s1'), cstr('SELECT id, name FROM accounts WHERE id = $1'), int16(0)])));
  feed(tr, msg('client', 'S', Buffer.alloc(0)));
  feed(tr, msg('server', '1', Buffer.alloc(0)));
  feed(tr, ready);
  for (let i = 0; i < ROUNDS / 10; i++) for (const m of stream) feed(tr, m); // warm-up
  // CPU time, not wall time: the bench machine may be shared, and waiting is not our cost.
  const start = process.cpuUsage();
  for (let i = 0; i < ROUNDS; i++) for (const m of stream) feed(tr, m);
  const used = process.cpuUsage(start);
  const ns = (used.user + used.system) * 1000;
  const movable = tr.movable();
  if (!movable.ok) throw new Error(`${name}: not movable: ${movable.reason}`);
  console.log(`${name.padEnd(40)} ${(ns / (ROUNDS * stream.length)).toFixed(0).padStart(5)} ns/message ${(ns / ROUNDS).toFixed(0).padStart(6)} ns/round trip`);
}
