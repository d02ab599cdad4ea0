import { screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { ExpiryStats, OverviewStats } from '../api/stats';
import { mockApi, renderPage } from '../test/render';
import OverviewPage from './Overview';

const OVERVIEW: OverviewStats = {
  certificates: { total: 1234, valid: 1000, expiring: 200, expired: 30, not_yet_valid: 0, revoked: 4 },
  expiry_window_days: 30,
  requests: { awaiting_approval: 2, failed_last_7_days: 1 },
  managed: { total: 10, renewal_failing: 1 },
};

const WEEKS = Array.from({ length: 13 }, (_, i) => new Date(Date.UTC(2026, 11, 3 + 7 * i)).toISOString());

const EXPIRY: ExpiryStats = {
  week_starts: WEEKS,
  series: [
    { label: 'shop', owner_id: 'owner-shop', counts: [3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2] },
    { label: 'payments', owner_id: 'owner-payments', counts: [0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] },
    { label: 'no owner', owner_id: null, counts: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] },
  ],
};

const FAILED = {
  items: [
    {
      id: 'req-1',
      kind: 'renew',
      state: 'failed',
      owner_id: 'owner-shop',
      adapter_id: 'builtin',
      managed_certificate_id: 'managed-web',
      certificate_id: null,
      spec: { dns_names: ['api.shop.example'] },
      key_source: 'server',
      requested_by: 'scheduler',
      attempts: 5,
      last_error: 'CA unavailable',
      created_at: '2026-12-01T10:00:00Z',
      updated_at: '2026-12-02T10:00:00Z',
    },
  ],
  next_cursor: null,
};

const AUDIT = {
  items: [
    {
      seq: 7,
      occurred_at: '2026-12-02T11:00:00Z',
      actor: 'token:admin',
      action: 'certificate.revoked',
      entity_type: 'certificate',
      entity_id: 'cert-1',
      request_id: null,
      details: {},
      prev_hash: '00',
      hash: '11',
    },
  ],
  next_cursor: null,
};

function mockOverviewApi() {
  return mockApi({
    'GET /api/v1/stats/overview': OVERVIEW,
    'GET /api/v1/stats/expiry': EXPIRY,
    'GET /api/v1/requests': FAILED,
    'GET /api/v1/audit': AUDIT,
    'GET /api/v1/owners': [{ id: 'owner-shop', name: 'shop', created_at: '', updated_at: '' }],
  });
}

describe('Overview', () => {
  it('shows the counts by status, each linking to the inventory filtered by it', async () => {
    mockOverviewApi();
    renderPage(<OverviewPage />);
    const counts = await screen.findByRole('list', { name: 'Certificates by status' });
    expect(within(counts).getByRole('link', { name: /1,234\s*Certificates/ })).toHaveAttribute('href', '/certificates');
    expect(within(counts).getByRole('link', { name: /200\s*Expiring within 30 days/ })).toHaveAttribute(
      'href',
      '/certificates?status=expiring',
    );
    expect(within(counts).getByRole('link', { name: /30\s*Expired/ })).toHaveAttribute('href', '/certificates?status=expired');
    const requests = screen.getByRole('list', { name: 'Requests and managed certificates' });
    expect(within(requests).getByRole('link', { name: /2\s*Requests awaiting approval/ })).toHaveAttribute('href', '/approvals');
    expect(within(requests).getByText('Renewals failing')).toBeInTheDocument();
  });

  it('draws the expiry timeline stacked by owner, with the numbers as a table', async () => {
    mockOverviewApi();
    const { container } = renderPage(<OverviewPage />);
    // The chart's chunk (Recharts) loads on its own: allow a busy machine (CI runs this beside
    // other suites) more than the default second.
    expect(await screen.findByText('12 certificates expire in the next 13 weeks.', {}, { timeout: 5_000 })).toBeInTheDocument();
    // Recharts drew one stacked bar per non-zero count.
    await waitFor(() => expect(container.querySelectorAll('.recharts-bar-rectangle').length).toBeGreaterThan(0), { timeout: 5_000 });
    const table = screen.getByRole('table', { name: 'Certificates expiring per week, by owner' });
    expect(within(table).getAllByRole('columnheader').map((th) => th.textContent)).toEqual([
      'Week of',
      'shop',
      'payments',
      'no owner',
      'All',
    ]);
    // In the week of Dec 10, payments' 5 link to that owner's certificates of the week, and
    // the week's total to all of them.
    const [ownerLink, weekLink] = within(table).getAllByRole('link', { name: '5' });
    expect(ownerLink).toHaveAttribute('href', '/certificates?owner=payments&expires_after=2026-12-10&expires_before=2026-12-17');
    expect(weekLink).toHaveAttribute('href', '/certificates?expires_after=2026-12-10&expires_before=2026-12-17');
  });

  it('lists failed requests and recent activity for an admin', async () => {
    mockOverviewApi();
    renderPage(<OverviewPage />);
    const failed = await screen.findByRole('region', { name: 'Failed requests and renewals' });
    expect(await within(failed).findByText('CA unavailable')).toBeInTheDocument();
    expect(within(failed).getByText('api.shop.example')).toBeInTheDocument();
    expect(within(failed).getByRole('link', { name: 'renew' })).toHaveAttribute('href', '/managed/managed-web');
    const activity = screen.getByRole('region', { name: 'Recent activity' });
    expect(await within(activity).findByText('certificate.revoked')).toBeInTheDocument();
    expect(within(activity).getByRole('link', { name: 'cert-1' })).toHaveAttribute('href', '/certificates/cert-1');
  });

  it('asks a developer for no audit events', async () => {
    const { calls } = mockOverviewApi();
    renderPage(<OverviewPage />, { role: 'developer' });
    await screen.findByRole('list', { name: 'Certificates by status' });
    expect(screen.queryByRole('region', { name: 'Recent activity' })).toBeNull();
    expect(calls.some((call) => call.url.pathname === '/api/v1/audit')).toBe(false);
  });

  it('shows the problem when the figures cannot be had', async () => {
    mockApi({
      'GET /api/v1/stats/overview': () =>
        new Response(JSON.stringify({ title: 'Service unavailable', status: 503, detail: 'the database does not answer', instance: 'r-9' }), {
          status: 503,
          headers: { 'Content-Type': 'application/problem+json' },
        }),
      'GET /api/v1/stats/expiry': EXPIRY,
      'GET /api/v1/requests': FAILED,
      'GET /api/v1/audit': AUDIT,
      'GET /api/v1/owners': [],
    });
    renderPage(<OverviewPage />);
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Loading counts: Service unavailable');
    expect(alert).toHaveTextContent('the database does not answer');
    expect(alert).toHaveTextContent('Request id: r-9');
  });
});
