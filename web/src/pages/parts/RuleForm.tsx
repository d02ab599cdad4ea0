// Adds a notification rule (POST /api/v1/notifications/rules): which events, for whose
// certificates, told through which channel. The channel's secret (SMTP password, webhook
// signing key) goes to the server's secret store and never comes back.
import { useState, type FormEvent } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client';
import type { components } from '../../api/schema';
import { FormButtons } from '../../components/FormButtons';
import { Field, splitList } from './Field';
import { OwnerSelect, useOwnerChoices } from './OwnerSelect';

type Rule = components['schemas']['NotificationRule'];
type RuleCreate = components['schemas']['NotificationRuleCreate'];
type NotificationEvent = components['schemas']['NotificationEvent'];

/** The events a rule may ask for, in words; the opt-in ones are off unless chosen. */
export const RULE_EVENTS: readonly { event: NotificationEvent; label: string; optIn?: true; platform?: true }[] = [
  { event: 'certificate_expiring', label: 'Certificate expiring (at each threshold)' },
  { event: 'renewal_overdue', label: 'Renewal overdue' },
  { event: 'request_failed', label: 'Request failed' },
  { event: 'request_awaiting_approval', label: 'Request awaiting approval' },
  { event: 'deployment_failed', label: 'Deployment failed' },
  { event: 'adapter_unhealthy', label: 'CA adapter unhealthy', platform: true },
  { event: 'agent_offline', label: 'Agent offline', platform: true },
  { event: 'certificate_issued', label: 'Certificate issued', optIn: true },
  { event: 'certificate_renewed', label: 'Certificate renewed', optIn: true },
  { event: 'certificate_revoked', label: 'Certificate revoked', optIn: true },
];

export function eventLabel(event: string): string {
  return RULE_EVENTS.find((known) => known.event === event)?.label ?? event.replace(/_/g, ' ');
}

export interface RuleFormValues {
  name: string;
  owner: string;
  events: ReadonlySet<NotificationEvent>;
  thresholds: string;
  kind: 'webhook' | 'email';
  url: string;
  format: 'json' | 'slack';
  smtpHost: string;
  smtpPort: string;
  tls: 'starttls' | 'tls' | 'none';
  username: string;
  from: string;
  to: string;
  secret: string;
}

const INITIAL: RuleFormValues = {
  name: '',
  owner: '',
  events: new Set(RULE_EVENTS.filter((e) => !e.optIn).map((e) => e.event)),
  thresholds: '30, 14, 7, 1',
  kind: 'webhook',
  url: '',
  format: 'json',
  smtpHost: '',
  smtpPort: '',
  tls: 'starttls',
  username: '',
  from: '',
  to: '',
  secret: '',
};

/** The request body of the form's values; events a rule with an owner cannot have are left out. */
export function ruleCreateBody(v: RuleFormValues): RuleCreate {
  const channel: RuleCreate['channel'] =
    v.kind === 'webhook'
      ? { kind: 'webhook', url: v.url.trim(), format: v.format }
      : {
          kind: 'email',
          smtp_host: v.smtpHost.trim(),
          smtp_port: v.smtpPort.trim() ? Number(v.smtpPort) : null,
          tls: v.tls,
          username: v.username.trim() || null,
          from: v.from.trim(),
          to: splitList(v.to),
        };
  const events = RULE_EVENTS.filter((e) => v.events.has(e.event) && !(v.owner && e.platform)).map((e) => e.event);
  return {
    name: v.name.trim(),
    owner: v.owner || null,
    events,
    thresholds_days: splitList(v.thresholds).map(Number),
    channel,
    secret: v.secret || null,
  };
}

export function RuleForm({ onDone }: { onDone: (created: Rule | null) => void }) {
  const queryClient = useQueryClient();
  const owners = useOwnerChoices();
  const [values, setValues] = useState<RuleFormValues>(INITIAL);
  const create = useMutation({
    mutationFn: (body: RuleCreate) => unwrap(api.POST('/api/v1/notifications/rules', { body })),
    onSuccess: (rule) => {
      void queryClient.invalidateQueries({ queryKey: ['notification-rules'] });
      onDone(rule);
    },
  });

  function set<K extends keyof RuleFormValues>(key: K, value: RuleFormValues[K]) {
    setValues((current) => ({ ...current, [key]: value }));
  }
  function text(key: 'name' | 'thresholds' | 'url' | 'smtpHost' | 'smtpPort' | 'username' | 'from' | 'to' | 'secret') {
    return { value: values[key], onChange: (event: { target: { value: string } }) => set(key, event.target.value) };
  }
  function toggleEvent(event: NotificationEvent, on: boolean) {
    const events = new Set(values.events);
    if (on) events.add(event);
    else events.delete(event);
    set('events', events);
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate(ruleCreateBody(values));
  }

  return (
    <form className="form-stack" onSubmit={submit}>
      <div className="form-row">
        <Field label="Name" hint="e.g. security-mail or shop-slack.">
          {(control) => <input {...control} required autoComplete="off" {...text('name')} />}
        </Field>
        <Field label="For the certificates of" hint="Without an owner: every team's, and the platform's own events.">
          {(control) => (
            <OwnerSelect control={control} owners={owners} value={values.owner} onChange={(name) => set('owner', name)} none="Every owner" />
          )}
        </Field>
        <Field label="Expiry thresholds (days)" hint="A certificate is told about once at each.">
          {(control) => <input {...control} {...text('thresholds')} />}
        </Field>
      </div>
      <fieldset>
        <legend>Events</legend>
        <div className="choice-row">
          {RULE_EVENTS.filter((e) => !(values.owner && e.platform)).map(({ event, label }) => (
            <label key={event} className="choice">
              <input type="checkbox" checked={values.events.has(event)} onChange={(e) => toggleEvent(event, e.target.checked)} />
              {label}
            </label>
          ))}
        </div>
      </fieldset>
      <fieldset className="form-stack">
        <legend>Channel</legend>
        <div className="choice-row">
          <label className="choice">
            <input type="radio" name="rule-channel" checked={values.kind === 'webhook'} onChange={() => set('kind', 'webhook')} />
            Webhook
          </label>
          <label className="choice">
            <input type="radio" name="rule-channel" checked={values.kind === 'email'} onChange={() => set('kind', 'email')} />
            Email
          </label>
        </div>
        {values.kind === 'webhook' ? (
          <div className="form-row">
            <Field label="URL" hint="Each message is POSTed here.">
              {(control) => <input {...control} type="url" required spellCheck={false} {...text('url')} />}
            </Field>
            <Field label="Format">
              {(control) => (
                <select {...control} value={values.format} onChange={(event) => set('format', event.target.value as RuleFormValues['format'])}>
                  <option value="json">JSON (signed with the secret)</option>
                  <option value="slack">Slack ({'{"text": …}'})</option>
                </select>
              )}
            </Field>
            <Field label="Signing secret" hint="Optional: each message then carries X-CMP-Signature. Never shown again.">
              {(control) => <input {...control} type="password" autoComplete="new-password" {...text('secret')} />}
            </Field>
          </div>
        ) : (
          <div className="form-row">
            <Field label="SMTP host">{(control) => <input {...control} required spellCheck={false} {...text('smtpHost')} />}</Field>
            <Field label="SMTP port" hint="Default 587 (STARTTLS), 465 (TLS), 25 (none).">
              {(control) => <input {...control} type="number" min={1} max={65535} {...text('smtpPort')} />}
            </Field>
            <Field label="Security">
              {(control) => (
                <select {...control} value={values.tls} onChange={(event) => set('tls', event.target.value as RuleFormValues['tls'])}>
                  <option value="starttls">STARTTLS</option>
                  <option value="tls">TLS</option>
                  <option value="none">None</option>
                </select>
              )}
            </Field>
            <Field label="From" hint='e.g. CMP <cmp@example.com>'>
              {(control) => <input {...control} required {...text('from')} />}
            </Field>
            <Field label="To" hint="One or more addresses.">
              {(control) => <input {...control} required {...text('to')} />}
            </Field>
            <Field label="Username">{(control) => <input {...control} autoComplete="off" {...text('username')} />}</Field>
            <Field label="Password" hint="Kept in the secret store, never shown again.">
              {(control) => <input {...control} type="password" autoComplete="new-password" {...text('secret')} />}
            </Field>
          </div>
        )}
      </fieldset>
      <FormButtons
        submitLabel="Add rule"
        busyLabel="Adding…"
        busy={create.isPending}
        disabled={!values.name.trim() || values.events.size === 0}
        onCancel={() => onDone(null)}
        error={create.error}
        errorContext="The rule was not added"
      />
    </form>
  );
}
