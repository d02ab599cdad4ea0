import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Route, Routes } from 'react-router';
import { describe, expect, it } from 'vitest';
import { json, mockApi, renderPage } from '../test/render';
import ManagedDetailPage, { parseDeployments } from './ManagedDetail';

const MANAGED = {
  id: 'managed-1',
  name: 'shop-www',
  owner_id: 'id-shop',
  owner_name: 'shop',
  adapter_id: 'builtin',
  created_at: '2026-12-01T00:00:00Z',
  created_by: 'token:dev',
  renewal_failures: 0,
  spec: { dns_names: ['www.shop.example'], key_source: 'server', key_type: 'ecdsa_p256', validity_days: 30 },
  versions: [],
};

const DEPLOYED = {
  agent: 'web-01',
  agent_id: 'agent-1',
  target: 'nginx',
  state: 'verified',
  verified_at: '2026-12-02T00:00:00Z',
  served_fingerprint: 'ab'.repeat(32),
};

describe('managed certificate deployments', () => {
  it('reads agent:target lines, a target after the last colon', () => {
    expect(parseDeployments('web-01:nginx\n  web-02:files ,db:haproxy')).toEqual([
      { agent: 'web-01', target: 'nginx' },
      { agent: 'web-02', target: 'files' },
      { agent: 'db', target: 'haproxy' },
    ]);
  });

  it('replaces the whole list, and shows what the server refused beside what was typed', async () => {
    const user = userEvent.setup();
    let saved = false;
    const { calls, fetchMock } = mockApi({
      'GET /api/v1/managed-certificates/managed-1': MANAGED,
      'GET /api/v1/managed-certificates/managed-1/deployments': () =>
        saved ? [DEPLOYED, { ...DEPLOYED, agent: 'web-02', agent_id: 'agent-2', state: 'pending' }] : [DEPLOYED],
      'GET /api/v1/adapters': [],
      'PUT /api/v1/managed-certificates/managed-1/deployments': (url: URL) => {
        const attempt = calls.filter((call) => call.method === 'PUT' && call.url.pathname === url.pathname).length;
        if (attempt === 1) {
          // What the server says of an agent it does not know.
          return json({ type: 'https://cmp.dev/problems/not-found', title: 'Not Found', status: 404, detail: 'agent web-9 not found' }, 404);
        }
        saved = true;
        return [];
      },
    });
    renderPage(
      <Routes>
        <Route path="/managed/:id" element={<ManagedDetailPage />} />
      </Routes>,
      { url: '/managed/managed-1', role: 'developer' },
    );
    const section = await screen.findByRole('region', { name: 'Deployments' });
    await user.click(await within(section).findByRole('button', { name: 'Edit deployments' }));
    const field = within(section).getByRole('textbox', { name: 'Deploy to' });
    expect(field).toHaveValue('web-01:nginx');
    await user.type(field, '\nweb-9:nginx');
    await user.click(within(section).getByRole('button', { name: 'Save deployments' }));
    expect(await within(section).findByText(/agent web-9 not found/)).toBeInTheDocument();
    // Still editing, with what was typed.
    expect(within(section).getByRole('textbox', { name: 'Deploy to' })).toHaveValue('web-01:nginx\nweb-9:nginx');

    await user.clear(field);
    await user.type(field, 'web-01:nginx\nweb-02:nginx');
    await user.click(within(section).getByRole('button', { name: 'Save deployments' }));
    expect(await within(section).findByRole('cell', { name: 'web-02' })).toBeInTheDocument();
    const puts = calls.map((call, index) => ({ call, index })).filter(({ call }) => call.method === 'PUT');
    const last = puts[puts.length - 1];
    const body = (await (fetchMock.mock.calls[last!.index]?.[0] as Request).clone().json()) as unknown;
    expect(body).toEqual({
      deployments: [
        { agent: 'web-01', target: 'nginx' },
        { agent: 'web-02', target: 'nginx' },
      ],
    });
    await waitFor(() => expect(within(section).queryByRole('textbox', { name: 'Deploy to' })).not.toBeInTheDocument());
  });
});
