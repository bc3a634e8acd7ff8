import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

// Readers that must never notice a handover: a sha256 loop over a big file (page cache dropped
// after each pass, so every pass reads through the daemon), a slow reader holding another file
// open from the first process on (4 KiB every 5 ms, cache dropped before each read, each read
// checked), and stat of the mount point every 5 ms. Each records errors and the longest gap between two of its reads.
const MONITOR = String.raw`
import os, sys, time, json, hashlib, threading
big_path, big_sha, slow_shas, stop, slow_path, mnt = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().split(), sys.argv[4], sys.argv[5], sys.argv[6]
out = {"passes": 0, "bad_passes": 0, "slow_reads": 0, "slow_bad": 0, "stats": 0, "errors": [], "gap_big_ms": 0.0, "gap_slow_ms": 0.0, "stalls": []}
lock = threading.Lock()
def gap(key, ms):
    with lock:
        out[key] = max(out[key], ms)
        # [wall-clock end in ms, length in ms]: the test attributes each stall to a phase.
        if ms > 20: out["stalls"].append([time.time() * 1000, ms])
def err(what, e):
    with lock: out["errors"].append(what + ": " + repr(e))
def big():
    while not os.path.exists(stop):
        try:
            fd = os.open(big_path, os.O_RDONLY); h = hashlib.sha256(); last = time.monotonic()
            while True:
                b = os.read(fd, 1 << 20)
                now = time.monotonic(); gap("gap_big_ms", (now - last) * 1000); last = now
                if not b: break
                h.update(b)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
            with lock:
                out["passes"] += 1
                if h.hexdigest() != big_sha: out["bad_passes"] += 1
        except Exception as e:
            err("big", e); time.sleep(0.05)
def slow():
    try:
        fd = os.open(slow_path, os.O_RDONLY)
    except Exception as e:
        return err("slow open", e)
    last = time.monotonic(); i = 0
    while not os.path.exists(stop):
        off = (i % len(slow_shas)) * 4096; i += 1
        try:
            os.posix_fadvise(fd, off, 4096, os.POSIX_FADV_DONTNEED)
            b = os.pread(fd, 4096, off)
        except Exception as e:
            err("slow", e); continue
        now = time.monotonic(); gap("gap_slow_ms", (now - last) * 1000 - 5); last = now
        with lock:
            out["slow_reads"] += 1
            if hashlib.sha256(b).hexdigest() != slow_shas[off // 4096]: out["slow_bad"] += 1
        time.sleep(0.005)
    os.close(fd)
def stats():
    while not os.path.exists(stop):
        try:
            os.stat(mnt); out["stats"] += 1
        except Exception as e:
            err("stat", e)
        time.sleep(0.005)
ts = [threading.Thread(target=f) for f in (big, slow, stats)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(out), flush=True)
`;

export interface Monitor {
  passes: number;
  bad_passes: number;
  slow_reads: number;
  slow_bad: number;
  stats: number;
  errors: string[];
  gap_big_ms: number;
  gap_slow_ms: number;
  stalls: [number, number][];
}

/** The longest stall that ended in [from, to] (ms since the epoch). */
export function longest(stalls: [number, number][], from: number, to: number): number {
  return Math.round(Math.max(0, ...stalls.filter(([end]) => end >= from && end <= to).map(([, ms]) => ms)));
}


/** Mounts at `mnt` (from /proc/self/mountinfo: never touches the mount itself). */
export async function mountsAt(mnt: string): Promise<number> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.split(' ')[4] === mnt).length;
}

/**
 * Starts the readers on `big` (whose sha256 is `bigSha`), `slow` (whose bytes are `slowBytes`)
 * and the mount point `mnt`; `stop()` ends them and resolves with what they saw.
 */
export async function startReaders(dir: string, mnt: string, big: string, bigSha: string, slow: string, slowBytes: Buffer): Promise<{ stop(): Promise<Monitor>; process: ChildProcess }> {
  const run = `${process.pid}-${Date.now()}`;
  const stopFile = join(dir, `readers-${run}.stop`);
  const shas = join(dir, `slow-${run}.sha`);
  await writeFile(shas, Array.from({ length: Math.ceil(slowBytes.length / 4096) }, (_, i) => createHash('sha256').update(slowBytes.subarray(i * 4096, i * 4096 + 4096)).digest('hex')).join('\n'));
  const child = spawn('python3', ['-c', MONITOR, big, bigSha, shas, stopFile, slow, mnt], { stdio: ['ignore', 'pipe', 'inherit'] });
  let report = '';
  child.stdout!.on('data', (d: Buffer) => (report += d.toString()));
  const done = new Promise((r) => child.once('exit', r));
  return {
    process: child,
    stop: async () => {
      await writeFile(stopFile, '');
      await done;
      return JSON.parse(report) as Monitor;
    },
  };
}
