// CoordinationStore on etcd v3, through the `etcd3` client. Every call has a deadline
// (coordination.etcd.timeout) and no retry of our own beyond trying each endpoint once: the
// coordinator keeps its own lease deadline and decides what a slow or silent etcd means, so a
// call must fail fast rather than hang or retry for longer than a lease.
import { readFileSync } from 'node:fs';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { ExponentialBackoff, handleWhen, noop, retry } from 'cockatiel';
import type { CoordinationConfig } from '../config/types';
import type { Condition, CoordinationStore, GrantedLease, StoreSnapshot, StoredKey, Write } from './store';

export class EtcdStore implements CoordinationStore {
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly timeoutMs: number;

  constructor(config: CoordinationConfig['etcd']) {
    this.prefix = `${config.prefix}/`;
    this.timeoutMs = config.timeout;
    this.client = new Etcd3(clientOptions(config));
  }

  async grant(ttlMs: number): Promise<GrantedLease> {
    const r = await this.deadline(this.client.leaseClient.leaseGrant({ TTL: Math.max(1, Math.ceil(ttlMs / 1000)) }, this.callOptions()));
    if (r.error) throw new Error(`etcd refused a lease: ${r.error}`);
    return { id: String(r.ID), ttlMs: Number(r.TTL) * 1000 };
  }

  async keepAlive(lease: string): Promise<number> {
    // The lease client's keepalive is a stream; one request, its first answer, then close.
    const stream = await this.deadline(this.client.leaseClient.leaseKeepAlive(this.callOptions()));
    try {
      // The first of these settles the answer; later ones are ignored by the promise.
      const answer = new Promise<number>((resolve, reject) => {
        stream.on('data', (r) => resolve(Number(r.TTL ?? 0) * 1000));
        stream.on('error', reject);
        stream.on('end', () => reject(new Error('etcd closed the keepalive stream')));
      });
      stream.write({ ID: lease });
      return await this.deadline(answer);
    } finally {
      stream.cancel();
    }
  }

  async revoke(lease: string): Promise<void> {
    await this.deadline(this.client.leaseClient.leaseRevoke({ ID: lease }, this.callOptions())).catch(() => undefined);
  }

  async read(): Promise<StoreSnapshot> {
    const r = await this.deadline(this.client.getAll().prefix(this.prefix).options(this.callOptions()).exec());
    const keys = new Map<string, StoredKey>();
    for (const kv of r.kvs) {
      keys.set(kv.key.toString().slice(this.prefix.length), { value: kv.value.toString(), modRevision: String(kv.mod_revision), lease: String(kv.lease ?? '0') });
    }
    return { revision: String(r.header.revision), keys };
  }

  async transact(conditions: readonly Condition[], writes: readonly Write[]): Promise<boolean> {
    let txn = this.client.if(this.prefix + '\u0000never', 'Create', '==', 0);
    for (const c of conditions) {
      const key = this.prefix + c.key;
      if ('absent' in c) txn = txn.and(key, 'Create', '==', 0);
      else if ('lease' in c) txn = txn.and(key, 'Lease', '==', c.lease);
      else txn = txn.and(key, 'Mod', '==', c.modRevision);
    }
    const ops = writes.map((w) => {
      if ('delete' in w) return this.client.delete().key(this.prefix + w.delete);
      const put = this.client.put(this.prefix + w.put).value(w.value);
      return w.lease === undefined ? put : put.lease(w.lease);
    });
    const r = await this.deadline(txn.then(...ops).options(this.callOptions()).commit());
    return r.succeeded;
  }

  watch(onChange: () => void): () => void {
    let stopped = false;
    let cancel: (() => void) | undefined;
    void this.client
      .watch()
      .prefix(this.prefix)
      .create()
      .then((w) => {
        if (stopped) return void w.cancel().catch(() => undefined);
        w.on('data', () => onChange());
        w.on('connected', () => onChange());
        // A watch error is retried by the client (watchBackoff); the coordinator's periodic
        // read covers the gap.
        w.on('error', () => undefined);
        cancel = () => void w.cancel().catch(() => undefined);
      })
      .catch(() => undefined);
    return () => {
      stopped = true;
      cancel?.();
    };
  }

  async close(): Promise<void> {
    this.client.close();
  }

  private callOptions(): { deadline: number } {
    return { deadline: Date.now() + this.timeoutMs };
  }

  /** A promise that rejects once the request deadline has passed, whatever the client does. */
  private deadline<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`etcd did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      timer.unref();
    });
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }
}

function clientOptions(config: CoordinationConfig['etcd']): IOptions {
  const options: IOptions = {
    hosts: [...config.endpoints],
    dialTimeout: config.timeout,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + config.timeout }),
    faultHandling: {
      // No circuit breaker per host (it would refuse calls for 5 s after a blip) and one try per
      // endpoint: a call fails within the deadline and the coordinator decides.
      host: () => noop,
      global: retry(handleWhen(isRecoverableError), { maxAttempts: Math.max(0, config.endpoints.length - 1) }),
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1_000 }).next(),
    },
  };
  if (config.user !== undefined) options.auth = { username: config.user, password: config.password ?? '' };
  if (config.tls !== undefined) {
    options.credentials = {
      rootCertificate: config.tls.caFile === undefined ? Buffer.alloc(0) : readFileSync(config.tls.caFile),
      ...(config.tls.keyFile === undefined ? {} : { privateKey: readFileSync(config.tls.keyFile) }),
      ...(config.tls.certFile === undefined ? {} : { certChain: readFileSync(config.tls.certFile) }),
    };
  }
  return options;
}
