import { createHash } from 'node:crypto';
import { appendFile, readFile } from 'node:fs/promises';
import { SingleFlight } from '../lib/single-flight.js';
import { FUSE_ROOT_ID } from './fuse-proto.js';

/**
 * The node id the kernel gets for a path: the same in every process (#19), so the kernel's cached
 * dentries and open files stay valid in the process that takes a session over, whatever order it
 * builds its trees in. 63 bits of sha256 of the path bytes (a collision needs ~3·10⁹ paths for a
 * one-in-a-billion chance); 0 and 1 (the root) are never given out. Hardlinks get one id per path
 * and keep one inode number in `st_ino` (that comes from the tree).
 */
export function nodeIdOf(path: string): bigint {
  if (path === '/') return FUSE_ROOT_ID;
  const id = createHash('sha256').update(path, 'latin1').digest().readBigUInt64LE(0) >> 1n;
  return id < 2n ? id + 2n : id;
}

/**
 * The kernel's node ids → paths (byte names) of a FUSE session regfs serves itself. A process
 * that takes the session over learns the paths from the log this table appends to before the
 * kernel first hears of an id (one line per distinct node: "<id> <hex of the path bytes>"), so a
 * kill -9 loses none. Entries are never dropped on FORGET: content is immutable and a path costs
 * a few bytes.
 */
export class NodeTable {
  private readonly paths = new Map<bigint, string>([[FUSE_ROOT_ID, '/']]);
  private appending: Promise<void> = Promise.resolve();
  private readonly reloads = new SingleFlight<'log', void>();

  private constructor(private readonly logPath: string | undefined) {}

  static fresh(logPath?: string): NodeTable {
    return new NodeTable(logPath);
  }

  /** The table a previous process of this session left in its log (a missing log is empty). */
  static async load(logPath: string): Promise<NodeTable> {
    const t = new NodeTable(logPath);
    await t.reload();
    return t;
  }

  /**
   * Reads what the log holds now: during a graceful handover the previous process still answers
   * lookups (and logs them) until it exits, so an id this process does not know is looked up
   * here again before it is called stale.
   */
  reload(): Promise<void> {
    const logPath = this.logPath;
    if (!logPath) return Promise.resolve();
    return this.reloads.run('log', async () => {
      let text = '';
      try {
        text = await readFile(logPath, 'latin1');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      for (const line of text.split('\n')) {
        const m = /^(\d+) ([0-9a-f]*)$/.exec(line);
        // A torn last line (killed mid-append) was never answered to the kernel: skip it.
        if (m && !this.paths.has(BigInt(m[1]!))) this.paths.set(BigInt(m[1]!), Buffer.from(m[2]!, 'hex').toString('latin1'));
      }
    });
  }

  get size(): number {
    return this.paths.size;
  }

  pathOf(nodeid: bigint): string | undefined {
    return this.paths.get(nodeid);
  }

  /** Records `nodeid` → `path`; resolves once it is in the log, so the kernel may be told. */
  async remember(nodeid: bigint, path: string): Promise<void> {
    if (this.paths.has(nodeid)) return this.appending;
    this.paths.set(nodeid, path);
    if (!this.logPath) return;
    const line = `${nodeid} ${Buffer.from(path, 'latin1').toString('hex')}\n`;
    const logPath = this.logPath;
    // One append at a time, in order: a later line never lands before an earlier one.
    this.appending = this.appending.then(() => appendFile(logPath, line, { mode: 0o600 }));
    return this.appending;
  }
}
