// The end of a form on a page (adding an owner, an adapter, a token; editing a policy): why
// the last attempt failed, then the submit button, which says so while it runs, and Cancel.
// A form in a dialog has DialogForm instead, with Cancel first as dialogs have it.
import { ProblemMessage } from './ProblemMessage';

interface FormButtonsProps {
  /** The submit button's words, and its words while `busy`. */
  submitLabel: string;
  busyLabel: string;
  busy: boolean;
  /** Beyond `busy`: the form is not complete yet. */
  disabled?: boolean;
  onCancel: () => void;
  /** The last attempt's failure, shown with `errorContext` before it. */
  error: unknown;
  errorContext: string;
}

export function FormButtons({ submitLabel, busyLabel, busy, disabled = false, onCancel, error, errorContext }: FormButtonsProps) {
  return (
    <>
      {error ? <ProblemMessage error={error} context={errorContext} /> : null}
      <div className="row">
        <button type="submit" className="primary" disabled={busy || disabled}>
          {busy ? busyLabel : submitLabel}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </>
  );
}
