import { ZtocError } from './errors.js';

/**
 * A bounds-checked reader of flatbuffers tables (flatbuffers "Internals": a root uoffset, tables
 * with a signed offset to their vtable, uint16 field offsets, uoffset-prefixed vectors and
 * strings). zTOCs come from registries and are hostile until checked: every read goes through
 * Buffer's checked accessors, and a vector cannot claim more elements than the buffer holds.
 * Callers decode inside `guard`, which turns a failed read into a ZtocError.
 * (The npm `flatbuffers` runtime reads without such checks, so it is used only for writing.)
 */
export class FbTable {
  private constructor(
    private readonly buf: Buffer,
    private readonly pos: number,
    private readonly vtable: number,
    private readonly vtableLength: number,
  ) {}

  /**
   * The root table. Reads below use Buffer's checked accessors without a try/catch, a closure, a
   * Buffer or a BigInt each: a zTOC has ~10 fields per file and thousands of files (a 9k-entry
   * zTOC took 95 ms to decode that way). Run the whole decode inside `guard`, so a failed read
   * (RangeError) becomes a ZtocError.
   */
  static root(buf: Buffer): FbTable {
    return guard(() => FbTable.at(buf, buf.readUInt32LE(0)));
  }

  private static at(buf: Buffer, pos: number): FbTable {
    const vtable = pos - buf.readInt32LE(pos);
    const len = buf.readUInt16LE(vtable);
    if (len < 4 || vtable + len > buf.length) throw new ZtocError(`flatbuffers vtable at ${vtable} is out of bounds`);
    return new FbTable(buf, pos, vtable, len);
  }

  private field(i: number): number {
    const slot = 4 + 2 * i;
    if (slot + 2 > this.vtableLength) return 0;
    const off = this.buf.readUInt16LE(this.vtable + slot);
    return off === 0 ? 0 : this.pos + off;
  }

  /** A little-endian int64 as a Number, refused outside the safe integers (read as two halves: no BigInt per field). */
  int64(i: number, dflt = 0): number {
    const p = this.field(i);
    if (!p) return dflt;
    // Exact below 2^53; beyond it the sum may round, but never back into the safe range.
    const v = this.buf.readInt32LE(p + 4) * 0x1_0000_0000 + this.buf.readUInt32LE(p);
    if (!Number.isSafeInteger(v)) throw new ZtocError(`64-bit field ${i} out of range: ${this.buf.readBigInt64LE(p)}`);
    return v;
  }

  int32(i: number, dflt = 0): number {
    const p = this.field(i);
    return p ? this.buf.readInt32LE(p) : dflt;
  }

  uint32(i: number, dflt = 0): number {
    const p = this.field(i);
    return p ? this.buf.readUInt32LE(p) : dflt;
  }

  int8(i: number, dflt = 0): number {
    const p = this.field(i);
    return p ? this.buf.readInt8(p) : dflt;
  }

  /** A string or [ubyte] field as the bytes stored (no copy), or undefined when absent. */
  bytes(i: number): Buffer | undefined {
    const p = this.field(i);
    return p ? this.bytesAtRef(p) : undefined;
  }

  /** A string field as a byte name (latin1, one char per byte), '' when absent; no Buffer made on the way. */
  latin1(i: number): string {
    const p = this.field(i);
    if (!p) return '';
    const at = this.stringAt(p);
    return at.len === 0 ? '' : this.buf.toString('latin1', at.start, at.start + at.len);
  }

  table(i: number): FbTable | undefined {
    const p = this.field(i);
    return p ? FbTable.at(this.buf, p + this.buf.readUInt32LE(p)) : undefined;
  }

  /** Number of elements of a vector of tables or strings (0 when absent). */
  vectorLength(i: number): number {
    const v = this.vector(i);
    return v ? v.len : 0;
  }

  tableAt(i: number, k: number): FbTable {
    const v = this.vector(i)!;
    const ref = v.start + 4 * k;
    return FbTable.at(this.buf, ref + this.buf.readUInt32LE(ref));
  }

  bytesAt(i: number, k: number): Buffer {
    const v = this.vector(i)!;
    return this.bytesAtRef(v.start + 4 * k);
  }

  private vector(i: number): { start: number; len: number } | undefined {
    const p = this.field(i);
    if (!p) return undefined;
    const at = p + this.buf.readUInt32LE(p);
    const len = this.buf.readUInt32LE(at);
    if (at + 4 + 4 * len > this.buf.length) throw new ZtocError(`vector field ${i} claims ${len} elements beyond the buffer`);
    return { start: at + 4, len };
  }

  private stringAt(ref: number): { start: number; len: number } {
    const at = ref + this.buf.readUInt32LE(ref);
    const len = this.buf.readUInt32LE(at);
    if (at + 4 + len > this.buf.length) throw new ZtocError(`string at ${at} runs past the end of the buffer`);
    return { start: at + 4, len };
  }

  private bytesAtRef(ref: number): Buffer {
    const s = this.stringAt(ref);
    return this.buf.subarray(s.start, s.start + s.len);
  }
}

/** Runs a decode over hostile bytes: any failure of a checked read (RangeError) becomes a ZtocError. */
export function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ZtocError) throw e;
    throw new ZtocError(`malformed flatbuffer (${(e as Error).message})`);
  }
}
