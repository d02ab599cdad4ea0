// One managed certificate: the desired state it keeps, its versions, the scheduler's renewal
// decision with its reason, where it is deployed (and editing that), and "renew now".
import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useParams } from 'react-router';
import { api, unwrap } from '../api/client';
import type { Managed } from '../api/types';
import { useCan } from '../auth/session';
import { FormButtons } from '../components/FormButtons';
import { ProblemMessage } from '../components/ProblemMessage';
import { Section } from '../components/Section';
import { TableScroll } from '../components/TableScroll';
import { Empty, Loading } from '../components/States';
import { colonHex, formatDateTime } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { managedLabel, reasonLabel, RenewalBadge, unixTime } from './parts/managed';
import { Field, splitList } from './parts/Field';
import { keyTypeLabel } from './parts/policy';
import { RenewNow } from './parts/RenewNow';
import '../styles-pages.css';

function keySourceText(managed: Managed): string {
  const spec = managed.spec;
  switch (spec.key_source) {
    case 'csr':
      return "The requester's CSR, signed again at each renewal";
    case 'server':
      return `A new server-made key for each version (${keyTypeLabel(spec.key_type ?? 'ecdsa_p256')})`;
    case 'agent':
      return `A new key on the agent's host for each version (${keyTypeLabel(spec.key_type ?? 'ecdsa_p256')})`;
    default:
      return '—';
  }
}

function DesiredState({ managed, adapterName }: { managed: Managed; adapterName: string }) {
  const spec = managed.spec;
  const list = (values: string[] | undefined) => (values && values.length > 0 ? values.join(', ') : <span className="muted">none</span>);
  return (
    <dl className="facts">
      <dt>Owner</dt>
      <dd>{managed.owner_name ?? managed.owner_id ?? '—'}</dd>
      <dt>DNS names</dt>
      <dd>{list(spec.dns_names)}</dd>
      <dt>IP addresses</dt>
      <dd>{list(spec.ip_addresses)}</dd>
      {spec.common_name ? (
        <>
          <dt>Common name</dt>
          <dd>{spec.common_name}</dd>
        </>
      ) : null}
      <dt>Validity</dt>
      <dd>{spec.validity_days ? `${spec.validity_days} days` : '—'}</dd>
      <dt>Renews</dt>
      <dd>{spec.renew_before ? `${spec.renew_before} before expiry` : 'At 2/3 of the lifetime (the default)'}</dd>
      <dt>Key</dt>
      <dd>{keySourceText(managed)}</dd>
      <dt>CA (adapter)</dt>
      <dd>{adapterName}</dd>
      {spec.acme_solver ? (
        <>
          <dt>ACME solver</dt>
          <dd>{spec.acme_solver}</dd>
        </>
      ) : null}
      <dt>Created</dt>
      <dd>
        {formatDateTime(managed.created_at)} by <span className="mono">{managed.created_by}</span>
      </dd>
    </dl>
  );
}

function Renewal({ managed }: { managed: Managed }) {
  const decision = managed.renewal;
  return (
    <>
      {decision ? (
        <dl className="facts">
          <dt>Decision</dt>
          <dd>
            <RenewalBadge decision={decision} />
          </dd>
          <dt>Reason</dt>
          <dd>
            {reasonLabel(decision.reason)}: {decision.message}
          </dd>
          <dt>Due</dt>
          <dd>{unixTime(decision.due_at)}</dd>
          {decision.action === 'wait' ? (
            <>
              <dt>Next check</dt>
              <dd>{unixTime(decision.next_check_at)}</dd>
            </>
          ) : null}
        </dl>
      ) : (
        <Empty>The scheduler has not looked at it yet.</Empty>
      )}
      {managed.last_error ? (
        <p className="problem">
          Last renewal failed{managed.renewal_failures > 1 ? ` (${managed.renewal_failures} times in a row)` : ''}:{' '}
          {managed.last_error}
        </p>
      ) : null}
    </>
  );
}

function Versions({ managed }: { managed: Managed }) {
  if (managed.versions.length === 0) return <Empty>No version issued yet.</Empty>;
  const versions = [...managed.versions].sort((a, b) => b.not_before.localeCompare(a.not_before));
  return (
    <TableScroll label="Versions, table">
      <table>
        <caption className="visually-hidden">Versions of {managed.name}, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Serial</th>
            <th scope="col">Valid from</th>
            <th scope="col">Valid until</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {versions.map((version) => (
            <tr key={version.certificate_id}>
              <td className="mono">
                <Link to={`/certificates/${encodeURIComponent(version.certificate_id)}`}>{version.serial_number}</Link>
              </td>
              <td>{formatDateTime(version.not_before)}</td>
              <td>{formatDateTime(version.not_after)}</td>
              <td>
                <span className="badges">
                  {version.certificate_id === managed.current_certificate_id ? <span className="badge ok">current</span> : null}
                  {version.revoked ? <span className="badge bad">revoked</span> : null}
                </span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}

/** `agent:target` per line, as `cmpctl managed create --deploy` takes them. */
export function parseDeployments(text: string): { agent: string; target: string }[] {
  return splitList(text).map((item) => {
    const at = item.lastIndexOf(':');
    return at < 0 ? { agent: item, target: '' } : { agent: item.slice(0, at), target: item.slice(at + 1) };
  });
}

/** The whole list of deployments, replaced at once (PUT): agents and their targets by name. */
function DeploymentsEditor({ managedId, current, onDone }: { managedId: string; current: string; onDone: () => void }) {
  const queryClient = useQueryClient();
  const [text, setText] = useState(current);
  const save = useMutation({
    mutationFn: () =>
      unwrap(
        api.PUT('/api/v1/managed-certificates/{id}/deployments', {
          params: { path: { id: managedId } },
          body: { deployments: parseDeployments(text) },
        }),
      ),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['managed', managedId] });
      onDone();
    },
  });
  return (
    <form
      className="form-stack"
      onSubmit={(event: FormEvent) => {
        event.preventDefault();
        save.mutate();
      }}
    >
      <Field
        label="Deploy to"
        hint="One agent:target per line, e.g. web-01:nginx. A target is a name in that agent's own configuration; a line removed undeploys it."
      >
        {(control) => (
          <textarea {...control} className="mono" rows={4} spellCheck={false} value={text} onChange={(event) => setText(event.target.value)} />
        )}
      </Field>
      <FormButtons
        submitLabel="Save deployments"
        busyLabel="Saving…"
        busy={save.isPending}
        onCancel={onDone}
        error={save.error}
        errorContext="The deployments were not changed"
      />
    </form>
  );
}

function Deployments({ managedId }: { managedId: string }) {
  const can = useCan();
  const [editing, setEditing] = useState(false);
  const deployments = useQuery({
    queryKey: ['managed', managedId, 'deployments'],
    queryFn: () =>
      unwrap(api.GET('/api/v1/managed-certificates/{id}/deployments', { params: { path: { id: managedId } } })),
  });
  if (deployments.isPending) return <Loading what="deployments" />;
  if (deployments.error) return <ProblemMessage error={deployments.error} context="Loading deployments" />;
  if (editing) {
    const current = deployments.data.map((deployment) => `${deployment.agent}:${deployment.target}`).join('\n');
    return <DeploymentsEditor managedId={managedId} current={current} onDone={() => setEditing(false)} />;
  }
  const edit = can.editDeployments ? (
    <p>
      <button type="button" onClick={() => setEditing(true)}>
        Edit deployments
      </button>
    </p>
  ) : null;
  if (deployments.data.length === 0) {
    return (
      <>
        <Empty>Not deployed by any agent.</Empty>
        {edit}
      </>
    );
  }
  const tones: Record<string, string> = { verified: 'ok', failed: 'bad', pending: 'warn' };
  return (
    <>
      <TableScroll label="Deployments, table">
        <table>
          <caption className="visually-hidden">Deployments</caption>
          <thead>
            <tr>
              <th scope="col">Agent</th>
              <th scope="col">Target</th>
              <th scope="col">State</th>
              <th scope="col">Verified</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {deployments.data.map((deployment) => (
              <tr key={`${deployment.agent_id}/${deployment.target}`}>
                <td>{deployment.agent}</td>
                <td className="mono">{deployment.target}</td>
                <td>
                  <span className={`badge ${tones[deployment.state] ?? ''}`}>{deployment.state}</span>
                </td>
                <td>{formatDateTime(deployment.verified_at)}</td>
                <td>
                  {deployment.state === 'failed' ? (
                    <span className="field-error">
                      {deployment.failed_step ? `${deployment.failed_step}: ` : ''}
                      {deployment.last_error ?? 'failed'}
                    </span>
                  ) : deployment.served_fingerprint ? (
                    <span className="mono" title={colonHex(deployment.served_fingerprint)}>
                      serves {deployment.served_fingerprint.slice(0, 16)}…
                    </span>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableScroll>
      {edit}
    </>
  );
}

export default function ManagedDetailPage() {
  const { id = '' } = useParams();
  const can = useCan();
  const managed = useQuery({
    queryKey: ['managed', id],
    queryFn: () => unwrap(api.GET('/api/v1/managed-certificates/{id}', { params: { path: { id } } })),
  });
  const adapters = useQuery({
    queryKey: ['adapters'],
    queryFn: () => unwrap(api.GET('/api/v1/adapters')),
    enabled: can.viewAdapters,
  });
  usePageTitle(managed.data ? managedLabel(managed.data) : 'Managed certificate');

  const crumbs = (
    <p>
      <Link to="/managed">Managed certificates</Link> ›
    </p>
  );
  if (managed.isPending) return <Loading what="the managed certificate" />;
  if (managed.error) {
    return (
      <>
        {crumbs}
        <h1>Managed certificate</h1>
        <ProblemMessage error={managed.error} context="Loading the managed certificate" />
      </>
    );
  }
  const m = managed.data;
  const adapter = adapters.data?.find((a) => a.id === m.adapter_id);

  return (
    <>
      {crumbs}
      <div className="page-header">
        <h1>{managedLabel(m)}</h1>
        <RenewalBadge decision={m.renewal} />
      </div>
      {can.renewManaged ? (
        <Section id="managed-actions" title="Actions">
          <div className="actions">
            <RenewNow managed={m} primary />
            {m.current_certificate_id ? (
              <Link className="button" to={`/certificates/${encodeURIComponent(m.current_certificate_id)}`}>
                Open the current version
              </Link>
            ) : null}
          </div>
        </Section>
      ) : null}
      <div className="grid-2">
        <Section id="managed-desired" title="Desired state">
          <DesiredState managed={m} adapterName={adapter ? `${adapter.name} (${adapter.kind})` : m.adapter_id} />
        </Section>
        <Section id="managed-renewal" title="Renewal">
          <Renewal managed={m} />
        </Section>
      </div>
      <Section id="managed-versions" title="Versions">
        <Versions managed={m} />
      </Section>
      <Section id="managed-deployments" title="Deployments">
        <Deployments managedId={m.id} />
      </Section>
    </>
  );
}
