import { act, fireEvent, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Route, Routes } from 'react-router';
import { describe, expect, it } from 'vitest';
import {
  apiQueryFromFilters,
  filtersFromSearch,
  searchFromFilters,
  withFilter,
} from '../lib/inventoryQuery';
import { LocationProbe, mockApi, renderPage } from '../test/render';
import InventoryPage from './Inventory';

function certificate(id: string, name: string, owner: string | null) {
  return {
    id,
    fingerprint_sha256: `${id}`.padEnd(64, '0'),
    serial_number: '01',
    subject: `CN=${name}`,
    issuer: 'CN=CMP Root',
    common_name: name,
    not_before: '2026-11-01T00:00:00Z',
    not_after: '2026-12-20T00:00:00Z',
    sans: [{ type: 'dns', value: name }],
    key: { type: 'ec', bits: 256, curve: 'P-256' },
    signature_algorithm: 'ecdsa-with-SHA256',
    is_ca: false,
    self_signed: false,
    status: 'expiring',
    findings: ['expiring'],
    owner: owner ? { id: `id-${owner}`, name: owner } : null,
    labels: {},
    locations: [],
    source: 'import',
    created_at: '2026-11-01T00:00:00Z',
    updated_at: '2026-11-01T00:00:00Z',
  };
}

const OWNERS = ['shop', 'payments'].map((name) => ({ id: `id-${name}`, name, created_at: '', updated_at: '' }));

function renderInventory(url: string) {
  const api = mockApi({
    'GET /api/v1/certificates': (requested: URL) =>
      requested.searchParams.get('cursor')
        ? { items: [certificate('c3', 'page2.shop.example', 'shop')], next_cursor: null }
        : { items: [certificate('c1', 'www.shop.example', 'shop'), certificate('c2', 'api.shop.example', 'shop')], next_cursor: 'CURSOR-2' },
    'GET /api/v1/owners': OWNERS,
  });
  renderPage(
    <>
      <Routes>
        <Route path="/certificates" element={<InventoryPage />} />
      </Routes>
      <LocationProbe />
    </>,
    { url },
  );
  /** The query of the last certificate listing the page asked for. */
  const lastListing = () => {
    const listings = api.calls.filter((call) => call.url.pathname === '/api/v1/certificates');
    return listings.at(-1)?.url.searchParams;
  };
  return { ...api, lastListing };
}

const location = () => screen.getByTestId('location').textContent ?? '';

describe('inventory filters in the URL', () => {
  it('reads every filter from the URL into the form and the API query', async () => {
    const { lastListing } = renderInventory(
      '/certificates?q=shop&status=expiring&owner=payments&key_type=ec&finding=weak_rsa_key&issuer=CN%3DCMP+Root&expires_after=2026-12-01&expires_before=2027-01-01&sort=created_at',
    );
    await screen.findByRole('link', { name: 'www.shop.example' });
    expect(screen.getByRole('searchbox', { name: 'Search' })).toHaveValue('shop');
    expect(screen.getByRole('combobox', { name: 'Status' })).toHaveValue('expiring');
    await waitFor(() => expect(screen.getByRole('combobox', { name: 'Owner' })).toHaveValue('payments'));
    expect(screen.getByRole('combobox', { name: 'Key type' })).toHaveValue('ec');
    expect(screen.getByRole('combobox', { name: 'Finding' })).toHaveValue('weak_rsa_key');
    expect(screen.getByRole('combobox', { name: 'Issuer' })).toHaveValue('CN=CMP Root');
    expect(screen.getByLabelText('Expires on or after')).toHaveValue('2026-12-01');
    expect(screen.getByLabelText('Expires before')).toHaveValue('2027-01-01');
    expect(screen.getByRole('combobox', { name: 'Sort by' })).toHaveValue('created_at');

    expect(Object.fromEntries(lastListing()!)).toEqual({
      q: 'shop',
      status: 'expiring',
      owner: 'payments',
      key_type: 'ec',
      finding: 'weak_rsa_key',
      issuer: 'CN=CMP Root',
      expires_after: '2026-12-01T00:00:00Z',
      expires_before: '2027-01-01T00:00:00Z',
      sort: 'created_at',
      limit: '50',
    });
  });

  it('puts a changed filter in the URL and asks the server again', async () => {
    const user = userEvent.setup();
    const { lastListing } = renderInventory('/certificates?status=expiring');
    await screen.findByRole('link', { name: 'www.shop.example' });
    await waitFor(() => expect(within(screen.getByRole('combobox', { name: 'Owner' })).getAllByRole('option')).toHaveLength(3));

    await user.selectOptions(screen.getByRole('combobox', { name: 'Owner' }), 'shop');
    expect(location()).toBe('/certificates?status=expiring&owner=shop');
    await waitFor(() => expect(lastListing()?.get('owner')).toBe('shop'));

    const search = screen.getByRole('searchbox', { name: 'Search' });
    await user.type(search, 'www{Enter}');
    expect(location()).toBe('/certificates?q=www&status=expiring&owner=shop');
    await waitFor(() => expect(lastListing()?.get('q')).toBe('www'));

    fireEvent.change(screen.getByLabelText('Expires before'), { target: { value: '2027-02-01' } });
    expect(location()).toBe('/certificates?q=www&status=expiring&owner=shop&expires_before=2027-02-01');
    await waitFor(() => expect(lastListing()?.get('expires_before')).toBe('2027-02-01T00:00:00Z'));
  });

  it('pages with the server cursor, and any filter change starts at the first page again', async () => {
    const user = userEvent.setup();
    renderInventory('/certificates?owner=shop');
    await screen.findByRole('link', { name: 'www.shop.example' });
    expect(screen.getByRole('button', { name: 'First page' })).toBeDisabled();

    await user.click(screen.getByRole('button', { name: 'Next page' }));
    expect(location()).toBe('/certificates?owner=shop&cursor=CURSOR-2');
    await screen.findByRole('link', { name: 'page2.shop.example' });
    expect(screen.getByRole('button', { name: 'Next page' })).toBeDisabled();

    await user.selectOptions(screen.getByRole('combobox', { name: 'Status' }), 'valid');
    expect(location()).toBe('/certificates?status=valid&owner=shop');

    await user.click(screen.getByRole('button', { name: 'Next page' }));
    await user.click(await screen.findByRole('button', { name: 'First page' }));
    expect(location()).toBe('/certificates?status=valid&owner=shop');
  });

  it('keeps the chosen columns', async () => {
    const user = userEvent.setup();
    renderInventory('/certificates');
    await screen.findByRole('link', { name: 'www.shop.example' });
    expect(screen.queryByRole('columnheader', { name: 'Serial' })).toBeNull();
    await user.click(screen.getByText('Columns'));
    await user.click(screen.getByRole('checkbox', { name: 'Serial' }));
    expect(screen.getByRole('columnheader', { name: 'Serial' })).toBeInTheDocument();
    await act(async () => {});
    expect(JSON.parse(localStorage.getItem('cmp_inventory_columns') ?? '{}')).toMatchObject({ serial_number: true });
  });

  it('links the CSV export to the same filters, without paging', async () => {
    renderInventory('/certificates?status=expired&owner=shop&cursor=CURSOR-2');
    const exportLink = await screen.findByRole('link', { name: 'Export CSV' });
    expect(exportLink).toHaveAttribute('href', '/api/v1/certificates/export?status=expired&owner=shop');
    expect(exportLink).toHaveAttribute('download', 'certificates.csv');
  });
});

describe('inventoryQuery', () => {
  it('round-trips filters through the query string in a fixed order, dropping empty ones', () => {
    const search = new URLSearchParams('sort=created_at&owner=shop&q=%20&status=valid&unknown=1');
    const filters = filtersFromSearch(search);
    expect(filters).toEqual({ owner: 'shop', status: 'valid', sort: 'created_at' });
    expect(searchFromFilters(filters).toString()).toBe('status=valid&owner=shop&sort=created_at');
    expect(filtersFromSearch(searchFromFilters(filters))).toEqual(filters);
  });

  it('drops the cursor when a filter changes, keeps it when paging', () => {
    const filters = { status: 'valid', cursor: 'C1' };
    expect(withFilter(filters, 'owner', 'shop')).toEqual({ status: 'valid', owner: 'shop' });
    expect(withFilter(filters, 'cursor', 'C2')).toEqual({ status: 'valid', cursor: 'C2' });
    expect(withFilter(filters, 'status', '')).toEqual({ status: undefined });
  });

  it('turns dates into RFC 3339 for the API, and leaves paging out of the export', () => {
    const filters = { expires_after: '2026-12-01', expires_before: '2027-01-01T12:00:00Z', cursor: 'C1' };
    expect(apiQueryFromFilters(filters)).toEqual({
      expires_after: '2026-12-01T00:00:00Z',
      expires_before: '2027-01-01T12:00:00Z',
      cursor: 'C1',
      limit: 50,
    });
    expect(apiQueryFromFilters(filters, false)).toEqual({
      expires_after: '2026-12-01T00:00:00Z',
      expires_before: '2027-01-01T12:00:00Z',
    });
  });
});
