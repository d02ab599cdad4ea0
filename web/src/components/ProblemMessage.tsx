// The one way a failure is shown: the problem's title and detail, its item-level causes, and
// the request id that an operator finds the cause under in the server log.
import { toApiProblem } from '../api/problem';

interface ProblemMessageProps {
  /** What was thrown or returned: an ApiProblem, or anything else (shown as "could not be reached"). */
  error: unknown;
  /** What was being done, e.g. "Loading certificates": said before the title. */
  context?: string;
}

export function ProblemMessage({ error, context }: ProblemMessageProps) {
  const failure = toApiProblem(error);
  const { problem, requestId } = failure;
  return (
    <div className="problem" role="alert">
      <p className="problem-title">
        {context ? `${context}: ` : ''}
        {problem.title}
      </p>
      {problem.detail ? <p>{problem.detail}</p> : null}
      {problem.errors && problem.errors.length > 0 ? (
        <ul>
          {problem.errors.map((item, index) => (
            <li key={`${item.pointer}-${index}`}>
              <code>{item.pointer}</code>: {item.detail || item.reason}
            </li>
          ))}
        </ul>
      ) : null}
      {requestId ? (
        <p className="muted">
          Request id: <code>{requestId}</code>
        </p>
      ) : null}
    </div>
  );
}
