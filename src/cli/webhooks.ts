import { type Command, Option } from 'commander';
import type { SecretsClient, WebhookPatch } from '../client/index.js';
import { isKeyPrefix } from '../secret-names.js';
import { UsageError } from './exit-codes.js';
import { maskForActions } from './output.js';
import { resourceCommands } from './resource-commands.js';

/**
 * `secrets webhooks ...`: webhook subscriptions (admin; docs/events.md). The signing secret
 * (whsec_...) is printed once, by `create` and `rotate`, to stdout and nowhere else.
 */

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface WebhookCommandDeps {
  client: () => Promise<SecretsClient>;
  status: (line: string) => void;
  tty: () => boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function webhookId(id: string): string {
  if (!UUID_RE.test(id))
    throw new UsageError(`invalid webhook id ${JSON.stringify(id)}: a UUID (secrets webhooks list)`);
  return id;
}

function prefixes(list: string[] | undefined): string[] | undefined {
  for (const p of list ?? [])
    if (!isKeyPrefix(p))
      throw new UsageError(`invalid --prefix ${JSON.stringify(p)}: use A-Z, 0-9 and _ (e.g. APP_)`);
  return list;
}

/** What --event, --prefix and --description set, for create and update alike. */
interface SubscriptionFlags {
  event?: string[];
  prefix?: string[];
  description?: string;
}

/** The flags of what create and update set alike (subscriptionFields); `help` says what giving them means. */
const eventOption = (help: string) => new Option('--event <type>', help).argParser(collect);
const prefixOption = (help: string) => new Option('--prefix <prefix>', help).argParser(collect);
const descriptionOption = () => new Option('--description <text>', 'what it is for');

const subscriptionFields = (o: SubscriptionFlags) => ({
  ...(o.event ? { eventTypes: o.event as never } : {}),
  ...(o.prefix ? { keyPrefixes: prefixes(o.prefix) } : {}),
  ...(o.description !== undefined ? { description: o.description } : {}),
});

const json = (x: unknown) => process.stdout.write(`${JSON.stringify(x, null, 2)}\n`);

export function addWebhookCommands(program: Command, { client, status, tty }: WebhookCommandDeps): void {
  const resources = resourceCommands({ client, tty, status });
  const webhooks = program
    .command('webhooks')
    .description('webhook subscriptions (admin): signed change events sent to your URL (docs/events.md)');

  resources.list(webhooks.command('list').description('list the webhook subscriptions'), {
    fetch: (c) => c.webhooks.list(),
    columns: {
      ID: 'id',
      URL: 'url',
      ENABLED: (w) => (w.enabled ? 'yes' : `no${w.disabledReason ? ` (${w.disabledReason})` : ''}`),
      EVENTS: (w) => (w.eventTypes.length > 3 ? `${w.eventTypes.length} types` : w.eventTypes.join(',')),
      PREFIXES: (w) => w.keyPrefixes.join(',') || 'all',
      FAILURES: (w) => String(w.consecutiveFailures),
    },
  });

  webhooks
    .command('create')
    .description('subscribe a URL; prints the signing secret (whsec_...) once: store it in the receiver')
    .argument('<URL>', "the receiver's https:// URL")
    .addOption(eventOption('an event type to send (repeatable; default: all)'))
    .addOption(prefixOption('only keys starting with this (repeatable; default: every key)'))
    .addOption(descriptionOption())
    .option('--json', 'print the whole answer as JSON (the secret included)')
    .action(async (url: string, o: SubscriptionFlags & { json?: boolean }) => {
      const created = await (await client()).webhooks.create({ url, ...subscriptionFields(o) });
      maskForActions([created.secret]);
      if (o.json) json(created);
      else process.stdout.write(`${created.secret}\n`);
      status(`created webhook ${created.id}: the signing secret is shown only now`);
    });

  webhooks
    .command('update')
    .description('change a subscription: URL, event types, prefixes, description, enabled')
    .argument('<ID>')
    .option('--url <url>', 'a new receiver URL')
    .addOption(eventOption('the event types to send (repeatable; replaces the list)'))
    .addOption(prefixOption('the key prefixes (repeatable; replaces the list)'))
    .option('--all-keys', 'send events of every key (clears the prefixes)')
    .addOption(descriptionOption())
    .option('--enable', 'enable it (also after it was disabled for failing)')
    .option('--disable', 'disable it: nothing is queued for it until enabled')
    .option('--json', 'print the subscription as JSON')
    .action(
      async (
        id: string,
        o: SubscriptionFlags & {
          url?: string;
          allKeys?: boolean;
          enable?: boolean;
          disable?: boolean;
          json?: boolean;
        },
      ) => {
        if (o.enable && o.disable) throw new UsageError('--enable and --disable exclude each other');
        if (o.allKeys && o.prefix) throw new UsageError('--all-keys and --prefix exclude each other');
        const patch: WebhookPatch = {
          ...(o.url !== undefined ? { url: o.url } : {}),
          ...subscriptionFields(o),
          ...(o.allKeys ? { keyPrefixes: [] } : {}),
          ...(o.enable ? { enabled: true } : o.disable ? { enabled: false } : {}),
        };
        if (Object.keys(patch).length === 0)
          throw new UsageError(
            'nothing to change: give --url, --event, --prefix, --all-keys, --description, --enable or --disable',
          );
        const w = await (await client()).webhooks.update(webhookId(id), patch);
        if (o.json) json(w);
        status(`updated webhook ${w.id}`);
      },
    );

  webhooks
    .command('rotate')
    .description(
      'a new signing secret, printed once; the old one keeps signing alongside it for a grace period',
    )
    .argument('<ID>')
    .option('--json', 'print the answer as JSON (the secret included)')
    .action(async (id: string, o: { json?: boolean }) => {
      const r = await (await client()).webhooks.rotateSecret(webhookId(id));
      maskForActions([r.secret]);
      if (o.json) json(r);
      else process.stdout.write(`${r.secret}\n`);
      status(`rotated webhook ${id}: the previous secret signs too until ${r.previousSecretRetiresAt}`);
    });

  resources.delete(webhooks, {
    description: 'delete a subscription and its pending deliveries',
    argument: '<ID>',
    noun: 'webhook',
    remove: (c, id) => c.webhooks.remove(webhookId(id)),
  });

  resources.list(
    webhooks
      .command('deliveries')
      .description("a subscription's delivery log, newest first: status, attempts, last answer")
      .argument('<ID>'),
    {
      fetch: (c, id) => c.webhooks.deliveries(webhookId(id)),
      line: (d) => `${d.id}\t${d.status}\t${d.eventType}\t${d.key ?? ''}`,
      columns: {
        ID: 'id',
        EVENT: 'eventType',
        KEY: (d) => d.key ?? '',
        STATUS: 'status',
        ATTEMPTS: (d) => String(d.attempts),
        LAST: (d) => (d.lastResponseStatus !== null ? String(d.lastResponseStatus) : (d.lastError ?? '')),
        LATENCY: (d) => (d.lastLatencyMs !== null ? `${d.lastLatencyMs}ms` : ''),
        CREATED: 'createdAt',
      },
    },
  );

  webhooks
    .command('redeliver')
    .description('send a delivery again (the same event, so the same webhook-id)')
    .argument('<ID>', 'the subscription')
    .argument('<DELIVERY_ID>', 'from secrets webhooks deliveries')
    .action(async (id: string, deliveryId: string) => {
      if (!/^[1-9][0-9]{0,17}$/.test(deliveryId))
        throw new UsageError(`invalid delivery id ${JSON.stringify(deliveryId)}: a number`);
      await (await client()).webhooks.redeliver(webhookId(id), deliveryId);
      status(`queued delivery ${deliveryId} of webhook ${id} again`);
    });
}
