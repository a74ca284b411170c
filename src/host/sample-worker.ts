// Worker thread that takes host samples. systeminformation reads many Linux counters with
// execSync (`cat /proc/stat`, `cat /proc/mounts` …), which would stall the event loop that
// carries every proxied byte; here only this thread waits.
import { parentPort } from 'node:worker_threads';
import { readHost } from './read-host';

parentPort?.on('message', (id: number) => {
  readHost().then(
    (sample) => parentPort?.postMessage({ id, sample }),
    (e: Error) => parentPort?.postMessage({ id, error: e.message }),
  );
});
