import { useState } from 'preact/hooks';
import { EVENT_TYPES } from '../../src/events/outbox';
import { enc, request, type Schemas } from './api';
import {
  ActionForm,
  Check,
  type CredentialKind,
  Field,
  type FormFields,
  ShownOnce,
  useAction,
} from './forms';
import { type Column, PagedTable, usePagedList } from './table';
import { ErrorBox, Loading, Notice, usePage, When } from './ui';

type Webhook = Schemas['Webhook'];
type CreatedWebhook = Schemas['CreatedWebhook'];

/** Where a new or rotated signing secret is shown, once. */
interface OnceSecret {
  title: string;
  secret: string;
}

const SIGNING_SECRET: CredentialKind = {
  what: 'signing secret',
  valueLabel: 'Signing secret',
  warning:
    'Copy this signing secret now: it is shown only once and the service keeps it sealed. Your receiver verifies every delivery with it (Standard Webhooks); anyone holding it can forge events.',
};

/**
 * Webhook subscriptions (admin only): list, create (the whsec_ signing secret shown once),
 * and one opened subscription at /console/webhooks/ID: edit, rotate the secret (shown once),
 * delete, and its delivery log with redeliver.
 */
export function WebhooksPage(props: { opened: string | null; onOpen: (id: string | null) => void }) {
  const [notice, setNotice] = useState<string | null>(null);
  const [once, setOnce] = useState<OnceSecret | null>(null);
  const list = usePagedList<Webhook>('/api/webhooks', 'webhooks', {}, { keepOnError: true });
  const load = list.load;
  const changed = (message: string | null) => {
    setNotice(message);
    void load();
  };

  return (
    <>
      <h1>Webhooks</h1>
      <p class="hint">
        Change events (a secret created, updated, deleted, expiring…; never a value) are POSTed to each
        subscription's URL, signed per Standard Webhooks. Receivers deduplicate on the webhook-id header.
      </p>
      {notice ? <Notice>{notice}</Notice> : null}
      {once ? (
        <ShownOnce
          kind={SIGNING_SECRET}
          title={once.title}
          value={once.secret}
          onDone={() => setOnce(null)}
        />
      ) : null}
      <details class="panel">
        <summary>New webhook</summary>
        <WebhookForm
          onSaved={(w) => {
            const made = w as CreatedWebhook;
            setOnce({ title: `Webhook for ${made.url} created`, secret: made.secret });
            changed(null);
            props.onOpen(made.id);
          }}
        />
      </details>
      {props.opened ? (
        <WebhookDetail
          key={props.opened}
          id={props.opened}
          onClose={() => props.onOpen(null)}
          onChanged={changed}
          onSecret={setOnce}
        />
      ) : null}
      <h2>Subscriptions</h2>
      <PagedTable
        noun="webhook subscriptions"
        list={list}
        empty="No webhooks yet."
        columns={WEBHOOK_COLUMNS((id) => props.onOpen(id))}
      />
    </>
  );
}

const all = (list: readonly string[]) => (list.length === 0 ? 'All' : list.join(', '));

const status = (w: Webhook) =>
  w.enabled ? 'Enabled' : `Disabled${w.disabledReason ? `: ${w.disabledReason}` : ''}`;

const WEBHOOK_COLUMNS = (open: (id: string) => void): Column<Webhook>[] => [
  {
    label: 'URL',
    cell: (w) => (
      <button type="button" class="link" aria-label={`Open webhook ${w.url}`} onClick={() => open(w.id)}>
        {w.url}
      </button>
    ),
  },
  { label: 'Description', cell: (w) => w.description ?? '' },
  {
    label: 'Events',
    cell: (w) => (w.eventTypes.length === EVENT_TYPES.length ? 'All' : w.eventTypes.join(', ')),
  },
  { label: 'Key prefixes', cell: (w) => all(w.keyPrefixes) },
  { label: 'Status', cell: status },
  { label: 'Failures in a row', cell: (w) => w.consecutiveFailures },
  { label: 'Created', cell: (w) => <When iso={w.createdAt} /> },
];

/**
 * The subscription form: empty, it creates (POST, the response carries the secret); given
 * `webhook`, it changes that one (PATCH). The API checks the URL (https, or http where
 * allowed; no private addresses unless allowed) and says why it refuses.
 */
function WebhookForm(props: { webhook?: Webhook; onSaved: (w: Webhook | CreatedWebhook) => void }) {
  const w = props.webhook;
  const submit = async (f: FormFields) => {
    const description = f.text('description');
    const body: Record<string, unknown> = {
      url: f.text('url'),
      eventTypes: EVENT_TYPES.filter((t) => f.checked(t)),
      keyPrefixes: f.list('keyPrefixes').map((p) => p.toUpperCase()),
      description: description || null,
      ...(w ? { enabled: f.checked('enabled') } : {}),
    };
    const { body: saved } = w
      ? await request<Webhook>('PATCH', `/api/webhooks/${enc(w.id)}`, { body })
      : await request<CreatedWebhook>('POST', '/api/webhooks', { body });
    props.onSaved(saved);
  };
  return (
    <ActionForm onSubmit={submit} keep={w !== undefined}>
      <Field
        label="URL"
        name="url"
        placeholder="https://deploy.example.com/hooks/secrets"
        defaultValue={w?.url}
      />
      <Field
        label="Description (optional)"
        name="description"
        maxLength={1024}
        defaultValue={w?.description ?? ''}
      />
      <fieldset>
        <legend>Event types</legend>
        {EVENT_TYPES.map((t) => (
          <Check key={t} label={t} name={t} defaultChecked={w ? w.eventTypes.includes(t) : true} />
        ))}
      </fieldset>
      <Field
        label="Key prefixes (optional: only keys starting with one of these, separated by commas)"
        name="keyPrefixes"
        placeholder="STRIPE_, DATABASE_"
        defaultValue={w?.keyPrefixes.join(', ')}
      />
      {w ? (
        <Check
          label="Enabled (re-enabling clears the failure run)"
          name="enabled"
          defaultChecked={w.enabled}
        />
      ) : null}
      <button type="submit">{w ? 'Save webhook' : 'Create webhook'}</button>
    </ActionForm>
  );
}

function WebhookDetail(props: {
  id: string;
  onClose: () => void;
  onChanged: (message: string | null) => void;
  onSecret: (s: OnceSecret) => void;
}) {
  const [refresh, setRefresh] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);
  const { data: w, error } = usePage<Webhook>(`/api/webhooks/${enc(props.id)}`, refresh, {
    keepOnError: true,
  });
  const action = useAction();
  const done = (message: string) => {
    setNotice(message);
    setRefresh(refresh + 1);
    props.onChanged(null);
  };
  return (
    <section class="panel detail" aria-labelledby="webhook-h">
      <div class="panel-head">
        <h2 id="webhook-h">Webhook {w ? w.url : props.id}</h2>
        <button type="button" onClick={props.onClose}>
          Close
        </button>
      </div>
      {notice ? <Notice>{notice}</Notice> : null}
      <ErrorBox error={error ?? action.error} />
      {!w && !error ? <Loading what="the webhook" /> : null}
      {w ? (
        <>
          <dl class="meta">
            <dt>Status</dt>
            <dd>{status(w)}</dd>
            <dt>Events</dt>
            <dd>{w.eventTypes.join(', ')}</dd>
            <dt>Key prefixes</dt>
            <dd>{all(w.keyPrefixes)}</dd>
            <dt>Failures in a row</dt>
            <dd>{w.consecutiveFailures}</dd>
            <dt>Created</dt>
            <dd>
              <When iso={w.createdAt} /> by {w.createdBy}
            </dd>
            <dt>Previous secret signs until</dt>
            <dd>
              <When iso={w.previousSecretRetiresAt} />
            </dd>
          </dl>
          <details class="edit">
            <summary>Edit webhook</summary>
            <WebhookForm key={w.updatedAt} webhook={w} onSaved={() => done('The webhook has been saved.')} />
          </details>
          <div class="row">
            <button
              type="button"
              disabled={action.busy}
              onClick={() =>
                action.run(async () => {
                  const { body } = await request<Schemas['RotatedWebhookSecret']>(
                    'POST',
                    `/api/webhooks/${enc(w.id)}/rotate-secret`,
                  );
                  props.onSecret({ title: `New signing secret for ${w.url}`, secret: body.secret });
                  done(
                    'The signing secret has been rotated: the previous one keeps signing alongside it for a while.',
                  );
                })
              }
            >
              Rotate signing secret
            </button>
            <button
              type="button"
              class="danger"
              disabled={action.busy}
              onClick={() =>
                action.run(async () => {
                  await request('DELETE', `/api/webhooks/${enc(w.id)}`);
                  props.onChanged(`The webhook for ${w.url} has been deleted.`);
                  props.onClose();
                })
              }
            >
              Delete webhook
            </button>
          </div>
          <Deliveries id={w.id} />
        </>
      ) : null}
    </section>
  );
}

type Delivery = Schemas['WebhookDelivery'];

const DELIVERY_COLUMNS = (redeliver: (d: Delivery) => void): Column<Delivery>[] => [
  { label: 'Delivery', cell: (d) => d.id },
  { label: 'Event', cell: (d) => `${d.eventType}${d.key ? ` ${d.key}` : ''}` },
  { label: 'Status', cell: (d) => d.status },
  { label: 'Attempts', cell: (d) => d.attempts },
  { label: 'Response', cell: (d) => d.lastResponseStatus ?? '—' },
  { label: 'Latency', cell: (d) => (d.lastLatencyMs === null ? '—' : `${d.lastLatencyMs} ms`) },
  { label: 'Created', cell: (d) => <When iso={d.createdAt} /> },
  { label: 'Error', cell: (d) => d.lastError ?? '—' },
  {
    label: 'Action',
    cell: (d) => (
      <button type="button" onClick={() => redeliver(d)}>
        Redeliver {d.id}
      </button>
    ),
  },
];

/** The delivery log, newest first, with redeliver (the same webhook-id again). */
function Deliveries({ id }: { id: string }) {
  const [refresh, setRefresh] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);
  const redeliver = useAction((err) => list.setError(err));
  const list = usePagedList<Delivery>(
    `/api/webhooks/${enc(id)}/deliveries`,
    'deliveries',
    {},
    {
      refresh,
      keepOnError: true,
      pageSize: 25,
    },
  );
  const send = (d: Delivery) =>
    redeliver.run(async () => {
      const { body } = await request<{ id: string }>(
        'POST',
        `/api/webhooks/${enc(id)}/deliveries/${enc(d.id)}/redeliver`,
      );
      setNotice(`Delivery ${d.id} queued again as delivery ${body.id}.`);
      list.first();
      setRefresh(refresh + 1);
    });
  return (
    <div class="deliveries">
      <h3>Delivery log</h3>
      <div class="row">
        <button type="button" onClick={() => setRefresh(refresh + 1)}>
          Refresh deliveries
        </button>
      </div>
      {notice ? <Notice>{notice}</Notice> : null}
      <PagedTable
        noun="deliveries"
        list={list}
        empty="No deliveries yet."
        columns={DELIVERY_COLUMNS((d) => send(d))}
      />
    </div>
  );
}
