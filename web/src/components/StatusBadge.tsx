// A certificate's status as a coloured badge with its words (colour is never the only cue).

const STATUS_LABELS: Record<string, string> = {
  valid: 'Valid',
  expiring: 'Expiring',
  expired: 'Expired',
  not_yet_valid: 'Not yet valid',
  revoked: 'Revoked',
};

export function statusLabel(status: string): string {
  return STATUS_LABELS[status] ?? status;
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge ${status}`}>{statusLabel(status)}</span>;
}

const FINDING_LABELS: Record<string, string> = {
  expired: 'Expired',
  expiring: 'Expiring soon',
  not_yet_valid: 'Not yet valid',
  weak_rsa_key: 'Weak RSA key',
  sha1_signature: 'SHA-1 signature',
  md5_signature: 'MD5 signature',
  self_signed_leaf: 'Self-signed leaf',
  no_san: 'No SAN',
  ca_certificate: 'CA certificate',
  validity_exceeds_policy: 'Lifetime over policy',
  validity_exceeds_request: 'Lifetime over request',
  name_mismatch: 'Name mismatch',
  incomplete_chain: 'Incomplete chain',
  untrusted_chain: 'Untrusted chain',
  legacy_tls: 'TLS 1.0/1.1 offered',
};

export function findingLabel(finding: string): string {
  return FINDING_LABELS[finding] ?? finding.replace(/_/g, ' ');
}

/** Findings that are only facts, not problems. */
const INFORMATIONAL_FINDINGS = new Set(['ca_certificate']);

export function FindingBadges({ findings }: { findings: readonly string[] }) {
  if (findings.length === 0) return <span className="muted">none</span>;
  return (
    <span className="badges">
      {findings.map((finding) => (
        <span key={finding} className={`badge ${INFORMATIONAL_FINDINGS.has(finding) ? '' : 'warn'}`}>
          {findingLabel(finding)}
        </span>
      ))}
    </span>
  );
}
