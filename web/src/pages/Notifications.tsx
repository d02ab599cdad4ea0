// Notifications: the rules that say who hears about what (expiring certificates, failed
// renewals and requests, unhealthy CAs, offline agents) and through which channel, with a
// test message on demand; and the messages sent or still being tried.
import { useState } from 'react';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import type { components } from '../api/schema';
import { useCan } from '../auth/session';
import { useAddPanel } from '../components/AddPanel';
import { DeleteButton } from '../components/DeleteButton';
import { ProblemMessage } from '../components/ProblemMessage';
import { Section } from '../components/Section';
import { ShowMore } from '../components/ShowMore';
import { Empty, Loading } from '../components/States';
import { TableScroll } from '../components/TableScroll';
import { formatDateTime } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { eventLabel, RuleForm } from './parts/RuleForm';
import '../styles-pages.css';

type Rule = components['schemas']['NotificationRule'];
type Delivery = components['schemas']['NotificationDelivery'];
type DeliveryState = components['schemas']['DeliveryState'];

const RULES_KEY = ['notification-rules'] as const;
const DELIVERY_TONES: Record<DeliveryState, string> = { pending: 'warn', sent: 'ok', failed: 'bad' };

function channelText(channel: Rule['channel']): string {
  if (channel.kind === 'webhook') return `Webhook (${channel.format ?? 'json'}) to ${channel.url}`;
  return `Email to ${channel.to.join(', ')} through ${channel.smtp_host}`;
}

function DeliveryBadge({ delivery }: { delivery: Delivery }) {
  return <span className={`badge ${DELIVERY_TONES[delivery.state]}`}>{delivery.state}</span>;
}

/** Sends one test message through the rule's channel now, and shows how it went. */
function TestRule({ rule }: { rule: Rule }) {
  const queryClient = useQueryClient();
  const test = useMutation({
    mutationFn: () => unwrap(api.POST('/api/v1/notifications/rules/{id}/test', { params: { path: { id: rule.id } } })),
    onSettled: () => void queryClient.invalidateQueries({ queryKey: ['notification-deliveries'] }),
  });
  return (
    <>
      <button type="button" aria-label={`Send a test message: ${rule.name}`} onClick={() => test.mutate()} disabled={test.isPending}>
        {test.isPending ? 'Sending…' : 'Send a test message'}
      </button>
      {test.data ? (
        <p role="status">
          Test message <DeliveryBadge delivery={test.data} />
          {test.data.last_error ? `: ${test.data.last_error}` : null}
        </p>
      ) : null}
      {test.error ? <ProblemMessage error={test.error} context="Sending a test message" /> : null}
    </>
  );
}

function RuleActions({ rule }: { rule: Rule }) {
  const queryClient = useQueryClient();
  const onSuccess = () => void queryClient.invalidateQueries({ queryKey: RULES_KEY });
  const toggle = useMutation({
    mutationFn: () =>
      unwrap(api.PATCH('/api/v1/notifications/rules/{id}', { params: { path: { id: rule.id } }, body: { enabled: !rule.enabled } })),
    onSuccess,
  });
  return (
    <div className="row">
      <TestRule rule={rule} />
      <button type="button" onClick={() => toggle.mutate()} disabled={toggle.isPending}>
        {rule.enabled ? 'Pause' : 'Resume'}
      </button>
      <DeleteButton
        noun="rule"
        name={rule.name}
        remove={() => unwrap(api.DELETE('/api/v1/notifications/rules/{id}', { params: { path: { id: rule.id } } }))}
        onDeleted={onSuccess}
      >
        <p>Nobody is told about this rule's events any more. Messages already sent stay listed below.</p>
      </DeleteButton>
      {toggle.error ? <ProblemMessage error={toggle.error} context="Changing the rule" /> : null}
    </div>
  );
}

function RuleCard({ rule, manage }: { rule: Rule; manage: boolean }) {
  return (
    <Section
      id={`rule-${rule.id}`}
      title={rule.name}
      actions={<span className={`badge ${rule.enabled ? 'ok' : ''}`}>{rule.enabled ? 'Active' : 'Paused'}</span>}
    >
      <dl className="facts">
        <dt>For</dt>
        <dd>{rule.owner?.name ?? "every owner's certificates and the platform"}</dd>
        <dt>Events</dt>
        <dd>{rule.events.map(eventLabel).join(', ')}</dd>
        {rule.events.includes('certificate_expiring') ? (
          <>
            <dt>Expiry thresholds</dt>
            <dd>{rule.thresholds_days.map((days) => `${days} days`).join(', ')}</dd>
          </>
        ) : null}
        <dt>Channel</dt>
        <dd className="mono">{channelText(rule.channel)}</dd>
        <dt>Secret</dt>
        <dd>{rule.has_secret ? 'kept in the secret store' : 'none'}</dd>
      </dl>
      {manage ? <RuleActions rule={rule} /> : null}
    </Section>
  );
}

function Deliveries({ rules }: { rules: readonly Rule[] }) {
  const [state, setState] = useState<DeliveryState | ''>('');
  const deliveries = useInfiniteQuery({
    queryKey: ['notification-deliveries', state],
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET('/api/v1/notifications/deliveries', {
          params: { query: { limit: 50, ...(state ? { state } : {}), ...(pageParam ? { cursor: pageParam } : {}) } },
        }),
      ),
    initialPageParam: '',
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const ruleNames = new Map(rules.map((rule) => [rule.id, rule.name]));
  const items = deliveries.data?.pages.flatMap((page) => page.items) ?? [];
  return (
    <>
      <div className="filters" role="search" aria-label="Filter messages">
        <div className="field">
          <label htmlFor="delivery-state">State</label>
          <select id="delivery-state" value={state} onChange={(event) => setState(event.target.value as DeliveryState | '')}>
            <option value="">Any</option>
            <option value="pending">Pending (being retried)</option>
            <option value="sent">Sent</option>
            <option value="failed">Failed</option>
          </select>
        </div>
      </div>
      {deliveries.isPending ? <Loading what="messages" /> : null}
      {deliveries.error ? <ProblemMessage error={deliveries.error} context="Loading messages" /> : null}
      {deliveries.data && items.length === 0 ? <Empty>No messages{state ? ` ${state}` : ''} yet.</Empty> : null}
      {items.length > 0 ? (
        <TableScroll label="Messages, table">
          <table>
            <caption className="visually-hidden">Messages, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Created</th>
                <th scope="col">Rule</th>
                <th scope="col">State</th>
                <th scope="col">What</th>
                <th scope="col">Attempts</th>
                <th scope="col">Sent or next attempt</th>
              </tr>
            </thead>
            <tbody>
              {items.map((delivery) => (
                <tr key={delivery.id}>
                  <td>{formatDateTime(delivery.created_at)}</td>
                  <td>{ruleNames.get(delivery.rule_id) ?? <span className="mono">{delivery.rule_id}</span>}</td>
                  <td>
                    <DeliveryBadge delivery={delivery} />
                    {delivery.last_error ? <div className="field-error">{delivery.last_error}</div> : null}
                  </td>
                  <td>
                    {delivery.notices[0]?.summary ?? '—'}
                    {delivery.notice_count > 1 ? <span className="muted"> and {delivery.notice_count - 1} more</span> : null}
                  </td>
                  <td className="num">{delivery.attempts}</td>
                  <td>{formatDateTime(delivery.sent_at ?? delivery.next_attempt_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      ) : null}
      <ShowMore query={deliveries} />
    </>
  );
}

export default function NotificationsPage() {
  usePageTitle('Notifications');
  const can = useCan();
  const rules = useQuery({ queryKey: RULES_KEY, queryFn: () => unwrap(api.GET('/api/v1/notifications/rules')) });
  const add = useAddPanel<Rule>({
    id: 'rule-add',
    label: 'Add rule',
    title: 'Add a rule',
    allowed: can.manageNotifications,
    form: (done) => <RuleForm onDone={done} />,
    notice: (created) => <>Added {created.name}.</>,
  });
  return (
    <>
      <div className="page-header">
        <h1>Notifications</h1>
        {add.button}
      </div>
      <p className="muted">Each rule tells its channel about the events it names, once per event; what one pass finds for an owner goes in one message.</p>
      {add.panel}
      {rules.isPending ? <Loading what="rules" /> : null}
      {rules.error ? <ProblemMessage error={rules.error} context="Loading rules" /> : null}
      {rules.data && rules.data.length === 0 ? <Empty>No rules yet: nobody is told anything.</Empty> : null}
      {(rules.data ?? []).map((rule) => (
        <RuleCard key={rule.id} rule={rule} manage={can.manageNotifications} />
      ))}
      <Section id="deliveries" title="Messages">
        <Deliveries rules={rules.data ?? []} />
      </Section>
    </>
  );
}
