// The `cluster:` block of `pgwarden status` (CoordinationStatus, present when this instance
// coordinates with others through etcd): one summary line, one line per member, then the fenced
// servers and, while etcd is out of reach, its last error.
//
//   cluster: member a of [a, b, c] (quorum 2), leader b, epoch 4 (stable), primary pg2 timeline 2, etcd reachable
//     a  alive  epoch 3  lagging
//     b  alive  epoch 4  leader
//     c  gone
import type { CoordinationStatus } from '../routing/status-snapshot';

export function formatCluster(c: CoordinationStatus): string[] {
  const parts = [
    `member ${c.name} of [${c.members.map((m) => m.name).join(', ')}] (quorum ${c.quorum})`,
    c.leader ? `leader ${c.leader}${c.isLeader ? ' (this one)' : ''}` : 'NO LEADER',
    epoch(c),
    c.primary ? `primary ${c.primary}${c.timeline !== undefined ? ` timeline ${c.timeline}` : ''}` : 'no agreed primary',
    c.etcd.reachable ? 'etcd reachable' : `etcd UNREACHABLE (on loss: ${c.etcd.onLoss})`,
  ];
  if (c.lastHandshakeMs !== undefined) parts.push(`last handshake ${Math.round(c.lastHandshakeMs)} ms`);
  const width = Math.max(...c.members.map((m) => m.name.length));
  const members = c.members.map((m) => {
    // With etcd out of reach this instance cannot see the others: unknown, not gone.
    if (!c.etcd.reachable) return `  ${m.name.padEnd(width)}  unknown`;
    if (!m.alive) return `  ${m.name.padEnd(width)}  gone`;
    const flags = [m.lagging ? 'lagging' : '', m.leader ? 'leader' : '', m.votesDown ? 'votes the primary down' : ''].filter(Boolean);
    return [`  ${m.name.padEnd(width)}`, 'alive', `epoch ${m.ackEpoch ?? '?'}`, ...flags].join('  ');
  });
  const tail: string[] = [];
  if (c.fenced.length) tail.push(`  fenced: ${c.fenced.join(', ')}`);
  if (!c.etcd.reachable) tail.push(`  etcd: ${c.etcd.lastError ?? 'no answer'} (endpoints ${c.etcd.endpoints.join(', ')})`);
  return [`cluster: ${parts.join(', ')}`, ...members, ...tail];
}

function epoch(c: CoordinationStatus): string {
  if (c.epoch === undefined) return 'no cluster state read yet';
  const phase = c.phase ?? '?';
  return c.candidate !== undefined && phase !== 'stable' ? `epoch ${c.epoch} (${phase} to ${c.candidate})` : `epoch ${c.epoch} (${phase})`;
}
