// A coordinated instance's status (CoordinationStatus) for tests of what shows it: member a of
// [a, b, c], b leads epoch 4 with pg2 as primary, a lags one epoch behind, c is gone.
import type { CoordinationStatus } from '../../src/routing/status-snapshot';

export function coordinationStatus(over: Partial<CoordinationStatus> = {}): CoordinationStatus {
  return {
    name: 'a',
    quorum: 2,
    leader: 'b',
    isLeader: false,
    epoch: 4,
    phase: 'stable',
    primary: 'pg2',
    timeline: 2,
    fenced: [],
    members: [
      { name: 'a', alive: true, ackEpoch: 3, lagging: true, votesDown: false, leader: false },
      { name: 'b', alive: true, ackEpoch: 4, lagging: false, votesDown: false, leader: true },
      { name: 'c', alive: false, lagging: false, votesDown: false, leader: false },
    ],
    etcd: { reachable: true, endpoints: ['http://10.0.0.5:2379'], leaseRemainingMs: 7000, onLoss: 'keep' },
    ...over,
  };
}
