// What a role may do, as far as the dashboard offers it: one place decides which nav items
// and buttons appear. Each capability names the API route it needs; the roles come from
// cmpd's OpenAPI document (route-roles.ts, generated), where the server reads them too, so the
// dashboard cannot offer what the server would refuse.
import { routeRoles, type RouteKey } from '../api/route-roles';
import type { components } from '../api/schema';

export type Role = components['schemas']['Role'];

const CAPABILITY_ROUTES = {
  viewOverview: 'GET /api/v1/stats/overview',
  viewCertificates: 'GET /api/v1/certificates',
  exportCertificates: 'GET /api/v1/certificates/export',
  importCertificates: 'POST /api/v1/certificates/import',
  editCertificate: 'PATCH /api/v1/certificates/{id}',
  deleteCertificate: 'DELETE /api/v1/certificates/{id}',
  revokeCertificate: 'POST /api/v1/certificates/{id}/revoke',
  downloadKey: 'GET /api/v1/certificates/{id}/key',
  viewRequests: 'GET /api/v1/requests',
  createRequest: 'POST /api/v1/requests',
  approveRequests: 'POST /api/v1/requests/{id}/approve',
  viewManaged: 'GET /api/v1/managed-certificates',
  createManaged: 'POST /api/v1/managed-certificates',
  renewManaged: 'POST /api/v1/managed-certificates/{id}/renew',
  editDeployments: 'PUT /api/v1/managed-certificates/{id}/deployments',
  viewAdapters: 'GET /api/v1/adapters',
  manageAdapters: 'POST /api/v1/adapters',
  viewOwners: 'GET /api/v1/owners',
  manageOwners: 'POST /api/v1/owners',
  deleteOwners: 'DELETE /api/v1/owners/{id}',
  editPolicies: 'PUT /api/v1/owners/{id}/policy',
  viewTokens: 'GET /api/v1/tokens',
  manageTokens: 'POST /api/v1/tokens',
  viewAudit: 'GET /api/v1/audit',
  viewAgents: 'GET /api/v1/agents',
  viewScans: 'GET /api/v1/scans',
  manageScans: 'POST /api/v1/scans',
  viewNotifications: 'GET /api/v1/notifications/rules',
  manageNotifications: 'POST /api/v1/notifications/rules',
} as const satisfies Record<string, RouteKey>;

export type Capability = keyof typeof CAPABILITY_ROUTES;
export type Capabilities = Readonly<Record<Capability, boolean>>;

function rolesOf(route: string): readonly string[] {
  return (routeRoles as Record<string, readonly string[]>)[route] ?? [];
}

/** Every capability of `role`: true where the capability's route admits the role. */
export function capabilities(role: Role | string): Capabilities {
  const entries = Object.entries(CAPABILITY_ROUTES).map(([capability, route]) => [
    capability,
    rolesOf(route).includes(role),
  ]);
  return Object.fromEntries(entries) as Record<Capability, boolean>;
}

/** The route a capability stands for (shown in tests and in "why is this missing" answers). */
export function routeOf(capability: Capability): string {
  return CAPABILITY_ROUTES[capability];
}
