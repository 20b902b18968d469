import type { ComponentChildren, InputHTMLAttributes } from 'preact';
import { useId, useState } from 'preact/hooks';
import { copyText, ErrorBox, Notice } from './ui';

/** A labelled input: the label wraps the field, so clicking the words focuses it. */
export function Field({
  label,
  ...input
}: { label: ComponentChildren } & InputHTMLAttributes<HTMLInputElement>) {
  return (
    <label>
      {label}
      <input autocomplete="off" {...input} />
    </label>
  );
}

/** A labelled checkbox. */
export function Check(props: {
  label: ComponentChildren;
  name?: string;
  checked?: boolean;
  defaultChecked?: boolean;
  onChange?: (e: Event & { currentTarget: HTMLInputElement }) => void;
}) {
  return (
    <label class="check">
      <input
        type="checkbox"
        name={props.name}
        checked={props.checked}
        defaultChecked={props.defaultChecked}
        onChange={props.onChange}
      />
      {props.label}
    </label>
  );
}

/**
 * One request at a time from a form or a button: `busy` while it runs (the buttons disable
 * themselves), its failure kept in `error` for an ErrorBox (or given to `report`). `run`
 * resolves to whether it succeeded.
 */
export function useAction(report?: (err: unknown) => void) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  // `report`: the failure goes where the list's own errors show (a list's row actions).
  const fail = report ?? setError;
  const run = async (fn: () => Promise<void>): Promise<boolean> => {
    setBusy(true);
    fail(null);
    try {
      await fn();
      return true;
    } catch (err) {
      fail(err);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}

/** The values of a submitted form, trimmed, and its comma- or newline-separated lists. */
export function formFields(e: Event) {
  e.preventDefault();
  const form = e.currentTarget as HTMLFormElement;
  const f = new FormData(form);
  const text = (name: string) => String(f.get(name) ?? '').trim();
  return {
    form,
    text,
    raw: (name: string) => String(f.get(name) ?? ''),
    checked: (name: string) => f.get(name) === 'on',
    list: (name: string) =>
      text(name)
        .split(/[\n,\s]+/)
        .map((s) => s.trim())
        .filter(Boolean),
  };
}

export type FormFields = ReturnType<typeof formFields>;

/**
 * A form that submits through useAction: its error above it, aria-busy while it runs, and
 * `onSubmit` given the parsed fields. Reset after a success unless `keep`.
 */
export function ActionForm(props: {
  onSubmit: (f: FormFields) => Promise<void>;
  children: ComponentChildren;
  label?: string;
  class?: string;
  keep?: boolean;
}) {
  const { busy, error, run } = useAction();
  return (
    <>
      <ErrorBox error={error} />
      <form
        class={props.class}
        aria-label={props.label}
        aria-busy={busy}
        onSubmit={async (e) => {
          const f = formFields(e);
          if ((await run(() => props.onSubmit(f))) && !props.keep) f.form.reset();
        }}
      >
        <fieldset class="plain" disabled={busy}>
          {props.children}
        </fieldset>
      </form>
    </>
  );
}

/** Copies `text` and says whether it worked. */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [copied, setCopied] = useState<string | null>(null);
  return (
    <>
      <button
        type="button"
        onClick={async () => setCopied((await copyText(text)) ? 'Copied to the clipboard.' : 'Copy failed.')}
      >
        {label}
      </button>
      {copied ? <Notice>{copied}</Notice> : null}
    </>
  );
}

/**
 * A credential the service keeps only sealed or hashed, shown once: the warning, the value,
 * copy, and a button that drops it from memory. Nothing else in the console can show it
 * again (a reload does not).
 */
export interface CredentialKind {
  /** What it is, in the buttons: "Copy token", "I have stored it, hide the token". */
  what: string;
  /** The accessible name of the box that shows it. */
  valueLabel: string;
  warning: ComponentChildren;
}

export function ShownOnce(props: { kind: CredentialKind; title: string; value: string; onDone: () => void }) {
  const id = useId();
  const { what, valueLabel, warning } = props.kind;
  return (
    <section class="panel token-once" aria-labelledby={id} role="alert">
      <h2 id={id}>{props.title}</h2>
      <p class="warning">{warning}</p>
      <output class="secret-value" aria-label={valueLabel}>
        {props.value}
      </output>
      <div class="row">
        <CopyButton text={props.value} label={`Copy ${what}`} />
        <button type="button" onClick={props.onDone}>
          I have stored it, hide the {what}
        </button>
      </div>
    </section>
  );
}

/** A form's submit button, and Cancel when the form can be left without sending. */
export function FormButtons(props: {
  submit: string;
  onCancel?: () => void;
  danger?: boolean;
  disabled?: boolean;
}) {
  return (
    <div class="row">
      <button type="submit" class={props.danger ? 'danger' : undefined} disabled={props.disabled}>
        {props.submit}
      </button>
      {props.onCancel ? (
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      ) : null}
    </div>
  );
}

/**
 * An irreversible action's confirmation: the button enables only once `word` is typed
 * exactly (a name, a target environment), so a slip of the mouse cannot do it.
 */
export function TypedConfirm(props: {
  word: string;
  label: ComponentChildren;
  action: string;
  busy: boolean;
  onConfirm: () => void | Promise<void>;
  onCancel?: () => void;
  danger?: boolean;
}) {
  const [typed, setTyped] = useState('');
  return (
    <form
      class="purge"
      onSubmit={(e) => {
        e.preventDefault();
        if (typed === props.word) void props.onConfirm();
      }}
    >
      <label>
        {props.label}
        <input
          name="confirm"
          value={typed}
          onInput={(e) => setTyped(e.currentTarget.value)}
          autocomplete="off"
          spellcheck={false}
        />
      </label>
      <FormButtons
        submit={props.action}
        danger={props.danger !== false}
        disabled={props.busy || typed !== props.word}
        {...(props.onCancel ? { onCancel: props.onCancel } : {})}
      />
    </form>
  );
}
