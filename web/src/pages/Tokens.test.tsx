import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import { json, mockApi, renderPage } from '../test/render';
import TokensPage from './Tokens';

const SECRET = 'cmp_4f1b0c6e9d2a7b3c5e8f0a1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b';

const OWNERS = [{ id: 'id-shop', name: 'shop', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' }];

function tokenInfo(extra: Record<string, unknown> = {}) {
  return {
    id: 'tok-7',
    name: 'ci-shop',
    role: 'developer',
    owners: ['id-shop'],
    expires_at: '2099-04-01T00:00:00Z',
    created_by: 'token:admin',
    created_at: '2026-01-01T00:00:00Z',
    revoked_at: null,
    ...extra,
  };
}

describe('API tokens', () => {
  it('shows a new token once, with a copy button, and never again', async () => {
    const user = userEvent.setup();
    const writeText = vi.fn(async () => {});
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    let created = false;
    const { calls, fetchMock } = mockApi({
      'GET /api/v1/tokens': () => (created ? [tokenInfo()] : []),
      'GET /api/v1/owners': OWNERS,
      'POST /api/v1/tokens': () => {
        created = true;
        return json({ ...tokenInfo(), token: SECRET }, 201);
      },
    });
    renderPage(<TokensPage />, { url: '/tokens', role: 'admin' });

    await screen.findByText('No tokens yet.');
    await user.click(screen.getByRole('button', { name: 'Create token' }));
    await user.type(screen.getByRole('textbox', { name: 'Name' }), 'ci-shop');
    // A developer token needs an owner before it can be created.
    const submit = screen.getByRole('button', { name: 'Create token' });
    expect(submit).toBeDisabled();
    await user.click(await screen.findByRole('checkbox', { name: 'shop' }));
    await user.click(submit);

    const dialog = await screen.findByRole('dialog', { name: 'Your new token' });
    expect(within(dialog).getByText(/You will not see it again/)).toBeInTheDocument();
    const field = within(dialog).getByRole('textbox', { name: 'API token for ci-shop' });
    expect(field).toHaveValue(SECRET);
    expect(field).toHaveAttribute('readonly');

    await user.click(within(dialog).getByRole('button', { name: 'Copy' }));
    expect(writeText).toHaveBeenCalledWith(SECRET);
    expect(within(dialog).getByText('Copied to the clipboard.')).toBeInTheDocument();

    const index = calls.findIndex((call) => call.method === 'POST');
    const body = (await (fetchMock.mock.calls[index]?.[0] as Request).clone().json()) as Record<string, unknown>;
    expect(body).toEqual({ name: 'ci-shop', role: 'developer', owners: ['id-shop'], expires_in_days: 90 });

    await user.click(within(dialog).getByRole('button', { name: 'I have copied it' }));
    // Gone from the page: the list shows the token's name, never its secret.
    await screen.findByRole('cell', { name: /ci-shop/ });
    await waitFor(() => expect(screen.queryByDisplayValue(SECRET)).not.toBeInTheDocument());
    expect(document.body.innerHTML).not.toContain(SECRET);
  });

  it('revokes a token only after a confirmation', async () => {
    const user = userEvent.setup();
    let revoked = false;
    const { calls } = mockApi({
      'GET /api/v1/tokens': () => [tokenInfo(revoked ? { revoked_at: '2026-02-01T00:00:00Z' } : {})],
      'GET /api/v1/owners': OWNERS,
      'DELETE /api/v1/tokens/tok-7': () => {
        revoked = true;
        return new Response(null, { status: 204 });
      },
    });
    renderPage(<TokensPage />, { url: '/tokens', role: 'admin' });

    await user.click(await screen.findByRole('button', { name: 'Revoke ci-shop' }));
    const dialog = await screen.findByRole('dialog', { name: 'Revoke token' });
    expect(calls.some((call) => call.method === 'DELETE')).toBe(false);
    await user.click(within(dialog).getByRole('button', { name: 'Revoke token' }));
    await waitFor(() => expect(calls.some((call) => call.method === 'DELETE')).toBe(true));
    expect(await screen.findByText('Revoked')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Revoke ci-shop' })).not.toBeInTheDocument();
  });
});
