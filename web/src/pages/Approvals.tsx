// Approvals: the requests waiting for a security reviewer, with who asked, for which owner,
// names, key and lifetime; approve or reject each with a comment. The server refuses a
// reviewer's own request (separation of duties): its problem shows in the dialog.
import { useId, useState } from 'react';
import { useInfiniteQuery, useMutation, useQueryClient } from '@tanstack/react-query';
import { Link } from 'react-router';
import { api, unwrap } from '../api/client';
import type { IssuanceRequest } from '../api/types';
import { useSession } from '../auth/session';
import { Dialog } from '../components/Dialog';
import { DialogForm } from '../components/DialogForm';
import { ProblemMessage } from '../components/ProblemMessage';
import { ShowMore } from '../components/ShowMore';
import { TableScroll } from '../components/TableScroll';
import { Empty, Loading } from '../components/States';
import { formatDateTime, relativeDays } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { useActorName } from './parts/actors';
import { ownerName, useOwnerNames } from './parts/owners';
import { requestKey, requestNames } from './parts/requests';
import '../styles-pages.css';

type Verdict = 'approve' | 'reject';

const PAGE_SIZE = 50;

function DecisionForm({
  request,
  verdict,
  names,
  onDone,
}: {
  request: IssuanceRequest;
  verdict: Verdict;
  names: string;
  onDone: (decided: IssuanceRequest | null) => void;
}) {
  const queryClient = useQueryClient();
  const commentId = useId();
  const [comment, setComment] = useState('');
  const decide = useMutation({
    mutationFn: () => {
      const body = comment.trim() ? { comment: comment.trim() } : {};
      const params = { path: { id: request.id } };
      return unwrap(
        verdict === 'approve'
          ? api.POST('/api/v1/requests/{id}/approve', { params, body })
          : api.POST('/api/v1/requests/{id}/reject', { params, body }),
      );
    },
    onSuccess: (decided) => {
      queryClient.setQueryData(['request', decided.id], decided);
      void queryClient.invalidateQueries({ queryKey: ['requests'] });
      void queryClient.invalidateQueries({ queryKey: ['certificates'] });
      void queryClient.invalidateQueries({ queryKey: ['stats'] });
      onDone(decided);
    },
  });

  return (
    <DialogForm
      onSubmit={() => decide.mutate()}
      onCancel={() => onDone(null)}
      submitLabel={verdict === 'approve' ? 'Approve' : 'Reject'}
      busyLabel="Sending…"
      busy={decide.isPending}
      tone={verdict === 'approve' ? 'primary' : 'danger'}
      error={decide.error}
      errorContext={verdict === 'approve' ? 'Approving' : 'Rejecting'}
    >
      <p>
        {verdict === 'approve' ? 'Approve' : 'Reject'} the request for <strong>{names}</strong>?{' '}
        {verdict === 'approve' ? 'The certificate is issued at once.' : 'Nothing is issued; the requester sees your comment.'}
      </p>
      <div className="field">
        <label htmlFor={commentId}>Comment{verdict === 'reject' ? ' (tell the requester why)' : ' (optional)'}</label>
        <textarea
          id={commentId}
          rows={3}
          maxLength={2000}
          value={comment}
          onChange={(event) => setComment(event.target.value)}
        />
      </div>
    </DialogForm>
  );
}

/** What came of the last decision, with a link to the certificate when one was issued. */
function Outcome({ request }: { request: IssuanceRequest }) {
  const names = requestNames(request).join(', ') || request.id;
  if (request.state === 'issued' && request.certificate_id) {
    return (
      <p className="notice" role="status">
        Approved and issued: {names}.{' '}
        <Link to={`/certificates/${encodeURIComponent(request.certificate_id)}`}>Open the certificate</Link>
      </p>
    );
  }
  if (request.state === 'rejected') {
    return (
      <p className="notice" role="status">
        Rejected: {names}.
      </p>
    );
  }
  if (request.state === 'failed') {
    return (
      <p className="problem" role="alert">
        Approved, but the CA failed to issue {names}: {request.last_error ?? 'no reason given'}
      </p>
    );
  }
  return (
    <p className="notice" role="status">
      Approved: {names}. The CA is working on it (
      <Link to={`/request?id=${encodeURIComponent(request.id)}`}>follow the request</Link>).
    </p>
  );
}

export default function ApprovalsPage() {
  usePageTitle('Approvals');
  const { me } = useSession();
  const actorName = useActorName();
  const [open, setOpen] = useState<{ request: IssuanceRequest; verdict: Verdict } | null>(null);
  const [outcome, setOutcome] = useState<IssuanceRequest | null>(null);

  const waiting = useInfiniteQuery({
    queryKey: ['requests', { state: 'awaiting_approval' }],
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET('/api/v1/requests', {
          params: { query: { state: 'awaiting_approval', limit: PAGE_SIZE, ...(pageParam ? { cursor: pageParam } : {}) } },
        }),
      ),
    initialPageParam: '',
    getNextPageParam: (page) => page.next_cursor ?? undefined,
    refetchInterval: 15_000,
  });
  const ownerNames = useOwnerNames();
  const items = waiting.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <>
      <div className="page-header">
        <h1>Approvals</h1>
        <button type="button" onClick={() => void waiting.refetch()} disabled={waiting.isFetching}>
          {waiting.isFetching ? 'Refreshing…' : 'Refresh'}
        </button>
      </div>
      <p className="muted">
        Requests for owners whose policy needs approval wait here. Nobody may decide on their own request.
      </p>
      {outcome ? <Outcome request={outcome} /> : null}
      {waiting.isPending ? <Loading what="requests awaiting approval" /> : null}
      {waiting.error ? <ProblemMessage error={waiting.error} context="Loading requests awaiting approval" /> : null}
      {waiting.data && items.length === 0 ? <Empty>No request is waiting for approval.</Empty> : null}
      {items.length > 0 ? (
        <TableScroll label="Requests awaiting approval, table" className="panel">
          <table>
            <caption className="visually-hidden">Requests awaiting approval</caption>
            <thead>
              <tr>
                <th scope="col">Names</th>
                <th scope="col">Owner</th>
                <th scope="col">Requested by</th>
                <th scope="col">Requested</th>
                <th scope="col">Key</th>
                <th scope="col">Validity</th>
                <th scope="col">Decision</th>
              </tr>
            </thead>
            <tbody>
              {items.map((request) => {
                const names = requestNames(request).join(', ') || '—';
                const spec = request.spec;
                const own = request.requested_by === me.actor;
                return (
                  <tr key={request.id}>
                    <td>
                      <Link to={`/request?id=${encodeURIComponent(request.id)}`}>{names}</Link>
                      {request.kind !== 'issue' ? <span className="muted"> ({request.kind})</span> : null}
                    </td>
                    <td>{ownerName(ownerNames, request.owner_id)}</td>
                    <td className="mono">
                      {actorName(request.requested_by)}
                      {own ? <> <span className="badge warn">you</span></> : null}
                    </td>
                    <td>
                      {formatDateTime(request.created_at)} <span className="muted">({relativeDays(request.created_at)})</span>
                    </td>
                    <td>{requestKey(request)}</td>
                    <td>{spec.validity_days ? `${spec.validity_days} days` : '—'}</td>
                    <td className="actions-cell">
                      <button
                        type="button"
                        className="primary"
                        aria-label={`Approve the request for ${names}`}
                        onClick={() => setOpen({ request, verdict: 'approve' })}
                      >
                        Approve…
                      </button>
                      <button
                        type="button"
                        className="danger"
                        aria-label={`Reject the request for ${names}`}
                        onClick={() => setOpen({ request, verdict: 'reject' })}
                      >
                        Reject…
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </TableScroll>
      ) : null}
      <ShowMore query={waiting} />

      <Dialog
        open={open !== null}
        onClose={() => setOpen(null)}
        title={open?.verdict === 'reject' ? 'Reject request' : 'Approve request'}
      >
        {open ? (
          <DecisionForm
            key={`${open.request.id}-${open.verdict}`}
            request={open.request}
            verdict={open.verdict}
            names={requestNames(open.request).join(', ') || open.request.id}
            onDone={(decided) => {
              if (decided) setOutcome(decided);
              setOpen(null);
            }}
          />
        ) : null}
      </Dialog>
    </>
  );
}
