import { ConfigError } from '../lib/errors.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string | undefined;
}

// Node's process.arch → OCI image-spec config.md GOARCH values.
const ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

export function hostPlatform(): Platform {
  const architecture = ARCH[process.arch] ?? process.arch;
  return { os: process.platform === 'win32' ? 'windows' : process.platform, architecture, variant: architecture === 'arm64' ? 'v8' : undefined };
}

/** Parses `os/arch[/variant]`, e.g. `linux/arm64/v8`. */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p))) {
    throw new ConfigError(`invalid platform ${JSON.stringify(s)}: expected os/architecture[/variant], e.g. linux/amd64`);
  }
  return { os: parts[0]!, architecture: parts[1]!, variant: parts[2] };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/**
 * containerd's platforms matcher: os and architecture must be equal; a wanted variant must be
 * equal, except that arm64 treats a missing variant as v8.
 */
export function platformMatches(want: Platform, have: Platform): boolean {
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  if (!want.variant) return true;
  const norm = (p: Platform): string | undefined => (p.architecture === 'arm64' && !p.variant ? 'v8' : p.variant);
  return norm(want) === norm(have);
}
