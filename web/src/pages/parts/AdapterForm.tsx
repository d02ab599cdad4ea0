// Adds a CA adapter (POST /api/v1/adapters): another builtin CA, a Vault PKI role, or an ACME
// CA. Only the fields of the chosen kind are shown; empty ones are left out so that the
// server's defaults apply. Credentials go to the server's secret store and never come back.
import { useState, type FormEvent } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client';
import type { components } from '../../api/schema';
import { FormButtons } from '../../components/FormButtons';
import { Field } from './Field';

type Adapter = components['schemas']['Adapter'];
type Kind = 'builtin' | 'vault_pki' | 'acme';

const BUILTIN_ALGORITHMS = [
  { value: 'ecdsa_p256', label: 'ECDSA P-256' },
  { value: 'ecdsa_p384', label: 'ECDSA P-384' },
  { value: 'rsa2048', label: 'RSA 2048' },
  { value: 'rsa3072', label: 'RSA 3072' },
  { value: 'rsa4096', label: 'RSA 4096' },
];

const DEFAULT_SOLVERS = '[{"challenge": "http-01"}]';

type Values = Record<string, string>;

/** The `config` of the new adapter from the form's values; empty values are left out. */
function adapterConfig(kind: Kind, v: Values, flags: { sendNotAfter: boolean; vaultAuth: 'token' | 'approle' }): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  const put = (key: string, value: string | undefined, number = false) => {
    const text = value?.trim();
    if (text) config[key] = number ? Number(text) : text;
  };
  if (kind === 'builtin') {
    put('key_algorithm', v.key_algorithm);
    put('common_name', v.common_name);
    put('root_validity_days', v.root_validity_days, true);
    put('issuing_validity_days', v.issuing_validity_days, true);
  } else if (kind === 'vault_pki') {
    put('address', v.address);
    put('mount', v.mount);
    put('role', v.role);
    put('namespace', v.namespace);
    put('ca_bundle', v.ca_bundle);
    config.auth =
      flags.vaultAuth === 'token'
        ? { method: 'token', token: v.token ?? '' }
        : {
            method: 'approle',
            role_id: v.role_id ?? '',
            secret_id: v.secret_id ?? '',
            ...(v.approle_mount?.trim() ? { mount: v.approle_mount.trim() } : {}),
          };
  } else {
    put('directory_url', v.directory_url);
    put('contact_email', v.contact_email);
    put('ca_bundle', v.ca_bundle);
    put('profile', v.profile);
    put('order_timeout_secs', v.order_timeout_secs, true);
    config.send_not_after = flags.sendNotAfter;
    if (v.eab_key_id?.trim() || v.eab_hmac_key?.trim()) {
      config.eab = { key_id: v.eab_key_id?.trim() ?? '', hmac_key: v.eab_hmac_key?.trim() ?? '' };
    }
    const solvers = v.solvers?.trim();
    if (solvers) config.solvers = JSON.parse(solvers) as unknown;
  }
  return config;
}

export function AdapterForm({ onDone }: { onDone: (created: Adapter | null) => void }) {
  const queryClient = useQueryClient();
  const [kind, setKind] = useState<Kind>('builtin');
  const [name, setName] = useState('');
  const [values, setValues] = useState<Values>({ mount: 'pki', solvers: DEFAULT_SOLVERS });
  const [vaultAuth, setVaultAuth] = useState<'token' | 'approle'>('token');
  const [sendNotAfter, setSendNotAfter] = useState(true);
  const [solversError, setSolversError] = useState<string | null>(null);

  const create = useMutation({
    mutationFn: (config: Record<string, unknown>) =>
      unwrap(api.POST('/api/v1/adapters', { body: { name: name.trim(), kind, config } })),
    onSuccess: (adapter) => {
      void queryClient.invalidateQueries({ queryKey: ['adapters'] });
      onDone(adapter);
    },
  });

  function set(key: string) {
    return (event: { target: { value: string } }) => setValues((current) => ({ ...current, [key]: event.target.value }));
  }

  function text(key: string, label: string, hint?: string, options: { type?: string; required?: boolean } = {}) {
    return (
      <Field label={label} hint={hint}>
        {(control) => (
          <input
            {...control}
            type={options.type ?? 'text'}
            required={options.required}
            autoComplete="off"
            spellCheck={false}
            value={values[key] ?? ''}
            onChange={set(key)}
          />
        )}
      </Field>
    );
  }

  function pem(key: string, label: string, hint: string) {
    return (
      <Field label={label} hint={hint}>
        {(control) => (
          <textarea {...control} className="mono" rows={3} spellCheck={false} value={values[key] ?? ''} onChange={set(key)} />
        )}
      </Field>
    );
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    setSolversError(null);
    let config: Record<string, unknown>;
    try {
      config = adapterConfig(kind, values, { sendNotAfter, vaultAuth });
    } catch (error) {
      setSolversError(`Not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    create.mutate(config);
  }

  return (
    <form className="form-stack" onSubmit={submit}>
      <div className="form-row">
        <Field label="Name" hint="How requests name it, e.g. vault-web or letsencrypt.">
          {(control) => (
            <input {...control} required autoComplete="off" value={name} onChange={(event) => setName(event.target.value)} />
          )}
        </Field>
        <Field label="Kind">
          {(control) => (
            <select {...control} value={kind} onChange={(event) => setKind(event.target.value as Kind)}>
              <option value="builtin">Built-in CA</option>
              <option value="vault_pki">Vault PKI</option>
              <option value="acme">ACME</option>
            </select>
          )}
        </Field>
      </div>

      {kind === 'builtin' ? (
        <fieldset className="form-row">
          <legend>Built-in CA</legend>
          <Field label="Key algorithm">
            {(control) => (
              <select {...control} value={values.key_algorithm ?? ''} onChange={set('key_algorithm')}>
                <option value="">Server default</option>
                {BUILTIN_ALGORITHMS.map((algorithm) => (
                  <option key={algorithm.value} value={algorithm.value}>
                    {algorithm.label}
                  </option>
                ))}
              </select>
            )}
          </Field>
          {text('common_name', 'Common name of the CA', 'Optional.')}
          {text('root_validity_days', 'Root validity (days)', 'Optional.', { type: 'number' })}
          {text('issuing_validity_days', 'Issuing CA validity (days)', 'Optional.', { type: 'number' })}
        </fieldset>
      ) : null}

      {kind === 'vault_pki' ? (
        <fieldset className="form-stack">
          <legend>Vault PKI</legend>
          <div className="form-row">
            {text('address', 'Vault address', 'e.g. https://vault:8200', { type: 'url', required: true })}
            {text('mount', 'PKI mount', 'Default pki.')}
            {text('role', 'PKI role', 'The role CMP signs with.', { required: true })}
            {text('namespace', 'Namespace', 'Optional (Vault Enterprise, OpenBao).')}
          </div>
          {pem('ca_bundle', "Vault's CA bundle (PEM)", 'Optional: to trust a Vault whose certificate is not publicly trusted.')}
          <fieldset>
            <legend>Credentials</legend>
            <div className="choice-row">
              <label className="choice">
                <input type="radio" name="vault-auth" checked={vaultAuth === 'token'} onChange={() => setVaultAuth('token')} />
                Token
              </label>
              <label className="choice">
                <input type="radio" name="vault-auth" checked={vaultAuth === 'approle'} onChange={() => setVaultAuth('approle')} />
                AppRole
              </label>
            </div>
            <div className="form-row">
              {vaultAuth === 'token' ? (
                text('token', 'Vault token', 'Kept in the secret store, never shown again.', { type: 'password', required: true })
              ) : (
                <>
                  {text('role_id', 'Role id', undefined, { required: true })}
                  {text('secret_id', 'Secret id', 'Kept in the secret store, never shown again.', { type: 'password', required: true })}
                  {text('approle_mount', 'AppRole mount', 'Default approle.')}
                </>
              )}
            </div>
          </fieldset>
          <p className="hint-text">Vault is checked first: nothing is saved when it is down, sealed, or refuses the credentials.</p>
        </fieldset>
      ) : null}

      {kind === 'acme' ? (
        <fieldset className="form-stack">
          <legend>ACME</legend>
          <div className="form-row">
            {text('directory_url', 'Directory URL', 'e.g. https://acme-v02.api.letsencrypt.org/directory', { type: 'url', required: true })}
            {text('contact_email', 'Contact email', 'Registered on the account.', { type: 'email' })}
            {text('profile', 'Profile', "Optional: the CA's certificate profile.")}
            {text('order_timeout_secs', 'Order timeout (seconds)', 'Default 90.', { type: 'number' })}
          </div>
          <label className="choice">
            <input type="checkbox" checked={sendNotAfter} onChange={(event) => setSendNotAfter(event.target.checked)} />
            Ask for the requested lifetime (notAfter) in each order
          </label>
          {pem('ca_bundle', 'CA bundle for the directory (PEM)', 'Optional: for an internal ACME CA.')}
          <fieldset className="form-row">
            <legend>External account binding (optional)</legend>
            {text('eab_key_id', 'EAB key id')}
            {text('eab_hmac_key', 'EAB HMAC key', 'Kept in the secret store.', { type: 'password' })}
          </fieldset>
          <Field
            label="Solvers (JSON)"
            error={solversError}
            hint="Which challenge proves which names; the first whose names admit a name wins. See docs/ACME.md."
          >
            {(control) => (
              <textarea {...control} className="mono" rows={5} spellCheck={false} value={values.solvers ?? ''} onChange={set('solvers')} />
            )}
          </Field>
          <p className="hint-text">The account is registered at the CA first: nothing is saved when it refuses.</p>
        </fieldset>
      ) : null}

      <FormButtons
        submitLabel="Add adapter"
        busyLabel="Adding…"
        busy={create.isPending}
        disabled={!name.trim()}
        onCancel={() => onDone(null)}
        error={create.error}
        errorContext="The adapter was not added"
      />
    </form>
  );
}
