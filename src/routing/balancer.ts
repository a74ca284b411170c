// Picks one backend among the candidates. Pure and deterministic given its `random` source.
// roundrobin: smooth weighted round-robin (the nginx algorithm) — spreads by weight without
//   bursts, e.g. weights 2:1 give a, b, a, a, b, a …
// leastconn: fewest active sessions per unit of weight; ties go round-robin.
// random: "power of two choices" — two weighted random picks, the less loaded one wins.
import type { Balance } from '../config/types';

export interface Pickable {
  readonly name: string;
  /** Configured weight, scaled by an agent's report when there is one. */
  readonly effectiveWeight: number;
  readonly activeSessions: number;
}

export class Balancer {
  private readonly current = new Map<string, number>();
  private currentSet = '';
  private tieBreak = 0;

  constructor(private readonly algorithm: Balance, private readonly random: () => number = Math.random) {}

  pick<T extends Pickable>(candidates: readonly T[]): T | undefined {
    if (candidates.length <= 1) return candidates[0];
    switch (this.algorithm) {
      case 'roundrobin':
        return this.smoothRoundRobin(candidates);
      case 'leastconn':
        return this.leastConn(candidates);
      case 'random':
        return this.twoChoices(candidates);
    }
  }

  private smoothRoundRobin<T extends Pickable>(cands: readonly T[]): T {
    // A server leaving or joining the set would otherwise keep a stale debt and skew the next
    // rounds; start the smooth sequence afresh for the new set.
    const set = cands.map((c) => c.name).join('\0');
    if (set !== this.currentSet) {
      this.current.clear();
      this.currentSet = set;
    }
    let total = 0;
    let best: T = cands[0];
    let bestWeight = -Infinity;
    for (const c of cands) {
      const w = c.effectiveWeight;
      const cur = (this.current.get(c.name) ?? 0) + w;
      this.current.set(c.name, cur);
      total += w;
      if (cur > bestWeight) {
        bestWeight = cur;
        best = c;
      }
    }
    this.current.set(best.name, bestWeight - total);
    return best;
  }

  private leastConn<T extends Pickable>(cands: readonly T[]): T {
    const load = (c: T) => c.activeSessions / c.effectiveWeight;
    const min = Math.min(...cands.map(load));
    const tied = cands.filter((c) => load(c) === min);
    return tied[this.tieBreak++ % tied.length];
  }

  private twoChoices<T extends Pickable>(cands: readonly T[]): T {
    const a = this.weightedRandom(cands);
    const b = this.weightedRandom(cands);
    return b.activeSessions / b.effectiveWeight < a.activeSessions / a.effectiveWeight ? b : a;
  }

  private weightedRandom<T extends Pickable>(cands: readonly T[]): T {
    const total = cands.reduce((s, c) => s + c.effectiveWeight, 0);
    let x = this.random() * total;
    for (const c of cands) {
      x -= c.effectiveWeight;
      if (x < 0) return c;
    }
    return cands[cands.length - 1];
  }
}
