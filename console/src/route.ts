import { useEffect, useState } from 'preact/hooks';

/**
 * The console's URLs: /console/secrets[/KEY], /console/access-keys, /console/trusts,
 * /console/audit?filters, /console/keys. Back, reload and a pasted link land on the same
 * view. Written here (the History API and one popstate listener) rather than taken from a
 * router package: six fixed paths with one parameter need no route matching, and the bundle stays small.
 */
export type Page = 'secrets' | 'access-keys' | 'trusts' | 'audit' | 'keys';
const PAGES: readonly Page[] = ['secrets', 'access-keys', 'trusts', 'audit', 'keys'];

export interface Route {
  page: Page;
  /** /console/secrets/KEY: the opened secret. */
  key: string | null;
  query: URLSearchParams;
}

export function parseRoute(path: string, search: string): Route {
  const [, , first = '', second] = path.replace(/\/+$/, '').split('/');
  const page = (PAGES as readonly string[]).includes(first) ? (first as Page) : 'secrets';
  let key: string | null = null;
  if (page === 'secrets' && second) {
    try {
      key = decodeURIComponent(second);
    } catch {
      key = null;
    }
  }
  return { page, key, query: new URLSearchParams(search) };
}

export const pageUrl = (page: Page, key?: string | null, query?: Record<string, string>) => {
  const q = new URLSearchParams(Object.entries(query ?? {}).filter(([, v]) => v !== '')).toString();
  return `/console/${page}${key ? `/${encodeURIComponent(key)}` : ''}${q ? `?${q}` : ''}`;
};

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
