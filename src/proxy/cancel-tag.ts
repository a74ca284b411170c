// With several coordinated instances (auth.mode proxy), a CancelRequest may reach an instance
// other than the one that issued the key. pgwarden's own keys therefore carry the issuing
// member's tag in the high bits of the process id, so any instance can tell whose key it is
// and send the request there (cancel-forwarder.ts).
//
//   processId (positive Int32) = 0 | tag (8 bits, 1..255) | 23 random bits
//
// A server's own process id is below 2^23 (Linux's pid_max is at most 2^22), so its tag reads
// as 0: never a member's. Tags come from the member name, so two names may share one; the
// forwarder stays correct then (it never forwards a key bearing its own tag: no loops), such
// keys just are not forwarded between those two members.
import { createHash, randomInt } from 'node:crypto';

const TAG_SHIFT = 23;
const LOW_BITS = 1 << TAG_SHIFT;
/** No member has this tag: keys pgwarden issues alone, and servers' own process ids. */
export const NO_TAG = 0;

/** A member's tag, 1..255, the same on every instance for the same name. */
export function memberTag(name: string): number {
  return 1 + (createHash('sha256').update(name, 'utf8').digest().readUInt32BE(0) % 255);
}

/** A random positive process id carrying `tag`. */
export function taggedProcessId(tag: number): number {
  if (!Number.isInteger(tag) || tag < 1 || tag > 255) throw new RangeError(`a member tag is 1..255, got ${tag}`);
  return tag * LOW_BITS + randomInt(0, LOW_BITS);
}

/** The tag a process id carries (read signed or unsigned); NO_TAG for one pgwarden cannot have issued with a tag. */
export function tagOf(processId: number): number {
  const u = processId >>> 0;
  if (u > 0x7fffffff) return NO_TAG;
  return u >>> TAG_SHIFT;
}
