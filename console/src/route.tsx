import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { DEFAULT_ENVIRONMENT, isEnvironmentName } from '../../src/environment-names';
import { CONSOLE_PAGES, CONSOLE_PAGES_WITH_ITEM, type ConsolePage } from '../../src/http/console-pages';

/**
 * The console's URLs: /console/PAGE[/ITEM][?query] (src/http/console-pages.ts lists the
 * pages; the server answers each with index.html). The selected environment is the `env`
 * query parameter of the secrets pages (/console/secrets/KEY?env=staging; absent: default,
 * which is the InsForge API). Back, reload and a pasted link land on the same view, in the
 * same environment. Written here (the History API and one popstate listener) rather than
 * taken from a router package: a few fixed paths with one parameter need no route matching,
 * and the bundle stays small.
 */
export type Page = ConsolePage;

export interface Route {
  page: Page;
  /** /console/secrets/KEY: the opened secret; /console/webhooks/ID: the opened webhook. */
  item: string | null;
  /** The environment the secrets pages show (`default` when the URL names none or a bad one). */
  env: string;
  query: URLSearchParams;
}

export function parseRoute(path: string, search: string): Route {
  const [, , first = '', second] = path.replace(/\/+$/, '').split('/');
  const page = (CONSOLE_PAGES as readonly string[]).includes(first) ? (first as Page) : 'secrets';
  let item: string | null = null;
  if (CONSOLE_PAGES_WITH_ITEM.includes(page) && second) {
    try {
      item = decodeURIComponent(second);
    } catch {
      item = null;
    }
  }
  const query = new URLSearchParams(search);
  const env = query.get('env') ?? '';
  return { page, item, env: isEnvironmentName(env) ? env : DEFAULT_ENVIRONMENT, query };
}

export const pageUrl = (page: Page, item?: string | null, query?: Record<string, string>) => {
  const q = new URLSearchParams(Object.entries(query ?? {}).filter(([, v]) => v !== '')).toString();
  return `/console/${page}${item ? `/${encodeURIComponent(item)}` : ''}${q ? `?${q}` : ''}`;
};

/** A secrets page in an environment (default: no parameter, the URL it always had). */
export const secretsUrl = (env: string, key?: string | null) =>
  pageUrl('secrets', key, env === DEFAULT_ENVIRONMENT ? {} : { env });

export function navigate(url: string, opts: { replace?: boolean } = {}) {
  if (url === location.pathname + location.search) return;
  if (opts.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  dispatchEvent(new PopStateEvent('popstate'));
}

export function useRoute(): Route {
  const read = () => parseRoute(location.pathname, location.search);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener('popstate', on);
    return () => removeEventListener('popstate', on);
  }, []);
  return route;
}

/** A plain link (open in a new tab works) that navigates in place on a plain click. */
export function onLinkClick(e: MouseEvent) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.currentTarget as HTMLAnchorElement;
  e.preventDefault();
  navigate(a.pathname + a.search);
}

/** A link to a console URL that navigates in place. */
export function Link(props: { href: string; children: ComponentChildren; class?: string }) {
  return (
    <a href={props.href} class={props.class} onClick={onLinkClick}>
      {props.children}
    </a>
  );
}
