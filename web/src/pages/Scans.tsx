// Network scans: each scan's targets, schedule and latest run, live while one runs; admins
// and security define scans, run them now and cancel a run.
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { api, unwrap } from '../api/client';
import { useCan } from '../auth/session';
import { useAddPanel } from '../components/AddPanel';
import { ProblemMessage } from '../components/ProblemMessage';
import { Empty, Loading } from '../components/States';
import { TableScroll } from '../components/TableScroll';
import { formatDateTime } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { ScanForm } from './parts/ScanForm';
import { progressText, RUNNING_POLL_MS, RunControls, RunStateBadge, scheduleText, targetsText, type Scan } from './parts/scans';
import '../styles-pages.css';

export default function ScansPage() {
  usePageTitle('Scans');
  const can = useCan();
  const scans = useQuery({
    queryKey: ['scans'],
    queryFn: () => unwrap(api.GET('/api/v1/scans')),
    refetchInterval: (query) => (query.state.data?.some((scan) => scan.last_run?.state === 'running') ? RUNNING_POLL_MS : false),
  });
  const add = useAddPanel<Scan>({
    id: 'scan-add',
    label: 'New scan',
    title: 'New scan',
    allowed: can.manageScans,
    form: (done) => <ScanForm onDone={done} />,
    notice: (created) => (
      <>
        Created {created.name}. <Link to={`/scans/${encodeURIComponent(created.id)}`}>Open it</Link> to run it.
      </>
    ),
  });
  return (
    <>
      <div className="page-header">
        <h1>Scans</h1>
        {add.button}
      </div>
      <p className="muted">
        Scans find the TLS certificates that hosts, ranges and ports serve, and add them to the inventory with where they were seen.
      </p>
      {add.panel}
      {scans.isPending ? <Loading what="scans" /> : null}
      {scans.error ? <ProblemMessage error={scans.error} context="Loading scans" /> : null}
      {scans.data && scans.data.length === 0 ? <Empty>No scans yet.</Empty> : null}
      {scans.data && scans.data.length > 0 ? (
        <TableScroll label="Scans, table" className="panel">
          <table>
            <caption className="visually-hidden">Scans</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Targets</th>
                <th scope="col">Ports</th>
                <th scope="col">Schedule</th>
                <th scope="col">Last run</th>
                <th scope="col">Next run</th>
                {can.manageScans ? <th scope="col">Actions</th> : null}
              </tr>
            </thead>
            <tbody>
              {scans.data.map((scan) => (
                <tr key={scan.id}>
                  <td>
                    <Link to={`/scans/${encodeURIComponent(scan.id)}`}>{scan.name}</Link>
                  </td>
                  <td className="mono">{targetsText(scan.spec.targets)}</td>
                  <td className="mono">{scan.spec.ports ?? '443'}</td>
                  <td>{scheduleText(scan)}</td>
                  <td>
                    <RunStateBadge run={scan.last_run} />
                    {scan.last_run ? <div className="muted">{progressText(scan.last_run)}</div> : null}
                  </td>
                  <td>{scan.next_run_at ? formatDateTime(scan.next_run_at) : '—'}</td>
                  {can.manageScans ? (
                    <td>
                      <RunControls scan={scan} run={scan.last_run} />
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      ) : null}
    </>
  );
}
