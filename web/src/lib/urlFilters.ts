// Filters held in a URL's query string, so that a view can be shared and survives a reload:
// reading them, writing them in a fixed order, changing one. The inventory (inventoryQuery.ts)
// and the audit log (pages/parts/auditQuery.ts) each name their keys and make their API query.

export type UrlFilters<K extends string> = Partial<Record<K, string>>;

/** The filters named by `keys` in a query string; unknown parameters are ignored, empty ones dropped. */
export function readFilters<K extends string>(keys: readonly K[], search: URLSearchParams): UrlFilters<K> {
  const filters: UrlFilters<K> = {};
  for (const key of keys) {
    const value = search.get(key)?.trim();
    if (value) filters[key] = value;
  }
  return filters;
}

/** The query string of `filters`, in the order of `keys`, without empty values. */
export function writeFilters<K extends string>(keys: readonly K[], filters: UrlFilters<K>): URLSearchParams {
  const search = new URLSearchParams();
  for (const key of keys) {
    const value = filters[key]?.trim();
    if (value) search.set(key, value);
  }
  return search;
}

/**
 * Filters with one changed. Any change but paging starts again at the first page: a cursor
 * belongs to the filters it was made for.
 */
export function changeFilter<F extends { cursor?: string }>(filters: F, key: keyof F, value: string | undefined): F {
  const next: F = { ...filters, [key]: value?.trim() || undefined };
  if (key !== 'cursor') delete next.cursor;
  return next;
}

/** A date from the URL (YYYY-MM-DD) as the RFC 3339 time the API wants, midnight UTC; full times pass as they are. */
export function dateToRfc3339(value: string): string {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value;
}
