// Who decides which server takes writes when it is not this instance's checks alone: the
// cluster, through etcd (control/coordination). Pure: given the authority and the servers whose
// checks say they are primary, which one takes writes and which are fenced.

/** What the decision reads of a server (a BackendView, without importing the Topology). */
export interface Claimant {
  readonly name: string;
  readonly timeline?: number;
  readonly fenced: boolean;
}

/**
 * - `cluster`: the primary the cluster agreed on (undefined: none, e.g. while a failover's
 *   handshake runs). Writes go to it only while this instance's checks also see it up as a
 *   primary; every other server that claims primary is fenced.
 * - `sticky`: etcd is out of reach. Keep the primary last agreed on (timeline `timeline`), and
 *   adopt another only when the checks see exactly one primary on a newer timeline; with
 *   `writes: false` (on_etcd_loss readonly) route no writes at all.
 */
export type PrimaryAuthority =
  | { readonly kind: 'cluster'; readonly primary: string | undefined }
  | { readonly kind: 'sticky'; readonly primary: string | undefined; readonly timeline: number | undefined; readonly writes: boolean };

export interface AuthorityDecision<V extends Claimant> {
  readonly primary: V | undefined;
  readonly fence: V[];
  readonly unfence: { view: V; reason: string }[];
}

/** 'local': no agreed primary to keep (etcd out of reach since start): the one-instance rule applies. */
export function decideUnderAuthority<V extends Claimant>(a: PrimaryAuthority, claimants: readonly V[]): AuthorityDecision<V> | 'local' {
  if (a.kind === 'sticky' && !a.writes) return { primary: undefined, fence: [], unfence: [] };
  let keep: V | undefined;
  let why: string;
  if (a.kind === 'cluster') {
    keep = claimants.find((v) => v.name === a.primary);
    why = 'the cluster agreed on it as primary';
  } else {
    const newer = claimants.filter((v) => v.timeline !== undefined && a.timeline !== undefined && v.timeline > a.timeline);
    keep = newer.length === 1 ? newer[0] : newer.length === 0 ? claimants.find((v) => v.name === a.primary) : undefined;
    why = 'etcd is out of reach and the checks see it as the one primary';
    if (keep === undefined && a.primary === undefined) return 'local';
  }
  // Sticky with no primary to keep (it is down, or two newer ones): no writes, nothing newly fenced.
  if (keep === undefined && a.kind === 'sticky') return { primary: undefined, fence: [], unfence: [] };
  return {
    primary: keep,
    fence: claimants.filter((v) => v !== keep && !v.fenced),
    unfence: keep?.fenced ? [{ view: keep, reason: why }] : [],
  };
}
