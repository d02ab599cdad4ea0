// Overview: how many certificates are in which state, what expires in the coming weeks, what
// failed, and (for roles that read the audit trail) what happened last.
import { Suspense } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { api, unwrap } from '../api/client';
import { EXPIRY_WEEKS, expiryStatsQuery, overviewStatsQuery, type OverviewStats } from '../api/stats';
import { useCan } from '../auth/session';
import { ProblemMessage } from '../components/ProblemMessage';
import { Section } from '../components/Section';
import { Empty, Loading } from '../components/States';
import { auditEntityLink } from '../lib/auditLinks';
import { formatDateTime } from '../lib/format';
import { onDemand } from '../lib/onDemand';
import { usePageTitle } from '../lib/usePageTitle';
import { TableScroll } from '../components/TableScroll';
import { ownerName, useOwnerNames } from './parts/owners';
import { requestNames } from './parts/requests';

// Recharts is most of this page's weight: its chunk is fetched as soon as this page's is,
// while the figures load, and not after them; the counts show without waiting for it.
const expiryChart = onDemand(() => import('../components/ExpiryChart'));
void expiryChart.load().catch(() => undefined); // a failure shows where the chart renders
const ExpiryChart = expiryChart.Component;

type Tone = 'ok' | 'warn' | 'bad' | 'info' | 'neutral';

function StatCard({ label, value, tone, to }: { label: string; value: number; tone: Tone; to?: string }) {
  const content = (
    <>
      <span className="value">{value.toLocaleString()}</span>
      <span className="label">{label}</span>
    </>
  );
  // Counts that are zero stay neutral: nothing to look at.
  const className = `stat-card ${value > 0 ? tone : 'neutral'}`;
  return <li>{to ? <Link className={className} to={to}>{content}</Link> : <div className={className}>{content}</div>}</li>;
}

function StatusCounts({ stats }: { stats: OverviewStats }) {
  const can = useCan();
  const { certificates, requests, managed } = stats;
  return (
    <>
      <ul className="stat-cards" aria-label="Certificates by status">
        <StatCard label="Certificates" value={certificates.total} tone="info" to="/certificates" />
        <StatCard label="Valid" value={certificates.valid} tone="ok" to="/certificates?status=valid" />
        <StatCard
          label={`Expiring within ${stats.expiry_window_days} days`}
          value={certificates.expiring}
          tone="warn"
          to="/certificates?status=expiring"
        />
        <StatCard label="Expired" value={certificates.expired} tone="bad" to="/certificates?status=expired" />
        <StatCard label="Not yet valid" value={certificates.not_yet_valid} tone="warn" to="/certificates?status=not_yet_valid" />
        <StatCard label="Revoked" value={certificates.revoked} tone="neutral" to="/certificates?status=revoked" />
      </ul>
      <h3 className="visually-hidden">Requests and renewals</h3>
      <ul className="stat-cards" aria-label="Requests and managed certificates">
        <StatCard
          label="Requests awaiting approval"
          value={requests.awaiting_approval}
          tone="warn"
          to={can.approveRequests ? '/approvals' : undefined}
        />
        <StatCard label="Requests failed (last 7 days)" value={requests.failed_last_7_days} tone="bad" />
        <StatCard label="Managed certificates" value={managed.total} tone="info" to={can.viewManaged ? '/managed' : undefined} />
        <StatCard
          label="Renewals failing"
          value={managed.renewal_failing}
          tone="bad"
          to={can.viewManaged ? '/managed' : undefined}
        />
      </ul>
    </>
  );
}

function FailedRequests({ owners }: { owners: ReadonlyMap<string, string> }) {
  const failed = useQuery({
    queryKey: ['requests', { state: 'failed', limit: 10 }],
    queryFn: () => unwrap(api.GET('/api/v1/requests', { params: { query: { state: 'failed', limit: 10 } } })),
  });
  if (failed.isPending) return <Loading what="failed requests" />;
  if (failed.error) return <ProblemMessage error={failed.error} context="Loading failed requests" />;
  if (failed.data.items.length === 0) return <Empty>No failed requests or renewals.</Empty>;
  return (
    <TableScroll label="Failed requests, table">
      <table>
        <caption className="visually-hidden">The latest failed requests and renewals</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Kind</th>
            <th scope="col">Names</th>
            <th scope="col">Owner</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {failed.data.items.map((request) => (
            <tr key={request.id}>
              <td>{formatDateTime(request.updated_at)}</td>
              <td>
                {request.managed_certificate_id ? (
                  <Link to={`/managed/${encodeURIComponent(request.managed_certificate_id)}`}>{request.kind}</Link>
                ) : (
                  request.kind
                )}
              </td>
              <td>{requestNames(request).join(', ') || '—'}</td>
              <td>{ownerName(owners, request.owner_id)}</td>
              <td>{request.last_error ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}

function RecentActivity() {
  const events = useQuery({
    queryKey: ['audit', { limit: 10 }],
    queryFn: () => unwrap(api.GET('/api/v1/audit', { params: { query: { limit: 10 } } })),
  });
  if (events.isPending) return <Loading what="recent activity" />;
  if (events.error) return <ProblemMessage error={events.error} context="Loading recent activity" />;
  if (events.data.items.length === 0) return <Empty>Nothing has happened yet.</Empty>;
  return (
    <TableScroll label="Recent activity, table">
      <table>
        <caption className="visually-hidden">The latest audit events</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">What</th>
            <th scope="col">On</th>
          </tr>
        </thead>
        <tbody>
          {events.data.items.map((event) => {
            const link = auditEntityLink(event);
            return (
              <tr key={event.seq}>
                <td>{formatDateTime(event.occurred_at)}</td>
                <td className="mono">{event.actor}</td>
                <td>{event.action}</td>
                <td>
                  {event.entity_type}{' '}
                  {link ? <Link to={link} className="mono">{event.entity_id}</Link> : <span className="mono">{event.entity_id}</span>}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p>
        <Link to="/audit">The whole audit log</Link>
      </p>
    </TableScroll>
  );
}

export default function OverviewPage() {
  usePageTitle('Overview');
  const can = useCan();
  const overview = useQuery(overviewStatsQuery);
  const expiry = useQuery(expiryStatsQuery);
  const ownerNames = useOwnerNames(can.viewRequests);

  return (
    <>
      <h1>Overview</h1>
      <Section id="overview-counts" title="Certificates">
        {overview.isPending ? <Loading what="counts" /> : null}
        {overview.error ? <ProblemMessage error={overview.error} context="Loading counts" /> : null}
        {overview.data ? <StatusCounts stats={overview.data} /> : null}
      </Section>
      <Section id="overview-expiry" title={`Expiring in the next ${EXPIRY_WEEKS} weeks`}>
        {expiry.isPending ? <Loading what="the expiry timeline" /> : null}
        {expiry.error ? <ProblemMessage error={expiry.error} context="Loading the expiry timeline" /> : null}
        {expiry.data ? (
          <Suspense fallback={<Loading what="the chart" />}>
            <ExpiryChart stats={expiry.data} />
          </Suspense>
        ) : null}
      </Section>
      {can.viewRequests ? (
        <Section id="overview-failed" title="Failed requests and renewals">
          <FailedRequests owners={ownerNames} />
        </Section>
      ) : null}
      {can.viewAudit ? (
        <Section id="overview-activity" title="Recent activity">
          <RecentActivity />
        </Section>
      ) : null}
    </>
  );
}
