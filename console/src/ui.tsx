import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, request } from './api';

/** Shows an error body as the API sent it: the message for people and how to fix it. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e =
    error instanceof ApiError
      ? error
      : new ApiError(0, { message: error instanceof Error ? error.message : String(error) });
  return (
    <div class="error" role="alert">
      <p>
        <strong>{e.status ? `Error ${e.status}: ` : 'Error: '}</strong>
        <span class="error-message">{e.message}</span>
      </p>
      {e.nextActions ? <p class="next-actions">What to do: {e.nextActions}</p> : null}
    </div>
  );
}

/**
 * A secret value typed into the page: masked like a password while typed (a shoulder or a
 * screen share sees dots), with a toggle to check what was typed. A textarea, because values
 * may span lines (PEM keys); the masking is CSS (-webkit-text-security, which Chromium,
 * Safari and Firefox support), so the value never leaves the field.
 */
export function SecretValueField(props: { name: string; label: string; required?: boolean }) {
  const [shown, setShown] = useState(false);
  return (
    <div class="secret-field">
      <label>
        {props.label}
        <textarea
          name={props.name}
          required={props.required}
          rows={2}
          autocomplete="off"
          spellcheck={false}
          class={shown ? 'secret-input' : 'secret-input masked'}
        />
      </label>
      <button type="button" aria-pressed={shown} onClick={() => setShown(!shown)}>
        {shown ? 'Hide what I typed' : 'Show what I typed'}
      </button>
    </div>
  );
}

export function Notice({ children }: { children: ComponentChildren }) {
  return <output class="notice">{children}</output>;
}

export function Loading({ what }: { what: string }) {
  return <output class="loading">Loading {what}…</output>;
}

export const fmt = (iso: string | null | undefined): string =>
  iso
    ? new Date(iso)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, ' UTC')
    : '—';

/**
 * A timestamp in the viewer's local time, with UTC (as the API and the audit trail give it)
 * on hover and in the element's datetime.
 */
export function When({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <>—</>;
  const d = new Date(iso);
  const local = d.toLocaleString(undefined, {
    dateStyle: 'medium',
    timeStyle: 'short',
  });
  return (
    <time dateTime={iso} title={fmt(iso)}>
      {local}
    </time>
  );
}

/** When a secret was last read and by whom, or Never. */
export function LastUsed({ meta }: { meta: { lastUsedAt: string | null; lastUsedBy?: string | null } }) {
  if (!meta.lastUsedAt) return <>Never</>;
  return (
    <>
      <When iso={meta.lastUsedAt} />
      {meta.lastUsedBy === undefined ? null : ` by ${meta.lastUsedBy ?? 'unknown'}`}
    </>
  );
}

/** A datetime-local value (the person's local time) as ISO 8601 UTC, or null when empty. */
export const localToIso = (v: string): string | null => (v ? new Date(v).toISOString() : null);

/** ISO 8601 as a datetime-local value in the person's time zone. */
export const isoToLocal = (iso: string | null): string => {
  if (!iso) return '';
  const d = new Date(iso);
  const off = d.getTimezoneOffset() * 60_000;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
};

export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Previous/next paging over keyset cursors, shared by every list: `cursors[i]` is the cursor
 * of page i (undefined for the first), `nextCursor` the server's cursor after this page.
 */
export function Pager({
  label,
  cursors,
  setCursors,
  nextCursor,
}: {
  label: string;
  cursors: (string | undefined)[];
  setCursors: (c: (string | undefined)[]) => void;
  nextCursor: string | null | undefined;
}) {
  return (
    <nav class="pager" aria-label={label}>
      <button type="button" disabled={cursors.length < 2} onClick={() => setCursors(cursors.slice(0, -1))}>
        Previous page
      </button>
      <span>Page {cursors.length}</span>
      <button
        type="button"
        disabled={!nextCursor}
        onClick={() => nextCursor && setCursors([...cursors, nextCursor])}
      >
        Next page
      </button>
    </nav>
  );
}

/**
 * One page of a list from the API (the three list pages share it): fetched when `url`
 * changes or `refresh` is a new value (a search sent again with the same filters reloads),
 * and again by `load()` after a change. A failed load shows its error; `keepOnError` keeps
 * the page last shown instead of clearing it.
 */
export function usePage<T>(url: string, refresh?: unknown, opts: { keepOnError?: boolean } = {}) {
  const [data, setData] = useState<T | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const keepOnError = opts.keepOnError === true;
  const load = useCallback(async () => {
    setLoading(true);
    setError(null);
    try {
      setData((await request<T>('GET', url)).body);
    } catch (err) {
      setError(err);
      if (!keepOnError) setData(null);
    } finally {
      setLoading(false);
    }
  }, [url, refresh, keepOnError]);
  useEffect(() => {
    void load();
  }, [load]);
  return { data, loading, error, setError, load };
}

/**
 * Marks a write-only secret: its value can be set but never read back (no reveal or copy
 * anywhere in the console; workloads receive it with the secrets:inject scope).
 */
export function LockBadge() {
  return (
    <span class="badge lock" title="Write-only: the value can be set but never read back">
      <span aria-hidden="true">🔒</span> Write-only
    </span>
  );
}

/**
 * At phone width the tables become one card per row (style.css), each cell preceded by its
 * column's name, which CSS reads from the cell's data-label. The names are copied here from
 * each table's header row, once for every table the pages render, so no table has to repeat
 * them cell by cell.
 */
export function labelTableCells(root: HTMLElement) {
  const label = () => {
    for (const table of root.querySelectorAll('table')) {
      const names = [...table.querySelectorAll('thead th')].map((th) => th.textContent?.trim() ?? '');
      for (const row of table.querySelectorAll('tbody tr'))
        [...row.children].forEach((cell, i) => {
          const name = names[i];
          if (name && cell.getAttribute('data-label') !== name) cell.setAttribute('data-label', name);
        });
    }
  };
  label();
  new MutationObserver(label).observe(root, { childList: true, subtree: true });
}
