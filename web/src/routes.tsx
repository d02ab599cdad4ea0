// The route table: every page of the dashboard, its nav label and the capability it needs.
// Pages load lazily (one chunk each), so the first page only carries what it shows.
import type { ComponentType } from 'react';
import type { QueryClient } from '@tanstack/react-query';
import { matchPath } from 'react-router';
import { expiryStatsQuery, overviewStatsQuery } from './api/stats';
import type { Capability } from './auth/capabilities';
import { certificatesQuery, filtersFromSearch } from './lib/inventoryQuery';
import { onDemand } from './lib/onDemand';

export interface PageRoute {
  path: string;
  /** Shown in the nav when set; detail pages have none. */
  navLabel?: string;
  /** The nav item and the page appear only to roles with this capability. */
  capability: Capability;
  Page: ComponentType;
  /** Fetches the page's chunk (what rendering `Page` waits for). */
  load: () => Promise<unknown>;
  /** Starts the page's first data requests, with the same keys the page asks them by. */
  prefetch?: (client: QueryClient, search: URLSearchParams) => void;
}

/** A page loaded on demand: its component and its loader. */
function page(fetchChunk: () => Promise<{ default: ComponentType }>): Pick<PageRoute, 'Page' | 'load'> {
  const { Component, load } = onDemand(fetchChunk);
  return { Page: Component, load };
}

export const PAGE_ROUTES: readonly PageRoute[] = [
  { path: '/', navLabel: 'Overview', capability: 'viewOverview', ...page(() => import('./pages/Overview')),
    prefetch: (client) => {
      void client.prefetchQuery(overviewStatsQuery);
      void client.prefetchQuery(expiryStatsQuery);
    } },
  { path: '/certificates', navLabel: 'Certificates', capability: 'viewCertificates', ...page(() => import('./pages/Inventory')),
    prefetch: (client, search) => void client.prefetchQuery(certificatesQuery(filtersFromSearch(search))) },
  { path: '/certificates/:id', capability: 'viewCertificates', ...page(() => import('./pages/CertificateDetail')) },
  { path: '/request', navLabel: 'Request', capability: 'createRequest', ...page(() => import('./pages/Request')) },
  { path: '/approvals', navLabel: 'Approvals', capability: 'approveRequests', ...page(() => import('./pages/Approvals')) },
  { path: '/managed', navLabel: 'Managed', capability: 'viewManaged', ...page(() => import('./pages/Managed')) },
  { path: '/managed/:id', capability: 'viewManaged', ...page(() => import('./pages/ManagedDetail')) },
  { path: '/scans', navLabel: 'Scans', capability: 'viewScans', ...page(() => import('./pages/Scans')) },
  { path: '/scans/:id', capability: 'viewScans', ...page(() => import('./pages/ScanDetail')) },
  { path: '/notifications', navLabel: 'Notifications', capability: 'viewNotifications', ...page(() => import('./pages/Notifications')) },
  { path: '/adapters', navLabel: 'Adapters', capability: 'viewAdapters', ...page(() => import('./pages/Adapters')) },
  { path: '/owners', navLabel: 'Owners and policies', capability: 'viewOwners', ...page(() => import('./pages/Owners')) },
  { path: '/tokens', navLabel: 'API tokens', capability: 'viewTokens', ...page(() => import('./pages/Tokens')) },
  { path: '/audit', navLabel: 'Audit log', capability: 'viewAudit', ...page(() => import('./pages/Audit')) },
];

/**
 * Starts fetching the chunk of the page at `location`, and its first data when the browser
 * holds credentials, so that both load while the sign-in check (/api/v1/me) is under way
 * rather than after it. A page the caller may not see is refused by the server too: the
 * prefetched answer is then never shown.
 */
export function preloadPage(location: Location, client: QueryClient, signedIn: boolean): void {
  const route = PAGE_ROUTES.find(({ path }) => matchPath({ path, end: true }, location.pathname));
  void route?.load().catch(() => undefined); // a failure shows when the page renders
  if (signedIn) route?.prefetch?.(client, new URLSearchParams(location.search));
}
