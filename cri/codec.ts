/**
 * A small proto3 reader and wire codec for cri/proto/api.proto, so keelson needs neither
 * @grpc/proto-loader nor protobufjs at run time (they cost 10–17 MB of RSS; the daemon's whole
 * budget is 80 MB). It understands exactly what that file uses: messages (nested enums too),
 * enums, scalar fields (string, bytes, bool, int32, uint32, int64, uint64), repeated fields
 * (packed or not on input), maps, and services with unary and server-streaming RPCs.
 *
 * Object mapping (what cri/types.ts describes):
 * - field names as written in the proto (snake_case);
 * - int64/uint64 decode to decimal strings; encode from number, string or bigint;
 * - enums decode to their names; encode from name or number;
 * - decoding fills every absent scalar/list/map with its default ('', 0, false, '0', empty Buffer,
 *   [], {}), and absent message fields with null; unknown fields are skipped;
 * - encoding leaves out undefined/null and proto3 default scalars.
 */

type Scalar = 'string' | 'bytes' | 'bool' | 'int32' | 'uint32' | 'int64' | 'uint64';
const SCALARS = new Set<string>(['string', 'bytes', 'bool', 'int32', 'uint32', 'int64', 'uint64']);

interface FieldDef {
  name: string;
  number: number;
  repeated: boolean;
  /** Scalar name, or the resolved full name of a message or enum. */
  type: string;
  kind: 'scalar' | 'message' | 'enum' | 'map';
  /** For maps: key and value field definitions (numbers 1 and 2). */
  key?: FieldDef;
  value?: FieldDef;
}

interface MessageDef {
  name: string;
  fields: FieldDef[];
  byNumber: Map<number, FieldDef>;
}

interface EnumDef {
  name: string;
  byName: Map<string, number>;
  byNumber: Map<number, string>;
}

export interface RpcDef {
  name: string;
  request: string;
  response: string;
  responseStream: boolean;
}

export interface Schema {
  pkg: string;
  messages: Map<string, MessageDef>;
  enums: Map<string, EnumDef>;
  services: Map<string, Map<string, RpcDef>>;
}

// ---- parsing ---------------------------------------------------------------------------------

function tokenize(text: string): string[] {
  const withoutComments = text.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
  return withoutComments.match(/"[^"]*"|[A-Za-z_][\w.]*|-?\d+|[{}()<>=;,[\]]/g) ?? [];
}

interface RawField {
  name: string;
  number: number;
  repeated: boolean;
  typeName: string;
  mapKey?: string;
  mapValue?: string;
  scope: string;
}

export function parseProto(text: string): Schema {
  const tokens = tokenize(text);
  let i = 0;
  const peek = () => tokens[i];
  const next = () => {
    const t = tokens[i++];
    if (t === undefined) throw new Error('proto: unexpected end of file');
    return t;
  };
  const expect = (t: string) => {
    const got = next();
    if (got !== t) throw new Error(`proto: expected ${t}, got ${got} (token ${i})`);
  };
  const skipStatement = () => {
    while (next() !== ';');
  };
  const skipOptions = () => {
    if (peek() !== '[') return;
    while (next() !== ']');
  };

  let pkg = '';
  const rawMessages = new Map<string, RawField[]>();
  const enums = new Map<string, EnumDef>();
  const services = new Map<string, Map<string, RpcDef>>();

  function parseEnum(scope: string): void {
    const name = next();
    const full = scope ? `${scope}.${name}` : name;
    const def: EnumDef = { name: full, byName: new Map(), byNumber: new Map() };
    expect('{');
    while (peek() !== '}') {
      const valueName = next();
      if (valueName === 'option' || valueName === 'reserved') {
        skipStatement();
        continue;
      }
      expect('=');
      const n = Number(next());
      skipOptions();
      expect(';');
      def.byName.set(valueName, n);
      if (!def.byNumber.has(n)) def.byNumber.set(n, valueName);
    }
    expect('}');
    enums.set(full, def);
  }

  function parseMessage(scope: string): void {
    const name = next();
    const full = scope ? `${scope}.${name}` : name;
    const fields: RawField[] = [];
    rawMessages.set(full, fields);
    expect('{');
    while (peek() !== '}') {
      const t = next();
      if (t === 'message') parseMessage(full);
      else if (t === 'enum') parseEnum(full);
      else if (t === 'option' || t === 'reserved') skipStatement();
      else if (t === 'map') {
        expect('<');
        const mapKey = next();
        expect(',');
        const mapValue = next();
        expect('>');
        const fieldName = next();
        expect('=');
        const number = Number(next());
        skipOptions();
        expect(';');
        fields.push({ name: fieldName, number, repeated: false, typeName: 'map', mapKey, mapValue, scope: full });
      } else {
        const repeated = t === 'repeated';
        const typeName = repeated ? next() : t;
        const fieldName = next();
        expect('=');
        const number = Number(next());
        skipOptions();
        expect(';');
        fields.push({ name: fieldName, number, repeated, typeName, scope: full });
      }
    }
    expect('}');
  }

  function parseService(): void {
    const name = next();
    const rpcs = new Map<string, RpcDef>();
    expect('{');
    while (peek() !== '}') {
      const t = next();
      if (t === 'option') {
        skipStatement();
        continue;
      }
      if (t !== 'rpc') throw new Error(`proto: unexpected ${t} in service ${name}`);
      const rpcName = next();
      expect('(');
      if (peek() === 'stream') throw new Error(`proto: client streaming is not supported (${rpcName})`);
      const request = next();
      expect(')');
      expect('returns');
      expect('(');
      let responseStream = false;
      if (peek() === 'stream') {
        next();
        responseStream = true;
      }
      const response = next();
      expect(')');
      if (peek() === '{') {
        next();
        expect('}');
      } else expect(';');
      rpcs.set(rpcName, { name: rpcName, request, response, responseStream });
    }
    expect('}');
    services.set(name, rpcs);
  }

  while (i < tokens.length) {
    const t = next();
    if (t === 'syntax' || t === 'option' || t === 'import') skipStatement();
    else if (t === 'package') {
      pkg = next();
      expect(';');
    } else if (t === 'message') parseMessage('');
    else if (t === 'enum') parseEnum('');
    else if (t === 'service') parseService();
    else throw new Error(`proto: unexpected top-level token ${t}`);
  }

  /** Resolves a type name the way protobuf scoping does: innermost scope first. */
  function resolve(typeName: string, scope: string): { kind: 'message' | 'enum'; full: string } {
    const parts = scope.split('.').filter(Boolean);
    for (let n = parts.length; n >= 0; n--) {
      const candidate = [...parts.slice(0, n), typeName].join('.');
      if (rawMessages.has(candidate)) return { kind: 'message', full: candidate };
      if (enums.has(candidate)) return { kind: 'enum', full: candidate };
    }
    throw new Error(`proto: unknown type ${typeName} (in ${scope})`);
  }

  function fieldDef(name: string, number: number, repeated: boolean, typeName: string, scope: string): FieldDef {
    if (SCALARS.has(typeName)) return { name, number, repeated, type: typeName, kind: 'scalar' };
    const r = resolve(typeName, scope);
    return { name, number, repeated, type: r.full, kind: r.kind };
  }

  const messages = new Map<string, MessageDef>();
  for (const [full, raws] of rawMessages) {
    const fields = raws.map((f): FieldDef => {
      if (f.typeName === 'map') {
        const key = fieldDef('key', 1, false, f.mapKey!, f.scope);
        const value = fieldDef('value', 2, false, f.mapValue!, f.scope);
        return { name: f.name, number: f.number, repeated: false, type: 'map', kind: 'map', key, value };
      }
      return fieldDef(f.name, f.number, f.repeated, f.typeName, f.scope);
    });
    messages.set(full, { name: full, fields, byNumber: new Map(fields.map((f) => [f.number, f])) });
  }
  for (const rpcs of services.values()) {
    for (const rpc of rpcs.values()) {
      for (const m of [rpc.request, rpc.response]) if (!messages.has(m)) throw new Error(`proto: rpc ${rpc.name} uses unknown message ${m}`);
    }
  }
  return { pkg, messages, enums, services };
}

// ---- encoding --------------------------------------------------------------------------------

class Writer {
  private chunks: Buffer[] = [];
  private bytes: number[] = [];

  private flushBytes(): void {
    if (this.bytes.length) {
      this.chunks.push(Buffer.from(this.bytes));
      this.bytes = [];
    }
  }

  varint(value: bigint): void {
    let v = BigInt.asUintN(64, value);
    while (v > 0x7fn) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }

  tag(number: number, wireType: number): void {
    this.varint(BigInt(number * 8 + wireType));
  }

  lengthDelimited(data: Buffer): void {
    this.varint(BigInt(data.length));
    this.flushBytes();
    this.chunks.push(data);
  }

  finish(): Buffer {
    this.flushBytes();
    return Buffer.concat(this.chunks);
  }
}

function toBigInt(value: unknown, field: string): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new TypeError(`field ${field}: ${value} is not an integer`);
    return BigInt(value);
  }
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  if (typeof value === 'boolean') return value ? 1n : 0n;
  throw new TypeError(`field ${field}: ${JSON.stringify(value)} is not an integer`);
}

export interface Codec {
  encode(message: string, value: unknown): Buffer;
  decode(message: string, data: Buffer): unknown;
}

export function createCodec(schema: Schema): Codec {
  function message(name: string): MessageDef {
    const m = schema.messages.get(name);
    if (!m) throw new Error(`proto: unknown message ${name}`);
    return m;
  }

  function enumNumber(field: FieldDef, value: unknown): bigint {
    if (typeof value === 'number') return BigInt(value);
    const e = schema.enums.get(field.type)!;
    const n = e.byName.get(String(value));
    if (n === undefined) throw new TypeError(`field ${field.name}: ${JSON.stringify(value)} is not a ${field.type}`);
    return BigInt(n);
  }

  function isDefault(field: FieldDef, value: unknown): boolean {
    if (field.kind === 'enum') return value === 0 || schema.enums.get(field.type)!.byName.get(String(value)) === 0;
    if (field.kind !== 'scalar') return false;
    switch (field.type) {
      case 'string':
        return value === '';
      case 'bytes':
        return (value as Buffer).length === 0;
      case 'bool':
        return value === false;
      default:
        return value === 0 || value === '0' || value === 0n;
    }
  }

  /** Writes one non-repeated value of `field` (scalar, enum or message) with its tag. */
  function writeValue(w: Writer, field: FieldDef, value: unknown): void {
    if (field.kind === 'message') {
      w.tag(field.number, 2);
      w.lengthDelimited(encodeMessage(field.type, value));
      return;
    }
    if (field.kind === 'enum') {
      w.tag(field.number, 0);
      w.varint(enumNumber(field, value));
      return;
    }
    switch (field.type as Scalar) {
      case 'string':
        w.tag(field.number, 2);
        w.lengthDelimited(Buffer.from(String(value), 'utf8'));
        return;
      case 'bytes':
        w.tag(field.number, 2);
        w.lengthDelimited(Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array | string));
        return;
      default:
        w.tag(field.number, 0);
        w.varint(toBigInt(value, field.name));
    }
  }

  function encodeMessage(name: string, value: unknown): Buffer {
    const def = message(name);
    const obj = (value ?? {}) as Record<string, unknown>;
    if (typeof obj !== 'object') throw new TypeError(`message ${name}: expected an object, got ${typeof value}`);
    const w = new Writer();
    for (const field of def.fields) {
      const v = obj[field.name];
      if (v === undefined || v === null) continue;
      if (field.kind === 'map') {
        for (const [k, mv] of Object.entries(v as Record<string, unknown>)) {
          if (mv === undefined || mv === null) continue;
          const entry = new Writer();
          writeValue(entry, field.key!, k);
          writeValue(entry, field.value!, mv);
          w.tag(field.number, 2);
          w.lengthDelimited(entry.finish());
        }
        continue;
      }
      if (field.repeated) {
        if (!Array.isArray(v)) throw new TypeError(`field ${name}.${field.name}: expected an array`);
        const packable = field.kind === 'enum' || (field.kind === 'scalar' && field.type !== 'string' && field.type !== 'bytes');
        if (packable) {
          if (!v.length) continue;
          const packed = new Writer();
          for (const item of v) packed.varint(field.kind === 'enum' ? enumNumber(field, item) : toBigInt(item, field.name));
          w.tag(field.number, 2);
          w.lengthDelimited(packed.finish());
        } else {
          for (const item of v) writeValue(w, field, item);
        }
        continue;
      }
      if (isDefault(field, v)) continue;
      writeValue(w, field, v);
    }
    return w.finish();
  }

  // ---- decoding --------------------------------------------------------------------------------

  function defaultOf(field: FieldDef): unknown {
    if (field.kind === 'map') return {};
    if (field.repeated) return [];
    if (field.kind === 'message') return null;
    if (field.kind === 'enum') return schema.enums.get(field.type)!.byNumber.get(0) ?? 0;
    switch (field.type as Scalar) {
      case 'string':
        return '';
      case 'bytes':
        return Buffer.alloc(0);
      case 'bool':
        return false;
      case 'int64':
      case 'uint64':
        return '0';
      default:
        return 0;
    }
  }

  function decodeMessage(name: string, buf: Buffer): Record<string, unknown> {
    const def = message(name);
    const out: Record<string, unknown> = {};
    for (const field of def.fields) out[field.name] = defaultOf(field);
    let pos = 0;

    const readVarint = (): bigint => {
      let result = 0n;
      let shift = 0n;
      for (;;) {
        if (pos >= buf.length) throw new Error(`proto: truncated varint in ${name}`);
        const b = buf[pos++]!;
        result |= BigInt(b & 0x7f) << shift;
        if (b < 0x80) return result;
        shift += 7n;
        if (shift > 63n) throw new Error(`proto: varint too long in ${name}`);
      }
    };
    const readLength = (): number => {
      const n = Number(readVarint());
      if (pos + n > buf.length) throw new Error(`proto: truncated field in ${name}`);
      return n;
    };
    const scalarFromVarint = (field: FieldDef, v: bigint): unknown => {
      if (field.kind === 'enum') {
        const n = Number(BigInt.asIntN(32, v));
        return schema.enums.get(field.type)!.byNumber.get(n) ?? n;
      }
      switch (field.type as Scalar) {
        case 'bool':
          return v !== 0n;
        case 'int32':
          return Number(BigInt.asIntN(32, v));
        case 'uint32':
          return Number(BigInt.asUintN(32, v));
        case 'int64':
          return BigInt.asIntN(64, v).toString();
        case 'uint64':
          return BigInt.asUintN(64, v).toString();
        default:
          throw new Error(`proto: field ${name}.${field.name} (${field.type}) cannot be a varint`);
      }
    };
    const valueFromBytes = (field: FieldDef, data: Buffer): unknown => {
      if (field.kind === 'message') return decodeMessage(field.type, data);
      if (field.type === 'string') return data.toString('utf8');
      if (field.type === 'bytes') return Buffer.from(data);
      throw new Error(`proto: field ${name}.${field.name} (${field.type}) cannot be length-delimited`);
    };

    while (pos < buf.length) {
      const tag = Number(readVarint());
      const number = tag >>> 3;
      const wireType = tag & 7;
      const field = def.byNumber.get(number);
      if (!field) {
        // Unknown field (a newer runtime): skip it.
        if (wireType === 0) readVarint();
        else if (wireType === 1) pos += 8;
        else if (wireType === 2) {
          const len = readLength(); // read first: `pos += readLength()` would add to the old pos
          pos += len;
        }
        else if (wireType === 5) pos += 4;
        else throw new Error(`proto: unsupported wire type ${wireType} in ${name}`);
        if (pos > buf.length) throw new Error(`proto: truncated field in ${name}`);
        continue;
      }
      if (field.kind === 'map') {
        if (wireType !== 2) throw new Error(`proto: map ${name}.${field.name} with wire type ${wireType}`);
        const len = readLength();
        const entry = decodeMessageFields([field.key!, field.value!], buf.subarray(pos, pos + len), `${name}.${field.name}`);
        pos += len;
        (out[field.name] as Record<string, unknown>)[String(entry.key)] = entry.value;
        continue;
      }
      let value: unknown;
      if (wireType === 0) {
        value = scalarFromVarint(field, readVarint());
      } else if (wireType === 2) {
        const len = readLength();
        const data = buf.subarray(pos, pos + len);
        pos += len;
        if (field.repeated && field.kind !== 'message' && field.type !== 'string' && field.type !== 'bytes') {
          // Packed repeated numbers.
          const sub = decodePacked(field, data);
          (out[field.name] as unknown[]).push(...sub);
          continue;
        }
        value = valueFromBytes(field, data);
      } else {
        throw new Error(`proto: field ${name}.${field.name} has unsupported wire type ${wireType}`);
      }
      if (field.repeated) (out[field.name] as unknown[]).push(value);
      else out[field.name] = value;
    }
    return out;

    function decodePacked(field: FieldDef, data: Buffer): unknown[] {
      const items: unknown[] = [];
      const saved = { buf, pos };
      buf = data;
      pos = 0;
      try {
        while (pos < buf.length) items.push(scalarFromVarint(field, readVarint()));
      } finally {
        buf = saved.buf;
        pos = saved.pos;
      }
      return items;
    }
  }

  /** Decodes a map entry (an anonymous message of key = 1, value = 2). */
  function decodeMessageFields(fields: FieldDef[], data: Buffer, where: string): Record<string, unknown> {
    const anon = `__map_entry__${where}`;
    if (!schema.messages.has(anon)) schema.messages.set(anon, { name: anon, fields, byNumber: new Map(fields.map((f) => [f.number, f])) });
    return decodeMessage(anon, data);
  }

  return {
    encode: (name, value) => encodeMessage(name, value),
    decode: (name, data) => decodeMessage(name, data),
  };
}
