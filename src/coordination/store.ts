// The few things coordination needs from a consensus store, as one small interface of ours:
// leases (granted, renewed one keepalive at a time, revoked), a read of every key under the
// cluster's prefix at one revision, writes conditioned on what was read (transactions), and a
// nudge on every change. etcd-store.ts is the one implementation (etcd v3 through the `etcd3`
// client); the coordinator never sees the client library.
//
// Keys are relative to the cluster's prefix ("leader", "members/a"); values are JSON text.

export interface StoredKey {
  readonly value: string;
  /** Revision of the last write to this key (what a conditioned write compares against). */
  readonly modRevision: string;
  /** The lease the key is attached to ('0': none). */
  readonly lease: string;
}

/** Every key under the prefix, as of one revision of the store. */
export interface StoreSnapshot {
  readonly revision: string;
  readonly keys: ReadonlyMap<string, StoredKey>;
}

/** One condition of a transaction: the key was last written at this revision, or does not exist. */
export type Condition =
  | { readonly key: string; readonly modRevision: string }
  | { readonly key: string; readonly absent: true }
  | { readonly key: string; readonly lease: string };

export type Write = { readonly put: string; readonly value: string; readonly lease?: string } | { readonly delete: string };

export interface GrantedLease {
  readonly id: string;
  /** What the store granted (it may round up), in ms. */
  readonly ttlMs: number;
}

export interface CoordinationStore {
  grant(ttlMs: number): Promise<GrantedLease>;
  /** One renewal. Resolves the TTL left in ms (0: the lease is gone); rejects when the store did not answer. */
  keepAlive(lease: string): Promise<number>;
  revoke(lease: string): Promise<void>;
  read(): Promise<StoreSnapshot>;
  /** Apply every write when every condition holds, atomically; resolves whether they held. */
  transact(conditions: readonly Condition[], writes: readonly Write[]): Promise<boolean>;
  /** Call `onChange` after any change under the prefix and after the watch reconnects. Returns the stop. */
  watch(onChange: () => void): () => void;
  close(): Promise<void>;
}
