/**
 * Strong ETags for one secret and the If-Match check (RFC 9110, 13.1.1).
 *
 * The tag names (secret id, revision): the revision is bumped by every change, so a tag
 * identifies one state exactly, and a purged then re-created key (new id) never matches an
 * old tag. Hand-written because the usual packages (etag, fresh) hash bodies or implement
 * If-None-Match's weak comparison; If-Match needs strong comparison over a list of tags.
 */
export function secretEtag(id: string, revision: string | number): string {
  return `"${id}.${revision}"`;
}

/** True when the If-Match header (absent = no condition) admits the current tag. */
export function ifMatchSatisfied(header: string | undefined, current: string): boolean {
  if (header === undefined) return true;
  const h = header.trim();
  if (h === '*') return true;
  // A list of entity tags; weak tags (W/"...") never match under strong comparison.
  for (const tag of h.split(',')) {
    if (tag.trim() === current) return true;
  }
  return false;
}

/**
 * True when If-None-Match names the current tag (weak comparison, RFC 9110 13.1.2: W/ is
 * ignored) or is *, so a GET may answer 304 Not Modified.
 */
export function ifNoneMatchHit(header: string | undefined, current: string): boolean {
  if (header === undefined) return false;
  const h = header.trim();
  if (h === '*') return true;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return h.split(',').some((t) => bare(t) === bare(current));
}
