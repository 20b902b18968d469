import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { errors } from '../errors.js';

/**
 * Where a webhook may be sent. Refused (unless WEBHOOK_ALLOW_PRIVATE): every address that
 * is not plain public unicast, i.e. loopback, private (RFC 1918, unique-local), link-local
 * (169.254/16 holds the cloud metadata services), carrier-grade NAT (100.64/10: Alibaba's
 * metadata), unspecified, multicast, broadcast and reserved ranges, and IPv4 addresses
 * written as IPv6 (::ffff:127.0.0.1). ipaddr.js classifies the ranges (its range() tables),
 * so no hand-kept CIDR list drifts.
 *
 * The check runs when a subscription is created or changed (a clear 400) and again on every
 * connection: the delivery's `lookup` (below) resolves the name, refuses a forbidden answer
 * and hands the checked address to the socket, so a DNS answer that changes between the
 * check and the connection (rebinding) cannot reach a private address.
 */

export interface DestinationRules {
  allowHttp: boolean;
  allowPrivate: boolean;
}

/** Why an address is refused, or null when it is public unicast. */
export function forbiddenAddress(address: string): string | null {
  if (!ipaddr.isValid(address)) return 'not an IP address';
  const parsed = ipaddr.process(address);
  const range = parsed.range();
  return range === 'unicast' ? null : range;
}

export class DestinationRefused extends Error {}

/** The URL as a webhook destination: https (http only if allowed), no credentials, a host. */
export function parseDestination(raw: string, rules: DestinationRules): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw errors.invalidInput(
      'url must be an absolute URL (https://...)',
      "Give the receiver's full https:// URL",
    );
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && rules.allowHttp)) {
    throw errors.invalidInput(
      `url must use https${rules.allowHttp ? ' or http' : ''} (got ${url.protocol.replace(':', '')})`,
      rules.allowHttp
        ? 'Use an https:// or http:// URL'
        : 'Use an https:// URL (http needs WEBHOOK_ALLOW_HTTP=true)',
    );
  }
  if (url.username || url.password)
    throw errors.invalidInput('url must not carry credentials', 'Remove user:password@ from the URL');
  if (url.hash) throw errors.invalidInput('url must not have a #fragment', 'Remove the #fragment');
  return url;
}

const bareHost = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1');

function resolveAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => {
    dnsLookup(host, { all: true, verbatim: true }, (err, addresses) =>
      err ? reject(err) : resolve(addresses),
    );
  });
}

/**
 * Checks a destination at creation: every address its name resolves to must be allowed.
 * Throws a 400 saying which address and why.
 */
export async function checkDestination(url: URL, rules: DestinationRules): Promise<void> {
  if (rules.allowPrivate) return;
  const host = bareHost(url);
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await resolveAll(host)).map((a) => a.address);
    } catch {
      throw errors.invalidInput(
        `url host ${host} does not resolve`,
        'Check the host name; the receiver must be reachable when the subscription is created',
      );
    }
  }
  for (const a of addresses) {
    const why = forbiddenAddress(a);
    if (why)
      throw errors.invalidInput(
        `url resolves to ${a} (${why}): webhooks are not sent to loopback, private, link-local or metadata addresses`,
        'Use a public receiver, or set WEBHOOK_ALLOW_PRIVATE=true for a trusted network',
      );
  }
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for http.request that refuses forbidden answers at connection time (DNS
 * rebinding): the socket connects only to an address that passed the check.
 */
export function guardedLookup(rules: DestinationRules) {
  return (hostname: string, options: { all?: boolean }, callback: LookupCallback) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => {
      if (err) return callback(err, '');
      const allowed = rules.allowPrivate ? addresses : addresses.filter((a) => !forbiddenAddress(a.address));
      if (allowed.length === 0) {
        const first = addresses[0]?.address ?? 'nothing';
        return callback(
          new DestinationRefused(
            `${hostname} resolves to ${first} (${forbiddenAddress(first) ?? 'no address'}): refused`,
          ),
          '',
        );
      }
      if (options.all) return callback(null, allowed);
      const a = allowed[0]!;
      callback(null, a.address, a.family);
    });
  };
}

/** The literal-IP case, which http.request connects to without a lookup: checked here. */
export function refusedLiteral(url: URL, rules: DestinationRules): string | null {
  const host = bareHost(url);
  if (rules.allowPrivate || !isIP(host)) return null;
  const why = forbiddenAddress(host);
  return why ? `${host} is ${why}: refused` : null;
}
