// How an issuance request is shown on the Request and Approvals pages: its state in words,
// what it asked for (its `spec`), and how its key is held.
import type { IssuanceRequest, RequestSpec } from '../../api/types';
import { keyTypeLabel } from './policy';

const STATE_LABELS: Record<string, string> = {
  pending: 'Pending',
  awaiting_approval: 'Awaiting approval',
  approved: 'Approved',
  submitted: 'Submitted to the CA',
  issued: 'Issued',
  failed: 'Failed',
  rejected: 'Rejected',
};

const STATE_TONES: Record<string, string> = {
  awaiting_approval: 'warn',
  issued: 'ok',
  failed: 'bad',
  rejected: 'bad',
};

function requestStateLabel(state: string): string {
  return STATE_LABELS[state] ?? state.replace(/_/g, ' ');
}

export function RequestStateBadge({ state }: { state: string }) {
  return <span className={`badge ${STATE_TONES[state] ?? ''}`}>{requestStateLabel(state)}</span>;
}

/** States after which nothing happens to a request by itself. */
export const FINAL_STATES: ReadonlySet<string> = new Set(['issued', 'failed', 'rejected']);

/** The names a request (or a managed certificate, whose spec is one) asks for: DNS names and IP addresses, else its common name. */
export function requestNames({ spec }: { spec: RequestSpec }): string[] {
  const names = [...(spec.dns_names ?? []), ...(spec.ip_addresses ?? [])];
  if (names.length === 0 && spec.common_name) names.push(spec.common_name);
  return names;
}

/** Who holds the key, in words: "CSR (requester's key)" or "Server-made ECDSA P-256". */
export function requestKey(request: IssuanceRequest): string {
  const { spec } = request;
  const source = spec.key_source;
  if (source === 'csr') return "From a CSR (the requester's key)";
  if (source === 'server') return `Made by the server: ${keyTypeLabel(spec.key_type ?? 'ecdsa_p256')}`;
  if (source === 'agent') return `Made on the agent's host: ${keyTypeLabel(spec.key_type ?? 'ecdsa_p256')}`;
  return '—';
}
