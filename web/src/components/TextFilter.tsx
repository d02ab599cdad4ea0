// A text filter of a page whose filters live in the URL (the inventory, the audit log): it
// commits after a pause in typing, so that the URL and the query do not change at every key,
// or at once on Enter.
import { useEffect, useId, useRef, useState, type InputHTMLAttributes } from 'react';

/** How long typing must pause before the filter commits. */
const COMMIT_DELAY_MS = 400;

type PassedInputProps = Pick<InputHTMLAttributes<HTMLInputElement>, 'list' | 'placeholder' | 'spellCheck' | 'autoComplete'>;

interface TextFilterProps extends PassedInputProps {
  label: string;
  value: string | undefined;
  /** `replace`: true when it commits after a pause (the URL is replaced, not pushed), false on Enter. */
  onCommit: (value: string, replace: boolean) => void;
  hint?: string;
  type?: 'text' | 'search';
}

export function TextFilter({ label, value, onCommit, hint, type = 'text', ...inputProps }: TextFilterProps) {
  const id = useId();
  const [draft, setDraft] = useState(value ?? '');
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  // The URL changed under us (back button, a link): show what it says.
  useEffect(() => setDraft(value ?? ''), [value]);
  useEffect(() => () => clearTimeout(timer.current), []);
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type={type}
        value={draft}
        {...inputProps}
        aria-describedby={hint ? `${id}-hint` : undefined}
        onChange={(event) => {
          const next = event.target.value;
          setDraft(next);
          clearTimeout(timer.current);
          timer.current = setTimeout(() => onCommit(next, true), COMMIT_DELAY_MS);
        }}
        onKeyDown={(event) => {
          if (event.key === 'Enter') {
            event.preventDefault();
            clearTimeout(timer.current);
            onCommit(draft, false);
          }
        }}
      />
      {hint ? (
        <span id={`${id}-hint`} className="hint">
          {hint}
        </span>
      ) : null}
    </div>
  );
}
