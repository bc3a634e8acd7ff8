/** A response as far as reading its body goes: undici's `Dispatcher.ResponseData` is one. */
export interface BodySource {
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<unknown> & { destroy(): unknown };
}

/**
 * Reads a whole response body of at most `limit` bytes. Registries and token services are hostile
 * until verified: a `Content-Length` over the limit is refused before any byte is read, and a body
 * that runs past the limit (no or a lying length, chunked) is cut off as soon as it does, so memory
 * never holds more than `limit` plus one network chunk. Over the limit, the body is destroyed (its
 * connection is not reused) and `tooLarge()` is thrown.
 */
export async function readBounded(res: BodySource, limit: number, tooLarge: () => Error): Promise<Buffer> {
  const raw = res.headers['content-length'];
  const declared = Number(Array.isArray(raw) ? raw[0] : raw);
  if (Number.isSafeInteger(declared) && declared > limit) {
    res.body.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res.body) {
    const chunk = c as Buffer;
    size += chunk.length;
    if (size > limit) {
      res.body.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
