import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Where the reliability suite writes what it observed; scripts/reliability-report.mjs reads it. */
export const RESULTS_DIR = process.env['REGFS_RELIABILITY_OUT'] ?? join(import.meta.dirname, '../../../reliability-results');

export interface Observation {
  group: string;
  case: string;
  expected: string;
  observed: string;
  ok: boolean;
}

export async function observe(o: Observation): Promise<void> {
  await mkdir(RESULTS_DIR, { recursive: true });
  await appendFile(join(RESULTS_DIR, 'observations.jsonl'), `${JSON.stringify({ ...o, at: new Date().toISOString() })}\n`);
}
