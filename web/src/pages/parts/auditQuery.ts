// The audit log's filters live in the URL's query string (a view can be shared and survives a
// reload). This module is the one translation: URL <-> filters <-> API query, and the
// datetime-local inputs <-> the RFC 3339 times the URL and the API hold.
import { changeFilter, dateToRfc3339, readFilters, writeFilters } from '../../lib/urlFilters';

const AUDIT_FILTER_KEYS = ['actor', 'action', 'entity_type', 'entity_id', 'since', 'until', 'cursor'] as const;

export type AuditFilterKey = (typeof AUDIT_FILTER_KEYS)[number];
export type AuditFilters = Partial<Record<AuditFilterKey, string>>;

const AUDIT_PAGE_SIZE = 50;

export function auditFiltersFromSearch(search: URLSearchParams): AuditFilters {
  return readFilters(AUDIT_FILTER_KEYS, search);
}

export function searchFromAuditFilters(filters: AuditFilters): URLSearchParams {
  return writeFilters(AUDIT_FILTER_KEYS, filters);
}

/** Filters with one changed; any change but paging goes back to the first page. */
export function withAuditFilter(filters: AuditFilters, key: AuditFilterKey, value: string | undefined): AuditFilters {
  return changeFilter(filters, key, value);
}

export function hasAuditFilters(filters: AuditFilters): boolean {
  return AUDIT_FILTER_KEYS.some((key) => key !== 'cursor' && Boolean(filters[key]));
}

/** The query of `GET /api/v1/audit` for these filters. */
export function auditApiQuery(filters: AuditFilters): Record<string, string | number> {
  const query: Record<string, string | number> = { limit: AUDIT_PAGE_SIZE };
  for (const key of AUDIT_FILTER_KEYS) {
    const value = filters[key];
    if (!value) continue;
    query[key] = key === 'since' || key === 'until' ? dateToRfc3339(value) : value;
  }
  return query;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** An RFC 3339 time as a datetime-local input shows it (the browser's time zone). */
export function toLocalInput(value: string | undefined): string {
  if (!value) return '';
  const date = new Date(dateToRfc3339(value));
  if (Number.isNaN(date.getTime())) return '';
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local input's value (local time) as RFC 3339 UTC, for the URL and the API. */
export function fromLocalInput(value: string): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return undefined;
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
