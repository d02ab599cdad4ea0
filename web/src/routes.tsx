// The route table: every page of the dashboard, its nav label and the capability it needs.
// Pages load lazily (one chunk each), so the first page only carries what it shows.
import { lazy, type ComponentType, type LazyExoticComponent } from 'react';
import type { Capability } from './auth/capabilities';

export interface PageRoute {
  path: string;
  /** Shown in the nav when set; detail pages have none. */
  navLabel?: string;
  /** The nav item and the page appear only to roles with this capability. */
  capability: Capability;
  Page: LazyExoticComponent<ComponentType>;
}

export const PAGE_ROUTES: readonly PageRoute[] = [
  { path: '/', navLabel: 'Overview', capability: 'viewOverview', Page: lazy(() => import('./pages/Overview')) },
  { path: '/certificates', navLabel: 'Certificates', capability: 'viewCertificates', Page: lazy(() => import('./pages/Inventory')) },
  { path: '/certificates/:id', capability: 'viewCertificates', Page: lazy(() => import('./pages/CertificateDetail')) },
  { path: '/request', navLabel: 'Request', capability: 'createRequest', Page: lazy(() => import('./pages/Request')) },
  { path: '/approvals', navLabel: 'Approvals', capability: 'approveRequests', Page: lazy(() => import('./pages/Approvals')) },
  { path: '/managed', navLabel: 'Managed', capability: 'viewManaged', Page: lazy(() => import('./pages/Managed')) },
  { path: '/managed/:id', capability: 'viewManaged', Page: lazy(() => import('./pages/ManagedDetail')) },
  { path: '/adapters', navLabel: 'Adapters', capability: 'viewAdapters', Page: lazy(() => import('./pages/Adapters')) },
  { path: '/owners', navLabel: 'Owners and policies', capability: 'viewOwners', Page: lazy(() => import('./pages/Owners')) },
  { path: '/tokens', navLabel: 'API tokens', capability: 'viewTokens', Page: lazy(() => import('./pages/Tokens')) },
  { path: '/audit', navLabel: 'Audit log', capability: 'viewAudit', Page: lazy(() => import('./pages/Audit')) },
];
