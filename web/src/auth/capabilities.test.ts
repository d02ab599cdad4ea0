import { describe, expect, it } from 'vitest';
import { routeRoles } from '../api/route-roles';
import { capabilities, routeOf, type Capability } from './capabilities';

/** The capabilities a role has, sorted: easier to read in a failure than 20 booleans. */
function granted(role: string): Capability[] {
  return (Object.entries(capabilities(role)) as [Capability, boolean][])
    .filter(([, may]) => may)
    .map(([capability]) => capability)
    .sort();
}

describe('capabilities', () => {
  it('gives an admin everything', () => {
    expect(Object.values(capabilities('admin')).every(Boolean)).toBe(true);
  });

  it('gives security every certificate, approvals, revocation and the audit trail, but no keys, tokens or adapter admin', () => {
    const can = capabilities('security');
    expect(can.viewCertificates && can.approveRequests && can.revokeCertificate && can.viewAudit).toBe(true);
    expect(can.viewAdapters && can.viewOwners && can.manageOwners).toBe(true);
    expect(can.downloadKey || can.viewTokens || can.manageTokens || can.manageAdapters).toBe(false);
    // Scans and notification rules are security's too; deleting an owner is an admin's.
    expect(can.manageScans && can.manageNotifications).toBe(true);
    expect(can.deleteOwners).toBe(false);
  });

  it("gives a developer its teams' certificates, requests, managed certificates, their deployments and keys, and nothing of administration", () => {
    expect(granted('developer')).toEqual(
      [
        'createManaged',
        'createRequest',
        'downloadKey',
        'editCertificate',
        'editDeployments',
        'exportCertificates',
        'importCertificates',
        'renewManaged',
        'revokeCertificate',
        'viewAdapters',
        'viewCertificates',
        'viewManaged',
        'viewOverview',
        'viewOwners',
        'viewRequests',
      ].sort(),
    );
  });

  it('gives an agent (and an unknown role) nothing in the dashboard', () => {
    expect(granted('agent')).toEqual([]);
    expect(granted('somebody')).toEqual([]);
  });

  it('names only routes that are in the OpenAPI document', () => {
    for (const capability of Object.keys(capabilities('admin')) as Capability[]) {
      expect(routeRoles, capability).toHaveProperty([routeOf(capability)]);
    }
  });
});
