// V8's gc(), reached through its own --expose-gc flag set at run time (no command-line flag
// needed). Two users: the quiet-spell collection after a burst (control/quiet-gc.ts) and
// GET /debug/resources (admin/debug-resources.ts), which collects before it measures so that a
// soak compares live memory, not garbage. If the flag ever stops working, gc is undefined and
// both carry on without it.
import v8 from 'node:v8';
import vm from 'node:vm';

export type GcFunction = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let loaded: { gc: GcFunction | undefined } | undefined;

/** V8's gc(), looked up once per process (a new vm context is not free). */
export function v8Gc(): GcFunction | undefined {
  loaded ??= { gc: loadGc() };
  return loaded.gc;
}

function loadGc(): GcFunction | undefined {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    return typeof gc === 'function' ? (gc as GcFunction) : undefined;
  } catch {
    return undefined;
  }
}
