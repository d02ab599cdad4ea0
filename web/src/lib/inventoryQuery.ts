// The inventory's filters live in the URL's query string, so that a view can be shared and
// survives a reload. This module is the one translation: URL <-> filters <-> API query.

/** The filters as the URL holds them (all optional; absent means "any"). */
export interface InventoryFilters {
  q?: string;
  status?: string;
  /** Owner id or name. */
  owner?: string;
  /** RFC 4514, exact. */
  issuer?: string;
  key_type?: string;
  finding?: string;
  /** A date, YYYY-MM-DD (UTC): certificates that expire on or after its start. */
  expires_after?: string;
  /** A date, YYYY-MM-DD (UTC): certificates that expire before its start. */
  expires_before?: string;
  /** `not_after` (the server's default) or `created_at`. */
  sort?: string;
  /** The page: an opaque `next_cursor` from the server; absent for the first page. */
  cursor?: string;
}

export const FILTER_KEYS = [
  'q',
  'status',
  'owner',
  'issuer',
  'key_type',
  'finding',
  'expires_after',
  'expires_before',
  'sort',
  'cursor',
] as const satisfies readonly (keyof InventoryFilters)[];

export const PAGE_SIZE = 50;

/** The filters in a URL query string; unknown parameters are ignored. */
export function filtersFromSearch(search: URLSearchParams): InventoryFilters {
  const filters: InventoryFilters = {};
  for (const key of FILTER_KEYS) {
    const value = search.get(key)?.trim();
    if (value) filters[key] = value;
  }
  return filters;
}

/** The query string of `filters`, in a fixed order, without empty values. */
export function searchFromFilters(filters: InventoryFilters): URLSearchParams {
  const search = new URLSearchParams();
  for (const key of FILTER_KEYS) {
    const value = filters[key]?.trim();
    if (value) search.set(key, value);
  }
  return search;
}

/**
 * Filters with one changed. Any change but paging starts again at the first page: a cursor
 * belongs to the filters it was made for.
 */
export function withFilter(filters: InventoryFilters, key: keyof InventoryFilters, value: string | undefined): InventoryFilters {
  const next: InventoryFilters = { ...filters, [key]: value || undefined };
  if (key !== 'cursor') delete next.cursor;
  return next;
}

/** A date from the URL as the RFC 3339 time the API wants (midnight UTC); full times pass as they are. */
export function dateToRfc3339(value: string): string {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value;
}

/**
 * The API query of `GET /api/v1/certificates` (and of the CSV export, without paging) for
 * these filters.
 */
export function apiQueryFromFilters(filters: InventoryFilters, paged = true): Record<string, string | number> {
  const query: Record<string, string | number> = {};
  for (const key of FILTER_KEYS) {
    const value = filters[key];
    if (!value) continue;
    if (key === 'cursor' && !paged) continue;
    query[key] = key === 'expires_after' || key === 'expires_before' ? dateToRfc3339(value) : value;
  }
  if (paged) query.limit = PAGE_SIZE;
  return query;
}

/** True when any filter (not sort or page) is set. */
export function hasFilters(filters: InventoryFilters): boolean {
  return FILTER_KEYS.some((key) => key !== 'sort' && key !== 'cursor' && Boolean(filters[key]));
}
