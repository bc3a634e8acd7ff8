import { execFile } from 'node:child_process';
import { nativeAddon } from '../lib/native.js';
import type { Logger } from '../lib/logger.js';

/**
 * systemd's notify protocol (sd_notify(3)): READY=1, STOPPING=1, WATCHDOG=1, STATUS=…. Sent with
 * the native helper; if it cannot load, `systemd-notify` is spawned instead (that needs
 * NotifyAccess=all in the unit, since the message then comes from another pid).
 */
export class SdNotifier {
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: string | undefined,
    private readonly log: Logger,
  ) {}

  get enabled(): boolean {
    return this.socket !== undefined && this.socket !== '';
  }

  send(message: string): void {
    if (!this.enabled) return;
    let rc: number;
    try {
      rc = nativeAddon().notify(this.socket!, message);
    } catch {
      execFile('systemd-notify', message.split('\n'), (e) => e && this.log.warn({ err: e.message }, 'systemd-notify failed'));
      return;
    }
    if (rc !== 0) this.log.warn({ errno: -rc, socket: this.socket }, 'sd_notify failed');
  }

  /** WATCHDOG=1 at half the interval systemd asked for (WATCHDOG_USEC). */
  startWatchdog(usec: number | undefined): void {
    if (!this.enabled || !usec || usec <= 0) return;
    const ms = Math.max(100, Math.floor(usec / 2000));
    this.watchdog = setInterval(() => this.send('WATCHDOG=1'), ms);
    this.watchdog.unref();
  }

  stop(): void {
    if (this.watchdog) clearInterval(this.watchdog);
  }
}
