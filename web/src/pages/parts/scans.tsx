// How a network scan is shown: its schedule and targets in words, a run's state and progress,
// and the two things done to it from any page (run now, cancel the run).
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client';
import type { components } from '../../api/schema';
import { ProblemMessage } from '../../components/ProblemMessage';

export type Scan = components['schemas']['Scan'];
export type ScanRun = components['schemas']['ScanRun'];
type RunState = components['schemas']['ScanRunState'];

/** While a run is under way, its page asks again this often (the server writes progress every second). */
export const RUNNING_POLL_MS = 1_000;

const STATE_LABELS: Record<RunState, { label: string; tone: string }> = {
  running: { label: 'Running', tone: '' },
  completed: { label: 'Completed', tone: 'ok' },
  cancelled: { label: 'Cancelled', tone: 'warn' },
  out_of_time: { label: 'Out of time', tone: 'warn' },
  interrupted: { label: 'Interrupted', tone: 'bad' },
  failed: { label: 'Failed', tone: 'bad' },
};

export function RunStateBadge({ run }: { run: ScanRun | null | undefined }) {
  if (!run) return <span className="muted">never run</span>;
  const { label, tone } = STATE_LABELS[run.state];
  return (
    <span className={`badge ${tone}`}>
      {label}
      {run.cancel_requested && run.state === 'running' ? ' (stopping)' : ''}
    </span>
  );
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/** "12 of 40 endpoints, 3 certificates (1 new), 2 errors". */
export function progressText(run: ScanRun): string {
  const p = run.progress;
  const scanned = p.total == null ? plural(p.scanned, 'endpoint') : `${p.scanned.toLocaleString()} of ${plural(p.total, 'endpoint')}`;
  const parts = [scanned, `${plural(p.certificates, 'certificate')} (${p.created.toLocaleString()} new)`];
  if (p.gone > 0) parts.push(`${plural(p.gone, 'location')} gone`);
  if (p.errors > 0) parts.push(plural(p.errors, 'error'));
  return parts.join(', ');
}

/** A running run's share done, 0-1; unknown until its targets are resolved. */
export function runShare(run: ScanRun): number | undefined {
  const total = run.progress.total;
  if (total == null) return undefined;
  return total === 0 ? 1 : Math.min(1, run.progress.scanned / total);
}

export function scheduleText(scan: Pick<Scan, 'interval_secs' | 'cron' | 'enabled'>): string {
  let text = 'By hand';
  if (scan.cron) text = `cron ${scan.cron} (UTC)`;
  else if (scan.interval_secs) {
    const s = scan.interval_secs;
    text = s % 86_400 === 0 ? `Every ${plural(s / 86_400, 'day')}` : s % 3600 === 0 ? `Every ${plural(s / 3600, 'hour')}` : `Every ${plural(Math.round(s / 60), 'minute')}`;
  }
  return scan.enabled || text === 'By hand' ? text : `${text}, paused`;
}

/** The first targets, and how many more. */
export function targetsText(targets: readonly string[], shown = 3): string {
  const first = targets.slice(0, shown).join(', ');
  return targets.length > shown ? `${first} and ${targets.length - shown} more` : first;
}

/** Start a run now, or ask the running one to stop. */
export function RunControls({ scan, run }: { scan: Scan; run: ScanRun | null | undefined }) {
  const queryClient = useQueryClient();
  const onSuccess = () => void queryClient.invalidateQueries({ queryKey: ['scans'] });
  const start = useMutation({
    mutationFn: () => unwrap(api.POST('/api/v1/scans/{id}/runs', { params: { path: { id: scan.id } } })),
    onSuccess,
  });
  const cancel = useMutation({
    mutationFn: () => unwrap(api.POST('/api/v1/scans/{id}/cancel', { params: { path: { id: scan.id } } })),
    onSuccess,
  });
  const running = run?.state === 'running';
  const stopping = cancel.isPending || Boolean(run?.cancel_requested);
  const label = running ? (stopping ? 'Stopping…' : 'Cancel run') : start.isPending ? 'Starting…' : 'Run now';
  return (
    <>
      <button
        type="button"
        // Named with the scan: a list holds one such button per scan.
        aria-label={`${label}: ${scan.name}`}
        onClick={() => (running ? cancel.mutate() : start.mutate())}
        disabled={running ? stopping : start.isPending}
      >
        {label}
      </button>
      {start.error ? <ProblemMessage error={start.error} context={`Starting ${scan.name}`} /> : null}
      {cancel.error ? <ProblemMessage error={cancel.error} context={`Cancelling ${scan.name}`} /> : null}
    </>
  );
}
