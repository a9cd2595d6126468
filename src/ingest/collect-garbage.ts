import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * A full garbage collection, run when a large payload has just turned into garbage (its bytes and
 * string after parsing, its parsed tree after its rows are built). V8 collects the old
 * generation lazily, about when it has doubled since the last collection, so without this the
 * dead copies of a 100 MB payload stay resident next to the live ones and the process peaks at
 * roughly twice what it needs. One collection costs ~0.2 s per 500 MB of heap, against several
 * seconds of writing for a payload that size.
 *
 * Node exposes gc() only with --expose-gc; setting that flag at run time is safe for this one
 * use (it only adds the function to new contexts). Returns false where it is not available.
 */
let gc: (() => void) | null | undefined;

export function collectGarbage(): boolean {
  gc ??= exposeGc();
  if (!gc) return false;
  gc();
  return true;
}

/**
 * A counter for points released from a parsed tree (ParseOptions.onInputReleased) that runs a
 * full collection each time `points` more have been released.
 */
export function collectAfterPoints(points: number, collect: () => void = collectGarbage): (released: number) => void {
  let pending = 0;
  return (released) => {
    pending += released;
    if (pending < points) return;
    pending = 0;
    collect();
  };
}

function exposeGc(): (() => void) | null {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as () => void;
  try {
    v8.setFlagsFromString('--expose-gc');
    const exposed: unknown = vm.runInNewContext('gc');
    return typeof exposed === 'function' ? (exposed as () => void) : null;
  } catch {
    return null;
  }
}
