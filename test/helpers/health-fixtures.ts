// The backend and health settings the checker unit tests share: round numbers (checks every
// 2 s, 500 ms while a state changes, rise 2, fall 3) and no jitter, so a FakeClock schedule
// can be read off directly.
import type { BackendConfig, HealthConfig } from '../../src/config/types';

export const testBackend = (name: string): BackendConfig => ({ name, host: '127.0.0.1', port: 5432, weight: 100, backup: false });

export const testHealth: HealthConfig = {
  check: 'postgres',
  user: 'pgwarden',
  database: 'postgres',
  interval: 2000,
  fastInterval: 500,
  downInterval: 5000,
  timeout: 1000,
  rise: 2,
  fall: 3,
  jitter: 0,
  maxReplicaLag: {},
};
