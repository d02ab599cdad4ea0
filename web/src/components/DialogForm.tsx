// The form inside a <Dialog>: its fields, then why the last attempt failed, then Cancel and
// the button that does it (which says so while it runs), the same in every dialog.
import type { FormEvent, ReactNode } from 'react';
import { ProblemMessage } from './ProblemMessage';

interface DialogFormProps {
  onSubmit: () => void;
  onCancel: () => void;
  /** The submit button's words, and its words while `busy`. */
  submitLabel: string;
  busyLabel: string;
  busy: boolean;
  /** `danger` for what cannot be undone. */
  tone: 'primary' | 'danger';
  /** Beyond `busy`: the form is not complete yet. */
  disabled?: boolean;
  /** The last attempt's failure, shown with `errorContext` before it. */
  error: unknown;
  errorContext: string;
  children: ReactNode;
}

export function DialogForm({
  onSubmit,
  onCancel,
  submitLabel,
  busyLabel,
  busy,
  tone,
  disabled = false,
  error,
  errorContext,
  children,
}: DialogFormProps) {
  function submit(event: FormEvent) {
    event.preventDefault();
    onSubmit();
  }

  return (
    <form onSubmit={submit}>
      {children}
      {error ? <ProblemMessage error={error} context={errorContext} /> : null}
      <div className="dialog-buttons">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className={tone} disabled={busy || disabled}>
          {busy ? busyLabel : submitLabel}
        </button>
      </div>
    </form>
  );
}
