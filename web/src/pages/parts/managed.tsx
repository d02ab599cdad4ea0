// How a managed certificate is shown: its renewal decision in words, its current version,
// and what its desired state asks for.
import type { components } from '../../api/schema';
import type { Managed } from '../../api/types';
import { formatDateTime } from '../../lib/format';
import { requestNames } from './requests';

type RenewalDecision = components['schemas']['RenewalDecision'];

const REASON_LABELS: Record<string, string> = {
  not_issued: 'Not issued yet',
  not_due: 'Not due',
  lifetime_elapsed: 'Lifetime elapsed',
  renew_before_window: 'Within renew-before',
  expired: 'Expired',
  backing_off: 'Backing off after failures',
  request_open: 'A request is open',
  suggested_window: "In the CA's suggested window",
  minimum_age: 'Under its minimum age',
  revoked: 'Current version revoked',
};

export function reasonLabel(reason: string): string {
  return REASON_LABELS[reason] ?? reason.replace(/_/g, ' ');
}

/** Unix seconds as a date and time. */
export function unixTime(seconds: number | null | undefined): string {
  if (!seconds) return '—';
  return formatDateTime(new Date(seconds * 1000).toISOString());
}

export function RenewalBadge({ decision }: { decision: RenewalDecision | null | undefined }) {
  if (!decision) return <span className="muted">not decided yet</span>;
  const tone =
    decision.reason === 'backing_off' || decision.reason === 'expired' ? 'bad' : decision.action === 'renew' ? 'warn' : 'ok';
  return (
    <span className={`badge ${tone}`}>
      {decision.action === 'renew' ? 'Renew' : 'Wait'}: {reasonLabel(decision.reason)}
    </span>
  );
}

export function currentVersion(managed: Managed) {
  return managed.versions.find((version) => version.certificate_id === managed.current_certificate_id) ?? null;
}

export function managedNames(managed: Managed): string {
  return requestNames(managed).join(', ') || '—';
}

/** `owner/name`: how a managed certificate is named among several owners. */
export function managedLabel(managed: Managed): string {
  return managed.owner_name ? `${managed.owner_name}/${managed.name}` : managed.name;
}
