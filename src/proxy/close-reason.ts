/** Why pgwarden itself closes sessions of a backend (or all of them). */
export type CloseReason = 'down' | 'maint' | 'switchover' | 'reload' | 'shutdown' | 'fenced' | 'patroni';
