// Request a certificate: a form for an owner the caller acts for, with that owner's policy as
// hints beside the fields; then the request's state (`/request?id=...`), followed until it
// settles, with a link to what was issued. Ticked "Keep it renewed", the same form creates a
// managed certificate instead and opens its page. `/request?from=<certificate id>` (the
// certificate page's "Request a replacement") fills the form from an existing certificate.
import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { api, unwrap } from '../api/client';
import { toApiProblem } from '../api/problem';
import type { components } from '../api/schema';
import type { IssuanceRequest, Owner } from '../api/types';
import { useSession } from '../auth/session';
import { ProblemMessage } from '../components/ProblemMessage';
import { Section } from '../components/Section';
import { TableScroll } from '../components/TableScroll';
import { Empty, Loading } from '../components/States';
import { formatDateTime } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { Field, splitList } from './parts/Field';
import { idempotencyKey } from './parts/idempotency';
import { PolicySummary } from './parts/PolicySummary';
import {
  describeKeys,
  describeNames,
  describeValidity,
  keyTypeAllowed,
  NAME_RULES,
  SERVER_KEY_TYPES,
  type Policy,
} from './parts/policy';
import { ownerName, useOwnerNames } from './parts/owners';
import { FINAL_STATES, requestKey, requestNames, RequestStateBadge } from './parts/requests';
import '../styles-pages.css';

type RequestCreate = components['schemas']['RequestCreate'];
type ManagedCreate = components['schemas']['ManagedCreate'];
type KeyMode = 'csr' | 'server';

const DEFAULT_VALIDITY_DAYS = 90;

/** The owners the caller may request for: a developer's own teams, everyone's for other roles. */
export function requestableOwners(owners: readonly Owner[], role: string, mine: readonly string[]): Owner[] {
  if (role === 'developer' && mine.length > 0) return owners.filter((owner) => mine.includes(owner.id));
  return [...owners];
}

/** Which form field a problem item's pointer is about, so that its detail shows beside it. */
function fieldOfPointer(pointer: string): string | null {
  const name = pointer.replace(/^\/+/, '').split(/[/.[]/)[0] ?? '';
  const fields: Record<string, string> = {
    owner: 'owner',
    allowed_names: 'dns_names',
    dns_names: 'dns_names',
    ip_addresses: 'ip_addresses',
    common_name: 'common_name',
    max_validity_days: 'validity_days',
    validity_days: 'validity_days',
    allowed_keys: 'key',
    key_type: 'key',
    csr: 'key',
    adapter: 'adapter',
    name: 'name',
    renew_before: 'renew_before',
  };
  return fields[name] ?? null;
}

/** The private key: a pasted CSR (the key stays with the requester), or one the server makes. */
function PrivateKeyFields({
  mode,
  onMode,
  csr,
  onCsr,
  keyType,
  onKeyType,
  rules,
  error,
}: {
  mode: KeyMode;
  onMode: (mode: KeyMode) => void;
  csr: string;
  onCsr: (csr: string) => void;
  keyType: string;
  onKeyType: (keyType: string) => void;
  rules: Policy | undefined;
  error: string | undefined;
}) {
  return (
    <fieldset aria-describedby={error ? 'request-key-error' : undefined}>
      <legend>Private key</legend>
      <div className="choice-row">
        <label className="choice">
          <input type="radio" name="key-mode" value="csr" checked={mode === 'csr'} onChange={() => onMode('csr')} />
          Paste a CSR (recommended: the key never leaves your machine)
        </label>
        <label className="choice">
          <input type="radio" name="key-mode" value="server" checked={mode === 'server'} onChange={() => onMode('server')} />
          Let the server make the key
        </label>
      </div>
      {mode === 'csr' ? (
        <Field
          label="CSR (PEM)"
          hint={
            <>
              PKCS#10, beginning with <code>-----BEGIN CERTIFICATE REQUEST-----</code>.
              {rules ? <> Keys allowed: {describeKeys(rules)}.</> : null}
            </>
          }
        >
          {(control) => (
            <textarea
              {...control}
              className="mono"
              rows={8}
              spellCheck={false}
              required
              value={csr}
              onChange={(event) => onCsr(event.target.value)}
            />
          )}
        </Field>
      ) : (
        <Field
          label="Key type"
          hint={
            <>
              The key is kept in the secret store; developers of the owner may download it.
              {rules ? <> Allowed: {describeKeys(rules)}.</> : null}
            </>
          }
        >
          {(control) => (
            <select {...control} value={keyType} onChange={(event) => onKeyType(event.target.value)}>
              {SERVER_KEY_TYPES.map((key) => {
                const allowed = keyTypeAllowed(rules, key.value);
                return (
                  <option key={key.value} value={key.value} disabled={!allowed}>
                    {key.label}
                    {allowed ? '' : ' (not allowed by the policy)'}
                  </option>
                );
              })}
            </select>
          )}
        </Field>
      )}
      {error ? (
        <p id="request-key-error" className="field-error">
          {error}
        </p>
      ) : null}
    </fieldset>
  );
}

function RequestForm({ from }: { from: string | null }) {
  const { me, can } = useSession();
  const navigate = useNavigate();
  const queryClient = useQueryClient();

  const [owner, setOwner] = useState('');
  const [dnsNames, setDnsNames] = useState('');
  const [ipAddresses, setIpAddresses] = useState('');
  const [commonName, setCommonName] = useState('');
  const [validityDays, setValidityDays] = useState(String(DEFAULT_VALIDITY_DAYS));
  const [adapter, setAdapter] = useState('');
  const [keyMode, setKeyMode] = useState<KeyMode>('csr');
  const [csr, setCsr] = useState('');
  const [keyType, setKeyType] = useState('ecdsa_p256');
  // Kept renewed: a managed certificate (a name, and when to renew) instead of one request.
  const [managed, setManaged] = useState(false);
  const [managedName, setManagedName] = useState('');
  const [renewBefore, setRenewBefore] = useState('');

  const owners = useQuery({ queryKey: ['owners'], queryFn: () => unwrap(api.GET('/api/v1/owners')) });
  const choices = useMemo(
    () => requestableOwners(owners.data ?? [], me.role, me.owners),
    [owners.data, me.role, me.owners],
  );
  const ownerNames = useMemo(() => new Map((owners.data ?? []).map((o) => [o.id, o.name])), [owners.data]);

  // One owner to choose from: chosen already.
  useEffect(() => {
    if (!owner && choices.length === 1 && choices[0]) setOwner(choices[0].id);
  }, [choices, owner]);

  // "Request a replacement": the names and owner of that certificate, once.
  const source = useQuery({
    queryKey: ['certificate', from],
    queryFn: () => unwrap(api.GET('/api/v1/certificates/{id}', { params: { path: { id: from ?? '' } } })),
    enabled: Boolean(from),
  });
  const prefilled = useRef(false);
  useEffect(() => {
    const cert = source.data;
    if (!cert || prefilled.current) return;
    prefilled.current = true;
    setDnsNames(cert.sans.filter((san) => san.type === 'dns').map((san) => san.value).join('\n'));
    setIpAddresses(cert.sans.filter((san) => san.type === 'ip').map((san) => san.value).join('\n'));
    setCommonName(cert.common_name ?? '');
    if (cert.owner) setOwner(cert.owner.id);
  }, [source.data]);

  const policy = useQuery({
    queryKey: ['owner', owner, 'policy'],
    queryFn: () => unwrap(api.GET('/api/v1/owners/{id}/policy', { params: { path: { id: owner } } })),
    enabled: Boolean(owner),
  });
  const rules = policy.data?.policy;

  // A lifetime over the policy's maximum would only be refused: start at the maximum.
  useEffect(() => {
    const max = rules?.max_validity_days;
    if (max && Number(validityDays) > max) setValidityDays(String(max));
    // Only when the policy changes: the user may still type what they like.
  }, [rules?.max_validity_days]);

  // A key type the policy refuses: move to the first it allows.
  useEffect(() => {
    if (!rules || keyTypeAllowed(rules, keyType)) return;
    const allowed = SERVER_KEY_TYPES.find((key) => keyTypeAllowed(rules, key.value));
    if (allowed) setKeyType(allowed.value);
  }, [rules]);

  const adapters = useQuery({
    queryKey: ['adapters'],
    queryFn: () => unwrap(api.GET('/api/v1/adapters')),
    enabled: can.viewAdapters,
  });

  const create = useMutation({
    mutationFn: (body: RequestCreate) =>
      unwrap(api.POST('/api/v1/requests', { body, params: { header: { 'Idempotency-Key': idempotencyKey() } } })),
    onSuccess: (request) => {
      queryClient.setQueryData(['request', request.id], request);
      void queryClient.invalidateQueries({ queryKey: ['requests'] });
      navigate(`/request?id=${encodeURIComponent(request.id)}`);
    },
  });
  const createManaged = useMutation({
    mutationFn: (body: ManagedCreate) => unwrap(api.POST('/api/v1/managed-certificates', { body })),
    onSuccess: (created) => {
      void queryClient.invalidateQueries({ queryKey: ['managed-list'] });
      navigate(`/managed/${encodeURIComponent(created.id)}`);
    },
  });
  const sending = managed ? createManaged : create;

  const problem = sending.error ? toApiProblem(sending.error) : null;
  const fieldErrors: Record<string, string> = {};
  for (const item of problem?.problem.errors ?? []) {
    const field = fieldOfPointer(item.pointer);
    if (field && !fieldErrors[field]) fieldErrors[field] = item.detail || item.reason;
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    const days = Number(validityDays);
    const body: RequestCreate = {
      owner,
      dns_names: splitList(dnsNames),
      ip_addresses: splitList(ipAddresses),
      ...(commonName.trim() ? { common_name: commonName.trim() } : {}),
      ...(validityDays.trim() && Number.isFinite(days) ? { validity_days: days } : {}),
      ...(adapter ? { adapter } : {}),
      ...(keyMode === 'csr' ? { csr } : { key_type: keyType }),
    };
    if (managed) {
      createManaged.mutate({ ...body, name: managedName.trim(), ...(renewBefore.trim() ? { renew_before: renewBefore.trim() } : {}) });
    } else {
      create.mutate(body);
    }
  }

  if (owners.isPending) return <Loading what="owners" />;
  if (owners.error) return <ProblemMessage error={owners.error} context="Loading owners" />;
  if (choices.length === 0) {
    return <Empty>You act for no owner yet: an administrator must give your token or group an owner first.</Empty>;
  }

  const enabledAdapters = (adapters.data ?? []).filter((a) => a.enabled);
  const ownerLabel = ownerName(ownerNames, owner);

  return (
    <div className="request-layout">
      <form className="panel form-stack" onSubmit={submit} aria-labelledby="request-form-title" noValidate>
        <h2 id="request-form-title">What to certify</h2>
        {source.error ? <ProblemMessage error={source.error} context="Loading the certificate to replace" /> : null}
        {source.data ? <p className="notice">Filled in from the certificate you are replacing.</p> : null}

        <Field label="Owner" error={fieldErrors.owner} hint="The team the certificate belongs to; its policy applies.">
          {(control) => (
            <select {...control} value={owner} required onChange={(event) => setOwner(event.target.value)}>
              <option value="">Choose an owner</option>
              {choices.map((o) => (
                <option key={o.id} value={o.id}>
                  {o.name}
                </option>
              ))}
            </select>
          )}
        </Field>

        <Field
          label="DNS names"
          error={fieldErrors.dns_names}
          hint={
            <>
              One per line. {rules ? <>Allowed: <strong>{describeNames(rules)}</strong>. </> : null}
              {keyMode === 'csr' ? 'Leave empty to use the names in the CSR.' : null}
            </>
          }
        >
          {(control) => (
            <textarea
              {...control}
              rows={3}
              spellCheck={false}
              autoComplete="off"
              placeholder="www.example.com"
              value={dnsNames}
              onChange={(event) => setDnsNames(event.target.value)}
            />
          )}
        </Field>

        <Field
          label="IP addresses"
          error={fieldErrors.ip_addresses}
          hint="Optional, one per line. A policy allows an address only when it lists it exactly."
        >
          {(control) => (
            <textarea
              {...control}
              rows={2}
              spellCheck={false}
              autoComplete="off"
              value={ipAddresses}
              onChange={(event) => setIpAddresses(event.target.value)}
            />
          )}
        </Field>

        <Field label="Common name" error={fieldErrors.common_name} hint="Optional: clients read the DNS names.">
          {(control) => (
            <input {...control} value={commonName} spellCheck={false} autoComplete="off" onChange={(event) => setCommonName(event.target.value)} />
          )}
        </Field>

        <div className="form-row">
          <Field
            label="Validity (days)"
            error={fieldErrors.validity_days}
            hint={rules ? describeValidity(rules) : `Default ${DEFAULT_VALIDITY_DAYS}`}
          >
            {(control) => (
              <input
                {...control}
                type="number"
                inputMode="numeric"
                min={1}
                max={rules?.max_validity_days ?? undefined}
                value={validityDays}
                onChange={(event) => setValidityDays(event.target.value)}
              />
            )}
          </Field>

          {can.viewAdapters ? (
            <Field
              label="CA (adapter)"
              error={fieldErrors.adapter}
              hint={adapters.error ? 'The list of CAs could not be loaded: the default will be used.' : undefined}
            >
              {(control) => (
                <select {...control} value={adapter} onChange={(event) => setAdapter(event.target.value)}>
                  <option value="">Default (the built-in CA)</option>
                  {enabledAdapters.map((a) => (
                    <option key={a.id} value={a.name}>
                      {a.name} ({a.kind})
                    </option>
                  ))}
                </select>
              )}
            </Field>
          ) : (
            <p className="muted">Issued by the default CA.</p>
          )}
        </div>

        <PrivateKeyFields
          mode={keyMode}
          onMode={setKeyMode}
          csr={csr}
          onCsr={setCsr}
          keyType={keyType}
          onKeyType={setKeyType}
          rules={rules}
          error={fieldErrors.key}
        />

        {can.createManaged ? (
          <fieldset className="form-stack">
            <legend>Renewal</legend>
            <label className="choice">
              <input type="checkbox" checked={managed} onChange={(event) => setManaged(event.target.checked)} />
              Keep it renewed: a managed certificate, issued now and renewed before it ends
            </label>
            {managed ? (
              <div className="form-row">
                <Field label="Name" error={fieldErrors.name} hint="Unique within the owner, e.g. shop-www.">
                  {(control) => (
                    <input
                      {...control}
                      required
                      autoComplete="off"
                      spellCheck={false}
                      value={managedName}
                      onChange={(event) => setManagedName(event.target.value)}
                    />
                  )}
                </Field>
                <Field label="Renew before" error={fieldErrors.renew_before} hint="e.g. 30d, 12h or 33%; default: at 2/3 of the lifetime.">
                  {(control) => (
                    <input {...control} autoComplete="off" spellCheck={false} value={renewBefore} onChange={(event) => setRenewBefore(event.target.value)} />
                  )}
                </Field>
              </div>
            ) : null}
          </fieldset>
        ) : null}

        {problem ? <ProblemMessage error={problem} context={managed ? 'The managed certificate was refused' : 'The request was refused'} /> : null}

        <div className="row">
          <button type="submit" className="primary" disabled={sending.isPending || !owner || (managed && !managedName.trim())}>
            {managed ? (sending.isPending ? 'Creating…' : 'Create managed certificate') : sending.isPending ? 'Requesting…' : 'Request certificate'}
          </button>
          {rules?.require_approval ? (
            <span className="muted">A security reviewer must approve it before it is issued.</span>
          ) : null}
        </div>
      </form>

      <aside className="panel policy-hints" aria-labelledby="request-policy-title">
        <h2 id="request-policy-title">{owner ? `Policy of ${ownerLabel}` : 'Policy'}</h2>
        {!owner ? <p className="muted">Choose an owner to see what its policy allows.</p> : null}
        {owner && policy.isPending ? <Loading what="the policy" /> : null}
        {policy.error ? <ProblemMessage error={policy.error} context="Loading the policy" /> : null}
        {policy.data ? (
          <>
            <PolicySummary view={policy.data} />
            <p className="hint-text">Name patterns: {NAME_RULES}</p>
          </>
        ) : null}
      </aside>
    </div>
  );
}

/** The caller's latest requests, so that one sent earlier can be found again. */
function RecentRequests() {
  const requests = useQuery({
    queryKey: ['requests', { limit: 10 }],
    queryFn: () => unwrap(api.GET('/api/v1/requests', { params: { query: { limit: 10 } } })),
  });
  if (requests.isPending) return <Loading what="recent requests" />;
  if (requests.error) return <ProblemMessage error={requests.error} context="Loading recent requests" />;
  const items = requests.data.items.filter((request) => request.kind !== 'revoke');
  if (items.length === 0) return <Empty>No requests yet.</Empty>;
  return (
    <TableScroll label="Recent requests, table">
      <table>
        <caption className="visually-hidden">Recent requests</caption>
        <thead>
          <tr>
            <th scope="col">Requested</th>
            <th scope="col">Names</th>
            <th scope="col">Kind</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {items.map((request) => (
            <tr key={request.id}>
              <td>
                <Link to={`/request?id=${encodeURIComponent(request.id)}`}>{formatDateTime(request.created_at)}</Link>
              </td>
              <td>{requestNames(request).join(', ') || '—'}</td>
              <td>{request.kind}</td>
              <td>
                <RequestStateBadge state={request.state} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}

/** How often to look again: quickly while the CA works, slowly while a person decides. */
export function pollInterval(state: string | undefined): number | false {
  if (!state) return 1000;
  if (FINAL_STATES.has(state)) return false;
  return state === 'awaiting_approval' ? 5000 : 1000;
}

function RequestStatus({ id }: { id: string }) {
  const request = useQuery({
    queryKey: ['request', id],
    queryFn: () => unwrap(api.GET('/api/v1/requests/{id}', { params: { path: { id } } })),
    refetchInterval: (query) => (query.state.error ? false : pollInterval(query.state.data?.state)),
  });
  const ownerNames = useOwnerNames();

  if (request.isPending) return <Loading what="the request" />;
  if (request.error) return <ProblemMessage error={request.error} context="Loading the request" />;
  const r: IssuanceRequest = request.data;
  const spec = r.spec;
  const settled = FINAL_STATES.has(r.state);

  return (
    <>
      <div className="panel request-state">
        <p role="status" aria-live="polite" className="state-line">
          State: <RequestStateBadge state={r.state} />{' '}
          {r.state === 'awaiting_approval'
            ? 'A security reviewer must approve it. This page follows it.'
            : settled
              ? null
              : 'The CA is working on it…'}
        </p>
        {r.state === 'issued' && r.certificate_id ? (
          <p>
            <Link className="button primary" to={`/certificates/${encodeURIComponent(r.certificate_id)}`}>
              Open the issued certificate
            </Link>
          </p>
        ) : null}
        {r.state === 'failed' ? (
          <p className="problem" role="alert">
            The request failed: {r.last_error ?? 'no reason was given'}
          </p>
        ) : null}
        {r.state === 'rejected' ? (
          <p className="problem" role="alert">
            Rejected by <span className="mono">{r.decided_by ?? 'a reviewer'}</span>
            {r.decision_comment ? `: ${r.decision_comment}` : '.'}
          </p>
        ) : null}
        {!settled && r.last_error ? (
          <p className="notice">
            The last attempt failed and will be retried{r.next_attempt_at ? ` at ${formatDateTime(r.next_attempt_at)}` : ''}:{' '}
            {r.last_error}
          </p>
        ) : null}
      </div>

      <Section id="request-facts" title="What was asked">
        <dl className="facts">
          <dt>Owner</dt>
          <dd>{ownerName(ownerNames, r.owner_id)}</dd>
          <dt>Names</dt>
          <dd>{requestNames(r).join(', ') || '—'}</dd>
          {spec.common_name ? (
            <>
              <dt>Common name</dt>
              <dd>{spec.common_name}</dd>
            </>
          ) : null}
          <dt>Validity</dt>
          <dd>{spec.validity_days ? `${spec.validity_days} days` : '—'}</dd>
          <dt>Key</dt>
          <dd>{requestKey(r)}</dd>
          <dt>Requested by</dt>
          <dd className="mono">{r.requested_by}</dd>
          <dt>Requested</dt>
          <dd>{formatDateTime(r.created_at)}</dd>
          <dt>Last change</dt>
          <dd>{formatDateTime(r.updated_at)}</dd>
          {r.decided_by ? (
            <>
              <dt>Decided by</dt>
              <dd>
                <span className="mono">{r.decided_by}</span>
                {r.decision_comment ? ` (“${r.decision_comment}”)` : ''}
              </dd>
            </>
          ) : null}
          <dt>Request id</dt>
          <dd className="mono">{r.id}</dd>
        </dl>
      </Section>
      <p>
        <Link to="/request">Request another certificate</Link>
      </p>
    </>
  );
}

export default function RequestPage() {
  const [search] = useSearchParams();
  const id = search.get('id');
  const from = search.get('from');
  usePageTitle(id ? 'Request' : 'Request a certificate');

  if (id) {
    return (
      <>
        <p>
          <Link to="/request">Request</Link> ›
        </p>
        <h1>Certificate request</h1>
        <RequestStatus key={id} id={id} />
      </>
    );
  }
  return (
    <>
      <h1>Request a certificate</h1>
      <RequestForm key={from ?? ''} from={from} />
      <Section id="request-recent" title="Recent requests">
        <RecentRequests />
      </Section>
    </>
  );
}
