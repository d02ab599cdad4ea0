// An owner's policy in words, and the key types the server can make checked against it.
import type { components } from '../../api/schema';

export type Policy = components['schemas']['Policy'];
export type KeyRule = components['schemas']['KeyRule'];

/** Key types `POST /api/v1/requests` can make on the server (`key_type`). */
export const SERVER_KEY_TYPES: readonly { value: string; label: string; type: KeyRule['type']; bits: number | null }[] = [
  { value: 'ecdsa_p256', label: 'ECDSA P-256', type: 'ec', bits: 256 },
  { value: 'ecdsa_p384', label: 'ECDSA P-384', type: 'ec', bits: 384 },
  { value: 'rsa2048', label: 'RSA 2048', type: 'rsa', bits: 2048 },
  { value: 'rsa3072', label: 'RSA 3072', type: 'rsa', bits: 3072 },
  { value: 'rsa4096', label: 'RSA 4096', type: 'rsa', bits: 4096 },
  { value: 'ed25519', label: 'Ed25519', type: 'ed25519', bits: null },
];

export function keyTypeLabel(value: string): string {
  return SERVER_KEY_TYPES.find((key) => key.value === value)?.label ?? value;
}

/** What an empty `allowed_keys` means (cmp_domain::Policy). */
const DEFAULT_KEYS: readonly KeyRule[] = [
  { type: 'rsa', min_bits: 2048 },
  { type: 'ec', min_bits: 256 },
  { type: 'ed25519' },
];

function effectiveKeys(policy: Policy): readonly KeyRule[] {
  return policy.allowed_keys && policy.allowed_keys.length > 0 ? policy.allowed_keys : DEFAULT_KEYS;
}

const KEY_NAMES: Record<string, string> = { rsa: 'RSA', ec: 'EC', ed25519: 'Ed25519', ed448: 'Ed448', dsa: 'DSA' };

/** A key family as people write it: `rsa` -> RSA, `ec` -> EC. */
export function keyFamilyLabel(type: string): string {
  return KEY_NAMES[type] ?? type;
}

function describeKeyRule(rule: KeyRule): string {
  const name = KEY_NAMES[rule.type] ?? rule.type;
  return rule.min_bits ? `${name} of at least ${rule.min_bits} bits` : name;
}

export function describeKeys(policy: Policy): string {
  return effectiveKeys(policy).map(describeKeyRule).join(', ');
}

/** Whether the policy admits a server-made key of this type. */
export function keyTypeAllowed(policy: Policy | undefined, value: string): boolean {
  if (!policy) return true;
  const key = SERVER_KEY_TYPES.find((candidate) => candidate.value === value);
  if (!key) return true;
  return effectiveKeys(policy).some((rule) => rule.type === key.type && (key.bits ?? 0) >= (rule.min_bits ?? 0));
}

export function describeNames(policy: Policy): string {
  const names = policy.allowed_names ?? [];
  return names.length === 0 ? 'Any name' : names.join(', ');
}

export function describeValidity(policy: Policy): string {
  const days = policy.max_validity_days;
  return days ? `At most ${days} day${days === 1 ? '' : 's'}` : 'No limit set';
}

/** The rules of name patterns, as the policy editor and the request form explain them. */
export const NAME_RULES =
  '"api.example.com" exactly, "*.example.com" one label under it, ".example.com" any depth under it; IP addresses only when listed exactly.';
