// Managed certificates: what CMP keeps renewed, with each one's current version and the
// scheduler's last renewal decision.
import { useInfiniteQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { api, unwrap } from '../api/client';
import { ProblemMessage } from '../components/ProblemMessage';
import { ShowMore } from '../components/ShowMore';
import { TableScroll } from '../components/TableScroll';
import { Empty, Loading } from '../components/States';
import { formatDate, relativeDays } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { currentVersion, managedLabel, managedNames, RenewalBadge } from './parts/managed';
import '../styles-pages.css';

const PAGE_SIZE = 100;

export default function ManagedPage() {
  usePageTitle('Managed certificates');
  const managed = useInfiniteQuery({
    queryKey: ['managed-list'],
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET('/api/v1/managed-certificates', {
          params: { query: { limit: PAGE_SIZE, ...(pageParam ? { cursor: pageParam } : {}) } },
        }),
      ),
    initialPageParam: '',
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const items = managed.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <>
      <h1>Managed certificates</h1>
      <p className="muted">
        Certificates CMP renews by itself: each keeps a desired state, and every renewal is a new version.
      </p>
      {managed.isPending ? <Loading what="managed certificates" /> : null}
      {managed.error ? <ProblemMessage error={managed.error} context="Loading managed certificates" /> : null}
      {managed.data && items.length === 0 ? (
        <Empty>
          No managed certificates yet. Create one on the <Link to="/request">Request</Link> page (tick “Keep it renewed”), or with{' '}
          <code>cmpctl managed create</code>.
        </Empty>
      ) : null}
      {items.length > 0 ? (
        <TableScroll label="Managed certificates, table" className="panel">
          <table>
            <caption className="visually-hidden">Managed certificates</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Names certified</th>
                <th scope="col">Current version expires</th>
                <th scope="col">Versions</th>
                <th scope="col">Renewal</th>
              </tr>
            </thead>
            <tbody>
              {items.map((item) => {
                const current = currentVersion(item);
                return (
                  <tr key={item.id}>
                    <td>
                      <Link to={`/managed/${encodeURIComponent(item.id)}`}>{managedLabel(item)}</Link>
                    </td>
                    <td>{managedNames(item)}</td>
                    <td>
                      {current ? (
                        <>
                          {formatDate(current.not_after)} <span className="muted">({relativeDays(current.not_after)})</span>
                        </>
                      ) : (
                        <span className="muted">none issued yet</span>
                      )}
                    </td>
                    <td className="num">{item.versions.length}</td>
                    <td>
                      <RenewalBadge decision={item.renewal} />
                      {item.renewal_failures > 0 ? (
                        <div className="field-error">
                          {item.renewal_failures} failed attempt{item.renewal_failures === 1 ? '' : 's'}
                          {item.last_error ? `: ${item.last_error}` : ''}
                        </div>
                      ) : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </TableScroll>
      ) : null}
      <ShowMore query={managed} />
    </>
  );
}
