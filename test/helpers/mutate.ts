/** A small seeded PRNG (mulberry32), so a failing fuzz case can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = unknown;

function nested(depth: number): Json {
  let v: Json = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

const replacements: Array<(r: () => number) => Json> = [
  () => null,
  () => 'not a number',
  () => '12',
  () => 1e308,
  () => -1e308,
  () => -0,
  () => -5,
  () => true,
  () => [],
  () => ({}),
  () => '',
  () => 'x'.repeat(10_000),
  () => "'; DROP TABLE users; --\u0000\u0007",
  () => '2024-13-45 25:61:00 +9999',
  () => nested(200),
  (r) => Math.floor(r() * 1e9),
];

/** Every container path of a JSON value, so a mutation can land anywhere. */
function paths(value: Json, at: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const p = [...at, Array.isArray(value) ? Number(k) : k];
      out.push(p);
      paths(v, p, out);
    }
  }
  return out;
}

/** One random mutation: a field removed, replaced by another type, or a key renamed. */
export function mutate(original: Json, random: () => number): Json {
  const copy = structuredClone(original) as Record<string, unknown>;
  const all = paths(copy);
  if (all.length === 0) return copy;
  const path = all[Math.floor(random() * all.length)]!;
  let parent: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  const op = random();
  if (op < 0.25 && !Array.isArray(parent)) delete parent[last];
  else if (op < 0.3 && !Array.isArray(parent)) {
    parent['__proto__x'] = parent[last];
    delete parent[last];
  } else parent[last] = replacements[Math.floor(random() * replacements.length)]!(random);
  return copy;
}

/** Bytes with invalid UTF-8 sequences spliced inside string values. */
export function corruptUtf8(body: Buffer, random: () => number): Buffer {
  const quote = body.indexOf(0x22, Math.floor(random() * body.length));
  if (quote < 0) return body;
  return Buffer.concat([body.subarray(0, quote + 1), Buffer.from([0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80]), body.subarray(quote + 1)]);
}
