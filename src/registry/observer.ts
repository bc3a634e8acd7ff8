/** Hooks the daemon turns into metrics; registry/ itself keeps no counters. */
export interface RegistryObserver {
  /** One HTTP exchange. `status` is 'error' for a network failure. */
  request?(host: string, kind: 'manifest' | 'blob' | 'redirect' | 'token', status: number | 'error'): void;
  tokenFetched?(host: string): void;
  redirectCacheHit?(host: string): void;
  bytesFetched?(n: number): void;
  retry?(host: string, attempt: number, delayMs: number, error: unknown): void;
}
