// How times, durations and names are written on the page: one place, one style.

const dateFormat = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
});

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
}

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTimeFormat.format(date);
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** "in 12 days", "3 days ago", "today": how far `iso` is from `now`. */
export function relativeDays(iso: string, now: Date = new Date()): string {
  const days = Math.round((new Date(iso).getTime() - now.getTime()) / DAY_MS);
  if (days === 0) return 'today';
  if (days === 1) return 'tomorrow';
  if (days === -1) return 'yesterday';
  return days > 0 ? `in ${days} days` : `${-days} days ago`;
}

/** A fingerprint or serial in colon-separated pairs, as people compare them. */
export function colonHex(hex: string): string {
  return (hex.match(/.{1,2}/g) ?? []).join(':').toUpperCase();
}

export function keyDescription(key: { type: string; bits?: number | null; curve?: string | null }): string {
  const name = key.type === 'ec' ? 'EC' : key.type === 'rsa' ? 'RSA' : key.type;
  if (key.curve) return `${name} ${key.curve}`;
  return key.bits ? `${name} ${key.bits}` : name;
}

/** The name people know a certificate by: its CN, else its first SAN, else the subject. */
export function certificateName(certificate: {
  common_name?: string | null;
  sans: readonly { value: string }[];
  subject: string;
}): string {
  return certificate.common_name || certificate.sans[0]?.value || certificate.subject || '(no name)';
}
