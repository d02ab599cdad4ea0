// The route table: every page of the dashboard, its nav label and the capability it needs.
// Pages load lazily (one chunk each), so the first page only carries what it shows.
import { lazy, type ComponentType, type LazyExoticComponent } from 'react';
import { matchPath } from 'react-router';
import type { Capability } from './auth/capabilities';

export interface PageRoute {
  path: string;
  /** Shown in the nav when set; detail pages have none. */
  navLabel?: string;
  /** The nav item and the page appear only to roles with this capability. */
  capability: Capability;
  Page: LazyExoticComponent<ComponentType>;
  /** Fetches the page's chunk (what rendering `Page` waits for). */
  load: () => Promise<{ default: ComponentType }>;
}

/** A page loaded on demand: the lazy component and its loader. */
function onDemand(load: () => Promise<{ default: ComponentType }>): Pick<PageRoute, 'Page' | 'load'> {
  return { Page: lazy(load), load };
}

export const PAGE_ROUTES: readonly PageRoute[] = [
  { path: '/', navLabel: 'Overview', capability: 'viewOverview', ...onDemand(() => import('./pages/Overview')) },
  { path: '/certificates', navLabel: 'Certificates', capability: 'viewCertificates', ...onDemand(() => import('./pages/Inventory')) },
  { path: '/certificates/:id', capability: 'viewCertificates', ...onDemand(() => import('./pages/CertificateDetail')) },
  { path: '/request', navLabel: 'Request', capability: 'createRequest', ...onDemand(() => import('./pages/Request')) },
  { path: '/approvals', navLabel: 'Approvals', capability: 'approveRequests', ...onDemand(() => import('./pages/Approvals')) },
  { path: '/managed', navLabel: 'Managed', capability: 'viewManaged', ...onDemand(() => import('./pages/Managed')) },
  { path: '/managed/:id', capability: 'viewManaged', ...onDemand(() => import('./pages/ManagedDetail')) },
  { path: '/adapters', navLabel: 'Adapters', capability: 'viewAdapters', ...onDemand(() => import('./pages/Adapters')) },
  { path: '/owners', navLabel: 'Owners and policies', capability: 'viewOwners', ...onDemand(() => import('./pages/Owners')) },
  { path: '/tokens', navLabel: 'API tokens', capability: 'viewTokens', ...onDemand(() => import('./pages/Tokens')) },
  { path: '/audit', navLabel: 'Audit log', capability: 'viewAudit', ...onDemand(() => import('./pages/Audit')) },
];

/**
 * Starts fetching the chunk of the page at `pathname`, so that it loads while the sign-in
 * check (/api/v1/me) is under way rather than after it.
 */
export function preloadPage(pathname: string): void {
  const route = PAGE_ROUTES.find(({ path }) => matchPath({ path, end: true }, pathname));
  void route?.load().catch(() => undefined); // a failure shows when the page renders
}
