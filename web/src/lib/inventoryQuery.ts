// The inventory's filters live in the URL's query string, so that a view can be shared and
// survives a reload. This module is the one translation: URL <-> filters <-> API query.
import { queryOptions } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import type { paths } from '../api/schema';
import { changeFilter, dateToRfc3339, readFilters, writeFilters } from './urlFilters';

type CertificateListQuery = NonNullable<paths['/api/v1/certificates']['get']['parameters']['query']>;

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

const FILTER_KEYS = [
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

const PAGE_SIZE = 50;

/** The filters in a URL query string; unknown parameters are ignored. */
export function filtersFromSearch(search: URLSearchParams): InventoryFilters {
  return readFilters(FILTER_KEYS, search);
}

/** The query string of `filters`, in a fixed order, without empty values. */
export function searchFromFilters(filters: InventoryFilters): URLSearchParams {
  return writeFilters(FILTER_KEYS, filters);
}

/** Filters with one changed; any change but paging goes back to the first page. */
export function withFilter(filters: InventoryFilters, key: keyof InventoryFilters, value: string | undefined): InventoryFilters {
  return changeFilter(filters, key, value);
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

/** The page of certificates that `filters` show: the inventory's query (and its prefetch). */
export function certificatesQuery(filters: InventoryFilters) {
  const query = apiQueryFromFilters(filters);
  return queryOptions({
    queryKey: ['certificates', query],
    queryFn: () => unwrap(api.GET('/api/v1/certificates', { params: { query: query as CertificateListQuery } })),
  });
}
