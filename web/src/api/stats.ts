// Hand-written types of the two Overview routes that the server is gaining
// (`GET /api/v1/stats/overview`, `GET /api/v1/stats/expiry`). Once they are in cmpd's OpenAPI
// document, `npm run api-types` generates them: replace these with the generated ones and
// call them through `api` like every other route.
import { getJson } from './client';

/** `GET /api/v1/stats/overview`: counts, scoped to the caller's owners for a developer. */
export interface OverviewStats {
  certificates: {
    total: number;
    valid: number;
    expiring: number;
    expired: number;
    not_yet_valid: number;
    revoked: number;
  };
  /** What "expiring" means: expires within this many days. */
  expiry_window_days: number;
  requests: { awaiting_approval: number; failed_last_7_days: number };
  managed: { total: number; renewal_failing: number };
}

/** One stacked series of the expiry timeline: an owner, "other owners" or "no owner". */
export interface ExpirySeries {
  label: string;
  owner_id: string | null;
  /** Certificates expiring in each week of `week_starts`. */
  counts: number[];
}

/** `GET /api/v1/stats/expiry?weeks=N`. */
export interface ExpiryStats {
  /** RFC 3339, one per week. */
  week_starts: string[];
  series: ExpirySeries[];
}

export const EXPIRY_WEEKS = 13;

export function fetchOverviewStats(): Promise<OverviewStats> {
  return getJson<OverviewStats>('/api/v1/stats/overview');
}

export function fetchExpiryStats(weeks = EXPIRY_WEEKS): Promise<ExpiryStats> {
  return getJson<ExpiryStats>(`/api/v1/stats/expiry?weeks=${weeks}`);
}
