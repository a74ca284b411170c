// One protocol message on the wire: type byte, Int32 length (itself included), body. For unit
// tests that feed trackers, relays and parsers raw bytes.
export function framed(type: string, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}
