// Defines a network scan (POST /api/v1/scans): what to reach, which names to send, who owns
// what it finds, and when it runs. Limits left empty take the server's defaults; every
// refused entry comes back as a 422 item naming it (`spec/targets/3`), shown under the form.
import { useState, type FormEvent } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client';
import type { components } from '../../api/schema';
import { FormButtons } from '../../components/FormButtons';
import { Field, splitList } from './Field';
import { OwnerSelect, useOwnerChoices } from './OwnerSelect';
import type { Scan } from './scans';

type ScanCreate = components['schemas']['ScanCreate'];
type Schedule = 'manual' | 'interval' | 'cron';

export interface ScanFormValues {
  name: string;
  targets: string;
  ports: string;
  sniNames: string;
  sniReverseDns: boolean;
  sniNone: boolean;
  probeLegacyTls: boolean;
  owner: string;
  schedule: Schedule;
  intervalMinutes: string;
  cron: string;
  concurrency: string;
  budgetSecs: string;
}

const INITIAL: ScanFormValues = {
  name: '',
  targets: '',
  ports: '443',
  sniNames: '',
  sniReverseDns: false,
  sniNone: true,
  probeLegacyTls: false,
  owner: '',
  schedule: 'manual',
  intervalMinutes: '1440',
  cron: '0 3 * * *',
  concurrency: '',
  budgetSecs: '',
};

/** The request body of the form's values: lists split, empty limits left to the server. */
export function scanCreateBody(v: ScanFormValues): ScanCreate {
  const number = (text: string) => (text.trim() ? Number(text.trim()) : undefined);
  const spec: ScanCreate['spec'] = {
    targets: splitList(v.targets),
    ports: v.ports.trim() || undefined,
    sni_names: splitList(v.sniNames),
    sni_reverse_dns: v.sniReverseDns,
    sni_none: v.sniNone,
    probe_legacy_tls: v.probeLegacyTls,
    concurrency: number(v.concurrency),
    budget_secs: number(v.budgetSecs),
  };
  return {
    name: v.name.trim(),
    spec,
    owner: v.owner || null,
    interval_secs: v.schedule === 'interval' ? Math.round(Number(v.intervalMinutes) * 60) : null,
    cron: v.schedule === 'cron' ? v.cron.trim() : null,
  };
}

export function ScanForm({ onDone }: { onDone: (created: Scan | null) => void }) {
  const queryClient = useQueryClient();
  const owners = useOwnerChoices();
  const [values, setValues] = useState<ScanFormValues>(INITIAL);
  const create = useMutation({
    mutationFn: (body: ScanCreate) => unwrap(api.POST('/api/v1/scans', { body })),
    onSuccess: (scan) => {
      void queryClient.invalidateQueries({ queryKey: ['scans'] });
      onDone(scan);
    },
  });

  function set<K extends keyof ScanFormValues>(key: K, value: ScanFormValues[K]) {
    setValues((current) => ({ ...current, [key]: value }));
  }
  const text = (key: 'name' | 'ports' | 'intervalMinutes' | 'cron' | 'concurrency' | 'budgetSecs') => ({
    value: values[key],
    onChange: (event: { target: { value: string } }) => set(key, event.target.value),
  });
  const check = (key: 'sniReverseDns' | 'sniNone' | 'probeLegacyTls') => ({
    checked: values[key],
    onChange: (event: { target: { checked: boolean } }) => set(key, event.target.checked),
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate(scanCreateBody(values));
  }

  return (
    <form className="form-stack" onSubmit={submit}>
      <div className="form-row">
        <Field label="Name" hint="Letters, digits, - _ or . e.g. dmz-weekly.">
          {(control) => <input {...control} required autoComplete="off" {...text('name')} />}
        </Field>
        <Field label="Owner of what it finds" hint="Certificates new to the inventory get this owner.">
          {(control) => (
            <OwnerSelect control={control} owners={owners} value={values.owner} onChange={(name) => set('owner', name)} none="No owner" />
          )}
        </Field>
      </div>
      <Field
        label="Targets"
        hint="Host names, IP addresses and CIDR ranges, one per line or separated by commas; only inside the ranges the administrator allowed."
      >
        {(control) => (
          <textarea
            {...control}
            className="mono"
            rows={3}
            required
            spellCheck={false}
            value={values.targets}
            onChange={(event) => set('targets', event.target.value)}
          />
        )}
      </Field>
      <div className="form-row">
        <Field label="Ports" hint="e.g. 443,8443-8445,2525/smtp (25, 587, 143 and 110 speak STARTTLS).">
          {(control) => <input {...control} className="mono" spellCheck={false} {...text('ports')} />}
        </Field>
        <Field label="SNI names" hint="Sent to every address, besides host names' own.">
          {(control) => (
            <input
              {...control}
              spellCheck={false}
              value={values.sniNames}
              onChange={(event) => set('sniNames', event.target.value)}
            />
          )}
        </Field>
      </div>
      <div className="choice-row">
        <label className="choice">
          <input type="checkbox" {...check('sniNone')} />
          Also try without SNI
        </label>
        <label className="choice">
          <input type="checkbox" {...check('sniReverseDns')} />
          Also try the reverse DNS name
        </label>
        <label className="choice">
          <input type="checkbox" {...check('probeLegacyTls')} />
          Probe for TLS 1.0 and 1.1
        </label>
      </div>
      <fieldset className="form-row">
        <legend>Schedule</legend>
        <Field label="Runs">
          {(control) => (
            <select {...control} value={values.schedule} onChange={(event) => set('schedule', event.target.value as Schedule)}>
              <option value="manual">By hand only</option>
              <option value="interval">Every few minutes</option>
              <option value="cron">On a cron schedule</option>
            </select>
          )}
        </Field>
        {values.schedule === 'interval' ? (
          <Field label="Every (minutes)" hint="1 or more; 1440 is daily.">
            {(control) => <input {...control} type="number" min={1} required {...text('intervalMinutes')} />}
          </Field>
        ) : null}
        {values.schedule === 'cron' ? (
          <Field label="Cron (UTC)" hint="minute hour day-of-month month day-of-week">
            {(control) => <input {...control} className="mono" required spellCheck={false} {...text('cron')} />}
          </Field>
        ) : null}
      </fieldset>
      <details>
        <summary>Limits</summary>
        <div className="form-row">
          <Field label="Endpoints at once" hint="1-4096; default 256.">
            {(control) => <input {...control} type="number" min={1} max={4096} {...text('concurrency')} />}
          </Field>
          <Field label="Time budget (seconds)" hint="Default 3600; what is left untried is reported.">
            {(control) => <input {...control} type="number" min={1} max={86400} {...text('budgetSecs')} />}
          </Field>
        </div>
      </details>
      <FormButtons
        submitLabel="Create scan"
        busyLabel="Creating…"
        busy={create.isPending}
        disabled={!values.name.trim() || !values.targets.trim()}
        onCancel={() => onDone(null)}
        error={create.error}
        errorContext="The scan was not created"
      />
    </form>
  );
}
