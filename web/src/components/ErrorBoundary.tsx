// Catches what a page throws while rendering (a chunk that failed to load after a deploy, a
// bug) so that the shell and nav stay usable.
import { Component, type ReactNode } from 'react';
import { ProblemMessage } from './ProblemMessage';

interface State {
  error: unknown;
}

export class ErrorBoundary extends Component<{ children: ReactNode }, State> {
  override state: State = { error: null };

  static getDerivedStateFromError(error: unknown): State {
    return { error };
  }

  override render() {
    if (this.state.error) {
      return (
        <>
          <ProblemMessage error={this.state.error} context="This page failed" />
          <button type="button" onClick={() => window.location.reload()}>
            Reload the page
          </button>
        </>
      );
    }
    return this.props.children;
  }
}
