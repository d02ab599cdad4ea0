// The certificate inventory: search, filters, sort and server-side paging, all held in the URL
// (a view can be shared and survives a reload); column choice kept in localStorage; a CSV
// export of the current filters.
import { useEffect, useId, useMemo, useState, type FormEvent, type MouseEvent } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import {
  createColumnHelper,
  flexRender,
  getCoreRowModel,
  useReactTable,
  type VisibilityState,
} from '@tanstack/react-table';
import { Link, useSearchParams } from 'react-router';
import { api, fetchBlob, storedToken, unwrap } from '../api/client';
import { toApiProblem, type ApiProblem } from '../api/problem';
import { CertificateStatusValues, FindingValues, KeyTypeValues } from '../api/enums';
import type { Certificate } from '../api/types';
import { useCan } from '../auth/session';
import { CursorPager } from '../components/CursorPager';
import { ProblemMessage } from '../components/ProblemMessage';
import { Empty, Loading } from '../components/States';
import { FindingBadges, findingLabel, StatusBadge, statusLabel } from '../components/StatusBadge';
import { saveBlob } from '../lib/download';
import { certificateName, formatDate, keyDescription, relativeDays } from '../lib/format';
import {
  apiQueryFromFilters,
  certificatesQuery,
  filtersFromSearch,
  hasFilters,
  searchFromFilters,
  withFilter,
  type InventoryFilters,
} from '../lib/inventoryQuery';
import { usePageTitle } from '../lib/usePageTitle';
import { TableScroll } from '../components/TableScroll';
import { TextFilter } from '../components/TextFilter';

const COLUMNS_STORAGE_KEY = 'cmp_inventory_columns';

// Shown until the user picks: the rest is one click away in "Columns".
const DEFAULT_HIDDEN: VisibilityState = {
  not_before: false,
  serial_number: false,
  fingerprint_sha256: false,
  source: false,
  created_at: false,
  sans: false,
};

function storedColumns(): VisibilityState {
  try {
    const stored = JSON.parse(localStorage.getItem(COLUMNS_STORAGE_KEY) ?? 'null') as unknown;
    if (stored && typeof stored === 'object') return { ...DEFAULT_HIDDEN, ...(stored as VisibilityState) };
  } catch {
    // unreadable: fall back to the defaults
  }
  return DEFAULT_HIDDEN;
}

const column = createColumnHelper<Certificate>();

const COLUMNS = [
  column.accessor((certificate) => certificateName(certificate), {
    id: 'name',
    header: 'Name',
    enableHiding: false,
    cell: ({ row, getValue }) => (
      <Link to={`/certificates/${encodeURIComponent(row.original.id)}`}>{getValue()}</Link>
    ),
  }),
  column.accessor('status', { header: 'Status', cell: ({ getValue }) => <StatusBadge status={getValue()} /> }),
  column.accessor('not_after', {
    header: 'Expires',
    cell: ({ getValue }) => (
      <>
        {formatDate(getValue())} <span className="muted">({relativeDays(getValue())})</span>
      </>
    ),
  }),
  column.accessor((certificate) => certificate.owner?.name ?? '', {
    id: 'owner',
    header: 'Owner',
    cell: ({ getValue }) => getValue() || <span className="muted">none</span>,
  }),
  column.accessor('issuer', { header: 'Issuer' }),
  column.accessor((certificate) => keyDescription(certificate.key), { id: 'key', header: 'Key' }),
  column.accessor('findings', {
    header: 'Findings',
    cell: ({ getValue }) => <FindingBadges findings={getValue()} />,
  }),
  column.accessor((certificate) => certificate.sans.map((san) => san.value).join(', '), {
    id: 'sans',
    header: 'SANs',
  }),
  column.accessor('not_before', { header: 'Valid from', cell: ({ getValue }) => formatDate(getValue()) }),
  column.accessor('serial_number', { header: 'Serial', cell: ({ getValue }) => <span className="mono">{getValue()}</span> }),
  column.accessor('fingerprint_sha256', {
    header: 'SHA-256',
    cell: ({ getValue }) => <span className="mono">{getValue().slice(0, 16)}…</span>,
  }),
  column.accessor('source', { header: 'Source' }),
  column.accessor('created_at', { header: 'Added', cell: ({ getValue }) => formatDate(getValue()) }),
];

/** The server's sort key of a column, for aria-sort on its header. */
const SORT_COLUMNS: Record<string, string> = { not_after: 'not_after', created_at: 'created_at' };

function SelectFilter({
  label,
  value,
  options,
  onChange,
  anyLabel = 'Any',
}: {
  label: string;
  value: string | undefined;
  options: readonly { value: string; label: string }[];
  onChange: (value: string) => void;
  anyLabel?: string;
}) {
  const id = useId();
  // A value from a shared URL that is not among the options is still shown as selected.
  const known = !value || options.some((option) => option.value === value);
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value ?? ''} onChange={(event) => onChange(event.target.value)}>
        <option value="">{anyLabel}</option>
        {known ? null : <option value={value}>{value}</option>}
        {options.map((option) => (
          <option key={option.value} value={option.value}>
            {option.label}
          </option>
        ))}
      </select>
    </div>
  );
}

function DateFilter({ label, value, onChange }: { label: string; value: string | undefined; onChange: (value: string) => void }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} type="date" value={value ?? ''} onChange={(event) => onChange(event.target.value)} />
    </div>
  );
}

/** The CSV export of the current filters: a plain link for a session; fetched for a bearer token. */
function ExportLink({ filters }: { filters: InventoryFilters }) {
  const [failure, setFailure] = useState<ApiProblem | null>(null);
  const [busy, setBusy] = useState(false);
  const query = new URLSearchParams(apiQueryFromFilters(filters, false) as Record<string, string>).toString();
  const href = `/api/v1/certificates/export${query ? `?${query}` : ''}`;

  async function fetchWithToken(event: MouseEvent) {
    // A token never goes in a URL: fetch with the header and save the answer.
    if (!storedToken()) return;
    event.preventDefault();
    setBusy(true);
    setFailure(null);
    try {
      saveBlob(await fetchBlob(href, { Accept: 'text/csv' }), 'certificates.csv');
    } catch (error) {
      setFailure(toApiProblem(error));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <a className="button" href={href} download="certificates.csv" onClick={fetchWithToken} aria-busy={busy}>
        {busy ? 'Exporting…' : 'Export CSV'}
      </a>
      {failure ? <ProblemMessage error={failure} context="Exporting" /> : null}
    </>
  );
}

export default function InventoryPage() {
  usePageTitle('Certificates');
  const can = useCan();
  const [searchParams, setSearchParams] = useSearchParams();
  const filters = useMemo(() => filtersFromSearch(searchParams), [searchParams]);
  const [columnVisibility, setColumnVisibility] = useState<VisibilityState>(storedColumns);
  const issuerListId = useId();

  useEffect(() => {
    try {
      localStorage.setItem(COLUMNS_STORAGE_KEY, JSON.stringify(columnVisibility));
    } catch {
      // storage disabled: the choice lasts for this page only
    }
  }, [columnVisibility]);

  const certificates = useQuery({
    ...certificatesQuery(filters),
    // The previous page stays on screen while the next loads: no jump to a spinner.
    placeholderData: keepPreviousData,
  });
  const owners = useQuery({
    queryKey: ['owners'],
    queryFn: () => unwrap(api.GET('/api/v1/owners')),
    enabled: can.viewOwners,
  });

  function update(key: keyof InventoryFilters, value: string | undefined, replace = false) {
    setSearchParams(searchFromFilters(withFilter(filters, key, value)), { replace });
  }

  const items = certificates.data?.items ?? [];
  const table = useReactTable({
    data: items,
    columns: COLUMNS,
    getCoreRowModel: getCoreRowModel(),
    getRowId: (row) => row.id,
    state: { columnVisibility },
    onColumnVisibilityChange: setColumnVisibility,
  });

  const sortKey = filters.sort ?? 'not_after';
  const issuers = [...new Set(items.map((certificate) => certificate.issuer))];

  function onSubmit(event: FormEvent) {
    event.preventDefault();
  }

  return (
    <>
      <div className="page-header">
        <h1>Certificates</h1>
        {can.exportCertificates ? <ExportLink filters={filters} /> : null}
      </div>

      <form className="panel filters" role="search" aria-label="Filter certificates" onSubmit={onSubmit}>
        <div className="search">
          <TextFilter
            label="Search"
            type="search"
            value={filters.q}
            hint="Part of the subject or of any SAN"
            onCommit={(value, replace) => update('q', value, replace)}
          />
        </div>
        <SelectFilter
          label="Status"
          value={filters.status}
          options={CertificateStatusValues.map((status) => ({ value: status, label: statusLabel(status) }))}
          onChange={(value) => update('status', value)}
        />
        <SelectFilter
          label="Owner"
          value={filters.owner}
          options={(owners.data ?? []).map((owner) => ({ value: owner.name, label: owner.name }))}
          onChange={(value) => update('owner', value)}
        />
        <SelectFilter
          label="Key type"
          value={filters.key_type}
          options={KeyTypeValues.map((type) => ({ value: type, label: keyDescription({ type }) }))}
          onChange={(value) => update('key_type', value)}
        />
        <SelectFilter
          label="Finding"
          value={filters.finding}
          options={FindingValues.map((finding) => ({ value: finding, label: findingLabel(finding) }))}
          onChange={(value) => update('finding', value)}
        />
        <TextFilter
          label="Issuer"
          value={filters.issuer}
          list={issuerListId}
          hint="Exact, e.g. CN=CMP Root CA"
          onCommit={(value, replace) => update('issuer', value, replace)}
        />
        <datalist id={issuerListId}>
          {issuers.map((issuer) => (
            <option key={issuer} value={issuer} />
          ))}
        </datalist>
        <DateFilter label="Expires on or after" value={filters.expires_after} onChange={(value) => update('expires_after', value)} />
        <DateFilter label="Expires before" value={filters.expires_before} onChange={(value) => update('expires_before', value)} />
        <SelectFilter
          label="Sort by"
          anyLabel="Expiry, soonest first"
          value={filters.sort === 'not_after' ? undefined : filters.sort}
          options={[{ value: 'created_at', label: 'Date added, oldest first' }]}
          onChange={(value) => update('sort', value)}
        />
        <div>
          <button type="button" onClick={() => setSearchParams(new URLSearchParams())} disabled={!hasFilters(filters) && !filters.sort}>
            Clear filters
          </button>
        </div>
      </form>

      <div className="toolbar">
        <span role="status" className="muted">
          {certificates.isFetching ? 'Loading…' : `${items.length} certificate${items.length === 1 ? '' : 's'} on this page`}
        </span>
        <details className="columns spacer">
          <summary className="button">Columns</summary>
          <fieldset className="columns-menu">
            <legend>Show columns</legend>
            {table
              .getAllLeafColumns()
              .filter((col) => col.getCanHide())
              .map((col) => (
                <label key={col.id}>
                  <input type="checkbox" checked={col.getIsVisible()} onChange={col.getToggleVisibilityHandler()} />
                  {String(col.columnDef.header)}
                </label>
              ))}
          </fieldset>
        </details>
      </div>

      {certificates.error ? <ProblemMessage error={certificates.error} context="Loading certificates" /> : null}
      {certificates.isPending ? <Loading what="certificates" /> : null}
      {certificates.data && items.length === 0 ? (
        hasFilters(filters) ? (
          <Empty>
            No certificate matches these filters.{' '}
            <button type="button" className="link" onClick={() => setSearchParams(new URLSearchParams())}>
              Clear filters
            </button>
          </Empty>
        ) : (
          <Empty>No certificates yet. Import some, or request one.</Empty>
        )
      ) : null}
      {items.length > 0 ? (
        <TableScroll label="Certificates, table" className="panel">
          <table aria-busy={certificates.isFetching}>
            <caption className="visually-hidden">Certificates</caption>
            <thead>
              {table.getHeaderGroups().map((group) => (
                <tr key={group.id}>
                  {group.headers.map((header) => (
                    <th
                      key={header.id}
                      scope="col"
                      aria-sort={SORT_COLUMNS[header.column.id] === sortKey ? 'ascending' : undefined}
                    >
                      {flexRender(header.column.columnDef.header, header.getContext())}
                    </th>
                  ))}
                </tr>
              ))}
            </thead>
            <tbody>
              {table.getRowModel().rows.map((row) => (
                <tr key={row.id}>
                  {row.getVisibleCells().map((cell) => (
                    <td key={cell.id}>{flexRender(cell.column.columnDef.cell, cell.getContext())}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      ) : null}

      <CursorPager
        cursor={filters.cursor}
        nextCursor={certificates.data?.next_cursor}
        loading={certificates.isFetching}
        onPage={(cursor) => update('cursor', cursor)}
      />
    </>
  );
}
