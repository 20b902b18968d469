/**
 * What simply browsing writes to the audit log: a row per list page and per version history
 * opened. The audit view opens without them, so value reads and changes are what one sees
 * first; they stay in the log, and "Show every entry" (?show=all) or an action filter brings
 * them back. (Its own module, without the page's imports, so the browser tests share it.)
 */
export const BROWSING_ACTIONS = ['secret.list', 'secret.versions', 'access_key.list', 'oidc_trust.list'];
