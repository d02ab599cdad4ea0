// The audit log (admin, security): every change, newest first, filtered by actor, action,
// entity and time, with the filters and the page in the URL; and whether the hash chain
// still holds (GET /api/v1/audit/verify).
import { useId, useMemo } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { Link, useSearchParams } from 'react-router';
import { api, unwrap } from '../api/client';
import type { paths } from '../api/schema';
import { CursorPager } from '../components/CursorPager';
import { ProblemMessage } from '../components/ProblemMessage';
import { Section } from '../components/Section';
import { TableScroll } from '../components/TableScroll';
import { TextFilter } from '../components/TextFilter';
import { Empty, Loading } from '../components/States';
import { auditEntityLink } from '../lib/auditLinks';
import { formatDateTime } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { useActorName } from './parts/actors';
import {
  auditApiQuery,
  auditFiltersFromSearch,
  fromLocalInput,
  hasAuditFilters,
  searchFromAuditFilters,
  toLocalInput,
  withAuditFilter,
  type AuditFilterKey,
  type AuditFilters,
} from './parts/auditQuery';
import '../styles-pages.css';

type AuditQuery = NonNullable<paths['/api/v1/audit']['get']['parameters']['query']>;

const KNOWN_ACTIONS = [
  'certificate.created',
  'certificate.updated',
  'certificate.revoked',
  'certificate.deleted',
  'certificate.key_downloaded',
  'certificate.key_purged',
  'certificate.location_added',
  'request.created',
  'request.approved',
  'request.rejected',
  'request.submitted',
  'request.issued',
  'request.failed',
  'request.retry_scheduled',
  'managed_certificate.created',
  'deployment.set',
  'deployment.verified',
  'deployment.failed',
  'deployment.removed',
  'owner.created',
  'owner.updated',
  'owner.deleted',
  'policy.set',
  'token.created',
  'token.revoked',
  'adapter.created',
  'adapter.updated',
  'adapter.agent_token_issued',
  'agent.enrolled',
  'agent.enabled',
  'agent.disabled',
  'agent.deleted',
  'user.logged_in',
  'user.logged_out',
  'auth.break_glass',
];

const KNOWN_ENTITY_TYPES = [
  'certificate',
  'issuance_request',
  'managed_certificate',
  'owner',
  'api_token',
  'adapter',
  'agent',
  'user',
];

// Actors, actions and ids are identifiers, not words: no spell check, no remembered entries.
const IDENTIFIER_INPUT = { spellCheck: false, autoComplete: 'off' } as const;

function TimeFilter({ label, value, onChange }: { label: string; value: string | undefined; onChange: (value: string | undefined) => void }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type="datetime-local"
        value={toLocalInput(value)}
        aria-describedby={`${id}-hint`}
        onChange={(event) => onChange(fromLocalInput(event.target.value))}
      />
      <span id={`${id}-hint`} className="hint">
        Your local time
      </span>
    </div>
  );
}

function ChainVerification() {
  const verify = useQuery({
    queryKey: ['audit', 'verify'],
    queryFn: () => unwrap(api.GET('/api/v1/audit/verify')),
    staleTime: 60_000,
  });
  return (
    <Section
      id="audit-verify"
      title="Chain verification"
      actions={
        <button type="button" onClick={() => void verify.refetch()} disabled={verify.isFetching}>
          {verify.isFetching ? 'Verifying…' : 'Verify again'}
        </button>
      }
    >
      {verify.isPending ? <Loading what="the verification" /> : null}
      {verify.error ? <ProblemMessage error={verify.error} context="Verifying the chain" /> : null}
      {verify.data ? (
        <div className="verify-result" role="status">
          <span className={`badge ${verify.data.intact ? 'ok' : 'bad'}`}>{verify.data.intact ? 'Intact' : 'Broken'}</span>
          {verify.data.intact ? (
            <span>
              All {verify.data.checked.toLocaleString()} events link up: none was changed or removed.
            </span>
          ) : (
            <span>
              The chain breaks at event {verify.data.first_broken_seq ?? '?'} after {verify.data.checked.toLocaleString()} good
              events{verify.data.reason ? `: ${verify.data.reason}` : ''}.
            </span>
          )}
        </div>
      ) : null}
    </Section>
  );
}

export default function AuditPage() {
  usePageTitle('Audit log');
  const actorName = useActorName();
  const [searchParams, setSearchParams] = useSearchParams();
  const filters = useMemo(() => auditFiltersFromSearch(searchParams), [searchParams]);
  const query = useMemo(() => auditApiQuery(filters), [filters]);
  const actionsId = useId();
  const typesId = useId();

  const events = useQuery({
    queryKey: ['audit', 'list', query],
    queryFn: () => unwrap(api.GET('/api/v1/audit', { params: { query: query as AuditQuery } })),
    placeholderData: keepPreviousData,
  });

  function update(key: AuditFilterKey, value: string | undefined, replace = false) {
    setSearchParams(searchFromAuditFilters(withAuditFilter(filters, key, value)), { replace });
  }

  function filterLink(key: AuditFilterKey, value: string): string {
    return `?${searchFromAuditFilters(withAuditFilter(filters, key, value)).toString()}`;
  }

  const items = events.data?.items ?? [];

  return (
    <>
      <h1>Audit log</h1>
      <ChainVerification />

      <form
        className="panel audit-filters"
        role="search"
        aria-label="Filter audit events"
        onSubmit={(event) => event.preventDefault()}
      >
        <TextFilter
          {...IDENTIFIER_INPUT}
          label="Actor"
          value={filters.actor}
          placeholder="token:… or oidc:…"
          onCommit={(v, r) => update('actor', v, r)}
        />
        <TextFilter {...IDENTIFIER_INPUT} label="Action" value={filters.action} list={actionsId} onCommit={(v, r) => update('action', v, r)} />
        <TextFilter
          {...IDENTIFIER_INPUT}
          label="Entity type"
          value={filters.entity_type}
          list={typesId}
          onCommit={(v, r) => update('entity_type', v, r)}
        />
        <TextFilter {...IDENTIFIER_INPUT} label="Entity id" value={filters.entity_id} onCommit={(v, r) => update('entity_id', v, r)} />
        <TimeFilter label="Since" value={filters.since} onChange={(v) => update('since', v)} />
        <TimeFilter label="Until" value={filters.until} onChange={(v) => update('until', v)} />
        <div>
          <button type="button" onClick={() => setSearchParams(new URLSearchParams())} disabled={!hasAuditFilters(filters) && !filters.cursor}>
            Clear filters
          </button>
        </div>
        <datalist id={actionsId}>
          {KNOWN_ACTIONS.map((action) => (
            <option key={action} value={action} />
          ))}
        </datalist>
        <datalist id={typesId}>
          {KNOWN_ENTITY_TYPES.map((type) => (
            <option key={type} value={type} />
          ))}
        </datalist>
      </form>

      <p role="status" className="muted">
        {events.isFetching ? 'Loading…' : `${items.length} event${items.length === 1 ? '' : 's'} on this page`}
      </p>
      {events.error ? <ProblemMessage error={events.error} context="Loading audit events" /> : null}
      {events.isPending ? <Loading what="audit events" /> : null}
      {events.data && items.length === 0 ? (
        <Empty>{hasAuditFilters(filters as AuditFilters) ? 'No event matches these filters.' : 'No audit events yet.'}</Empty>
      ) : null}
      {items.length > 0 ? (
        <TableScroll label="Audit events, table" className="panel">
          <table aria-busy={events.isFetching}>
            <caption className="visually-hidden">Audit events, newest first</caption>
            <thead>
              <tr>
                <th scope="col" className="num">
                  #
                </th>
                <th scope="col">When</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Entity</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {items.map((event) => {
                const link = auditEntityLink(event);
                const details = event.details && typeof event.details === 'object' && Object.keys(event.details).length > 0;
                return (
                  <tr key={event.seq}>
                    <td className="num">{event.seq}</td>
                    <td>{formatDateTime(event.occurred_at)}</td>
                    <td className="mono">
                      <Link to={filterLink('actor', event.actor)} title="Show only this actor">
                        {actorName(event.actor)}
                      </Link>
                    </td>
                    <td>
                      <Link to={filterLink('action', event.action)} title="Show only this action">
                        {event.action}
                      </Link>
                    </td>
                    <td>
                      {event.entity_type}{' '}
                      {link ? (
                        <Link className="mono" to={link}>
                          {event.entity_id}
                        </Link>
                      ) : (
                        <span className="mono">{event.entity_id}</span>
                      )}
                    </td>
                    <td>
                      <details className="event-details">
                        <summary>
                          {details ? 'Details' : 'Hashes'}
                          <span className="visually-hidden"> of event {event.seq}</span>
                        </summary>
                        <pre>
                          {JSON.stringify(
                            {
                              ...(details ? { details: event.details } : {}),
                              request_id: event.request_id ?? null,
                              hash: event.hash,
                              prev_hash: event.prev_hash,
                            },
                            null,
                            2,
                          )}
                        </pre>
                      </details>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </TableScroll>
      ) : null}

      <CursorPager
        cursor={filters.cursor}
        nextCursor={events.data?.next_cursor}
        loading={events.isFetching}
        onPage={(cursor) => update('cursor', cursor)}
      />
    </>
  );
}
