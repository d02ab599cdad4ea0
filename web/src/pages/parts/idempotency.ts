// Idempotency keys for writes that create something (requests, renewals): a retry of the same
// click is then answered with the first result instead of doing it twice.

/** A fresh random key. crypto.randomUUID needs a secure context; getRandomValues does not. */
export function idempotencyKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}
