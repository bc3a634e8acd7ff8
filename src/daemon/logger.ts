import { pino } from 'pino';
import type { Logger } from '../lib/logger.js';

/**
 * Structured JSON logs on stderr. Redaction is a second line of defence: code never passes
 * secrets to the logger, and URLs are redacted before they become error context.
 */
export function createLogger(level: string): Logger & { flush(): void } {
  const dest = pino.destination({ dest: 2, sync: false });
  const log = pino(
    {
      level,
      base: { pid: process.pid },
      redact: {
        paths: ['authorization', 'password', 'token', 'secret', '*.authorization', '*.password', '*.token', '*.secret', 'headers.cookie'],
        censor: '<redacted>',
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
  return Object.assign(log, { flush: () => dest.flushSync() }) as unknown as Logger & { flush(): void };
}
