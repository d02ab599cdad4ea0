import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Route, Routes } from 'react-router';
import { describe, expect, it } from 'vitest';
import { json, LocationProbe, mockApi, renderPage } from '../test/render';
import RequestPage, { pollInterval, requestableOwners } from './Request';

const SHOP = { id: 'id-shop', name: 'shop', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' };
const PAYMENTS = { id: 'id-payments', name: 'payments', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' };

const POLICY = {
  owner_id: 'id-shop',
  explicit: true,
  policy: {
    allowed_names: ['.shop.example'],
    allowed_keys: [{ type: 'rsa', min_bits: 3072 }],
    max_validity_days: 30,
    require_approval: true,
  },
};

function issuanceRequest(state: string, extra: Record<string, unknown> = {}) {
  return {
    id: 'req-1',
    kind: 'issue',
    state,
    owner_id: 'id-shop',
    adapter_id: 'builtin',
    spec: { dns_names: ['www.shop.example'], ip_addresses: [], validity_days: 30, key_source: 'server', key_type: 'rsa3072' },
    key_source: 'server',
    requested_by: 'token:dev',
    attempts: 0,
    created_at: '2026-01-02T00:00:00Z',
    updated_at: '2026-01-02T00:00:00Z',
    ...extra,
  };
}

function renderRequest(routes: Record<string, unknown> = {}, url = '/request') {
  const api = mockApi({
    'GET /api/v1/owners': [SHOP],
    'GET /api/v1/owners/id-shop/policy': POLICY,
    'GET /api/v1/adapters': [
      { id: 'a1', name: 'vault', kind: 'vault_pki', enabled: true, config: {}, has_credentials: true, created_at: '' },
    ],
    'GET /api/v1/requests': { items: [], next_cursor: null },
    ...routes,
  });
  renderPage(
    <>
      <Routes>
        <Route path="/request" element={<RequestPage />} />
      </Routes>
      <LocationProbe />
    </>,
    { url, role: 'developer' },
  );
  return api;
}

const posted = (calls: { method: string; url: URL }[], fetchMock: ReturnType<typeof mockApi>['fetchMock']) => {
  const index = calls.findIndex((call) => call.method === 'POST' && call.url.pathname === '/api/v1/requests');
  return index < 0 ? null : (fetchMock.mock.calls[index]?.[0] as Request);
};

describe('request form', () => {
  it("shows the owner's policy as hints beside the fields", async () => {
    renderRequest();
    const policy = await screen.findByRole('complementary', { name: 'Policy of shop' });
    await within(policy).findByText('.shop.example');
    expect(within(policy).getByText('RSA of at least 3072 bits')).toBeInTheDocument();
    expect(within(policy).getByText('At most 30 days')).toBeInTheDocument();
    expect(within(policy).getByText(/waits for a security reviewer/)).toBeInTheDocument();

    // The only owner is chosen, and each field carries its rule.
    expect(screen.getByRole('combobox', { name: 'Owner' })).toHaveValue('id-shop');
    expect(screen.getByRole('textbox', { name: 'DNS names' })).toHaveAccessibleDescription(/Allowed: \.shop\.example/);
    const validity = screen.getByRole('spinbutton', { name: 'Validity (days)' });
    expect(validity).toHaveAccessibleDescription('At most 30 days');
    // 90 days (the default) would be refused: the field starts at the policy's maximum.
    await waitFor(() => expect(validity).toHaveValue(30));
    expect(validity).toHaveAttribute('max', '30');
    expect(screen.getByText(/must approve it before it is issued/)).toBeInTheDocument();
  });

  it('offers the owners a developer acts for, and the adapters it may read', async () => {
    expect(requestableOwners([SHOP, PAYMENTS], 'developer', ['id-payments'])).toEqual([PAYMENTS]);
    expect(requestableOwners([SHOP, PAYMENTS], 'security', [])).toEqual([SHOP, PAYMENTS]);
    renderRequest();
    const adapter = await screen.findByRole('combobox', { name: 'CA (adapter)' });
    await within(adapter).findByRole('option', { name: 'vault (vault_pki)' });
    expect(within(adapter).getByRole('option', { name: 'Default (the built-in CA)' })).toBeInTheDocument();
  });

  it('switches between a pasted CSR and a key the server makes, and sends only the one chosen', async () => {
    const user = userEvent.setup();
    const { calls, fetchMock } = renderRequest({
      'POST /api/v1/requests': () => json(issuanceRequest('awaiting_approval'), 201),
      'GET /api/v1/requests/req-1': issuanceRequest('awaiting_approval'),
    });
    await screen.findByRole('complementary', { name: 'Policy of shop' });

    // A CSR first: the key stays with the requester.
    expect(screen.getByRole('radio', { name: /Paste a CSR/ })).toBeChecked();
    expect(screen.getByRole('textbox', { name: 'CSR (PEM)' })).toBeInTheDocument();
    expect(screen.queryByRole('combobox', { name: 'Key type' })).not.toBeInTheDocument();

    await user.click(screen.getByRole('radio', { name: 'Let the server make the key' }));
    expect(screen.queryByRole('textbox', { name: 'CSR (PEM)' })).not.toBeInTheDocument();
    const keyType = screen.getByRole('combobox', { name: 'Key type' });
    // The policy allows RSA of 3072 bits and more: the others are offered but disabled.
    await waitFor(() => expect(keyType).toHaveValue('rsa3072'));
    expect(within(keyType).getByRole('option', { name: /ECDSA P-256/ })).toBeDisabled();
    expect(within(keyType).getByRole('option', { name: 'RSA 4096' })).toBeEnabled();

    await user.click(screen.getByRole('radio', { name: /Paste a CSR/ }));
    expect(screen.getByRole('textbox', { name: 'CSR (PEM)' })).toBeInTheDocument();
    await user.click(screen.getByRole('radio', { name: 'Let the server make the key' }));

    await user.type(screen.getByRole('textbox', { name: 'DNS names' }), 'www.shop.example');
    await user.click(screen.getByRole('button', { name: 'Request certificate' }));

    await waitFor(() => expect(screen.getByTestId('location')).toHaveTextContent('/request?id=req-1'));
    const request = posted(calls, fetchMock);
    expect(request).not.toBeNull();
    const body = (await request!.clone().json()) as Record<string, unknown>;
    expect(body).toMatchObject({ owner: 'id-shop', dns_names: ['www.shop.example'], key_type: 'rsa3072', validity_days: 30 });
    expect(body).not.toHaveProperty('csr');
    expect(request!.headers.get('Idempotency-Key')).toMatch(/^[0-9a-f]{32}$/);

    // Then the request's state, followed.
    expect(await screen.findByText(/^State:/)).toHaveTextContent('Awaiting approval');
    expect(screen.getByText(/^State:/)).toHaveAttribute('role', 'status');
  });

  it('creates a managed certificate instead when it is to be kept renewed', async () => {
    const user = userEvent.setup();
    const { calls, fetchMock } = renderRequest({
      'POST /api/v1/managed-certificates': () => json({ id: 'managed-7', name: 'shop-www' }, 201),
    });
    await screen.findByRole('complementary', { name: 'Policy of shop' });
    await user.click(screen.getByRole('radio', { name: 'Let the server make the key' }));
    await user.type(screen.getByRole('textbox', { name: 'DNS names' }), 'www.shop.example');
    await user.click(screen.getByRole('checkbox', { name: /Keep it renewed/ }));
    const create = screen.getByRole('button', { name: 'Create managed certificate' });
    // A managed certificate needs a name first.
    expect(create).toBeDisabled();
    await user.type(screen.getByRole('textbox', { name: 'Name' }), 'shop-www');
    await user.type(screen.getByRole('textbox', { name: 'Renew before' }), '10d');
    await user.click(create);

    await waitFor(() => expect(screen.getByTestId('location')).toHaveTextContent('/managed/managed-7'));
    expect(calls.some((call) => call.url.pathname === '/api/v1/requests' && call.method === 'POST')).toBe(false);
    const index = calls.findIndex((call) => call.method === 'POST');
    const body = (await (fetchMock.mock.calls[index]?.[0] as Request).clone().json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      name: 'shop-www',
      renew_before: '10d',
      owner: 'id-shop',
      dns_names: ['www.shop.example'],
      key_type: 'rsa3072',
      validity_days: 30,
    });
  });

  it("shows a 422's detail next to the form and keeps what was typed", async () => {
    const user = userEvent.setup();
    renderRequest({
      'POST /api/v1/requests': () =>
        json(
          {
            type: 'https://cmp.dev/problems/policy',
            title: 'Refused by policy',
            status: 422,
            detail: 'evil.example is not among the names the policy of shop allows',
            instance: 'rid-42',
            errors: [{ pointer: 'allowed_names', reason: 'name_not_allowed', detail: 'evil.example is not allowed' }],
          },
          422,
        ),
    });
    await screen.findByRole('complementary', { name: 'Policy of shop' });
    const names = screen.getByRole('textbox', { name: 'DNS names' });
    await user.type(names, 'evil.example');
    await user.type(screen.getByRole('textbox', { name: 'CSR (PEM)' }), '-----BEGIN CERTIFICATE REQUEST-----');
    await user.click(screen.getByRole('button', { name: 'Request certificate' }));

    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('The request was refused: Refused by policy');
    expect(alert).toHaveTextContent('evil.example is not among the names the policy of shop allows');
    expect(alert).toHaveTextContent('rid-42');
    // The field at fault says so, and nothing typed is lost.
    expect(names).toHaveAttribute('aria-invalid', 'true');
    expect(names).toHaveAccessibleDescription(/evil\.example is not allowed/);
    expect(names).toHaveValue('evil.example');
    expect(screen.getByRole('textbox', { name: 'CSR (PEM)' })).toHaveValue('-----BEGIN CERTIFICATE REQUEST-----');
    expect(screen.getByTestId('location')).toHaveTextContent(/^\/request$/);
  });
});

describe('a replacement', () => {
  it('fills the form from the certificate it replaces', async () => {
    renderRequest(
      {
        'GET /api/v1/owners': [SHOP, PAYMENTS],
        'GET /api/v1/certificates/cert-1': {
          id: 'cert-1',
          common_name: 'www.shop.example',
          sans: [
            { type: 'dns', value: 'www.shop.example' },
            { type: 'dns', value: 'shop.example' },
            { type: 'ip', value: '10.0.0.7' },
          ],
          owner: { id: 'id-shop', name: 'shop' },
        },
      },
      '/request?from=cert-1',
    );
    await screen.findByText('Filled in from the certificate you are replacing.');
    expect(screen.getByRole('textbox', { name: 'DNS names' })).toHaveValue('www.shop.example\nshop.example');
    expect(screen.getByRole('textbox', { name: 'IP addresses' })).toHaveValue('10.0.0.7');
    expect(screen.getByRole('textbox', { name: 'Common name' })).toHaveValue('www.shop.example');
    await waitFor(() => expect(screen.getByRole('combobox', { name: 'Owner' })).toHaveValue('id-shop'));
  });
});

describe('request state', () => {
  it('links to the issued certificate once it is issued', async () => {
    renderRequest({ 'GET /api/v1/requests/req-1': issuanceRequest('issued', { certificate_id: 'cert-9' }) }, '/request?id=req-1');
    const link = await screen.findByRole('link', { name: 'Open the issued certificate' });
    expect(link).toHaveAttribute('href', '/certificates/cert-9');
    expect(screen.getByText(/^State:/)).toHaveTextContent('Issued');
  });

  it('says why a request was rejected', async () => {
    renderRequest(
      {
        'GET /api/v1/requests/req-1': issuanceRequest('rejected', { decided_by: 'token:sec', decision_comment: 'not ours' }),
      },
      '/request?id=req-1',
    );
    expect(await screen.findByRole('alert')).toHaveTextContent('Rejected by token:sec: not ours');
  });

  it('polls quickly while the CA works, slowly while a person decides, and stops once settled', () => {
    expect(pollInterval('pending')).toBe(1000);
    expect(pollInterval('submitted')).toBe(1000);
    expect(pollInterval('awaiting_approval')).toBe(5000);
    expect(pollInterval('issued')).toBe(false);
    expect(pollInterval('failed')).toBe(false);
    expect(pollInterval('rejected')).toBe(false);
  });
});
