import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ReaderCounters } from '../blob/counters.js';
import type { CacheCounters } from '../cache/chunk-store.js';
import type { RegistryObserver } from '../registry/index.js';
import type { MetricSources, MetricsSink } from './metrics.js';
import type { ProfileCounters } from './profile-session.js';

/**
 * regfs_* metrics in Prometheus text (prom-client). Registry events arrive through the observer;
 * cache and reader counters are read at scrape time, so the hot path only bumps plain integers.
 */
export class PrometheusMetrics implements MetricsSink {
  readonly registry = new Registry();
  readonly observer: RegistryObserver;
  readonly readDuration: Histogram;
  private sources: MetricSources = {};
  private readonly indexes: Counter;
  private readonly served: Counter;
  private readonly indexDone: Gauge;

  constructor() {
    const r = this.registry;
    const http = new Counter({ name: 'regfs_http_requests_total', help: 'HTTP exchanges by host, kind and status', labelNames: ['host', 'kind', 'status'], registers: [r] });
    const tokens = new Counter({ name: 'regfs_token_fetches_total', help: 'Registry tokens fetched', labelNames: ['host'], registers: [r] });
    const redirects = new Counter({ name: 'regfs_redirect_cache_hits_total', help: 'Blob ranges sent straight to a cached redirect URL', registers: [r] });
    const retries = new Counter({ name: 'regfs_http_retries_total', help: 'Requests retried after a transient failure', labelNames: ['host'], registers: [r] });
    this.observer = {
      request: (host, kind, status) => http.inc({ host, kind, status: String(status) }),
      tokenFetched: (host) => tokens.inc({ host }),
      redirectCacheHit: () => redirects.inc(),
      retry: (host) => retries.inc({ host }),
    };
    this.readDuration = new Histogram({
      name: 'regfs_read_duration_seconds',
      help: 'Time to answer a FUSE read',
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [r],
    });
    this.indexes = new Counter({ name: 'regfs_layer_indexes_built_total', help: 'Layer indexes built (a full pass over the layer)', labelNames: ['format'], registers: [r] });
    this.served = new Counter({ name: 'regfs_layers_served_total', help: 'Layers opened, by how they are served: the format (estargz, zstd:chunked, soci, index = cached index, local-pass, …), or soci-refused for a zTOC that disagreed with its layer', labelNames: ['how'], registers: [r] });
    this.indexDone = new Gauge({ name: 'regfs_layer_index_progress_ratio', help: 'Progress of layer indexing passes (1 = done)', labelNames: ['layer'], registers: [r] });
    const sources = (): MetricSources => this.sources;
    // Monotonic counters kept elsewhere: advance by the difference at each scrape.
    const mirror = (name: string, help: string, read: () => number | undefined): void => {
      let last = 0;
      new Counter({
        name,
        help,
        registers: [r],
        collect() {
          const v = read();
          if (v !== undefined && v > last) {
            this.inc(v - last);
            last = v;
          }
        },
      });
    };
    const gauge = (name: string, help: string, read: () => number | undefined): void => {
      new Gauge({
        name,
        help,
        registers: [r],
        collect() {
          this.set(read() ?? 0);
        },
      });
    };
    const rd = (): ReaderCounters | undefined => sources().reader?.();
    const cc = (): CacheCounters | undefined => sources().cache?.();
    mirror('regfs_fetched_bytes_total', 'Blob bytes fetched from registries', () => rd()?.bytesFetched);
    mirror('regfs_served_bytes_total', 'Blob bytes served to readers', () => rd()?.bytesServed);
    mirror('regfs_range_requests_total', 'Range requests made for cache misses', () => rd()?.requests);
    mirror('regfs_coalesced_requests_total', 'Range requests covering more than one chunk', () => rd()?.coalescedRequests);
    mirror('regfs_blobs_verified_total', 'Whole blobs hashed against their digest', () => rd()?.blobsVerified);
    mirror('regfs_blobs_purged_total', 'Blobs purged after a digest mismatch', () => rd()?.blobsPurged);
    mirror('regfs_cache_hits_total', 'Chunk cache hits', () => cc()?.hits);
    mirror('regfs_cache_misses_total', 'Chunk cache misses', () => cc()?.misses);
    mirror('regfs_cache_evictions_total', 'Chunks evicted to respect the size limit', () => cc()?.evictions);
    mirror('regfs_cache_corruptions_total', 'Chunks that failed their checksum', () => cc()?.corruptions);
    mirror('regfs_cache_write_errors_total', 'Chunk writes that failed (disk full, read-only, gone)', () => cc()?.writeErrors);
    gauge('regfs_fetch_in_flight_bytes', 'Bytes of range requests in flight', () => rd()?.inFlightBytes);
    gauge('regfs_fetch_in_flight_bytes_peak', 'Most bytes of range requests ever in flight at once', () => rd()?.peakInFlightBytes);
    const pc = (): ProfileCounters | undefined => sources().profile?.();
    mirror('regfs_profile_replays_total', 'Access profiles replayed to the end (#15)', () => pc()?.replaysFinished);
    mirror('regfs_profile_replays_ignored_total', 'Access profiles ignored as untrustworthy (garbage, too large, another image, files not in the image)', () => pc()?.replaysIgnored);
    mirror('regfs_profile_replay_bytes_total', 'Bytes access-profile replays asked for', () => pc()?.replayBytes);
    gauge('regfs_reads_in_flight', 'FUSE reads being answered', () => sources().readsInFlight?.());
  }

  indexBuilt(format: string): void {
    this.indexes.inc({ format });
  }

  layerServed(how: string): void {
    this.served.inc({ how });
  }

  indexProgress(layer: string, done: number, total: number): void {
    this.indexDone.set({ layer }, total > 0 ? done / total : 1);
  }

  attach(sources: MetricSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  json(): Promise<unknown> {
    return this.registry.getMetricsAsJSON();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  observeRead(seconds: number): void {
    this.readDuration.observe(seconds);
  }
}

