import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { q } from './api';
import { ErrorBox, Loading, Pager, usePage } from './ui';

/** One column of a DataTable: its header and how a row shows in it. */
export interface Column<T> {
  label: string;
  cell: (row: T) => ComponentChildren;
}

/**
 * The console's one table: a caption for screen readers, a header row, and one row per item
 * whose first cell is the row's header (th scope=row). Every list page renders through it, so
 * the markup (and the phone-width card layout that reads the header names, ui.tsx) is written
 * once. `rowClass` marks rows (the compare view highlights differences with it).
 */
export function DataTable<T>(props: {
  caption: string;
  rows: readonly T[];
  rowKey: (row: T) => string | number;
  columns: readonly Column<T>[];
  rowClass?: (row: T) => string | undefined;
  class?: string;
}) {
  const [first, ...rest] = props.columns;
  if (!first) return null;
  return (
    <div class="table-wrap">
      <table class={props.class}>
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th scope="col" key={c.label}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <tr key={props.rowKey(row)} class={props.rowClass?.(row)}>
              <th scope="row">{first.cell(row)}</th>
              {rest.map((c) => (
                <td key={c.label}>{c.cell(row)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A list's loading state, as usePage and usePagedList give it. */
export interface ListState {
  loading: boolean;
  error: unknown;
}

type TableProps<T> = Omit<Parameters<typeof DataTable<T>>[0], 'rows' | 'caption' | 'rowKey'> & {
  /** What the rows are, in words ("access keys"): the loading line, and the caption unless given. */
  noun: string;
  caption?: string;
  /** Default: the row's id. */
  rowKey?: (row: T) => string | number;
  empty: ComponentChildren;
};

const capital = (s: string) => `${s.slice(0, 1).toUpperCase()}${s.slice(1)}`;
const byId = (row: unknown) => (row as { id: string }).id;

/**
 * A list as it loads: its error, "Loading…", the empty-state sentence, or the table. One
 * place decides which of them shows, for every list page.
 */
export function ListView<T>(
  props: TableProps<T> & { list: ListState; rows: readonly T[] | null | undefined },
) {
  const { noun, empty, list, rows, caption, rowKey, ...table } = props;
  return (
    <>
      <ErrorBox error={list.error} />
      {list.loading ? <Loading what={noun} /> : null}
      {!list.loading && rows?.length === 0 ? <p class="empty">{empty}</p> : null}
      {rows && rows.length > 0 ? (
        <DataTable {...table} caption={caption ?? capital(noun)} rowKey={rowKey ?? byId} rows={rows} />
      ) : null}
    </>
  );
}

/**
 * One keyset-paged list from the API (`field` names the array in its answer): the page
 * shown, the cursors behind it (`first()` goes back to page one, as a new search must), and
 * usePage's reload. `refresh`: a new value loads again with the same URL.
 */
export function usePagedList<T>(
  path: string,
  field: string,
  params: Record<string, string | undefined> = {},
  opts: { refresh?: unknown; keepOnError?: boolean; pageSize?: number } = {},
) {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const cursor = cursors[cursors.length - 1];
  const page = usePage<Record<string, T[] | string | null>>(
    `${path}${q({ ...params, limit: String(opts.pageSize ?? 50), cursor })}`,
    opts.refresh,
    opts,
  );
  return {
    ...page,
    rows: page.data?.[field] as T[] | undefined,
    nextCursor: page.data?.nextCursor as string | null | undefined,
    cursors,
    setCursors,
    first: () => setCursors([undefined]),
  };
}
export type PagedList<T> = ReturnType<typeof usePagedList<T>>;

/** A paged list's table (the API's lists are newest first) with its Previous/Next pager. */
export function PagedTable<T>(props: TableProps<T> & { list: PagedList<T> }) {
  const { list } = props;
  return (
    <>
      <ListView caption={`${capital(props.noun)}, newest first`} {...props} rows={list.rows} />
      <Pager
        label={`${capital(props.noun)} pages`}
        cursors={list.cursors}
        setCursors={list.setCursors}
        nextCursor={list.nextCursor}
      />
    </>
  );
}
