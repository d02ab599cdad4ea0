import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Route, Routes } from 'react-router';
import { describe, expect, it } from 'vitest';
import { LocationProbe, mockApi, renderPage } from '../test/render';
import AuditPage from './Audit';
import {
  auditApiQuery,
  auditFiltersFromSearch,
  fromLocalInput,
  searchFromAuditFilters,
  toLocalInput,
  withAuditFilter,
} from './parts/auditQuery';

function event(seq: number, extra: Record<string, unknown> = {}) {
  return {
    seq,
    occurred_at: '2026-11-02T10:00:00Z',
    actor: 'token:abc',
    action: 'request.approved',
    entity_type: 'issuance_request',
    entity_id: `req-${seq}`,
    request_id: `rid-${seq}`,
    details: { comment: 'ok' },
    prev_hash: '00'.repeat(32),
    hash: 'ab'.repeat(32),
    ...extra,
  };
}

function renderAudit(url: string) {
  const api = mockApi({
    'GET /api/v1/audit': (requested: URL) =>
      requested.searchParams.get('cursor')
        ? { items: [event(1)], next_cursor: null }
        : { items: [event(3), event(2)], next_cursor: 'CURSOR-2' },
    'GET /api/v1/audit/verify': { intact: true, checked: 3, first_broken_seq: null, reason: null },
    'GET /api/v1/tokens': [],
  });
  renderPage(
    <>
      <Routes>
        <Route path="/audit" element={<AuditPage />} />
      </Routes>
      <LocationProbe />
    </>,
    { url, role: 'admin' },
  );
  const lastListing = () => api.calls.filter((call) => call.url.pathname === '/api/v1/audit').at(-1)?.url.searchParams;
  return { ...api, lastListing };
}

const location = () => screen.getByTestId('location').textContent ?? '';

describe('audit filters in the URL', () => {
  it('reads every filter from the URL into the form and the API query', async () => {
    const since = '2026-11-01T08:30:00Z';
    const { lastListing } = renderAudit(
      `/audit?actor=token%3Aabc&action=request.approved&entity_type=issuance_request&entity_id=req-3&since=${since}&until=2026-11-30`,
    );
    await screen.findByRole('cell', { name: '3' });
    const filters = screen.getByRole('search', { name: 'Filter audit events' });
    expect(within(filters).getByRole('textbox', { name: 'Actor' })).toHaveValue('token:abc');
    expect(within(filters).getByRole('combobox', { name: 'Action' })).toHaveValue('request.approved');
    expect(within(filters).getByRole('combobox', { name: 'Entity type' })).toHaveValue('issuance_request');
    expect(within(filters).getByRole('textbox', { name: 'Entity id' })).toHaveValue('req-3');
    expect(within(filters).getByLabelText('Since')).toHaveValue(toLocalInput(since));

    const query = lastListing();
    expect(query?.get('actor')).toBe('token:abc');
    expect(query?.get('action')).toBe('request.approved');
    expect(query?.get('entity_type')).toBe('issuance_request');
    expect(query?.get('entity_id')).toBe('req-3');
    expect(query?.get('since')).toBe(since);
    // A bare date is midnight UTC.
    expect(query?.get('until')).toBe('2026-11-30T00:00:00Z');
  });

  it('puts what is typed into the URL, and a change of filter starts at the first page', async () => {
    const user = userEvent.setup();
    const { lastListing } = renderAudit('/audit');
    await screen.findByRole('cell', { name: '3' });

    await user.click(screen.getByRole('button', { name: 'Next page' }));
    await waitFor(() => expect(location()).toBe('/audit?cursor=CURSOR-2'));
    await waitFor(() => expect(lastListing()?.get('cursor')).toBe('CURSOR-2'));
    await screen.findByRole('cell', { name: '1' });

    await user.type(screen.getByRole('textbox', { name: 'Actor' }), 'token:xyz{Enter}');
    await waitFor(() => expect(location()).toBe('/audit?actor=token%3Axyz'));
    await waitFor(() => expect(lastListing()?.get('actor')).toBe('token:xyz'));
    expect(lastListing()?.get('cursor')).toBeNull();

    // A link in a row filters by that value.
    await user.click(screen.getAllByRole('link', { name: 'request.approved' })[0]!);
    await waitFor(() => expect(location()).toBe('/audit?actor=token%3Axyz&action=request.approved'));

    await user.click(screen.getByRole('button', { name: 'Clear filters' }));
    await waitFor(() => expect(location()).toBe('/audit'));
    expect(screen.getByRole('textbox', { name: 'Actor' })).toHaveValue('');
  });

  it('shows the chain verification', async () => {
    renderAudit('/audit');
    expect(await screen.findByText(/All 3 events link up/)).toBeInTheDocument();
    expect(screen.getByText('Intact')).toBeInTheDocument();
  });

  it('translates between the URL, the filters and the API query', () => {
    const filters = auditFiltersFromSearch(new URLSearchParams('actor=a&cursor=c&unknown=x&since=2026-01-01'));
    expect(filters).toEqual({ actor: 'a', cursor: 'c', since: '2026-01-01' });
    expect(withAuditFilter(filters, 'action', 'x')).toEqual({ actor: 'a', action: 'x', since: '2026-01-01' });
    expect(searchFromAuditFilters({ until: 'u', actor: 'a' }).toString()).toBe('actor=a&until=u');
    expect(auditApiQuery({ since: '2026-01-01' })).toEqual({ limit: 50, since: '2026-01-01T00:00:00Z' });
    // The datetime-local input and the URL's UTC time round-trip in any time zone.
    expect(fromLocalInput(toLocalInput('2026-11-01T08:30:00Z'))).toBe('2026-11-01T08:30:00Z');
    expect(fromLocalInput('')).toBeUndefined();
  });
});
