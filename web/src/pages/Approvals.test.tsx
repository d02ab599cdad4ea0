import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { json, mockApi, renderPage } from '../test/render';
import ApprovalsPage from './Approvals';

const WAITING = {
  id: 'req-1',
  kind: 'issue',
  state: 'awaiting_approval',
  owner_id: 'id-shop',
  adapter_id: 'builtin',
  spec: { dns_names: ['www.shop.example'], ip_addresses: [], validity_days: 30, key_source: 'server', key_type: 'ecdsa_p256' },
  key_source: 'server',
  requested_by: 'token:dev',
  attempts: 0,
  created_at: '2026-11-02T00:00:00Z',
  updated_at: '2026-11-02T00:00:00Z',
};

function renderApprovals(approve: () => Response) {
  const api = mockApi({
    'GET /api/v1/requests': { items: [WAITING], next_cursor: null },
    'GET /api/v1/owners': [{ id: 'id-shop', name: 'shop', created_at: '', updated_at: '' }],
    'POST /api/v1/requests/req-1/approve': approve,
  });
  renderPage(<ApprovalsPage />, { url: '/approvals', role: 'security' });
  return api;
}

describe('approvals', () => {
  it('lists what each request asks, and approves with a comment', async () => {
    const user = userEvent.setup();
    const { calls, fetchMock } = renderApprovals(() =>
      json({ ...WAITING, state: 'issued', certificate_id: 'cert-1', decided_by: 'token:security-test' }),
    );
    const row = (await screen.findByRole('link', { name: 'www.shop.example' })).closest('tr')!;
    await within(row).findByText('shop');
    expect(within(row).getByText('token:dev')).toBeInTheDocument();
    expect(within(row).getByText('Made by the server: ECDSA P-256')).toBeInTheDocument();
    expect(within(row).getByText('30 days')).toBeInTheDocument();

    await user.click(within(row).getByRole('button', { name: 'Approve the request for www.shop.example' }));
    const dialog = await screen.findByRole('dialog', { name: 'Approve request' });
    await user.type(within(dialog).getByRole('textbox', { name: /Comment/ }), 'looks right');
    await user.click(within(dialog).getByRole('button', { name: 'Approve' }));

    const link = await screen.findByRole('link', { name: 'Open the certificate' });
    expect(link).toHaveAttribute('href', '/certificates/cert-1');
    const index = calls.findIndex((call) => call.method === 'POST');
    expect(await (fetchMock.mock.calls[index]?.[0] as Request).clone().json()).toEqual({ comment: 'looks right' });
  });

  it("shows the server's refusal of one's own request in the dialog", async () => {
    const user = userEvent.setup();
    renderApprovals(() =>
      json(
        {
          type: 'https://cmp.dev/problems/forbidden',
          title: 'Forbidden',
          status: 403,
          detail: 'a request cannot be approved or rejected by the caller who made it',
        },
        403,
      ),
    );
    await user.click(await screen.findByRole('button', { name: 'Approve the request for www.shop.example' }));
    const dialog = await screen.findByRole('dialog', { name: 'Approve request' });
    await user.click(within(dialog).getByRole('button', { name: 'Approve' }));
    const alert = await within(dialog).findByRole('alert');
    expect(alert).toHaveTextContent('a request cannot be approved or rejected by the caller who made it');
    await waitFor(() => expect(screen.getByRole('dialog', { name: 'Approve request' })).toBeInTheDocument());
  });
});
