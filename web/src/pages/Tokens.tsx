// API tokens (admin): the list (never a secret), a form to create one with a role, owners and
// an expiry, the new token shown once with a copy button, and revocation after a confirmation.
import { useId, useRef, useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import type { components } from '../api/schema';
import { useCan } from '../auth/session';
import { Dialog } from '../components/Dialog';
import { DialogForm } from '../components/DialogForm';
import { FormButtons } from '../components/FormButtons';
import { ProblemMessage } from '../components/ProblemMessage';
import { Section } from '../components/Section';
import { TableScroll } from '../components/TableScroll';
import { Empty, Loading } from '../components/States';
import { formatDate, formatDateTime } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { Field } from './parts/Field';
import { ownerName, useOwnerNames } from './parts/owners';
import '../styles-pages.css';

type ApiToken = components['schemas']['ApiToken'];
type TokenCreated = components['schemas']['TokenCreated'];
type Role = components['schemas']['Role'];

// Agents authenticate with their client certificate, never a token (the server refuses one).
const TOKEN_ROLES: readonly { value: Role; label: string; hint: string }[] = [
  { value: 'developer', label: 'Developer', hint: "Its owners' certificates, requests and managed certificates." },
  { value: 'security', label: 'Security', hint: 'Every certificate, owners, policies, approvals, revocation, the audit log.' },
  { value: 'admin', label: 'Administrator', hint: 'Everything.' },
];

function tokenState(token: ApiToken, now = Date.now()): { label: string; tone: string } {
  if (token.revoked_at) return { label: 'Revoked', tone: 'bad' };
  if (token.expires_at && new Date(token.expires_at).getTime() <= now) return { label: 'Expired', tone: 'bad' };
  return { label: 'Active', tone: 'ok' };
}

function CreateTokenForm({ onCreated, onCancel }: { onCreated: (created: TokenCreated) => void; onCancel: () => void }) {
  const queryClient = useQueryClient();
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('developer');
  const [owners, setOwners] = useState<string[]>([]);
  const [expiresInDays, setExpiresInDays] = useState('90');
  const ownerList = useQuery({ queryKey: ['owners'], queryFn: () => unwrap(api.GET('/api/v1/owners')) });

  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST('/api/v1/tokens', {
          body: {
            name: name.trim(),
            role,
            owners: role === 'developer' ? owners : [],
            ...(expiresInDays.trim() ? { expires_in_days: Number(expiresInDays) } : {}),
          },
        }),
      ),
    onSuccess: (created) => {
      void queryClient.invalidateQueries({ queryKey: ['tokens'] });
      onCreated(created);
    },
    // The secret is in the answer: the mutation cache must not keep it once shown.
    gcTime: 0,
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate();
  }

  const roleHint = TOKEN_ROLES.find((r) => r.value === role)?.hint;
  const needsOwners = role === 'developer' && owners.length === 0;

  return (
    <form className="form-stack" onSubmit={submit}>
      <div className="form-row">
        <Field label="Name" hint="Who or what uses it, e.g. ci-shop or alice.">
          {(control) => (
            <input {...control} required autoComplete="off" value={name} onChange={(event) => setName(event.target.value)} />
          )}
        </Field>
        <Field label="Role" hint={roleHint}>
          {(control) => (
            <select {...control} value={role} onChange={(event) => setRole(event.target.value as Role)}>
              {TOKEN_ROLES.map((r) => (
                <option key={r.value} value={r.value}>
                  {r.label}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Expires in (days)" hint="1 to 36500; empty: never expires.">
          {(control) => (
            <input
              {...control}
              type="number"
              min={1}
              max={36500}
              inputMode="numeric"
              value={expiresInDays}
              onChange={(event) => setExpiresInDays(event.target.value)}
            />
          )}
        </Field>
      </div>
      {role === 'developer' ? (
        <fieldset>
          <legend>Owners it acts for</legend>
          {ownerList.isPending ? <Loading what="owners" /> : null}
          {ownerList.error ? <ProblemMessage error={ownerList.error} context="Loading owners" /> : null}
          {ownerList.data && ownerList.data.length === 0 ? <Empty>Add an owner first: a developer token needs one.</Empty> : null}
          <div className="owner-checks">
            {(ownerList.data ?? []).map((owner) => (
              <label key={owner.id} className="choice">
                <input
                  type="checkbox"
                  checked={owners.includes(owner.id)}
                  onChange={(event) =>
                    setOwners((current) =>
                      event.target.checked ? [...current, owner.id] : current.filter((id) => id !== owner.id),
                    )
                  }
                />
                {owner.name}
              </label>
            ))}
          </div>
          {needsOwners ? <p className="hint-text">A developer token needs at least one owner.</p> : null}
        </fieldset>
      ) : null}
      <FormButtons
        submitLabel="Create token"
        busyLabel="Creating…"
        busy={create.isPending}
        disabled={!name.trim() || needsOwners}
        onCancel={onCancel}
        error={create.error}
        errorContext="The token was not created"
      />
    </form>
  );
}

/** The new token, shown once: copy it now or never. Closing the dialog forgets it. */
function TokenReveal({ created, onClose }: { created: TokenCreated; onClose: () => void }) {
  const inputId = useId();
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<'yes' | 'select' | null>(null);

  async function copy() {
    try {
      await navigator.clipboard.writeText(created.token);
      setCopied('yes');
    } catch {
      // No clipboard (an insecure context, or refused): select it for Ctrl+C.
      input.current?.select();
      setCopied('select');
    }
  }

  return (
    <div className="form-stack">
      <p className="warning">Copy this token now. You will not see it again: CMP keeps only its hash.</p>
      <div className="field">
        <label htmlFor={inputId}>API token for {created.name}</label>
        <div className="secret-box">
          <input
            id={inputId}
            ref={input}
            readOnly
            value={created.token}
            spellCheck={false}
            autoComplete="off"
            onFocus={(event) => event.target.select()}
          />
          <button type="button" onClick={() => void copy()}>
            Copy
          </button>
        </div>
      </div>
      <p role="status" className="muted">
        {copied === 'yes' ? 'Copied to the clipboard.' : copied === 'select' ? 'Selected: press Ctrl+C (⌘C) to copy it.' : ''}
      </p>
      <p className="muted">
        Use it as <code>Authorization: Bearer &lt;token&gt;</code>, or with <code>cmpctl login --with-token</code>.
      </p>
      <div className="dialog-buttons">
        <button type="button" className="primary" onClick={onClose}>
          I have copied it
        </button>
      </div>
    </div>
  );
}

function RevokeForm({ token, onDone }: { token: ApiToken; onDone: () => void }) {
  const queryClient = useQueryClient();
  const revoke = useMutation({
    mutationFn: () => unwrap(api.DELETE('/api/v1/tokens/{id}', { params: { path: { id: token.id } } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['tokens'] });
      onDone();
    },
  });
  return (
    <DialogForm
      onSubmit={() => revoke.mutate()}
      onCancel={onDone}
      submitLabel="Revoke token"
      busyLabel="Revoking…"
      busy={revoke.isPending}
      tone="danger"
      error={revoke.error}
      errorContext="Revoking"
    >
      <p>
        Revoke <strong>{token.name}</strong> ({token.role})? Every script or person using it is refused from now on. This
        cannot be undone.
      </p>
    </DialogForm>
  );
}

export default function TokensPage() {
  usePageTitle('API tokens');
  const can = useCan();
  const [adding, setAdding] = useState(false);
  const [created, setCreated] = useState<TokenCreated | null>(null);
  const [revoking, setRevoking] = useState<ApiToken | null>(null);
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: () => unwrap(api.GET('/api/v1/tokens')) });
  const ownerNames = useOwnerNames();

  // Revoked tokens stay only for the record, so they go last; newest first within each group.
  const list = [...(tokens.data ?? [])].sort((a, b) => {
    const active = Number(Boolean(a.revoked_at)) - Number(Boolean(b.revoked_at));
    return active !== 0 ? active : b.created_at.localeCompare(a.created_at);
  });

  return (
    <>
      <div className="page-header">
        <h1>API tokens</h1>
        {can.manageTokens && !adding ? (
          <button type="button" className="primary" onClick={() => setAdding(true)}>
            Create token
          </button>
        ) : null}
      </div>
      <p className="muted">For scripts, CI and the command line. Secrets are never listed: only the name, role and dates.</p>
      {adding ? (
        <Section id="token-add" title="Create a token">
          <CreateTokenForm
            onCreated={(token) => {
              setAdding(false);
              setCreated(token);
            }}
            onCancel={() => setAdding(false)}
          />
        </Section>
      ) : null}

      {tokens.isPending ? <Loading what="tokens" /> : null}
      {tokens.error ? <ProblemMessage error={tokens.error} context="Loading tokens" /> : null}
      {tokens.data && list.length === 0 ? <Empty>No tokens yet.</Empty> : null}
      {list.length > 0 ? (
        <TableScroll label="API tokens, table" className="panel">
          <table>
            <caption className="visually-hidden">API tokens</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Owners</th>
                <th scope="col">State</th>
                <th scope="col">Expires</th>
                <th scope="col">Created</th>
                <th scope="col">Created by</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((token) => {
                const state = tokenState(token);
                return (
                  <tr key={token.id}>
                    <td>
                      {token.name} <span className="muted mono">token:{token.id}</span>
                    </td>
                    <td>{token.role}</td>
                    <td>{token.owners.length > 0 ? token.owners.map((id) => ownerName(ownerNames, id)).join(', ') : '—'}</td>
                    <td>
                      <span className={`badge ${state.tone}`}>{state.label}</span>
                      {token.revoked_at ? <span className="muted"> {formatDateTime(token.revoked_at)}</span> : null}
                    </td>
                    <td>{token.expires_at ? formatDate(token.expires_at) : 'never'}</td>
                    <td>{formatDate(token.created_at)}</td>
                    <td className="mono">{token.created_by}</td>
                    <td className="actions-cell">
                      {can.manageTokens && state.label === 'Active' ? (
                        <button
                          type="button"
                          className="danger"
                          aria-label={`Revoke ${token.name}`}
                          onClick={() => setRevoking(token)}
                        >
                          Revoke…
                        </button>
                      ) : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </TableScroll>
      ) : null}

      <Dialog open={created !== null} onClose={() => setCreated(null)} title="Your new token">
        {created ? <TokenReveal created={created} onClose={() => setCreated(null)} /> : null}
      </Dialog>
      <Dialog open={revoking !== null} onClose={() => setRevoking(null)} title="Revoke token">
        {revoking ? <RevokeForm token={revoking} onDone={() => setRevoking(null)} /> : null}
      </Dialog>
    </>
  );
}
