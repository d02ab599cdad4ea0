// A certificate's lifetime as a bar from not_before to not_after, with today marked.

const DAY_MS = 24 * 60 * 60 * 1000;

interface ValidityBarProps {
  notBefore: string;
  notAfter: string;
  /** The certificate's status: colours the elapsed part. */
  status: string;
  now?: Date;
}

export function ValidityBar({ notBefore, notAfter, status, now = new Date() }: ValidityBarProps) {
  const start = new Date(notBefore).getTime();
  const end = new Date(notAfter).getTime();
  const span = Math.max(end - start, 1);
  const elapsed = Math.min(100, Math.max(0, ((now.getTime() - start) / span) * 100));
  const lifetimeDays = Math.round(span / DAY_MS);
  const leftDays = Math.ceil((end - now.getTime()) / DAY_MS);
  const when =
    now.getTime() < start
      ? 'not valid yet'
      : leftDays > 0
        ? `${leftDays} day${leftDays === 1 ? '' : 's'} left`
        : `expired ${-leftDays} day${leftDays === -1 ? '' : 's'} ago`;
  const description = `${Math.round(elapsed)}% of its ${lifetimeDays}-day lifetime has passed; ${when}`;
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

  return (
    <div className={`validity ${status}`}>
      <div
        className="validity-track"
        role="meter"
        aria-label="Lifetime elapsed"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(elapsed)}
        aria-valuetext={description}
      >
        <div className="validity-elapsed" style={{ width: `${elapsed}%` }} />
        {elapsed > 0 && elapsed < 100 ? <div className="validity-today" style={{ left: `${elapsed}%` }} title="Today" /> : null}
      </div>
      <div className="validity-labels">
        <span>{day(start)}</span>
        <span>{description}</span>
        <span>{day(end)}</span>
      </div>
    </div>
  );
}
