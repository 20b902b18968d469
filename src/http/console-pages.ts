/**
 * The web console's pages (console/src/route.ts): /console/PAGE, and /console/PAGE/ID for
 * those that open one item (a secret by key, a webhook by id). The server answers each of
 * these paths with the console's index.html (src/http/console.ts), so a reload or a pasted
 * link shows the view it names. One list for both sides: a page added to the console is
 * served on reload without a second edit. A leaf module: no imports, so the console's
 * bundle can take it.
 */
export const CONSOLE_PAGES = [
  'secrets',
  'environments',
  'webhooks',
  'access-keys',
  'trusts',
  'audit',
  'keys',
] as const;
export type ConsolePage = (typeof CONSOLE_PAGES)[number];
export const CONSOLE_PAGES_WITH_ITEM: readonly ConsolePage[] = ['secrets', 'webhooks'];
