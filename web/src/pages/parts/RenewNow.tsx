// "Renew now" for a managed certificate (POST .../renew), on its own page and on the pages of
// its versions, and what came of it: the new version, the failure, the request under way, or
// the agent that was asked for a new key.
import type { ReactNode } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { Link } from 'react-router';
import { api } from '../../api/client';
import { problemFromResponse } from '../../api/problem';
import type { IssuanceRequest, Managed } from '../../api/types';
import { ProblemMessage } from '../../components/ProblemMessage';
import { idempotencyKey } from './idempotency';
import { RequestStateBadge } from './requests';

export function RenewNow({ managed, primary = false }: { managed: Managed; primary?: boolean }) {
  const queryClient = useQueryClient();
  const renew = useMutation({
    mutationFn: async () => {
      const { data, error, response } = await api.POST('/api/v1/managed-certificates/{id}/renew', {
        // One key per click: a retried request is answered with the first one's result.
        params: { path: { id: managed.id }, header: { 'Idempotency-Key': idempotencyKey() } },
      });
      if (!response.ok || error !== undefined) throw problemFromResponse(response, error);
      // 202: the key is made on an agent's host, which was asked for a CSR (the body is the
      // managed certificate); otherwise the body is the renewal request.
      return { body: data, status: response.status };
    },
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['managed', managed.id] });
      void queryClient.invalidateQueries({ queryKey: ['managed-list'] });
      void queryClient.invalidateQueries({ queryKey: ['certificates'] });
    },
  });

  let outcome: ReactNode = null;
  if (renew.data?.status === 202) {
    outcome = (
      <p className="notice" role="status">
        The agent that makes this certificate's keys was asked for a new one.
      </p>
    );
  } else if (renew.data) {
    const request = renew.data.body as IssuanceRequest;
    outcome =
      request.state === 'issued' && request.certificate_id ? (
        <p className="notice" role="status">
          Renewed: <Link to={`/certificates/${encodeURIComponent(request.certificate_id)}`}>open the new version</Link>.
        </p>
      ) : request.state === 'failed' ? (
        <p className="problem" role="alert">
          The renewal failed: {request.last_error ?? 'no reason given'}
        </p>
      ) : (
        <p className="notice" role="status">
          Renewal requested: <RequestStateBadge state={request.state} />{' '}
          <Link to={`/request?id=${encodeURIComponent(request.id)}`}>follow the request</Link>
        </p>
      );
  }

  return (
    <>
      <button type="button" className={primary ? 'primary' : undefined} onClick={() => renew.mutate()} disabled={renew.isPending}>
        {renew.isPending ? 'Renewing…' : 'Renew now'}
      </button>
      {renew.error ? <ProblemMessage error={renew.error} context="Renewing" /> : null}
      {outcome}
    </>
  );
}
