import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { ApiProblem, problemFromResponse } from '../api/problem';
import { ProblemMessage } from './ProblemMessage';

describe('ProblemMessage', () => {
  it("shows a problem's title, detail, item causes and request id", () => {
    const problem = new ApiProblem(
      {
        type: 'https://cmp.dev/problems/unprocessable',
        title: 'Input refused',
        status: 422,
        detail: '1 input item(s) refused; nothing was imported',
        instance: 'req-1234',
        errors: [{ pointer: 'PEM block 2', reason: 'private_key_not_certificate', detail: 'a private key, not a certificate' }],
      },
      422,
    );
    render(<ProblemMessage error={problem} context="Importing" />);
    const alert = screen.getByRole('alert');
    expect(alert).toHaveTextContent('Importing: Input refused');
    expect(alert).toHaveTextContent('1 input item(s) refused; nothing was imported');
    expect(alert).toHaveTextContent('PEM block 2: a private key, not a certificate');
    expect(alert).toHaveTextContent('Request id: req-1234');
  });

  it('takes the request id from the x-request-id header when the problem has no instance', () => {
    const response = new Response(null, { status: 403, headers: { 'x-request-id': 'from-header' } });
    const problem = problemFromResponse(response, { title: 'Forbidden', status: 403, detail: 'needs the admin role' });
    render(<ProblemMessage error={problem} />);
    expect(screen.getByRole('alert')).toHaveTextContent('Forbidden');
    expect(screen.getByRole('alert')).toHaveTextContent('needs the admin role');
    expect(screen.getByRole('alert')).toHaveTextContent('Request id: from-header');
  });

  it('says what came back when the answer is not a problem document', () => {
    const response = new Response(null, { status: 502, statusText: 'Bad Gateway' });
    render(<ProblemMessage error={problemFromResponse(response, '<html>upstream down</html>')} />);
    expect(screen.getByRole('alert')).toHaveTextContent('502 Bad Gateway');
    expect(screen.getByRole('alert')).toHaveTextContent('upstream down');
  });

  it('says the server could not be reached when fetch itself failed', () => {
    render(<ProblemMessage error={new TypeError('Failed to fetch')} />);
    expect(screen.getByRole('alert')).toHaveTextContent('The server could not be reached');
    expect(screen.getByRole('alert')).toHaveTextContent('Failed to fetch');
    expect(screen.queryByText(/Request id/)).toBeNull();
  });
});
