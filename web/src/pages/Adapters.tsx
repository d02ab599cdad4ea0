// CA adapters: each configured CA with its kind, whether it is enabled, its health and
// capabilities (GET .../{id}/status); admins add builtin, Vault PKI and ACME adapters and
// enable or disable them.
import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import type { components } from '../api/schema';
import { useCan } from '../auth/session';
import { useAddPanel } from '../components/AddPanel';
import { Dialog } from '../components/Dialog';
import { DialogForm } from '../components/DialogForm';
import { ProblemMessage } from '../components/ProblemMessage';
import { Section } from '../components/Section';
import { Empty, Loading } from '../components/States';
import { formatDateTime } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { AdapterForm } from './parts/AdapterForm';
import { keyFamilyLabel, keyTypeLabel } from './parts/policy';
import '../styles-pages.css';

type Adapter = components['schemas']['Adapter'];

const KIND_LABELS: Record<string, string> = { builtin: 'Built-in CA', vault_pki: 'Vault PKI', acme: 'ACME' };

function duration(seconds: number | null | undefined): string {
  if (!seconds) return 'unknown';
  const days = seconds / 86_400;
  return days >= 1 ? `${Math.round(days)} days` : `${Math.round(seconds / 3600)} hours`;
}

function yesNo(value: boolean | undefined): string {
  return value ? 'yes' : 'no';
}

function AdapterStatus({ adapter }: { adapter: Adapter }) {
  const status = useQuery({
    queryKey: ['adapters', adapter.id, 'status'],
    queryFn: () => unwrap(api.GET('/api/v1/adapters/{id}/status', { params: { path: { id: adapter.id } } })),
    enabled: adapter.enabled,
  });
  if (!adapter.enabled) return <p className="muted">Disabled: no request goes to it.</p>;
  if (status.isPending) return <Loading what="its status" />;
  if (status.error) return <ProblemMessage error={status.error} context="Checking its status" />;
  const s = status.data;
  return (
    <>
      <p className="row">
        <span className={`badge ${s.healthy ? 'ok' : 'bad'}`}>{s.healthy ? 'Healthy' : 'Unhealthy'}</span>
        <span>{s.message}</span>
      </p>
      <dl className="facts">
        <dt>Longest lifetime</dt>
        <dd>{duration(s.max_validity_secs)}</dd>
        <dt>Issues the lifetime asked</dt>
        <dd>
          {yesNo(s.honours_validity)}
          {s.issued_validity_secs ? <span className="muted"> (last certificate: {duration(s.issued_validity_secs)})</span> : null}
        </dd>
        <dt>Key types</dt>
        <dd>{s.key_types.length > 0 ? s.key_types.map((type) => (type.includes('_') || /\d/.test(type) ? keyTypeLabel(type) : keyFamilyLabel(type))).join(', ') : '—'}</dd>
        <dt>Signs CSRs</dt>
        <dd>{yesNo(s.supports_csr)}</dd>
        <dt>Revokes</dt>
        <dd>{yesNo(s.supports_revocation)}</dd>
        <dt>CRL / OCSP</dt>
        <dd>
          {yesNo(s.publishes_crl)} / {yesNo(s.answers_ocsp)}
        </dd>
        <dt>CA chain</dt>
        <dd>
          {(s.chain ?? []).length > 0
            ? `${(s.chain ?? []).length} certificate${(s.chain ?? []).length === 1 ? '' : 's'}`
            : 'comes with each certificate'}
        </dd>
      </dl>
    </>
  );
}

function EnableToggle({ adapter }: { adapter: Adapter }) {
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const toggle = useMutation({
    mutationFn: (enabled: boolean) =>
      unwrap(api.PATCH('/api/v1/adapters/{id}', { params: { path: { id: adapter.id } }, body: { enabled } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['adapters'] });
      setConfirming(false);
    },
  });
  return (
    <>
      {adapter.enabled ? (
        <button type="button" onClick={() => setConfirming(true)}>
          Disable…
        </button>
      ) : (
        <button type="button" onClick={() => toggle.mutate(true)} disabled={toggle.isPending}>
          {toggle.isPending ? 'Enabling…' : 'Enable'}
        </button>
      )}
      {toggle.error && !confirming ? <ProblemMessage error={toggle.error} context="Changing the adapter" /> : null}
      <Dialog open={confirming} onClose={() => setConfirming(false)} title={`Disable ${adapter.name}?`}>
        <DialogForm
          onSubmit={() => toggle.mutate(false)}
          onCancel={() => setConfirming(false)}
          submitLabel="Disable adapter"
          busyLabel="Disabling…"
          busy={toggle.isPending}
          tone="danger"
          error={toggle.error}
          errorContext="Disabling"
        >
          <p>Requests and renewals that name this CA will fail until it is enabled again. Certificates it issued stay valid.</p>
        </DialogForm>
      </Dialog>
    </>
  );
}

function AdapterCard({ adapter, manage }: { adapter: Adapter; manage: boolean }) {
  const config = JSON.stringify(adapter.config ?? {}, null, 2);
  return (
    <Section
      id={`adapter-${adapter.id}`}
      title={adapter.name}
      actions={
        <>
          <span className="badge">{KIND_LABELS[adapter.kind] ?? adapter.kind}</span>
          <span className={`badge ${adapter.enabled ? 'ok' : ''}`}>{adapter.enabled ? 'Enabled' : 'Disabled'}</span>
          {manage ? <EnableToggle adapter={adapter} /> : null}
        </>
      }
    >
      <AdapterStatus adapter={adapter} />
      <dl className="facts adapter-facts">
        <dt>CRL</dt>
        <dd className="mono">{adapter.crl_url ?? '—'}</dd>
        <dt>OCSP</dt>
        <dd className="mono">{adapter.ocsp_url ?? '—'}</dd>
        <dt>Credentials</dt>
        <dd>{adapter.has_credentials ? 'kept in the secret store' : 'none'}</dd>
        <dt>Added</dt>
        <dd>{formatDateTime(adapter.created_at)}</dd>
      </dl>
      {config !== '{}' ? (
        <details>
          <summary>Configuration</summary>
          <pre>{config}</pre>
        </details>
      ) : null}
    </Section>
  );
}

export default function AdaptersPage() {
  usePageTitle('Adapters');
  const can = useCan();
  const adapters = useQuery({ queryKey: ['adapters'], queryFn: () => unwrap(api.GET('/api/v1/adapters')) });
  const add = useAddPanel<Adapter>({
    id: 'adapter-add',
    label: 'Add adapter',
    title: 'Add an adapter',
    allowed: can.manageAdapters,
    form: (done) => <AdapterForm onDone={done} />,
    notice: (created) => <>Added {created.name}.</>,
  });

  return (
    <>
      <div className="page-header">
        <h1>Adapters</h1>
        {add.button}
      </div>
      <p className="muted">The CAs that sign CMP's requests. A request that names none goes to the built-in CA.</p>
      {add.panel}
      {adapters.isPending ? <Loading what="adapters" /> : null}
      {adapters.error ? <ProblemMessage error={adapters.error} context="Loading adapters" /> : null}
      {adapters.data && adapters.data.length === 0 ? <Empty>No adapter is configured.</Empty> : null}
      {(adapters.data ?? []).map((adapter) => (
        <AdapterCard key={adapter.id} adapter={adapter} manage={can.manageAdapters} />
      ))}
    </>
  );
}
