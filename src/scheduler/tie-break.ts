// The scheduler's one point of randomness: a seeded, stateless rank per node id that orders
// equally scored nodes. Same seed and id, same rank; no global RNG.

/** 32-bit FNV-1a of a string. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A pseudo-random rank in [0, 2^32) for `nodeId` under `seed` (murmur3 finaliser over FNV-1a). */
export function seededRank(seed: number, nodeId: string): number {
  let h = (fnv1a(nodeId) ^ Math.imul(seed | 0, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
