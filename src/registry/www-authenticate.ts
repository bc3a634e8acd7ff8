/** One challenge from a `WWW-Authenticate` header (RFC 9110 §11.6.1). */
export interface Challenge {
  /** Lowercased scheme: `bearer`, `basic`, … */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` value into challenges. Handles several challenges in one header,
 * quoted strings with escaped quotes and commas inside them (a `scope` such as
 * `repository:a:pull,push` is quoted and contains a comma), and token68 values.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipWs();
    if (header[i] === ',') {
      i++;
      continue;
    }
    const token = readToken();
    if (token === '') {
      i++; // garbage character: skip it rather than loop forever
      continue;
    }
    skipWs();
    if (header[i] === '=' && current) {
      // auth-param: token "=" ( token / quoted-string )
      i++;
      skipWs();
      let value: string;
      if (header[i] === '"') {
        i++;
        let v = '';
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          v += header[i];
          i++;
        }
        i++; // closing quote
        value = v;
      } else {
        const start = i;
        while (i < n && header[i] !== ',' && header[i] !== ' ') i++;
        value = header.slice(start, i);
      }
      current.params[token.toLowerCase()] = value;
      continue;
    }
    // A new challenge: scheme, optionally followed by token68 or params.
    current = { scheme: token.toLowerCase(), params: {} };
    out.push(current);
    skipWs();
    const m = /^[A-Za-z0-9._~+/-]+=*/.exec(header.slice(i));
    if (m && !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+\s*=[^=]/.test(header.slice(i))) {
      current.params['token68'] = m[0];
      i += m[0].length;
    }
  }
  return out;
}
