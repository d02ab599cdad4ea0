import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { json, mockApi, renderPage } from '../test/render';
import ScansPage from './Scans';

const OWNERS = [{ id: 'id-shop', name: 'shop', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' }];

function run(extra: Record<string, unknown> = {}) {
  return {
    id: 'run-1',
    scan_id: 'scan-1',
    state: 'running',
    trigger: 'manual',
    started_by: 'token:admin',
    started_at: '2026-12-04T10:00:00Z',
    cancel_requested: false,
    progress: { total: 40, scanned: 12, served: 5, closed: 6, errors: 1, certificates: 3, created: 1, gone: 0, error_samples: [] },
    ...extra,
  };
}

function scan(extra: Record<string, unknown> = {}) {
  return {
    id: 'scan-1',
    name: 'dmz',
    spec: { targets: ['10.0.0.0/24', 'a.example', 'b.example', 'c.example'], ports: '443,8443' },
    enabled: true,
    interval_secs: 86_400,
    created_by: 'token:admin',
    created_at: '2026-12-01T00:00:00Z',
    updated_at: '2026-12-01T00:00:00Z',
    last_run: run(),
    ...extra,
  };
}

describe('Scans', () => {
  it('lists scans with their schedule and the running run, and cancels it', async () => {
    const user = userEvent.setup();
    let cancelled = false;
    const { calls } = mockApi({
      'GET /api/v1/scans': () => [scan(cancelled ? { last_run: run({ cancel_requested: true }) } : {})],
      'POST /api/v1/scans/scan-1/cancel': () => {
        cancelled = true;
        return run({ cancel_requested: true });
      },
    });
    renderPage(<ScansPage />, { url: '/scans', role: 'security' });

    const row = await screen.findByRole('row', { name: /dmz/ });
    expect(within(row).getByText('10.0.0.0/24, a.example, b.example and 1 more')).toBeInTheDocument();
    expect(within(row).getByText('Every 1 day')).toBeInTheDocument();
    expect(within(row).getByText('Running')).toBeInTheDocument();
    expect(within(row).getByText('12 of 40 endpoints, 3 certificates (1 new), 1 error')).toBeInTheDocument();
    await user.click(within(row).getByRole('button', { name: 'Cancel run: dmz' }));
    expect(calls.filter((call) => call.method === 'POST').map((call) => call.url.pathname)).toEqual(['/api/v1/scans/scan-1/cancel']);
    expect(await within(row).findByRole('button', { name: 'Stopping…: dmz' })).toBeDisabled();
  });

  it('creates a scan from the form, and shows the refused target the server names', async () => {
    const user = userEvent.setup();
    let attempts = 0;
    const { calls, fetchMock } = mockApi({
      'GET /api/v1/scans': [],
      'GET /api/v1/owners': OWNERS,
      'POST /api/v1/scans': () => {
        attempts += 1;
        if (attempts === 1) {
          return json(
            {
              type: 'https://cmp.dev/problems/validation',
              title: 'Invalid request',
              status: 422,
              errors: [{ pointer: 'spec/targets/1', reason: 'outside the allowed ranges', detail: '8.8.8.8 is outside discovery.allowed_ranges' }],
            },
            422,
          );
        }
        return json(scan({ name: 'edge', last_run: null }), 201);
      },
    });
    renderPage(<ScansPage />, { url: '/scans', role: 'admin' });

    await screen.findByText('No scans yet.');
    await user.click(screen.getByRole('button', { name: 'New scan' }));
    const form = screen.getByRole('region', { name: 'New scan' });
    await user.type(within(form).getByRole('textbox', { name: 'Name' }), 'edge');
    await user.selectOptions(await within(form).findByRole('combobox', { name: 'Owner of what it finds' }), 'shop');
    await user.type(within(form).getByRole('textbox', { name: 'Targets' }), '10.0.0.0/24, 8.8.8.8');
    await user.clear(within(form).getByRole('textbox', { name: 'Ports' }));
    await user.type(within(form).getByRole('textbox', { name: 'Ports' }), '443,2525/smtp');
    await user.type(within(form).getByRole('textbox', { name: 'SNI names' }), 'www.example edge.example');
    await user.selectOptions(within(form).getByRole('combobox', { name: 'Runs' }), 'interval');
    await user.click(within(form).getByRole('button', { name: 'Create scan' }));

    expect(await within(form).findByText(/8\.8\.8\.8 is outside discovery.allowed_ranges/)).toBeInTheDocument();
    expect(within(form).getByText('spec/targets/1')).toBeInTheDocument();
    const index = calls.findIndex((call) => call.method === 'POST');
    const body = (await (fetchMock.mock.calls[index]?.[0] as Request).clone().json()) as Record<string, unknown>;
    expect(body).toEqual({
      name: 'edge',
      owner: 'shop',
      interval_secs: 86_400,
      cron: null,
      spec: {
        targets: ['10.0.0.0/24', '8.8.8.8'],
        ports: '443,2525/smtp',
        sni_names: ['www.example', 'edge.example'],
        sni_reverse_dns: false,
        sni_none: true,
        probe_legacy_tls: false,
      },
    });

    await user.click(within(form).getByRole('button', { name: 'Create scan' }));
    expect(await screen.findByText(/Created edge/)).toBeInTheDocument();
    expect(screen.queryByRole('region', { name: 'New scan' })).not.toBeInTheDocument();
  });
});
