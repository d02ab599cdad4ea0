// One network scan: what it covers, its runs with their progress (live while one runs) and
// first errors; run now, cancel, pause or resume its schedule, delete it.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useNavigate, useParams } from 'react-router';
import { api, unwrap } from '../api/client';
import { useCan } from '../auth/session';
import { DeleteButton } from '../components/DeleteButton';
import { ProblemMessage } from '../components/ProblemMessage';
import { Section } from '../components/Section';
import { Empty, Loading } from '../components/States';
import { TableScroll } from '../components/TableScroll';
import { formatDateTime } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import {
  progressText,
  RUNNING_POLL_MS,
  RunControls,
  RunStateBadge,
  runShare,
  scheduleText,
  type Scan,
  type ScanRun,
} from './parts/scans';
import '../styles-pages.css';

function yesNo(value: boolean | undefined): string {
  return value ? 'yes' : 'no';
}

function ScanFacts({ scan }: { scan: Scan }) {
  const { spec } = scan;
  return (
    <dl className="facts">
      <dt>Targets</dt>
      <dd className="mono">{spec.targets.join(', ')}</dd>
      <dt>Ports</dt>
      <dd className="mono">{spec.ports ?? '443'}</dd>
      <dt>SNI names</dt>
      <dd>
        {(spec.sni_names ?? []).length > 0 ? (spec.sni_names ?? []).join(', ') : 'none'}; without SNI: {yesNo(spec.sni_none ?? true)};
        reverse DNS: {yesNo(spec.sni_reverse_dns)}
      </dd>
      <dt>Probes TLS 1.0 and 1.1</dt>
      <dd>{yesNo(spec.probe_legacy_tls)}</dd>
      <dt>Limits</dt>
      <dd>
        {spec.concurrency ?? 256} at once, {spec.per_host ?? 4} per address; timeouts {spec.connect_timeout_ms ?? 3000} ms to connect,{' '}
        {spec.handshake_timeout_ms ?? 5000} ms to handshake; {spec.budget_secs ?? 3600} s in all
      </dd>
      <dt>Owner of what it finds</dt>
      <dd>{scan.owner?.name ?? 'no owner'}</dd>
      <dt>Schedule</dt>
      <dd>
        {scheduleText(scan)}
        {scan.next_run_at ? <span className="muted"> (next: {formatDateTime(scan.next_run_at)})</span> : null}
      </dd>
      <dt>Created</dt>
      <dd>
        {formatDateTime(scan.created_at)} by <span className="mono">{scan.created_by}</span>
      </dd>
    </dl>
  );
}

function RunProgress({ run }: { run: ScanRun }) {
  const share = runShare(run);
  return (
    <div className="form-stack">
      <p className="row">
        <RunStateBadge run={run} />
        <span>{progressText(run)}</span>
      </p>
      {run.state === 'running' ? (
        <progress max={1} value={share} aria-label="Endpoints scanned">
          {share === undefined ? 'resolving targets' : `${Math.round(share * 100)}%`}
        </progress>
      ) : null}
      {run.detail ? <p>{run.detail}</p> : null}
      {run.progress.error_samples.length > 0 ? (
        <details>
          <summary>First errors</summary>
          <ul className="mono">
            {run.progress.error_samples.map((sample) => (
              <li key={sample}>{sample}</li>
            ))}
          </ul>
        </details>
      ) : null}
    </div>
  );
}

function RunsTable({ runs }: { runs: ScanRun[] }) {
  if (runs.length === 0) return <Empty>Not run yet.</Empty>;
  return (
    <TableScroll label="Runs, table">
      <table>
        <caption className="visually-hidden">Runs, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">By</th>
            <th scope="col">State</th>
            <th scope="col">Endpoints</th>
            <th scope="col">Served TLS</th>
            <th scope="col">Certificates (new)</th>
            <th scope="col">Gone</th>
            <th scope="col">Errors</th>
            <th scope="col">Finished</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((run) => (
            <tr key={run.id}>
              <td>{formatDateTime(run.started_at)}</td>
              <td className="mono">{run.trigger === 'schedule' ? 'schedule' : run.started_by}</td>
              <td>
                <RunStateBadge run={run} />
              </td>
              <td className="num">
                {run.progress.scanned.toLocaleString()}
                {run.progress.total != null ? ` / ${run.progress.total.toLocaleString()}` : ''}
              </td>
              <td className="num">{run.progress.served.toLocaleString()}</td>
              <td className="num">
                {run.progress.certificates.toLocaleString()} ({run.progress.created.toLocaleString()})
              </td>
              <td className="num">{run.progress.gone.toLocaleString()}</td>
              <td className="num">{run.progress.errors.toLocaleString()}</td>
              <td>{run.finished_at ? formatDateTime(run.finished_at) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}

function ScheduleToggle({ scan }: { scan: Scan }) {
  const queryClient = useQueryClient();
  const toggle = useMutation({
    mutationFn: (enabled: boolean) => unwrap(api.PATCH('/api/v1/scans/{id}', { params: { path: { id: scan.id } }, body: { enabled } })),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ['scans'] }),
  });
  if (!scan.interval_secs && !scan.cron) return null;
  return (
    <>
      <button type="button" onClick={() => toggle.mutate(!scan.enabled)} disabled={toggle.isPending}>
        {scan.enabled ? 'Pause schedule' : 'Resume schedule'}
      </button>
      {toggle.error ? <ProblemMessage error={toggle.error} context="Changing the schedule" /> : null}
    </>
  );
}

function DeleteScan({ scan }: { scan: Scan }) {
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  return (
    <DeleteButton
      noun="scan"
      name={scan.name}
      remove={() => unwrap(api.DELETE('/api/v1/scans/{id}', { params: { path: { id: scan.id } } }))}
      onDeleted={() => {
        queryClient.removeQueries({ queryKey: ['scans', scan.id] });
        void queryClient.invalidateQueries({ queryKey: ['scans'] });
        void navigate('/scans');
      }}
    >
      <p>The scan and its runs go; the certificates and locations it found stay in the inventory.</p>
    </DeleteButton>
  );
}

export default function ScanDetailPage() {
  const { id = '' } = useParams();
  const can = useCan();
  const scan = useQuery({
    queryKey: ['scans', id],
    queryFn: () => unwrap(api.GET('/api/v1/scans/{id}', { params: { path: { id } } })),
    refetchInterval: (query) => (query.state.data?.last_run?.state === 'running' ? RUNNING_POLL_MS : false),
  });
  const running = scan.data?.last_run?.state === 'running';
  const runs = useQuery({
    // Under the scan's key: starting or cancelling a run asks it again (RunControls).
    queryKey: ['scans', id, 'runs'],
    queryFn: () => unwrap(api.GET('/api/v1/scans/{id}/runs', { params: { path: { id }, query: { limit: 20 } } })),
    enabled: scan.isSuccess,
    refetchInterval: (query) => (query.state.data?.[0]?.state === 'running' ? RUNNING_POLL_MS : false),
  });
  usePageTitle(scan.data ? `Scan ${scan.data.name}` : 'Scan');

  if (scan.isPending) return <Loading what="the scan" />;
  if (scan.error) return <ProblemMessage error={scan.error} context="Loading the scan" />;
  const data = scan.data;
  return (
    <>
      <div className="page-header">
        <h1>Scan {data.name}</h1>
        {can.manageScans ? (
          <div className="row">
            <RunControls scan={data} run={data.last_run} />
            <ScheduleToggle scan={data} />
            {running ? null : <DeleteScan scan={data} />}
          </div>
        ) : null}
      </div>
      <Section id="scan-facts" title="What it scans">
        <ScanFacts scan={data} />
      </Section>
      {data.last_run ? (
        <Section id="scan-latest" title={running ? 'Running now' : 'Latest run'}>
          <RunProgress run={data.last_run} />
        </Section>
      ) : null}
      <Section id="scan-runs" title="Runs">
        {runs.isPending ? <Loading what="runs" /> : null}
        {runs.error ? <ProblemMessage error={runs.error} context="Loading runs" /> : null}
        {runs.data ? <RunsTable runs={runs.data} /> : null}
      </Section>
    </>
  );
}
