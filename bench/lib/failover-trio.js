// The pgwarden side of bench/failover-coordinated: three instances (a, b, c), each its own
// process in front of the same primary and two replicas, coordinated through one etcd cluster
// in promote mode, with the admin API on so that their coordination status can be read.
'use strict';
const { execFileSync } = require('node:child_process');
const { findEtcd } = require('../../dist/harness/binaries');
const { waitUntil } = require('./failover-procs');
const { startPgwarden } = require('./failover-targets');

const NAMES = ['a', 'b', 'c'];
const PREFIX = '/pgwarden/bench';

/** The coordination section of instance `name` (ttl and request timeout as in the coordination tests). */
function coordinationYaml(name, etcd) {
  return `coordination:
  name: ${name}
  members: [${NAMES.join(', ')}]
  ttl: 3s
  etcd:
    endpoints: [${etcd.endpoints().join(', ')}]
    prefix: ${PREFIX}
    timeout: 500ms
`;
}

/**
 * Starts a, b and c (pgwarden's default health settings, as in bench/failover.js; promote mode
 * with `promoteAfterMs`) and resolves once each sees every server up. The instances started so
 * far are pushed into `started` as they come, so that the caller can stop them after a failure.
 */
async function startTrio(cluster, etcd, dir, { promoteAfterMs, started }) {
  for (const name of NAMES) {
    started.push(
      await startPgwarden(cluster, dir, {
        name,
        admin: true,
        failover: `  mode: promote\n  promote_after: ${promoteAfterMs}ms`,
        extra: coordinationYaml(name, etcd),
      }),
    );
  }
  await Promise.all(started.map((t) => t.ready()));
  return started;
}

/** Each instance's `coordination` from GET /status, by name (undefined for one that did not answer). */
async function coordinationOf(instances) {
  const entries = await Promise.all(instances.map(async (t) => [t.name, (await t.status().catch(() => undefined))?.coordination]));
  return Object.fromEntries(entries);
}

/** Until every instance reads the same stable epoch naming `primary`, knows the leader and sees every member alive. */
async function waitAgreed(instances, primary, timeoutMs = 30_000) {
  await waitUntil(
    `a, b and c to agree on ${primary} as the primary (stable epoch, one leader, every member alive)`,
    async () => {
      const views = Object.values(await coordinationOf(instances));
      return views.every(
        (c) => c !== undefined && c.phase === 'stable' && c.primary === primary && c.leader !== undefined && c.leader === views[0].leader && c.epoch === views[0].epoch && c.members.every((m) => m.alive),
      );
    },
    timeoutMs,
  );
}

/** `etcd --version` first line, or 'unknown'. */
function etcdVersion() {
  try {
    return execFileSync(findEtcd().etcd, ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().split('\n')[0].trim();
  } catch {
    return 'unknown';
  }
}

module.exports = { NAMES, PREFIX, startTrio, coordinationOf, waitAgreed, etcdVersion };
