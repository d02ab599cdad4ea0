// The Overview's figures (`GET /api/v1/stats/overview` and `/stats/expiry`). Written first
// by hand against the agreed contract; now the generated types, under the names pages use.
import { queryOptions } from '@tanstack/react-query';
import type { components } from './schema';
import { api, unwrap } from './client';

/** Counts by status, requests and managed certificates, scoped to a developer's owners. */
export type OverviewStats = components['schemas']['Overview'];
/** Certificates expiring per week, one series per owner ("other owners", "no owner"). */
export type ExpiryStats = components['schemas']['ExpiryTimeline'];
export type ExpirySeries = components['schemas']['ExpirySeries'];

export const EXPIRY_WEEKS = 13;

/** The overview's counts, as the page asks for them (and the page's prefetch). */
export const overviewStatsQuery = queryOptions({
  queryKey: ['stats', 'overview'],
  queryFn: (): Promise<OverviewStats> => unwrap(api.GET('/api/v1/stats/overview')),
});

/** The overview's expiry timeline, as the page asks for it (and the page's prefetch). */
export const expiryStatsQuery = queryOptions({
  queryKey: ['stats', 'expiry', EXPIRY_WEEKS],
  queryFn: (): Promise<ExpiryStats> =>
    unwrap(api.GET('/api/v1/stats/expiry', { params: { query: { weeks: EXPIRY_WEEKS } } })),
});
