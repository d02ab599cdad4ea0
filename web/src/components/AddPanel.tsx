// A list page's way to add an item: a button beside the page's title, which opens a panel with
// the form; once the form is done, the panel closes and a notice says what was added.
import { useState, type ReactNode } from 'react';

interface AddPanelOptions<T> {
  /** The panel's element id (the button controls it). */
  id: string;
  /** The button's words, e.g. "New scan". */
  label: string;
  /** The panel's heading, e.g. "Add a rule". */
  title: string;
  /** Whether the caller may add at all: no button otherwise. */
  allowed: boolean;
  /** The form; it calls `done` with what it added, or null when cancelled. */
  form: (done: (added: T | null) => void) => ReactNode;
  /** The notice once `added` was added. */
  notice: (added: T) => ReactNode;
}

export interface AddPanel {
  /** The button, for the page header (nothing while the panel is open). */
  button: ReactNode;
  /** The notice or the open panel, for under the page's introduction. */
  panel: ReactNode;
  /** Whether the form is open (to load what it needs only then). */
  open: boolean;
}

export function useAddPanel<T>({ id, label, title, allowed, form, notice }: AddPanelOptions<T>): AddPanel {
  const [open, setOpen] = useState(false);
  const [added, setAdded] = useState<T | null>(null);
  const done = (item: T | null) => {
    setAdded(item);
    setOpen(false);
  };
  const button =
    allowed && !open ? (
      <button
        type="button"
        className="primary"
        aria-expanded={false}
        aria-controls={id}
        onClick={() => {
          setAdded(null);
          setOpen(true);
        }}
      >
        {label}
      </button>
    ) : null;
  const panel = (
    <>
      {added ? (
        <p className="notice" role="status">
          {notice(added)}
        </p>
      ) : null}
      {open ? (
        <section id={id} className="panel" aria-labelledby={`${id}-title`}>
          <h2 id={`${id}-title`}>{title}</h2>
          {form(done)}
        </section>
      ) : null}
    </>
  );
  return { button, panel, open };
}
