// Errors as the dashboard shows them: cmpd answers every error as an RFC 9457 problem
// (application/problem+json), and anything else that goes wrong (no answer, a proxy's HTML
// page) is turned into the same shape so that one component can show it.

/** One cause inside a problem: a field, parameter or input item at fault. */
export interface ProblemItem {
  pointer: string;
  reason: string;
  detail: string;
}

/** An RFC 9457 problem document, as cmpd's `Problem` schema describes it. */
export interface Problem {
  type?: string;
  title: string;
  status?: number;
  detail?: string | null;
  /** The request id, also in the `x-request-id` header. */
  instance?: string | null;
  errors?: ProblemItem[];
}

/** A failed API call: the problem the server answered (or one made up for a failure without one). */
export class ApiProblem extends Error {
  readonly problem: Problem;
  readonly status: number;
  /** From `instance`, else the `x-request-id` header: what an operator greps the log for. */
  readonly requestId: string | undefined;

  constructor(problem: Problem, status: number, requestId?: string) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.name = 'ApiProblem';
    this.problem = problem;
    this.status = status;
    this.requestId = problem.instance ?? requestId ?? undefined;
  }
}

function isProblem(body: unknown): body is Problem {
  return typeof body === 'object' && body !== null && typeof (body as Problem).title === 'string';
}

/** The problem of an error answer; `body` is what was read of it (JSON, text or nothing). */
export function problemFromResponse(response: Response, body: unknown): ApiProblem {
  const requestId = response.headers.get('x-request-id') ?? undefined;
  if (isProblem(body)) return new ApiProblem(body, response.status, requestId);
  // Not from cmpd (a proxy, or a server too old for the route): say what came back.
  const text = typeof body === 'string' ? body.trim().slice(0, 300) : '';
  return new ApiProblem(
    {
      title: response.statusText ? `${response.status} ${response.statusText}` : `HTTP ${response.status}`,
      status: response.status,
      detail: text || 'The server answered without an explanation.',
    },
    response.status,
    requestId,
  );
}

/** Any thrown value as an ApiProblem, so that callers need not tell failures apart. */
export function toApiProblem(error: unknown): ApiProblem {
  if (error instanceof ApiProblem) return error;
  // fetch rejects with a TypeError when there is no answer at all.
  const detail = error instanceof Error ? error.message : String(error);
  return new ApiProblem(
    { title: 'The server could not be reached', detail: `${detail}. Check the connection and try again.` },
    0,
  );
}

/** True when the failure means "not signed in" (no session, or an expired or revoked token). */
export function isUnauthorized(error: unknown): boolean {
  return error instanceof ApiProblem && error.status === 401;
}
