// Edits an owner's policy (PUT /api/v1/owners/{id}/policy): allowed name patterns, key types
// with their minimum sizes, the longest lifetime, and whether each request needs approval.
import { useId, useState, type FormEvent } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client';
import type { components } from '../../api/schema';
import { FormButtons } from '../../components/FormButtons';
import { Field, splitList } from './Field';
import { NAME_RULES, type KeyRule } from './policy';

type PolicyView = components['schemas']['PolicyView'];

const KEY_TYPES: readonly { value: KeyRule['type']; label: string }[] = [
  { value: 'rsa', label: 'RSA' },
  { value: 'ec', label: 'EC' },
  { value: 'ed25519', label: 'Ed25519' },
  { value: 'ed448', label: 'Ed448' },
];

interface KeyRow {
  type: KeyRule['type'];
  minBits: string;
}

function KeyRuleRow({
  row,
  index,
  onChange,
  onRemove,
}: {
  row: KeyRow;
  index: number;
  onChange: (change: Partial<KeyRow>) => void;
  onRemove: () => void;
}) {
  const id = useId();
  return (
    <>
      <div className="field">
        <label htmlFor={`${id}-type`}>Key {index + 1} type</label>
        <select id={`${id}-type`} value={row.type} onChange={(event) => onChange({ type: event.target.value as KeyRule['type'] })}>
          {KEY_TYPES.map((type) => (
            <option key={type.value} value={type.value}>
              {type.label}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${id}-bits`}>Key {index + 1} minimum bits</label>
        <input
          id={`${id}-bits`}
          type="number"
          min={1}
          inputMode="numeric"
          value={row.minBits}
          disabled={row.type === 'ed25519' || row.type === 'ed448'}
          onChange={(event) => onChange({ minBits: event.target.value })}
        />
      </div>
      <button type="button" onClick={onRemove} aria-label={`Remove key rule ${index + 1}`}>
        Remove
      </button>
    </>
  );
}

export function PolicyEditor({ view, ownerName, onDone }: { view: PolicyView; ownerName: string; onDone: () => void }) {
  const queryClient = useQueryClient();
  const { policy } = view;
  const [names, setNames] = useState((policy.allowed_names ?? []).join('\n'));
  const [keys, setKeys] = useState<KeyRow[]>(
    (policy.allowed_keys ?? []).map((rule) => ({ type: rule.type, minBits: rule.min_bits ? String(rule.min_bits) : '' })),
  );
  const [maxDays, setMaxDays] = useState(policy.max_validity_days ? String(policy.max_validity_days) : '');
  const [approval, setApproval] = useState(Boolean(policy.require_approval));
  const approvalId = useId();

  const save = useMutation({
    mutationFn: () =>
      unwrap(
        api.PUT('/api/v1/owners/{id}/policy', {
          params: { path: { id: view.owner_id } },
          body: {
            allowed_names: splitList(names),
            allowed_keys: keys.map((row) => ({
              type: row.type,
              ...(row.minBits.trim() && row.type !== 'ed25519' && row.type !== 'ed448' ? { min_bits: Number(row.minBits) } : {}),
            })),
            ...(maxDays.trim() ? { max_validity_days: Number(maxDays) } : {}),
            require_approval: approval,
          },
        }),
      ),
    onSuccess: (saved) => {
      queryClient.setQueryData(['owner', view.owner_id, 'policy'], saved);
      onDone();
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    save.mutate();
  }

  return (
    <form className="form-stack" onSubmit={submit} aria-label={`Policy of ${ownerName}`}>
      <Field label="Allowed names" hint={<>One pattern per line; empty allows every name. {NAME_RULES}</>}>
        {(control) => (
          <textarea {...control} rows={4} spellCheck={false} value={names} onChange={(event) => setNames(event.target.value)} />
        )}
      </Field>
      <fieldset>
        <legend>Allowed keys</legend>
        {keys.length === 0 ? <p className="muted">None listed: RSA of 2048 bits or more, EC of 256 bits or more, and Ed25519.</p> : null}
        <div className="key-rules">
          {keys.map((row, index) => (
            <KeyRuleRow
              key={index}
              row={row}
              index={index}
              onChange={(change) => setKeys((rows) => rows.map((r, i) => (i === index ? { ...r, ...change } : r)))}
              onRemove={() => setKeys((rows) => rows.filter((_, i) => i !== index))}
            />
          ))}
        </div>
        <p>
          <button type="button" onClick={() => setKeys((rows) => [...rows, { type: 'ec', minBits: '256' }])}>
            Add key rule
          </button>
        </p>
      </fieldset>
      <Field label="Longest lifetime (days)" hint="Requests for longer are refused.">
        {(control) => (
          <input {...control} type="number" min={1} inputMode="numeric" value={maxDays} onChange={(event) => setMaxDays(event.target.value)} />
        )}
      </Field>
      <div className="row">
        <input id={approvalId} type="checkbox" checked={approval} onChange={(event) => setApproval(event.target.checked)} />
        <label htmlFor={approvalId}>Each request needs a security reviewer's approval</label>
      </div>
      <FormButtons
        submitLabel="Save policy"
        busyLabel="Saving…"
        busy={save.isPending}
        onCancel={onDone}
        error={save.error}
        errorContext="The policy was not saved"
      />
    </form>
  );
}
