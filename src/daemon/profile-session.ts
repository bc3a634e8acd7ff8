import { ProfileStore } from '../cache/profile-store.js';
import type { Layer } from '../image/layer.js';
import { RegfsError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { RepoLocator, ResolvedImage } from '../registry/index.js';
import { fetchReferrerArtifact } from '../registry/referrer-artifact.js';
import { PROFILE_LIMITS, PROFILE_MEDIA_TYPE, decodeProfile, encodeProfileBounded } from '../view/profile-format.js';
import { ProfileRecorder, type ProfileHooks, type ProfileSession, overrideRead } from '../view/profile-recorder.js';
import { replayProfile } from '../view/profile-replay.js';
import type { DaemonContext } from './daemon.js';

/** What the metrics endpoint shows of profiles (regfs_profile_*). */
export interface ProfileCounters {
  replaysFinished: number;
  replaysIgnored: number;
  replayBytes: number;
}

/** Access profiles of a daemon: one store and one set of counters, a session per image. */
export interface Profiles {
  session(img: ResolvedImage, repo: RepoLocator): ProfileSession;
}

export async function openProfiles(ctx: DaemonContext, counters: ProfileCounters): Promise<Profiles> {
  const store = ctx.cfg.profileRecord === 0 && ctx.cfg.profileReplay === 'none' ? undefined : await ProfileStore.open(ctx.cfg.cacheDir);
  return { session: (img, repo) => (store ? profileSession(ctx, store, img, repo, counters) : { hooks: undefined, start: () => async () => {} }) };
}

/**
 * The access profile of one mounted image (#15): replays the profile recorded earlier — the one
 * in `<cacheDir>/profiles/`, else (`profileReplay: auto`) one attached to the image in the
 * registry — and records this mount's first `profileRecord` of reads into a new one, saved when
 * the window ends or the session stops, whichever comes first. A profile that cannot be trusted
 * is ignored with one warning; a replay that fails is logged and never fails a read.
 */
function profileSession(ctx: DaemonContext, store: ProfileStore, img: ResolvedImage, repo: RepoLocator, counters: ProfileCounters): ProfileSession {
  const { cfg, logger, data } = ctx;
  const image = img.manifestDigest;
  const recorder = cfg.profileRecord > 0 ? new ProfileRecorder(image, cfg.profileRecord, () => logger.warn({ image, limits: PROFILE_LIMITS }, 'access profile full: recording stopped early')) : undefined;
  const layers = new Map<string, Layer>();
  const served = new Map<string, string>();
  const hooks: ProfileHooks = {
    wrapBlobs: (r) => recorder?.wrapBlobs(r) ?? r,
    wrapLayer: (l) => {
      layers.set(l.descriptor.digest, recorder ? overrideRead(l, (e, o, into, s) => recorder.attributing(() => l.read(e, o, into, s))) : l);
      return recorder?.wrapLayer(l) ?? l;
    },
    layerServed: (d, how) => {
      served.set(d, how);
      recorder?.layerServed(d, how);
    },
  };

  const save = async (): Promise<void> => {
    const p = recorder?.snapshot();
    if (!p) return;
    try {
      await store.save(image, encodeProfileBounded(p));
      logger.info({ image, files: p.files.length, path: store.pathOf(image) }, 'access profile saved');
    } catch (e) {
      logger.warn({ image, err: (e as Error).message }, 'cannot save the access profile');
    }
  };

  const find = async (signal: AbortSignal): Promise<{ bytes: Buffer; from: string } | undefined> => {
    const local = await store.load(image, PROFILE_LIMITS.bytes);
    if (local) return { bytes: local, from: store.pathOf(image) };
    if (cfg.profileReplay !== 'auto') return undefined;
    const reg = ctx.registry.current();
    try {
      const found = await fetchReferrerArtifact(reg.client, repo, image, PROFILE_MEDIA_TYPE, PROFILE_LIMITS.bytes, signal);
      return found && { bytes: found.bytes, from: `registry referrer ${found.manifest}` };
    } catch (e) {
      if (untrusted(e)) throw e;
      // A registry that refuses or fails the lookup just has no profile for us: not worth a warning per mount.
      logger.info({ image, err: (e as Error).message }, 'no access profile from the registry');
      return undefined;
    }
  };

  const replay = async (signal: AbortSignal): Promise<void> => {
    const t0 = Date.now();
    let from: string | undefined;
    try {
      const found = await find(signal);
      if (!found) return logger.debug({ image }, 'no access profile to replay');
      from = found.from;
      const expect = { image, layers: new Map(img.manifest.layers.map((l) => [l.digest, l.size])) };
      const onChecked = (): void => logger.info({ image, from }, 'access profile replay started');
      const r = await replayProfile(decodeProfile(found.bytes, expect), { layers, reader: data.reader, servedAs: (d) => served.get(d), rate: cfg.prefetchRate, signal, onChecked });
      counters.replaysFinished++;
      counters.replayBytes += r.bytes;
      logger.info({ image, from, ...r, ms: Date.now() - t0 }, 'access profile replayed');
    } catch (e) {
      if (signal.aborted) return logger.info({ image, from, ms: Date.now() - t0 }, 'access profile replay cut short (unmounted, or the image forgotten)');
      const bad = untrusted(e);
      if (bad) counters.replaysIgnored++;
      logger.warn({ image, from, err: (e as Error).message }, bad ? 'access profile ignored' : 'access profile replay stopped; reads fetch on demand');
    }
  };

  return {
    hooks,
    start: () => {
      const stop = new AbortController();
      let finished: Promise<void> | undefined;
      const finish = (): Promise<void> => {
        if (!recorder) return Promise.resolve();
        recorder.stop();
        return (finished ??= save());
      };
      recorder?.start();
      const timer = recorder ? setTimeout(() => void finish(), cfg.profileRecord).unref() : undefined;
      if (cfg.profileReplay !== 'none') void replay(stop.signal);
      return async () => {
        stop.abort();
        clearTimeout(timer);
        // Stopped before the window ended: what was read so far is the profile.
        await finish();
      };
    },
  };
}

/**
 * Content that cannot be trusted — a bad profile, an oversized file, a registry artifact that
 * fails its digest or is no manifest: the profile is ignored, said once.
 */
function untrusted(e: unknown): boolean {
  return e instanceof RegfsError && ['ERR_PROFILE', 'ERR_TOO_LARGE', 'ERR_DIGEST_MISMATCH', 'ERR_MANIFEST_INVALID'].includes(e.code);
}
