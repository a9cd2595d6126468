import { readFileSync, writeFileSync } from 'node:fs';

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Resident memory of a process in MiB (Linux), or null. */
export const rssMiB = (pid: number): number | null => statusField(pid, 'VmRSS');

/**
 * Samples a process's RSS every `intervalMs` (VmRSS from /proc), and reads the kernel's own
 * high-water mark (VmHWM), which catches a peak between two samples. `resetPeak` clears that mark
 * (writing 5 to /proc/PID/clear_refs) so a measurement starts from the current RSS.
 */
export class RssWatch {
  readonly #pid: number;
  readonly #intervalMs: number;
  readonly samples: Array<{ t: number; mib: number }> = [];
  #timer: NodeJS.Timeout | null = null;

  constructor(pid: number, intervalMs = 50) {
    this.#pid = pid;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.samples.length = 0;
    this.resetPeak();
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), this.#intervalMs);
  }

  #sample(): void {
    const mib = rssMiB(this.#pid);
    if (mib !== null) this.samples.push({ t: performance.now(), mib });
  }

  /** True when the kernel accepted the reset (it needs the right to write the file). */
  resetPeak(): boolean {
    try {
      writeFileSync(`/proc/${this.#pid}/clear_refs`, '5');
      return true;
    } catch {
      return false;
    }
  }

  stop(): { peakSampledMiB: number; peakKernelMiB: number | null; peakMiB: number; samples: number } {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#sample();
    const peakSampledMiB = Math.max(0, ...this.samples.map((s) => s.mib));
    const peakKernelMiB = statusField(this.#pid, 'VmHWM');
    return { peakSampledMiB, peakKernelMiB, peakMiB: Math.max(peakSampledMiB, peakKernelMiB ?? 0), samples: this.samples.length };
  }

  /** Mean RSS of the samples taken in [from, to) (performance.now() times). */
  meanBetween(from: number, to: number): number {
    const inside = this.samples.filter((s) => s.t >= from && s.t < to);
    return inside.length ? inside.reduce((a, s) => a + s.mib, 0) / inside.length : NaN;
  }
}
